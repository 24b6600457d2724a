// Parsing TOML into sdk::Value trees with source positions, and `--set` overrides.
#include <filesystem>
#include <fstream>

#include "config_test_catalog.hpp"

using mr::core::apply_overrides;
using mr::core::ConfigDocument;
using mr::core::parse_config_file;
using mr::core::parse_config_text;
using mr::sdk::Array;
using mr::sdk::Table;
using mr::sdk::Value;
using mr::test::config_error;

namespace {

const Value& at(const Table& table, const std::string& dotted) {
  const Table* current = &table;
  std::string rest = dotted;
  while (true) {
    auto dot = rest.find('.');
    const Value& v = current->at(rest.substr(0, dot));
    if (dot == std::string::npos) return v;
    current = &v.as_table();
    rest = rest.substr(dot + 1);
  }
}

}  // namespace

TEST_CASE("config parse: TOML values become sdk values with file:line:column", "[config]") {
  const std::string text =
      "# a run\n"                                // 1
      "[run]\n"                                  // 2
      "iterations = 2\n"                         // 3
      "output_dir = \"runs/x\"\n"                // 4
      "train_judge = [true, false]\n"            // 5
      "\n"                                       // 6
      "[generation.actor]\n"                     // 7
      "temperature = 0.7\n"                      // 8
      "[models.policy]\n"                        // 9
      "type = 'torch'\n"                         // 10
      "extra = { a = 1, b = [\"x\", \"y\"] }\n"  // 11
      "big = -9223372036854775808\n";            // 12
  ConfigDocument doc = parse_config_text(text, "cfg.toml");
  REQUIRE(doc.file == "cfg.toml");

  SECTION("scalars keep their kind and value") {
    CHECK(at(doc.root, "run.iterations") == Value(2));
    CHECK(at(doc.root, "run.iterations").is_int());
    CHECK(at(doc.root, "run.output_dir") == Value("runs/x"));
    CHECK(at(doc.root, "generation.actor.temperature") == Value(0.7));
    CHECK(at(doc.root, "generation.actor.temperature").kind() == Value::Kind::Float);
    CHECK(at(doc.root, "models.policy.type") == Value("torch"));
    CHECK(at(doc.root, "models.policy.big").as_int() == INT64_MIN);
  }
  SECTION("arrays and inline tables convert recursively") {
    CHECK(at(doc.root, "run.train_judge") == Value(Array{true, false}));
    CHECK(at(doc.root, "models.policy.extra") ==
          Value(Table{{"a", Value(1)}, {"b", Value(Array{"x", "y"})}}));
  }
  SECTION("every value records where it was written") {
    const auto& iterations = at(doc.root, "run.iterations").source();
    CHECK(iterations.file == "cfg.toml");
    CHECK(iterations.line == 3);
    CHECK(iterations.column == 14);
    CHECK(at(doc.root, "run.output_dir").source().describe() == "cfg.toml:4:14");
    CHECK(at(doc.root, "generation.actor.temperature").source().describe() == "cfg.toml:8:15");
    const auto& flags = at(doc.root, "run.train_judge").as_array();
    CHECK(flags[0].source().describe() == "cfg.toml:5:16");
    CHECK(flags[1].source().describe() == "cfg.toml:5:22");
    CHECK(at(doc.root, "models.policy.extra.b").source().line == 11);
    CHECK(at(doc.root, "run").source().line == 2);
  }
}

TEST_CASE("config parse: syntax errors name file:line:col", "[config]") {
  SECTION("a missing value") {
    auto msg =
        config_error([] { parse_config_text("[run]\nseed = 1\niterations = \n", "bad.toml"); });
    CHECK_THAT(msg, Catch::StartsWith("bad.toml:3:14: TOML syntax error: "));
  }
  SECTION("a key defined twice") {
    auto msg = config_error([] { parse_config_text("[run]\nseed = 1\nseed = 2\n", "dup.toml"); });
    CHECK_THAT(msg, Catch::StartsWith("dup.toml:3:"));
    CHECK_THAT(msg, Catch::Contains("TOML syntax error"));
    CHECK_THAT(msg, Catch::Contains("seed"));
  }
  SECTION("an unterminated string") {
    auto msg = config_error([] { parse_config_text("a = \"open\n", "str.toml"); });
    CHECK_THAT(msg, Catch::StartsWith("str.toml:1:"));
  }
}

TEST_CASE("config parse: dates and times are rejected with their TOML path", "[config]") {
  auto msg = config_error([] {
    parse_config_text(
        "[run]\n"
        "start = 1979-05-27\n"
        "[x]\n"
        "times = [07:32:00]\n",
        "cfg.toml");
  });
  CHECK(msg ==
        "2 error(s) in cfg.toml:\n"
        "cfg.toml:2:9: [run.start] dates and times are not supported; write the value as a "
        "quoted string\n"
        "cfg.toml:4:10: [x.times[0]] dates and times are not supported; write the value as a "
        "quoted string");
}

