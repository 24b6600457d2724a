// The torch backend library's CLI commands: `init-model` (random checkpoint with a usable
// tokenizer) and `tokenize` (JSONL text -> ids). Text-level: no libtorch here.
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "metareward/sdk/error.hpp"
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

constexpr const char* kInitUsage =
    "usage: metareward init-model --config CONFIG.json --out DIR [--seed S] [--tokenizer DIR] "
    "[--dtype float32|bfloat16]\n"
    "  Writes a randomly initialised HF checkpoint for CONFIG.json (LlamaForCausalLM or\n"
    "  Qwen2ForCausalLM). Without --tokenizer a byte-level tokenizer (256 bytes + <|bos|>,\n"
    "  <|eos|>, <|pad|>) with the plain chat template is written and the config's\n"
    "  bos/eos/pad_token_id are set to its ids.\n";

constexpr const char* kTokenizeUsage =
    "usage: metareward tokenize --tokenizer DIR < in.jsonl > out.jsonl\n"
    "  Reads {\"text\": ...} rows and writes {\"text\": ..., \"ids\": [...]} rows (no special\n"
    "  tokens added); a bad row gives {\"line\": N, \"error\": ...}.\n";

/// --key value pairs; every key must be in `allowed`. Returns nullopt (after printing the
/// usage) on a usage error or --help.
std::optional<std::map<std::string, std::string>> parse_flags(
    const std::vector<std::string>& args,
    const std::vector<std::string>& allowed,
    const char* usage,
    std::ostream& out,
    std::ostream& err,
    bool& help) {
  std::map<std::string, std::string> flags;
  help = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      out << usage;
      help = true;
      return std::nullopt;
    }
    std::string key = a, value;
    bool has_value = false;
    if (a.rfind("--", 0) == 0 && a.find('=') != std::string::npos) {
      key = a.substr(0, a.find('='));
      value = a.substr(a.find('=') + 1);
      has_value = true;
    }
    if (key.rfind("--", 0) != 0 ||
        std::find(allowed.begin(), allowed.end(), key.substr(2)) == allowed.end()) {
      err << "unknown argument '" << a << "'\n" << usage;
      return std::nullopt;
    }
    if (!has_value) {
      if (i + 1 >= args.size()) {
        err << key << " needs a value\n" << usage;
        return std::nullopt;
      }
      value = args[++i];
    }
    flags[key.substr(2)] = value;
  }
  return flags;
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
  bool help = false;
  auto flags = parse_flags(args, {"config", "out", "seed", "tokenizer", "dtype"}, kInitUsage, out,
                           err, help);
  if (!flags) return help ? 0 : 2;
  for (const char* key : {"config", "out"}) {
    if (!flags->count(key)) {
      err << "init-model: --" << key << " is required\n" << kInitUsage;
      return 2;
    }
  }
  tb::InitOptions options;
  if (flags->count("seed")) {
    const std::string& s = flags->at("seed");
    std::size_t used = 0;
    try {
      options.seed = std::stoull(s, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != s.size() || s.empty() || s[0] == '-') {
      err << "init-model: --seed must be a non-negative integer, got '" << s << "'\n";
      return 2;
    }
  }
  const std::string dtype = flags->count("dtype") ? flags->at("dtype") : "float32";
  if (dtype == "float32") {
    options.dtype = safetensors::DType::kF32;
  } else if (dtype == "bfloat16") {
    options.dtype = safetensors::DType::kBF16;
  } else {
    err << "init-model: --dtype must be float32 or bfloat16, got '" << dtype << "'\n";
    return 2;
  }
  const fs::path config_path = flags->at("config");
  const fs::path out_dir = flags->at("out");
  const tb::ModelConfig config = tb::parse_model_config(config_path);

  RemoveOnExit staging;
  fs::path config_to_use = config_path;
  if (flags->count("tokenizer")) {
    const fs::path dir = flags->at("tokenizer");
    const auto tokenizer = mr::tokenizer::Tokenizer::from_directory(dir);
    if (static_cast<std::int64_t>(tokenizer.vocab_size()) > config.vocab_size) {
      throw sdk::ConfigError("init-model: vocab_size " + std::to_string(config.vocab_size) +
                             " in " + config_path.string() + " does not cover the " +
                             std::to_string(tokenizer.vocab_size()) + " tokens of the tokenizer " +
                             tokenizer.origin());
    }
    options.tokenizer_dir = dir;
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
    std::ofstream(config_to_use) << j.dump(2) << "\n";
    options.tokenizer_dir = tok_dir;
  }
  tb::init_random_checkpoint(config_to_use, out_dir, options);
  out << "wrote " << config.architecture_name << " with " << tb::parameter_count(config)
      << " random parameters (seed " << options.seed << ", " << dtype << ") to " << out_dir.string()
      << "\n";
  return 0;
}

int tokenize_command(const std::vector<std::string>& args,
                     std::istream& in,
                     std::ostream& out,
                     std::ostream& err) {
  bool help = false;
  auto flags = parse_flags(args, {"tokenizer"}, kTokenizeUsage, out, err, help);
  if (!flags) return help ? 0 : 2;
  if (!flags->count("tokenizer")) {
    err << "tokenize: --tokenizer is required\n" << kTokenizeUsage;
    return 2;
  }
  const auto tokenizer = mr::tokenizer::Tokenizer::from_directory(flags->at("tokenizer"));
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
  return 0;
}

}  // namespace mr::plugins::torch_backend
