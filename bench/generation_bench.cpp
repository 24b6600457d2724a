// Generation benchmark of the `torch` backend (issue 4): GEMM FLOP/s of this machine, prefill
// and decode throughput of a random-weight model in the shapes of a real config, prefix sharing
// for n samples of one prompt, and peak RSS. Not run by ctest; results go to docs/benchmarks.md.
//
//   mr_generation_bench --config bench/configs/smollm2_135m.config.json --workdir /tmp/mrbench
//                       [--threads 2] [--decode-steps 16] [--batches 1,8,32,64] [--new-tokens 32]
//   mr_generation_bench --help            # every option with its default
//
// Besides the human-readable lines, every measured workload prints one machine-readable line
// `RESULT <workload> key=value ...` (bench/side_by_side.sh reads only those).
//
// The checkpoint (float32, byte-level tokenizer) is written by init-model in a child process
// so that its buffers do not count in this process's peak RSS. The backend (n=11 workloads) is
// released before the model is loaded directly (prefill/decode workloads), so one copy of the
// weights is resident at a time.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "additive_rubric.hpp"
#include "metareward/sdk/config.hpp"
#include "metareward/sdk/host.hpp"
#include "metareward/torch_backend_plugin/torch_backend.hpp"
#include "metareward/torch_model/causal_lm.hpp"
#include "metareward/torch_model/model_config.hpp"
#include "metareward/torch_model/packed_linear.hpp"
#include "metareward/torch_model/small_batch_linear.hpp"
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
                          int verdict_tokens,
                          int response_chars,
                          int judgment_chars) {
  namespace recipe = mr::plugins::recipe;
  StageNumbers out;
  const std::string question = "Explain why the sky looks blue during the day but red at sunset.";
  std::vector<std::string> responses;
  for (int r = 0; r < k; ++r)
    responses.push_back("Response " + std::to_string(r) + ": " +
                        prompt_text(response_chars + 20 * r - 10 * (k - 1), r));
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
                          ": " + prompt_text(judgment_chars + 7 * j - 7 * (n - 1) / 2, 50 + j) +
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

/// One machine-readable line: `RESULT <workload> key=value ...` (numbers as %.6g, so that a
/// reader can float() every value; strings must not contain spaces).
class Result {
 public:
  explicit Result(std::string workload) : line_("RESULT " + std::move(workload)) {}
  template <typename T>
  Result& operator()(const char* key, const T& value) {
    line_ += ' ';
    line_ += key;
    line_ += '=';
    if constexpr (std::is_integral_v<T>) {
      line_ += std::to_string(static_cast<long long>(value));
    } else if constexpr (std::is_floating_point_v<T>) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.6g", static_cast<double>(value));
      line_ += buf;
    } else {
      line_ += std::string(value);
    }
    return *this;
  }
  void print() const {
    std::printf("%s\n", line_.c_str());
    std::fflush(stdout);
  }

 private:
  std::string line_;
};

/// x W^T + b exactly as the model's layers compute it
/// (plugins/torch_backend/model/src/decoder_layers.hpp): packed_linear for packed weights;
/// otherwise small_batch_linear for decode-sized batches, torch::mv for another single row,
/// torch::linear (gemm) for the rest.
torch::Tensor model_linear(const torch::Tensor& x,
                           const torch::Tensor& w,
                           const torch::Tensor& b,
                           bool packed) {
  if (packed) return tb::packed_linear(x, w, b);
  if (tb::small_batch_linear_applies(x, w, b)) return tb::small_batch_linear(x, w, b);
  if (x.numel() == w.size(1)) {
    auto y = torch::mv(w, x.reshape({-1}));
    if (b.defined()) y = y + b;
    return y;
  }
  return torch::linear(x, w, b);
}

/// The op model_linear() uses for `rows` rows of input to weight `w`.
const char* model_linear_op(const torch::Tensor& w, std::int64_t rows, bool packed) {
  if (packed) return "packed_linear";
  if (tb::small_batch_linear_applies(torch::zeros({rows, w.size(1)}, w.options()), w, {}))
    return "small_batch_linear";
  return rows == 1 ? "mv" : "gemm";
}

