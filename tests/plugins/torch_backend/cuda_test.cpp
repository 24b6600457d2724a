// The torch backend on a CUDA device (label `gpu`): generation, scoring, bf16 DPO with fp32
// masters, LoRA and gradient checkpointing on `device = "cuda:0"`, checked against the CPU
// float32 model. Reported skipped (not passed) where libtorch has no CUDA or no GPU is present:
// CI never has one, docs/benchmarks.md records the runs on a GPU machine.
#include <torch/torch.h>
#undef CHECK  // glog's CHECK (pulled in by libtorch) must not replace Catch2's
#include <catch2/catch.hpp>

#include "backend_test_util.hpp"
#include "metareward/sdk/trainable_model.hpp"
#include "metareward/training/training.hpp"
#include "skip.hpp"

namespace sdk = mr::sdk;
namespace training = mr::training;
using mr::test::BackendTempDir;

namespace {

bool have_cuda() {
  return torch::cuda::is_available() && torch::cuda::device_count() > 0;
}

}  // namespace

TEST_CASE("cuda: generation and scoring on cuda:0 match the CPU", "[torch_backend][gpu]") {
  if (!have_cuda()) MR_SKIP("no CUDA device (or libtorch built without CUDA)");
  BackendTempDir tmp;
  const auto model = tmp.path() / "m";
  REQUIRE(mr::test::write_tiny_model(model) == 0);
  auto cpu = mr::test::make_backend(model);
  auto gpu = mr::test::make_backend(model, {{"device", sdk::Value("cuda:0")}});
  const sdk::Conversation prompt = {{"user", "Hello there"}};
  const double a = cpu->score({{"s", prompt, "General Kenobi"}})[0].logprob_sum;
  const double b = gpu->score({{"s", prompt, "General Kenobi"}})[0].logprob_sum;
  CHECK(b == Approx(a).margin(1e-3));
  const auto r = mr::test::request("g", "Tell me a story", 3, 0.0, 16);
  CHECK(gpu->generate({r})[0].completions[0].text == cpu->generate({r})[0].completions[0].text);
  auto bf16 = mr::test::make_backend(
      model, {{"device", sdk::Value("cuda:0")}, {"dtype", sdk::Value("bfloat16")}});
  const double c = bf16->score({{"s", prompt, "General Kenobi"}})[0].logprob_sum;
  CHECK(c == Approx(a).margin(0.05 * std::abs(a) + 0.5));
}

TEST_CASE("cuda: bf16 DPO with LoRA and checkpointing trains on cuda:0", "[torch_backend][gpu]") {
  if (!have_cuda()) MR_SKIP("no CUDA device (or libtorch built without CUDA)");
  BackendTempDir tmp;
  const auto model = tmp.path() / "m";
  REQUIRE(mr::test::write_tiny_model(model) == 0);
  std::vector<sdk::PreferencePair> pairs(2);
  pairs[0].id = "a";
  pairs[0].prompt = {{"user", "2+2?"}};
  pairs[0].chosen = "4";
  pairs[0].rejected = "5";
  pairs[1].id = "b";
  pairs[1].prompt = {{"user", "Sky?"}};
  pairs[1].chosen = "Blue";
  pairs[1].rejected = "Green";
  for (const bool lora : {false, true}) {
    INFO("lora " << lora);
    auto gpu = mr::test::make_backend(
        model, {{"device", sdk::Value("cuda:0")}, {"dtype", sdk::Value("bfloat16")}});
    training::TrainingOptions o;
    o.learning_rate = lora ? 1e-2 : 1e-3;
    o.lr_schedule = training::LrSchedule::Constant;
    o.warmup_ratio = 0;
    o.epochs = 4;
    o.batch_size = 2;
    o.micro_batch_size = 1;
    o.lora = lora;
    o.gradient_checkpointing = true;
    sdk::TrainingJob job;
    job.output_dir = tmp.path() / (lora ? "lora" : "full");
    job.adapter_dir = tmp.path() / (lora ? "lora_adapter" : "");
    std::vector<double> losses;
    job.on_step = [&](const sdk::StepMetrics& m) { losses.push_back(m.values.at("loss")); };
    training::train_preference(*gpu->trainable(), pairs, training::dpo_loss(0.1), o, job);
    REQUIRE(losses.size() == 4);
    CHECK(losses.back() < losses.front());
    CHECK(std::filesystem::exists(job.output_dir / "model.safetensors"));
  }
}
