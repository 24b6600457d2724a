// The bootstrap dataset: byte-determinism, row counts and kinds, train/eval disjointness, eval
// answers, the judge rows' contents, option validation and atomic writing.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "additive_rubric.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/testbed/dataset.hpp"
#include "test_host_context.hpp"

namespace fs = std::filesystem;
namespace tb = mr::plugins::testbed;
using nlohmann::json;

namespace {

tb::DatasetOptions small(std::uint64_t seed = 5) {
  tb::DatasetOptions o;
  o.seed = seed;
  o.sft_examples = 400;
  o.train_prompts = 150;
  o.eval_prompts = 60;
  return o;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("mr_testbed_data_" + std::to_string(::getpid()));
  TempDir() { fs::remove_all(path); }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

}  // namespace

TEST_CASE("dataset: byte-identical for a seed, different across seeds", "[testbed][dataset]") {
  const tb::Dataset a = tb::build_dataset(small(5)), b = tb::build_dataset(small(5));
  CHECK(tb::sft_lines(a) == tb::sft_lines(b));
  CHECK(tb::train_prompt_lines(a) == tb::train_prompt_lines(b));
  CHECK(tb::eval_prompt_lines(a) == tb::eval_prompt_lines(b));
  CHECK(tb::manifest_text(a, small(5)) == tb::manifest_text(b, small(5)));
  const tb::Dataset c = tb::build_dataset(small(6));
  CHECK(tb::sft_lines(a) != tb::sft_lines(c));
  CHECK(tb::eval_prompt_lines(a) != tb::eval_prompt_lines(c));
  SECTION("each file depends only on its own options; fewer prompts are a prefix") {
    tb::DatasetOptions o = small(5);
    o.sft_examples = 10;
    o.train_prompts = 100;
    o.eval_prompts = 30;
    const tb::Dataset d = tb::build_dataset(o);
    const auto eval_a = tb::eval_prompt_lines(a), eval_d = tb::eval_prompt_lines(d);
    CHECK(std::equal(eval_d.begin(), eval_d.end(), eval_a.begin()));
    const auto train_a = tb::train_prompt_lines(a), train_d = tb::train_prompt_lines(d);
    CHECK(std::equal(train_d.begin(), train_d.end(), train_a.begin()));
  }
}

TEST_CASE("dataset: rows, kinds and formats", "[testbed][dataset]") {
  const tb::Dataset d = tb::build_dataset(small());
  REQUIRE(d.sft.size() == 400);
  CHECK(d.train.size() == 150);
  CHECK(d.eval.size() == 60);
  SECTION("kinds come in the configured proportions") {
    // Defaults: 45 % judge, 10 % meta-judge, the rest instruction.
    CHECK(d.sft_kind_counts.at("judge") == 180);
    CHECK(d.sft_kind_counts.at("meta_judge") == 40);
    CHECK(d.sft_kind_counts.at("instruction") == 180);
    std::map<std::string, std::int64_t> seen;
    for (const auto& row : d.sft) ++seen[row.kind];
    CHECK(seen == d.sft_kind_counts);
    // Shuffled, not in blocks: some judge row appears in the first quarter.
    bool early_judge = false;
    for (std::size_t i = 0; i < 100; ++i) early_judge = early_judge || d.sft[i].kind == "judge";
    CHECK(early_judge);
  }
  SECTION("every SFT row is a user turn then an assistant turn, shaped by its kind") {
    const mr::plugins::recipe::AdditiveRubric rubric(mr::test::config_from_schema(
        mr::plugins::recipe::additive5_schema(),
        mr::sdk::Table{{"template", mr::sdk::Value(tb::kTestbedJudgeTemplate)}}));
    for (const auto& row : d.sft) {
      INFO(row.id << " " << row.kind);
      REQUIRE(row.messages.size() == 2);
      CHECK(row.messages[0].role == "user");
      CHECK(row.messages[1].role == "assistant");
      const std::string& user = row.messages[0].content;
      const std::string& reply = row.messages[1].content;
      if (row.kind == "instruction") {
        CHECK(tb::parse_prompt(user).has_value());
        CHECK_FALSE(reply.empty());
      } else if (row.kind == "judge") {
        CHECK(user.rfind("Rate the answer 0-5.\nTask: ", 0) == 0);
        CHECK(rubric.parse(reply).score.has_value());
      } else {
        CHECK(user.rfind("Which rating is right?\nTask: ", 0) == 0);
        CHECK((reply == "Winner: Judgement A" || reply == "Winner: Judgement B"));
      }
    }
  }
  SECTION("JSONL rows have the documented keys, in order") {
    const auto sft = tb::sft_lines(d);
    CHECK(sft[0].rfind("{\"id\":\"sft-000001\",\"kind\":\"", 0) == 0);
    const json s = json::parse(sft[0]);
    CHECK(s["messages"][0]["role"] == "user");
    const json train = json::parse(tb::train_prompt_lines(d)[0]);
    CHECK(train.size() == 2);
    CHECK(train["id"] == "train-000001");
    CHECK(train["prompt"] == d.train[0].prompt);
    const json eval = json::parse(tb::eval_prompt_lines(d)[0]);
    CHECK(eval.size() == 4);
    CHECK(eval["id"] == "eval-000001");
    CHECK(eval["task"] == std::string(tb::family_name(d.eval[0].family)));
    CHECK(eval["answer"] == d.eval[0].answer);
  }
  SECTION("judge targets use the whole 0..5 scale") {
    for (std::size_t s = 0; s <= 5; ++s) {
      INFO("score " << s);
      CHECK(d.judge_target_histogram[s] > 0);
    }
  }
}

TEST_CASE("dataset: eval prompts are held out", "[testbed][dataset]") {
  tb::DatasetOptions o = small(9);
  o.sft_examples = 1500;
  o.train_prompts = 1000;
  o.eval_prompts = 300;  // more than multiply's eval side holds: that family runs out
  const tb::Dataset d = tb::build_dataset(o);
  REQUIRE(d.eval.size() == 300);
  std::set<std::string> eval, train;
  std::map<tb::TaskFamily, int> eval_families;
  for (const auto& t : d.eval) {
    CHECK(tb::is_eval_prompt(t.prompt));
    eval.insert(t.prompt);
    ++eval_families[t.family];
    const auto parsed = tb::parse_prompt(t.prompt);
    REQUIRE(parsed.has_value());
    CHECK(parsed->answer == t.answer);
  }
  for (const auto& t : d.train) {
    CHECK_FALSE(tb::is_eval_prompt(t.prompt));
    train.insert(t.prompt);
  }
  CHECK(eval.size() == d.eval.size());    // distinct
  CHECK(train.size() == d.train.size());  // distinct
  for (const auto& p : train) CHECK(eval.count(p) == 0);
  // No SFT example shows an eval prompt, as a task or inside a judge / meta-judge prompt.
  for (const auto& row : d.sft) {
    const std::string& user = row.messages[0].content;
    std::string task = user;
    if (row.kind != "instruction") {
      const auto from = user.find("Task: ") + 6;
      task = user.substr(from, user.find('\n', from) - from);
    }
    INFO(row.id << ": " << task);
    CHECK(tb::parse_prompt(task).has_value());
    CHECK(eval.count(task) == 0);
  }
  SECTION("a family that runs out of distinct prompts yields to the others") {
    CHECK(eval_families[tb::TaskFamily::Multiply] < 60);
    CHECK(eval_families[tb::TaskFamily::Sort] > 60);
  }
}

TEST_CASE("dataset: families restricts the prompts and every SFT row's task",
          "[testbed][dataset]") {
  tb::DatasetOptions o = small(4);
  o.families = {tb::TaskFamily::Multiply, tb::TaskFamily::Count};
  const tb::Dataset d = tb::build_dataset(o);
  std::map<tb::TaskFamily, int> counts;
  for (const auto& t : d.train) ++counts[t.family];
  for (const auto& t : d.eval) ++counts[t.family];
  for (const auto& row : d.sft) {
    const std::string& user = row.messages[0].content;
    std::string task = user;
    if (row.kind != "instruction") {
      const auto from = user.find("Task: ") + 6;
      task = user.substr(from, user.find('\n', from) - from);
    }
    const auto parsed = tb::parse_prompt(task);
    REQUIRE(parsed.has_value());
    ++counts[parsed->family];
  }
  CHECK(counts.size() == 2);
  CHECK(counts[tb::TaskFamily::Multiply] > 100);
  CHECK(counts[tb::TaskFamily::Count] > 100);
  // Train and eval prompts alternate between the two families, in the order given.
  REQUIRE(d.train.size() >= 2);
  CHECK(d.train[0].family == tb::TaskFamily::Multiply);
  CHECK(d.train[1].family == tb::TaskFamily::Count);
}

TEST_CASE("dataset: the defaults rebuild the committed seed's prompt files", "[testbed][dataset]") {
  // configs/testbed/seed/data was written with the defaults; a generator change that alters
  // them (a new option's default included) would leave the committed seed's files stale.
  const fs::path committed = fs::path(MR_SOURCE_DIR) / "configs" / "testbed" / "seed" / "data";
  const tb::Dataset d = tb::build_dataset(tb::DatasetOptions{});
  CHECK(read_file(committed / "train_prompts.jsonl") == joined(tb::train_prompt_lines(d)));
  CHECK(read_file(committed / "eval_prompts.jsonl") == joined(tb::eval_prompt_lines(d)));
}

TEST_CASE("dataset: options are validated", "[testbed][dataset]") {
  auto fails = [](auto change, const std::string& what) {
    tb::DatasetOptions o = small();
    change(o);
    CHECK_THROWS_WITH(tb::build_dataset(o), Catch::Contains(what));
  };
  fails([](tb::DatasetOptions& o) { o.sft_examples = -1; }, "sft_examples must be in");
  fails([](tb::DatasetOptions& o) { o.teacher.p_correct = 1.5; }, "p_correct must be in [0, 1]");
  fails([](tb::DatasetOptions& o) { o.teacher.p_verbose = -0.1; }, "p_verbose");
  fails([](tb::DatasetOptions& o) { o.judge_share = 0.7, o.meta_share = 0.4; },
        "judge_share + meta_share must be <= 1");
  fails([](tb::DatasetOptions& o) { o.judge_template = "Rate {instruction}"; }, "{response}");
  fails([](tb::DatasetOptions& o) { o.meta_template = "{judgment_a} only"; }, "{judgment_b}");
  fails([](tb::DatasetOptions& o) { o.families.clear(); }, "families must name at least one");
  fails(
      [](tb::DatasetOptions& o) {
        o.families = {tb::TaskFamily::Add, tb::TaskFamily::Add};
      },
      "families names 'add' twice");
  SECTION("empty files are fine") {
    tb::DatasetOptions o = small();
    o.sft_examples = o.train_prompts = o.eval_prompts = 0;
    const tb::Dataset d = tb::build_dataset(o);
    CHECK(d.sft.empty());
    CHECK(d.eval.empty());
  }
}

TEST_CASE("dataset: written atomically, equal to the lines", "[testbed][dataset]") {
  TempDir dir;
  const tb::DatasetOptions o = small();
  const tb::Dataset d = tb::build_dataset(o);
  tb::write_dataset(d, o, dir.path / "nested");
  const fs::path out = dir.path / "nested";
  CHECK(read_file(out / "sft.jsonl") == joined(tb::sft_lines(d)));
  CHECK(read_file(out / "train_prompts.jsonl") == joined(tb::train_prompt_lines(d)));
  CHECK(read_file(out / "eval_prompts.jsonl") == joined(tb::eval_prompt_lines(d)));
  {
    // judge_sft.jsonl: exactly the judge and meta-judge lines of sft.jsonl, in their order.
    std::vector<std::string> expected;
    for (const auto& line : tb::sft_lines(d))
      if (json::parse(line)["kind"] != "instruction") expected.push_back(line);
    CHECK(expected.size() == 180 + 40);
    CHECK(read_file(out / "judge_sft.jsonl") == joined(expected));
    CHECK(tb::judge_sft_lines(d) == expected);
  }
  const json manifest = json::parse(read_file(out / "manifest.json"));
  CHECK(manifest["judge_template"] == tb::kTestbedJudgeTemplate);
  CHECK(manifest["meta_template"] == tb::kTestbedMetaJudgeTemplate);
  CHECK(manifest["sft_kinds"]["judge"] == 180);
  CHECK(manifest["options"]["seed"] == 5);
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(out)) names.insert(e.path().filename().string());
  CHECK(names == std::set<std::string>{"eval_prompts.jsonl", "judge_sft.jsonl", "manifest.json",
                                       "sft.jsonl",
                                       "train_prompts.jsonl"});  // no temporary left behind
  SECTION("rewriting replaces the files") {
    tb::DatasetOptions o2 = small(6);
    tb::write_dataset(tb::build_dataset(o2), o2, out);
    CHECK(read_file(out / "sft.jsonl") != joined(tb::sft_lines(d)));
  }
  SECTION("an output path that is a file is a DataError naming it") {
    std::ofstream(dir.path / "file") << "x";
    CHECK_THROWS_WITH(
        tb::write_dataset(d, o, dir.path / "file"),
        Catch::Contains("cannot create the output directory") && Catch::Contains("file"));
  }
}
