// `metareward testbed bootstrap`: dataset + small Llama config + init-model + sft, composed in
// one process through HostContext::run_command.
#include "metareward/testbed/bootstrap.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_options.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/testbed/commands.hpp"

namespace mr::plugins::testbed {

namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;

namespace {

/// A float as a TOML value for `--set` (always with a '.' or an exponent, so it stays a float).
std::string toml_float(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  std::string s = buf;
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

std::string joined(const std::vector<std::string>& args) {
  std::string s = "metareward";
  for (const auto& a : args) s += " " + a;
  return s;
}

/// A parser of an integer in [lo, hi], for OptionTable::value.
auto int_in(std::int64_t lo, std::int64_t hi) {
  return [lo, hi](const std::string& flag, const std::string& text) {
    return cli::parse_int_in(flag, text, lo, hi);
  };
}

/// A parser of a number > 0.
double parse_positive(const std::string& flag, const std::string& text) {
  const double x = cli::parse_double(flag, text);
  if (!(x > 0.0)) throw UsageError(flag + " must be > 0, got " + text);
  return x;
}

std::string joined_lines(const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  return text;
}

/// The lines of a text file. Throws mr::sdk::DataError naming the file when it cannot be read.
std::vector<std::string> read_lines(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw mr::sdk::DataError("cannot read '" + file.string() + "'");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  if (in.bad()) throw mr::sdk::DataError("error reading '" + file.string() + "'");
  return lines;
}

/// A parser of a number >= 0.
double parse_positive_or_zero(const std::string& flag, const std::string& text) {
  const double x = cli::parse_double(flag, text);
  if (!(x >= 0.0)) throw UsageError(flag + " must be >= 0, got " + text);
  return x;
}

/// Accepts `KEY=VALUE` with a non-empty key and value.
void check_key_value(const std::string& flag, const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size())
    throw UsageError(flag + " expects KEY=VALUE, got '" + text + "'");
}

std::string both(std::int64_t tiny, std::int64_t small) {
  return "[tiny " + std::to_string(tiny) + ", small " + std::to_string(small) + "]";
}
std::string both(double tiny, double small) {
  return "[tiny " + cli::fmt(tiny) + ", small " + cli::fmt(small) + "]";
}

/// The options of `testbed bootstrap`, stored into `o` (--size is read by parse_bootstrap_args
/// before the others). The help shows the defaults of both presets.
cli::OptionTable bootstrap_options(BootstrapOptions& o) {
  const BootstrapOptions t = BootstrapOptions::preset("tiny");
  const BootstrapOptions s = BootstrapOptions::preset("small");
  cli::OptionTable table("Options [defaults]");
  table.value("out", "DIR", "output directory (required)", o.out, cli::parse_dir)
      .text("size", "NAME", "preset: tiny (tests, seconds) or small (the demo) [small]")
      .value("seed", "S", "seed of the data, the initial weights and SFT [1]", o.seed,
             cli::parse_uint)
      // Model shape.
      .value("hidden-size", "N", "model width " + both(t.model.hidden_size, s.model.hidden_size),
             o.model.hidden_size, int_in(2, 65536))
      .value("intermediate-size", "N",
             "MLP width " + both(t.model.intermediate_size, s.model.intermediate_size),
             o.model.intermediate_size, int_in(1, 262144))
      .value("layers", "N", "transformer layers " + both(t.model.layers, s.model.layers),
             o.model.layers, int_in(1, 256))
      .value("heads", "N", "attention heads " + both(t.model.heads, s.model.heads), o.model.heads,
             int_in(1, 1024))
      .value("kv-heads", "N",
             "key/value heads (divides --heads) " + both(t.model.kv_heads, s.model.kv_heads),
             o.model.kv_heads, int_in(1, 1024))
      .value("context", "N",
             "max_position_embeddings, in bytes " + both(t.model.context, s.model.context),
             o.model.context, int_in(8, 1 << 20))
      // SFT.
      .value("epochs", "N", "SFT epochs " + both(t.sft.epochs, s.sft.epochs), o.sft.epochs,
             int_in(1, 1000))
      .value("judge-warmup-epochs", "N",
             "judge warm-up: epochs on the judge rows alone, first (0 = none) " +
                 both(t.sft.judge_warmup_epochs, s.sft.judge_warmup_epochs),
             o.sft.judge_warmup_epochs, int_in(0, 1000))
      .value("judge-warmup-lr", "X",
             "judge warm-up peak learning rate " +
                 both(t.sft.judge_warmup_learning_rate, s.sft.judge_warmup_learning_rate),
             o.sft.judge_warmup_learning_rate, parse_positive)
      .value("lr", "X", "SFT peak learning rate " + both(t.sft.learning_rate, s.sft.learning_rate),
             o.sft.learning_rate, parse_positive)
      .value("batch-size", "N", "SFT examples per step " + both(t.sft.batch_size, s.sft.batch_size),
             o.sft.batch_size, int_in(1, 1 << 20))
      .value("max-length", "N",
             "SFT tokens per example " + both(t.sft.max_length, s.sft.max_length), o.sft.max_length,
             int_in(8, 1 << 20))
      .value("warmup-ratio", "X",
             "SFT warm-up share of the steps " + both(t.sft.warmup_ratio, s.sft.warmup_ratio),
             o.sft.warmup_ratio, cli::parse_probability)
      .values("sft-set", "KEY=VALUE",
              "any other sft optimizer key, e.g. weight_decay=0.01 (repeatable)", o.sft.extra,
              check_key_value)
      // The own-sample judge stage (EFT on the model's own outputs; off unless prompts > 0).
      .value("own-sample-prompts", "N",
             "own-sample stage: train prompts the instruct model answers, whose graded samples "
             "fine-tune the judge (0 = no stage) [0]",
             o.own.prompts, int_in(0, 1 << 20))
      .value("own-samples", "N", "own-sample stage: samples per prompt [4]", o.own.samples,
             int_in(1, 1024))
      .value("own-temperature", "X", "own-sample stage: sampling temperature [0.8]",
             o.own.temperature, parse_positive)
      .value("own-max-new-tokens", "N", "own-sample stage: bytes per sample at most [96]",
             o.own.max_new_tokens, int_in(1, 1 << 16))
      .value("own-epochs", "N", "own-sample stage: SFT epochs [2]", o.own.epochs, int_in(1, 1000))
      .value("own-lr", "X", "own-sample stage: SFT peak learning rate [0.001]", o.own.learning_rate,
             parse_positive)
      .value("own-meta-share", "X",
             "own-sample stage: probability that a sample also gets a meta-judge row [0.25]",
             o.own.meta_share, cli::parse_probability)
      .value("own-replay", "X",
             "own-sample stage: instruction rows replayed per judge row, so the actor keeps its "
             "SFT [0.5]",
             o.own.replay, parse_positive_or_zero)
      .value("own-from", "DIR",
             "own-sample stage: start from this instruct model (e.g. an earlier seed_model) "
             "instead of training one",
             o.own_from, cli::parse_dir)
      .value("threads", "N", "SFT threads (0 = all cores) [0]", o.threads, int_in(0, 4096))
      .flag("force", "replace an earlier bootstrap in DIR", o.force);
  // Data (the `testbed data` options, sizes from the preset).
  cli::add_dataset_options(table, o.data, false,
                           {both(t.data.sft_examples, s.data.sft_examples),
                            both(t.data.train_prompts, s.data.train_prompts),
                            both(t.data.eval_prompts, s.data.eval_prompts)});
  return table;
}

}  // namespace

BootstrapOptions BootstrapOptions::preset(std::string_view size) {
  BootstrapOptions o;
  o.size = std::string(size);
  if (size == "small") return o;  // The struct defaults are the small preset.
  if (size != "tiny")
    throw UsageError("--size must be tiny or small, got '" + std::string(size) + "'");
  o.model = {32, 64, 2, 4, 2, 320};
  o.sft.epochs = 1;
  o.sft.judge_warmup_epochs = 0;
  o.sft.learning_rate = 3e-3;
  o.sft.batch_size = 16;
  o.sft.max_length = 256;
  o.data.sft_examples = 300;
  o.data.train_prompts = 200;
  o.data.eval_prompts = 40;
  return o;
}

void BootstrapOptions::validate() const {
  if (out.empty()) throw UsageError("--out DIR is required");
  if (model.hidden_size % model.heads != 0)
    throw UsageError("--hidden-size (" + std::to_string(model.hidden_size) +
                     ") must be a multiple of --heads (" + std::to_string(model.heads) + ")");
  if ((model.hidden_size / model.heads) % 2 != 0)
    throw UsageError("the head size --hidden-size / --heads must be even (RoPE), got " +
                     std::to_string(model.hidden_size / model.heads));
  if (model.heads % model.kv_heads != 0)
    throw UsageError("--heads (" + std::to_string(model.heads) +
                     ") must be a multiple of --kv-heads (" + std::to_string(model.kv_heads) + ")");
  if (model.context < sft.max_length)
    throw UsageError("--context (" + std::to_string(model.context) +
                     ") must be at least --max-length (" + std::to_string(sft.max_length) + ")");
  cli::check_shares(data);
  const double n = static_cast<double>(data.sft_examples);
  if (sft.judge_warmup_epochs > 0 &&
      std::llround(n * data.judge_share) + std::llround(n * data.meta_share) == 0)
    throw UsageError(
        "--judge-warmup-epochs " + std::to_string(sft.judge_warmup_epochs) +
        " needs judge or meta-judge rows, but --sft-examples x (--judge-share + --meta-share) "
        "rounds to none; raise them or pass --judge-warmup-epochs 0");
  if (!own_from.empty() && own.prompts == 0)
    throw UsageError(
        "--own-from starts the own-sample stage, which --own-sample-prompts 0 turns "
        "off; pass --own-sample-prompts N");
  if (own.prompts > data.train_prompts)
    throw UsageError("--own-sample-prompts (" + std::to_string(own.prompts) +
                     ") exceeds --train-prompts (" + std::to_string(data.train_prompts) + ")");
  try {
    data.validate();
    own.validate();
  } catch (const mr::sdk::ConfigError& e) {
    throw UsageError(e.what());
  }
}

std::string model_config_json(const ModelShape& shape) {
  const ordered_json j = {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"hidden_size", shape.hidden_size},
      {"intermediate_size", shape.intermediate_size},
      {"num_hidden_layers", shape.layers},
      {"num_attention_heads", shape.heads},
      {"num_key_value_heads", shape.kv_heads},
      {"vocab_size", kByteLevelVocabSize},
      {"max_position_embeddings", shape.context},
      {"rms_norm_eps", 1e-5},
      {"rope_theta", 10000.0},
      {"tie_word_embeddings", false},
  };
  return j.dump(2) + "\n";
}

