/// @file test_host_context.hpp
/// Test doubles for the host side of the SDK: a HostContext holding a Config built from a
/// plugin's schema defaults plus overrides, a logger that records messages, and a schema checker.
/// Test-only, header-only, never installed.
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "metareward/sdk/config.hpp"
#include "metareward/sdk/host.hpp"

namespace mr::test {

/// Records every message (thread-safe) so tests can assert on warnings.
class RecordingLogger : public sdk::Logger {
 public:
  void log(sdk::LogLevel level, std::string_view message) override {
    std::lock_guard<std::mutex> lock(mutex_);
    messages_.emplace_back(level, std::string(message));
  }
  bool enabled(sdk::LogLevel) const override { return true; }
  /// Copy of the messages logged so far.
  std::vector<std::pair<sdk::LogLevel, std::string>> messages() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return messages_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::pair<sdk::LogLevel, std::string>> messages_;
};

/// Progress that counts and shows nothing.
class CountingProgress : public sdk::Progress {
 public:
  void advance(std::uint64_t items, std::uint64_t tokens) override {
    items_ += items;
    tokens_ += tokens;
  }
  std::uint64_t items_ = 0, tokens_ = 0;
};

/// Reason `value` does not satisfy `spec` (type, range, choices, per-iteration arrays), or "".
/// A small stand-in for the host's validation, used to check schema defaults and test configs.
inline std::string check_value(const sdk::ParamSpec& spec, const sdk::Value& value) {
  auto check_scalar = [&spec](const sdk::Value& v) -> std::string {
    switch (spec.type) {
      case sdk::ParamType::Bool:
        if (!v.is_bool()) return "expected bool";
        return "";
      case sdk::ParamType::Int:
        if (!v.is_int()) return "expected int";
        break;
      case sdk::ParamType::Float:
        if (!v.is_number()) return "expected float";
        break;
      case sdk::ParamType::String:
        if (!v.is_string()) return "expected string";
        if (!spec.choices.empty()) {
          for (const auto& c : spec.choices)
            if (c == v.as_string()) return "";
          return "'" + v.as_string() + "' is not " + spec.constraint_text();
        }
        return "";
      case sdk::ParamType::StringList:
        if (!v.is_array()) return "expected string list";
        for (const auto& e : v.as_array())
          if (!e.is_string()) return "expected string list";
        return "";
    }
    const double x = v.as_float();
    if (!std::isfinite(x)) return "not finite";
    if (spec.min && (spec.min_exclusive ? x <= *spec.min : x < *spec.min))
      return std::to_string(x) + " violates " + spec.constraint_text();
    if (spec.max && (spec.max_exclusive ? x >= *spec.max : x > *spec.max))
      return std::to_string(x) + " violates " + spec.constraint_text();
    return "";
  };
  if (spec.per_iteration && value.is_array() && spec.type != sdk::ParamType::StringList) {
    if (value.as_array().empty()) return "empty per-iteration array";
    for (const auto& e : value.as_array())
      if (auto why = check_scalar(e); !why.empty()) return why;
    return "";
  }
  return check_scalar(value);
}

/// A Config with every schema default filled in and `overrides` applied on top. Throws
/// std::invalid_argument for an override key the schema does not declare or (with `validate`) a
/// value that fails check_value(), so a typo in a test cannot silently test the default. Pass
/// validate = false to hand a plugin a value the host would reject, to test the plugin's own
/// checks.
inline sdk::Config config_from_schema(const sdk::Schema& schema,
                                      sdk::Table overrides = {},
                                      int iterations = 1,
                                      std::string path = "test",
                                      bool validate = true) {
  sdk::Table values;
  for (const auto& spec : schema)
    if (!spec.required) values[spec.key] = spec.default_value;
  for (auto& [key, value] : overrides) {
    const sdk::ParamSpec* spec = nullptr;
    for (const auto& s : schema)
      if (s.key == key) spec = &s;
    if (spec == nullptr) throw std::invalid_argument("test config: unknown key '" + key + "'");
    if (auto why = check_value(*spec, value); validate && !why.empty())
      throw std::invalid_argument("test config: key '" + key + "': " + why);
    values[key] = value;
  }
  return sdk::Config(std::move(path), std::move(values), iterations);
}

/// A HostContext for constructing plugins in tests.
class TestHostContext : public sdk::HostContext {
 public:
  explicit TestHostContext(sdk::Config config, std::uint64_t seed = 1234)
      : config_(std::move(config)), seed_(seed) {}

  sdk::Logger& logger() override { return logger_; }
  std::unique_ptr<sdk::Progress> progress(std::string_view, std::uint64_t) override {
    return std::make_unique<CountingProgress>();
  }
  std::uint64_t seed() const override { return seed_; }
  const std::filesystem::path& run_dir() const override { return run_dir_; }
  int threads() const override { return 1; }
  const sdk::Config& config() const override { return config_; }

  RecordingLogger& recorder() { return logger_; }

 private:
  sdk::Config config_;
  std::uint64_t seed_;
  std::filesystem::path run_dir_;
  RecordingLogger logger_;
};

}  // namespace mr::test
