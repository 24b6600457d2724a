// The torch backend library's CLI commands: `init-model` (random checkpoint with a usable
// tokenizer) and `tokenize` (JSONL text -> ids), their options parsed with
// Boost.Program_options. Text-level: no libtorch here.
#include <unistd.h>

#include <boost/program_options.hpp>
#include <charconv>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "metareward/sdk/error.hpp"
#include "metareward/sdk/file_io.hpp"
#include "metareward/tokenizer/tokenizer.hpp"
#include "metareward/torch_backend_plugin/torch_backend.hpp"
#include "metareward/torch_model/checkpoint_files.hpp"
#include "metareward/torch_model/model_config.hpp"

namespace mr::plugins::torch_backend {

namespace fs = std::filesystem;
namespace sdk = mr::sdk;
namespace tb = ::mr::torch_backend;
using json = nlohmann::json;

namespace {

namespace po = boost::program_options;

/// A usage error of a command: printed with the command's usage, exit status 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

constexpr const char* kInitSynopsis =
    "usage: metareward init-model --config CONFIG.json --out DIR [--seed S] [--tokenizer DIR] "
    "[--dtype float32|bfloat16]\n"
    "  Writes a randomly initialised HF checkpoint for CONFIG.json (LlamaForCausalLM or\n"
    "  Qwen2ForCausalLM). Without --tokenizer a byte-level tokenizer (256 bytes + <|bos|>,\n"
    "  <|eos|>, <|pad|>) with the plain chat template is written and the config's\n"
    "  bos/eos/pad_token_id are set to its ids.\n";

constexpr const char* kMergeLoraSynopsis =
    "usage: metareward merge-lora --model BASE --adapter DIR --out DIR [--dtype TYPE]\n"
    "  Folds a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors) into the\n"
    "  base checkpoint's weights, W + alpha/r * B A computed in float32, and writes the merged\n"
    "  HF checkpoint (with the base's tokenizer files) to DIR atomically.\n";

constexpr const char* kTokenizeSynopsis =
    "usage: metareward tokenize --tokenizer DIR < in.jsonl > out.jsonl\n"
    "  Reads {\"text\": ...} rows and writes {\"text\": ..., \"ids\": [...]} rows (no special\n"
    "  tokens added); a bad row gives {\"line\": N, \"error\": ...}.\n";

po::options_description init_options() {
  po::options_description d("Options [default]");
  d.add_options()("config", po::value<std::string>()->value_name("CONFIG.json"),
                  "the model's HF config (required)")(
      "out", po::value<std::string>()->value_name("DIR"),
      "output directory of the checkpoint (required)")(
      "seed", po::value<std::string>()->value_name("S"), "seed of the random weights [0]")(
      "tokenizer", po::value<std::string>()->value_name("DIR"),
      "copy this tokenizer instead of writing a byte-level one")(
      "dtype", po::value<std::string>()->value_name("TYPE"), "float32 or bfloat16 [float32]");
  return d;
}

po::options_description merge_lora_options() {
  po::options_description d("Options [default]");
  d.add_options()("model", po::value<std::string>()->value_name("BASE"),
                  "the base checkpoint the adapter was trained on (required)")(
      "adapter", po::value<std::string>()->value_name("DIR"), "the PEFT adapter (required)")(
      "out", po::value<std::string>()->value_name("DIR"), "the merged checkpoint (required)")(
      "dtype", po::value<std::string>()->value_name("TYPE"),
      "on-disk dtype: auto (the base's), float32 or bfloat16 [auto]");
  return d;
}

po::options_description tokenize_options() {
  po::options_description d("Options");
  d.add_options()("tokenizer", po::value<std::string>()->value_name("DIR"),
                  "directory with tokenizer.json (required)");
  return d;
}

/// The usage text: the synopsis, then the options.
std::string usage_text(const char* synopsis, const po::options_description& options) {
  std::ostringstream s;
  s << synopsis << options;
  return s.str();
}

/// Parses `args` against `options` plus --help / -h (exact option names, `--flag value` or
/// `--flag=value`). Returns false for --help. Throws UsageError for an unknown option, a missing
/// value, an option given twice or a positional argument.
bool parse_args(const std::vector<std::string>& args,
                const po::options_description& options,
                po::variables_map& vm) {
  po::options_description all;
  all.add(options);
  all.add_options()("help,h", "Show this help.")("unexpected-argument",
                                                 po::value<std::vector<std::string>>(), "");
  po::positional_options_description positional;
  positional.add("unexpected-argument", -1);
  const int style = po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
  try {
    po::store(po::command_line_parser(args).options(all).positional(positional).style(style).run(),
              vm);
    if (vm.count("help")) return false;
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  if (vm.count("unexpected-argument"))
    throw UsageError("unexpected argument '" +
                     vm["unexpected-argument"].as<std::vector<std::string>>().front() + "'");
  return true;
}

/// The value of a required option.
std::string required(const po::variables_map& vm, const std::string& name, const char* what) {
  if (!vm.count(name)) throw UsageError("--" + name + " " + what + " is required");
  const std::string value = vm[name].as<std::string>();
  if (value.empty()) throw UsageError("--" + name + " needs a non-empty value");
  return value;
}

/// What `init-model` parses into.
struct InitArgs {
  fs::path config;
  fs::path out;
  std::optional<fs::path> tokenizer;
  std::string dtype = "float32";
  tb::InitOptions init;  ///< Seed and dtype; the tokenizer is chosen when the command runs.
};

/// Parses `init-model` arguments. Returns false for --help. Throws UsageError.
bool parse_init_args(const std::vector<std::string>& args, InitArgs& a) {
  po::variables_map vm;
  if (!parse_args(args, init_options(), vm)) return false;
  a.config = required(vm, "config", "CONFIG.json");
  a.out = required(vm, "out", "DIR");
  if (vm.count("tokenizer")) a.tokenizer = required(vm, "tokenizer", "DIR");
  if (vm.count("seed")) {
    const std::string s = vm["seed"].as<std::string>();
    const char* end = s.data() + s.size();
    const auto [ptr, ec] = std::from_chars(s.data(), end, a.init.seed);
    if (s.empty() || ec != std::errc() || ptr != end)
      throw UsageError("--seed must be a non-negative integer, got '" + s + "'");
  }
  if (vm.count("dtype")) a.dtype = vm["dtype"].as<std::string>();
  if (a.dtype == "float32") {
    a.init.dtype = safetensors::DType::kF32;
  } else if (a.dtype == "bfloat16") {
    a.init.dtype = safetensors::DType::kBF16;
  } else {
    throw UsageError("--dtype must be float32 or bfloat16, got '" + a.dtype + "'");
  }
  return true;
}

fs::path temp_sibling(const fs::path& out, const std::string& what) {
  fs::path base = out;
  if (base.filename().empty()) base = base.parent_path();
  return base.parent_path() /
         (base.filename().string() + "." + what + ".tmp." + std::to_string(::getpid()));
}

/// Removes a directory on scope exit.
struct RemoveOnExit {
  fs::path path;
  ~RemoveOnExit() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

}  // namespace

int init_model_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const std::string usage = usage_text(kInitSynopsis, init_options());
  InitArgs parsed;
  try {
    if (!parse_init_args(args, parsed)) {
      out << usage;
      return 0;
    }
  } catch (const UsageError& e) {
    err << "init-model: " << e.what() << "\n" << usage;
    return 2;
  }
  const fs::path& config_path = parsed.config;
  const fs::path& out_dir = parsed.out;
  tb::InitOptions& init = parsed.init;
  const tb::ModelConfig config = tb::parse_model_config(config_path);

  RemoveOnExit staging;
  fs::path config_to_use = config_path;
  if (parsed.tokenizer) {
    const fs::path& dir = *parsed.tokenizer;
    const auto tokenizer = mr::tokenizer::Tokenizer::from_directory(dir);
    if (static_cast<std::int64_t>(tokenizer.vocab_size()) > config.vocab_size) {
      throw sdk::ConfigError("init-model: vocab_size " + std::to_string(config.vocab_size) +
                             " in " + config_path.string() + " does not cover the " +
                             std::to_string(tokenizer.vocab_size()) + " tokens of the tokenizer " +
                             tokenizer.origin());
    }
    init.tokenizer_dir = dir;
  } else {
    staging.path = temp_sibling(out_dir, "init");
    fs::remove_all(staging.path);
    fs::create_directories(staging.path);
    mr::tokenizer::ByteLevelSpecials specials;
    specials.chat_template = kPlainChatTemplateJinja;
    specials.model_max_length = config.max_position_embeddings;
    const fs::path tok_dir = staging.path / "tokenizer";
    mr::tokenizer::write_byte_level_tokenizer(tok_dir, specials);
    const auto tokenizer = mr::tokenizer::Tokenizer::from_directory(tok_dir);
    if (static_cast<std::int64_t>(tokenizer.vocab_size()) > config.vocab_size) {
      throw sdk::ConfigError("init-model: vocab_size " + std::to_string(config.vocab_size) +
                             " in " + config_path.string() + " does not cover the " +
                             std::to_string(tokenizer.vocab_size()) +
                             " tokens of the byte-level tokenizer (use a vocab_size of at least " +
                             std::to_string(tokenizer.vocab_size()) + ")");
    }
    // Point the config's special ids at the byte-level tokenizer's tokens so that
    // generation_config.json stops on <|eos|>.
    json j = json::parse(config.json);
    j["bos_token_id"] = *tokenizer.bos_id();
    j["eos_token_id"] = *tokenizer.eos_id();
    j["pad_token_id"] = *tokenizer.pad_id();
    config_to_use = staging.path / "config.json";
    sdk::write_file_atomic(config_to_use, j.dump(2) + "\n");
    init.tokenizer_dir = tok_dir;
  }
  tb::init_random_checkpoint(config_to_use, out_dir, init);
  out << "wrote " << config.architecture_name << " with " << tb::parameter_count(config)
      << " random parameters (seed " << init.seed << ", " << parsed.dtype << ") to "
      << out_dir.string() << "\n";
  return 0;
}

int merge_lora_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const std::string usage = usage_text(kMergeLoraSynopsis, merge_lora_options());
  std::string model, adapter, out_dir, dtype = "auto";
  try {
    po::variables_map vm;
    if (!parse_args(args, merge_lora_options(), vm)) {
      out << usage;
      return 0;
    }
    model = required(vm, "model", "BASE");
    adapter = required(vm, "adapter", "DIR");
    out_dir = required(vm, "out", "DIR");
    if (vm.count("dtype")) dtype = vm["dtype"].as<std::string>();
    if (dtype != "auto" && dtype != "float32" && dtype != "bfloat16")
      throw UsageError("--dtype must be auto, float32 or bfloat16, got '" + dtype + "'");
  } catch (const UsageError& e) {
    err << "merge-lora: " << e.what() << "\n" << usage;
    return 2;
  }
  out << merge_lora_checkpoint(model, adapter, out_dir, dtype) << "\n";
  return 0;
}

int tokenize_command(const std::vector<std::string>& args,
                     std::istream& in,
                     std::ostream& out,
                     std::ostream& err) {
  const std::string usage = usage_text(kTokenizeSynopsis, tokenize_options());
  std::string tokenizer_dir;
  try {
    po::variables_map vm;
    if (!parse_args(args, tokenize_options(), vm)) {
      out << usage;
      return 0;
    }
    tokenizer_dir = required(vm, "tokenizer", "DIR");
  } catch (const UsageError& e) {
    err << "tokenize: " << e.what() << "\n" << usage;
    return 2;
  }
  const auto tokenizer = mr::tokenizer::Tokenizer::from_directory(tokenizer_dir);
  std::string line;
  std::int64_t number = 0, ok = 0, bad = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json row;
    try {
      const json input = json::parse(line);
      if (!input.is_object() || !input.contains("text") || !input["text"].is_string())
        throw sdk::DataError("expected an object with a string \"text\"");
      const std::string text = input["text"].get<std::string>();
      row = {{"text", text}, {"ids", tokenizer.encode(text)}};
      ++ok;
    } catch (const std::exception& e) {
      row = {{"line", number}, {"error", e.what()}};
      ++bad;
    }
    out << row.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
  }
  err << "tokenize: " << ok << " row(s) tokenized, " << bad << " bad row(s)\n";
  if (ok == 0) {
    err << "error: tokenize: no usable {\"text\"} row in the input\n";
    return sdk::exit_status::kNoUsableRows;
  }
  return bad > 0 ? sdk::exit_status::kDroppedRows : sdk::exit_status::kOk;
}

}  // namespace mr::plugins::torch_backend
