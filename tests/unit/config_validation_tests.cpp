// Validation of a parsed config against the host schema and the plugins' schemas: every error
// class, with the exact "file:line:col: [toml.path] message" the user sees.
#include "config_test_catalog.hpp"

using mr::core::parse_config_text;
using mr::core::resolve_config;
using mr::sdk::Array;
using mr::sdk::Value;
using mr::test::FakeCatalog;
using mr::test::kMinimalModels;
using mr::test::resolve_error;
using mr::test::resolve_text;

namespace {

// The message of a config with exactly one error, without the "1 error(s) in cfg.toml:" line.
std::string single_error(const std::string& text, const std::vector<std::string>& overrides = {}) {
  std::string msg = resolve_error(text, overrides);
  const std::string header = "1 error(s) in cfg.toml:\n";
  REQUIRE_THAT(msg, Catch::StartsWith(header));
  return msg.substr(header.size());
}

}  // namespace

TEST_CASE("config validation: unknown sections and keys", "[config]") {
  SECTION("an unknown section suggests the closest one and lists the valid ones") {
    CHECK(single_error(std::string(kMinimalModels) + "[rn]\nseed = 1\n") ==
          "cfg.toml:3:1: [rn] unknown section 'rn'; did you mean 'run'? (valid sections: run, "
          "prompts, plugins, roles, generation, models, distributed, judge_rubric, meta_judge, "
          "pair_selection, "
          "optimizer, evaluation, seed_sft)");
  }
  SECTION("an unknown section with nothing close lists the valid ones only") {
    CHECK(single_error(std::string(kMinimalModels) + "[zzzzzzzzzzzz]\n") ==
          "cfg.toml:3:1: [zzzzzzzzzzzz] unknown section 'zzzzzzzzzzzz' (valid sections: run, "
          "prompts, plugins, roles, generation, models, distributed, judge_rubric, meta_judge, "
          "pair_selection, "
          "optimizer, evaluation, seed_sft)");
  }
  SECTION("a section key written at the top level says where it belongs") {
    CHECK(single_error(std::string("iterations = 3\n") + kMinimalModels) ==
          "cfg.toml:1:14: [iterations] unknown top-level key 'iterations'; it belongs in the [run] "
          "section");
  }
  SECTION("an unknown key in a host section") {
    CHECK(single_error(std::string(kMinimalModels) + "[run]\niteratoins = 3\n") ==
          "cfg.toml:4:14: [run.iteratoins] unknown key 'iteratoins'; did you mean 'iterations'? "
          "(valid keys: iterations, seed, threads, output_dir, train_judge, keep_merged_models)");
  }
  SECTION("an unknown generation role") {
    CHECK(single_error(std::string(kMinimalModels) + "[generation.critic]\nsamples = 2\n") ==
          "cfg.toml:3:1: [generation.critic] unknown key 'critic' (valid keys: actor, judge, "
          "meta_judge)");
  }
  SECTION("an unknown key in a plugin table names the plugin and accepts 'type'") {
    CHECK(single_error(std::string(kMinimalModels) + "[pair_selection]\nrhoo = 0.1\n") ==
          "cfg.toml:4:8: [pair_selection.rhoo] unknown key 'rhoo' for pair_selection "
          "'length_control'; did you mean 'rho'? (valid keys: type, rho, max_chosen_chars, "
          "length_unit)");
    CHECK(single_error("[models.policy]\ntype = \"fake\"\nvocabb = 3\n") ==
          "cfg.toml:3:10: [models.policy.vocabb] unknown key 'vocabb' for model_backend 'fake'; "
          "did you mean 'vocab'? (valid keys: type, vocab)");
  }
  SECTION("a plugin with an empty schema accepts only 'type'") {
    CHECK(single_error(std::string(kMinimalModels) +
                       "[judge_rubric]\ntype = \"likert10\"\nscale = 10\n") ==
          "cfg.toml:5:9: [judge_rubric.scale] unknown key 'scale' for judge_rubric 'likert10' "
          "(valid keys: type)");
  }
  SECTION("a section that is not a table") {
    CHECK(single_error(std::string("run = 5\n") + kMinimalModels) ==
          "cfg.toml:1:7: [run] expected a table, got integer 5");
    CHECK(single_error(std::string(kMinimalModels) + "[generation]\nactor = \"fast\"\n") ==
          "cfg.toml:4:9: [generation.actor] expected a table, got string \"fast\"");
  }
}

