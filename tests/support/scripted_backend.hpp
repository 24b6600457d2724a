/// @file scripted_backend.hpp
/// A ModelBackend test double that returns canned outputs: either from a function of the request
/// or from a queue consumed in order. Records every request. Test-only, never installed.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "metareward/sdk/model_backend.hpp"

namespace mr::test {

/// Canned-output backend. Not thread-safe (the SDK calls backends from one thread).
class ScriptedBackend : public sdk::ModelBackend {
 public:
  /// Returns the texts for one request; must return exactly `request.n` texts. Throwing, or a
  /// wrong count, turns into GenerationResult::error for that request.
  using Responder = std::function<std::vector<std::string>(const sdk::GenerationRequest&)>;

  /// Function mode.
  explicit ScriptedBackend(Responder responder, std::string name = "scripted");
  /// Queue mode: each sample takes the next text; an exhausted queue is a request error.
  explicit ScriptedBackend(std::deque<std::string> outputs, std::string name = "scripted");

  sdk::ModelInfo info() const override;
  std::vector<sdk::GenerationResult> generate(
      const std::vector<sdk::GenerationRequest>& requests) override;
  /// Whitespace-separated words: a deterministic stand-in for a tokenizer.
  std::int64_t count_tokens(std::string_view text) const override;

  /// Every request seen, in order.
  const std::vector<sdk::GenerationRequest>& requests() const { return requests_; }

 private:
  Responder responder_;
  std::deque<std::string> queue_;
  bool queue_mode_ = false;
  std::string name_;
  std::vector<sdk::GenerationRequest> requests_;
};

}  // namespace mr::test
