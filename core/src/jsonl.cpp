// JSONL readers and atomic writers for prompts, pairs and SFT data.
#include "metareward/core/jsonl.hpp"

#include "metareward/core/artifact_io.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "metareward/sdk/error.hpp"

namespace mr::core {

namespace {

using json = nlohmann::json;

/// A row-level problem: the row is dropped and counted under `reason`.
struct RowError {
  std::string reason;  ///< Short, countable: "not valid JSON", "no prompt", ...
  std::string detail;  ///< Extra text for the log line.
};

constexpr int kMaxLoggedDrops = 20;

/// Reads non-blank lines, parses JSON objects and hands them to `convert`, counting drops.
template <class Row>
std::vector<Row> read_rows(
    std::istream& in,
    const std::string& source,
    JsonlStats& stats,
    const std::function<void(const json&, std::int64_t, std::vector<Row>&)>& convert) {
  std::vector<Row> rows;
  std::string line;
  std::int64_t number = 0;
  int logged = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    ++stats.rows;
    try {
      json doc;
      try {
        doc = json::parse(line);
      } catch (const json::parse_error& e) {
        throw RowError{"not valid JSON", e.what()};
      }
      if (!doc.is_object()) throw RowError{"not a JSON object", ""};
      convert(doc, number, rows);
      ++stats.accepted;
    } catch (const RowError& e) {
      ++stats.dropped[e.reason];
      if (logged++ < kMaxLoggedDrops)
        spdlog::warn("{}:{}: row dropped: {}{}", source, number, e.reason,
                     e.detail.empty() ? "" : " (" + e.detail + ")");
      else if (logged == kMaxLoggedDrops + 1)
        spdlog::warn("{}: further dropped rows are counted but not logged", source);
    }
  }
  if (in.bad()) throw sdk::DataError(source + ": read error after line " + std::to_string(number));
  return rows;
}

std::string string_field(const json& doc, const char* key) {
  auto it = doc.find(key);
  if (it == doc.end() || it->is_null()) return "";
  if (!it->is_string()) throw RowError{std::string("'") + key + "' is not a string", ""};
  return it->get<std::string>();
}

sdk::Conversation parse_messages(const json& value, const char* key) {
  if (!value.is_array()) throw RowError{std::string("'") + key + "' is not an array", ""};
  sdk::Conversation out;
  for (const auto& m : value) {
    if (!m.is_object() || !m.contains("role") || !m.contains("content") || !m["role"].is_string() ||
        !m["content"].is_string())
      throw RowError{std::string("bad message in '") + key + "'",
                     "each message needs string 'role' and 'content'"};
    const std::string role = m["role"].get<std::string>();
    if (role != "system" && role != "user" && role != "assistant")
      throw RowError{"unknown role", role};
    out.push_back({role, m["content"].get<std::string>()});
  }
  if (out.empty()) throw RowError{std::string("'") + key + "' is empty", ""};
  return out;
}

/// The prompt conversation of a row: "messages", "prompt" or "instruction" (+ "input").
sdk::Conversation prompt_of(const json& doc) {
  if (doc.contains("messages")) return parse_messages(doc["messages"], "messages");
  // The conversational preference format (TRL and others): "prompt" is a message list.
  if (doc.contains("prompt") && doc["prompt"].is_array())
    return parse_messages(doc["prompt"], "prompt");
  std::string text = string_field(doc, "prompt");
  if (text.empty()) {
    text = string_field(doc, "instruction");
    const std::string input = string_field(doc, "input");
    if (!text.empty() && !input.empty()) text += "\n\n" + input;
  }
  if (text.empty()) throw RowError{"no prompt", "expected 'prompt', 'messages' or 'instruction'"};
  return {{"user", text}};
}

std::string id_of(const json& doc, const std::string& source, std::int64_t line) {
  auto it = doc.find("id");
  if (it != doc.end()) {
    if (it->is_string()) return it->get<std::string>();
    if (it->is_number_integer()) return std::to_string(it->get<std::int64_t>());
  }
  return source + ":" + std::to_string(line);
}

/// A response given as a string or as a message list ending with the assistant's message.
std::string response_of(const json& doc, const char* key) {
  auto it = doc.find(key);
  if (it == doc.end()) throw RowError{std::string("no '") + key + "'", ""};
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array()) {
    sdk::Conversation c = parse_messages(*it, key);
    if (c.back().role != "assistant")
      throw RowError{std::string("'") + key + "' does not end with an assistant message", ""};
    return c.back().content;
  }
  throw RowError{std::string("'") + key + "' is not a string or message list", ""};
}

}  // namespace

std::int64_t JsonlStats::dropped_total() const {
  std::int64_t n = 0;
  for (const auto& [reason, count] : dropped) n += count;
  return n;
}

