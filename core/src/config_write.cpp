// Writing a resolved config back as TOML (ResolvedConfig::to_toml): the record a run keeps and
// `config show` prints, in a fixed section and key order so that it is stable byte for byte.
#include <set>
#include <sstream>

#include "config_text.hpp"
#include "metareward/core/config_loader.hpp"

namespace mr::core {

namespace {

using detail::find_in;
using sdk::Table;
using sdk::Value;

// A string as a multi-line literal ('''...''') when it has newlines and can be written that way
// verbatim; otherwise the escaped basic string.
std::string string_literal(const Value& value) {
  if (!value.is_string()) return value.to_toml();
  const std::string& s = value.as_string();
  bool multi_line =
      s.find('\n') != std::string::npos && s.find("'''") == std::string::npos && s.back() != '\'';
  for (unsigned char c : s)
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) multi_line = false;
  if (!multi_line) return value.to_toml();
  // The newline right after the opening delimiter is trimmed by TOML, so the text is kept exact.
  return "'''\n" + s + "'''";
}

void write_table(std::ostringstream& out,
                 const std::string& header,
                 const Table& table,
                 const std::vector<std::string>& first_keys) {
  out << "\n[" << header << "]\n";
  std::set<std::string> written;
  auto write = [&](const std::string& key, const Value& value) {
    out << detail::toml_key(key) << " = " << string_literal(value) << "\n";
    written.insert(key);
  };
  for (const auto& key : first_keys)
    if (auto it = table.find(key); it != table.end()) write(key, it->second);
  for (const auto& [key, value] : table)
    if (!written.count(key)) write(key, value);
}

}  // namespace

std::string ResolvedConfig::to_toml() const {
  std::ostringstream out;
  out << "# metareward resolved configuration (every default filled in)\n";
  for (const auto& [path, schema] : host_sections()) {
    auto dot = path.find('.');
    const Value* table = nullptr;
    if (dot == std::string::npos) {
      table = find_in(root, path);
    } else if (const Value* parent = find_in(root, path.substr(0, dot));
               parent && parent->is_table()) {
      table = find_in(parent->as_table(), path.substr(dot + 1));
    }
    if (!table || !table->is_table()) continue;
    std::vector<std::string> order;
    for (const auto& spec : schema) order.push_back(spec.key);
    write_table(out, path, table->as_table(), order);
  }
  if (const Value* models = find_in(root, "models"); models && models->is_table()) {
    for (const auto& [name, table] : models->as_table())
      if (table.is_table())
        write_table(out, detail::join_path("models", name), table.as_table(), {"type"});
  }
  // The top-level plugin tables, in the SDK's kind order (model backends are written above).
  for (const auto& kind : sdk::kPluginKinds) {
    if (kind.kind == sdk::PluginKind::ModelBackend) continue;
    const Value* table = find_in(root, kind.config_table);
    if (table && table->is_table())
      write_table(out, kind.config_table, table->as_table(), {"type"});
  }
  if (const Value* table = find_in(root, kSeedStageTable); table && table->is_table()) {
    std::vector<std::string> first = {"type"};
    for (const auto& spec : seed_stage_host_schema()) first.push_back(spec.key);
    write_table(out, kSeedStageTable, table->as_table(), first);
  }
  return out.str();
}

}  // namespace mr::core
