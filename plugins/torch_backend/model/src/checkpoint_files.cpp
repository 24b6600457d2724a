/// @file checkpoint_files.cpp
/// Deterministic random initialization and atomic checkpoint-directory writing (no libtorch).
#include "metareward/torch_model/checkpoint_files.hpp"
#include "metareward/sdk/file_io.hpp"

#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numbers>
#include <sstream>

#include "metareward/sdk/error.hpp"

namespace mr::torch_backend {
namespace {

namespace fs = std::filesystem;
using mr::sdk::BackendError;
using mr::sdk::detail::concat;

// Values are drawn in independent chunks so a tensor's values depend only on (seed, name, index)
// and chunks could be filled in parallel.
constexpr std::size_t kChunk = 1 << 16;

std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::uint64_t fnv1a(std::string_view text) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : text) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

// Standard normal samples (Box-Muller on splitmix64 uniforms) times `stddev`.
void fill_normal(std::span<float> out, std::uint64_t seed, std::string_view name, double stddev) {
  const std::uint64_t name_hash = fnv1a(name);
  for (std::size_t start = 0; start < out.size(); start += kChunk) {
    std::uint64_t state = seed;
    splitmix64(state);
    state ^= name_hash;
    splitmix64(state);
    state ^= static_cast<std::uint64_t>(start / kChunk) * 0xd1b54a32d192ed03ULL;
    const std::size_t end = std::min(out.size(), start + kChunk);
    for (std::size_t i = start; i < end; i += 2) {
      const double u1 = static_cast<double>((splitmix64(state) >> 11) + 1) * 0x1.0p-53;  // (0, 1]
      const double u2 = static_cast<double>(splitmix64(state) >> 11) * 0x1.0p-53;        // [0, 1)
      const double r = std::sqrt(-2.0 * std::log(u1)) * stddev;
      const double a = 2.0 * std::numbers::pi * u2;
      out[i] = static_cast<float>(r * std::cos(a));
      if (i + 1 < end) out[i + 1] = static_cast<float>(r * std::sin(a));
    }
  }
}

std::string read_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw BackendError(concat("cannot read '", file.string(), "'"));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

std::uint16_t float_to_bf16(float value) {
  std::uint32_t bits = std::bit_cast<std::uint32_t>(value);
  if (std::isnan(value)) return static_cast<std::uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fff + ((bits >> 16) & 1);
  return static_cast<std::uint16_t>(bits >> 16);
}

void init_parameter_values(const ModelConfig& config,
                           const ParameterSpec& spec,
                           std::uint64_t seed,
                           std::span<float> out) {
  switch (spec.init) {
    case ParameterSpec::Init::kZeros:
      std::fill(out.begin(), out.end(), 0.0f);
      break;
    case ParameterSpec::Init::kOnes:
      std::fill(out.begin(), out.end(), 1.0f);
      break;
    case ParameterSpec::Init::kNormal:
      fill_normal(out, seed, spec.name, config.initializer_range);
      break;
  }
}

std::string config_json_with_dtype(const ModelConfig& config, const std::string& torch_dtype) {
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(config.json);
  j["torch_dtype"] = torch_dtype;
  return j.dump(2) + "\n";
}

std::string generation_config_json(const ModelConfig& config) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  j["_from_model_config"] = true;
  if (config.bos_token_id) j["bos_token_id"] = *config.bos_token_id;
  if (config.eos_token_ids.size() == 1) {
    j["eos_token_id"] = config.eos_token_ids[0];
  } else if (!config.eos_token_ids.empty()) {
    j["eos_token_id"] = config.eos_token_ids;
  }
  if (config.pad_token_id) j["pad_token_id"] = *config.pad_token_id;
  return j.dump(2) + "\n";
}

StagingDirectory::StagingDirectory(fs::path dir) : dir_(std::move(dir)) {
  if (dir_.filename().empty()) dir_ = dir_.parent_path();  // "out/" -> "out"
  temp_ = fs::path(concat(dir_.string(), ".tmp.", ::getpid()));
  std::error_code ec;
  fs::remove_all(temp_, ec);  // Left over by a crashed process that had our pid.
  if (!dir_.parent_path().empty()) fs::create_directories(dir_.parent_path(), ec);
  if (!fs::create_directory(temp_, ec) || ec) {
    throw BackendError(concat("cannot create directory '", temp_.string(), "': ", ec.message()));
  }
}

