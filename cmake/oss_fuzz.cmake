# SPDX-License-Identifier: Apache-2.0
# What scripts/oss-fuzz/build.sh (OSS-Fuzz, ClusterFuzzLite, scripts/fuzz-afl.sh)
# needs from the build, kept in one place apart from the rest. Included last
# by the top-level CMakeLists.txt, so that it sees every target of every
# directory; a new directory or a new fuzz target needs no change here.
#
# 1. VUF_LIB_FUZZING_ENGINE (the base-builder's $LIB_FUZZING_ENGINE:
#    -fsanitize=fuzzer, libAFLDriver.a, libhfuzz.a, ...). When set, every
#    libFuzzer target of the build -- an executable that links -fsanitize=fuzzer,
#    wherever it is defined -- is compiled without -fsanitize=fuzzer ($CFLAGS
#    carries the engine's instrumentation), links the engine instead, and is
#    linked by the C++ driver ($CXX $CXXFLAGS), as OSS-Fuzz requires even for C
#    (google/oss-fuzz docs/getting-started/new_project_guide.md).
# 2. trace_bytes (scripts/oss-fuzz/trace_bytes.c): the host tool that makes
#    wire-byte seeds from traces.
# 3. The AFL++ mutator library exports AFL++'s hooks only and resolves every
#    other symbol itself (afl-fuzz loads it into its own process).
# 4. ${CMAKE_BINARY_DIR}/oss-fuzz-targets.txt: "NAME PATH" of every fuzz target
#    and tool build.sh copies, so that it never guesses an output directory.

# Every target defined in DIR and below.
function(vuf_targets_below dir out)
  get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
  get_property(subdirs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
  foreach(sub ${subdirs})
    vuf_targets_below(${sub} below)
    list(APPEND targets ${below})
  endforeach()
  set(${out} ${targets} PARENT_SCOPE)
endfunction()

# PROP of target T without ITEM (a property that is not set stays unset).
function(vuf_remove_from_property t prop item)
  get_target_property(values ${t} ${prop})
  if(values)
    list(REMOVE_ITEM values ${item})
    set_property(TARGET ${t} PROPERTY ${prop} ${values})
  endif()
endfunction()

vuf_targets_below(${CMAKE_SOURCE_DIR} vuf_all_targets)
set(VUF_FUZZ_TARGETS)
foreach(t ${vuf_all_targets})
  get_target_property(type ${t} TYPE)
  get_target_property(link_options ${t} LINK_OPTIONS)
  if(type STREQUAL "EXECUTABLE" AND link_options AND "-fsanitize=fuzzer" IN_LIST link_options)
    list(APPEND VUF_FUZZ_TARGETS ${t})
  endif()
endforeach()

# 1. the engine from the environment
if(VUF_LIB_FUZZING_ENGINE)
  if(NOT VUF_FUZZ_TARGETS)
    message(FATAL_ERROR "VUF_LIB_FUZZING_ENGINE is set, but no target links -fsanitize=fuzzer")
  endif()
  separate_arguments(vuf_engine UNIX_COMMAND "${VUF_LIB_FUZZING_ENGINE}")
  foreach(t ${VUF_FUZZ_TARGETS})
    vuf_remove_from_property(${t} COMPILE_OPTIONS -fsanitize=fuzzer)
    vuf_remove_from_property(${t} LINK_OPTIONS -fsanitize=fuzzer)
    target_link_libraries(${t} PRIVATE ${vuf_engine})
    set_target_properties(${t} PROPERTIES LINKER_LANGUAGE CXX)
  endforeach()
  message(STATUS "fuzz targets linked with ${VUF_LIB_FUZZING_ENGINE}: ${VUF_FUZZ_TARGETS}")
endif()

# 2. the seed tool
add_executable(vuf_trace_bytes ${CMAKE_SOURCE_DIR}/scripts/oss-fuzz/trace_bytes.c)
target_link_libraries(vuf_trace_bytes PRIVATE vufcore)
set_target_properties(vuf_trace_bytes PROPERTIES OUTPUT_NAME trace_bytes
  RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/oss-fuzz)

# 3. the AFL++ mutator library's exports
if(TARGET vufuzz_afl_mutator)
  set(vuf_afl_map ${CMAKE_BINARY_DIR}/oss-fuzz/afl_mutator.map)
  file(WRITE ${vuf_afl_map} "{\n  global: afl_custom_*;\n  local: *;\n};\n")
  target_link_options(vufuzz_afl_mutator PRIVATE LINKER:--version-script=${vuf_afl_map} LINKER:-z,defs)
  set_property(TARGET vufuzz_afl_mutator APPEND PROPERTY LINK_DEPENDS ${vuf_afl_map})
endif()

# 4. the manifest
set(vuf_manifest "")
foreach(t ${VUF_FUZZ_TARGETS} vufuzz vufuzz_afl_mutator vuf_trace_bytes)
  if(TARGET ${t})
    string(APPEND vuf_manifest "${t} $<TARGET_FILE:${t}>\n")
  endif()
endforeach()
file(GENERATE OUTPUT ${CMAKE_BINARY_DIR}/oss-fuzz-targets.txt CONTENT "${vuf_manifest}")
