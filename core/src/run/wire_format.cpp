// JSON forms of the SDK types sent between ranks (wire_format.hpp).
#include "wire_format.hpp"

#include "metareward/sdk/error.hpp"

namespace mr::core::wire {

using json = nlohmann::json;

namespace {

json messages_json(const sdk::Conversation& c) {
  json out = json::array();
  for (const auto& m : c) out.push_back({m.role, m.content});
  return out;
}

sdk::Conversation messages_from(const json& j) {
  sdk::Conversation c;
  for (const auto& m : j) c.push_back({m.at(0).get<std::string>(), m.at(1).get<std::string>()});
  return c;
}

json optional_json(const std::optional<double>& v) {
  return v ? json(*v) : json(nullptr);
}

std::optional<double> optional_from(const json& j) {
  if (j.is_null()) return std::nullopt;
  return j.get<double>();
}

}  // namespace

json to_json(const sdk::GenerationRequest& r) {
  return {{"id", r.id},
          {"messages", messages_json(r.messages)},
          {"temperature", r.sampling.temperature},
          {"top_p", r.sampling.top_p},
          {"top_k", r.sampling.top_k},
          {"max_new_tokens", r.sampling.max_new_tokens},
          {"stop", r.sampling.stop},
          {"n", r.n},
          {"seed", r.seed},
          {"prompt_text", r.prompt_text}};
}

sdk::GenerationRequest request_from(const json& j) {
  sdk::GenerationRequest r;
  r.id = j.at("id").get<std::string>();
  r.messages = messages_from(j.at("messages"));
  r.sampling.temperature = j.at("temperature").get<double>();
  r.sampling.top_p = j.at("top_p").get<double>();
  r.sampling.top_k = j.at("top_k").get<int>();
  r.sampling.max_new_tokens = j.at("max_new_tokens").get<int>();
  r.sampling.stop = j.at("stop").get<std::vector<std::string>>();
  r.n = j.at("n").get<int>();
  r.seed = j.at("seed").get<std::uint64_t>();
  r.prompt_text = j.at("prompt_text").get<std::string>();
  return r;
}

json to_json(const sdk::GenerationResult& r) {
  json completions = json::array();
  for (const auto& c : r.completions)
    completions.push_back({c.text, c.tokens, static_cast<int>(c.finish_reason)});
  return {{"id", r.request_id},
          {"completions", completions},
          {"error", r.error},
          {"prompt_tokens", r.prompt_tokens}};
}

sdk::GenerationResult result_from(const json& j) {
  sdk::GenerationResult r;
  r.request_id = j.at("id").get<std::string>();
  for (const auto& c : j.at("completions")) {
    sdk::Completion out;
    out.text = c.at(0).get<std::string>();
    out.tokens = c.at(1).get<std::int64_t>();
    out.finish_reason = static_cast<sdk::FinishReason>(c.at(2).get<int>());
    r.completions.push_back(std::move(out));
  }
  r.error = j.at("error").get<std::string>();
  r.prompt_tokens = j.at("prompt_tokens").get<std::int64_t>();
  return r;
}

json to_json(const sdk::PreferencePair& p) {
  return {{"id", p.id},
          {"role", static_cast<int>(p.role)},
          {"prompt", messages_json(p.prompt)},
          {"chosen", p.chosen},
          {"rejected", p.rejected},
          {"prompt_id", p.prompt_id},
          {"chosen_id", p.chosen_id},
          {"rejected_id", p.rejected_id},
          {"chosen_score", optional_json(p.chosen_score)},
          {"rejected_score", optional_json(p.rejected_score)},
          {"meta", p.meta},
          {"chosen_complete", p.chosen_complete},
          {"rejected_complete", p.rejected_complete}};
}

sdk::PreferencePair pair_from(const json& j) {
  sdk::PreferencePair p;
  p.id = j.at("id").get<std::string>();
  p.role = static_cast<sdk::PairRole>(j.at("role").get<int>());
  p.prompt = messages_from(j.at("prompt"));
  p.chosen = j.at("chosen").get<std::string>();
  p.rejected = j.at("rejected").get<std::string>();
  p.prompt_id = j.at("prompt_id").get<std::string>();
  p.chosen_id = j.at("chosen_id").get<std::string>();
  p.rejected_id = j.at("rejected_id").get<std::string>();
  p.chosen_score = optional_from(j.at("chosen_score"));
  p.rejected_score = optional_from(j.at("rejected_score"));
  p.meta = j.at("meta").get<std::map<std::string, std::string>>();
  p.chosen_complete = j.at("chosen_complete").get<bool>();
  p.rejected_complete = j.at("rejected_complete").get<bool>();
  return p;
}

json to_json(const sdk::IterationInfo& i) {
  return {{"iteration", i.iteration}, {"total_iterations", i.total_iterations}, {"seed", i.seed}};
}

sdk::IterationInfo info_from(const json& j) {
  return {j.at("iteration").get<int>(), j.at("total_iterations").get<int>(),
          j.at("seed").get<std::uint64_t>()};
}

std::string encode(const json& j) {
  const std::vector<std::uint8_t> bytes = json::to_msgpack(j);
  return std::string(bytes.begin(), bytes.end());
}

json decode(const std::string& bytes, const std::string& what) {
  try {
    return json::from_msgpack(bytes);
  } catch (const std::exception& e) {
    throw sdk::DistributedError("the " + what + " received from another rank is malformed (" +
                                e.what() + "); are all ranks the same metareward build?");
  }
}

}  // namespace mr::core::wire
