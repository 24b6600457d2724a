// A response cut at max_new_tokens did not end: the trainer tokenizes it without the end-of-turn
// token (unless close_truncated), so DPO never teaches the model to stop where it was cut off.
#include <torch/torch.h>
#undef CHECK  // glog's CHECK (pulled in by libtorch) must not replace Catch2's
#include <catch2/catch.hpp>

#include "metareward/training/training.hpp"
#include "tiny_model.hpp"

namespace training = mr::training;
using mr::test::TinyCausalLm;

TEST_CASE("truncated responses: no end-of-turn token unless close_truncated",
          "[optimizer][truncation]") {
  TinyCausalLm model(1);
  auto pairs = mr::test::tiny_pairs(2);
  pairs[0].rejected_complete = false;  // "rock" was cut at max_new_tokens
  training::TrainingOptions options;
  const auto prepared = training::prepare_pairs(model, pairs, options);
  REQUIRE(prepared.pairs.size() == 2);
  CHECK(prepared.unfinished == 1);
  const auto& cut = prepared.pairs[0].rejected.response_ids;
  const auto& ended = prepared.pairs[0].chosen.response_ids;
  CHECK(cut.size() == 4);  // "rock", nothing after it
  CHECK(cut.back() != TinyCausalLm::kEot);
  CHECK(ended.back() == TinyCausalLm::kEot);
  CHECK(prepared.pairs[1].rejected.response_ids.back() == TinyCausalLm::kEot);

  options.close_truncated = true;
  const auto closed = training::prepare_pairs(model, pairs, options);
  CHECK(closed.pairs[0].rejected.response_ids.size() == 5);
  CHECK(closed.pairs[0].rejected.response_ids.back() == TinyCausalLm::kEot);
  CHECK(closed.unfinished == 1);  // still counted: the option only changes how it is trained
}
