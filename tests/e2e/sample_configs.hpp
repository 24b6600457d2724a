// Run configs the e2e command tests share.
#pragma once

#include <string>

namespace mr::tests {

/// A complete run config using the shipped recipe plugins, the torch backend and dpo.
inline std::string good_config() {
  return R"(# A small but complete run.
[run]
iterations = 2
seed = 11

[prompts]
per_iteration = 8

[models.policy]
type = "torch"
path = "/models/policy"
dtype = "bfloat16"

[judge_rubric]
type = "additive5"

[meta_judge]
type = "pairwise_elo"

[pair_selection]
type = "length_control"

[optimizer]
type = "dpo"
beta = 0.2
)";
}

}  // namespace mr::tests
