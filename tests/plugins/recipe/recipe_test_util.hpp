// Builders shared by the recipe plugin tests: responses, prompt groups and plugin construction.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "metareward/sdk/types.hpp"
#include "test_host_context.hpp"

namespace mr::test::recipe {

/// A response with a given mean score (nullopt = no valid judgment) and length in chars; its
/// text is unique per id unless `text` is given.
inline sdk::ResponseCandidate make_response(const std::string& id,
                                            std::optional<double> score,
                                            std::int64_t length,
                                            std::string text = "") {
  sdk::ResponseCandidate r;
  r.id = id;
  r.text = text.empty() ? "response " + id : std::move(text);
  r.length_chars = length;
  r.mean_score = score;
  return r;
}

/// A prompt group "p" + n with one user turn and the given (score, length) responses, ids
/// "<prompt>/r<i>".
inline sdk::PromptGroup make_group(
    const std::string& prompt_id,
    const std::vector<std::pair<std::optional<double>, std::int64_t>>& rs) {
  sdk::PromptGroup g;
  g.prompt_id = prompt_id;
  g.prompt = {{"user", "Question of " + prompt_id + "?"}};
  for (std::size_t i = 0; i < rs.size(); ++i)
    g.responses.push_back(
        make_response(prompt_id + "/r" + std::to_string(i), rs[i].first, rs[i].second));
  return g;
}

/// A judgment with id "<response>/j<i>".
inline sdk::Judgment make_judgment(const std::string& response_id,
                                   std::size_t i,
                                   std::optional<double> score,
                                   std::string text = "") {
  sdk::Judgment j;
  j.id = response_id + "/j" + std::to_string(i);
  j.text = text.empty() ? "Judgment " + std::to_string(i) + " of " + response_id +
                              ". Score: " + (score ? std::to_string(*score) : std::string("?"))
                        : std::move(text);
  j.score = score;
  return j;
}

/// Adds judgments with the given scores to `r` and sets its mean score.
inline void set_judgments(sdk::ResponseCandidate& r,
                          const std::vector<std::optional<double>>& scores) {
  r.judgments.clear();
  double sum = 0;
  int n = 0;
  for (std::size_t i = 0; i < scores.size(); ++i) {
    r.judgments.push_back(make_judgment(r.id, i, scores[i]));
    if (scores[i]) {
      sum += *scores[i];
      ++n;
    }
  }
  r.mean_score = n > 0 ? std::optional<double>(sum / n) : std::nullopt;
}

/// A plugin object together with the context it was built with (the context must outlive it).
template <class T>
struct Built {
  std::unique_ptr<TestHostContext> ctx;
  std::unique_ptr<T> plugin;
  T* operator->() { return plugin.get(); }
  T& operator*() { return *plugin; }
};

/// Constructs `T(ctx)` with a context holding `schema` defaults + `overrides`.
template <class T>
Built<T> build_with_ctx(const sdk::Schema& schema,
                        sdk::Table overrides = {},
                        int iterations = 1,
                        std::uint64_t seed = 1234) {
  Built<T> b;
  b.ctx = std::make_unique<TestHostContext>(
      config_from_schema(schema, std::move(overrides), iterations), seed);
  b.plugin = std::make_unique<T>(*b.ctx);
  return b;
}

}  // namespace mr::test::recipe
