# CLI behaviour: exit codes, one-line errors, stats JSON, token output.
add_test(NAME cli.errors_and_outputs
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/cli_test.sh $<TARGET_FILE:tokenswift>)
set_tests_properties(cli.errors_and_outputs PROPERTIES LABELS cli TIMEOUT 300)