/// A weight matrix (and optional bias) of one decode-step matrix product.
struct StepWeight {
  std::string name;
  torch::Tensor weight, bias;
};

/// `parts` (tensors of the same trailing shape) as one tensor stacked along dim 0: a view when
/// they are consecutive blocks of one storage (how the model fuses q/k/v and gate/up), else a
/// copy. Sets `copied` when it had to copy. Undefined when parts[0] is (no bias).
torch::Tensor stacked(const std::vector<torch::Tensor>& parts, bool& copied) {
  if (!parts[0].defined()) return {};
  bool adjacent = true;
  std::int64_t rows = parts[0].size(0);
  for (std::size_t i = 1; i < parts.size(); ++i) {
    rows += parts[i].size(0);
    adjacent = adjacent && parts[i].is_contiguous() && parts[i - 1].is_contiguous() &&
               parts[i].is_alias_of(parts[0]) &&
               static_cast<const char*>(parts[i].data_ptr()) ==
                   static_cast<const char*>(parts[i - 1].data_ptr()) + parts[i - 1].nbytes();
  }
  if (adjacent) {
    auto sizes = parts[0].sizes().vec();
    sizes[0] = rows;
    return parts[0].detach().as_strided(sizes, parts[0].strides());
  }
  copied = true;
  std::vector<torch::Tensor> detached;
  for (const auto& p : parts) detached.push_back(p.detach());
  return torch::cat(detached, 0);
}

/// The matrix products of one decode step with the fused shapes the model runs (q/k/v as one
/// [q + 2 kv, hidden] product, gate/up as one [2 inter, hidden] product): per layer qkv,
/// o_proj, gate_up, down_proj; then lm_head (the tied embeddings when tied). The weights are
/// the model's own (views, or copies when the model's parts are not one storage).
std::vector<StepWeight> decode_step_weights(tb::CausalLM& model,
                                            const tb::ModelConfig& mc,
                                            bool& copied) {
  const auto params = model->named_parameters();
  auto get = [&](const std::string& name) -> torch::Tensor {
    const auto* p = params.find(name);
    return p ? *p : torch::Tensor();
  };
  std::vector<StepWeight> out;
  for (std::int64_t l = 0; l < mc.num_hidden_layers; ++l) {
    const std::string a = "model.layers." + std::to_string(l) + ".self_attn.";
    const std::string m = "model.layers." + std::to_string(l) + ".mlp.";
    out.push_back(
        {"qkv",
         stacked({get(a + "q_proj.weight"), get(a + "k_proj.weight"), get(a + "v_proj.weight")},
                 copied),
         stacked({get(a + "q_proj.bias"), get(a + "k_proj.bias"), get(a + "v_proj.bias")},
                 copied)});
    out.push_back({"o_proj", get(a + "o_proj.weight").detach(), get(a + "o_proj.bias")});
    out.push_back({"gate_up",
                   stacked({get(m + "gate_proj.weight"), get(m + "up_proj.weight")}, copied),
                   stacked({get(m + "gate_proj.bias"), get(m + "up_proj.bias")}, copied)});
    out.push_back({"down_proj", get(m + "down_proj.weight").detach(), get(m + "down_proj.bias")});
  }
  out.push_back(
      {"lm_head",
       (mc.tie_word_embeddings ? get("model.embed_tokens.weight") : get("lm_head.weight")).detach(),
       get("lm_head.bias")});
  for (auto& w : out)
    if (w.bias.defined()) w.bias = w.bias.detach();
  return out;
}

