// Batched generation of the `torch` backend: continuous batching over a running KV cache (a
// finished row's slot goes to the next waiting row, whose prefill joins the batch), prompts
// prefilled through the cross-request prefix cache in admission waves (rows that would compute
// the same uncached blocks wait one wave and reuse them), one prefill for the n samples of a
// request, per-row sampling with each row's own CPU generator, incremental detokenisation with
// stop strings.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <unordered_map>

#include "backend_impl.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/torch_model/prompt_prefill.hpp"
#include "sampling.hpp"

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
  // Prompts in token order: requests that share a prefix run together, so the prefix cache
  // holds what the next ones need (and similar prompts share a batch). Results do not depend on
  // the order (each row has its own generator), up to floating-point rounding.
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return prompts[a] < prompts[b]; });

  auto progress = ctx_.progress("generate", total_rows);
  std::vector<Row> rows;
  rows.reserve(total_rows);
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
      rows.push_back(std::move(row));
    }
  }
  if (rows.empty()) return results;
  const PrefillCounters before = counters_;
  run_rows(rows, [&](Row& row) {
    progress->advance(1, static_cast<std::uint64_t>(row.tokens.size()));
    results[row.request].completions[static_cast<std::size_t>(row.sample)] =
        std::move(row.completion);
  });
  if (ctx_.logger().enabled(sdk::LogLevel::Debug)) {
    ctx_.logger().debug("generate: " + std::to_string(rows.size()) + " sequences, prompt tokens " +
                        std::to_string(counters_.prompt_tokens - before.prompt_tokens) + " (" +
                        std::to_string(counters_.reused_tokens - before.reused_tokens) +
                        " from the prefix cache) in " +
                        std::to_string(counters_.prefill_passes - before.prefill_passes) +
                        " prefill passes; cache " + std::to_string(prefix_cache_->bytes() >> 20) +
                        " of " + std::to_string(prefix_cache_->budget_bytes() >> 20) + " MiB");
  }
  return results;
}

namespace {

constexpr std::size_t kFree = static_cast<std::size_t>(-1);

/// The running batch: a KV cache of `slots` rows advancing together, its attention mask and the
/// logits of each row's next token. A slot holds one row or is free (its contents are garbage,
/// decoded along and ignored).
struct RunningBatch {
  std::optional<tb::KVCache> cache;
  torch::Tensor mask;               // [slots, length] int64.
  torch::Tensor logits;             // [slots, V] float32.
  std::vector<std::size_t> row;     // Row index per slot, or kFree.
  std::vector<std::int64_t> start;  // First real column per occupied slot.