TEST_CASE("config parse: reading files", "[config]") {
  namespace fs = std::filesystem;
  fs::path dir = fs::path(MR_BINARY_DIR) / "test-tmp" / "config_parse_tests";
  fs::create_directories(dir);

  SECTION("a missing file is an error naming it") {
    fs::path missing = dir / "nope.toml";
    auto msg = config_error([&] { parse_config_file(missing); });
    CHECK(msg == "cannot read config file '" + missing.string() + "': no such file");
  }
  SECTION("a directory is not a config file") {
    auto msg = config_error([&] { parse_config_file(dir); });
    CHECK(msg == "cannot read config file '" + dir.string() + "': it is a directory");
  }
  SECTION("sources and errors use the file's path") {
    fs::path file = dir / "run.toml";
    {
      std::ofstream out(file);
      out << "[run]\nseed = 42\n";
    }
    auto doc = parse_config_file(file);
    CHECK(doc.file == file);
    CHECK(at(doc.root, "run.seed") == Value(42));
    CHECK(at(doc.root, "run.seed").source().describe() == file.string() + ":2:8");

    {
      std::ofstream out(file);
      out << "[run]\nseed = \n";
    }
    auto msg = config_error([&] { parse_config_file(file); });
    CHECK_THAT(msg, Catch::StartsWith(file.string() + ":2:"));
  }
}

TEST_CASE("config overrides: --set key.path=value", "[config]") {
  ConfigDocument doc = parse_config_text(
      "[run]\n"
      "seed = 7\n"
      "[models.policy]\n"
      "type = \"torch\"\n",
      "cfg.toml");

  SECTION("replaces an existing value; the source becomes --set") {
    apply_overrides(doc, {"run.seed=11"});
    CHECK(at(doc.root, "run.seed") == Value(11));
    CHECK(at(doc.root, "run.seed").source().describe() == "--set");
  }
  SECTION("adds a new key to an existing table") {
    apply_overrides(doc, {"run.iterations = 2"});
    CHECK(at(doc.root, "run.iterations") == Value(2));
    CHECK(at(doc.root, "run.seed") == Value(7));
  }
  SECTION("creates intermediate tables") {
    apply_overrides(doc, {"pair_selection.rho=0.32", "models.reference.type=fake"});
    CHECK(at(doc.root, "pair_selection.rho") == Value(0.32));
    CHECK(at(doc.root, "models.reference.type") == Value("fake"));
    CHECK(at(doc.root, "models.policy.type") == Value("torch"));
    CHECK(at(doc.root, "pair_selection").source().file == "--set");
  }
  SECTION("values are parsed as TOML: arrays, booleans, floats, hex, inline tables") {
    apply_overrides(doc, {"pair_selection.rho=[0.0, 0.32, 0.32, 0.4]", "run.train_judge=false",
                          "optimizer.lr=5e-6", "run.threads=0x10", "x.t={ a = 1 }"});
    CHECK(at(doc.root, "pair_selection.rho") == Value(Array{0.0, 0.32, 0.32, 0.4}));
    CHECK(at(doc.root, "pair_selection.rho").as_array()[3].source().describe() == "--set");
    CHECK(at(doc.root, "run.train_judge") == Value(false));
    CHECK(at(doc.root, "optimizer.lr") == Value(5e-6));
    CHECK(at(doc.root, "run.threads") == Value(16));
    CHECK(at(doc.root, "x.t") == Value(Table{{"a", Value(1)}}));
  }
  SECTION("text that is not a TOML value is taken as a bare string") {
    apply_overrides(doc, {"run.output_dir=runs/exp 1", "roles.actor=policy", "a.b=", "a.c=1 2",
                          "a.d=\"quoted\"", "a.e=1979-05-27"});
    CHECK(at(doc.root, "run.output_dir") == Value("runs/exp 1"));
    CHECK(at(doc.root, "roles.actor") == Value("policy"));
    CHECK(at(doc.root, "a.b") == Value(""));
    CHECK(at(doc.root, "a.c") == Value("1 2"));
    CHECK(at(doc.root, "a.d") == Value("quoted"));
    CHECK(at(doc.root, "a.e") == Value("1979-05-27"));
  }
  SECTION("a quoted key element may contain dots") {
    apply_overrides(doc, {"models.\"my.model\".type=fake"});
    CHECK(at(doc.root, "models").as_table().at("my.model").as_table().at("type") == Value("fake"));
  }
  SECTION("later overrides win") {
    apply_overrides(doc, {"run.seed=1", "run.seed=2"});
    CHECK(at(doc.root, "run.seed") == Value(2));
  }
  SECTION("a table can be replaced by a scalar") {
    apply_overrides(doc, {"models.policy=3"});
    CHECK(at(doc.root, "models.policy") == Value(3));
  }
  SECTION("malformed overrides are errors quoting the override") {
    CHECK(config_error([&] { apply_overrides(doc, {"run.seed"}); }) ==
          "bad override 'run.seed': expected key.path=value");
    CHECK(config_error([&] { apply_overrides(doc, {" = 3"}); }) ==
          "bad override ' = 3': the key before '=' is empty");
    CHECK(config_error([&] { apply_overrides(doc, {"run..seed=1"}); }) ==
          "bad override 'run..seed=1': empty element in key path 'run..seed'");
    CHECK(config_error([&] { apply_overrides(doc, {"run.=1"}); }) ==
          "bad override 'run.=1': empty element in key path 'run.'");
    CHECK(config_error([&] { apply_overrides(doc, {"models.\"p.type=1"}); }) ==
          "bad override 'models.\"p.type=1': unterminated quoted key in 'models.\"p.type'");
  }
  SECTION("a path through a value that is not a table is an error naming both") {
    CHECK(config_error([&] { apply_overrides(doc, {"run.seed.x=1"}); }) ==
          "bad override 'run.seed.x=1': 'run.seed' is integer 7 (cfg.toml:2:8), not a table");
  }
}
