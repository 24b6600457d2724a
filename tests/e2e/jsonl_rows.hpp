// JSONL output of the CLI parsed for assertions (blank lines skipped).
#pragma once

#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mr::tests {

/// One JSON document per non-blank line of `text`; throws on a line that is not JSON.
inline std::vector<nlohmann::json> jsonl_rows(const std::string& text) {
  std::vector<nlohmann::json> rows;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

}  // namespace mr::tests
