/// @file training_bench.cpp
/// Training throughput and memory benchmark (issue 5; results in docs/benchmarks.md).
///
///   mr_training_bench gemm [--threads N]
///       fp32 and bf16 GEMM FLOP/s of torch::mm (best of several repetitions per shape; the
///       RESULT line is the best over the shapes, the peak MFU is measured against).
///   mr_training_bench dpo|sft [--threads N] [--pairs P] [--prompt T] [--response T]
///                             [--warmup S] [--steps S] [--config config.json]
///                             [--dtype float32|bfloat16] [--micro M] [--lora R]
///                             [--checkpointing 0|1] [--share-prompt 0|1]
///       DPO (cached reference log-probs, one model resident) or SFT on the same sequences,
///       through the SDK's shared loop (train_preference / train_sft); prints tokens/s, model
///       FLOPs/s and peak RSS. Run each mode in its own process so that peak RSS is its own.
///       --dtype bfloat16 trains bf16 parameters with fp32 master weights; --lora R trains a
///       rank-R adapter (alpha 2R) on every linear layer instead; --checkpointing 1 recomputes
///       each decoder layer in backward; --micro M splits each step into micro-batches of M;
///       --share-prompt 0 puts chosen and rejected in separate rows instead of one packed row
///       per pair that computes the prompt once (the trainers' default, share_prompt = true).
///   mr_training_bench breakdown [same options]
///       One DPO step built from the SDK blocks (collate, sequence_logps, dpo_loss, AdamW) with
///       the time of each phase: decoder forward, lm_head + loss, backward, optimizer step.
///
/// The model is the config's shape with deterministic random weights (CausalLM::initialize), in
/// float32 (or --dtype) on the CPU. Token ids come from a byte-level stand-in tokenizer (one id per
/// byte), so no tokenizer files are needed.
#include <sys/resource.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "metareward/torch_model/causal_lm.hpp"
#include "metareward/torch_model/model_config.hpp"
#include "metareward/training/training.hpp"

namespace {

using Clock = std::chrono::steady_clock;
namespace training = mr::training;
namespace tb = mr::torch_backend;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

/// Peak resident set size of this process so far, in MiB.
double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux.
}

/// Current resident set size, in MiB (from /proc/self/statm).
double current_rss_mib() {
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0;
  long pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) /
         (1024.0 * 1024.0);
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string one;
  in >> one;
  return one;
}

struct Args {
  std::string mode;
  int threads = 2;
  int pairs = 8;
  int prompt = 128;
  int response = 128;
  int warmup = 1;
  int steps = 2;
  std::string dtype = "float32";
  int micro = 0;  // 0 = the whole batch in one micro-batch.
  int lora = 0;   // LoRA rank; 0 = full fine-tuning.
  bool checkpointing = false;
  bool share_prompt = true;
  std::string config = std::string(MR_BENCH_CONFIG_DIR) + "/smollm2_135m.config.json";
};

Args parse_args(int argc, char** argv) {
  if (argc < 2) throw std::invalid_argument("usage: mr_training_bench gemm|dpo|sft|breakdown ...");
  Args a;
  a.mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string key = argv[i];
    if (i + 1 >= argc) throw std::invalid_argument("missing value after " + key);
    const std::string value = argv[++i];
    if (key == "--threads")
      a.threads = std::stoi(value);
    else if (key == "--pairs")
      a.pairs = std::stoi(value);
    else if (key == "--prompt")
      a.prompt = std::stoi(value);
    else if (key == "--response")
      a.response = std::stoi(value);
    else if (key == "--warmup")
      a.warmup = std::stoi(value);
    else if (key == "--steps")
      a.steps = std::stoi(value);
    else if (key == "--config")
      a.config = value;
    else if (key == "--dtype")
      a.dtype = value;
    else if (key == "--micro")
      a.micro = std::stoi(value);
    else if (key == "--lora")
      a.lora = std::stoi(value);
    else if (key == "--checkpointing")
      a.checkpointing = value == "1";
    else if (key == "--share-prompt")
      a.share_prompt = value == "1";
    else
      throw std::invalid_argument("unknown option " + key);
  }
  return a;
}