/// Best-of-3 wall time of one decode step's matrix products at M = batch (one untimed warm-up
/// pass first), each computed as the model does (model_linear).
double step_products_seconds(const std::vector<StepWeight>& weights,
                             std::int64_t batch,
                             bool packed) {
  std::vector<torch::Tensor> inputs;
  for (const auto& w : weights) inputs.push_back(torch::randn({batch, w.weight.size(1)}));
  double best = 1e30;
  for (int rep = 0; rep < 4; ++rep) {
    const auto t0 = Clock::now();
    for (std::size_t i = 0; i < weights.size(); ++i)
      model_linear(inputs[i], weights[i].weight, weights[i].bias, packed);
    const double t = seconds_since(t0);
    if (rep > 0) best = std::min(best, t);  // rep 0 is the warm-up.
  }
  return best;
}

/// Command-line options; each has a default shown by --help.
struct Options {
  std::string config_path;
  std::string workdir = "/tmp/mr_generation_bench";
  std::string batches = "1,8,32,64";
  int threads = 2;
  int prompt_tokens = 400;
  int new_tokens = 32;
  int decode_steps = 16;
  int prefix_cache_mib = 0;
  bool method = false;
  int method_k = 7, method_n = 11, method_meta_responses = 2, judge_tokens = 24, verdict_tokens = 8;
  // The paper's lengths: its seed's answers average 1,899 characters (method.md section 4); the
  // judge template asks for a justification of at most 100 words (~550 characters + the score).
  int response_chars = 1900, judgment_chars = 550;
};

struct OptionSpec {
  const char* name;
  const char* value;  // Metavariable.
  std::function<void(const std::string&)> set;
  std::function<std::string()> get;  // The default, as shown by --help.
  const char* help;
};

std::vector<OptionSpec> option_specs(Options& o) {
  auto str = [](std::string& s) {
    return std::make_pair([&s](const std::string& v) { s = v; }, [&s] { return s; });
  };
  auto num = [](int& n) {
    return std::make_pair([&n](const std::string& v) { n = std::stoi(v); },
                          [&n] { return std::to_string(n); });
  };
  std::vector<OptionSpec> specs;
  auto add = [&](const char* name, const char* value, auto setget, const char* help) {
    specs.push_back({name, value, setget.first, setget.second, help});
  };
  add("--config", "FILE", str(o.config_path),
      "model config.json of the shape to benchmark (required), e.g. "
      "bench/configs/smollm2_135m.config.json");
  add("--workdir", "DIR", str(o.workdir),
      "working directory; the random-weight checkpoint is written once to DIR/model and reused");
  add("--threads", "N", num(o.threads), "libtorch intra-op threads");
  add("--prompt-tokens", "N", num(o.prompt_tokens),
      "prompt length of the prefill and n=11 workloads (bytes = byte-level tokens, before the "
      "chat template)");
  add("--new-tokens", "N", num(o.new_tokens), "tokens sampled per sample in the n=11 workloads");
  add("--prefix-cache-mib", "MIB", num(o.prefix_cache_mib),
      "prefix_cache_mib of the backend the n=11 workloads use; 0 = off, so the timed calls "
      "cannot reuse the prompt blocks of the warm-up call");
  add("--decode-steps", "N", num(o.decode_steps),
      "timed greedy decode steps per batch size (after one untimed step; context 64)");
  add("--batches", "LIST", str(o.batches), "comma-separated decode batch sizes");
  add("--method-stage", "0|1",
      std::make_pair([&o](const std::string& v) { o.method = v == "1" || v == "true"; },
                     [&o] { return std::string(o.method ? "1" : "0"); }),
      "1 = run only the method-shaped judge + meta-judge stage (prefix cache off, then on; "
      "max_batch_size 32) instead of the workloads above");
  add("--method-k", "N", num(o.method_k), "method stage: responses judged");
  add("--method-n", "N", num(o.method_n), "method stage: judgments per response");
  add("--method-meta-responses", "N", num(o.method_meta_responses),
      "method stage: responses whose judgments are compared pairwise (both orders)");
  add("--response-chars", "N", num(o.response_chars),
      "method stage: mean length of the judged responses, in characters");
  add("--judgment-chars", "N", num(o.judgment_chars),
      "method stage: mean length of the compared judgments, in characters");
  add("--judge-tokens", "N", num(o.judge_tokens), "method stage: new tokens per judgment");
  add("--verdict-tokens", "N", num(o.verdict_tokens), "method stage: new tokens per verdict");
  return specs;
}