TEST_CASE("config validation: wrong types", "[config]") {
  SECTION("a string for an int quotes the value") {
    CHECK(single_error(std::string(kMinimalModels) + "[run]\nseed = \"7\"\n") ==
          "cfg.toml:4:8: [run.seed] expected int, got string \"7\"");
  }
  SECTION("a float for an int is an error") {
    CHECK(single_error(std::string(kMinimalModels) + "[run]\niterations = 2.5\n") ==
          "cfg.toml:4:14: [run.iterations] expected int, got float 2.5");
  }
  SECTION("an int for a float is accepted and stored as a float") {
    auto resolved =
        resolve_text(std::string(kMinimalModels) + "[generation.actor]\ntemperature = 1\n");
    const auto& t = resolved.section("generation.actor").raw("temperature");
    CHECK(t.kind() == Value::Kind::Float);
    CHECK(t == Value(1.0));
    CHECK(t.source().describe() == "cfg.toml:4:15");
  }
  SECTION("bool, string and string-list mismatches") {
    CHECK(single_error(std::string(kMinimalModels) + "[prompts]\ndedupe = \"yes\"\n") ==
          "cfg.toml:4:10: [prompts.dedupe] expected bool, got string \"yes\"");
    CHECK(single_error(std::string(kMinimalModels) + "[roles]\nactor = true\n") ==
          "cfg.toml:4:9: [roles.actor] expected string, got boolean true");
    CHECK(single_error(std::string(kMinimalModels) + "[prompts]\nfiles = true\n") ==
          "cfg.toml:4:9: [prompts.files] expected string list, got boolean true");
    CHECK(single_error(std::string(kMinimalModels) + "[prompts]\nfiles = [\"a.jsonl\", 3]\n") ==
          "cfg.toml:4:21: [prompts.files] element 2: expected string, got integer 3");
  }
  SECTION("one string where a string list is expected is a list of one") {
    auto resolved = resolve_text(std::string(kMinimalModels) + "[prompts]\nfiles = \"a.jsonl\"\n");
    CHECK(resolved.section("prompts").get_string_list("files") ==
          std::vector<std::string>{"a.jsonl"});
  }
  SECTION("a table where a scalar is expected") {
    CHECK(single_error(std::string(kMinimalModels) + "[run]\nseed = { value = 1 }\n") ==
          "cfg.toml:4:8: [run.seed] expected int, got table { value = 1 }");
  }
}

TEST_CASE("config validation: ranges and choices", "[config]") {
  SECTION("out of range uses the constraint text") {
    CHECK(single_error(std::string(kMinimalModels) + "[pair_selection]\nrho = 0.6\n") ==
          "cfg.toml:4:7: [pair_selection.rho] 0.6 is out of range (0 <= x < 0.5)");
    CHECK(single_error(std::string(kMinimalModels) + "[pair_selection]\nrho = 0.5\n") ==
          "cfg.toml:4:7: [pair_selection.rho] 0.5 is out of range (0 <= x < 0.5)");
    CHECK(single_error(std::string(kMinimalModels) + "[run]\niterations = 0\n") ==
          "cfg.toml:4:14: [run.iterations] 0 is out of range (x >= 1)");
    CHECK(single_error(std::string(kMinimalModels) + "[generation.judge]\ntop_p = 0\n") ==
          "cfg.toml:4:9: [generation.judge.top_p] 0 is out of range (0 < x <= 1)");
    CHECK(single_error(std::string(kMinimalModels) + "[optimizer]\nbeta = nan\n") ==
          "cfg.toml:4:8: [optimizer.beta] nan is out of range (x > 0)");
  }
  SECTION("bounds themselves are accepted where inclusive") {
    auto resolved = resolve_text(std::string(kMinimalModels) +
                                 "[generation.judge]\ntop_p = 1\n[pair_selection]\nrho = 0\n");
    CHECK(resolved.section("generation.judge").get_float("top_p") == 1.0);
    CHECK(resolved.section("pair_selection").get_float("rho") == 0.0);
  }
  SECTION("a string outside its choices suggests the closest one") {
    CHECK(
        single_error(std::string(kMinimalModels) + "[pair_selection]\nlength_unit = \"char\"\n") ==
        "cfg.toml:4:15: [pair_selection.length_unit] \"char\" is not one of: chars, tokens (did "
        "you mean 'chars'?)");
    CHECK(single_error("[models.policy]\ntype = \"torch\"\npath = \"m\"\ndtype = \"int8\"\n") ==
          "cfg.toml:4:9: [models.policy.dtype] \"int8\" is not one of: float32, bfloat16, "
          "float16");
  }
}