BootstrapPlan plan_bootstrap(const BootstrapOptions& options) {
  BootstrapPlan p;
  const fs::path& out = options.out;
  p.data_dir = out / "data";
  p.model_config = out / "model_config.json";
  p.init_model = out / "init_model";
  p.seed_model = out / "seed_model";
  p.sft_metrics = out / "sft_metrics.jsonl";
  p.manifest = out / "bootstrap.json";
  p.model_config_json = model_config_json(options.model);
  const std::string seed = std::to_string(options.seed);
  p.commands.push_back({"init-model", "--config", p.model_config.string(), "--out",
                        p.init_model.string(), "--seed", seed});
  // One `metareward sft` command; both stages share every optimizer setting but the epochs.
  auto sft_command = [&](const fs::path& model, const fs::path& data, const fs::path& out_dir,
                         const fs::path& metrics, std::int64_t epochs, double lr) {
    std::vector<std::string> sft = {"sft",
                                    "--model",
                                    model.string(),
                                    "--data",
                                    data.string(),
                                    "--out",
                                    out_dir.string(),
                                    "--seed",
                                    seed,
                                    "--threads",
                                    std::to_string(options.threads),
                                    "--metrics",
                                    metrics.string()};
    auto set = [&sft](const std::string& kv) {
      sft.push_back("--set");
      sft.push_back(kv.rfind("optimizer.", 0) == 0 ? kv : "optimizer." + kv);
    };
    set("epochs=" + std::to_string(epochs));
    set("learning_rate=" + toml_float(lr));
    set("batch_size=" + std::to_string(options.sft.batch_size));
    set("max_length=" + std::to_string(options.sft.max_length));
    set("warmup_ratio=" + toml_float(options.sft.warmup_ratio));
    // A whole step in one forward pass: the model is small, and micro-batching only saves memory.
    set("micro_batch_size=" + std::to_string(options.sft.batch_size));
    for (const auto& kv : options.sft.extra) set(kv);
    return sft;
  };
  const bool own_stage = options.own.prompts > 0;
  if (own_stage) {
    p.own_prompts = p.data_dir / "own_sample_prompts.jsonl";
    p.own_samples = p.data_dir / "own_samples.jsonl";
    p.own_judge_sft = p.data_dir / "own_judge_sft.jsonl";
    p.own_sft_metrics = out / "own_judge_sft_metrics.jsonl";
    p.instruct_model = options.own_from.empty() ? out / "instruct_model" : options.own_from;
    const OwnSampleOptions& own = options.own;
    p.own_generate = {"generate",
                      "--model",
                      p.instruct_model.string(),
                      "--input",
                      p.own_prompts.string(),
                      "--output",
                      p.own_samples.string(),
                      "--n",
                      std::to_string(own.samples),
                      "--temperature",
                      toml_float(own.temperature),
                      "--top-p",
                      toml_float(own.top_p),
                      "--max-new-tokens",
                      std::to_string(own.max_new_tokens),
                      "--seed",
                      seed,
                      "--threads",
                      std::to_string(options.threads),
                      "--batch-size",
                      "64"};
    p.own_sft = sft_command(p.instruct_model, p.own_judge_sft, p.seed_model, p.own_sft_metrics,
                            own.epochs, own.learning_rate);
    if (!options.own_from.empty()) {
      p.commands.clear();  // The instruct model exists: no init-model, no SFT before the stage.
      return p;
    }
  }
  fs::path start = p.init_model;
  if (options.sft.judge_warmup_epochs > 0) {
    p.judge_warmup_model = out / "judge_warmup_model";
    p.judge_warmup_metrics = out / "judge_warmup_metrics.jsonl";
    p.commands.push_back(sft_command(
        p.init_model, p.data_dir / "judge_sft.jsonl", p.judge_warmup_model, p.judge_warmup_metrics,
        options.sft.judge_warmup_epochs, options.sft.judge_warmup_learning_rate));
    start = p.judge_warmup_model;
  }
  p.commands.push_back(sft_command(start, p.data_dir / "sft.jsonl",
                                   own_stage ? p.instruct_model : p.seed_model, p.sft_metrics,
                                   options.sft.epochs, options.sft.learning_rate));
  return p;
}

