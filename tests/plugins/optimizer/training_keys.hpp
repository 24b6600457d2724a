/// @file training_keys.hpp
/// The documented order of mr_training's config keys (training.hpp, training_schema()), written
/// out once for the tests that check a schema against it.
#pragma once

#include <string>
#include <vector>

namespace mr::test {

inline const std::vector<std::string>& training_keys() {
  static const std::vector<std::string> keys = {"learning_rate",
                                                "lr_schedule",
                                                "min_learning_rate",
                                                "warmup_ratio",
                                                "epochs",
                                                "batch_size",
                                                "micro_batch_size",
                                                "weight_decay",
                                                "adam_beta1",
                                                "adam_beta2",
                                                "adam_eps",
                                                "max_grad_norm",
                                                "max_length",
                                                "dropout",
                                                "save_every_steps",
                                                "master_weights",
                                                "close_truncated",
                                                "lora",
                                                "lora_r",
                                                "lora_alpha",
                                                "lora_dropout",
                                                "lora_target_modules",
                                                "gradient_checkpointing",
                                                "length_balanced",
                                                "share_prompt"};
  return keys;
}

/// `first` followed by training_keys(): a loss plugin's schema (e.g. "beta" then the rest).
inline std::vector<std::string> keys_then_training(std::vector<std::string> first) {
  first.insert(first.end(), training_keys().begin(), training_keys().end());
  return first;
}

}  // namespace mr::test
