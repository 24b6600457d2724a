/// @file selection_common.hpp
/// Shared steps of the actor pair-selection policies: collecting a prompt's valid, de-duplicated
/// responses, tolerant score comparison and building the PreferencePair.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "metareward/sdk/config.hpp"
#include "metareward/sdk/types.hpp"

namespace mr::plugins::recipe {

/// Two mean scores closer than this are equal (means of several judge scores are not exact in
/// binary floating point; real score gaps are >= 1/N_judgments, far larger).
inline constexpr double kScoreEpsilon = 1e-9;

/// One usable response of a prompt.
struct Candidate {
  std::size_t index = 0;  ///< Position in PromptGroup::responses.
  const mr::sdk::ResponseCandidate* response = nullptr;
  double score = 0.0;       ///< mean_score.
  std::int64_t length = 0;  ///< In the policy's length unit.
};

/// Reads a response's length in the policy's unit; returns -1 when unknown.
using LengthFn = std::function<std::int64_t(const mr::sdk::ResponseCandidate&)>;

/// Which responses collect_candidates() lets into pairs.
struct CandidateRules {
  /// Drop a response whose text equals an earlier valid one (the earliest copy is kept).
  bool remove_duplicates = true;
  /// Keep responses cut at max_new_tokens (finish_reason length): they are not complete
  /// answers, and "rejected = longest" under length control would pick exactly those.
  bool allow_truncated = false;
};

/// The schema keys of CandidateRules, shared by the policies: remove_duplicates, allow_truncated.
std::vector<mr::sdk::ParamSpec> candidate_rule_schema();
/// CandidateRules from a config validated against candidate_rule_schema().
CandidateRules candidate_rules(const mr::sdk::Config& config);

/// The responses of `group` that can enter a pair, in response order: those with a mean score
/// and a known length, complete unless `rules.allow_truncated`, de-duplicated with
/// `rules.remove_duplicates`. Counts "response_without_valid_score", "truncated_response",
/// "duplicate_response" and "response_without_token_count" (length -1) in `drops`.
std::vector<Candidate> collect_candidates(const mr::sdk::PromptGroup& group,
                                          const CandidateRules& rules,
                                          const LengthFn& length,
                                          mr::sdk::DropCounts& drops);

/// An actor PreferencePair for `group` with provenance filled (id "<prompt_id>/actor").
mr::sdk::PreferencePair make_actor_pair(const mr::sdk::PromptGroup& group,
                                        const Candidate& chosen,
                                        const Candidate& rejected);

/// Lowest and highest candidate score of a prompt.
struct ScoreSpan {
  double min = 0.0;
  double max = 0.0;
};

/// The score span of `cands` when a pair is possible: at least 2 candidates and unequal scores
/// (beyond kScoreEpsilon). Otherwise counts "fewer_than_2_valid" or "all_scores_equal" in
/// `drops` and returns nullopt.
std::optional<ScoreSpan> pairable_span(const std::vector<Candidate>& cands,
                                       mr::sdk::DropCounts& drops);

/// Adds `n` to drops[reason] (only when n > 0, so absent means zero).
void count_drop(mr::sdk::DropCounts& drops, const std::string& reason, std::int64_t n = 1);

}  // namespace mr::plugins::recipe
