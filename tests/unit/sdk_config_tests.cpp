// The SDK's config data model: SourceRef, Value (accessors, to_toml escaping), ParamSpec and the
// Config getters plugins read their settings with.
#include <cmath>
#include <functional>
#include <limits>

#include <catch2/catch.hpp>

#include "metareward/sdk/config.hpp"
#include "metareward/sdk/error.hpp"

using mr::sdk::Array;
using mr::sdk::Config;
using mr::sdk::ConfigError;
using mr::sdk::ParamSpec;
using mr::sdk::ParamType;
using mr::sdk::SourceRef;
using mr::sdk::Table;
using mr::sdk::Value;

namespace {

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const ConfigError& e) {
    return e.what();
  }
  FAIL("expected a ConfigError");
  return "";
}

Value at(Value v, const std::string& file, int line, int column) {
  v.set_source(SourceRef{file, line, column});
  return v;
}

}  // namespace

TEST_CASE("sdk config: SourceRef::describe", "[config][sdk]") {
  CHECK(SourceRef{"cfg.toml", 3, 7}.describe() == "cfg.toml:3:7");
  CHECK(SourceRef{"cfg.toml", 3, 0}.describe() == "cfg.toml:3");
  CHECK(SourceRef{"--set", 0, 0}.describe() == "--set");
  CHECK(SourceRef{}.describe() == "(default)");
}

TEST_CASE("sdk config: Value::to_toml writes valid TOML literals", "[config][sdk]") {
  SECTION("scalars") {
    CHECK(Value(true).to_toml() == "true");
    CHECK(Value(false).to_toml() == "false");
    CHECK(Value(-42).to_toml() == "-42");
    CHECK(Value(std::int64_t{9007199254740993}).to_toml() == "9007199254740993");
    CHECK(Value(0.5).to_toml() == "0.5");
    CHECK(Value(1.0).to_toml() == "1.0");
    CHECK(Value(-3.0).to_toml() == "-3.0");
    CHECK(Value(0.1).to_toml() == "0.1");  // shortest round-trip form, not 0.10000000000000001
    CHECK(Value(5e-6).to_toml() == "5e-6");
    CHECK(Value(100.0).to_toml() == "100.0");
    CHECK(Value(1e20).to_toml() == "1e20");
    CHECK(std::stod(Value(1.0 / 3.0).to_toml()) == 1.0 / 3.0);
    CHECK(Value(std::numeric_limits<double>::infinity()).to_toml() == "inf");
    CHECK(Value(-std::numeric_limits<double>::infinity()).to_toml() == "-inf");
    CHECK(Value(std::nan("")).to_toml() == "nan");
  }
  SECTION("strings are escaped") {
    CHECK(Value("plain").to_toml() == "\"plain\"");
    CHECK(Value("say \"hi\"").to_toml() == "\"say \\\"hi\\\"\"");
    CHECK(Value("C:\\dir").to_toml() == "\"C:\\\\dir\"");
    CHECK(Value("a\nb\tc\rd").to_toml() == "\"a\\nb\\tc\\rd\"");
    CHECK(Value("bell\x07").to_toml() == "\"bell\\u0007\"");
    CHECK(Value("del\x7f").to_toml() == "\"del\\u007f\"");
    CHECK(Value("caf\xc3\xa9").to_toml() == "\"caf\xc3\xa9\"");  // UTF-8 passes through
    CHECK(Value("").to_toml() == "\"\"");
  }
  SECTION("arrays and inline tables; keys are quoted when not bare") {
    CHECK(Value(Array{}).to_toml() == "[]");
    CHECK(Value(Array{1, 2.5, "x"}).to_toml() == "[1, 2.5, \"x\"]");
    CHECK(Value(Table{}).to_toml() == "{ }");
    CHECK(Value(Table{{"b", Value(1)}, {"a b", Value(Array{true})}, {"a-c_1", Value("v")}})
              .to_toml() == "{ \"a b\" = [true], a-c_1 = \"v\", b = 1 }");
  }
}

TEST_CASE("sdk config: Value accessors and equality", "[config][sdk]") {
  SECTION("typed accessors") {
    CHECK(Value(3).as_int() == 3);
    CHECK(Value(3).as_float() == 3.0);  // an int reads as a float
    CHECK(Value(2.5).as_float() == 2.5);
    CHECK(Value("s").as_string() == "s");
    CHECK(Value(true).as_bool());
    CHECK(Value(3).is_number());
    CHECK(Value(3.0).is_number());
    CHECK_FALSE(Value("3").is_number());
    CHECK(Value().is_null());
  }
  SECTION("a mismatch names expected and actual kinds and the source") {
    CHECK(error_of([] { Value("7").as_int(); }) == "expected integer, got string \"7\"");
    CHECK(error_of([] { at(Value(2.5), "cfg.toml", 4, 9).as_int(); }) ==
          "cfg.toml:4:9: expected integer, got float 2.5");
    CHECK(error_of([] { Value().as_string(); }) == "expected string, got nothing");
    CHECK(error_of([] { Value(1).as_table(); }) == "expected table, got integer 1");
    CHECK(error_of([] { Value(2.0).as_bool(); }) == "expected boolean, got float 2.0");
  }
  SECTION("equality is structural and ignores sources") {
    CHECK(at(Value(1), "a.toml", 1, 1) == at(Value(1), "b.toml", 2, 2));
    CHECK(Value(1) != Value(1.0));
    CHECK(Value(Array{1, "a"}) == Value(Array{1, "a"}));
    CHECK(Value(Table{{"k", Value(1)}}) != Value(Table{{"k", Value(2)}}));
  }
}

