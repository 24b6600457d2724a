// Instruction and pair readers (formats, counted drops naming their line), the durable record
// store (torn tail, lossless bytes) and the pairwise verdict parser over real-looking judge
// outputs.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "metareward/evaluators/eval_io.hpp"
#include "metareward/evaluators/evaluators.hpp"
#include "metareward/evaluators/head_to_head.hpp"
#include "metareward/sdk/error.hpp"
#include "test_host_context.hpp"

namespace fs = std::filesystem;
using namespace mr::plugins::evaluators;

namespace {

struct Scratch {
  fs::path dir;
  explicit Scratch(const std::string& name)
      : dir(fs::temp_directory_path() /
            ("mr_evaluators_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~Scratch() { fs::remove_all(dir); }
  fs::path write(const std::string& name, const std::string& text) const {
    std::ofstream(dir / name, std::ios::binary) << text;
    return dir / name;
  }
};

std::string read(const fs::path& f) {
  std::ifstream in(f, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("instructions: AlpacaEval JSON arrays, Arena-Hard questions and prompt rows",
          "[evaluators][io]") {
  Scratch s("instructions");
  Drops drops;
  const auto alpaca = read_instructions(
      s.write("alpaca.json",
              R"([{"instruction": "Name a color.", "output": "Blue.", "generator": "gpt4_turbo",
                   "dataset": "helpful_base", "instruction_difficulty": 0.4},
                  {"instruction": "Say hi.", "output": "Hi!", "generator": "gpt4_turbo"}])"),
      drops);
  REQUIRE(alpaca.size() == 2);
  CHECK(alpaca[0].text == "Name a color.");
  CHECK(*alpaca[0].output == "Blue.");
  CHECK(alpaca[0].generator == "gpt4_turbo");
  CHECK(*alpaca[0].difficulty == Approx(0.4));
  CHECK_FALSE(alpaca[1].difficulty.has_value());
  CHECK(alpaca[1].id == "line 2");
  const auto arena = read_instructions(
      s.write("arena.jsonl",
              "{\"question_id\": \"q1\", \"turns\": [{\"content\": \"Write a haiku.\"}]}\n"
              "{\"id\": 7, \"prompt\": \"Add 2 and 2.\"}\n"),
      drops);
  REQUIRE(arena.size() == 2);
  CHECK(arena[0].id == "q1");
  CHECK(arena[0].text == "Write a haiku.");
  CHECK(arena[1].id == "7");
  CHECK(drops.count() == 0);
}

TEST_CASE("instructions: bad rows are dropped naming their line and nothing usable is an error",
          "[evaluators][io]") {
  Scratch s("bad_instructions");
  Drops drops;
  const fs::path file = s.write("mixed.jsonl",
                                "{\"instruction\": \"ok\"}\n"
                                "not json\n"
                                "{\"instruction\": 5}\n"
                                "\n"
                                "{\"instruction\": \"\"}\n"
                                "{\"instruction\": \"x\", \"output\": 3}\n");
  const auto items = read_instructions(file, drops);
  CHECK(items.size() == 1);
  REQUIRE(drops.count() == 4);
  CHECK_THAT(drops.reasons[0], Catch::Contains("mixed.jsonl:2"));
  CHECK_THAT(drops.reasons[1], Catch::Contains("mixed.jsonl:3"));
  CHECK_THAT(drops.reasons[2], Catch::Contains(":5: the instruction is empty"));
  CHECK_THAT(drops.reasons[3], Catch::Contains(":6: 'output' is not a string"));
  Drops more;
  CHECK_THROWS_WITH(read_instructions(s.write("none.jsonl", "garbage\n"), more),
                    Catch::Contains("none.jsonl: no usable instruction"));
  CHECK_THROWS_WITH(read_instructions(s.write("dup.jsonl",
                                              "{\"id\": \"a\", \"prompt\": \"x\"}\n"
                                              "{\"id\": \"a\", \"prompt\": \"y\"}\n"),
                                      more),
                    Catch::Contains("dup.jsonl:2: id 'a' appears twice"));
  CHECK_THROWS_WITH(read_instructions(s.dir / "missing.jsonl", more),
                    Catch::Contains("cannot open"));
  CHECK_THROWS_WITH(read_instructions(s.write("broken.json", "[{\"instruction\": "), more),
                    Catch::Contains("not a valid JSON array"));
}

TEST_CASE("labelled pairs: strings, or conversations as actor_pairs.jsonl holds them",
          "[evaluators][io]") {
  Scratch s("pairs");
  Drops drops;
  const auto pairs = read_labelled_pairs(
      s.write("pairs.jsonl",
              "{\"prompt\": \"Q\", \"chosen\": \"good\", \"rejected\": \"bad\", "
              "\"chosen_score\": 4.5, \"rejected_score\": 1}\n"
              "{\"id\": \"p1/pair\", \"prompt\": [{\"role\": \"user\", \"content\": \"Q2\"}], "
              "\"chosen\": [{\"role\": \"assistant\", \"content\": \"yes\"}], "
              "\"rejected\": [{\"role\": \"assistant\", \"content\": \"no\"}]}\n"
              "{\"prompt\": \"Q3\", \"chosen\": \"only\"}\n"),
      drops);
  REQUIRE(pairs.size() == 2);
  CHECK(pairs[0].prompt.front().content == "Q");
  CHECK(*pairs[0].chosen_score == 4.5);
  CHECK(pairs[1].id == "p1/pair");
  CHECK(pairs[1].chosen == "yes");
  CHECK(pairs[1].rejected == "no");
  CHECK_FALSE(pairs[1].chosen_score.has_value());
  REQUIRE(drops.count() == 1);
  CHECK_THAT(drops.reasons[0], Catch::Contains("pairs.jsonl:3"));
}

TEST_CASE("record store: durable appends, a torn tail cut, raw bytes kept exactly",
          "[evaluators][io]") {
  Scratch s("store");
  mr::test::TestHostContext ctx(mr::sdk::Config{});
  const fs::path file = s.dir / "cache" / "verdicts.jsonl";
  const std::string bytes = std::string("caf\xc3\xa9 \xff\xfe\x01 end", 13);
  {
    RecordStore store(file, ctx.logger());
    nlohmann::json a = {{"key", "a"}}, b = {{"key", "b"}};
    put_text(a, "text", "plain");
    put_text(b, "text", bytes);
    store.append({a, b});
    CHECK(store.size() == 2);
  }
  CHECK(read(file).find("text_hex") != std::string::npos);
  // A crash mid-append leaves a partial line: it is cut, the rest kept, appends continue.
  std::ofstream(file, std::ios::app) << "{\"key\": \"c\", \"te";
  {
    RecordStore store(file, ctx.logger());
    CHECK(store.size() == 2);
    CHECK(*get_text(*store.find("a"), "text") == "plain");
    CHECK(*get_text(*store.find("b"), "text") == bytes);
    CHECK(store.find("c") == nullptr);
    store.append({{{"key", "c"}, {"text", "late"}}});
  }
  RecordStore reloaded(file, ctx.logger());
  CHECK(reloaded.size() == 3);
  CHECK(*get_text(*reloaded.find("c"), "text") == "late");
  CHECK_FALSE(get_text({{"key", "d"}, {"text_hex", "abc"}}, "text").has_value());
  CHECK(content_key({"a", "bc"}) != content_key({"ab", "c"}));
  CHECK(content_key({"a", "bc"}) == content_key({"a", "bc"}));
}

namespace {

PairwiseTemplate template_of(const mr::sdk::Schema& schema) {
  return PairwiseTemplate(mr::test::config_from_schema(
      schema, {{"instructions", mr::sdk::Value(std::string("x.jsonl"))}}, 1, "evaluation"));
}

}  // namespace

TEST_CASE("verdict parser: real-looking judge outputs, Arena-Hard labels",
          "[evaluators][verdicts]") {
  const PairwiseTemplate arena = template_of(arena_score_schema());
  struct Case {
    const char* output;
    std::optional<int> outcome;
  };
  const Case cases[] = {
      {"My answer: ... Assistant A is much better.\n\nMy final verdict is: [[A>>B]]", 2},
      {"Both are fine; A is more concise. My final verdict is [[A>B]].", 1},
      {"They are equivalent. [[A=B]]", 0},
      {"Final verdict: [[B>A]]", -1},
      {"[[ b >> a ]]", -2},
      {"First I thought [[A>B]] but on reflection [[B>>A]]", -2},     // the last match decides
      {"My final verdict is: Assistant B is better.", std::nullopt},  // no label
      {"[[A>>>B]]", std::nullopt},
      {"[[C>A]]", std::nullopt},
      {"", std::nullopt},
  };
  for (const auto& c : cases) {
    INFO(c.output);
    const auto v = arena.parse(c.output);
    CHECK(v.outcome == c.outcome);
    CHECK(v.error.empty() == c.outcome.has_value());
  }
  const PairwiseTemplate alpaca = template_of(pairwise_winrate_schema());
  CHECK(alpaca.parse("Output (b) answers the question. [[B]]").outcome == -1);
  CHECK(alpaca.parse("[[a]]").outcome == 1);
  CHECK_FALSE(alpaca.parse("Output (a) is better.").outcome.has_value());
  // The prompt is substituted in one pass: an output quoting a placeholder stays verbatim.
  const auto prompt = alpaca.render("Say {output_b}", "{output_b}", "B's text");
  CHECK_THAT(prompt.back().content, Catch::Contains("Say {output_b}"));
  CHECK_THAT(prompt.back().content, Catch::Contains("[Output (a)]\n{output_b}\n"));
}

TEST_CASE("verdict parser: bad templates and labels are config errors naming the key",
          "[evaluators][verdicts]") {
  auto make = [](mr::sdk::Table t) {
    t.emplace("instructions", mr::sdk::Value(std::string("x.jsonl")));
    return PairwiseTemplate(
        mr::test::config_from_schema(pairwise_winrate_schema(), std::move(t), 1, "evaluation"));
  };
  CHECK_THROWS_WITH(
      make({{"judge_template", mr::sdk::Value(std::string("{instruction} {output_a}"))}}),
      Catch::Contains("judge_template") && Catch::Contains("{output_b}"));
  CHECK_THROWS_WITH(make({{"verdict_regex", mr::sdk::Value(std::string("no group"))}}),
                    Catch::Contains("verdict_regex"));
  mr::sdk::Array bad{mr::sdk::Value(std::string("A=3"))};
  CHECK_THROWS_WITH(make({{"verdict_labels", mr::sdk::Value(bad)}}),
                    Catch::Contains("verdict_labels") && Catch::Contains("'A=3'"));
}