StagingDirectory::~StagingDirectory() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(temp_, ec);
  }
}

void StagingDirectory::commit() {
  sdk::fsync_directory(temp_);
  std::error_code ec;
  fs::path old;
  if (fs::exists(dir_, ec)) {
    old = fs::path(concat(dir_.string(), ".old.", ::getpid()));
    fs::remove_all(old, ec);
    fs::rename(dir_, old, ec);
    if (ec) {
      throw BackendError(
          concat("cannot move '", dir_.string(), "' aside to replace it: ", ec.message()));
    }
  }
  fs::rename(temp_, dir_, ec);
  if (ec) {
    std::error_code ignored;
    if (!old.empty()) fs::rename(old, dir_, ignored);
    throw BackendError(
        concat("cannot rename '", temp_.string(), "' to '", dir_.string(), "': ", ec.message()));
  }
  committed_ = true;
  if (!old.empty()) fs::remove_all(old, ec);
  fs::path parent = dir_.parent_path();
  sdk::fsync_directory(parent.empty() ? fs::path(".") : parent);
}

void copy_tokenizer_files(const fs::path& from,
                          const fs::path& to,
                          bool require_tokenizer_json,
                          bool include_generation_config) {
  std::error_code ec;
  if (require_tokenizer_json && !fs::is_regular_file(from / "tokenizer.json", ec)) {
    throw BackendError(concat("tokenizer directory '", from.string(), "' has no tokenizer.json"));
  }
  std::vector<std::string> names = {"tokenizer.json", "tokenizer_config.json",
                                    "special_tokens_map.json"};
  if (include_generation_config) names.emplace_back("generation_config.json");
  for (const auto& name : names) {
    if (!fs::is_regular_file(from / name, ec)) continue;
    sdk::write_file_atomic(to / name, read_file(from / name));
  }
}

void init_random_checkpoint(const fs::path& config_json,
                            const fs::path& out_dir,
                            const InitOptions& options) {
  using safetensors::DType;
  const ModelConfig config = parse_model_config(config_json);
  if (options.dtype != DType::kF32 && options.dtype != DType::kBF16) {
    throw BackendError(concat("init_random_checkpoint: unsupported dtype ",
                              safetensors::dtype_name(options.dtype), " (supported: F32, BF16)"));
  }
  const bool bf16 = options.dtype == DType::kBF16;
  const auto params = parameter_specs(config);

  StagingDirectory staging(out_dir);
  std::vector<safetensors::TensorSpec> specs;
  std::map<std::string, const ParameterSpec*, std::less<>> by_name;
  for (const auto& p : params) {
    specs.push_back({p.name, options.dtype, p.shape});
    by_name.emplace(p.name, &p);
  }
  std::vector<float> values;
  safetensors::write_file(staging.path() / "model.safetensors", std::move(specs),
                          [&](const safetensors::TensorSpec& spec, std::span<std::byte> out) {
                            const std::size_t n = out.size() / safetensors::dtype_size(spec.dtype);
                            values.resize(n);
                            init_parameter_values(config, *by_name.at(spec.name), options.seed,
                                                  values);
                            if (bf16) {
                              for (std::size_t i = 0; i < n; ++i) {
                                std::uint16_t b = float_to_bf16(values[i]);
                                std::memcpy(out.data() + 2 * i, &b, 2);
                              }
                            } else {
                              std::memcpy(out.data(), values.data(), n * sizeof(float));
                            }
                          },
                          {{"format", "pt"}});
  sdk::write_file_atomic(staging.path() / "config.json",
                         config_json_with_dtype(config, bf16 ? "bfloat16" : "float32"));
  sdk::write_file_atomic(staging.path() / "generation_config.json", generation_config_json(config));
  if (options.tokenizer_dir) {
    copy_tokenizer_files(*options.tokenizer_dir, staging.path(), /*require_tokenizer_json=*/true,
                         /*include_generation_config=*/false);
  }
  staging.commit();
}

void init_random_checkpoint(const fs::path& config_json,
                            const fs::path& out_dir,
                            std::uint64_t seed,
                            const std::optional<fs::path>& tokenizer_dir) {
  InitOptions options;
  options.seed = seed;
  options.tokenizer_dir = tokenizer_dir;
  init_random_checkpoint(config_json, out_dir, options);
}

}  // namespace mr::torch_backend