void print_usage(std::ostream& os) {
  Options shown;  // The defaults.
  os << "usage: mr_generation_bench --config CONFIG.json [options]\n\n"
        "Generation benchmark of the torch backend: GEMM FLOP/s, prefill, n=11 sampling with a\n"
        "shared prefill vs 11 requests, batched decode, peak RSS; or (--method-stage 1) a\n"
        "method-shaped judge stage. Every measured workload prints a line\n"
        "`RESULT <workload> key=value ...`. Options (--name VALUE or --name=VALUE):\n\n";
  for (const auto& s : option_specs(shown)) {
    std::string left = std::string("  ") + s.name + " " + s.value;
    if (left.size() < 32) left.resize(32, ' ');
    const std::string def = s.get();
    os << left << " " << s.help << " (default: " << (def.empty() ? "none" : def) << ")\n";
  }
  os << "  -h, --help                       this help\n";
}

/// Parses argv into `o`. Returns -1 to go on, else the exit status (0 after --help).
int parse_options(int argc, char** argv, Options& o) {
  auto specs = option_specs(o);
  for (int i = 1; i < argc; ++i) {
    std::string key = argv[i], value;
    if (key == "-h" || key == "--help") {
      print_usage(std::cout);
      return 0;
    }
    bool has_value = false;
    if (const auto eq = key.find('='); key.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = key.substr(eq + 1);
      key.resize(eq);
      has_value = true;
    }
    const OptionSpec* spec = nullptr;
    for (const auto& s : specs)
      if (key == s.name) spec = &s;
    if (spec == nullptr) {
      std::cerr << "mr_generation_bench: unknown option " << key << " (see --help)\n";
      return 2;
    }
    if (!has_value) {
      if (i + 1 >= argc) {
        std::cerr << "mr_generation_bench: " << key << " needs a value (see --help)\n";
        return 2;
      }
      value = argv[++i];
    }
    try {
      spec->set(value);
    } catch (const std::exception&) {
      std::cerr << "mr_generation_bench: bad value '" << value << "' for " << key << "\n";
      return 2;
    }
  }
  if (o.config_path.empty()) {
    std::cerr << "mr_generation_bench: --config is required\n\n";
    print_usage(std::cerr);
    return 2;
  }
  return -1;
}