TEST_CASE("config validation: required keys", "[config]") {
  SECTION("a missing required key is reported at its table with the key's help") {
    CHECK(single_error("[models.policy]\ntype = \"torch\"\n") ==
          "cfg.toml:1:1: [models.policy.path] missing required key 'path' for model_backend "
          "'torch' (string: Checkpoint directory.)");
  }
  SECTION("a model without 'type' lists the model backends") {
    CHECK(single_error("[models.policy]\npath = \"m\"\n") ==
          "cfg.toml:1:1: [models.policy.type] missing required key 'type' (the model_backend "
          "plugin to use; available: fake, torch)");
  }
  SECTION("no model at all") {
    CHECK(single_error("[run]\nseed = 1\n") ==
          "cfg.toml: [models] no model is defined; add a [models.<name>] table whose 'type' "
          "names a model_backend plugin (available: fake, torch)");
    CHECK(single_error("[models]\n") ==
          "cfg.toml:1:1: [models] no model is defined; add a [models.<name>] table whose 'type' "
          "names a model_backend plugin (available: fake, torch)");
  }
  SECTION("a model entry that is not a table") {
    CHECK(single_error("[models]\npolicy = \"torch\"\n") ==
          "cfg.toml:2:10: [models.policy] expected a table with a 'type' key (a model_backend "
          "plugin), got string \"torch\"");
  }
}

TEST_CASE("config validation: plugin selection", "[config]") {
  SECTION("an unknown plugin suggests the closest and lists those of its kind") {
    CHECK(single_error(std::string(kMinimalModels) + "[judge_rubric]\ntype = \"additiv5\"\n") ==
          "cfg.toml:4:8: [judge_rubric.type] unknown judge_rubric 'additiv5' (did you mean "
          "'additive5'? available: additive5, likert10)");
    CHECK(single_error("[models.policy]\ntype = \"llama\"\n") ==
          "cfg.toml:2:8: [models.policy.type] unknown model_backend 'llama' (available: fake, "
          "torch)");
  }
  SECTION("a plugin of another kind says which kind it is") {
    CHECK(single_error(std::string(kMinimalModels) + "[judge_rubric]\ntype = \"dpo\"\n") ==
          "cfg.toml:4:8: [judge_rubric.type] 'dpo' is an optimizer plugin, not a judge_rubric "
          "(available judge_rubric plugins: additive5, likert10)");
    CHECK(single_error("[models.policy]\ntype = \"additive5\"\n") ==
          "cfg.toml:2:8: [models.policy.type] 'additive5' is a judge_rubric plugin, not a "
          "model_backend (available model_backend plugins: fake, torch)");
  }
  SECTION("a type that is not a string") {
    CHECK(single_error(std::string(kMinimalModels) + "[optimizer]\ntype = 3\n") ==
          "cfg.toml:4:8: [optimizer.type] expected string (the name of an optimizer plugin), got "
          "integer 3");
  }
  SECTION("a default plugin that is not loaded") {
    auto doc = parse_config_text(kMinimalModels, "cfg.toml");
    std::string msg;
    try {
      resolve_config(doc, FakeCatalog({"dpo"}));
    } catch (const mr::sdk::ConfigError& e) {
      msg = e.what();
    }
    CHECK(msg ==
          "1 error(s) in cfg.toml:\n"
          "cfg.toml: [optimizer.type] the default optimizer 'dpo' is not loaded; set 'type' to "
          "one of the available plugins (none loaded)");
  }
}

