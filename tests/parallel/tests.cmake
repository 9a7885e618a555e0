# The MPI communicator under a real mpirun (Open MPI): collectives on 2 and 3 ranks
# (--oversubscribe on a 2-core machine), and a stopped or exited rank ending the whole job with an
# error that names it, within a bounded time.
if(TS_MPI)
  add_executable(ts_mpi_check ${CMAKE_CURRENT_LIST_DIR}/mpi_check.cc)
  target_link_libraries(ts_mpi_check PRIVATE ts_parallel)
  add_executable(ts_tp_check ${CMAKE_CURRENT_LIST_DIR}/tp_check.cc)
  target_link_libraries(ts_tp_check PRIVATE ts_runtime)
  target_compile_definitions(ts_tp_check PRIVATE TS_FIXTURES_DIR="${TS_FIXTURES_DIR}")
  add_test(NAME parallel.mpi_collectives_and_failures
           COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/mpi_test.sh $<TARGET_FILE:ts_mpi_check>
                   $<TARGET_FILE:ts_tp_check> $<TARGET_FILE:tokenswift>)
  set_tests_properties(parallel.mpi_collectives_and_failures
                       PROPERTIES LABELS parallel TIMEOUT 1200)
endif()
