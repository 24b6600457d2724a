// Generation benchmark of the `torch` backend (issue 4): GEMM FLOP/s of this machine, prefill
// and decode throughput of a random-weight model in the shapes of a real config, prefix sharing
// for n samples of one prompt, and peak RSS. Not run by ctest; results go to docs/benchmarks.md.
//
//   mr_generation_bench --config bench/configs/smollm2_135m.config.json --workdir /tmp/mrbench
//                       [--threads 2] [--decode-steps 16] [--batches 1,8,32,64] [--new-tokens 32]
//
// The checkpoint (float32, byte-level tokenizer) is written by init-model in a child process
// so that its buffers do not count in this process's peak RSS.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "additive_rubric.hpp"
#include "metareward/sdk/config.hpp"
#include "metareward/sdk/host.hpp"
#include "metareward/torch_backend_plugin/torch_backend.hpp"
#include "metareward/torch_model/causal_lm.hpp"
#include "metareward/torch_model/model_config.hpp"
#include "pairwise_elo.hpp"

namespace sdk = mr::sdk;
namespace tb = mr::torch_backend;
namespace tbp = mr::plugins::torch_backend;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux.
}

class StderrLogger : public sdk::Logger {
 public:
  void log(sdk::LogLevel level, std::string_view m) override {
    if (level >= sdk::LogLevel::Info) std::cerr << "[backend] " << m << "\n";
  }
  bool enabled(sdk::LogLevel level) const override { return level >= sdk::LogLevel::Info; }
};

class NullProgress : public sdk::Progress {
 public:
  void advance(std::uint64_t, std::uint64_t) override {}
};

class BenchContext : public sdk::HostContext {
 public:
  BenchContext(sdk::Config config, int threads) : config_(std::move(config)), threads_(threads) {}
  sdk::Logger& logger() override { return logger_; }
  std::unique_ptr<sdk::Progress> progress(std::string_view, std::uint64_t) override {
    return std::make_unique<NullProgress>();
  }
  std::uint64_t seed() const override { return 1; }
  const std::filesystem::path& run_dir() const override { return dir_; }
  int threads() const override { return threads_; }
  const sdk::Config& config() const override { return config_; }

 private:
  sdk::Config config_;
  int threads_;
  std::filesystem::path dir_;
  StderrLogger logger_;
};

/// Best-of-3 FLOP/s of torch::mm on n x n float32 matrices.
double gemm_flops(std::int64_t n) {
  auto a = torch::randn({n, n});
  auto b = torch::randn({n, n});
  auto c = torch::mm(a, b);  // Warm-up.
  double best = 0.0;
  for (int rep = 0; rep < 3; ++rep) {
    int iters = 0;
    const auto t0 = Clock::now();
    do {
      c = torch::mm(a, b);
      ++iters;
    } while (seconds_since(t0) < 0.5);
    best = std::max(best, 2.0 * n * n * n * iters / seconds_since(t0));
  }
  return best;
}

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(std::stoi(item));
  return out;
}

/// A prompt of about `tokens` byte-level tokens (one token per ASCII byte).
std::string prompt_text(int tokens, int variant) {
  std::string text = "Variant " + std::to_string(variant) + ": ";
  const std::string filler = "the quick brown fox jumps over the lazy dog ";
  while (static_cast<int>(text.size()) < tokens) text += filler;
  text.resize(static_cast<std::size_t>(tokens));
  return text;
}

/// `text` with each "{key}" replaced by its value (one pass, as the recipe's templates do).
std::string substitute(const std::string& text,
                       const std::vector<std::pair<std::string, std::string>>& values) {
  std::string out;
  for (std::size_t i = 0; i < text.size();) {
    bool hit = false;
    for (const auto& [k, v] : values) {
      const std::string key = "{" + k + "}";
      if (text.compare(i, key.size(), key) == 0) {
        out += v;
        i += key.size();
        hit = true;
        break;
      }
    }
    if (!hit) out += text[i++];
  }
  return out;
}

/// A method-shaped judge + meta-judge stage (the recipe's real templates, K responses to one
/// prompt, N judgments each, every ordered pair of judgments of `meta_responses` responses)
/// through `backend`; prints prompt tokens computed and wall time per stage.
struct StageNumbers {
  double judge_s = 0, meta_s = 0;
  std::int64_t judge_computed = 0, meta_computed = 0, judge_prompt = 0, meta_prompt = 0;
  std::size_t battles = 0;
};