  std::int64_t slots() const { return static_cast<std::int64_t>(row.size()); }
  std::int64_t occupied() const {
    return std::count_if(row.begin(), row.end(), [](std::size_t r) { return r != kFree; });
  }
};

/// Places the rows of a prefilled wave into free slots of `batch`, each right-aligned at the
/// batch's current length (the batch grows on the left when a wave row is longer).
void place(RunningBatch& batch,
           tb::PrefilledPrompts& wave,
           const std::vector<std::size_t>& wave_rows,
           const std::vector<std::int64_t>& wave_segment,
           std::int64_t extra_capacity) {
  const std::int64_t t = wave.cache.length();
  std::int64_t need = 0;
  for (const auto s : wave_segment)
    need = std::max(need, t - wave.start[static_cast<std::size_t>(s)]);
  bool one_row_per_prompt = static_cast<std::int64_t>(wave_rows.size()) == batch.slots();
  for (std::size_t j = 0; j < wave_segment.size() && one_row_per_prompt; ++j)
    one_row_per_prompt = wave_segment[j] == static_cast<std::int64_t>(j);
  if (!batch.cache && one_row_per_prompt && need == t) {
    // A first wave of one row per prompt filling every slot is the batch as it is: take its
    // cache instead of copying it (the copy would hold the prompts' keys and values twice).
    batch.cache.emplace(std::move(wave.cache));
    batch.mask = wave.mask;
    batch.logits = wave.logits;
    for (std::size_t j = 0; j < wave_rows.size(); ++j) {
      batch.row[j] = wave_rows[j];
      batch.start[j] = wave.start[j];
    }
    return;
  }
  if (!batch.cache) {
    const auto& like = wave.cache.keys(0);
    batch.cache.emplace(wave.cache.num_layers(), batch.slots(), like.size(1), need + extra_capacity,
                        like.size(3), like.options());
    batch.cache->set_length(need);
    batch.mask = torch::zeros({batch.slots(), need}, wave.mask.options());
    batch.logits = torch::zeros({batch.slots(), wave.logits.size(1)}, wave.logits.options());
  }
  auto& cache = *batch.cache;
  if (need > cache.length()) {
    const std::int64_t shift = need - cache.length();
    cache.shift_right(shift);
    batch.mask =
        torch::cat({torch::zeros({batch.slots(), shift}, batch.mask.options()), batch.mask}, 1);
    for (auto& s : batch.start) s += shift;
  }
  const std::int64_t length = cache.length();
  if (cache.capacity() < length + extra_capacity)  // Geometric: admissions come often.
    cache.reserve(std::max(length + extra_capacity, cache.capacity() + cache.capacity() / 2));
  std::size_t next_slot = 0;
  for (std::size_t j = 0; j < wave_rows.size(); ++j) {
    while (batch.row[next_slot] != kFree) ++next_slot;
    const auto k = static_cast<std::int64_t>(next_slot);
    const auto s = wave_segment[j];
    const std::int64_t from = wave.start[static_cast<std::size_t>(s)], span = t - from;
    cache.copy_span(k, length - span, wave.cache, s, from, span);
    auto mask_row = batch.mask.select(0, k);
    mask_row.zero_();
    mask_row.narrow(0, length - span, span).copy_(wave.mask.select(0, s).narrow(0, from, span));
    batch.logits.select(0, k).copy_(wave.logits.select(0, s));
    batch.row[next_slot] = wave_rows[j];
    batch.start[next_slot] = length - span;
  }
}

}  // namespace

