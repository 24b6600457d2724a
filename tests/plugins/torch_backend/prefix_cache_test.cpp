// The cross-request prefix cache and continuous batching of the `torch` backend: prefill with
// cached prefixes gives the logits of a plain prefill, the cache's budget, LRU order and
// invalidation on a weight change, and generation (greedy and sampled, n > 1) gives the same
// text with the cache on or off, continuous batching on or off, at any batch size.
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include "backend_test_util.hpp"
#include "metareward/sdk/trainable_model.hpp"
#include "metareward/torch_backend_plugin/torch_backend.hpp"
#include "metareward/torch_model/causal_lm.hpp"
#include "metareward/torch_model/checkpoint_files.hpp"
#include "metareward/torch_model/prefix_cache.hpp"
#include "metareward/torch_model/prompt_prefill.hpp"

namespace sdk = mr::sdk;
namespace tb = mr::torch_backend;
using mr::test::BackendTempDir;
using mr::test::make_backend;
using mr::test::request;

namespace {

const std::filesystem::path& cache_model() {
  static BackendTempDir dir;
  static const std::filesystem::path model = [] {
    const auto p = dir.path() / "model";
    REQUIRE(mr::test::write_tiny_model(p, 11) == 0);
    return p;
  }();
  return model;
}

std::vector<std::int64_t> tokens_of(std::uint64_t seed, std::size_t n, std::int64_t vocab) {
  std::vector<std::int64_t> out(n);
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& t : out) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    t = static_cast<std::int64_t>(x % static_cast<std::uint64_t>(vocab));
  }
  return out;
}

std::vector<std::int64_t> concat(std::vector<std::int64_t> a, const std::vector<std::int64_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

/// Prompts shaped like a meta-judge stage: a shared rubric, then a response per group, then two
/// judgments, of varied lengths.
std::vector<std::vector<std::int64_t>> shared_prompts(std::int64_t vocab) {
  const auto rubric = tokens_of(1, 37, vocab);
  std::vector<std::vector<std::int64_t>> out;
  for (std::uint64_t r = 0; r < 2; ++r) {
    const auto response = concat(rubric, tokens_of(10 + r, 21 + 5 * r, vocab));
    for (std::uint64_t a = 0; a < 3; ++a)
      for (std::uint64_t b = 0; b < 3; ++b)
        if (a != b)
          out.push_back(concat(concat(response, tokens_of(100 + a, 9 + a, vocab)),
                               tokens_of(100 + b, 9 + b, vocab)));
  }
  out.push_back(tokens_of(7, 5, vocab));  // Shorter than a block.
  return out;
}

torch::Tensor plain_logits(tb::CausalLMImpl& model, const std::vector<std::int64_t>& prompt) {
  auto ids = torch::tensor(prompt, torch::kLong).view({1, -1});
  auto mask = torch::ones_like(ids);
  return model.forward(ids, mask, tb::position_ids_from_mask(mask)).select(1, ids.size(1) - 1);
}

}  // namespace

TEST_CASE("prefix cache: prefill with cached prefixes gives the plain logits", "[prefix_cache]") {
  c10::InferenceMode guard;
  auto model = tb::load_causal_lm(cache_model(), tb::ModelOptions{});
  model->eval();
  const auto vocab = model->config().vocab_size;
  const auto prompts = shared_prompts(vocab);
  const std::int64_t block = GENERATE(1, 4, 16);
  INFO("block_tokens " << block);
  tb::PrefixCache cache(64 << 20, block);
  cache.bind(1);
  std::int64_t reused = 0, computed = 0, total = 0;
  // In waves of three prompts, so that later waves find what earlier ones stored.
  for (std::size_t first = 0; first < prompts.size(); first += 3) {
    std::vector<const std::vector<std::int64_t>*> wave;
    for (std::size_t i = first; i < std::min(prompts.size(), first + 3); ++i)
      wave.push_back(&prompts[i]);
    auto out = tb::prefill_prompts(*model, wave, &cache, 4);
    REQUIRE(out.logits.size(0) == static_cast<std::int64_t>(wave.size()));
    for (std::size_t j = 0; j < wave.size(); ++j) {
      INFO("prompt " << first + j);
      const auto expected = plain_logits(*model, *wave[j]).select(0, 0);
      INFO("max |diff| " << (out.logits.select(0, static_cast<std::int64_t>(j)) - expected)
                                .abs()
                                .max()
                                .item<float>()
                         << " of max |logit| " << expected.abs().max().item<float>());
      CHECK(torch::allclose(out.logits.select(0, static_cast<std::int64_t>(j)), expected, 1e-4,
                            1e-5));
      CHECK(out.mask.select(0, static_cast<std::int64_t>(j)).sum().item<std::int64_t>() ==
            static_cast<std::int64_t>(wave[j]->size()));
      total += static_cast<std::int64_t>(wave[j]->size());
    }
    reused += out.reused_tokens;
    computed += out.computed_tokens;
  }
  CHECK(reused + computed == total);
  CHECK(reused > total / 3);  // The shared rubric and responses came from the cache.
  CHECK(cache.stats().reused_tokens == reused);
  CHECK(cache.bytes() <= cache.budget_bytes());

  SECTION("without a cache nothing is reused and the logits are the same") {
    std::vector<const std::vector<std::int64_t>*> all;
    for (const auto& p : prompts) all.push_back(&p);
    auto out = tb::prefill_prompts(*model, all, nullptr, 1);
    CHECK(out.reused_tokens == 0);
    CHECK(out.computed_tokens == total);
    for (std::size_t j = 0; j < all.size(); ++j)
      CHECK(torch::allclose(out.logits.select(0, static_cast<std::int64_t>(j)),
                            plain_logits(*model, *all[j]).select(0, 0), 1e-4, 1e-5));
  }
}

