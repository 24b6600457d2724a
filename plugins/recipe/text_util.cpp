// Text helpers: one-pass substitution, instruction rendering, UTF-8 length, stable hashing.
#include "text_util.hpp"

#include "metareward/sdk/error.hpp"
#include "metareward/sdk/host.hpp"

namespace mr::plugins::recipe {

std::string substitute(std::string_view text, const std::vector<Substitution>& subs) {
  std::string out;
  std::size_t extra = 0;
  for (const auto& s : subs) extra += s.second.size();
  out.reserve(text.size() + extra);
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t open = text.find('{', i);
    if (open == std::string_view::npos) {
      out.append(text.substr(i));
      break;
    }
    out.append(text.substr(i, open - i));
    bool replaced = false;
    for (const auto& [name, value] : subs) {
      // Matches "{name}" at `open`; the value goes out as-is and scanning resumes after the
      // placeholder, in the template, never inside the value.
      if (text.size() - open >= name.size() + 2 && text.compare(open + 1, name.size(), name) == 0 &&
          text[open + 1 + name.size()] == '}') {
        out.append(value);
        i = open + name.size() + 2;
        replaced = true;
        break;
      }
    }
    if (!replaced) {
      out.push_back('{');
      i = open + 1;
    }
  }
  return out;
}

bool has_placeholder(std::string_view text, std::string_view name) {
  std::string needle = "{" + std::string(name) + "}";
  return text.find(needle) != std::string_view::npos;
}

InstructionTurns parse_instruction_turns(const std::string& value) {
  if (value == "last_user") return InstructionTurns::LastUser;
  return InstructionTurns::All;
}

namespace {
std::string role_label(const std::string& role) {
  if (role == "user") return "User";
  if (role == "assistant") return "Assistant";
  if (role == "system") return "System";
  return role;
}
}  // namespace

std::string render_instruction(const mr::sdk::Conversation& prompt, InstructionTurns turns) {
  const mr::sdk::ChatMessage* last_user = nullptr;
  for (const auto& m : prompt)
    if (m.role == "user") last_user = &m;
  if (last_user == nullptr)
    throw mr::sdk::DataError("cannot build a judge prompt: the conversation (" +
                             std::to_string(prompt.size()) + " turns) has no user turn");
  if (turns == InstructionTurns::LastUser || prompt.size() == 1) return last_user->content;
  std::string out;
  for (const auto& m : prompt) {
    if (!out.empty()) out += "\n\n";
    out += role_label(m.role) + ": " + m.content;
  }
  return out;
}

std::int64_t utf8_length(std::string_view text) {
  std::int64_t n = 0;
  for (unsigned char c : text)
    if ((c & 0xC0) != 0x80) ++n;
  return n;
}

std::uint64_t stable_hash(std::string_view text) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::size_t seeded_index(std::uint64_t seed, std::size_t n) {
  // Modulo of a 64-bit mixed draw: the bias is below n / 2^64, irrelevant for group sizes.
  return static_cast<std::size_t>(mr::sdk::derive_seed(seed, 0) % n);
}

std::uint64_t shuffle_step_seed(std::uint64_t seed, std::uint64_t step) {
  return mr::sdk::derive_seed(seed, step);
}

}  // namespace mr::plugins::recipe