void TorchBackend::run_rows(std::vector<Row>& rows, const std::function<void(Row&)>& finished) {
  c10::InferenceMode guard;
  auto& model = inference_model();
  const auto device = model.device();
  const std::int64_t vocab = model.config().vocab_size;
  tb::PrefixCache* cache = prefix_cache_->enabled() ? prefix_cache_.get() : nullptr;
  if (cache != nullptr) {
    const auto invalidations = cache->stats().invalidations;
    cache->bind(weights_key());
    counters_.invalidations += cache->stats().invalidations - invalidations;
  }
  const std::int64_t bt = cache != nullptr ? cache->block_tokens() : 1;

  // Block hashes once per request (its n rows share the prompt).
  std::unordered_map<std::size_t, std::vector<std::uint64_t>> hashes;
  if (cache != nullptr)
    for (const auto& row : rows)
      if (!hashes.count(row.request)) hashes[row.request] = cache->block_hashes(*row.prompt);

  std::deque<std::size_t> waiting;
  for (std::size_t r = 0; r < rows.size(); ++r) waiting.push_back(r);
  RunningBatch batch;

  // One admission wave into `free_slots` slots: rows in order, except that a row whose uncached
  // blocks another request of the wave computes waits for the next wave (and finds them cached).
  auto admit_wave = [&](std::int64_t free_slots) -> std::size_t {
    std::vector<std::size_t> chosen;
    std::unordered_map<std::uint64_t, std::size_t> claimed;  // Block hash -> request.
    std::deque<std::size_t> deferred;
    while (!waiting.empty() && static_cast<std::int64_t>(chosen.size()) < free_slots) {
      const std::size_t r = waiting.front();
      const Row& row = rows[r];
      if (cache == nullptr && row.sample == 0) {
        // Without the cache a request's n samples share one prefill only if they start
        // together: wait for room for all of them (when they fit in a batch at all).
        std::int64_t n = 0;
        for (auto it = waiting.begin(); it != waiting.end() && rows[*it].request == row.request;
             ++it)
          ++n;
        const auto room = free_slots - static_cast<std::int64_t>(chosen.size());
        if (n > room && n <= batch.slots() && (batch.occupied() > 0 || !chosen.empty())) break;
      }
      waiting.pop_front();
      if (cache != nullptr) {
        const auto& h = hashes.at(row.request);
        const auto n = static_cast<std::int64_t>(row.prompt->size());
        const std::int64_t have = cache->cached_blocks(*row.prompt, h, (n - 1) / bt);
        bool conflict = false;
        for (auto b = static_cast<std::size_t>(have); b < h.size() && !conflict; ++b) {
          const auto it = claimed.find(h[b]);
          conflict = it != claimed.end() && it->second != row.request;
        }
        if (conflict) {
          deferred.push_back(r);
          continue;
        }
        for (auto b = static_cast<std::size_t>(have); b < h.size(); ++b)
          claimed.emplace(h[b], row.request);
      }
      chosen.push_back(r);
    }
    while (!deferred.empty()) {  // Back to the front, in order.
      waiting.push_front(deferred.back());
      deferred.pop_back();
    }
    if (chosen.empty()) return 0;
    // One prompt per request (consecutive rows of a request are its n samples).
    std::vector<const std::vector<std::int64_t>*> prompts;
    std::vector<std::int64_t> segment;
    std::unordered_map<std::size_t, std::int64_t> segment_of;
    std::int64_t most_new = 1;
    for (const auto r : chosen) {
      auto [it, fresh] =
          segment_of.emplace(rows[r].request, static_cast<std::int64_t>(prompts.size()));
      if (fresh) prompts.push_back(rows[r].prompt);
      segment.push_back(it->second);
      most_new = std::max(most_new, rows[r].max_new);
    }
    auto wave = tb::prefill_prompts(model, prompts, cache, most_new);
    for (const auto* p : prompts) counters_.prompt_tokens += static_cast<std::int64_t>(p->size());
    counters_.reused_tokens += wave.reused_tokens;
    counters_.computed_tokens += wave.computed_tokens;
    ++counters_.prefill_passes;
    place(batch, wave, chosen, segment, most_new);
    return chosen.size();
  };

  std::vector<float> probs;
  NucleusScratch scratch;
  std::vector<std::int64_t> next;
  while (true) {
    if (batch.occupied() == 0) {
      if (waiting.empty()) break;
      batch = RunningBatch{};
      const auto n =
          std::min<std::int64_t>(max_batch_size_, static_cast<std::int64_t>(waiting.size()));
      batch.row.assign(static_cast<std::size_t>(n), kFree);
      batch.start.assign(static_cast<std::size_t>(n), 0);
    }
    // Rows admitted here sample their first token from their prefill's logits below, with the
    // running rows; a slot freed by a finished row idles for one decode step.
    if (!waiting.empty() && (continuous_batching_ || batch.occupied() == 0)) {
      for (std::int64_t free_slots = batch.slots() - batch.occupied();
           free_slots > 0 && !waiting.empty(); free_slots = batch.slots() - batch.occupied())
        if (admit_wave(free_slots) == 0) break;
    }
    if (batch.occupied() < batch.slots() && (waiting.empty() || !continuous_batching_)) {
      // Nothing to admit now: the batch shrinks to its running rows.
      std::vector<std::int64_t> keep;
      std::vector<std::size_t> rows_kept;
      std::vector<std::int64_t> starts;
      for (std::size_t k = 0; k < batch.row.size(); ++k) {
        if (batch.row[k] == kFree) continue;
        keep.push_back(static_cast<std::int64_t>(k));
        rows_kept.push_back(batch.row[k]);
        starts.push_back(batch.start[k]);
      }
      auto index = torch::tensor(keep, torch::kLong).to(device);
      batch.cache->select_rows(index);
      batch.mask = batch.mask.index_select(0, index);
      batch.logits = batch.logits.index_select(0, index);
      batch.row = std::move(rows_kept);
      batch.start = std::move(starts);
    }

    auto host_logits = batch.logits.to(torch::kCPU, torch::kFloat32).contiguous();
    float* base = host_logits.data_ptr<float>();
    next.assign(batch.row.size(), 0);
    for (std::size_t k = 0; k < batch.row.size(); ++k) {
      if (batch.row[k] == kFree) continue;
      Row& row = rows[batch.row[k]];
      float* logits = base + static_cast<std::int64_t>(k) * vocab;
      for (const auto id : banned_ids_) logits[id] = -std::numeric_limits<float>::infinity();
      auto finish = [&](sdk::FinishReason reason) {
        row.completion.text += row.decoder->finish();
        row.completion.tokens = static_cast<std::int64_t>(row.tokens.size());
        row.completion.finish_reason = reason;
      };
      bool done = false;
      if (static_cast<std::int64_t>(row.tokens.size()) >= row.max_new) {
        finish(sdk::FinishReason::Length);
        done = true;
      } else {
        const std::int64_t token = sample_token(logits, sample_vocab_, row.temperature, row.top_k,
                                                row.top_p, row.generator, probs, scratch);
        if (std::binary_search(stop_ids_.begin(), stop_ids_.end(), token)) {
          finish(sdk::FinishReason::Stop);
          done = true;
        } else {
          auto& text = row.completion.text;
          const std::size_t before = text.size();
          row.token_start.push_back(before);
          row.tokens.push_back(token);
          text += row.decoder->push(token);
          std::size_t at = std::string::npos;
          if (row.max_stop_length > 0 && text.size() > before) {
            const std::size_t from =
                before >= row.max_stop_length - 1 ? before - (row.max_stop_length - 1) : 0;
            at = find_stop(text, from, *row.stops);
          }
          if (at != std::string::npos) {
            text.resize(at);
            // Tokens that contributed text before the stop string.
            row.completion.tokens =
                std::lower_bound(row.token_start.begin(), row.token_start.end(), at) -
                row.token_start.begin();
            row.completion.finish_reason = sdk::FinishReason::Stop;
            done = true;
          } else if (static_cast<std::int64_t>(row.tokens.size()) >= row.max_new) {
            finish(sdk::FinishReason::Length);
            done = true;
          } else {
            next[k] = token;
          }
        }
      }
      if (done) {
        row.done = true;
        finished(row);
        batch.row[k] = kFree;
      }
    }
    if (batch.occupied() == 0) continue;
    // Positions every running row masks (left behind by finished rows) go once they are half.
    auto& kv = *batch.cache;
    std::int64_t lead = kv.length();
    for (std::size_t k = 0; k < batch.row.size(); ++k)
      if (batch.row[k] != kFree) lead = std::min(lead, batch.start[k]);
    if (lead >= 64 && 2 * lead >= kv.length()) {
      kv.drop_leading(lead);
      batch.mask = batch.mask.narrow(1, lead, batch.mask.size(1) - lead).contiguous();
      for (auto& s : batch.start) s = std::max<std::int64_t>(0, s - lead);
    }
    const auto b = batch.slots();
    auto input = torch::tensor(next, torch::kLong).view({b, 1}).to(device);
    batch.mask = torch::cat({batch.mask, torch::ones({b, 1}, batch.mask.options())}, 1);
    auto positions = batch.mask.sum(1, /*keepdim=*/true) - 1;
    batch.logits =
        model.logits(model.hidden_states(input, batch.mask, positions, &kv).select(1, 0));
  }
}

}  // namespace mr::plugins::torch_backend
