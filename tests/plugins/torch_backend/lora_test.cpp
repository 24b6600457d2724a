// LoRA adapters and activation checkpointing on the torch backend: the adapter math (fresh =
// unchanged, merged == base + adapter, disabled == base), PEFT's file layout, merging a saved
// adapter (library, backend `adapter` key, merge-lora command), DPO with lora = true through the
// shared training loop (adapter written, base frozen, resume mid-training), and checkpointed
// gradients equal to the plain ones. Tiny random models written by init-model.
#include <torch/torch.h>
#undef CHECK  // glog's CHECK (pulled in by libtorch) must not replace Catch2's
#include <catch2/catch.hpp>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "backend_test_util.hpp"
#include "metareward/safetensors/safetensors.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/sdk/trainable_model.hpp"
#include "metareward/torch_model/causal_lm.hpp"
#include "metareward/training/training.hpp"

namespace sdk = mr::sdk;
namespace tb = mr::torch_backend;
namespace fs = std::filesystem;
namespace training = mr::training;
using json = nlohmann::json;
using mr::test::BackendTempDir;

namespace {

struct Batch {
  torch::Tensor ids, mask, pos;
};

Batch batch() {
  Batch b;
  b.ids = torch::tensor({{256, 72, 105, 33, 0}, {256, 72, 9, 0, 0}}, torch::kLong);
  b.mask = torch::tensor({{1, 1, 1, 1, 0}, {1, 1, 1, 0, 0}}, torch::kLong);
  b.pos = tb::position_ids_from_mask(b.mask);
  return b;
}

torch::Tensor logits(tb::CausalLM& model) {
  model->eval();  // Modules start in training mode, where the adapter's dropout is on.
  torch::NoGradGuard no_grad;
  const auto b = batch();
  return model->forward(b.ids, b.mask, b.pos);
}

/// Gives every lora_B random values, so the adapter changes the outputs.
void randomize_b(tb::CausalLMImpl& model, std::uint64_t seed) {
  torch::manual_seed(seed);
  torch::NoGradGuard no_grad;
  for (auto& layer : model.lora_layers()) layer.b.copy_(torch::randn_like(layer.b) * 0.2);
}

std::vector<sdk::PreferencePair> pairs() {
  std::vector<sdk::PreferencePair> out;
  const char* prompts[] = {"Capital of France?", "2+2?", "Color of the sky?", "Say hi"};
  const char* chosen[] = {"Paris", "4", "Blue", "Hi!"};
  const char* rejected[] = {"Rome, I think, or maybe Madrid", "5", "Green", "No"};
  for (int i = 0; i < 4; ++i) {
    sdk::PreferencePair p;
    p.id = "p" + std::to_string(i);
    p.prompt_id = p.id;
    p.prompt = {{"user", prompts[i]}};
    p.chosen = chosen[i];
    p.rejected = rejected[i];
    out.push_back(p);
  }
  return out;
}

training::TrainingOptions lora_options() {
  training::TrainingOptions o;
  o.learning_rate = 1e-2;
  o.lr_schedule = training::LrSchedule::Constant;
  o.warmup_ratio = 0;
  o.epochs = 3;
  o.batch_size = 2;
  o.micro_batch_size = 1;
  o.lora = true;
  o.lora_r = 4;
  o.lora_alpha = 8;
  o.lora_dropout = 0.1;  // Exercises the per-step reseeding under resume.
  o.seed = 5;
  return o;
}

std::string file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

}  // namespace

TEST_CASE("lora: a fresh adapter changes nothing, merged == base + adapter, disabled == base",
          "[torch_backend][lora]") {
  auto model = tb::load_causal_lm(mr::test::shared_tiny_model());
  const auto base = logits(model);
  const auto params_before = model->named_parameters().size();
  model->add_lora({}, 1);
  CHECK(model->has_lora());
  // 2 layers x 7 target modules; no new registered parameter; the base is frozen.
  CHECK(model->lora_layers().size() == 14);
  CHECK(model->named_parameters().size() == params_before);
  for (const auto& p : model->parameters()) CHECK_FALSE(p.requires_grad());
  CHECK(max_diff(logits(model), base) == 0.0);  // B = 0.

  randomize_b(*model, 3);
  const auto adapted = logits(model);
  CHECK(max_diff(adapted, base) > 1e-3);
  model->set_lora_enabled(false);
  CHECK(max_diff(logits(model), base) == 0.0);
  model->set_lora_enabled(true);

  model->merge_lora();
  CHECK_FALSE(model->has_lora());
  for (const auto& p : model->parameters()) CHECK(p.requires_grad());
  // x (W + s B A) vs x W + s (x A) B: equal up to fp32 rounding, whose size follows the
  // logits' scale and the BLAS kernel's summation order (differs between CPUs).
  const double scale = std::max(1.0, adapted.abs().max().item<double>());
  CHECK(max_diff(logits(model), adapted) < 1e-5 * scale);
  CHECK(max_diff(logits(model), adapted) < 1e-3 * max_diff(adapted, base));
}

