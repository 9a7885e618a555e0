# The gRPC job service end to end: a real server and the real clients on loopback.
if(TS_GRPC)
  add_test(NAME serve.grpc_end_to_end
           COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/serve_test.sh $<TARGET_FILE:tokenswift>)
  set_tests_properties(serve.grpc_end_to_end PROPERTIES LABELS serve TIMEOUT 900)
endif()
