/// @file prompt_prefill.hpp
/// Batched prefill of distinct prompts through a PrefixCache: each prompt's cached leading
/// blocks are copied in, only the rest goes through the model, and the new full blocks are
/// stored for later prompts.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "metareward/torch_model/causal_lm.hpp"
#include "metareward/torch_model/kv_cache.hpp"
#include "metareward/torch_model/prefix_cache.hpp"

namespace mr::torch_backend {

/// The state prefill_prompts() leaves: one row per prompt.
struct PrefilledPrompts {
  /// Keys/values of every prompt, length() = columns. Row i holds its cached prefix right-aligned
  /// in columns [0, P) and the rest of its prompt right-aligned in [P, columns), where P is the
  /// longest cached prefix of the batch; the columns between are masked.
  KVCache cache;
  torch::Tensor mask;                ///< [rows, columns] int64, 1 = a real prompt token.
  torch::Tensor logits;              ///< [rows, V] float32, the last prompt position's.
  std::vector<std::int64_t> start;   ///< First real column of each row.
  std::int64_t reused_tokens = 0;    ///< Prompt tokens taken from the prefix cache.
  std::int64_t computed_tokens = 0;  ///< Prompt tokens that went through the model.
};

/// Prefills `prompts` (each non-empty) in one batch under the caller's InferenceMode. With a
/// `prefix_cache` (nullptr or disabled = none) each prompt reuses its longest cached prefix of
/// whole blocks, always leaving at least its last token to compute (its logits are needed), and
/// its new full blocks are inserted. The cache gets `extra_capacity` more positions than the
/// prompts need (room to decode). Logits equal those of a plain prefill up to float rounding:
/// the same keys and values are attended to. Throws BackendError on an empty prompt.
PrefilledPrompts prefill_prompts(CausalLMImpl& model,
                                 const std::vector<const std::vector<std::int64_t>*>& prompts,
                                 PrefixCache* prefix_cache,
                                 std::int64_t extra_capacity,
                                 std::int64_t chunk_tokens = CausalLMImpl::kPrefillChunkTokens);

}  // namespace mr::torch_backend