// ---------------------------------------------------------------------------------------------
// GEMM

/// Best FLOP/s of torch::mm over `reps` repetitions of [m, k] x [k, n].
double gemm_flops(std::int64_t m,
                  std::int64_t k,
                  std::int64_t n,
                  int reps,
                  torch::Dtype dtype = torch::kFloat32) {
  torch::NoGradGuard no_grad;
  const auto a = torch::randn({m, k}).to(dtype);
  const auto b = torch::randn({k, n}).to(dtype);
  auto c = torch::mm(a, b);  // Warm-up (thread pool, BLAS buffers).
  double best = 0.0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    c = torch::mm(a, b);
    const double s = seconds_since(t0);
    best = std::max(best, 2.0 * static_cast<double>(m * k * n) / s);
  }
  return best;
}

int run_gemm(const Args& args) {
  std::printf("%s\n", at::show_config().c_str());
  struct Shape {
    std::int64_t m, k, n;
    const char* what;
  };
  const Shape shapes[] = {
      {2048, 2048, 2048, "square"},
      {4096, 1024, 1024, "tall"},
      {4096, 576, 1536, "smollm2 mlp up (4096 tokens)"},
      {4096, 1536, 576, "smollm2 mlp down (4096 tokens)"},
      {4096, 576, 8192, "smollm2 lm_head slice (4096 tokens x 8192 vocab)"},
  };
  double reference = 0.0;
  for (const auto& s : shapes) {
    const double f = gemm_flops(s.m, s.k, s.n, 6);
    reference = std::max(reference, f);
    std::printf("gemm %lldx%lldx%lld (%s): %.1f GFLOP/s (threads %d, load %s)\n",
                static_cast<long long>(s.m), static_cast<long long>(s.k),
                static_cast<long long>(s.n), s.what, f / 1e9, args.threads, load_average().c_str());
  }
  // bf16 GEMM (oneDNN) is the peak a bf16 model's MFU is measured against.
  double bf16 = 0.0;
  for (const auto& s : shapes) {
    const double f = gemm_flops(s.m, s.k, s.n, 6, torch::kBFloat16);
    bf16 = std::max(bf16, f);
    std::printf("gemm bf16 %lldx%lldx%lld (%s): %.1f GFLOP/s (load %s)\n",
                static_cast<long long>(s.m), static_cast<long long>(s.k),
                static_cast<long long>(s.n), s.what, f / 1e9, load_average().c_str());
  }
  std::printf("RESULT gemm_gflops=%.1f gemm_bf16_gflops=%.1f (best over the shapes) load=%s\n",
              reference / 1e9, bf16 / 1e9, load_average().c_str());
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Model adapter

/// sdk::TrainableModel over a CausalLM with a byte-level stand-in tokenizer.
class BenchModel : public mr::sdk::TrainableModel {
 public:
  explicit BenchModel(tb::CausalLM model) : model_(std::move(model)) {}

  torch::Tensor forward(const torch::Tensor& input_ids,
                        const torch::Tensor& attention_mask) override {
    // Right padding: positions 0..n-1 on the real tokens, exactly what the mask cumsum gives.
    return model_->forward(input_ids, attention_mask, tb::position_ids_from_mask(attention_mask));
  }

  // As the torch backend's training view does: blocked log-probs without [B, T, V] logits, and
  // packed shared-prompt rows.
  torch::Tensor target_logprobs(const torch::Tensor& input_ids,
                                const torch::Tensor& attention_mask,
                                const torch::Tensor& target_rows,
                                const torch::Tensor& target_ids) override {
    return model_->target_logprobs(input_ids, attention_mask,
                                   tb::position_ids_from_mask(attention_mask), target_rows,
                                   target_ids);
  }
  bool supports_shared_prefix() const override { return true; }
  torch::Tensor branched_target_logprobs(const torch::Tensor& input_ids,
                                         const torch::Tensor& branch_ids,
                                         const torch::Tensor& position_ids,
                                         const torch::Tensor& target_rows,
                                         const torch::Tensor& target_ids) override {
    return model_->branched_target_logprobs(input_ids, branch_ids, position_ids, target_rows,
                                            target_ids);
  }

  std::vector<torch::Tensor> parameters() override { return model_->trainable_parameters(); }

  mr::sdk::TokenizedExample tokenize(const mr::sdk::Conversation& prompt,
                                     const std::string& response,
                                     bool /*response_complete*/) const override {
    mr::sdk::TokenizedExample out;
    for (const auto& message : prompt) append_bytes(message.content, out.prompt_ids);
    append_bytes(response, out.response_ids);
    return out;
  }

  void set_training(bool training) override { model_->train(training); }

  void save(const std::filesystem::path& dir) const override { tb::save_checkpoint(*model_, dir); }

  bool supports_lora() const override { return true; }
  void add_lora(const mr::sdk::LoraSettings& s) override {
    model_->add_lora(tb::to_lora_config(s), s.seed);
  }
  void set_lora_enabled(bool enabled) override { model_->set_lora_enabled(enabled); }
  void save_lora(const std::filesystem::path& dir) const override {
    tb::save_lora_adapter(*model_, dir, "bench");
  }
  void merge_lora() override { model_->merge_lora(); }
  void remove_lora() override { model_->remove_lora(); }
  bool set_gradient_checkpointing(bool enabled) override {
    model_->set_gradient_checkpointing(enabled);
    return true;
  }

  tb::CausalLM& model() { return model_; }

 private:
  /// One id per byte, spread over the vocabulary by position so sequences look like text.
  void append_bytes(const std::string& text, std::vector<std::int64_t>& ids) const {
    const auto vocab = static_cast<std::uint64_t>(model_->config().vocab_size);
    for (unsigned char c : text) {
      const std::uint64_t pos = ids.size();
      ids.push_back(static_cast<std::int64_t>((c * 2654435761ULL + pos * 40503ULL) % vocab));
    }
  }

  tb::CausalLM model_;
};

/// `n` printable pseudo-random bytes from `rng`.
std::string random_text(std::mt19937_64& rng, int n) {
  std::string s(static_cast<std::size_t>(n), ' ');
  for (auto& c : s) c = static_cast<char>('!' + rng() % 94);
  return s;
}

std::vector<mr::sdk::PreferencePair> make_pairs(const Args& args) {
  std::mt19937_64 rng(1234);
  std::vector<mr::sdk::PreferencePair> pairs;
  for (int i = 0; i < args.pairs; ++i) {
    mr::sdk::PreferencePair p;
    p.id = "pair-" + std::to_string(i);
    mr::sdk::ChatMessage m;
    m.role = "user";
    m.content = random_text(rng, args.prompt);
    p.prompt.push_back(m);
    p.chosen = random_text(rng, args.response);
    p.rejected = random_text(rng, args.response);
    pairs.push_back(std::move(p));
  }
  return pairs;
}

struct Loaded {
  std::unique_ptr<BenchModel> model;
  double params = 0;
  double load_seconds = 0;
};

Loaded load_model(const Args& args) {
  const auto t0 = Clock::now();
  tb::ModelConfig config = tb::parse_model_config(args.config);
  const torch::Dtype dtype = args.dtype == "bfloat16" ? torch::kBFloat16 : torch::kFloat32;
  if (args.dtype != "float32" && args.dtype != "bfloat16")
    throw std::invalid_argument("--dtype must be float32 or bfloat16");
  tb::CausalLM lm(config, tb::ModelOptions{dtype, torch::kCPU});
  lm->initialize(7);
  Loaded out;
  for (const auto& p : lm->parameters()) out.params += static_cast<double>(p.numel());
  out.model = std::make_unique<BenchModel>(std::move(lm));
  out.load_seconds = seconds_since(t0);
  return out;
}

training::TrainingOptions bench_options(const Args& args, int examples) {
  training::TrainingOptions o;
  o.threads = args.threads;
  o.batch_size = examples;
  // One forward/backward over the whole batch per step unless --micro splits it.
  o.micro_batch_size = args.micro > 0 ? std::min(args.micro, examples) : examples;
  o.lora = args.lora > 0;
  o.lora_r = std::max(args.lora, 1);
  o.lora_alpha = 2.0 * o.lora_r;
  o.lora_dropout = 0.0;
  o.gradient_checkpointing = args.checkpointing;
  o.share_prompt = args.share_prompt;
  o.epochs = args.warmup + args.steps;  // One step per epoch.
  o.learning_rate = 1e-5;
  o.warmup_steps = 0;
  o.lr_schedule = training::LrSchedule::Constant;
  o.max_length = args.prompt + args.response;
  return o;
}

// ---------------------------------------------------------------------------------------------
// DPO / SFT through the shared loop

int run_training(const Args& args) {
  torch::set_num_threads(args.threads);
  Loaded loaded = load_model(args);
  const double rss_model = current_rss_mib();
  const auto pairs = make_pairs(args);
  const bool dpo = args.mode == "dpo";
  const int examples = dpo ? args.pairs : 2 * args.pairs;  // SFT: the same 2P sequences.
  const training::TrainingOptions options = bench_options(args, examples);

  std::vector<double> step_seconds;
  std::vector<double> step_tokens;
  mr::sdk::TrainingJob job;
  job.on_step = [&](const mr::sdk::StepMetrics& m) {
    const double tps = m.values.at("tokens_per_s");
    std::printf("step %lld: loss %.4f tokens/s %.1f (load %s)\n", static_cast<long long>(m.step),
                m.values.at("loss"), tps, load_average().c_str());
    std::fflush(stdout);
    step_tokens.push_back(tps);
  };

  double reference_seconds = 0.0;
  const auto t0 = Clock::now();
  if (dpo) {
    training::PreparedPairs prepared = training::prepare_pairs(*loaded.model, pairs, options);
    const auto tr = Clock::now();
    training::compute_reference_logps(*loaded.model, prepared, options);
    reference_seconds = seconds_since(tr);
    training::train_prepared_pairs(*loaded.model, std::move(prepared), training::dpo_loss(0.1),
                                   options, job);
  } else {
    std::vector<training::SftExample> sft;
    for (const auto& p : pairs) {
      sft.push_back({p.id + "-c", p.prompt, p.chosen});
      sft.push_back({p.id + "-r", p.prompt, p.rejected});
    }
    training::train_sft(*loaded.model, sft, options, job);
  }
  const double total_seconds = seconds_since(t0);

  // Throughput over the measured steps: harmonic mean of per-step tokens/s (= total tokens over
  // total time, every step having the same token count).
  double inv = 0.0;
  int measured = 0;
  for (std::size_t i = static_cast<std::size_t>(args.warmup); i < step_tokens.size(); ++i) {
    inv += 1.0 / step_tokens[i];
    ++measured;
  }
  const double tokens_per_s = measured > 0 ? measured / inv : 0.0;
  const double tokens_per_step = 2.0 * args.pairs * (args.prompt + args.response);
  std::printf(
      "RESULT mode=%s dtype=%s lora=%d checkpointing=%d share_prompt=%d micro=%d params=%.0f "
      "tokens_per_step=%.0f "
      "threads=%d load_s=%.1f ref_pass_s=%.1f "
      "total_s=%.1f tokens_per_s=%.1f model_gflops=%.1f rss_after_model_mib=%.0f "
      "peak_rss_mib=%.0f load=%s\n",
      args.mode.c_str(), args.dtype.c_str(), args.lora, args.checkpointing ? 1 : 0,
      options.share_prompt ? 1 : 0, options.micro_batch_size, loaded.params, tokens_per_step,
      args.threads, loaded.load_seconds, reference_seconds, total_seconds, tokens_per_s,
      6.0 * loaded.params * tokens_per_s / 1e9, rss_model, peak_rss_mib(), load_average().c_str());
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Phase breakdown of one DPO step

int run_breakdown(const Args& args) {
  torch::set_num_threads(args.threads);
  Loaded loaded = load_model(args);
  BenchModel& model = *loaded.model;
  const auto pairs = make_pairs(args);
  const training::TrainingOptions options = bench_options(args, args.pairs);
  training::PreparedPairs prepared = training::prepare_pairs(model, pairs, options);
  training::compute_reference_logps(model, prepared, options);

  std::vector<const mr::sdk::TokenizedExample*> seqs;
  for (const auto& p : prepared.pairs) seqs.push_back(&p.chosen);
  for (const auto& p : prepared.pairs) seqs.push_back(&p.rejected);
  const training::SequenceBatch sb = training::collate(seqs, torch::kCPU);
  const auto n = static_cast<std::int64_t>(prepared.pairs.size());
  std::vector<double> ref_c;
  std::vector<double> ref_r;
  for (const auto& p : prepared.pairs) {
    ref_c.push_back(p.reference_chosen);
    ref_r.push_back(p.reference_rejected);
  }
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  const auto ref_chosen = torch::tensor(ref_c, f64).to(torch::kFloat32);
  const auto ref_rejected = torch::tensor(ref_r, f64).to(torch::kFloat32);
  const training::PreferenceLoss loss = training::dpo_loss(0.1);

  std::vector<torch::Tensor> params = model.parameters();
  torch::optim::AdamW optimizer(params, torch::optim::AdamWOptions(1e-5));
  const auto& cfg = model.model()->config();
  const double tokens = static_cast<double>(sb.real_tokens);
  const double head_params = static_cast<double>(cfg.vocab_size) * cfg.hidden_size;
  const double body_params = loaded.params - head_params;  // Tied: the embedding is the head.

  model.set_training(false);
  for (int step = 0; step < args.warmup + args.steps; ++step) {
    optimizer.zero_grad();
    const auto positions = tb::position_ids_from_mask(sb.attention_mask);
    auto t = Clock::now();
    const auto hidden = model.model()->hidden_states(sb.input_ids, sb.attention_mask, positions);
    const double t_body = seconds_since(t);
    t = Clock::now();
    const auto logits = model.model()->logits(hidden);
    const double t_head = seconds_since(t);
    t = Clock::now();
    const auto logps = training::sequence_logps(logits, sb);
    training::PairLogps lp;
    lp.policy_chosen = logps.slice(0, 0, n);
    lp.policy_rejected = logps.slice(0, n, 2 * n);
    lp.reference_chosen = ref_chosen;
    lp.reference_rejected = ref_rejected;
    lp.chosen_tokens = torch::full({n}, static_cast<double>(args.response));
    lp.rejected_tokens = lp.chosen_tokens;
    const auto step_loss = loss.compute(lp).losses.mean();
    const double t_loss = seconds_since(t);
    t = Clock::now();
    step_loss.backward();
    const double t_bwd = seconds_since(t);
    t = Clock::now();
    optimizer.step();
    const double t_opt = seconds_since(t);
    const double total = t_body + t_head + t_loss + t_bwd + t_opt;
    std::printf(
        "%s step %d: body_fwd %.2fs (%.1f GFLOP/s) | lm_head_fwd %.2fs (%.1f GFLOP/s) | "
        "logps+loss %.2fs | backward %.2fs (%.1f GFLOP/s) | adamw %.2fs | total %.2fs = %.1f "
        "tokens/s (load %s)\n",
        step < args.warmup ? "warm-up" : "measured", step, t_body,
        2 * body_params * tokens / t_body / 1e9, t_head, 2 * head_params * tokens / t_head / 1e9,
        t_loss, t_bwd, 4 * loaded.params * tokens / t_bwd / 1e9, t_opt, total, tokens / total,
        load_average().c_str());
    std::fflush(stdout);
  }
  std::printf("RESULT mode=breakdown peak_rss_mib=%.0f load=%s\n", peak_rss_mib(),
              load_average().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args args = parse_args(argc, argv);
    torch::set_num_threads(args.threads);
    if (args.mode == "gemm") return run_gemm(args);
    if (args.mode == "dpo" || args.mode == "sft") return run_training(args);
    if (args.mode == "breakdown") return run_breakdown(args);
    std::fprintf(stderr, "unknown mode '%s' (gemm, dpo, sft, breakdown)\n", args.mode.c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
