/// @file additive_rubric.hpp
/// `additive5`: the paper's judge (method.md §3) — an additive five-point rubric, a justification
/// of at most 100 words and a final `Score: <total points>` line. The default wording is our own.
#pragma once

#include <memory>

#include "metareward/sdk/host.hpp"
#include "template_rubric.hpp"

namespace mr::plugins::recipe {

/// Default judge prompt of `additive5` (placeholders {instruction}, {response}).
extern const char* const kAdditive5Template;

/// Config schema of `additive5` (template rubric keys; scores 0..5).
mr::sdk::Schema additive5_schema();

/// The additive five-point rubric. Thread-safe, immutable.
class AdditiveRubric final : public TemplateRubric {
 public:
  /// `config` must hold the keys of additive5_schema() (defaults filled by the host).
  explicit AdditiveRubric(const mr::sdk::Config& config) : TemplateRubric(config) {}
};

}  // namespace mr::plugins::recipe
