/// @file likert_rubric.hpp
/// `likert10`: a holistic 1–10 rating rubric, an alternative to the paper's additive judge (useful
/// as a baseline or for models that were not trained on the additive format).
#pragma once

#include "template_rubric.hpp"

namespace mr::plugins::recipe {

/// Default judge prompt of `likert10` (placeholders {instruction}, {response}).
extern const char* const kLikert10Template;

/// Config schema of `likert10` (template rubric keys; scores 1..10).
mr::sdk::Schema likert10_schema();

/// The 1–10 rating rubric. Thread-safe, immutable.
class LikertRubric final : public TemplateRubric {
 public:
  /// `config` must hold the keys of likert10_schema() (defaults filled by the host).
  explicit LikertRubric(const mr::sdk::Config& config) : TemplateRubric(config) {}
};

}  // namespace mr::plugins::recipe