StageNumbers method_stage(sdk::ModelBackend& backend,
                          int k,
                          int n,
                          int meta_responses,
                          int judge_tokens,
                          int verdict_tokens) {
  namespace recipe = mr::plugins::recipe;
  StageNumbers out;
  const std::string question = "Explain why the sky looks blue during the day but red at sunset.";
  std::vector<std::string> responses;
  for (int r = 0; r < k; ++r)
    responses.push_back("Response " + std::to_string(r) + ": " + prompt_text(300 + 20 * r, r));
  auto counters = [&] { return *tbp::prefill_counters(backend); };
  std::vector<sdk::GenerationRequest> judge;
  for (int r = 0; r < k; ++r) {
    sdk::GenerationRequest q;
    q.id = "judge-" + std::to_string(r);
    q.messages = {{"user", substitute(recipe::kAdditive5Template,
                                      {{"instruction", question},
                                       {"response", responses[static_cast<std::size_t>(r)]}})}};
    q.sampling.temperature = 1.0;
    q.sampling.max_new_tokens = judge_tokens;
    q.n = n;
    q.seed = 100 + static_cast<std::uint64_t>(r);
    judge.push_back(q);
  }
  auto c0 = counters();
  auto t0 = Clock::now();
  backend.generate(judge);
  out.judge_s = seconds_since(t0);
  auto c1 = counters();
  out.judge_computed = c1.computed_tokens - c0.computed_tokens;
  out.judge_prompt = c1.prompt_tokens - c0.prompt_tokens;
  std::vector<sdk::GenerationRequest> meta;
  for (int r = 0; r < meta_responses; ++r) {
    std::vector<std::string> judgments;
    for (int j = 0; j < n; ++j)
      judgments.push_back("Judgment " + std::to_string(j) + " of response " + std::to_string(r) +
                          ": " + prompt_text(140 + 7 * j, 50 + j) +
                          "\nScore: " + std::to_string(j % 6));
    for (int a = 0; a < n; ++a)
      for (int b = a + 1; b < n; ++b)
        for (int order = 0; order < 2; ++order) {
          const int x = order == 0 ? a : b, y = order == 0 ? b : a;
          sdk::GenerationRequest q;
          q.id = "battle-" + std::to_string(r) + "-" + std::to_string(x) + "-" + std::to_string(y);
          q.messages = {
              {"user", substitute(recipe::kMetaJudgeTemplate,
                                  {{"instruction", question},
                                   {"response", responses[static_cast<std::size_t>(r)]},
                                   {"judgment_a", judgments[static_cast<std::size_t>(x)]},
                                   {"judgment_b", judgments[static_cast<std::size_t>(y)]}})}};
          q.sampling.temperature = 1.0;
          q.sampling.max_new_tokens = verdict_tokens;
          q.seed = 1000 + meta.size();
          meta.push_back(q);
        }
  }
  out.battles = meta.size();
  t0 = Clock::now();
  backend.generate(meta);
  out.meta_s = seconds_since(t0);
  auto c2 = counters();
  out.meta_computed = c2.computed_tokens - c1.computed_tokens;
  out.meta_prompt = c2.prompt_tokens - c1.prompt_tokens;
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path, workdir = "/tmp/mr_generation_bench", batches_arg = "1,8,32,64";
  int threads = 2, decode_steps = 16, new_tokens = 32, prompt_tokens = 400;
  bool method = false;
  int method_k = 7, method_n = 11, method_meta_responses = 2, judge_tokens = 24, verdict_tokens = 8;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--config")
      config_path = v;
    else if (k == "--workdir")
      workdir = v;
    else if (k == "--threads")
      threads = std::stoi(v);
    else if (k == "--decode-steps")
      decode_steps = std::stoi(v);
    else if (k == "--batches")
      batches_arg = v;
    else if (k == "--new-tokens")
      new_tokens = std::stoi(v);
    else if (k == "--prompt-tokens")
      prompt_tokens = std::stoi(v);
    else if (k == "--method-stage")
      method = v == "1" || v == "true";
    else if (k == "--method-k")
      method_k = std::stoi(v);
    else if (k == "--method-n")
      method_n = std::stoi(v);
    else if (k == "--method-meta-responses")
      method_meta_responses = std::stoi(v);
    else if (k == "--judge-tokens")
      judge_tokens = std::stoi(v);
    else if (k == "--verdict-tokens")
      verdict_tokens = std::stoi(v);
    else {
      std::cerr << "unknown option " << k << "\n";
      return 2;
    }
  }
  if (config_path.empty()) {
    std::cerr << "usage: mr_generation_bench --config CONFIG.json [--workdir DIR] [--threads N] "
                 "[--decode-steps N] [--batches 1,8,32,64] [--new-tokens N] "
                 "[--prompt-tokens N] [--method-stage 1 [--method-k 7] [--method-n 11] "
                 "[--method-meta-responses 2] [--judge-tokens 24] [--verdict-tokens 8]]\n";
    return 2;
  }
  torch::set_num_threads(threads);
  const std::filesystem::path model_dir = std::filesystem::path(workdir) / "model";
  if (!std::filesystem::exists(model_dir / "model.safetensors")) {
    const pid_t pid = fork();
    if (pid == 0) {
      std::ostringstream out, err;
      int rc = 1;
      try {
        rc = tbp::init_model_command(
            {"--config", config_path, "--out", model_dir.string(), "--seed", "1"}, out, err);
      } catch (const std::exception& e) {
        std::cerr << e.what() << "\n";
      }
      std::cerr << out.str() << err.str();
      _exit(rc);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::cerr << "init-model failed\n";
      return 1;
    }
  }
  const tb::ModelConfig mc = tb::parse_model_config(model_dir / "config.json");
  const double params = static_cast<double>(tb::parameter_count(mc));
  const double embed = static_cast<double>(mc.vocab_size * mc.hidden_size);
  const double non_embed = params - (mc.tie_word_embeddings ? embed : 2 * embed);
  const double lm_head = embed;

  std::printf("model %s (%s): %.1f M parameters (%.1f M non-embedding), threads %d\n",
              config_path.c_str(), mc.architecture_name.c_str(), params / 1e6, non_embed / 1e6,
              threads);
  const double g1024 = gemm_flops(1024), g2048 = gemm_flops(2048);
  const double gemm = std::max(g1024, g2048);
  std::printf("GEMM fp32 torch::mm: 1024^3 %.1f GFLOP/s, 2048^3 %.1f GFLOP/s\n", g1024 / 1e9,
              g2048 / 1e9);

  sdk::Table table;
  table["path"] = sdk::Value(model_dir.string());
  table["dtype"] = sdk::Value("float32");
  table["device"] = sdk::Value("cpu");
  table["chat_template"] = sdk::Value("auto");
  table["chat_format"] = sdk::Value(sdk::Array{});
  table["max_batch_size"] = sdk::Value(64);
  table["max_context"] = sdk::Value(0);
  table["adapter"] = sdk::Value("");
  table["prefix_cache_mib"] = sdk::Value(1024);
  table["prefix_block_tokens"] = sdk::Value(16);
  table["continuous_batching"] = sdk::Value(true);
  if (method) {
    // The same stage with the prefix cache off, then on (a fresh backend each, max batch 32).
    table["max_batch_size"] = sdk::Value(32);
    StageNumbers numbers[2];
    for (int on = 0; on < 2; ++on) {
      table["prefix_cache_mib"] = sdk::Value(on ? 1024 : 0);
      BenchContext stage_ctx(sdk::Config("models.bench", table, 1), threads);
      auto b = tbp::make_torch_backend(stage_ctx);
      numbers[on] =
          method_stage(*b, method_k, method_n, method_meta_responses, judge_tokens, verdict_tokens);
      const auto& m = numbers[on];
      std::printf(
          "method stage, prefix cache %s: judge %d x n=%d: %lld of %lld prompt tokens "
          "computed, %.2f s; meta-judge %zu battles: %lld of %lld computed, %.2f s\n",
          on ? "on" : "off", method_k, method_n, static_cast<long long>(m.judge_computed),
          static_cast<long long>(m.judge_prompt), m.judge_s, m.battles,
          static_cast<long long>(m.meta_computed), static_cast<long long>(m.meta_prompt), m.meta_s);
      std::fflush(stdout);
    }
    std::printf(
        "RESULT method_judge_prefill_ratio=%.2f method_judge_wall_ratio=%.2f "
        "method_meta_prefill_ratio=%.2f method_meta_wall_ratio=%.2f\n",
        static_cast<double>(numbers[0].judge_computed) /
            std::max<std::int64_t>(1, numbers[1].judge_computed),
        numbers[0].judge_s / numbers[1].judge_s,
        static_cast<double>(numbers[0].meta_computed) /
            std::max<std::int64_t>(1, numbers[1].meta_computed),
        numbers[0].meta_s / numbers[1].meta_s);
    return 0;
  }
  BenchContext ctx(sdk::Config("models.bench", table, 1), threads);
  const auto t_load = Clock::now();
  auto backend = tbp::make_torch_backend(ctx);
  std::printf("load: %.2f s, peak RSS after load %.0f MiB (weights %.0f MiB)\n",
              seconds_since(t_load), peak_rss_mib(), params * 4 / 1048576.0);

  // End to end through generate(): 11 samples of one prompt, shared prefill vs 11 requests.
  {
    sdk::GenerationRequest r;
    r.id = "shared";
    r.messages = {{"user", prompt_text(prompt_tokens, 0)}};
    r.sampling.temperature = 0.8;
    r.sampling.top_p = 0.95;
    r.sampling.max_new_tokens = new_tokens;
    r.n = 11;
    r.seed = 5;
    backend->generate({r});  // Warm-up.
    auto t0 = Clock::now();
    const auto shared = backend->generate({r});
    const double t_shared = seconds_since(t0);
    const double rss_shared = peak_rss_mib();
    std::int64_t tokens = 0;
    for (const auto& c : shared[0].completions) tokens += c.tokens;
    std::vector<sdk::GenerationRequest> separate;
    for (int i = 0; i < 11; ++i) {
      auto one = r;
      one.id = "sep" + std::to_string(i);
      one.n = 1;
      one.seed = 100 + static_cast<std::uint64_t>(i);
      separate.push_back(one);
    }
    t0 = Clock::now();
    backend->generate(separate);
    const double t_batched = seconds_since(t0);
    const double rss_batched = peak_rss_mib();
    t0 = Clock::now();
    for (const auto& one : separate) backend->generate({one});
    const double t_sequential = seconds_since(t0);
    std::printf(
        "n=11 samples of a %d-token prompt, %d new tokens each (%lld generated): shared prefill "
        "%.2f s; 11 requests in one call %.2f s (%.2fx); 11 calls %.2f s (%.2fx)\n",
        prompt_tokens, new_tokens, static_cast<long long>(tokens), t_shared, t_batched,
        t_batched / t_shared, t_sequential, t_sequential / t_shared);
    std::printf(
        "peak RSS after the shared-prefill calls %.0f MiB, after the 11-request call (11-row "
        "prefill) %.0f MiB\n",
        rss_shared, rss_batched);
  }
  {
    // Peak RSS of the backend alone: weights + the KV cache of the 11-row chunk above.
    const double kv_bytes = 2.0 * mc.num_hidden_layers * mc.num_key_value_heads * mc.head_dim *
                            4.0 * 11 * (prompt_tokens + 32 + new_tokens);
    const double base = params * 4 + kv_bytes;
    std::printf(
        "peak RSS (backend only, after load + generation): %.0f MiB; weights %.0f MiB + KV cache "
        "%.0f MiB = %.0f MiB -> ratio %.2f\n",
        peak_rss_mib(), params * 4 / 1048576.0, kv_bytes / 1048576.0, base / 1048576.0,
        peak_rss_mib() * 1048576.0 / base);
  }
  // The model directly, for pure prefill/decode throughput (as the backend drives it).
  auto model = tb::load_causal_lm(model_dir);
  model->eval();
  c10::InferenceMode guard;
  {
    // Prefill: one prompt of prompt_tokens tokens through prefill() (chunked like generate()),
    // only the last position projected.
    auto ids = torch::randint(0, 256, {1, prompt_tokens}, torch::kLong);
    auto mask = torch::ones({1, prompt_tokens}, torch::kLong);
    auto pos = tb::position_ids_from_mask(mask);
    double best = 1e30;
    for (int rep = 0; rep < 3; ++rep) {
      auto cache = model->make_cache(1, prompt_tokens + 1);
      const auto t0 = Clock::now();
      auto logits = model->logits(model->prefill(ids, mask, pos, cache));
      best = std::min(best, seconds_since(t0));
    }
    const double tps = prompt_tokens / best;
    const double flops = 2.0 * non_embed * prompt_tokens + 2.0 * lm_head;
    std::printf(
        "prefill %d tokens: %.3f s, %.0f tokens/s, %.1f GFLOP/s model (non-embedding), "
        "%.0f%% of GEMM; issue formula 2*params*tokens: %.1f GFLOP/s (%.0f%%)\n",
        prompt_tokens, best, tps, flops / best / 1e9, 100.0 * flops / best / gemm,
        2.0 * params * prompt_tokens / best / 1e9,
        100.0 * 2.0 * params * prompt_tokens / best / gemm);
  }
  {
    // Batched prefill of 11 distinct prompts (as generate() does for 11 requests): one pass over
    // all 11 x prompt_tokens tokens vs prefill()'s chunks of kPrefillChunkTokens row-tokens.
    const std::int64_t rows = 11;
    auto ids = torch::randint(0, 256, {rows, prompt_tokens}, torch::kLong);
    auto mask = torch::ones({rows, prompt_tokens}, torch::kLong);
    auto pos = tb::position_ids_from_mask(mask);
    double best_single = 1e30, best_chunked = 1e30;
    for (int rep = 0; rep < 2; ++rep) {
      auto cache = model->make_cache(rows, prompt_tokens + 1);
      auto t0 = Clock::now();
      model->logits(model->hidden_states(ids, mask, pos, &cache).select(1, prompt_tokens - 1));
      best_single = std::min(best_single, seconds_since(t0));
      cache.reset();
      t0 = Clock::now();
      model->logits(model->prefill(ids, mask, pos, cache));
      best_chunked = std::min(best_chunked, seconds_since(t0));
    }
    std::printf(
        "prefill %lld x %d tokens: one pass %.2f s (%.0f tokens/s), chunks of %lld row-tokens "
        "%.2f s (%.0f tokens/s)\n",
        static_cast<long long>(rows), prompt_tokens, best_single,
        rows * prompt_tokens / best_single,
        static_cast<long long>(tb::CausalLMImpl::kPrefillChunkTokens), best_chunked,
        rows * prompt_tokens / best_chunked);
  }
  const double decode_limit = gemm / (2.0 * (non_embed + lm_head));
  std::printf("decode GEMM-bound limit: %.0f tokens/s (GEMM / (2 x %.1f M params per token))\n",
              decode_limit, (non_embed + lm_head) / 1e6);
  for (const int batch : parse_list(batches_arg)) {
    const int context = 64;  // Short prompts: decode dominates.
    auto ids = torch::randint(0, 256, {batch, context}, torch::kLong);
    auto mask = torch::ones({batch, context}, torch::kLong);
    auto cache = model->make_cache(batch, context + decode_steps + 2);
    auto logits = model->logits(model->prefill(ids, mask, tb::position_ids_from_mask(mask), cache));
    auto next = logits.argmax(-1).view({batch, 1});
    // One untimed step, then decode_steps timed steps.
    double elapsed = 0.0;
    for (int step = 0; step <= decode_steps; ++step) {
      const auto t0 = Clock::now();
      mask = torch::cat({mask, torch::ones({batch, 1}, torch::kLong)}, 1);
      auto positions = mask.sum(1, true) - 1;
      logits = model->logits(model->hidden_states(next, mask, positions, &cache).select(1, 0));
      next = logits.argmax(-1).view({batch, 1});
      if (step > 0) elapsed += seconds_since(t0);
    }
    const double tps = batch * decode_steps / elapsed;
    // The same step's matrix products alone (every 2-D weight, at M = batch): what the linear
    // layers cost at this shape, so the rest of the step is attention, norms and glue.
    double linear_s = 0.0;
    {
      std::vector<std::pair<torch::Tensor, torch::Tensor>> products;
      for (const auto& item : model->named_parameters()) {
        const auto& w = item.value();
        if (w.dim() != 2) continue;
        if (item.key() == "model.embed_tokens.weight" && !mc.tie_word_embeddings) continue;
        products.emplace_back(torch::randn({batch, w.size(1)}), w);
      }
      for (int rep = 0; rep < 3; ++rep) {
        const auto t0 = Clock::now();
        for (const auto& [x, w] : products) torch::mm(x, w.t());
        const double t = seconds_since(t0);
        linear_s = rep == 0 ? t : std::min(linear_s, t);
      }
    }
    std::printf(
        "decode batch %2d: %.1f ms/step, %.0f tokens/s, %.0f%% of the GEMM-bound limit "
        "(its matrix products alone: %.1f ms = %.0f GFLOP/s)\n",
        batch, 1000.0 * elapsed / decode_steps, tps, 100.0 * tps / decode_limit, 1000.0 * linear_s,
        2.0 * (non_embed + lm_head) * batch / linear_s / 1e9);
  }

  return 0;
}
