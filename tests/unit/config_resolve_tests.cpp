// The resolved config: defaults filled in, sections per TOML path, the chosen plugins, the
// recorded TOML text (which must round-trip), the host schema and did_you_mean.
#include <set>

#include "config_test_catalog.hpp"

using mr::core::did_you_mean;
using mr::core::host_sections;
using mr::core::parse_config_text;
using mr::core::ResolvedConfig;
using mr::sdk::Array;
using mr::sdk::Table;
using mr::sdk::Value;
using mr::test::config_error;
using mr::test::FakeCatalog;
using mr::test::kMinimalModels;
using mr::test::resolve_error;
using mr::test::resolve_text;

TEST_CASE("config resolve: defaults are filled in for every section", "[config]") {
  ResolvedConfig r = resolve_text(kMinimalModels);

  SECTION("iterations and file") {
    CHECK(r.iterations == 4);
    CHECK(r.file == "cfg.toml");
  }
  SECTION("one section per TOML path, plugin tables included") {
    std::set<std::string> paths;
    for (const auto& [path, config] : r.sections) {
      paths.insert(path);
      CHECK(config.path() == path);
      CHECK(config.iterations() == 4);
    }
    CHECK(paths == std::set<std::string>{"run", "prompts", "plugins", "roles", "distributed",
                                         "generation.actor", "generation.judge",
                                         "generation.meta_judge", "models.policy", "judge_rubric",
                                         "meta_judge", "pair_selection", "optimizer"});
  }
  SECTION("host defaults") {
    const auto& run = r.section("run");
    CHECK(run.get_int("iterations") == 4);
    CHECK(run.get_int("seed") == 1);
    CHECK(run.get_int("threads") == 0);
    CHECK(run.get_string("output_dir") == "runs/metareward");
    CHECK(run.get_bool("train_judge", 3) == true);
    const auto& prompts = r.section("prompts");
    CHECK(prompts.get_string_list("files").empty());
    CHECK(prompts.get_int("per_iteration") == 5000);
    CHECK(prompts.get_int("pool_size") == 0);
    CHECK(prompts.get_bool("dedupe"));
    CHECK(prompts.get_bool("disjoint"));
    CHECK(prompts.get_bool("shuffle"));
    CHECK(r.section("plugins").get_string_list("libraries").empty());
    CHECK(r.section("plugins").get_string_list("dirs").empty());
    CHECK(r.section("roles").get_string("actor") == "policy");
    CHECK(r.section("roles").get_string("judge") == "policy");
    CHECK(r.section("roles").get_string("meta_judge") == "policy");
  }
  SECTION("generation defaults per role") {
    const auto& actor = r.section("generation.actor");
    CHECK(actor.get_int("samples", 1) == 7);
    CHECK(actor.get_float("temperature", 1) == 0.8);
    CHECK(actor.get_float("top_p", 1) == 0.95);
    CHECK(actor.get_int("top_k") == 0);
    CHECK(actor.get_int("max_new_tokens") == 1024);
    CHECK(actor.get_int("batch_size") == 64);
    const auto& judge = r.section("generation.judge");
    CHECK(judge.get_int("samples", 1) == 11);
    CHECK(judge.get_int("max_new_tokens") == 512);
    const auto& meta = r.section("generation.meta_judge");
    CHECK_FALSE(meta.has("samples"));
    CHECK(meta.get_float("temperature") == 0.8);
    CHECK(meta.get_int("max_new_tokens") == 512);
  }
  SECTION("absent plugin tables select the default plugin with its schema defaults") {
    CHECK(r.plugin_of == std::map<std::string, std::string>{{"models.policy", "fake"},
                                                            {"judge_rubric", "additive5"},
                                                            {"meta_judge", "pairwise_elo"},
                                                            {"pair_selection", "length_control"},
                                                            {"optimizer", "dpo"}});
    CHECK(r.section("pair_selection").get_float("rho", 1) == 0.0);
    CHECK(r.section("optimizer").get_float("lr", 1) == 5e-6);
    CHECK(r.section("models.policy").get_int("vocab") == 32);
    CHECK(r.section("judge_rubric").get_string("template") ==
          "Review the user's question and the response.\nAward points additively.\nScore: "
          "<points>\n");
  }
  SECTION("plugin sections hold only the plugin's keys; the tree keeps 'type'") {
    CHECK_FALSE(r.section("judge_rubric").has("type"));
    CHECK_FALSE(r.section("models.policy").has("type"));
    CHECK(r.root.at("judge_rubric").as_table().at("type") == Value("additive5"));
    CHECK(r.root.at("models").as_table().at("policy").as_table().at("type") == Value("fake"));
    CHECK(r.section("optimizer").values().size() == 4);
  }
  SECTION("the tree holds every section, generation nested") {
    std::set<std::string> top;
    for (const auto& [key, value] : r.root) top.insert(key);
    CHECK(top == std::set<std::string>{"run", "prompts", "plugins", "roles", "distributed",
                                       "generation", "models", "judge_rubric", "meta_judge",
                                       "pair_selection", "optimizer"});
    CHECK(r.root.at("generation").as_table().size() == 3);
  }
  SECTION("an unknown section name is an error listing the sections") {
    auto msg = config_error([&] { r.section("generation.actr"); });
    CHECK_THAT(msg,
               Catch::StartsWith("no config section 'generation.actr'; did you mean "
                                 "'generation.actor'? (sections: distributed, generation.actor, "));
  }
}

