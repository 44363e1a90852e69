# add_trainerd_test(NAME SOURCES... LIBS... [CASES case1 case2 ...])
#
# Tests run in parallel (ctest -j) and start training processes of their own, so the
# CPUs are oversubscribed: OMP_WAIT_POLICY=PASSIVE keeps OpenMP's idle threads from
# spinning on cores that other processes need.
#
# Builds one GoogleTest binary. Without CASES it is registered as a single ctest test.
# With CASES, one ctest test per listed gtest filter: binaries that link LibTorch pay
# ~0.7 s of start-up per process, so they are split into a few coarse groups rather
# than one process per test case (gtest_discover_tests).
function(add_trainerd_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS;CASES" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gmock GTest::gtest GTest::gtest_main)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  if(T_CASES)
    foreach(filter ${T_CASES})
      string(REPLACE "*" "" label "${filter}")
      string(REPLACE ":" "_" label "${label}")
      add_test(NAME ${name}.${label} COMMAND ${name} --gtest_filter=${filter})
      set_tests_properties(${name}.${label} PROPERTIES TIMEOUT ${T_TIMEOUT}
        ENVIRONMENT "TRAINERD_BUILD_DIR=${PROJECT_BINARY_DIR};TRAINERD_SOURCE_DIR=${PROJECT_SOURCE_DIR};OMP_WAIT_POLICY=PASSIVE")
    endforeach()
  else()
    add_test(NAME ${name} COMMAND ${name})
    set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT}
      ENVIRONMENT "TRAINERD_BUILD_DIR=${PROJECT_BINARY_DIR};TRAINERD_SOURCE_DIR=${PROJECT_SOURCE_DIR};OMP_WAIT_POLICY=PASSIVE")
  endif()
endfunction()
