/// @file prompt_prefill.cpp
/// prefill_prompts(): cached prefixes copied in, the rest prefilled, new blocks stored.
#include "metareward/torch_model/prompt_prefill.hpp"

#include <algorithm>

#include "metareward/sdk/error.hpp"

namespace mr::torch_backend {

using mr::sdk::BackendError;

PrefilledPrompts prefill_prompts(CausalLMImpl& model,
                                 const std::vector<const std::vector<std::int64_t>*>& prompts,
                                 PrefixCache* prefix_cache,
                                 std::int64_t extra_capacity,
                                 std::int64_t chunk_tokens) {
  MR_CHECK_AS(BackendError, !prompts.empty(), "prefill_prompts: no prompts");
  PrefixCache* pc = prefix_cache != nullptr && prefix_cache->enabled() ? prefix_cache : nullptr;
  const std::int64_t bt = pc != nullptr ? pc->block_tokens() : 1;
  const auto rows = static_cast<std::int64_t>(prompts.size());
  std::vector<std::vector<std::uint64_t>> hashes(prompts.size());
  std::vector<std::vector<at::Tensor>> blocks(prompts.size());
  std::vector<std::int64_t> cached(prompts.size(), 0), rest(prompts.size(), 0);
  std::int64_t longest_cached = 0, longest_rest = 0, reused = 0;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    const auto n = static_cast<std::int64_t>(prompts[i]->size());
    MR_CHECK_AS(BackendError, n > 0, "prefill_prompts: prompt ", i, " is empty");
    if (pc != nullptr) {
      hashes[i] = pc->block_hashes(*prompts[i]);
      blocks[i] = pc->lookup(*prompts[i], hashes[i], (n - 1) / bt);
      cached[i] = static_cast<std::int64_t>(blocks[i].size()) * bt;
    }
    rest[i] = n - cached[i];
    reused += cached[i];
    longest_cached = std::max(longest_cached, cached[i]);
    longest_rest = std::max(longest_rest, rest[i]);
  }
  const std::int64_t p = longest_cached, u = longest_rest, columns = p + u;
  KVCache cache = model.make_cache(rows, columns + std::max<std::int64_t>(extra_capacity, 1));
  auto ids = torch::zeros({rows, u}, torch::kLong);
  auto mask = torch::zeros({rows, columns}, torch::kLong);
  std::vector<std::int64_t> start(prompts.size());
  {
    auto ia = ids.accessor<std::int64_t, 2>();
    auto ma = mask.accessor<std::int64_t, 2>();
    for (std::int64_t i = 0; i < rows; ++i) {
      const auto s = static_cast<std::size_t>(i);
      const auto& prompt = *prompts[s];
      if (cached[s] > 0) {
        cache.write_span(i, p - cached[s], torch::cat(blocks[s], 2));
        for (std::int64_t c = p - cached[s]; c < p; ++c) ma[i][c] = 1;
      }
      const std::int64_t pad = u - rest[s];
      for (std::int64_t k = 0; k < rest[s]; ++k) {
        ia[i][pad + k] = prompt[static_cast<std::size_t>(cached[s] + k)];
        ma[i][p + pad + k] = 1;
      }
      start[s] = cached[s] > 0 ? p - cached[s] : p + pad;
    }
  }
  const auto device = model.device();
  mask = mask.to(device);
  cache.set_length(p);
  // RoPE positions count the real tokens before each column, across the masked gap.
  auto positions = position_ids_from_mask(mask).narrow(1, p, u);
  auto logits = model.logits(model.prefill(ids.to(device), mask, positions, cache, chunk_tokens));
  if (pc != nullptr) {
    for (std::int64_t i = 0; i < rows; ++i) {
      const auto s = static_cast<std::size_t>(i);
      const auto n = static_cast<std::int64_t>(prompts[s]->size());
      const std::int64_t first = cached[s] / bt, full = n / bt;
      if (full <= first) continue;
      // The uncached part starts at column p + pad, and first * bt == cached[s].
      const std::int64_t column = p + (u - rest[s]);
      pc->insert(*prompts[s], hashes[s], first, cache.read_span(i, column, (full - first) * bt));
    }
  }
  std::int64_t computed = 0;
  for (const auto r : rest) computed += r;
  return PrefilledPrompts{std::move(cache), std::move(mask), std::move(logits),
                          std::move(start), reused,          computed};
}

}  // namespace mr::torch_backend
