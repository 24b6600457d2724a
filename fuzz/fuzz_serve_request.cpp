// libFuzzer harness: `metareward serve`'s HTTP request bodies: the JSON body (parse_body) as
// POST /v1/chat/completions, /v1/completions and /tokenize parse it. Every bad request must be an
// ApiError (a 4xx naming the field); any other exception would reach the server's catch-all and
// answer 500 for the client's mistake, so it counts as a bug here.
#include <cstddef>
#include <cstdint>
#include <string>

#include "api_error.hpp"
#include "fuzz_support.hpp"
#include "openai_request.hpp"

namespace {

namespace serve = mr::core::serve;

void check(const serve::ParsedGeneration& parsed, const serve::RequestLimits& limits) {
  const auto& request = parsed.request;
  MR_FUZZ_CHECK(request.n >= 1 && request.n <= limits.max_n, "n outside [1, max_n]");
  MR_FUZZ_CHECK(request.sampling.max_new_tokens >= 0 &&
                    request.sampling.max_new_tokens <= limits.max_tokens_limit,
                "max_tokens outside [0, max_tokens_limit]");
}

template <class Fn>
void expect_api_errors_only(Fn fn) {
  try {
    fn();
  } catch (const serve::ApiError& e) {
    MR_FUZZ_CHECK(e.status() >= 400 && e.status() < 500, "a request error that is not a 4xx");
    (void)serve::dump_json(serve::error_body(e));  // what the server sends back
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(mr::fuzz::as_text(data, size));
  serve::RequestLimits limits;
  limits.served_model_name = "tiny";
  limits.max_tokens_limit = 256;
  limits.max_n = 8;
  const auto fresh_seed = [] { return std::uint64_t{42}; };
  nlohmann::json body;
  try {
    body = serve::parse_body(text);
  } catch (const serve::ApiError& e) {
    MR_FUZZ_CHECK(e.status() == 400, "a malformed body that is not a 400");
    return 0;
  }
  expect_api_errors_only(
      [&] { check(serve::parse_chat_request(body, limits, fresh_seed), limits); });
  expect_api_errors_only(
      [&] { check(serve::parse_completion_request(body, limits, fresh_seed), limits); });
  expect_api_errors_only([&] { (void)serve::parse_tokenize_request(body, limits); });
  return 0;
}
