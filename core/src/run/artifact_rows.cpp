// Row codecs of the run's artifacts (artifact_rows.hpp): how each stage's results become JSONL
// rows and how the next stage reads them back.
#include "metareward/core/run/artifact_rows.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "metareward/core/artifact_io.hpp"
#include "metareward/sdk/error.hpp"

namespace mr::core::rows {

namespace fs = std::filesystem;

json conversation_to_json(const sdk::Conversation& c) {
  json a = json::array();
  for (const auto& m : c) a.push_back({{"role", m.role}, {"content", m.content}});
  return a;
}

sdk::Conversation conversation_from_json(const json& a) {
  sdk::Conversation c;
  for (const auto& m : a)
    c.push_back({m.at("role").get<std::string>(), m.at("content").get<std::string>()});
  return c;
}

std::int64_t utf8_length(const std::string& s) {
  std::int64_t n = 0;
  for (unsigned char ch : s)
    if ((ch & 0xC0) != 0x80) ++n;
  return n;
}

const char* finish_name(sdk::FinishReason r) {
  switch (r) {
    case sdk::FinishReason::Stop:
      return "stop";
    case sdk::FinishReason::Length:
      return "length";
    case sdk::FinishReason::Error:
      return "error";
  }
  return "error";
}

json opt_number(const std::optional<double>& v) {
  return v ? json(*v) : json(nullptr);
}

double mean(const std::vector<double>& v) {
  if (v.empty()) return 0.0;
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

double stddev(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size()));
}

/// Parses one line of an artifact the run itself wrote; a bad line means the directory was
/// edited or corrupted, which resuming cannot repair silently.
json parse_artifact_line(const std::string& line, const fs::path& file, std::size_t index) {
  try {
    return json::parse(line);
  } catch (const json::exception& e) {
    throw sdk::DataError(file.string() + ":" + std::to_string(index + 1) + ": not valid JSON (" +
                         e.what() +
                         "); the run directory is damaged: delete this file to redo its stage");
  }
}

std::vector<json> read_artifact(const fs::path& file) {
  std::vector<json> rows;
  const auto lines = read_complete_lines(file);
  rows.reserve(lines.size());
  for (std::size_t i = 0; i < lines.size(); ++i)
    rows.push_back(parse_artifact_line(lines[i], file, i));
  return rows;
}

std::string pair_role_name(sdk::PairRole r) {
  return r == sdk::PairRole::Actor ? "actor" : "judge";
}

std::string pair_json(const sdk::PreferencePair& p) {
  json meta = json::object();
  for (const auto& [k, v] : p.meta) meta[k] = v;
  json row = {{"id", p.id},
              {"role", pair_role_name(p.role)},
              {"prompt", conversation_to_json(p.prompt)},
              {"chosen", json::array({{{"role", "assistant"}, {"content", p.chosen}}})},
              {"rejected", json::array({{{"role", "assistant"}, {"content", p.rejected}}})},
              {"prompt_id", p.prompt_id},
              {"chosen_id", p.chosen_id},
              {"rejected_id", p.rejected_id},
              {"chosen_score", opt_number(p.chosen_score)},
              {"rejected_score", opt_number(p.rejected_score)},
              {"meta", meta}};
  // Only when true, so pairs of complete responses keep their documented shape.
  if (!p.chosen_complete) row["chosen_truncated"] = true;
  if (!p.rejected_complete) row["rejected_truncated"] = true;
  return row.dump();
}

// ---------------------------------------------------------------------------------------------
// Rows of the generation stages

std::string prompt_row(const std::string& prompt_id,
                       const sdk::Conversation& messages,
                       const std::string& source) {
  return json({{"prompt_id", prompt_id},
               {"messages", conversation_to_json(messages)},
               {"source", source}})
      .dump();
}

void response_rows(const sdk::GenerationResult& r, std::vector<std::string>& lines) {
  if (!r.error.empty()) {
    lines.push_back(
        json({{"prompt_id", r.request_id}, {"response_id", nullptr}, {"error", r.error}}).dump());
    return;
  }
  for (std::size_t k = 0; k < r.completions.size(); ++k) {
    const auto& c = r.completions[k];
    lines.push_back(json({{"prompt_id", r.request_id},
                          {"response_id", r.request_id + "/r" + std::to_string(k)},
                          {"sample", k},
                          {"text", c.text},
                          {"tokens", c.tokens},
                          {"length_chars", utf8_length(c.text)},
                          {"finish_reason", finish_name(c.finish_reason)}})
                        .dump());
  }
}

std::string judgment_id(const std::string& response_id, std::size_t sample) {
  return response_id + "/j" + std::to_string(sample);
}