std::int64_t generated_tokens(const std::vector<sdk::GenerationResult>& results) {
  std::int64_t n = 0;
  for (const auto& r : results)
    for (const auto& c : r.completions) n += c.tokens;
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (const int rc = parse_options(argc, argv, opt); rc >= 0) return rc;
  const int threads = opt.threads, prompt_tokens = opt.prompt_tokens, new_tokens = opt.new_tokens,
            decode_steps = opt.decode_steps;
  const std::string& config_path = opt.config_path;
  torch::set_num_threads(threads);
  const std::filesystem::path model_dir = std::filesystem::path(opt.workdir) / "model";
  if (std::filesystem::exists(model_dir / "model.safetensors")) {
    // A checkpoint left by a run with another --config is rewritten, not silently reused.
    const tb::ModelConfig want = tb::parse_model_config(config_path);
    const tb::ModelConfig have = tb::parse_model_config(model_dir / "config.json");
    auto shape = [](const tb::ModelConfig& c) {
      return std::vector<std::int64_t>{c.hidden_size,
                                       c.intermediate_size,
                                       c.num_hidden_layers,
                                       c.num_attention_heads,
                                       c.num_key_value_heads,
                                       c.vocab_size,
                                       c.tie_word_embeddings ? 1 : 0};
    };
    if (want.architecture_name != have.architecture_name || shape(want) != shape(have)) {
      std::printf("%s holds another shape than %s: rewriting it\n", model_dir.c_str(),
                  config_path.c_str());
      std::filesystem::remove_all(model_dir);
    }
  }
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
  const double weights_mib = params * 4 / 1048576.0;

  std::printf("model %s (%s): %.1f M parameters (%.1f M non-embedding), threads %d\n",
              config_path.c_str(), mc.architecture_name.c_str(), params / 1e6, non_embed / 1e6,
              threads);
  const double g1024 = gemm_flops(1024), g2048 = gemm_flops(2048);
  const double gemm = std::max(g1024, g2048);
  std::printf("GEMM fp32 torch::mm: 1024^3 %.1f GFLOP/s, 2048^3 %.1f GFLOP/s\n", g1024 / 1e9,
              g2048 / 1e9);
  Result("gemm")("gemm1024_gflops", g1024 / 1e9)("gemm2048_gflops", g2048 / 1e9)("gemm_gflops",
                                                                                 gemm / 1e9)
      .print();

  sdk::Table table;
  table["path"] = sdk::Value(model_dir.string());
  table["dtype"] = sdk::Value("float32");
  table["device"] = sdk::Value("cpu");
  table["chat_template"] = sdk::Value("auto");
  table["chat_format"] = sdk::Value(sdk::Array{});
  table["max_batch_size"] = sdk::Value(64);
  table["max_context"] = sdk::Value(0);
  table["adapter"] = sdk::Value("");
  table["prefix_cache_mib"] = sdk::Value(opt.prefix_cache_mib);
  table["prefix_block_tokens"] = sdk::Value(16);
  table["continuous_batching"] = sdk::Value(true);
  if (opt.method && (opt.response_chars < 40 || opt.judgment_chars < 40)) {
    std::fprintf(stderr, "--response-chars and --judgment-chars must be >= 40\n");
    return 2;
  }
  if (opt.method) {
    // The same stage with the prefix cache off, then on (a fresh backend each, max batch 32).
    table["max_batch_size"] = sdk::Value(32);
    StageNumbers numbers[2];
    for (int on = 0; on < 2; ++on) {
      table["prefix_cache_mib"] = sdk::Value(on ? 1024 : 0);
      BenchContext stage_ctx(sdk::Config("models.bench", table, 1), threads);
      auto b = tbp::make_torch_backend(stage_ctx);
      numbers[on] =
          method_stage(*b, opt.method_k, opt.method_n, opt.method_meta_responses, opt.judge_tokens,
                       opt.verdict_tokens, opt.response_chars, opt.judgment_chars);
      const auto& m = numbers[on];
      std::printf(
          "method stage, prefix cache %s: judge %d x n=%d: %lld of %lld prompt tokens "
          "computed, %.2f s; meta-judge %zu battles: %lld of %lld computed, %.2f s\n",
          on ? "on" : "off", opt.method_k, opt.method_n, static_cast<long long>(m.judge_computed),
          static_cast<long long>(m.judge_prompt), m.judge_s, m.battles,
          static_cast<long long>(m.meta_computed), static_cast<long long>(m.meta_prompt), m.meta_s);
      Result(on ? "method_cache_on" : "method_cache_off")("prefix_cache_mib", on ? 1024 : 0)(
          "k", opt.method_k)("n", opt.method_n)("judge_s", m.judge_s)(
          "judge_prompt_tokens", m.judge_prompt)("judge_computed_tokens", m.judge_computed)(
          "battles", m.battles)("meta_s", m.meta_s)("meta_prompt_tokens", m.meta_prompt)(
          "meta_computed_tokens", m.meta_computed)
          .print();
    }
    Result("method")("judge_prefill_ratio",
                     static_cast<double>(numbers[0].judge_computed) /
                         std::max<std::int64_t>(1, numbers[1].judge_computed))(
        "judge_wall_ratio", numbers[0].judge_s / numbers[1].judge_s)(
        "meta_prefill_ratio", static_cast<double>(numbers[0].meta_computed) /
                                  std::max<std::int64_t>(1, numbers[1].meta_computed))(
        "meta_wall_ratio", numbers[0].meta_s / numbers[1].meta_s)
        .print();
    return 0;
  }
  BenchContext ctx(sdk::Config("models.bench", table, 1), threads);
  const auto t_load = Clock::now();
  auto backend = tbp::make_torch_backend(ctx);
  const double load_s = seconds_since(t_load);
  std::printf("load: %.2f s, peak RSS after load %.0f MiB (weights %.0f MiB)\n", load_s,
              peak_rss_mib(), weights_mib);
  Result("load")("seconds", load_s)("peak_rss_mib", peak_rss_mib())("weights_mib", weights_mib)(
      "params_m", params / 1e6)("non_embedding_params_m", non_embed / 1e6)
      .print();

  // End to end through generate(): 11 samples of one prompt, shared prefill vs 11 requests.
  // The backend's prefix cache is --prefix-cache-mib (default 0 = off): with it on, the timed
  // calls would reuse the prompt blocks the warm-up call (same prompt) left in the cache.
  std::int64_t n11_prompt_ids = prompt_tokens;
  {
    sdk::GenerationRequest r;
    r.id = "shared";
    r.messages = {{"user", prompt_text(prompt_tokens, 0)}};
    r.sampling.temperature = 0.8;
    r.sampling.top_p = 0.95;
    r.sampling.max_new_tokens = new_tokens;
    r.n = 11;
    r.seed = 5;
    auto counters = [&] { return *tbp::prefill_counters(*backend); };
    std::printf(
        "n=11 workloads: prefix cache %s (prefix_cache_mib %d)%s\n",
        opt.prefix_cache_mib > 0 ? "ON" : "off", opt.prefix_cache_mib,
        opt.prefix_cache_mib > 0
            ? ": the timed calls may reuse the warm-up call's prompt blocks (see reused tokens)"
            : ": every timed call prefills its prompt from scratch (no reuse of the warm-up call)");
    backend->generate({r});  // Warm-up.
    const auto c0 = counters();
    auto t0 = Clock::now();
    const auto shared = backend->generate({r});
    const double t_shared = seconds_since(t0);
    const auto c1 = counters();
    const double rss_shared = peak_rss_mib();
    const std::int64_t tokens_shared = generated_tokens(shared);
    n11_prompt_ids = shared[0].prompt_tokens >= 0 ? shared[0].prompt_tokens
                                                  : c1.prompt_tokens - c0.prompt_tokens;
    std::vector<sdk::GenerationRequest> separate;
    for (int i = 0; i < 11; ++i) {
      auto one = r;
      one.id = "sep" + std::to_string(i);
      one.n = 1;
      one.seed = 100 + static_cast<std::uint64_t>(i);
      separate.push_back(one);
    }
    t0 = Clock::now();
    const auto batched = backend->generate(separate);
    const double t_batched = seconds_since(t0);
    const auto c2 = counters();
    const double rss_batched = peak_rss_mib();
    const std::int64_t tokens_batched = generated_tokens(batched);
    std::int64_t tokens_sequential = 0;
    t0 = Clock::now();
    for (const auto& one : separate)
      tokens_sequential += generated_tokens(backend->generate({one}));
    const double t_sequential = seconds_since(t0);
    const auto c3 = counters();
    std::printf(
        "n=11 prompt: %d bytes requested -> %lld prompt tokens with the chat template; %d new "
        "tokens at most per sample (temperature 0.8, top-p 0.95, stops at end of turn)\n",
        prompt_tokens, static_cast<long long>(n11_prompt_ids), new_tokens);
    std::printf(
        "n=11 samples of a %d-token prompt, %d new tokens each (%lld generated): shared prefill "
        "%.2f s; 11 requests in one call %.2f s (%.2fx, %lld generated); 11 calls %.2f s (%.2fx, "
        "%lld generated)\n",
        prompt_tokens, new_tokens, static_cast<long long>(tokens_shared), t_shared, t_batched,
        t_batched / t_shared, static_cast<long long>(tokens_batched), t_sequential,
        t_sequential / t_shared, static_cast<long long>(tokens_sequential));
    std::printf(
        "n=11 prompt tokens computed / reused from the prefix cache: shared %lld / %lld, 11 "
        "requests %lld / %lld, 11 calls %lld / %lld\n",
        static_cast<long long>(c1.computed_tokens - c0.computed_tokens),
        static_cast<long long>(c1.reused_tokens - c0.reused_tokens),
        static_cast<long long>(c2.computed_tokens - c1.computed_tokens),
        static_cast<long long>(c2.reused_tokens - c1.reused_tokens),
        static_cast<long long>(c3.computed_tokens - c2.computed_tokens),
        static_cast<long long>(c3.reused_tokens - c2.reused_tokens));
    std::printf(
        "peak RSS after the shared-prefill calls %.0f MiB, after the 11-request call (11-row "
        "prefill) %.0f MiB\n",
        rss_shared, rss_batched);
    auto n11_result = [&](const char* workload, double s, std::int64_t generated,
                          const tbp::PrefillCounters& a, const tbp::PrefillCounters& b) {
      Result{workload}("samples", 11)("prompt_tokens_requested", prompt_tokens)(
          "prompt_tokens", n11_prompt_ids)("new_tokens", new_tokens)("generated", generated)(
          "seconds", s)("tokens_per_s", s > 0 ? generated / s : 0.0)(
          "prefill_computed_tokens", b.computed_tokens - a.computed_tokens)(
          "prefix_reused_tokens", b.reused_tokens - a.reused_tokens)("prefix_cache_mib",
                                                                     opt.prefix_cache_mib)
          .print();
    };
    n11_result("n11_shared", t_shared, tokens_shared, c0, c1);
    n11_result("n11_requests", t_batched, tokens_batched, c1, c2);
    n11_result("n11_calls", t_sequential, tokens_sequential, c2, c3);
  }
  {
    // Peak RSS of the backend alone: weights + the KV cache of the 11-row prefill above.
    const double kv_bytes = 2.0 * mc.num_hidden_layers * mc.num_key_value_heads * mc.head_dim *
                            4.0 * 11 * static_cast<double>(n11_prompt_ids + new_tokens);
    const double base = params * 4 + kv_bytes;
    const double rss = peak_rss_mib();
    std::printf(
        "peak RSS (backend only, after load + generation): %.0f MiB; weights %.0f MiB + KV cache "
        "%.0f MiB = %.0f MiB -> ratio %.2f\n",
        rss, weights_mib, kv_bytes / 1048576.0, base / 1048576.0, rss * 1048576.0 / base);
    Result("backend_memory")("peak_rss_mib", rss)("weights_mib", weights_mib)(
        "kv_mib", kv_bytes / 1048576.0)("ratio", rss * 1048576.0 / base)
        .print();
  }
  // The model directly, for pure prefill/decode throughput (as the backend drives it). The
  // backend goes first, so that the weights are resident once, not twice.
  backend.reset();
  auto model = tb::load_causal_lm(model_dir);
  model->eval();
  c10::InferenceMode guard;
  // As the backend's generate() does: the weights in the packed inference layout, in place.
  const bool packed = model->pack_inference_weights();
  std::printf(
      "backend released; model loaded directly for prefill/decode (one copy of the weights "
      "resident at a time; %s)\n",
      packed ? "weights packed for inference in place, packed_linear"
             : "weights not packed on this CPU/dtype");
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
    Result("prefill")("rows", 1)("prompt_tokens", prompt_tokens)("seconds", best)(
        "tokens_per_s", tps)("model_gflops", flops / best / 1e9)("gemm_fraction",
                                                                 flops / best / gemm)
        .print();
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
    Result("prefill11_one_pass")("rows", rows)("prompt_tokens", prompt_tokens)(
        "seconds", best_single)("tokens_per_s", rows * prompt_tokens / best_single)
        .print();
    Result("prefill11_chunked")("rows", rows)("prompt_tokens", prompt_tokens)(
        "chunk_row_tokens", tb::CausalLMImpl::kPrefillChunkTokens)("seconds", best_chunked)(
        "tokens_per_s", rows * prompt_tokens / best_chunked)
        .print();
  }
  const double decode_limit = gemm / (2.0 * (non_embed + lm_head));
  std::printf("decode GEMM-bound limit: %.0f tokens/s (GEMM / (2 x %.1f M params per token))\n",
              decode_limit, (non_embed + lm_head) / 1e6);
  // The decode step's matrix products alone, with the model's own weights in the fused shapes
  // the model runs, each through the op the model uses at that batch size.
  bool weights_copied = false;
  const auto step_weights = decode_step_weights(model, mc, weights_copied);
  {
    const auto& l0 = step_weights;
    std::printf(
        "decode matrix products model: per layer (x%lld) one qkv product [%lld, %lld] "
        "(q + 2 kv fused), o_proj [%lld, %lld], one gate/up product [%lld, %lld] (2 x "
        "intermediate fused), down_proj [%lld, %lld]; then lm_head [%lld, %lld] on the last "
        "position; %s; fused weights are %s; one warm-up pass, best of 3\n",
        static_cast<long long>(mc.num_hidden_layers), static_cast<long long>(l0[0].weight.size(0)),
        static_cast<long long>(l0[0].weight.size(1)), static_cast<long long>(l0[1].weight.size(0)),
        static_cast<long long>(l0[1].weight.size(1)), static_cast<long long>(l0[2].weight.size(0)),
        static_cast<long long>(l0[2].weight.size(1)), static_cast<long long>(l0[3].weight.size(0)),
        static_cast<long long>(l0[3].weight.size(1)),
        static_cast<long long>(l0.back().weight.size(0)),
        static_cast<long long>(l0.back().weight.size(1)),
        packed ? "packed_linear over the packed weights (avx512f kernel), any number of rows"
               : ("small_batch_linear up to " + std::to_string(tb::kSmallBatchRows) +
                  " rows of float32 (" + tb::isa_name(tb::small_batch_linear_isa()) +
                  " kernel), else torch::mv for 1 row and torch::linear (gemm) above")
                     .c_str(),
        weights_copied ? "copies (the model's q/k/v or gate/up weights are not one storage in "
                         "this build; the copies add to RSS)"
                       : "views of the model's fused storage (no copy)");
  }
  for (const int batch : parse_list(opt.batches)) {
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
    const double step_s = elapsed / decode_steps;
    // What the linear layers cost at this shape, so the rest of the step is attention, norms and
    // glue: gemm_bound_fraction = products / step.
    const double linear_s = step_products_seconds(step_weights, batch, packed);
    const char* op = model_linear_op(step_weights.back().weight, batch, packed);
    std::printf(
        "decode batch %2d: %.1f ms/step, %.0f tokens/s, %.0f%% of the GEMM-bound limit "
        "(its matrix products alone, %s: %.1f ms = %.0f GFLOP/s = %.0f%% of the step)\n",
        batch, 1000.0 * step_s, tps, 100.0 * tps / decode_limit, op, 1000.0 * linear_s,
        2.0 * (non_embed + lm_head) * batch / linear_s / 1e9, 100.0 * linear_s / step_s);
    Result("decode_b" + std::to_string(batch))("batch", batch)("context", context)(
        "steps", decode_steps)("step_ms", 1000.0 * step_s)("tokens_per_s", tps)(
        "limit_fraction", tps / decode_limit)("linear_op", op)(
        "linear_isa", tb::isa_name(tb::small_batch_linear_isa()))("linear_ms", 1000.0 * linear_s)(
        "linear_gflops", 2.0 * (non_embed + lm_head) * batch / linear_s / 1e9)(
        "gemm_bound_fraction", linear_s / step_s)
        .print();
  }
  std::printf("peak RSS of the whole process: %.0f MiB\n", peak_rss_mib());
  Result("process")("peak_rss_mib", peak_rss_mib())("weights_copied", weights_copied ? 1 : 0)
      .print();
  return 0;
}
