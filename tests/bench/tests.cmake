# ts_bench_tests also compiles the bench helpers of launch/ (the CLI executable's own sources are
# not a library): report figures, inputs and the SVG plot.
target_sources(ts_bench_tests PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/../../launch/bench_inputs.cc
  ${CMAKE_CURRENT_LIST_DIR}/../../launch/bench_report.cc
  ${CMAKE_CURRENT_LIST_DIR}/../../launch/svg_plot.cc)