TEST_CASE("config resolve: user values keep their source, defaults have none", "[config]") {
  ResolvedConfig r = resolve_text(std::string(kMinimalModels) + "[run]\nseed = 9\n");
  const auto& seed = r.section("run").raw("seed");
  CHECK(seed == Value(9));
  CHECK(seed.source().describe() == "cfg.toml:4:8");
  CHECK(r.section("run").raw("threads").source().describe() == "(default)");
  SECTION("a plugin's semantic check can point at the user's line") {
    auto msg = config_error([&] { r.section("run").fail("seed", "must be odd"); });
    CHECK(msg == "cfg.toml:4:8: [run.seed] must be odd");
  }
}

TEST_CASE("config resolve: to_toml writes every section in a fixed order", "[config]") {
  ResolvedConfig r = resolve_text(
      "[models.policy]\n"
      "type = \"torch\"\n"
      "path = \"ckpt/m0\"\n"
      "[models.\"my model\"]\n"
      "type = \"fake\"\n"
      "[run]\n"
      "iterations = 2\n"
      "train_judge = [true, false]\n");
  const std::string text = r.to_toml();

  SECTION("section headers in the documented order") {
    std::vector<std::string> headers = {"[run]",
                                        "[prompts]",
                                        "[plugins]",
                                        "[roles]",
                                        "[generation.actor]",
                                        "[generation.judge]",
                                        "[generation.meta_judge]",
                                        "[models.\"my model\"]",
                                        "[models.policy]",
                                        "[judge_rubric]",
                                        "[meta_judge]",
                                        "[pair_selection]",
                                        "[optimizer]"};
    std::size_t previous = 0;
    for (const auto& header : headers) {
      auto at = text.find("\n" + header + "\n");
      INFO(header);
      REQUIRE(at != std::string::npos);
      CHECK(at >= previous);
      previous = at;
    }
  }
  SECTION("host keys in schema order; plugin tables start with type") {
    CHECK_THAT(text, Catch::Contains("[run]\n"
                                     "iterations = 2\n"
                                     "seed = 1\n"
                                     "threads = 0\n"
                                     "output_dir = \"runs/metareward\"\n"
                                     "train_judge = [true, false]\n"));
    CHECK_THAT(text, Catch::Contains("[models.policy]\n"
                                     "type = \"torch\"\n"
                                     "dtype = \"bfloat16\"\n"
                                     "max_seq_len = 4096\n"
                                     "path = \"ckpt/m0\"\n"));
    CHECK_THAT(text, Catch::Contains("[optimizer]\n"
                                     "type = \"dpo\"\n"
                                     "beta = 0.1\n"
                                     "epochs = 1\n"
                                     "lr = 5e-6\n"
                                     "stop_words = []\n"));
  }
  SECTION("a multi-line string is written as a literal block") {
    CHECK_THAT(text, Catch::Contains("template = '''\n"
                                     "Review the user's question and the response.\n"
                                     "Award points additively.\n"
                                     "Score: <points>\n"
                                     "'''\n"));
  }
  SECTION("the text is deterministic") {
    CHECK(resolve_text(kMinimalModels).to_toml() == resolve_text(kMinimalModels).to_toml());
  }
}