TEST_CASE("config validation: roles name defined models", "[config]") {
  const std::string models =
      "[models.policy]\ntype = \"fake\"\n[models.reference]\ntype = \"fake\"\n";
  SECTION("a misspelt model name") {
    CHECK(single_error(models + "[roles]\nactor = \"polcy\"\n") ==
          "cfg.toml:6:9: [roles.actor] model 'polcy' is not defined; did you mean 'policy'? "
          "(defined models: policy, reference)");
  }
  SECTION("the default role model must exist too") {
    CHECK(resolve_error("[models.main]\ntype = \"fake\"\n[roles]\nactor = \"main\"\n") ==
          "2 error(s) in cfg.toml:\n"
          "cfg.toml: [roles.judge] model 'policy' is not defined (defined models: main)\n"
          "cfg.toml: [roles.meta_judge] model 'policy' is not defined (defined models: main)");
  }
  SECTION("roles may point at different models") {
    auto resolved = resolve_text(models + "[roles]\nmeta_judge = \"reference\"\n");
    CHECK(resolved.section("roles").get_string("meta_judge") == "reference");
    CHECK(resolved.section("roles").get_string("actor") == "policy");
  }
}

TEST_CASE("config validation: per-iteration arrays", "[config]") {
  SECTION("valid arrays are kept and indexed by iteration") {
    auto resolved = resolve_text(std::string(kMinimalModels) +
                                 "[run]\n"
                                 "iterations = 3\n"
                                 "train_judge = [true, true, false]\n"
                                 "[pair_selection]\n"
                                 "rho = [0, 0.32, 0.4]\n"
                                 "max_chosen_chars = [2500, 0, 0, 0]\n");
    const auto& ps = resolved.section("pair_selection");
    CHECK(ps.iterations() == 3);
    CHECK(ps.raw("rho") == Value(Array{0.0, 0.32, 0.4}));  // the int 0 became a float
    CHECK(ps.get_float("rho", 1) == 0.0);
    CHECK(ps.get_float("rho", 3) == 0.4);
    CHECK(ps.get_int("max_chosen_chars", 1) == 2500);  // longer than iterations is fine
    CHECK(resolved.section("run").get_bool("train_judge", 2) == true);
    CHECK(resolved.section("run").get_bool("train_judge", 3) == false);
  }
  SECTION("too short for run.iterations") {
    CHECK(single_error(std::string(kMinimalModels) +
                       "[run]\niterations = 3\n[pair_selection]\nrho = [0.0, 0.32]\n") ==
          "cfg.toml:6:7: [pair_selection.rho] has 2 per-iteration values but run.iterations is 3");
  }
  SECTION("the default run.iterations (4) applies when it is not set") {
    CHECK(single_error(std::string(kMinimalModels) + "[run]\ntrain_judge = [true, false]\n") ==
          "cfg.toml:4:15: [run.train_judge] has 2 per-iteration values but run.iterations is 4");
  }
  SECTION("run.iterations set by --set counts") {
    auto resolved = resolve_text(
        std::string(kMinimalModels) + "[run]\ntrain_judge = [true, false]\n", {"run.iterations=2"});
    CHECK(resolved.iterations == 2);
  }
  SECTION("each element is type- and range-checked") {
    CHECK(resolve_error(std::string(kMinimalModels) +
                        "[run]\niterations = 3\n"
                        "[pair_selection]\nrho = [0.0, \"x\", 0.5]\n") ==
          "2 error(s) in cfg.toml:\n"
          "cfg.toml:6:13: [pair_selection.rho] iteration 2: expected float, got string \"x\"\n"
          "cfg.toml:6:18: [pair_selection.rho] iteration 3: 0.5 is out of range (0 <= x < 0.5)");
  }
  SECTION("an array for a key that is not per-iteration is a type error") {
    CHECK(single_error(std::string(kMinimalModels) + "[generation.actor]\ntop_k = [0, 1]\n") ==
          "cfg.toml:4:9: [generation.actor.top_k] expected int, got array [0, 1] (this key cannot "
          "be given per iteration)");
    CHECK(single_error(std::string(kMinimalModels) + "[run]\niterations = [1, 2]\n") ==
          "cfg.toml:4:14: [run.iterations] expected int, got array [1, 2] (this key cannot be "
          "given per iteration)");
  }
  SECTION("nested arrays are not per-iteration values") {
    CHECK(single_error(std::string(kMinimalModels) +
                       "[run]\niterations = 1\n[generation.actor]\ntemperature = [[0.5]]\n") ==
          "cfg.toml:6:16: [generation.actor.temperature] iteration 1: expected float, got array "
          "[0.5]");
  }
  SECTION("a broken run.iterations skips the length checks instead of guessing") {
    CHECK(single_error(std::string(kMinimalModels) +
                       "[run]\niterations = \"3\"\ntrain_judge = [true]\n") ==
          "cfg.toml:4:14: [run.iterations] expected int, got string \"3\"");
  }
  SECTION("an absurd run.iterations is rejected") {
    CHECK(single_error(std::string(kMinimalModels) + "[run]\niterations = 5000000000\n") ==
          "cfg.toml:4:14: [run.iterations] 5000000000 is too large (at most 1000000)");
  }
}

