/// @file judge_data.hpp
/// Judge and meta-judge training examples for the seed model, rendered exactly as the recipe's
/// `additive5` rubric and `pairwise_elo` meta-judge render their prompts when configured with the
/// compact templates below (and no system prompt, `instruction_turns = "all"`). Targets come from
/// the oracle with noise; the judge is given a deliberate length bias, as LLM judges have one.
#pragma once

#include <string>
#include <string_view>

#include "metareward/sdk/types.hpp"
#include "metareward/testbed/oracle.hpp"
#include "metareward/testbed/rng.hpp"
#include "metareward/testbed/tasks.hpp"
#include "metareward/testbed/teacher.hpp"

namespace mr::plugins::testbed {

/// Compact judge template for `[judge_rubric] type = "additive5"`, `template = ...`.
inline constexpr const char* kTestbedJudgeTemplate =
    "Rate the answer 0-5.\nTask: {instruction}\nAnswer: {response}\n";

/// Compact meta-judge template for `[meta_judge] type = "pairwise_elo"`, `template = ...`.
inline constexpr const char* kTestbedMetaJudgeTemplate =
    "Which rating is right?\nTask: {instruction}\nAnswer: {response}\nA: {judgment_a}\n"
    "B: {judgment_b}\n";

/// Noise of the simulated judge that labels the judge data.
struct JudgeNoiseOptions {
  double p_score_noise = 0.2;  ///< Probability that the score moves by ±1 (random sign).
  double p_length_bias = 0.5;  ///< Probability that a verbose response gets +1 (after noise).
};

/// Noise of the simulated meta-judge that labels the meta-judge data.
struct MetaJudgeNoiseOptions {
  double p_flip = 0.1;        ///< Probability that the verdict names the worse judgment.
  double p_good_exact = 0.7;  ///< Probability that the better judgment's score is the oracle's.
};

/// A response shown to the judge in the judge / meta-judge data.
struct JudgedResponse {
  std::string text;
  bool verbose = false;   ///< Wrapped in teacher filler (what the length bias reacts to).
  bool off_task = false;  ///< The answer of another task, not of this one.
};

/// A teacher answer to `task` (teacher_answer with `teacher`), or with probability `p_off_task`
/// the answer to a fresh instance of another family (verbose with the teacher's p_verbose).
JudgedResponse sample_judged_response(const TaskInstance& task,
                                      const TeacherOptions& teacher,
                                      double p_off_task,
                                      Rng& rng);

/// The oracle score with noise: ±1 with probability p_score_noise, then +1 with probability
/// p_length_bias when `verbose`, clipped to 0..5.
int noisy_judge_score(int oracle, bool verbose, const JudgeNoiseOptions& noise, Rng& rng);

/// A short justification that agrees with `score` followed by " Score: S", e.g.
/// "Exact answer, nothing extra. Score: 5". `score` is clamped to 0..5.
std::string judgment_text(int score);

/// The meta-judge verdict line: "Winner: Judgement A" or "Winner: Judgement B".
std::string verdict_text(bool a_wins);

/// What `additive5` builds for (`prompt`, `response`) with template `judge_template`: one user
/// turn, `{instruction}` = the rendered conversation (a lone user turn bare), `{response}`.
mr::sdk::Conversation judge_conversation(const mr::sdk::Conversation& prompt,
                                         std::string_view response,
                                         std::string_view judge_template = kTestbedJudgeTemplate);

/// What `pairwise_elo` plans for one battle (judgment A shown first) with `meta_template`.
mr::sdk::Conversation meta_judge_conversation(
    const mr::sdk::Conversation& prompt,
    std::string_view response,
    std::string_view judgment_a,
    std::string_view judgment_b,
    std::string_view meta_template = kTestbedMetaJudgeTemplate);

/// Two judgments of one response and the labelled verdict.
struct MetaJudgeExample {
  int score_a = 0, score_b = 0;  ///< Scores written in the two judgments.
  std::string judgment_a, judgment_b;
  bool a_better = false;  ///< Judgment A's score is the closer one to the oracle.
  bool a_wins = false;    ///< The label (a_better, flipped with probability p_flip).
};

/// Draws two judgments of a response whose oracle score is `oracle`: a better one (the oracle
/// score with probability p_good_exact, else one off) and a worse one 1–2 points further away
/// (either side, within 0..5), in random order; the verdict picks the better, flipped with
/// probability p_flip.
MetaJudgeExample meta_judge_example(int oracle, const MetaJudgeNoiseOptions& noise, Rng& rng);

}  // namespace mr::plugins::testbed
