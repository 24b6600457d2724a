// ScriptedBackend: canned generations for pipeline tests.
#include "scripted_backend.hpp"

#include <cctype>
#include <exception>

namespace mr::test {

ScriptedBackend::ScriptedBackend(Responder responder, std::string name)
    : responder_(std::move(responder)), name_(std::move(name)) {}

ScriptedBackend::ScriptedBackend(std::deque<std::string> outputs, std::string name)
    : queue_(std::move(outputs)), queue_mode_(true), name_(std::move(name)) {}

sdk::ModelInfo ScriptedBackend::info() const {
  sdk::ModelInfo i;
  i.name = name_;
  i.architecture = "Scripted";
  i.path = "(scripted)";
  return i;
}

std::vector<sdk::GenerationResult> ScriptedBackend::generate(
    const std::vector<sdk::GenerationRequest>& requests) {
  std::vector<sdk::GenerationResult> out;
  out.reserve(requests.size());
  for (const auto& req : requests) {
    requests_.push_back(req);
    sdk::GenerationResult result;
    result.request_id = req.id;
    std::vector<std::string> texts;
    if (queue_mode_) {
      for (int i = 0; i < req.n && !queue_.empty(); ++i) {
        texts.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    } else {
      try {
        texts = responder_(req);
      } catch (const std::exception& e) {
        result.error = std::string("scripted responder threw: ") + e.what();
      }
    }
    if (result.error.empty() && static_cast<int>(texts.size()) != req.n) {
      result.error = "scripted backend produced " + std::to_string(texts.size()) +
                     " texts for request '" + req.id + "' (n = " + std::to_string(req.n) + ")";
    }
    if (result.error.empty()) {
      for (auto& t : texts) {
        sdk::Completion c;
        c.tokens = count_tokens(t);
        c.text = std::move(t);
        result.completions.push_back(std::move(c));
      }
    }
    out.push_back(std::move(result));
  }
  return out;
}

std::int64_t ScriptedBackend::count_tokens(std::string_view text) const {
  std::int64_t n = 0;
  bool in_word = false;
  for (unsigned char c : text) {
    bool space = std::isspace(c) != 0;
    if (!space && !in_word) ++n;
    in_word = !space;
  }
  return n;
}

}  // namespace mr::test