void judgment_rows(
    const std::string& prompt_id,
    const sdk::GenerationResult& r,
    const std::function<sdk::ParsedScore(std::size_t sample, const std::string& text)>& parse,
    std::vector<std::string>& lines) {
  if (!r.error.empty()) {
    lines.push_back(json({{"prompt_id", prompt_id},
                          {"response_id", r.request_id},
                          {"judgment_id", nullptr},
                          {"error", r.error}})
                        .dump());
    return;
  }
  for (std::size_t k = 0; k < r.completions.size(); ++k) {
    const auto& c = r.completions[k];
    const sdk::ParsedScore parsed = parse(k, c.text);
    json row = {{"prompt_id", prompt_id},
                {"response_id", r.request_id},
                {"judgment_id", judgment_id(r.request_id, k)},
                {"sample", k},
                {"text", c.text},
                {"score", opt_number(parsed.score)}};
    if (!parsed.score) row["parse_error"] = parsed.error.empty() ? "no score" : parsed.error;
    row["tokens"] = c.tokens;
    row["finish_reason"] = finish_name(c.finish_reason);
    lines.push_back(row.dump());
  }
}

// ---------------------------------------------------------------------------------------------
// Reading artifacts back

std::vector<sdk::PromptGroup> read_responses(
    const fs::path& file, const std::map<std::string, const PoolPrompt*>& prompt_by_id) {
  std::vector<sdk::PromptGroup> groups;
  std::map<std::string, std::size_t> index;
  const auto rows = read_artifact(file);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const json& row = rows[i];
    try {
      const std::string prompt_id = row.at("prompt_id").get<std::string>();
      auto it = prompt_by_id.find(prompt_id);
      if (it == prompt_by_id.end()) throw sdk::DataError("unknown prompt_id '" + prompt_id + "'");
      auto [pos, inserted] = index.emplace(prompt_id, groups.size());
      if (inserted) groups.push_back({prompt_id, it->second->messages, {}});
      if (row.at("response_id").is_null()) continue;  // The request failed; counted in metrics.
      sdk::ResponseCandidate r;
      r.id = row.at("response_id").get<std::string>();
      r.text = row.at("text").get<std::string>();
      r.length_chars = row.at("length_chars").get<std::int64_t>();
      r.length_tokens = row.at("tokens").get<std::int64_t>();
      r.finish_reason = row.value("finish_reason", std::string("stop")) == "length"
                            ? sdk::FinishReason::Length
                            : sdk::FinishReason::Stop;
      groups[pos->second].responses.push_back(std::move(r));
    } catch (const json::exception& e) {
      throw sdk::DataError(file.string() + ":" + std::to_string(i + 1) + ": " + e.what());
    }
  }
  return groups;
}

/// Attaches judgments to `groups` and returns the judge metrics.
json read_judgments(const fs::path& file, std::vector<sdk::PromptGroup>& groups) {
  std::map<std::string, sdk::ResponseCandidate*> by_id;
  for (auto& g : groups)
    for (auto& r : g.responses) by_id[r.id] = &r;
  std::int64_t judgments = 0, failed = 0, parsed = 0;
  std::vector<double> scores;
  std::map<std::int64_t, std::int64_t> histogram;
  const auto rows = read_artifact(file);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const json& row = rows[i];
    try {
      auto it = by_id.find(row.at("response_id").get<std::string>());
      if (it == by_id.end())
        throw sdk::DataError("unknown response_id '" + row.at("response_id").get<std::string>() +
                             "'");
      if (row.at("judgment_id").is_null()) {
        ++failed;
        continue;
      }
      ++judgments;
      sdk::Judgment j;
      j.id = row.at("judgment_id").get<std::string>();
      j.text = row.at("text").get<std::string>();
      if (!row.at("score").is_null()) {
        j.score = row.at("score").get<double>();
        ++parsed;
        scores.push_back(*j.score);
        ++histogram[static_cast<std::int64_t>(std::llround(*j.score))];
      }
      it->second->judgments.push_back(std::move(j));
    } catch (const json::exception& e) {
      throw sdk::DataError(file.string() + ":" + std::to_string(i + 1) + ": " + e.what());
    }
  }
  std::int64_t unscored = 0;
  for (auto& g : groups)
    for (auto& r : g.responses) {
      std::vector<double> valid;
      for (const auto& j : r.judgments)
        if (j.score) valid.push_back(*j.score);
      if (valid.empty())
        ++unscored;
      else
        r.mean_score = mean(valid);
    }
  json hist = json::object();
  for (const auto& [bin, n] : histogram) hist[std::to_string(bin)] = n;
  return {{"judgments", judgments},
          {"failed_requests", failed},
          {"parsed", parsed},
          {"parse_failures", judgments - parsed},
          {"parse_failure_rate",
           judgments > 0 ? static_cast<double>(judgments - parsed) / judgments : 0.0},
          {"score_mean", mean(scores)},
          {"score_std", stddev(scores)},
          {"score_histogram", hist},
          {"responses_without_score", unscored}};
}