TEST_CASE("config validation: every error is reported at once, in file order", "[config]") {
  const std::string text =
      "[run]\n"                  // 1
      "iterations = 2\n"         // 2
      "sed = 3\n"                // 3
      "[generation.actor]\n"     // 4
      "temperature = \"hot\"\n"  // 5
      "top_p = 1.5\n"            // 6
      "[models.policy]\n"        // 7
      "type = \"torch\"\n"       // 8
      "[judge_rubric]\n"         // 9
      "type = \"additiv5\"\n"    // 10
      "[pair_selection]\n"       // 11
      "rho = [0.1]\n";           // 12
  CHECK(resolve_error(text, {"optimizer.epochs=zero"}) ==
        "7 error(s) in cfg.toml:\n"
        "cfg.toml:3:7: [run.sed] unknown key 'sed'; did you mean 'seed'? (valid keys: "
        "iterations, seed, threads, output_dir, train_judge, keep_merged_models)\n"
        "cfg.toml:5:15: [generation.actor.temperature] expected float, got string \"hot\"\n"
        "cfg.toml:6:9: [generation.actor.top_p] 1.5 is out of range (0 < x <= 1)\n"
        "cfg.toml:7:1: [models.policy.path] missing required key 'path' for model_backend "
        "'torch' (string: Checkpoint directory.)\n"
        "cfg.toml:10:8: [judge_rubric.type] unknown judge_rubric 'additiv5' (did you mean "
        "'additive5'? available: additive5, likert10)\n"
        "cfg.toml:12:7: [pair_selection.rho] has 1 per-iteration values but run.iterations is 2\n"
        "--set: [optimizer.epochs] expected int, got string \"zero\"");
}

TEST_CASE("config validation: --set values are validated like file values", "[config]") {
  SECTION("an override fixes a bad file value") {
    auto resolved = resolve_text(std::string(kMinimalModels) + "[pair_selection]\nrho = 0.9\n",
                                 {"pair_selection.rho=0.32"});
    CHECK(resolved.section("pair_selection").get_float("rho") == 0.32);
    CHECK(resolved.section("pair_selection").raw("rho").source().describe() == "--set");
  }
  SECTION("an override's own errors point at --set") {
    CHECK(single_error(kMinimalModels, {"run.threads=-1"}) ==
          "--set: [run.threads] -1 is out of range (x >= 0)");
    CHECK(single_error(kMinimalModels, {"run.colour=red"}) ==
          "--set: [run.colour] unknown key 'colour' (valid keys: iterations, seed, threads, "
          "output_dir, train_judge, keep_merged_models)");
  }
}