bool parse_bootstrap_args(const std::vector<std::string>& args, BootstrapOptions& options) {
  // The preset first (between parsing and storing), so that every explicit option overrides it
  // whatever the order.
  const bool run =
      cli::parse_options(args, bootstrap_options(options), [&](const cli::po::variables_map& vm) {
        options =
            BootstrapOptions::preset(vm.count("size") ? vm["size"].as<std::string>() : "small");
      });
  if (!run) return false;
  options.data.seed = options.seed;
  options.validate();
  return true;
}

std::string bootstrap_usage() {
  BootstrapOptions defaults;
  return "usage: metareward testbed bootstrap --out DIR [--size tiny|small] [--seed S] "
         "[options]\n"
         "  Makes the testbed's seed model from scratch: the dataset (DIR/data), a small\n"
         "  Llama-shaped config with a byte-level vocabulary (DIR/model_config.json), a random\n"
         "  checkpoint (`metareward init-model` -> DIR/init_model), SFT on DIR/data/sft.jsonl\n"
         "  (`metareward sft` -> DIR/seed_model, metrics in DIR/sft_metrics.jsonl) and\n"
         "  DIR/bootstrap.json, written last. --size picks the defaults; any flag overrides "
         "them.\n" +
         cli::option_lines(bootstrap_options(defaults));
}