TEST_CASE("prefix cache: budget, LRU order and invalidation", "[prefix_cache]") {
  const std::vector<std::int64_t> layer_dims = {2, 1, 4, 3};  // layers, kv heads, block, dim.
  const std::int64_t block = 4;
  auto span = [&](std::int64_t blocks, float value) {
    return torch::full({2 * layer_dims[0], layer_dims[1], blocks * block, layer_dims[3]}, value);
  };
  const std::int64_t block_bytes = 2 * 2 * 1 * 4 * 3 * 4;  // 2*layers x heads x block x dim x 4 B.
  tb::PrefixCache cache(3 * block_bytes, block);
  cache.bind(1);
  const std::vector<std::int64_t> a = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13};
  const auto ha = cache.block_hashes(a);
  REQUIRE(ha.size() == 3);
  cache.insert(a, ha, 0, span(3, 1.0f));
  CHECK(cache.blocks() == 3);
  CHECK(cache.cached_blocks(a, ha, 10) == 3);
  // The cap leaves the last token of a 12-token prompt to compute.
  const std::vector<std::int64_t> twelve(a.begin(), a.begin() + 12);
  CHECK(cache.lookup(twelve, cache.block_hashes(twelve), (12 - 1) / block).size() == 2);

  SECTION("a prompt differing in one token shares only the blocks before it") {
    auto b = a;
    b[5] = 99;
    CHECK(cache.cached_blocks(b, cache.block_hashes(b), 10) == 1);
  }
  SECTION("blocks whose parent is not cached are not stored") {
    const std::vector<std::int64_t> c = {9, 9, 9, 9, 8, 8, 8, 8};
    cache.insert(c, cache.block_hashes(c), 1, span(1, 2.0f));
    CHECK(cache.cached_blocks(c, cache.block_hashes(c), 10) == 0);
    CHECK(cache.blocks() == 3);
  }
  SECTION("over budget, the deepest blocks of the least recent prefix go first") {
    const std::vector<std::int64_t> c = {9, 9, 9, 9, 8, 8, 8, 8};
    const auto hc = cache.block_hashes(c);
    cache.insert(c, hc, 0, span(1, 2.0f));
    CHECK(cache.blocks() == 3);
    CHECK(cache.bytes() == 3 * block_bytes);
    CHECK(cache.stats().evicted_blocks == 1);
    CHECK(cache.cached_blocks(a, ha, 10) == 2);  // a's third block went, its first two stay.
    CHECK(cache.cached_blocks(c, hc, 10) == 1);
    const auto got = cache.lookup(a, ha, 10);
    REQUIRE(got.size() == 2);
    CHECK(got[0].eq(1.0f).all().item<bool>());
  }
  SECTION("a new weights key empties the cache, the same one keeps it") {
    cache.bind(1);
    CHECK(cache.blocks() == 3);
    cache.bind(2);
    CHECK(cache.blocks() == 0);
    CHECK(cache.stats().invalidations == 1);
  }
  SECTION("a zero budget disables the cache") {
    tb::PrefixCache off(0, block);
    off.insert(a, ha, 0, span(3, 1.0f));
    CHECK_FALSE(off.enabled());
    CHECK(off.blocks() == 0);
  }
}