TEST_CASE("config resolve: to_toml round-trips to an equal tree", "[config]") {
  const std::string text =
      "[run]\n"
      "iterations = 3\n"
      "seed = 123\n"
      "train_judge = [true, true, false]\n"
      "output_dir = 'C:\\runs\\\"x\"'\n"
      "[prompts]\n"
      "files = [\"a.jsonl\", \"b \\\"quoted\\\".jsonl\"]\n"
      "[generation.actor]\n"
      "temperature = [1, 0.7, 0.5]\n"
      "[models.policy]\n"
      "type = \"torch\"\n"
      "path = \"m\"\n"
      "[models.\"ref.model\"]\n"
      "type = \"fake\"\n"
      "vocab = 50000\n"
      "[roles]\n"
      "meta_judge = \"ref.model\"\n"
      "[judge_rubric]\n"
      "template = \"\"\"\n\nline one\n\ttabbed 'q' \\u00e9\nlast\n\"\"\"\n"
      "[pair_selection]\n"
      "rho = [0.0, 0.32, 0.4]\n"
      "[optimizer]\n"
      "lr = 1.5e-7\n"
      "beta = 1e300\n"
      "stop_words = [\"'''\", \"a\\nb\"]\n";
  ResolvedConfig first = resolve_text(text);
  const std::string written = first.to_toml();
  INFO(written);
  ResolvedConfig second = resolve_text(written);
  CHECK(second.root == first.root);
  CHECK(second.plugin_of == first.plugin_of);
  CHECK(second.iterations == 3);
  CHECK(second.to_toml() == written);
  CHECK(second.section("judge_rubric").get_string("template") ==
        "\nline one\n\ttabbed 'q' \u00e9\nlast\n");
  CHECK_THAT(written, Catch::Contains("template = '''\n\nline one\n"));
  CHECK(second.section("run").get_string("output_dir") == "C:\\runs\\\"x\"");
  CHECK(second.section("optimizer").get_string_list("stop_words") ==
        std::vector<std::string>{"'''", "a\nb"});

  SECTION("strings that cannot be literal blocks fall back to escaped basic strings") {
    ResolvedConfig r =
        resolve_text(std::string(kMinimalModels) + "[judge_rubric]\ntemplate = \"a'''b\\nc\"\n");
    CHECK_THAT(r.to_toml(), Catch::Contains("template = \"a'''b\\nc\"\n"));
    CHECK(resolve_text(r.to_toml()).root == r.root);
    for (const char* tricky : {"ends with a quote'\nx'", "carriage\r\nreturn", "bell\u0007\n"}) {
      INFO(tricky);
      ResolvedConfig t = resolve_text(std::string(kMinimalModels) + "[judge_rubric]\ntemplate = " +
                                      Value(tricky).to_toml() + "\n");
      CHECK_THAT(t.to_toml(), Catch::Contains("template = \""));
      CHECK(resolve_text(t.to_toml()).root == t.root);
    }
  }
}

