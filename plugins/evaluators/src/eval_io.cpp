// Instruction and pair readers, the durable record store, content keys (eval_io.hpp).
#include "metareward/evaluators/eval_io.hpp"
#include "metareward/sdk/file_io.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "metareward/sdk/error.hpp"
#include "text_util.hpp"  // mr_recipe_impl: stable_hash

namespace mr::plugins::evaluators {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string read_whole(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw sdk::DataError("cannot open '" + file.string() + "': " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw sdk::DataError("cannot read '" + file.string() + "'");
  return text.str();
}

/// The rows of a JSON array file or a JSONL file, each with its line number (array elements:
/// their index + 1). Unparsable JSONL lines go to `drops`.
std::vector<std::pair<std::size_t, json>> read_rows(const fs::path& file, Drops& drops) {
  const std::string text = read_whole(file);
  std::vector<std::pair<std::size_t, json>> rows;
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '[') {
    json doc = json::parse(text, nullptr, false);
    if (doc.is_discarded())
      throw sdk::DataError(file.string() + ": starts with '[' but is not a valid JSON array");
    for (std::size_t i = 0; i < doc.size(); ++i) rows.emplace_back(i + 1, std::move(doc[i]));
    return rows;
  }
  std::istringstream lines(text);
  std::string line;
  for (std::size_t n = 1; std::getline(lines, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json row = json::parse(line, nullptr, false);
    if (row.is_discarded() || !row.is_object()) {
      drops.reasons.push_back(file.string() + ":" + std::to_string(n) + ": not a JSON object");
      continue;
    }
    rows.emplace_back(n, std::move(row));
  }
  return rows;
}

std::string where(const fs::path& file, std::size_t line) {
  return file.string() + ":" + std::to_string(line);
}

/// A string field, or the text of a conversation's last message ([{"role","content"}]).
std::optional<std::string> text_of(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_array() && !value.empty() && value.back().is_object() &&
      value.back().contains("content") && value.back()["content"].is_string())
    return value.back()["content"].get<std::string>();
  return std::nullopt;
}

std::optional<sdk::Conversation> conversation_of(const json& value) {
  if (value.is_string()) return sdk::Conversation{{"user", value.get<std::string>()}};
  if (!value.is_array() || value.empty()) return std::nullopt;
  sdk::Conversation out;
  for (const auto& m : value) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
        !m["content"].is_string())
      return std::nullopt;
    out.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  return out;
}

std::string id_of(const json& row, std::size_t line) {
  for (const char* key : {"id", "question_id"}) {
    if (!row.contains(key)) continue;
    if (row[key].is_string()) return row[key].get<std::string>();
    if (row[key].is_number_integer()) return std::to_string(row[key].get<std::int64_t>());
  }
  return "line " + std::to_string(line);
}

std::optional<double> number_of(const json& row, const char* key) {
  if (row.contains(key) && row[key].is_number()) return row[key].get<double>();
  return std::nullopt;
}

}  // namespace

std::vector<Instruction> read_instructions(const fs::path& file, Drops& drops) {
  std::vector<Instruction> out;
  std::set<std::string> ids;
  for (auto& [line, row] : read_rows(file, drops)) {
    if (!row.is_object()) {
      drops.reasons.push_back(where(file, line) + ": not a JSON object");
      continue;
    }
    Instruction item;
    if (row.contains("instruction") && row["instruction"].is_string()) {
      item.text = row["instruction"].get<std::string>();
    } else if (row.contains("prompt") && text_of(row["prompt"])) {
      item.text = *text_of(row["prompt"]);
    } else if (row.contains("turns") && row["turns"].is_array() && !row["turns"].empty() &&
               text_of(json::array({row["turns"][0]}))) {
      item.text = *text_of(json::array({row["turns"][0]}));
    } else {
      drops.reasons.push_back(where(file, line) +
                              ": no instruction (expected a string 'instruction', 'prompt' or "
                              "'turns': [{\"content\": ...}])");
      continue;
    }
    if (item.text.empty()) {
      drops.reasons.push_back(where(file, line) + ": the instruction is empty");
      continue;
    }
    item.id = id_of(row, line);
    if (!ids.insert(item.id).second)
      throw sdk::DataError(where(file, line) + ": id '" + item.id + "' appears twice");
    if (row.contains("output")) {
      if (!row["output"].is_string()) {
        drops.reasons.push_back(where(file, line) + ": 'output' is not a string");
        continue;
      }
      item.output = row["output"].get<std::string>();
    }
    if (row.contains("generator") && row["generator"].is_string())
      item.generator = row["generator"].get<std::string>();
    item.difficulty = number_of(row, "instruction_difficulty");
    out.push_back(std::move(item));
  }
  if (out.empty())
    throw sdk::DataError(file.string() + ": no usable instruction (" +
                         std::to_string(drops.count()) + " row(s) dropped" +
                         (drops.reasons.empty() ? "" : ", first: " + drops.reasons.front()) + ")");
  return out;
}

