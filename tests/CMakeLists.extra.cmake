# Extra test targets included by tests/CMakeLists.txt.
if(TS_FUZZ)
  add_subdirectory(fuzz)
endif()
