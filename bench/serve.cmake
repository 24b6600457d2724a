# HTTP serving benchmark (bench/serve_bench.cpp; results in docs/benchmarks.md): in-process vs
# `metareward serve` vs the openai backend over 1 / 2 servers. Not run by ctest, not built by
# default: `cmake --build <dir> --target mr_serve_bench`. Included after add_subdirectory(plugins).
if(TARGET mr_torch_backend_impl AND TARGET mr_openai_backend_impl)
  add_executable(mr_serve_bench EXCLUDE_FROM_ALL ${CMAKE_CURRENT_LIST_DIR}/serve_bench.cpp)
  target_include_directories(mr_serve_bench PRIVATE ${PROJECT_SOURCE_DIR}/plugins/openai_backend/src)
  target_link_libraries(mr_serve_bench PRIVATE mr_openai_backend_impl mr_torch_backend_impl
    nlohmann_json::nlohmann_json PkgConfig::HTTPLIB Threads::Threads)
  target_compile_definitions(mr_serve_bench PRIVATE MR_BENCH_CLI_PATH="$<TARGET_FILE:metareward>")
  add_dependencies(mr_serve_bench metareward mr_torch_backend)
endif()

# Loopback soak of `metareward serve` under abuse (bench/serve_soak.sh; tests/e2e/serve_soak.hpp).
add_executable(mr_serve_soak EXCLUDE_FROM_ALL ${CMAKE_CURRENT_LIST_DIR}/serve_soak.cpp)
target_include_directories(mr_serve_soak PRIVATE ${PROJECT_SOURCE_DIR}/tests/e2e)
target_link_libraries(mr_serve_soak PRIVATE nlohmann_json::nlohmann_json PkgConfig::HTTPLIB
  Threads::Threads)