std::vector<LabelledPair> read_labelled_pairs(const fs::path& file, Drops& drops) {
  std::vector<LabelledPair> out;
  for (auto& [line, row] : read_rows(file, drops)) {
    LabelledPair pair;
    const auto prompt =
        row.is_object() && row.contains("prompt") ? conversation_of(row["prompt"]) : std::nullopt;
    const auto chosen =
        row.is_object() && row.contains("chosen") ? text_of(row["chosen"]) : std::nullopt;
    const auto rejected =
        row.is_object() && row.contains("rejected") ? text_of(row["rejected"]) : std::nullopt;
    if (!prompt || !chosen || !rejected) {
      drops.reasons.push_back(where(file, line) +
                              ": expected 'prompt', 'chosen' and 'rejected' (strings or "
                              "[{\"role\", \"content\"}] conversations)");
      continue;
    }
    pair.id = id_of(row, line);
    pair.prompt = *prompt;
    pair.chosen = *chosen;
    pair.rejected = *rejected;
    pair.chosen_score = number_of(row, "chosen_score");
    pair.rejected_score = number_of(row, "rejected_score");
    out.push_back(std::move(pair));
  }
  if (out.empty())
    throw sdk::DataError(file.string() + ": no usable pair (" + std::to_string(drops.count()) +
                         " row(s) dropped" +
                         (drops.reasons.empty() ? "" : ", first: " + drops.reasons.front()) + ")");
  return out;
}

// ---------------------------------------------------------------------------------------------

namespace {

[[noreturn]] void io_error(const std::string& what, const fs::path& file) {
  throw sdk::DataError(what + " '" + file.string() + "': " + std::strerror(errno));
}

void write_all(int fd, const std::string& data, const fs::path& file) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int saved = errno;
      ::close(fd);
      errno = saved;
      io_error("cannot write to", file);
    }
    done += static_cast<std::size_t>(n);
  }
}

void fsync_or_throw(int fd, const fs::path& file) {
  if (::fsync(fd) != 0) {
    const int saved = errno;
    ::close(fd);
    errno = saved;
    io_error("cannot fsync", file);
  }
}

}  // namespace

RecordStore::RecordStore(fs::path file, sdk::Logger& log) : file_(std::move(file)) {
  std::error_code ec;
  if (!fs::exists(file_, ec)) return;
  const std::string text = read_whole(file_);
  std::size_t good_end = 0, skipped = 0;
  for (std::size_t begin = 0; begin < text.size();) {
    const std::size_t nl = text.find('\n', begin);
    if (nl == std::string::npos) break;  // Torn tail: cut below.
    json row = json::parse(text.substr(begin, nl - begin), nullptr, false);
    if (!row.is_discarded() && row.is_object() && row.contains("key") && row["key"].is_string()) {
      std::string key = row["key"].get<std::string>();
      records_[std::move(key)] = std::move(row);
    } else
      ++skipped;
    begin = good_end = nl + 1;
  }
  if (skipped > 0)
    log.log(sdk::LogLevel::Warn, file_.string() + ": skipped " + std::to_string(skipped) +
                                     " unreadable cache record(s); they are asked for again");
  if (good_end < text.size()) {
    log.log(sdk::LogLevel::Warn, file_.string() + ": cut a torn last record (" +
                                     std::to_string(text.size() - good_end) +
                                     " bytes, an interrupted append); it is asked for again");
    if (::truncate(file_.c_str(), static_cast<off_t>(good_end)) != 0)
      io_error("cannot truncate", file_);
  }
}

const json* RecordStore::find(const std::string& key) const {
  auto it = records_.find(key);
  return it == records_.end() ? nullptr : &it->second;
}

void RecordStore::append(const std::vector<json>& records) {
  if (records.empty()) return;
  std::string data;
  for (const auto& r : records)
    data += r.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  std::error_code ec;
  fs::create_directories(file_.parent_path(), ec);
  const int fd = ::open(file_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) io_error("cannot open", file_);
  write_all(fd, data, file_);
  fsync_or_throw(fd, file_);
  if (::close(fd) != 0) io_error("cannot close", file_);
  for (const auto& r : records) records_[r.at("key").get<std::string>()] = r;
}

bool valid_utf8(const std::string& text) {
  try {
    (void)json(text).dump();
    return true;
  } catch (const json::type_error&) {
    return false;
  }
}

void put_text(json& record, const std::string& field, const std::string& text) {
  if (valid_utf8(text)) {
    record[field] = text;
    return;
  }
  static const char* digits = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * text.size());
  for (unsigned char c : text) {
    hex += digits[c >> 4];
    hex += digits[c & 15];
  }
  record[field + "_hex"] = std::move(hex);
}

std::optional<std::string> get_text(const json& record, const std::string& field) {
  if (auto it = record.find(field); it != record.end() && it->is_string())
    return it->get<std::string>();
  auto it = record.find(field + "_hex");
  if (it == record.end() || !it->is_string()) return std::nullopt;
  const std::string& hex = it->get_ref<const std::string&>();
  if (hex.size() % 2 != 0) return std::nullopt;
  std::string out;
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    int value = 0;
    for (std::size_t k = i; k < i + 2; ++k) {
      const char c = hex[k];
      const int d = c >= '0' && c <= '9' ? c - '0' : (c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1);
      if (d < 0) return std::nullopt;
      value = value * 16 + d;
    }
    out += static_cast<char>(value);
  }
  return out;
}

std::string content_key(const std::vector<std::string>& parts) {
  std::string joined;
  for (const auto& p : parts) {
    joined += std::to_string(p.size());
    joined += ':';
    joined += p;
  }
  char buf[40];
  std::snprintf(buf, sizeof buf, "%016llx%016llx",
                static_cast<unsigned long long>(recipe::stable_hash(joined)),
                static_cast<unsigned long long>(recipe::stable_hash("metareward-eval\n" + joined)));
  return buf;
}

void write_rows_atomic(const fs::path& file, const std::vector<json>& rows) {
  std::string data;
  for (const auto& r : rows) data += r.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  sdk::write_file_atomic(file, data);
}

}  // namespace mr::plugins::evaluators