TEST_CASE("lora: an adapter on lm_head applies, and frozen parameters stay frozen",
          "[torch_backend][lora]") {
  auto model = tb::load_causal_lm(mr::test::shared_tiny_model());
  const auto base = logits(model);
  auto params = model->parameters();
  params.front().requires_grad_(false);  // A caller's own freezing survives add/merge.
  tb::LoraConfig c;
  c.target_modules = {"lm_head"};
  model->add_lora(c, 1);
  REQUIRE(model->lora_layers().size() == 1);
  randomize_b(*model, 5);
  CHECK(max_diff(logits(model), base) > 1e-3);
  model->merge_lora();
  params = model->parameters();
  CHECK_FALSE(params.front().requires_grad());
  CHECK(params.back().requires_grad());
}

TEST_CASE("lora: bad settings are refused with the reason", "[torch_backend][lora]") {
  auto model = tb::load_causal_lm(mr::test::shared_tiny_model());
  tb::LoraConfig c;
  c.target_modules = {"q_proj", "qkv_proj"};
  try {
    model->add_lora(c, 0);
    FAIL("expected an error");
  } catch (const sdk::BackendError& e) {
    const std::string what = e.what();
    CHECK(what.find("qkv_proj") != std::string::npos);
    CHECK(what.find("gate_proj") != std::string::npos);  // Lists what exists.
  }
  CHECK_FALSE(model->has_lora());
  c = {};
  c.r = 0;
  CHECK_THROWS_AS(model->add_lora(c, 0), sdk::BackendError);
  model->add_lora({}, 0);
  CHECK_THROWS_AS(model->add_lora({}, 0), sdk::BackendError);
}