TEST_CASE("config host schema: sections, keys and constraints", "[config]") {
  const auto& sections = host_sections();
  std::vector<std::string> names;
  for (const auto& [name, schema] : sections) names.push_back(name);
  CHECK(names == std::vector<std::string>{"run", "prompts", "plugins", "roles", "distributed",
                                          "generation.actor", "generation.judge",
                                          "generation.meta_judge"});

  auto spec = [&](const std::string& section, const std::string& key) -> const mr::sdk::ParamSpec& {
    for (const auto& [name, schema] : sections)
      if (name == section)
        for (const auto& s : schema)
          if (s.key == key) return s;
    FAIL("no key " << section << "." << key);
    throw std::logic_error("unreachable");
  };
  SECTION("every key has help text and a default") {
    for (const auto& [name, schema] : sections)
      for (const auto& s : schema) {
        INFO(name << "." << s.key);
        CHECK_FALSE(s.help.empty());
        CHECK_FALSE(s.required);
        CHECK_FALSE(s.default_value.is_null());
      }
  }
  SECTION("constraints") {
    CHECK(spec("run", "iterations").constraint_text() == "x >= 1");
    CHECK(spec("run", "threads").constraint_text() == "x >= 0");
    CHECK(spec("prompts", "pool_size").constraint_text() == "x >= 0");
    CHECK(spec("generation.actor", "top_p").constraint_text() == "0 < x <= 1");
    CHECK(spec("generation.judge", "temperature").constraint_text() == "x >= 0");
    CHECK(spec("generation.meta_judge", "batch_size").constraint_text() == "x >= 1");
  }
  SECTION("which keys may vary per iteration") {
    CHECK(spec("run", "train_judge").per_iteration);
    CHECK(spec("generation.actor", "samples").per_iteration);
    CHECK(spec("generation.actor", "temperature").per_iteration);
    CHECK(spec("generation.judge", "top_p").per_iteration);
    CHECK_FALSE(spec("generation.actor", "top_k").per_iteration);
    CHECK_FALSE(spec("run", "iterations").per_iteration);
    CHECK_FALSE(spec("prompts", "per_iteration").per_iteration);
  }
  SECTION("types") {
    CHECK(spec("prompts", "files").type == mr::sdk::ParamType::StringList);
    CHECK(spec("plugins", "libraries").type == mr::sdk::ParamType::StringList);
    CHECK(spec("generation.actor", "temperature").type == mr::sdk::ParamType::Float);
    CHECK(spec("roles", "judge").type == mr::sdk::ParamType::String);
  }
}

TEST_CASE("config did_you_mean: closest candidate within the edit-distance budget", "[config]") {
  const std::vector<std::string> keys = {"iterations", "seed", "threads", "output_dir"};
  CHECK(did_you_mean("iteratoins", keys) == "iterations");
  CHECK(did_you_mean("sed", keys) == "seed");
  CHECK(did_you_mean("thread", keys) == "threads");
  CHECK(did_you_mean("outptu_dir", keys) == "output_dir");   // 2 edits
  CHECK(did_you_mean("outpt_dirxx", keys) == "output_dir");  // 3 edits: within 11 / 3
  CHECK(did_you_mean("outptu_dri", keys).empty());           // 4 edits: too far
  CHECK(did_you_mean("zzz", keys).empty());
  CHECK(did_you_mean("banana", keys).empty());
  CHECK(did_you_mean("seed", {}).empty());
  SECTION("ties go to the first candidate") {
    CHECK(did_you_mean("ab", {"xb", "ax"}) == "xb");
  }
  SECTION("short words still get a two-edit budget") {
    CHECK(did_you_mean("rn", {"run", "roles"}) == "run");
    CHECK(did_you_mean("xyz", {"run"}).empty());
  }
}