namespace {

std::vector<sdk::GenerationRequest> sharing_requests(double temperature) {
  // A long shared head (many blocks), requests that branch off it at different depths, n > 1,
  // different budgets, and one unrelated prompt.
  const std::string head =
      "Review the user's question and the corresponding response using the additive 5-point "
      "scoring system described below. ";
  std::vector<sdk::GenerationRequest> r;
  const std::vector<std::string> tails = {"Question: what is 2+2?", "Question: what is 3+3?",
                                          "Question: name a colour.", "Question: what is 2+2? Ok",
                                          "Question: what is 2+2? Ok then"};
  for (std::size_t i = 0; i < tails.size(); ++i)
    r.push_back(request("r" + std::to_string(i), head + tails[i], 100 + i, temperature,
                        6 + 5 * static_cast<int>(i), i == 1 ? 3 : 1));
  r.push_back(request("other", "Something else entirely", 7, temperature, 9, 2));
  return r;
}

void check_same_text(const std::vector<sdk::GenerationResult>& a,
                     const std::vector<sdk::GenerationResult>& b) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO("request " << a[i].request_id);
    CHECK(a[i].error == b[i].error);
    REQUIRE(a[i].completions.size() == b[i].completions.size());
    for (std::size_t k = 0; k < a[i].completions.size(); ++k) {
      INFO("sample " << k);
      CHECK(a[i].completions[k].text == b[i].completions[k].text);
      CHECK(a[i].completions[k].tokens == b[i].completions[k].tokens);
      CHECK(a[i].completions[k].finish_reason == b[i].completions[k].finish_reason);
    }
  }
}

}  // namespace

TEST_CASE("prefix cache and continuous batching do not change generated text",
          "[prefix_cache][generate]") {
  const double temperature = GENERATE(0.0, 1.0);
  INFO("temperature " << temperature);
  const auto requests = sharing_requests(temperature);
  // The reference: no cache, no continuous batching, one sequence at a time.
  auto plain = make_backend(cache_model(), {{"prefix_cache_mib", sdk::Value(0)},
                                            {"continuous_batching", sdk::Value(false)},
                                            {"max_batch_size", sdk::Value(1)}});
  const auto expected = plain->generate(requests);
  const std::int64_t batch = GENERATE(1, 2, 3, 32);
  const bool continuous = GENERATE(true, false);
  const std::int64_t block = GENERATE(4, 16);
  INFO("max_batch_size " << batch << " continuous " << continuous << " block " << block);
  auto cached = make_backend(cache_model(), {{"max_batch_size", sdk::Value(batch)},
                                             {"continuous_batching", sdk::Value(continuous)},
                                             {"prefix_block_tokens", sdk::Value(block)}});
  const auto first = cached->generate(requests);
  check_same_text(expected, first);
  const auto counters = mr::plugins::torch_backend::prefill_counters(*cached.backend);
  REQUIRE(counters.has_value());
  CHECK(counters->reused_tokens > 0);
  CHECK(counters->reused_tokens + counters->computed_tokens == counters->prompt_tokens);
  // A second call finds every prompt's blocks cached, and still gives the same text.
  const auto second = cached->generate(requests);
  check_same_text(expected, second);
  const auto after = mr::plugins::torch_backend::prefill_counters(*cached.backend);
  CHECK(after->computed_tokens - counters->computed_tokens <
        (after->prompt_tokens - counters->prompt_tokens) / 2);
}

TEST_CASE("prefix cache: training the weights invalidates it", "[prefix_cache][generate]") {
  auto b = make_backend(cache_model());
  auto fresh_requests = sharing_requests(0.0);
  const auto before = b->generate(fresh_requests);
  // Change the weights in place, as an optimizer step does.
  auto* trainable = b->trainable();
  REQUIRE(trainable != nullptr);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : trainable->parameters()) p.mul_(1.5);
  }
  const auto after = b->generate(fresh_requests);
  const auto counters = mr::plugins::torch_backend::prefill_counters(*b.backend);
  CHECK(counters->invalidations == 1);
  // The same weights without any cache give the same text as the cached backend after the step.
  auto reference = make_backend(cache_model(), {{"prefix_cache_mib", sdk::Value(0)}});
  {
    torch::NoGradGuard no_grad;
    for (auto& p : reference->trainable()->parameters()) p.mul_(1.5);
  }
  check_same_text(reference->generate(fresh_requests), after);
  bool changed = false;
  for (std::size_t i = 0; i < before.size(); ++i)
    changed = changed || before[i].completions[0].text != after[i].completions[0].text;
  CHECK(changed);
}