json actor_metrics(const fs::path& file) {
  std::int64_t requests = 0, failed = 0, responses = 0, at_length = 0;
  std::vector<double> chars, tokens;
  std::set<std::string> prompts;
  for (const json& row : read_artifact(file)) {
    prompts.insert(row.at("prompt_id").get<std::string>());
    if (row.at("response_id").is_null()) {
      ++failed;
      continue;
    }
    ++responses;
    chars.push_back(row.at("length_chars").get<double>());
    tokens.push_back(row.at("tokens").get<double>());
    if (row.at("finish_reason") == "length") ++at_length;
  }
  requests = static_cast<std::int64_t>(prompts.size());
  return {{"requests", requests},        {"failed_requests", failed},
          {"responses", responses},      {"mean_length_chars", mean(chars)},
          {"mean_tokens", mean(tokens)}, {"finish_length", at_length}};
}

json battle_row(const sdk::BattleRequest& b, const sdk::GenerationResult& r) {
  json row = {{"id", b.id},
              {"prompt_id", b.prompt_id},
              {"response_id", b.response_id},
              {"judgment_a_id", b.judgment_a_id},
              {"judgment_b_id", b.judgment_b_id}};
  if (!r.error.empty() || r.completions.empty()) {
    row["verdict_text"] = "";
    row["error"] = r.error.empty() ? "no completion" : r.error;
    row["tokens"] = 0;
    row["finish_reason"] = "error";
  } else {
    row["verdict_text"] = r.completions[0].text;
    row["tokens"] = r.completions[0].tokens;
    row["finish_reason"] = finish_name(r.completions[0].finish_reason);
  }
  return row;
}

std::vector<sdk::Battle> read_battles(const fs::path& file,
                                      const std::vector<sdk::BattleRequest>& plan,
                                      std::vector<json>& rows_out) {
  const auto rows = read_artifact(file);
  if (rows.size() != plan.size())
    throw sdk::DataError(file.string() + " has " + std::to_string(rows.size()) +
                         " battles but the meta-judge planned " + std::to_string(plan.size()) +
                         "; delete it to redo the stage");
  std::vector<sdk::Battle> battles;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].value("id", std::string()) != plan[i].id)
      throw sdk::DataError(file.string() + ":" + std::to_string(i + 1) + ": battle '" +
                           rows[i].value("id", std::string()) + "' where '" + plan[i].id +
                           "' was planned; delete the file to redo the stage");
    sdk::Battle b;
    b.request = plan[i];
    b.verdict_text = rows[i].value("verdict_text", std::string());
    battles.push_back(std::move(b));
  }
  rows_out = rows;
  return battles;
}

void write_battles(const fs::path& file,
                   const std::vector<sdk::Battle>& battles,
                   const std::vector<json>& rows) {
  // Same rows as generated, outcome added.
  std::map<std::string, int> outcome;
  for (const auto& b : battles) outcome[b.request.id] = b.outcome;
  std::string text;
  for (json row : rows) {
    auto it = outcome.find(row.at("id").get<std::string>());
    row["outcome"] = it == outcome.end() ? 0 : it->second;
    text += row.dump() + "\n";
  }
  write_file_atomic(file, text);
}

void write_pairs(const fs::path& file, const std::vector<sdk::PreferencePair>& pairs) {
  std::string text;
  for (const auto& p : pairs) text += pair_json(p) + "\n";
  write_file_atomic(file, text);
}

json pair_metrics(const std::vector<sdk::PreferencePair>& pairs, bool scores) {
  std::vector<double> chosen_len, rejected_len, chosen_score, rejected_score;
  for (const auto& p : pairs) {
    chosen_len.push_back(static_cast<double>(utf8_length(p.chosen)));
    rejected_len.push_back(static_cast<double>(utf8_length(p.rejected)));
    if (p.chosen_score) chosen_score.push_back(*p.chosen_score);
    if (p.rejected_score) rejected_score.push_back(*p.rejected_score);
  }
  json m = {{"pairs", pairs.size()},
            {"chosen_length_mean", mean(chosen_len)},
            {"rejected_length_mean", mean(rejected_len)}};
  if (scores) {
    m["chosen_score_mean"] = mean(chosen_score);
    m["rejected_score_mean"] = mean(rejected_score);
  }
  return m;
}

// ---------------------------------------------------------------------------------------------
// Training metrics

/// Writes train_metrics.jsonl from the streamed rows: one row per step (the last one written
/// for a step wins: it is the step as finally taken), torn lines from a crash skipped.
void finalize_train_metrics(const fs::path& partial, const fs::path& file) {
  std::map<std::int64_t, std::string> rows;
  for (const auto& line : read_complete_lines(partial)) {
    try {
      rows[json::parse(line).at("step").get<std::int64_t>()] = line;
    } catch (const json::exception&) {
    }
  }
  std::string text;
  for (const auto& [step, line] : rows) text += line + "\n";
  write_file_atomic(file, text);
  std::error_code ec;
  fs::remove(partial, ec);
}

}  // namespace mr::core::rows
