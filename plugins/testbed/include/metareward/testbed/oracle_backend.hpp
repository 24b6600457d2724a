/// @file oracle_backend.hpp
/// `[models.NAME] type = "testbed_oracle"`: a model backend that plays judge and/or meta-judge
/// from the oracle with set imperfections, so that each of the method's claims can be tested
/// against a judge of known quality. It reads the prompts the real roles send (the configured
/// judge / meta-judge templates, recognised by their literal text) and writes judgments
/// ("... Score: S", judgment_text) and verdicts ("Winner: Judgement A") in the formats the
/// recipe's `additive5` and `pairwise_elo` parse, so it drops into `[roles]` unchanged.
///
/// Judge: with probability `judge_accuracy` the judgment states the oracle score, otherwise a
/// uniformly random score 0–5 (so 0 is a judge that knows nothing); then `length_bias` points per
/// extra sentence of the response (stochastically rounded), clipped to 0–5.
/// Meta-judge: with probability `meta_position_bias` it names judgment A whatever they say;
/// otherwise, with probability `meta_accuracy`, the judgment whose score is closer to the oracle
/// (a coin when they are equally close), else the other one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "metareward/sdk/config.hpp"
#include "metareward/sdk/host.hpp"
#include "metareward/sdk/model_backend.hpp"

namespace mr::plugins::testbed {

/// Settings of a controlled judge / meta-judge (the `testbed_oracle` backend's config).
struct OracleBackendOptions {
  std::string judge_template;       ///< The `[judge_rubric] template` the run uses.
  std::string meta_judge_template;  ///< The `[meta_judge] template` the run uses.
  double judge_accuracy = 1.0;      ///< P(the judgment states the oracle score).
  double length_bias = 0.0;         ///< Points added per extra sentence of the response.
  double meta_accuracy = 1.0;       ///< P(the verdict names the better judgment), unbiased part.
  double meta_position_bias = 0.0;  ///< P(the verdict names A regardless).
  std::int64_t max_prompt_bytes = 65536;  ///< Longer prompts fail (the backend's "context").

  /// Reads and checks the `testbed_oracle` config; failures name the key.
  static OracleBackendOptions from_config(const mr::sdk::Config& config);
};

/// The `testbed_oracle` config schema.
mr::sdk::Schema oracle_backend_schema();

/// A prompt in the template's shape: the text each placeholder stood for, in template order,
/// or nullopt when `text` does not have the template's literal parts. Each placeholder but the
/// last takes the shortest text up to the next literal part; the last literal part must end the
/// text. Placeholders are `{name}`; `{{` / `}}` are literal braces.
std::optional<std::vector<std::string>> match_template(std::string_view template_text,
                                                       std::string_view text);

/// The number of sentences beyond the first in `response`: sentence ends ('.', '!' or '?'
/// followed by whitespace or the end) minus one, at least 0, counted on the trimmed text. A bare
/// answer ("42", "3, 5, 8") has none; the teacher's filler adds one per sentence.
int extra_sentences(std::string_view response);

/// Draws a controlled judgment's score for a response whose oracle score is `oracle`.
int controlled_judge_score(int oracle,
                           int extra_sentences,
                           const OracleBackendOptions& options,
                           std::uint64_t seed);

/// Draws a controlled verdict: true when it names judgment A. `score_a` / `score_b` are the
/// scores the two judgments state (nullopt when one does not parse: the other is closer).
bool controlled_verdict_a(int oracle,
                          std::optional<double> score_a,
                          std::optional<double> score_b,
                          const OracleBackendOptions& options,
                          std::uint64_t seed);

/// The backend. Deterministic per (request, seed, sample index); no model, no threads.
class OracleBackend final : public mr::sdk::ModelBackend {
 public:
  /// Reads `ctx.config()`; throws mr::sdk::ConfigError naming the key.
  explicit OracleBackend(mr::sdk::HostContext& ctx);
  mr::sdk::ModelInfo info() const override;
  /// One result per request. A prompt that matches neither template, or whose task the oracle
  /// does not know, fails alone (GenerationResult::error says why); the text is cut to
  /// max_new_tokens bytes (finish reason Length).
  std::vector<mr::sdk::GenerationResult> generate(
      const std::vector<mr::sdk::GenerationRequest>& requests) override;
  /// Bytes, as the testbed's byte-level tokenizer counts.
  std::int64_t count_tokens(std::string_view text) const override;
  /// Nothing to reload: the oracle does not learn. Accepts any directory.
  void reload(const std::filesystem::path& checkpoint_dir) override;

 private:
  mr::sdk::GenerationResult generate_one(const mr::sdk::GenerationRequest& request) const;
  std::string name_;
  OracleBackendOptions options_;
};

}  // namespace mr::plugins::testbed
