# DPO / SFT training throughput and memory benchmark (bench/training_bench.cpp; results in
# docs/benchmarks.md). Needs libtorch; not run by ctest. Include from the top-level
# CMakeLists.txt after add_subdirectory(plugins).
if(MR_WITH_TORCH AND MR_BUILD_PLUGINS)
  add_executable(mr_training_bench EXCLUDE_FROM_ALL ${CMAKE_CURRENT_LIST_DIR}/training_bench.cpp)
  target_link_libraries(mr_training_bench PRIVATE mr_torch_model mr_model_files metareward::sdk_torch mr_training)
  target_compile_definitions(mr_training_bench PRIVATE
    MR_BENCH_CONFIG_DIR="${CMAKE_CURRENT_LIST_DIR}/configs")
endif()
