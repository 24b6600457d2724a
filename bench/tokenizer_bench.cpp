// Tokenizer throughput on the fixture texts: mr_tokenizer_bench [repeat] [tokenizer dir...].
// Not run by ctest. Default dirs: MR_SHARED_DIR/fixtures/tokenizers/{llama3,qwen3}.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "metareward/tokenizer/tokenizer.hpp"

namespace fs = std::filesystem;

namespace {

// The "text" field of each cases.jsonl row, without a JSON dependency: the rows are
// {"text": "...", "ids": [...]} so the tokenizer's own loader is not needed here.
std::vector<std::string> read_texts(const fs::path& file) {
  std::vector<std::string> texts;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    const auto start = line.find("\"text\": \"");
    const auto end = line.rfind("\", \"ids\"");
    if (start == std::string::npos || end == std::string::npos) continue;
    std::string raw = line.substr(start + 9, end - start - 9);
    std::string text;
    for (std::size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] != '\\' || i + 1 == raw.size()) {
        text.push_back(raw[i]);
        continue;
      }
      const char e = raw[++i];
      switch (e) {
        case 'n':
          text.push_back('\n');
          break;
        case 't':
          text.push_back('\t');
          break;
        case 'r':
          text.push_back('\r');
          break;
        case 'u':
          i += 4;
          text.push_back('?');
          break;  // rare escapes; content is irrelevant
        default:
          text.push_back(e);
      }
    }
    texts.push_back(std::move(text));
  }
  return texts;
}

}  // namespace

int main(int argc, char** argv) {
  const int repeat = argc > 1 ? std::stoi(argv[1]) : 20;
  std::vector<fs::path> dirs;
  for (int i = 2; i < argc; ++i) dirs.emplace_back(argv[i]);
  if (dirs.empty()) {
    const fs::path base = fs::path(MR_SHARED_DIR) / "fixtures" / "tokenizers";
    dirs = {base / "llama3", base / "qwen3"};
  }
  for (const auto& dir : dirs) {
    using clock = std::chrono::steady_clock;
    auto t0 = clock::now();
    const auto tok = mr::tokenizer::Tokenizer::from_directory(dir);
    const double load_s = std::chrono::duration<double>(clock::now() - t0).count();
    std::string corpus;
    for (const auto& t : read_texts(dir / "cases.jsonl")) corpus += t + "\n";
    std::size_t tokens = 0, bytes = 0;
    t0 = clock::now();
    std::vector<mr::tokenizer::TokenId> ids;
    for (int r = 0; r < repeat; ++r) {
      ids = tok.encode(corpus);
      tokens += ids.size();
      bytes += corpus.size();
    }
    const double enc_s = std::chrono::duration<double>(clock::now() - t0).count();
    t0 = clock::now();
    std::size_t decoded = 0;
    for (int r = 0; r < repeat; ++r) decoded += tok.decode(ids).size();
    const double dec_s = std::chrono::duration<double>(clock::now() - t0).count();
    std::printf(
        "%s: load %.2f s, encode %.0f tokens/s (%.1f MB/s), decode %.0f tokens/s (%zu bytes)\n",
        dir.filename().string().c_str(), load_s, tokens / enc_s, bytes / enc_s / 1e6,
        tokens / dec_s, decoded);
  }
  return 0;
}