TEST_CASE("lora: adapters are written in PEFT's layout and merge back exactly",
          "[torch_backend][lora]") {
  BackendTempDir tmp;
  auto model = tb::load_causal_lm(mr::test::shared_tiny_model());
  tb::LoraConfig c;
  c.r = 4;
  c.alpha = 16;
  model->add_lora(c, 2);
  randomize_b(*model, 4);
  const auto adapted = logits(model);
  // Merged weights against the adapter: fp32 rounding that scales with the logits, as in the
  // merge check of the first test case.
  const double scale = std::max(1.0, adapted.abs().max().item<double>());
  INFO("max |logit| " << scale);
  const fs::path adapter = tmp.path() / "adapter";
  tb::save_lora_adapter(*model, adapter, mr::test::shared_tiny_model().string());

  std::set<std::string> files;
  for (const auto& e : fs::directory_iterator(adapter)) files.insert(e.path().filename().string());
  CHECK(files == std::set<std::string>{"adapter_config.json", "adapter_model.safetensors"});
  const json cfg = json::parse(file_bytes(adapter / "adapter_config.json"));
  CHECK(cfg["peft_type"] == "LORA");
  CHECK(cfg["task_type"] == "CAUSAL_LM");
  CHECK(cfg["r"] == 4);
  CHECK(cfg["lora_alpha"] == 16.0);
  CHECK(cfg["base_model_name_or_path"] == mr::test::shared_tiny_model().string());
  CHECK(cfg["target_modules"] ==
        json::array({"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}));
  CHECK(cfg["bias"] == "none");

  mr::safetensors::Reader reader(adapter / "adapter_model.safetensors");
  CHECK(reader.tensors().size() == 28);
  // hidden 32, 4 heads x 8 = q 32, 2 kv heads x 8 = k/v 16, intermediate 64.
  const std::map<std::string, std::vector<std::int64_t>> shapes = {
      {"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", {4, 32}},
      {"base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", {32, 4}},
      {"base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight", {16, 4}},
      {"base_model.model.model.layers.1.mlp.down_proj.lora_A.weight", {4, 64}},
      {"base_model.model.model.layers.1.mlp.gate_proj.lora_B.weight", {64, 4}}};
  for (const auto& [name, shape] : shapes) {
    INFO(name);
    const auto* info = reader.find(name);
    REQUIRE(info != nullptr);
    CHECK(info->shape == shape);
    CHECK(info->dtype == mr::safetensors::DType::kF32);
  }

  SECTION("merge_lora_adapter on a fresh base gives the adapted outputs") {
    auto fresh = tb::load_causal_lm(mr::test::shared_tiny_model());
    tb::merge_lora_adapter(*fresh, adapter);
    CHECK_FALSE(fresh->has_lora());
    CHECK(max_diff(logits(fresh), adapted) < 1e-5 * scale);
  }
  SECTION("the merge-lora command writes a checkpoint with the merged weights") {
    std::ostringstream out, err;
    const fs::path merged = tmp.path() / "merged";
    REQUIRE(mr::plugins::torch_backend::merge_lora_command(
                {"--model", mr::test::shared_tiny_model().string(), "--adapter", adapter.string(),
                 "--out", merged.string()},
                out, err) == 0);
    CHECK(fs::exists(merged / "tokenizer.json"));
    auto loaded = tb::load_causal_lm(merged);
    CHECK(max_diff(logits(loaded), adapted) < 1e-5 * scale);
    // Usage errors exit 2 with the usage.
    std::ostringstream o2, e2;
    CHECK(mr::plugins::torch_backend::merge_lora_command({"--model", "x"}, o2, e2) == 2);
    CHECK(e2.str().find("--adapter") != std::string::npos);
  }
  SECTION("the backend's adapter key merges it at load") {
    auto plain = mr::test::make_backend(mr::test::shared_tiny_model());
    auto with = mr::test::make_backend(mr::test::shared_tiny_model(),
                                       {{"adapter", sdk::Value(adapter.string())}});
    const sdk::Conversation prompt = {{"user", "Hello"}};
    const double a = plain->score({{"s", prompt, "World"}})[0].logprob_sum;
    const double b = with->score({{"s", prompt, "World"}})[0].logprob_sum;
    CHECK(std::abs(a - b) > 1e-3);
    // Same as the model merged in memory.
    auto merged = tb::load_causal_lm(mr::test::shared_tiny_model());
    tb::merge_lora_adapter(*merged, adapter);
    tb::SaveOptions so;
    so.copy_files_from = mr::test::shared_tiny_model();
    tb::save_checkpoint(*merged, tmp.path() / "m2", so);
    auto reference = mr::test::make_backend(tmp.path() / "m2");
    CHECK(b == Approx(reference->score({{"s", prompt, "World"}})[0].logprob_sum).margin(1e-4));
  }
  SECTION("adapters that do not fit are refused, naming the file") {
    auto other = tb::load_causal_lm(mr::test::shared_tiny_model());
    json bad = cfg;
    bad["use_dora"] = true;
    const fs::path dora = tmp.path() / "dora";
    fs::create_directories(dora);
    fs::copy_file(adapter / "adapter_model.safetensors", dora / "adapter_model.safetensors");
    std::ofstream(dora / "adapter_config.json") << bad.dump();
    CHECK_THROWS_WITH(tb::merge_lora_adapter(*other, dora), Catch::Contains("DoRA"));
    const fs::path missing = tmp.path() / "missing";
    fs::create_directories(missing);
    CHECK_THROWS_WITH(tb::merge_lora_adapter(*other, missing),
                      Catch::Contains("adapter_config.json"));
    // A rank-8 config over rank-4 tensors: the shapes do not match the model built from it.
    bad = cfg;
    bad["r"] = 8;
    std::ofstream(dora / "adapter_config.json", std::ios::trunc) << bad.dump();
    CHECK_THROWS_WITH(tb::merge_lora_adapter(*other, dora), Catch::Contains("shape"));
    // Names of an adapter trained on a bare LlamaModel (no "model." level): not our layers.
    const fs::path bare = tmp.path() / "bare";
    fs::create_directories(bare);
    std::ofstream(bare / "adapter_config.json") << cfg.dump();
    {
      mr::safetensors::Reader good(adapter / "adapter_model.safetensors");
      std::vector<float> a(4 * 32, 0.1f), b(32 * 4, 0.1f);
      std::vector<mr::safetensors::TensorData> t(2);
      t[0].spec = {"base_model.model.layers.0.self_attn.q_proj.lora_A.weight",
                   mr::safetensors::DType::kF32,
                   {4, 32}};
      t[0].data = std::as_bytes(std::span<const float>(a));
      t[1].spec = {"base_model.model.layers.0.self_attn.q_proj.lora_B.weight",
                   mr::safetensors::DType::kF32,
                   {32, 4}};
      t[1].data = std::as_bytes(std::span<const float>(b));
      mr::safetensors::write_file(bare / "adapter_model.safetensors", t);
    }
    CHECK_THROWS_WITH(tb::merge_lora_adapter(*other, bare),
                      Catch::Contains("base_model.model.layers.0.self_attn.q_proj.lora_A.weight") &&
                          Catch::Contains("not a linear layer"));
    bad = cfg;
    bad["r"] = 4.5;
    std::ofstream(dora / "adapter_config.json", std::ios::trunc) << bad.dump();
    CHECK_THROWS_WITH(tb::merge_lora_adapter(*other, dora), Catch::Contains("integer"));
    CHECK_FALSE(other->has_lora());
    auto untouched = tb::load_causal_lm(mr::test::shared_tiny_model());
    CHECK(max_diff(logits(other), logits(untouched)) == 0.0);
  }
}

TEST_CASE("lora: DPO trains only the adapter, writes it, and resumes mid-training exactly",
          "[torch_backend][lora][train]") {
  BackendTempDir tmp;
  const auto o = lora_options();

  auto run = [&](const fs::path& dir, int stop_after) {
    auto backend = mr::test::make_backend(mr::test::shared_tiny_model());
    sdk::TrainingJob job;
    job.output_dir = dir / "model";
    job.adapter_dir = dir / "adapter";
    job.state_dir = dir / "state";
    int steps = 0;
    std::vector<double> losses;
    job.on_step = [&](const sdk::StepMetrics& m) {
      ++steps;
      losses.push_back(m.values.at("loss"));
    };
    if (stop_after > 0) job.stop_requested = [&] { return steps >= stop_after; };
    training::train_preference(*backend->trainable(), pairs(), training::dpo_loss(0.1), o, job);
    return losses;
  };

  const fs::path whole = tmp.path() / "whole";
  const auto losses = run(whole, 0);
  REQUIRE(losses.size() == 6);
  CHECK(losses.back() < losses.front());
  REQUIRE(fs::exists(whole / "adapter" / "adapter_model.safetensors"));
  REQUIRE(fs::exists(whole / "model" / "model.safetensors"));

  // The merged model is base + adapter, and the weights no adapter targets are untouched.
  auto merged = tb::load_causal_lm(whole / "model");
  auto rebuilt = tb::load_causal_lm(mr::test::shared_tiny_model());
  tb::merge_lora_adapter(*rebuilt, whole / "adapter");
  CHECK(max_diff(logits(merged), logits(rebuilt)) < 1e-5);
  auto base = tb::load_causal_lm(mr::test::shared_tiny_model());
  const auto merged_params = merged->named_parameters();
  const auto base_params = base->named_parameters();
  CHECK(torch::equal(merged_params["model.embed_tokens.weight"],
                     base_params["model.embed_tokens.weight"]));
  CHECK(torch::equal(merged_params["model.norm.weight"], base_params["model.norm.weight"]));
  CHECK_FALSE(torch::equal(merged_params["model.layers.0.self_attn.q_proj.weight"],
                           base_params["model.layers.0.self_attn.q_proj.weight"]));

  // Interrupted after 2 of 6 steps, then resumed: the same adapter, byte for byte.
  const fs::path split = tmp.path() / "split";
  CHECK_THROWS_AS(run(split, 2), sdk::Interrupted);
  CHECK_FALSE(fs::exists(split / "adapter"));
  const auto rest = run(split, 0);
  CHECK(rest.size() == 4);
  CHECK(file_bytes(split / "adapter" / "adapter_model.safetensors") ==
        file_bytes(whole / "adapter" / "adapter_model.safetensors"));
  CHECK(file_bytes(split / "model" / "model.safetensors") ==
        file_bytes(whole / "model" / "model.safetensors"));
}

TEST_CASE("lora: an interrupted LoRA run leaves the model as it was", "[torch_backend][lora]") {
  BackendTempDir tmp;
  auto backend = mr::test::make_backend(mr::test::shared_tiny_model());
  const sdk::Conversation prompt = {{"user", "Hello"}};
  const double before = backend->score({{"s", prompt, "World"}})[0].logprob_sum;
  const auto params = backend->trainable()->parameters().size();
  sdk::TrainingJob job;
  job.output_dir = tmp.path() / "model";
  job.stop_requested = [] { return true; };
  CHECK_THROWS_AS(training::train_preference(*backend->trainable(), pairs(),
                                             training::dpo_loss(0.1), lora_options(), job),
                  sdk::Interrupted);
  CHECK(backend->score({{"s", prompt, "World"}})[0].logprob_sum == before);
  CHECK(backend->trainable()->parameters().size() == params);  // The full set again.
}

TEST_CASE("gradient checkpointing: the gradients of the plain path",
          "[torch_backend][checkpointing]") {
  const auto b = batch();
  auto grads = [&](bool lora, bool checkpointing) {
    auto model = tb::load_causal_lm(mr::test::shared_tiny_model());
    model->train(true);
    if (lora) {
      tb::LoraConfig c;
      c.dropout = 0.2;  // The recomputation must draw the same masks.
      model->add_lora(c, 1);
      randomize_b(*model, 9);
    }
    model->set_gradient_checkpointing(checkpointing);
    torch::manual_seed(17);
    auto out = model->forward(b.ids, b.mask, b.pos);
    (out.log_softmax(-1).select(-1, 7) * b.mask.to(torch::kFloat32)).sum().backward();
    std::vector<torch::Tensor> g;
    if (lora) {
      for (auto& layer : model->lora_layers()) {
        g.push_back(layer.a.grad().clone());
        g.push_back(layer.b.grad().clone());
      }
    } else {
      for (auto& p : model->parameters()) g.push_back(p.grad().clone());
    }
    return std::make_pair(out.detach(), g);
  };
  for (const bool lora : {false, true}) {
    INFO("lora " << lora);
    const auto [out_plain, plain] = grads(lora, false);
    const auto [out_ckpt, ckpt] = grads(lora, true);
    CHECK(max_diff(out_plain, out_ckpt) == 0.0);
    REQUIRE(plain.size() == ckpt.size());
    double worst = 0, scale = 0;
    for (std::size_t i = 0; i < plain.size(); ++i) {
      worst = std::max(worst, max_diff(plain[i], ckpt[i]));
      scale = std::max(scale, plain[i].abs().max().item<double>());
    }
    CHECK(scale > 0);
    CHECK(worst <= 1e-6 * scale);
  }
}

TEST_CASE("gradient checkpointing: DPO with it gives the run without it",
          "[torch_backend][checkpointing][train]") {
  BackendTempDir tmp;
  auto train = [&](bool checkpointing, const std::string& name) {
    auto backend = mr::test::make_backend(mr::test::shared_tiny_model());
    auto o = lora_options();
    o.lora = false;
    o.learning_rate = 1e-3;
    o.epochs = 1;
    o.gradient_checkpointing = checkpointing;
    sdk::TrainingJob job;
    job.output_dir = tmp.path() / name;
    std::vector<double> losses;
    job.on_step = [&](const sdk::StepMetrics& m) { losses.push_back(m.values.at("loss")); };
    training::train_preference(*backend->trainable(), pairs(), training::dpo_loss(0.1), o, job);
    return losses;
  };
  const auto plain = train(false, "plain");
  const auto ckpt = train(true, "ckpt");
  REQUIRE(plain.size() == ckpt.size());
  for (std::size_t i = 0; i < plain.size(); ++i) CHECK(ckpt[i] == Approx(plain[i]).epsilon(1e-6));
  auto a = tb::load_causal_lm(tmp.path() / "plain");
  auto c = tb::load_causal_lm(tmp.path() / "ckpt");
  CHECK(max_diff(logits(a), logits(c)) < 1e-5);
}
