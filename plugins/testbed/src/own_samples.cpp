// Judge rows from the instruct model's own samples, graded by the noisy oracle.
#include "metareward/testbed/own_samples.hpp"

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>

#include "metareward/sdk/error.hpp"
#include "metareward/testbed/judge_data.hpp"
#include "metareward/testbed/rng.hpp"
#include "metareward/testbed/tasks.hpp"

namespace mr::plugins::testbed {
namespace {

using json = nlohmann::json;

constexpr std::uint64_t kStreamOwnSamples = 0x6f776eULL;  // "own"

void check_probability(const char* name, double p) {
  if (!(p >= 0.0 && p <= 1.0))
    throw mr::sdk::ConfigError(std::string(name) + " must be in [0, 1], got " + std::to_string(p));
}

void check_positive(const char* name, std::int64_t n) {
  if (n < 1)
    throw mr::sdk::ConfigError(std::string(name) + " must be >= 1, got " + std::to_string(n));
}

std::string numbered_own(std::size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "own-%06zu", i + 1);
  return buf;
}

// The user turn of a generated row, or why there is none.
std::optional<std::string> user_prompt(const json& row, std::string& why) {
  const auto messages = row.find("messages");
  if (messages == row.end() || !messages->is_array()) {
    why = "no \"messages\" array";
    return std::nullopt;
  }
  for (const auto& m : *messages)
    if (m.is_object() && m.value("role", "") == "user" && m.contains("content") &&
        m["content"].is_string())
      return m["content"].get<std::string>();
  why = "no user turn";
  return std::nullopt;
}

}  // namespace

void OwnSampleOptions::validate() const {
  if (prompts < 0)
    throw mr::sdk::ConfigError("own-sample prompts must be >= 0, got " + std::to_string(prompts));
  check_positive("own-sample samples", samples);
  check_positive("own-sample max_new_tokens", max_new_tokens);
  check_positive("own-sample epochs", epochs);
  if (!(temperature >= 0.0))
    throw mr::sdk::ConfigError("own-sample temperature must be >= 0, got " +
                               std::to_string(temperature));
  if (!(top_p > 0.0 && top_p <= 1.0))
    throw mr::sdk::ConfigError("own-sample top_p must be in (0, 1], got " + std::to_string(top_p));
  if (!(learning_rate > 0.0))
    throw mr::sdk::ConfigError("own-sample learning_rate must be > 0, got " +
                               std::to_string(learning_rate));
  check_probability("own-sample meta_share", meta_share);
  if (!(replay >= 0.0 && replay <= 10.0))
    throw mr::sdk::ConfigError("own-sample replay must be in [0, 10], got " +
                               std::to_string(replay));
}

double OwnSampleStats::accuracy() const {
  return samples > 0 ? static_cast<double>(correct) / static_cast<double>(samples) : 0.0;
}

OwnSampleJudgeData own_sample_judge_data(const std::vector<std::string>& generated,
                                         const std::vector<SftRow>& instruction_rows,
                                         const DatasetOptions& data,
                                         const OwnSampleOptions& own,
                                         std::uint64_t seed) {
  OwnSampleJudgeData out;
  OwnSampleStats& st = out.stats;
  Rng rng(stream_seed(seed, kStreamOwnSamples));
  auto drop = [&](std::size_t line, const std::string& why) {
    ++st.dropped;
    out.drops.push_back("line " + std::to_string(line + 1) + ": " + why);
  };
  for (std::size_t i = 0; i < generated.size(); ++i) {
    if (generated[i].find_first_not_of(" \t\r") == std::string::npos) continue;
    const json row = json::parse(generated[i], nullptr, /*allow_exceptions=*/false);
    if (!row.is_object()) {
      drop(i, "not a JSON object");
      continue;
    }
    std::string why;
    const auto prompt = user_prompt(row, why);
    if (!prompt) {
      drop(i, why);
      continue;
    }
    const auto task = parse_prompt(*prompt);
    if (!task) {
      drop(i, "not a testbed prompt: '" + *prompt + "'");
      continue;
    }
    const auto completions = row.find("completions");
    if (completions == row.end() || !completions->is_array()) {
      drop(i, "no \"completions\" array");
      continue;
    }
    ++st.prompts;
    const mr::sdk::Conversation conversation = {{"user", *prompt}};
    std::int64_t right = 0, graded = 0;
    for (const auto& c : *completions) {
      if (!c.is_object() || !c.contains("text") || !c["text"].is_string()) {
        drop(i, "a completion without \"text\"");
        continue;
      }
      const std::string text = c["text"].get<std::string>();
      const OracleScore oracle = oracle_score(*task, text);
      ++graded;
      ++st.samples;
      ++st.oracle_histogram[static_cast<std::size_t>(oracle.score)];
      if (oracle.correct()) ++st.correct, ++right;
      if (oracle.exact()) ++st.exact;
      // What the length bias reacts to: text besides the graded answer.
      const bool verbose = !oracle.candidate.empty() && trim_ascii(text) != oracle.candidate;
      SftRow judge;
      judge.kind = "judge";
      judge.messages = judge_conversation(conversation, text, data.judge_template);
      judge.messages.push_back({"assistant", judgment_text(noisy_judge_score(
                                                 oracle.score, verbose, data.judge_noise, rng))});
      out.rows.push_back(std::move(judge));
      ++st.judge_rows;
      if (rng.bernoulli(own.meta_share)) {
        const MetaJudgeExample e = meta_judge_example(oracle.score, data.meta_noise, rng);
        SftRow meta;
        meta.kind = "meta_judge";
        meta.messages = meta_judge_conversation(conversation, text, e.judgment_a, e.judgment_b,
                                                data.meta_template);
        meta.messages.push_back({"assistant", verdict_text(e.a_wins)});
        out.rows.push_back(std::move(meta));
        ++st.meta_rows;
      }
    }
    if (right > 0) ++st.prompts_with_correct;
    if (right > 0 && right < graded) ++st.prompts_mixed;
  }
  if (!instruction_rows.empty()) {
    const auto n = std::llround(own.replay * static_cast<double>(out.rows.size()));
    for (std::int64_t k = 0; k < n; ++k) {
      SftRow r = instruction_rows[static_cast<std::size_t>(k) % instruction_rows.size()];
      r.kind = "instruction";
      out.rows.push_back(std::move(r));
      ++st.replay_rows;
    }
  }
  rng.shuffle(out.rows);
  for (std::size_t i = 0; i < out.rows.size(); ++i) out.rows[i].id = numbered_own(i);
  return out;
}

}  // namespace mr::plugins::testbed
