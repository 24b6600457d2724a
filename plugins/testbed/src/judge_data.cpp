// Judge / meta-judge examples: recipe-identical prompt rendering, oracle-derived noisy targets.
#include "metareward/testbed/judge_data.hpp"

#include <algorithm>
#include <array>
#include <vector>

#include "text_util.hpp"  // mr_recipe_impl: the substitution additive5 / pairwise_elo use

namespace mr::plugins::testbed {

namespace recipe = mr::plugins::recipe;

JudgedResponse sample_judged_response(const TaskInstance& task,
                                      const TeacherOptions& teacher,
                                      double p_off_task,
                                      Rng& rng) {
  JudgedResponse r;
  if (rng.bernoulli(p_off_task)) {
    // Any family but the task's own, so the answer is about something else.
    const auto offset = 1 + rng.uniform_below(kAllFamilies.size() - 1);
    std::size_t own = 0;
    while (kAllFamilies[own] != task.family) ++own;
    const TaskFamily other = kAllFamilies[(own + offset) % kAllFamilies.size()];
    const TaskInstance stranger = generate_instance(other, rng);
    r.off_task = true;
    r.text = stranger.answer;
    r.verbose = rng.bernoulli(teacher.p_verbose);
    if (r.verbose) r.text = wrap_verbose(r.text, rng);
    return r;
  }
  TeacherAnswer t = teacher_answer(task, teacher, rng);
  r.text = std::move(t.text);
  r.verbose = t.verbose;
  return r;
}

int noisy_judge_score(int oracle, bool verbose, const JudgeNoiseOptions& noise, Rng& rng) {
  int s = oracle;
  if (rng.bernoulli(noise.p_score_noise)) s += rng.bernoulli(0.5) ? 1 : -1;
  if (rng.bernoulli(noise.p_length_bias) && verbose) s += 1;
  return std::clamp(s, 0, kOracleCriteria);
}

std::string judgment_text(int score) {
  // One phrase per score, each naming the highest criterion the score claims.
  static constexpr std::array<std::string_view, kOracleCriteria + 1> kPhrases = {
      "Not an answer.",       "Right form, but wrong.",    "Partly right.",
      "Close, basics right.", "Correct, with extra text.", "Exact answer, nothing extra.",
  };
  const int s = std::clamp(score, 0, kOracleCriteria);
  return std::string(kPhrases[static_cast<std::size_t>(s)]) + " Score: " + std::to_string(s);
}

std::string verdict_text(bool a_wins) {
  return a_wins ? "Winner: Judgement A" : "Winner: Judgement B";
}

mr::sdk::Conversation judge_conversation(const mr::sdk::Conversation& prompt,
                                         std::string_view response,
                                         std::string_view judge_template) {
  const std::string instruction = recipe::render_instruction(prompt, recipe::InstructionTurns::All);
  return {{"user", recipe::substitute(judge_template,
                                      {{"instruction", instruction}, {"response", response}})}};
}

mr::sdk::Conversation meta_judge_conversation(const mr::sdk::Conversation& prompt,
                                              std::string_view response,
                                              std::string_view judgment_a,
                                              std::string_view judgment_b,
                                              std::string_view meta_template) {
  const std::string instruction = recipe::render_instruction(prompt, recipe::InstructionTurns::All);
  return {{"user", recipe::substitute(meta_template, {{"instruction", instruction},
                                                      {"response", response},
                                                      {"judgment_a", judgment_a},
                                                      {"judgment_b", judgment_b}})}};
}

namespace {

// oracle ± distance, a random side among those inside 0..5 (one always is for distance <= 5).
int score_at_distance(int oracle, int distance, Rng& rng) {
  std::vector<int> options;
  for (int s : {oracle - distance, oracle + distance})
    if (s >= 0 && s <= kOracleCriteria &&
        std::find(options.begin(), options.end(), s) == options.end())
      options.push_back(s);
  return rng.pick(options);
}

}  // namespace

MetaJudgeExample meta_judge_example(int oracle, const MetaJudgeNoiseOptions& noise, Rng& rng) {
  oracle = std::clamp(oracle, 0, kOracleCriteria);
  const int good_distance = rng.bernoulli(noise.p_good_exact) ? 0 : 1;
  const int bad_distance = good_distance + 1 + static_cast<int>(rng.uniform_below(2));
  const int good = score_at_distance(oracle, good_distance, rng);
  const int bad = score_at_distance(oracle, bad_distance, rng);
  MetaJudgeExample e;
  e.a_better = rng.bernoulli(0.5);
  e.score_a = e.a_better ? good : bad;
  e.score_b = e.a_better ? bad : good;
  e.judgment_a = judgment_text(e.score_a);
  e.judgment_b = judgment_text(e.score_b);
  e.a_wins = rng.bernoulli(noise.p_flip) ? !e.a_better : e.a_better;
  return e;
}

}  // namespace mr::plugins::testbed
