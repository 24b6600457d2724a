// Batched generation of the `torch` backend: left-padded, chunked prefill of the distinct prompts
// of a chunk, KV-cache expansion to n samples per prompt (prefix sharing), per-row sampling with
// each row's own CPU generator, incremental detokenisation with stop strings, and finished rows
// leaving the batch.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>

#include "backend_impl.hpp"
#include "metareward/sdk/error.hpp"

namespace mr::plugins::torch_backend {

namespace sdk = mr::sdk;
namespace tb = ::mr::torch_backend;

/// One (request, sample) row: its settings, its generator and its state.
struct TorchBackend::Row {
  std::size_t request = 0;
  int sample = 0;
  const std::vector<std::int64_t>* prompt = nullptr;
  const std::vector<std::string>* stops = nullptr;
  std::size_t max_stop_length = 0;
  double temperature = 0.0;
  double top_p = 1.0;
  std::int64_t top_k = 0;
  std::int64_t max_new = 0;  // max_new_tokens capped by the context.
  at::Generator generator;

  std::vector<std::int64_t> tokens;
  std::vector<std::size_t> token_start;  // Text length before each token was decoded.
  std::unique_ptr<mr::tokenizer::IncrementalDecoder> decoder;
  bool done = false;
  sdk::Completion completion;
};

namespace {

/// A uniform double in [0, 1) from `generator` (53 random bits).
double uniform(at::Generator& generator) {
  std::lock_guard<std::mutex> lock(generator.mutex());
  const std::uint64_t bits = generator.get<at::CPUGeneratorImpl>()->random64();
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

/// Smallest value v such that the values >= v (the largest ones) sum to at least `mass`, by
/// quickselect on `values` (reordered). Ties with v are kept by the caller, so the kept set may
/// exceed the minimal nucleus by tied values only.
float nucleus_threshold(std::vector<float>& values, double mass) {
  std::size_t a = 0, b = values.size();
  double above = 0.0;  // Mass of the values known to be above [a, b).
  while (b - a > 1) {
    const std::size_t mid = a + (b - a) / 2;
    std::nth_element(values.begin() + static_cast<std::ptrdiff_t>(a),
                     values.begin() + static_cast<std::ptrdiff_t>(mid),
                     values.begin() + static_cast<std::ptrdiff_t>(b), std::greater<float>());
    double upper = 0.0;
    for (std::size_t i = a; i < mid; ++i) upper += values[i];
    if (above + upper >= mass) {
      b = mid;
    } else {
      above += upper;
      a = mid;
    }
  }
  return values[a];
}

/// Next token of one row from its logits [V]: greedy at temperature 0 (or top_k 1), else
/// softmax(logits / T) restricted to top-k, then to the top-p nucleus, sampled by inverse CDF in
/// index order with one uniform draw from the row's generator.
std::int64_t sample_token(const float* logits,
                          std::int64_t vocab,
                          double temperature,
                          std::int64_t top_k,
                          double top_p,
                          at::Generator& generator,
                          std::vector<float>& probs,
                          std::vector<float>& scratch) {
  const float* max_it = std::max_element(logits, logits + vocab);
  const auto argmax = static_cast<std::int64_t>(max_it - logits);
  if (temperature <= 0.0 || top_k == 1 || !std::isfinite(*max_it)) return argmax;

  probs.resize(static_cast<std::size_t>(vocab));
  const float max = *max_it;
  const auto inv_t = static_cast<float>(1.0 / temperature);
  double total = 0.0;
  for (std::int64_t i = 0; i < vocab; ++i) {
    const float p = std::exp((logits[i] - max) * inv_t);
    probs[static_cast<std::size_t>(i)] = p;
    total += p;
  }
  float threshold = 0.0f;
  if (top_k > 0 && top_k < vocab) {
    scratch.assign(probs.begin(), probs.end());
    std::nth_element(scratch.begin(), scratch.begin() + (top_k - 1), scratch.end(),
                     std::greater<float>());
    threshold = scratch[static_cast<std::size_t>(top_k - 1)];
  }
  if (top_p < 1.0) {
    scratch.clear();
    double kept = 0.0;
    for (const float p : probs) {
      if (p >= threshold) {
        scratch.push_back(p);
        kept += p;
      }
    }
    threshold = std::max(threshold, nucleus_threshold(scratch, top_p * kept));
  }
  if (threshold > 0.0f) {
    total = 0.0;
    for (const float p : probs)
      if (p >= threshold) total += p;
  }
  const double target = uniform(generator) * total;
  double cumulative = 0.0;
  std::int64_t last = argmax;
  for (std::int64_t i = 0; i < vocab; ++i) {
    const float p = probs[static_cast<std::size_t>(i)];
    if (p < threshold || p <= 0.0f) continue;
    cumulative += p;
    last = i;
    if (cumulative > target) return i;
  }
  return last;  // Rounding left the target just above the total.
}

/// Position of the earliest stop string in `text` starting at or after `from`, or npos.
std::size_t find_stop(const std::string& text,
                      std::size_t from,
                      const std::vector<std::string>& stops) {
  std::size_t best = std::string::npos;
  for (const auto& stop : stops) {
    if (stop.empty()) continue;
    const auto at = text.find(stop, from);
    if (at < best) best = at;
  }
  return best;
}

std::string check_sampling(const sdk::GenerationRequest& r) {
  const auto& s = r.sampling;
  if (r.n < 1) return "n must be >= 1, got " + std::to_string(r.n);
  if (!std::isfinite(s.temperature) || s.temperature < 0.0)
    return "temperature must be finite and >= 0, got " + std::to_string(s.temperature);
  if (!(s.top_p > 0.0 && s.top_p <= 1.0))
    return "top_p must be in (0, 1], got " + std::to_string(s.top_p);
  if (s.top_k < 0) return "top_k must be >= 0, got " + std::to_string(s.top_k);
  if (s.max_new_tokens < 0)
    return "max_new_tokens must be >= 0, got " + std::to_string(s.max_new_tokens);
  return "";
}

}  // namespace

std::vector<sdk::GenerationResult> TorchBackend::generate(
    const std::vector<sdk::GenerationRequest>& requests) {
  std::vector<sdk::GenerationResult> results(requests.size());
  std::vector<std::vector<std::int64_t>> prompts(requests.size());
  std::vector<std::vector<std::string>> stops(requests.size());
  std::vector<std::size_t> order;
  std::size_t total_rows = 0;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const auto& request = requests[i];
    results[i].request_id = request.id;
    try {
      if (auto why = check_sampling(request); !why.empty()) throw sdk::DataError(why);
      // Raw text (OpenAI completions) is encoded as written: special tokens spelled in it
      // match as added tokens, and nothing is prepended.
      prompts[i] = request.prompt_text.empty() ? encode_prompt(request.messages)
                                               : tokenizer_.encode(request.prompt_text);
      results[i].prompt_tokens = static_cast<std::int64_t>(prompts[i].size());
      const auto length = static_cast<std::int64_t>(prompts[i].size());
      if (length == 0) throw sdk::DataError("the prompt renders to no tokens");
      if (length >= max_context_) {
        throw sdk::DataError("prompt has " + std::to_string(length) +
                             " tokens, leaving no room to generate within max_context " +
                             std::to_string(max_context_));
      }
    } catch (const sdk::Error& e) {
      results[i].error = e.what();
      ctx_.logger().debug("request '" + request.id + "' failed: " + e.what());
      continue;
    }
    stops[i] = request.sampling.stop;
    stops[i].insert(stops[i].end(), template_stops_.begin(), template_stops_.end());
    results[i].completions.resize(static_cast<std::size_t>(request.n));
    order.push_back(i);
    total_rows += static_cast<std::size_t>(request.n);
  }
  // Similar prompt lengths share a chunk so that left padding stays small. Results do not
  // depend on the grouping (each row has its own generator), up to floating-point rounding.
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return prompts[a].size() < prompts[b].size();
  });

  auto progress = ctx_.progress("generate", total_rows);
  std::vector<Row> chunk;
  auto flush = [&] {
    if (chunk.empty()) return;
    generate_chunk(chunk);
    for (auto& row : chunk) {
      progress->advance(1, static_cast<std::uint64_t>(row.tokens.size()));
      results[row.request].completions[static_cast<std::size_t>(row.sample)] =
          std::move(row.completion);
    }
    chunk.clear();
  };
  for (const std::size_t i : order) {
    const auto& request = requests[i];
    std::size_t max_stop = 0;
    for (const auto& s : stops[i]) max_stop = std::max(max_stop, s.size());
    const auto room = max_context_ - static_cast<std::int64_t>(prompts[i].size());
    for (int s = 0; s < request.n; ++s) {
      Row row;
      row.request = i;
      row.sample = s;
      row.prompt = &prompts[i];
      row.stops = &stops[i];
      row.max_stop_length = max_stop;
      row.temperature = request.sampling.temperature;
      row.top_p = request.sampling.top_p;
      row.top_k = request.sampling.top_k;
      row.max_new = std::min<std::int64_t>(request.sampling.max_new_tokens, room);
      row.generator = at::make_generator<at::CPUGeneratorImpl>(
          sdk::derive_seed(request.seed, static_cast<std::uint64_t>(s)));
      row.decoder = std::make_unique<mr::tokenizer::IncrementalDecoder>(
          tokenizer_, /*skip_special_tokens=*/true);
      chunk.push_back(std::move(row));
      if (static_cast<std::int64_t>(chunk.size()) == max_batch_size_) flush();
    }
  }
  flush();
  return results;
}

