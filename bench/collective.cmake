# All-reduce bandwidth of the distributed runs' process group (bench/collective_bench.cpp,
# bench/collective_bench.sh; results in docs/benchmarks.md). Not run by ctest, not built by
# default: `cmake --build <dir> --target mr_collective_bench`.
if(MR_WITH_TORCH AND TARGET mr_distributed)
  add_executable(mr_collective_bench EXCLUDE_FROM_ALL ${CMAKE_CURRENT_LIST_DIR}/collective_bench.cpp)
  target_link_libraries(mr_collective_bench PRIVATE mr_distributed mr_sdk_torch ${TORCH_LIBRARIES})
endif()