TEST_CASE("sdk config: ParamSpec builders and constraint text", "[config][sdk]") {
  auto rho = ParamSpec::float_("rho", 0.0, "tier width")
                 .range(0.0, 0.5, false, true)
                 .per_iteration_allowed();
  CHECK(rho.key == "rho");
  CHECK(rho.type == ParamType::Float);
  CHECK(rho.default_value == Value(0.0));
  CHECK(rho.per_iteration);
  CHECK_FALSE(rho.required);
  CHECK(rho.constraint_text() == "0 <= x < 0.5");
  CHECK(ParamSpec::int_("n", 1, "").range(1, std::nullopt).constraint_text() == "x >= 1");
  CHECK(ParamSpec::int_("n", 1, "").range(0, std::nullopt, true).constraint_text() == "x > 0");
  CHECK(ParamSpec::float_("p", 1, "").range(std::nullopt, 1.0).constraint_text() == "x <= 1");
  CHECK(ParamSpec::float_("p", 1, "").range(0.0, 1.0, true).constraint_text() == "0 < x <= 1");
  CHECK(ParamSpec::string_("u", "a", "").one_of({"a", "b"}).constraint_text() == "one of: a, b");
  CHECK(ParamSpec::bool_("b", true, "").constraint_text().empty());
  auto list = ParamSpec::string_list("files", {"a", "b"}, "");
  CHECK(list.type == ParamType::StringList);
  CHECK(list.default_value == Value(Array{"a", "b"}));
  auto path = ParamSpec::required_("path", ParamType::String, "where");
  CHECK(path.required);
  CHECK(path.default_value.is_null());
  CHECK(std::string(mr::sdk::param_type_name(ParamType::StringList)) == "string list");
  CHECK(std::string(mr::sdk::kind_name(Value::Kind::Int)) == "integer");
}

TEST_CASE("sdk config: Config getters", "[config][sdk]") {
  Table values{
      {"rho", at(Value(Array{at(Value(0.0), "cfg.toml", 7, 8), at(Value(0.32), "cfg.toml", 7, 13)}),
                 "cfg.toml", 7, 7)},
      {"beta", at(Value(0.1), "cfg.toml", 8, 8)},
      {"epochs", Value(2)},
      {"name", Value("dpo")},
      {"flag", Value(true)},
      {"words", Value(Array{"a", "b"})},
      {"empty", Value(Array{})},
  };
  Config config("pair_selection", values, 2);

  SECTION("identity") {
    CHECK(config.path() == "pair_selection");
    CHECK(config.iterations() == 2);
    CHECK(config.has("rho"));
    CHECK_FALSE(config.has("nope"));
    CHECK(config.values().size() == values.size());
    CHECK(Config("x", {}, 0).iterations() == 1);
  }
  SECTION("scalars ignore the iteration") {
    CHECK(config.get_float("beta") == 0.1);
    CHECK(config.get_float("beta", 2) == 0.1);
    CHECK(config.get_int("epochs", 5) == 2);
    CHECK(config.get_float("epochs") == 2.0);
    CHECK(config.get_string("name") == "dpo");
    CHECK(config.get_bool("flag", 1));
    CHECK(config.get_string_list("words") == std::vector<std::string>{"a", "b"});
    CHECK(config.get_string_list("empty").empty());
  }
  SECTION("per-iteration arrays are indexed from 1") {
    CHECK(config.get_float("rho", 1) == 0.0);
    CHECK(config.get_float("rho", 2) == 0.32);
  }
  SECTION("reading a per-iteration key needs a valid iteration; errors carry file:line") {
    CHECK(error_of([&] { config.get_float("rho"); }) ==
          "cfg.toml:7:7: [pair_selection.rho] is given per iteration; an iteration number is "
          "needed to read it");
    CHECK(error_of([&] { config.get_float("rho", 3); }) ==
          "cfg.toml:7:7: [pair_selection.rho] has 2 per-iteration values but iteration 3 was "
          "requested");
  }
  SECTION("a getter of the wrong type names the value's own position") {
    CHECK(error_of([&] { config.get_int("beta"); }) ==
          "cfg.toml:8:8: expected integer, got float 0.1");
    CHECK(error_of([&] { config.get_string("rho", 2); }) ==
          "cfg.toml:7:13: expected string, got float 0.32");
  }
  SECTION("an undeclared key is an error naming the table") {
    CHECK(error_of([&] { config.raw("lr"); }) ==
          "[pair_selection] no key 'lr' (a plugin asked for a key its schema does not declare)");
  }
  SECTION("fail() reports a semantic problem at the key's position") {
    CHECK(error_of([&] { config.fail("beta", "must be < 0.05 with rho > 0"); }) ==
          "cfg.toml:8:8: [pair_selection.beta] must be < 0.05 with rho > 0");
    CHECK(error_of([&] { config.fail("epochs", "too many"); }) ==
          "[pair_selection.epochs] too many");
    CHECK(error_of([&] { config.fail("missing", "x"); }) == "[pair_selection.missing] x");
  }
}