std::string JsonlStats::summary() const {
  std::ostringstream out;
  out << rows << " rows, " << accepted << " accepted, " << dropped_total() << " dropped";
  if (!dropped.empty()) {
    out << " (";
    bool first = true;
    for (const auto& [reason, count] : dropped) {
      out << (first ? "" : ", ") << reason << ": " << count;
      first = false;
    }
    out << ")";
  }
  return out.str();
}

std::vector<PromptRow> read_prompt_rows(std::istream& in,
                                        const std::string& source,
                                        JsonlStats& stats) {
  return read_rows<PromptRow>(in, source, stats,
                              [&](const json& doc, std::int64_t line, std::vector<PromptRow>& out) {
                                out.push_back({id_of(doc, source, line), prompt_of(doc), line});
                              });
}

std::vector<PairRow> read_pair_rows(std::istream& in,
                                    const std::string& source,
                                    JsonlStats& stats) {
  return read_rows<PairRow>(
      in, source, stats, [&](const json& doc, std::int64_t line, std::vector<PairRow>& out) {
        PairRow row{id_of(doc, source, line), prompt_of(doc), response_of(doc, "chosen"),
                    response_of(doc, "rejected")};
        if (row.chosen == row.rejected) throw RowError{"chosen equals rejected", ""};
        for (auto [key, flag] : {std::pair{"chosen_truncated", &row.chosen_truncated},
                                 std::pair{"rejected_truncated", &row.rejected_truncated}}) {
          auto it = doc.find(key);
          if (it == doc.end() || it->is_null()) continue;
          if (!it->is_boolean()) throw RowError{std::string("'") + key + "' is not a boolean", ""};
          *flag = it->get<bool>();
        }
        out.push_back(std::move(row));
      });
}

std::vector<PairRow> read_score_rows(std::istream& in,
                                     const std::string& source,
                                     JsonlStats& stats) {
  return read_rows<PairRow>(
      in, source, stats, [&](const json& doc, std::int64_t line, std::vector<PairRow>& out) {
        out.push_back(
            {id_of(doc, source, line), prompt_of(doc), response_of(doc, "completion"), ""});
      });
}

std::vector<PairRow> read_sft_rows(std::istream& in, const std::string& source, JsonlStats& stats) {
  return read_rows<PairRow>(
      in, source, stats, [&](const json& doc, std::int64_t line, std::vector<PairRow>& out) {
        if (!doc.contains("messages")) throw RowError{"no 'messages'", ""};
        sdk::Conversation c = parse_messages(doc["messages"], "messages");
        const std::string id = id_of(doc, source, line);
        std::size_t turns = 0;
        for (std::size_t i = 0; i < c.size(); ++i) {
          if (c[i].role != "assistant") continue;
          if (i == 0) throw RowError{"assistant turn without a prompt", ""};
          sdk::Conversation prompt(c.begin(), c.begin() + static_cast<std::ptrdiff_t>(i));
          out.push_back({id + "#" + std::to_string(turns++), std::move(prompt), c[i].content, ""});
        }
        if (turns == 0) throw RowError{"no assistant turn", ""};
      });
}

std::vector<sdk::PreferencePair> to_preference_pairs(std::vector<PairRow> rows) {
  std::vector<sdk::PreferencePair> pairs;
  pairs.reserve(rows.size());
  for (auto& r : rows) {
    sdk::PreferencePair p;
    p.id = r.id;
    p.prompt_id = r.id;
    p.prompt = std::move(r.prompt);
    p.chosen = std::move(r.chosen);
    p.rejected = std::move(r.rejected);
    p.chosen_complete = !r.chosen_truncated;
    p.rejected_complete = !r.rejected_truncated;
    pairs.push_back(std::move(p));
  }
  return pairs;
}

std::unique_ptr<std::istream> open_input(const std::string& path) {
  if (path == "-") {
    auto in = std::make_unique<std::istream>(std::cin.rdbuf());
    return in;
  }
  auto file = std::make_unique<std::ifstream>(path);
  if (!*file) throw sdk::DataError("cannot open input file '" + path + "'");
  return file;
}

void write_lines_atomic(const std::string& path, const std::vector<std::string>& lines) {
  if (path == "-") {
    for (const auto& l : lines) std::cout << l << "\n";
    std::cout.flush();
    return;
  }
  std::string text;
  for (const auto& l : lines) text.append(l).push_back('\n');
  write_file_atomic(path, text);  // checked: a full disk names the file and the reason
}

std::string conversation_json(const sdk::Conversation& conversation) {
  json out = json::array();
  for (const auto& m : conversation) out.push_back({{"role", m.role}, {"content", m.content}});
  return out.dump();
}

}  // namespace mr::core
