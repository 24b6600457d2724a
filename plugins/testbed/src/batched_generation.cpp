// generate_batched() with its durable result log (batched_generation.hpp).
#include "batched_generation.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "metareward/sdk/error.hpp"

namespace mr::plugins::testbed {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

bool unhex(const std::string& text, std::string& out) {
  if (text.size() % 2 != 0) return false;
  out.clear();
  for (std::size_t i = 0; i < text.size(); i += 2) {
    auto value = [](char c) {
      return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    };
    const int hi = value(text[i]), lo = value(text[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return true;
}

/// Everything that determines a request's result, as one string (texts hex-encoded).
std::string request_key(const sdk::GenerationRequest& r) {
  std::string key = hex(r.id) + "|" + std::to_string(r.n) + "|" + std::to_string(r.seed) + "|";
  const auto& s = r.sampling;
  // json's number text round-trips doubles exactly.
  key += json(s.temperature).dump() + "," + json(s.top_p).dump() + "," + std::to_string(s.top_k) +
         "," + std::to_string(s.max_new_tokens) + "|" + hex(r.prompt_text);
  for (const auto& stop : s.stop) key += "," + hex(stop);
  for (const auto& m : r.messages) key += "|" + hex(m.role) + ":" + hex(m.content);
  return key;
}

[[noreturn]] void io_error(const std::string& what, const fs::path& file) {
  throw sdk::DataError(what + " '" + file.string() + "': " + std::strerror(errno));
}

/// The log's complete, well-formed lines by key; a torn last line (a crash mid-append) is cut
/// off so that the next append starts on a line of its own.
std::unordered_map<std::string, sdk::GenerationResult> read_log(const fs::path& file) {
  std::unordered_map<std::string, sdk::GenerationResult> done;
  std::error_code ec;
  if (!fs::exists(file, ec)) return done;
  std::ifstream in(file, std::ios::binary);
  if (!in) io_error("cannot read", file);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::size_t complete = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
  if (complete < text.size()) {
    fs::resize_file(file, complete, ec);
    if (ec)
      throw sdk::DataError("cannot cut the torn last line of '" + file.string() +
                           "': " + ec.message());
  }
  std::size_t begin = 0;
  while (begin < complete) {
    const std::size_t end = text.find('\n', begin);
    const json row = json::parse(text.substr(begin, end - begin), nullptr, false);
    begin = end + 1;
    // A line this code did not write is ignored: its request is generated again.
    if (!row.is_object() || !row.contains("key") || !row["key"].is_string()) continue;
    sdk::GenerationResult r;
    bool ok = row.value("error", json()).is_string() &&
              unhex(row["error"].get<std::string>(), r.error) &&
              row.value("completions", json()).is_array();
    if (ok)
      for (const auto& c : row["completions"]) {
        sdk::Completion out;
        ok = c.is_array() && c.size() == 3 && c[0].is_string() &&
             unhex(c[0].get<std::string>(), out.text) && c[1].is_number_integer() &&
             c[2].is_number_integer();
        if (!ok) break;
        out.tokens = c[1].get<std::int64_t>();
        out.finish_reason = static_cast<sdk::FinishReason>(c[2].get<int>());
        r.completions.push_back(std::move(out));
      }
    if (ok) {
      r.prompt_tokens = row.value("prompt_tokens", std::int64_t{-1});
      done[row["key"].get<std::string>()] = std::move(r);
    }
  }
  return done;
}

void append_durably(const fs::path& file, const std::string& lines) {
  std::error_code ec;
  fs::create_directories(file.parent_path(), ec);  // the open below names the file if this failed
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) io_error("cannot open", file);
  const char* p = lines.data();
  std::size_t left = lines.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      errno = err;
      io_error("cannot write", file);
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    errno = err;
    io_error("cannot flush", file);
  }
  if (::close(fd) != 0) io_error("cannot close", file);
}

std::string log_line(const std::string& key, const sdk::GenerationResult& r) {
  json completions = json::array();
  for (const auto& c : r.completions)
    completions.push_back({hex(c.text), c.tokens, static_cast<int>(c.finish_reason)});
  return json({{"key", key},
               {"error", hex(r.error)},
               {"completions", completions},
               {"prompt_tokens", r.prompt_tokens}})
             .dump() +
         "\n";
}

}  // namespace

std::vector<sdk::GenerationResult> generate_batched(
    sdk::ModelBackend& model,
    const std::vector<sdk::GenerationRequest>& requests,
    int batch_size,
    const std::function<bool()>& stop,
    sdk::HostContext& ctx,
    const std::string& stage,
    const fs::path& log_file) {
  std::vector<std::string> keys;
  keys.reserve(requests.size());
  for (const auto& r : requests) keys.push_back(request_key(r));
  auto done = log_file.empty() ? std::unordered_map<std::string, sdk::GenerationResult>()
                               : read_log(log_file);
  std::vector<std::size_t> todo;
  for (std::size_t i = 0; i < requests.size(); ++i)
    if (!done.count(keys[i])) todo.push_back(i);
  if (todo.size() < requests.size())
    ctx.logger().info(stage + ": " + std::to_string(requests.size() - todo.size()) + " of " +
                      std::to_string(requests.size()) +
                      " results from an interrupted evaluation ('" + log_file.string() +
                      "'), generating the rest");

  auto progress = ctx.progress(stage, todo.size());
  const std::size_t step = static_cast<std::size_t>(std::max(1, batch_size));
  for (std::size_t begin = 0; begin < todo.size(); begin += step) {
    if (stop && stop())
      throw sdk::Interrupted("evaluation stopped during " + stage + " (" + std::to_string(begin) +
                             " of " + std::to_string(todo.size()) + " requests done)");
    const std::size_t end = std::min(todo.size(), begin + step);
    std::vector<sdk::GenerationRequest> batch;
    for (std::size_t k = begin; k < end; ++k) batch.push_back(requests[todo[k]]);
    std::vector<sdk::GenerationResult> results = model.generate(batch);
    if (results.size() != batch.size())
      throw sdk::BackendError(stage + ": the model returned " + std::to_string(results.size()) +
                              " results for " + std::to_string(batch.size()) + " requests");
    std::uint64_t tokens = 0;
    std::string lines;
    for (std::size_t k = 0; k < results.size(); ++k) {
      for (const auto& c : results[k].completions) tokens += static_cast<std::uint64_t>(c.tokens);
      if (!log_file.empty()) lines += log_line(keys[todo[begin + k]], results[k]);
      done[keys[todo[begin + k]]] = std::move(results[k]);
    }
    if (!log_file.empty()) append_durably(log_file, lines);
    progress->advance(batch.size(), tokens);
  }
  std::vector<sdk::GenerationResult> out;
  out.reserve(requests.size());
  for (std::size_t i = 0; i < requests.size(); ++i) {
    sdk::GenerationResult r = done.at(keys[i]);
    r.request_id = requests[i].id;
    out.push_back(std::move(r));
  }
  return out;
}

void discard_generation_log(const fs::path& log_file) {
  std::error_code ec;
  if (!log_file.empty()) fs::remove(log_file, ec);
}

}  // namespace mr::plugins::testbed