void TorchBackend::generate_chunk(std::vector<Row>& rows) {
  c10::InferenceMode guard;
  auto& model = *model_;
  const auto device = model.device();
  const std::int64_t vocab = model.config().vocab_size;

  // Prefill the distinct prompts once: consecutive rows of one request form a segment.
  std::vector<std::size_t> segment_first;
  std::vector<std::int64_t> expand;  // Segment of each row.
  std::int64_t longest = 0, most_new = 0;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    if (r == 0 || rows[r].request != rows[r - 1].request) segment_first.push_back(r);
    expand.push_back(static_cast<std::int64_t>(segment_first.size()) - 1);
    longest = std::max<std::int64_t>(longest, static_cast<std::int64_t>(rows[r].prompt->size()));
    most_new = std::max(most_new, rows[r].max_new);
  }
  const auto segments = static_cast<std::int64_t>(segment_first.size());
  auto ids = torch::zeros({segments, longest}, torch::kLong);
  auto mask = torch::zeros({segments, longest}, torch::kLong);
  {
    auto ia = ids.accessor<std::int64_t, 2>();
    auto ma = mask.accessor<std::int64_t, 2>();
    for (std::int64_t s = 0; s < segments; ++s) {
      const auto& prompt = *rows[segment_first[static_cast<std::size_t>(s)]].prompt;
      const auto pad = longest - static_cast<std::int64_t>(prompt.size());
      for (std::size_t k = 0; k < prompt.size(); ++k) {
        ia[s][pad + static_cast<std::int64_t>(k)] = prompt[k];
        ma[s][pad + static_cast<std::int64_t>(k)] = 1;
      }
    }
  }
  mask = mask.to(device);
  tb::KVCache cache = model.make_cache(segments, longest + std::max<std::int64_t>(most_new, 1));
  // Chunked: a single pass over segments x longest tokens would materialise every layer's
  // attention scores and MLP activations for the whole batch at once (more than the KV cache
  // itself at 11 x 400 tokens, SmolLM2-135M shapes; docs/benchmarks.md).
  auto logits = model.logits(
      model.prefill(ids, mask, tb::position_ids_from_mask(mask), cache));  // [segments, V]
  if (static_cast<std::int64_t>(rows.size()) != segments) {
    auto index = torch::tensor(expand, torch::kLong).to(device);
    cache.select_rows(index);
    mask = mask.index_select(0, index);
    logits = logits.index_select(0, index);
  }

  std::vector<std::size_t> active(rows.size());
  for (std::size_t r = 0; r < rows.size(); ++r) active[r] = r;
  std::vector<float> probs, scratch;
  std::vector<std::int64_t> next;
  std::vector<std::int64_t> keep;
  while (!active.empty()) {
    auto host_logits = logits.to(torch::kCPU, torch::kFloat32).contiguous();
    float* base = host_logits.data_ptr<float>();
    for (std::size_t j = 0; j < active.size(); ++j)
      for (const auto id : banned_ids_)
        base[static_cast<std::int64_t>(j) * vocab + id] = -std::numeric_limits<float>::infinity();
    next.clear();
    keep.clear();
    for (std::size_t j = 0; j < active.size(); ++j) {
      Row& row = rows[active[j]];
      auto finish = [&row](sdk::FinishReason reason) {
        row.completion.text += row.decoder->finish();
        row.completion.tokens = static_cast<std::int64_t>(row.tokens.size());
        row.completion.finish_reason = reason;
        row.done = true;
      };
      if (static_cast<std::int64_t>(row.tokens.size()) >= row.max_new) {
        finish(sdk::FinishReason::Length);
        continue;
      }
      const std::int64_t token =
          sample_token(base + static_cast<std::int64_t>(j) * vocab, sample_vocab_, row.temperature,
                       row.top_k, row.top_p, row.generator, probs, scratch);
      if (std::binary_search(stop_ids_.begin(), stop_ids_.end(), token)) {
        finish(sdk::FinishReason::Stop);
        continue;
      }
      auto& text = row.completion.text;
      const std::size_t before = text.size();
      row.token_start.push_back(before);
      row.tokens.push_back(token);
      text += row.decoder->push(token);
      if (row.max_stop_length > 0 && text.size() > before) {
        const std::size_t from =
            before >= row.max_stop_length - 1 ? before - (row.max_stop_length - 1) : 0;
        const std::size_t at = find_stop(text, from, *row.stops);
        if (at != std::string::npos) {
          text.resize(at);
          // Tokens that contributed text before the stop string.
          row.completion.tokens =
              std::lower_bound(row.token_start.begin(), row.token_start.end(), at) -
              row.token_start.begin();
          row.completion.finish_reason = sdk::FinishReason::Stop;
          row.done = true;
          continue;
        }
      }
      if (static_cast<std::int64_t>(row.tokens.size()) >= row.max_new) {
        finish(sdk::FinishReason::Length);
        continue;
      }
      keep.push_back(static_cast<std::int64_t>(j));
      next.push_back(token);
    }
    if (keep.empty()) break;
    if (keep.size() != active.size()) {
      // Finished rows leave the batch: the others keep their cache rows, mask and positions.
      auto index = torch::tensor(keep, torch::kLong).to(device);
      cache.select_rows(index);
      mask = mask.index_select(0, index);
      std::vector<std::size_t> still;
      for (const auto j : keep) still.push_back(active[static_cast<std::size_t>(j)]);
      active.swap(still);
    }
    const auto batch = static_cast<std::int64_t>(active.size());
    auto input = torch::tensor(next, torch::kLong).view({batch, 1}).to(device);
    mask = torch::cat({mask, torch::ones({batch, 1}, mask.options())}, 1);
    auto positions = mask.sum(1, /*keepdim=*/true) - 1;
    logits = model.logits(model.hidden_states(input, mask, positions, &cache).select(1, 0));
  }
}

}  // namespace mr::plugins::torch_backend