int run_bootstrap(const BootstrapOptions& options,
                  mr::sdk::HostContext& ctx,
                  std::ostream& out,
                  std::ostream& err) {
  const BootstrapPlan plan = plan_bootstrap(options);
  std::error_code ec;
  if (!options.own_from.empty() &&
      fs::weakly_canonical(options.own_from, ec) == fs::weakly_canonical(plan.seed_model, ec)) {
    err << "metareward testbed bootstrap: --own-from " << options.own_from.string()
        << " is the seed_model this bootstrap writes; copy it elsewhere or choose another --out\n";
    return 1;
  }
  if (!options.force && (fs::exists(plan.manifest, ec) || fs::exists(plan.seed_model, ec))) {
    err << "metareward testbed bootstrap: " << options.out.string()
        << " already holds a bootstrap (bootstrap.json or seed_model); pass --force to replace "
           "it or choose another --out\n";
    return 1;
  }
  for (const fs::path& p :
       {plan.manifest, plan.init_model, plan.seed_model,
        fs::path(plan.seed_model.string() + ".state"), plan.sft_metrics,
        options.own_from.empty() ? options.out / "instruct_model" : fs::path(),
        options.out / "instruct_model.state", options.out / "own_judge_sft_metrics.jsonl",
        options.out / "judge_warmup_model", options.out / "judge_warmup_model.state",
        options.out / "judge_warmup_metrics.jsonl"})
    if (!p.empty()) fs::remove_all(p, ec);

  const Dataset dataset = build_dataset(options.data);
  write_dataset(dataset, options.data, plan.data_dir);
  out << "testbed bootstrap: wrote " << dataset.sft.size() << " SFT rows, " << dataset.train.size()
      << " train prompts and " << dataset.eval.size() << " eval prompts to "
      << plan.data_dir.string() << "\n";
  write_text_atomic(plan.model_config, plan.model_config_json);

  ordered_json commands = ordered_json::array();
  auto run = [&](const std::vector<std::string>& args) {
    out << "testbed bootstrap: running " << joined(args) << "\n" << std::flush;
    const auto start = std::chrono::steady_clock::now();
    const int status = ctx.run_command(args);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    commands.push_back({{"args", args}, {"exit_status", status}, {"seconds", seconds}});
    if (status != 0)
      err << "metareward testbed bootstrap: `" << joined(args) << "` failed with exit status "
          << status << "; no bootstrap.json written\n";
    return status == 0;
  };
  for (const auto& args : plan.commands)
    if (!run(args)) return 1;

  ordered_json own_json = nullptr;
  ordered_json family_names = ordered_json::array();
  for (TaskFamily f : options.data.families) family_names.push_back(std::string(family_name(f)));
  if (!plan.own_generate.empty()) {
    if (!options.own_from.empty() && !fs::exists(plan.instruct_model / "config.json", ec)) {
      err << "metareward testbed bootstrap: --own-from " << plan.instruct_model.string()
          << " holds no model (config.json missing)\n";
      return 1;
    }
    // The first N train prompts: the run's prompt pool, never the eval side.
    std::vector<std::string> prompt_lines = train_prompt_lines(dataset);
    prompt_lines.resize(static_cast<std::size_t>(options.own.prompts));
    write_text_atomic(plan.own_prompts, joined_lines(prompt_lines));
    if (!run(plan.own_generate)) return 1;
    std::vector<std::string> generated;
    try {
      generated = read_lines(plan.own_samples);
    } catch (const mr::sdk::DataError& e) {
      err << "metareward testbed bootstrap: " << e.what() << "\n";
      return 1;
    }
    std::vector<SftRow> instruction_rows;
    for (const auto& row : dataset.sft)
      if (row.kind == "instruction") instruction_rows.push_back(row);
    const OwnSampleJudgeData own =
        own_sample_judge_data(generated, instruction_rows, options.data, options.own, options.seed);
    const OwnSampleStats& st = own.stats;
    for (std::size_t i = 0; i < own.drops.size() && i < 5; ++i)
      err << "testbed bootstrap: dropped " << plan.own_samples.string() << " " << own.drops[i]
          << "\n";
    if (st.samples == 0) {
      err << "metareward testbed bootstrap: " << plan.own_samples.string()
          << " holds no gradable sample (" << st.dropped << " rows dropped)\n";
      return 1;
    }
    std::vector<std::string> lines;
    lines.reserve(own.rows.size());
    for (const auto& row : own.rows) lines.push_back(sft_line(row));
    write_text_atomic(plan.own_judge_sft, joined_lines(lines));
    char accuracy[32];
    std::snprintf(accuracy, sizeof accuracy, "%.1f", 100.0 * st.accuracy());
    out << "testbed bootstrap: own samples: " << st.samples << " of " << st.prompts << " prompts, "
        << accuracy << " % correct (oracle >= 4), " << st.prompts_mixed
        << " prompts with right and wrong samples, " << st.dropped << " rows dropped; "
        << st.judge_rows << " judge + " << st.meta_rows << " meta-judge + " << st.replay_rows
        << " replayed instruction rows in " << plan.own_judge_sft.string() << "\n";
    ordered_json histogram = ordered_json::array();
    for (auto c : st.oracle_histogram) histogram.push_back(c);
    own_json = {{"options",
                 {{"prompts", options.own.prompts},
                  {"samples", options.own.samples},
                  {"temperature", options.own.temperature},
                  {"top_p", options.own.top_p},
                  {"max_new_tokens", options.own.max_new_tokens},
                  {"epochs", options.own.epochs},
                  {"learning_rate", options.own.learning_rate},
                  {"meta_share", options.own.meta_share},
                  {"replay", options.own.replay},
                  {"from", options.own_from.string()}}},
                {"stats",
                 {{"prompts", st.prompts},
                  {"samples", st.samples},
                  {"dropped", st.dropped},
                  {"correct", st.correct},
                  {"exact", st.exact},
                  {"accuracy", st.accuracy()},
                  {"prompts_with_correct", st.prompts_with_correct},
                  {"prompts_mixed", st.prompts_mixed},
                  {"oracle_histogram", histogram},
                  {"judge_rows", st.judge_rows},
                  {"meta_rows", st.meta_rows},
                  {"replay_rows", st.replay_rows}}},
                {"instruct_model", plan.instruct_model.string()},
                {"samples_file", plan.own_samples.string()},
                {"judge_sft", plan.own_judge_sft.string()},
                {"sft_metrics", plan.own_sft_metrics.string()}};
    if (!run(plan.own_sft)) return 1;
  }

  const ordered_json manifest = {
      {"generator", "metareward testbed bootstrap"},
      {"size", options.size},
      {"seed", options.seed},
      {"model",
       {{"hidden_size", options.model.hidden_size},
        {"intermediate_size", options.model.intermediate_size},
        {"layers", options.model.layers},
        {"heads", options.model.heads},
        {"kv_heads", options.model.kv_heads},
        {"context", options.model.context},
        {"vocab_size", kByteLevelVocabSize}}},
      {"sft",
       {{"epochs", options.sft.epochs},
        {"judge_warmup_epochs", options.sft.judge_warmup_epochs},
        {"judge_warmup_learning_rate", options.sft.judge_warmup_learning_rate},
        {"learning_rate", options.sft.learning_rate},
        {"batch_size", options.sft.batch_size},
        {"max_length", options.sft.max_length},
        {"warmup_ratio", options.sft.warmup_ratio},
        {"extra", options.sft.extra},
        {"threads", options.threads}}},
      {"data",
       {{"sft_examples", options.data.sft_examples},
        {"train_prompts", options.data.train_prompts},
        {"eval_prompts", options.data.eval_prompts},
        {"families", family_names},
        {"manifest", (plan.data_dir / "manifest.json").string()}}},
      {"files",
       {{"data", plan.data_dir.string()},
        {"model_config", plan.model_config.string()},
        {"init_model", plan.init_model.string()},
        {"seed_model", plan.seed_model.string()},
        {"sft_metrics", plan.sft_metrics.string()}}},
      {"own_samples", own_json},
      {"commands", commands},
  };
  write_text_atomic(plan.manifest, manifest.dump(2) + "\n");
  out << "testbed bootstrap: seed model in " << plan.seed_model.string() << " (" << options.size
      << ", seed " << options.seed << ")\n";
  return 0;
}

int bootstrap_command(const std::vector<std::string>& args,
                      mr::sdk::HostContext& ctx,
                      std::ostream& out,
                      std::ostream& err) {
  BootstrapOptions options;
  try {
    if (!parse_bootstrap_args(args, options)) {
      out << bootstrap_usage();
      return 0;
    }
  } catch (const UsageError& e) {
    err << "metareward testbed bootstrap: " << e.what() << "\n" << bootstrap_usage();
    return 2;
  }
  return run_bootstrap(options, ctx, out, err);
}

}  // namespace mr::plugins::testbed