TEST_CASE("config resolve: [evaluation] is optional and has no default evaluator",
          "[config][evaluation]") {
  SECTION("absent: no section, no plugin, nothing written") {
    const ResolvedConfig r = resolve_text(kMinimalModels);
    CHECK(r.sections.count("evaluation") == 0);
    CHECK(r.plugin_of.count("evaluation") == 0);
    CHECK(r.root.count("evaluation") == 0);
    CHECK_THAT(r.to_toml(), !Catch::Contains("[evaluation]"));
  }
  SECTION("present: validated against the evaluator's schema, defaults filled, written last") {
    const ResolvedConfig r = resolve_text(
        std::string(kMinimalModels) + "[evaluation]\ntype = \"oracle\"\nprompts = \"e.jsonl\"\n");
    CHECK(r.plugin_of.at("evaluation") == "oracle");
    CHECK(r.section("evaluation").get_string("prompts") == "e.jsonl");
    CHECK(r.section("evaluation").get_int("max_prompts") == 200);
    const std::string text = r.to_toml();
    CHECK_THAT(text, Catch::EndsWith("\n[evaluation]\ntype = \"oracle\"\nmax_prompts = 200\n"
                                     "prompts = \"e.jsonl\"\n"));
    CHECK(text.find("\n[optimizer]\n") < text.find("\n[evaluation]\n"));
    // The resolved text resolves to itself.
    CHECK(mr::core::resolve_config(mr::core::parse_config_text(text, "again.toml"), FakeCatalog())
              .to_toml() == text);
  }
  SECTION("commands that skip default plugin tables still resolve a given [evaluation]") {
    auto doc = mr::core::parse_config_text(
        std::string(kMinimalModels) + "[evaluation]\ntype = \"oracle\"\nprompts = \"e.jsonl\"\n",
        "cfg.toml");
    mr::core::ResolveOptions options;
    options.default_plugin_tables = false;
    const ResolvedConfig r = mr::core::resolve_config(doc, FakeCatalog(), options);
    CHECK(r.plugin_of.at("evaluation") == "oracle");
    CHECK(r.plugin_of.count("optimizer") == 0);
  }
  SECTION("errors: no type, a type of another kind, a missing required key, an unknown key") {
    CHECK_THAT(resolve_error(std::string(kMinimalModels) + "[evaluation]\nprompts = \"e\"\n"),
               Catch::Contains("cfg.toml:3:1: [evaluation.type] missing required key 'type' (the "
                               "evaluator plugin to use; available: oracle)"));
    CHECK_THAT(resolve_error(std::string(kMinimalModels) + "[evaluation]\ntype = \"dpo\"\n"),
               Catch::Contains("[evaluation.type] 'dpo' is an optimizer plugin, not an evaluator "
                               "(available evaluator plugins: oracle)"));
    CHECK_THAT(resolve_error(std::string(kMinimalModels) + "[evaluation]\ntype = \"orcale\"\n"),
               Catch::Contains("[evaluation.type] unknown evaluator 'orcale' (did you mean "
                               "'oracle'? available: oracle)"));
    const std::string both = resolve_error(std::string(kMinimalModels) +
                                           "[evaluation]\ntype = \"oracle\"\nmax_promts = 5\n");
    CHECK_THAT(both, Catch::Contains("[evaluation.prompts] missing required key 'prompts' for "
                                     "evaluator 'oracle'"));
    CHECK_THAT(both, Catch::Contains("[evaluation.max_promts] unknown key 'max_promts' for "
                                     "evaluator 'oracle'; did you mean 'max_prompts'?"));
    CHECK_THAT(resolve_error("evaluation = \"oracle\"\n" + std::string(kMinimalModels)),
               Catch::Contains("[evaluation] expected a table, got string \"oracle\""));
  }
  SECTION("without any evaluator loaded, an absent table is still fine") {
    auto doc = mr::core::parse_config_text(kMinimalModels, "cfg.toml");
    CHECK_NOTHROW(mr::core::resolve_config(doc, FakeCatalog({"oracle"})));
    doc = mr::core::parse_config_text(std::string(kMinimalModels) + "[evaluation]\ntype = \"x\"\n",
                                      "cfg.toml");
    CHECK_THAT(config_error([&] { mr::core::resolve_config(doc, FakeCatalog({"oracle"})); }),
               Catch::Contains("unknown evaluator 'x' (available: none loaded)"));
  }
}
