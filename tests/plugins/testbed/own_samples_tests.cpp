// The own-sample judge stage's rows: the oracle grades the model's own completions, the judge
// targets carry the configured noise and length bias, bad rows are counted drops.
#include <catch2/catch.hpp>

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "metareward/sdk/error.hpp"
#include "metareward/testbed/judge_data.hpp"
#include "metareward/testbed/own_samples.hpp"

namespace tb = mr::plugins::testbed;
using json = nlohmann::json;

namespace {

std::string generated_row(const std::string& prompt, const std::vector<std::string>& texts) {
  json completions = json::array();
  for (const auto& t : texts) completions.push_back({{"text", t}, {"finish_reason", "stop"}});
  return json{{"id", "train-1"},
              {"messages", json::array({{{"role", "user"}, {"content", prompt}}})},
              {"completions", completions}}
      .dump();
}

tb::DatasetOptions noiseless() {
  tb::DatasetOptions d;
  d.judge_noise.p_score_noise = 0.0;
  d.judge_noise.p_length_bias = 0.0;
  return d;
}

// The score a judge row's target states.
int target_score(const tb::SftRow& row) {
  const std::string& t = row.messages.back().content;
  const auto pos = t.rfind("Score: ");
  REQUIRE(pos != std::string::npos);
  return std::stoi(t.substr(pos + 7));
}

}  // namespace

TEST_CASE("own samples: each completion becomes a judge row with the oracle's score",
          "[testbed][own_samples]") {
  tb::OwnSampleOptions own;
  own.meta_share = 0.0;
  own.replay = 0.0;
  const std::string prompt = "Add the numbers: 4 + 7";
  const std::vector<std::string> texts = {"11", "Sure! The answer is 11.", "12", "banana"};
  const auto data =
      tb::own_sample_judge_data({generated_row(prompt, texts)}, {}, noiseless(), own, 3);
  REQUIRE(data.rows.size() == 4);
  CHECK(data.drops.empty());
  std::map<std::string, int> score_of;  // response -> target
  for (const auto& row : data.rows) {
    CHECK(row.kind == "judge");
    REQUIRE(row.messages.size() == 2);
    bool found = false;
    for (const auto& t : texts)
      if (row.messages[0].content == tb::judge_conversation({{"user", prompt}}, t)[0].content) {
        score_of[t] = target_score(row);
        found = true;
      }
    CHECK(found);
  }
  CHECK(score_of["11"] == 5);
  CHECK(score_of["Sure! The answer is 11."] == 4);
  CHECK(score_of["12"] == 3);
  CHECK(score_of["banana"] == 0);
  const auto& st = data.stats;
  CHECK(st.prompts == 1);
  CHECK(st.samples == 4);
  CHECK(st.correct == 2);
  CHECK(st.exact == 1);
  CHECK(st.accuracy() == Approx(0.5));
  CHECK(st.prompts_with_correct == 1);
  CHECK(st.prompts_mixed == 1);
  CHECK(st.oracle_histogram[5] == 1);
  CHECK(st.oracle_histogram[4] == 1);
  CHECK(st.oracle_histogram[3] == 1);
  CHECK(st.oracle_histogram[0] == 1);
  CHECK(st.judge_rows == 4);
  CHECK(st.meta_rows == 0);
}

TEST_CASE("own samples: the length bias and the score noise match their settings",
          "[testbed][own_samples]") {
  tb::OwnSampleOptions own;
  own.meta_share = 0.0;
  own.replay = 0.0;
  const int n = 4000;
  // A verbose right answer (oracle 4) and a bare one (oracle 5), n of each.
  const std::vector<std::string> lines = {
      generated_row("Add the numbers: 4 + 7",
                    std::vector<std::string>(n, "Sure! The answer is 11. Let me know.")),
      generated_row("Add the numbers: 2 + 2", std::vector<std::string>(n, "4"))};
  SECTION("length bias 0.5: half the verbose answers are lifted to 5, no bare one moves") {
    tb::DatasetOptions d = noiseless();
    d.judge_noise.p_length_bias = 0.5;
    const auto data = tb::own_sample_judge_data(lines, {}, d, own, 11);
    int verbose5 = 0, bare5 = 0, verbose = 0;
    for (const auto& row : data.rows) {
      const bool is_verbose = row.messages[0].content.find("Let me know") != std::string::npos;
      verbose += is_verbose;
      (is_verbose ? verbose5 : bare5) += target_score(row) == 5;
    }
    REQUIRE(verbose == n);
    // 4 standard errors of a binomial(4000, 0.5) share: 0.032.
    CHECK(std::abs(verbose5 / double(n) - 0.5) < 0.032);
    CHECK(bare5 == n);
  }
  SECTION("score noise 0.2: a fifth of the targets move by one point") {
    tb::DatasetOptions d = noiseless();
    d.judge_noise.p_score_noise = 0.2;
    const auto data = tb::own_sample_judge_data(lines, {}, d, own, 12);
    int moved = 0, bare = 0;
    for (const auto& row : data.rows) {
      if (row.messages[0].content.find("Let me know") != std::string::npos) continue;
      ++bare;
      const int s = target_score(row);
      CHECK((s == 5 || s == 4));
      moved += s != 5;
    }
    REQUIRE(bare == n);
    // At the top of the scale a move is +1 or -1 with equal odds and +1 is clipped back to 5:
    // 10 % of the bare answers end at 4 (4 standard errors: 0.019).
    CHECK(std::abs(moved / double(n) - 0.1) < 0.019);
  }
}

TEST_CASE("own samples: meta-judge rows and replayed instruction rows with ids and determinism",
          "[testbed][own_samples]") {
  tb::OwnSampleOptions own;
  own.meta_share = 0.5;
  own.replay = 0.5;
  std::vector<tb::SftRow> replay(3);
  for (std::size_t i = 0; i < replay.size(); ++i) {
    replay[i].id = "sft-" + std::to_string(i);
    replay[i].kind = "instruction";
    replay[i].messages = {{"user", "Reverse the word: abc"}, {"assistant", "cba"}};
  }
  const std::vector<std::string> lines = {
      generated_row("Reverse the word: hello", std::vector<std::string>(200, "olleh"))};
  const auto a = tb::own_sample_judge_data(lines, replay, tb::DatasetOptions{}, own, 5);
  const auto b = tb::own_sample_judge_data(lines, replay, tb::DatasetOptions{}, own, 5);
  const auto c = tb::own_sample_judge_data(lines, replay, tb::DatasetOptions{}, own, 6);
  const auto& st = a.stats;
  CHECK(st.judge_rows == 200);
  CHECK(std::abs(st.meta_rows - 100) < 30);  // binomial(200, 0.5): 4 standard errors ~ 28
  CHECK(st.replay_rows == std::llround(0.5 * double(st.judge_rows + st.meta_rows)));
  CHECK(a.rows.size() == std::size_t(st.judge_rows + st.meta_rows + st.replay_rows));
  int metas = 0;
  for (std::size_t i = 0; i < a.rows.size(); ++i) {
    char id[32];
    std::snprintf(id, sizeof id, "own-%06zu", i + 1);
    CHECK(a.rows[i].id == id);
    if (a.rows[i].kind == "meta_judge") {
      ++metas;
      const std::string& verdict = a.rows[i].messages.back().content;
      CHECK((verdict == tb::verdict_text(true) || verdict == tb::verdict_text(false)));
      CHECK_THAT(a.rows[i].messages[0].content, Catch::Contains("Answer: olleh\nA: "));
    }
  }
  CHECK(metas == st.meta_rows);
  std::vector<std::string> la, lb, lc;
  for (const auto& r : a.rows) la.push_back(tb::sft_line(r));
  for (const auto& r : b.rows) lb.push_back(tb::sft_line(r));
  for (const auto& r : c.rows) lc.push_back(tb::sft_line(r));
  CHECK(la == lb);
  CHECK(la != lc);
}

TEST_CASE("own samples: rows that cannot be graded are counted drops naming their line",
          "[testbed][own_samples]") {
  const std::vector<std::string> lines = {
      "{not json",
      "",
      R"({"id": "x", "messages": [{"role": "user", "content": "Tell me a joke"}], "completions": [{"text": "no"}]})",
      R"({"id": "y", "completions": [{"text": "1"}]})",
      R"({"id": "z", "messages": [{"role": "user", "content": "Add the numbers: 1 + 1"}]})",
      R"({"id": "w", "messages": [{"role": "user", "content": "Add the numbers: 1 + 1"}], "completions": [{"text": "2"}, {"tokens": 3}]})"};
  const auto data = tb::own_sample_judge_data(lines, {}, noiseless(), tb::OwnSampleOptions{}, 1);
  CHECK(data.stats.samples == 1);
  CHECK(data.stats.dropped == 5);
  REQUIRE(data.drops.size() == 5);
  CHECK_THAT(data.drops[0], Catch::StartsWith("line 1: not a JSON object"));
  CHECK_THAT(data.drops[1], Catch::StartsWith("line 3: not a testbed prompt: 'Tell me a joke'"));
  CHECK_THAT(data.drops[2], Catch::StartsWith("line 4: no \"messages\""));
  CHECK_THAT(data.drops[3], Catch::StartsWith("line 5: no \"completions\""));
  CHECK_THAT(data.drops[4], Catch::StartsWith("line 6: a completion without \"text\""));
}

TEST_CASE("own samples: options out of range are named", "[testbed][own_samples]") {
  auto error = [](auto change) {
    tb::OwnSampleOptions o;
    change(o);
    try {
      o.validate();
    } catch (const mr::sdk::ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  CHECK(error([](auto&) {}) == "(no error)");
  CHECK_THAT(error([](auto& o) { o.samples = 0; }), Catch::Contains("samples"));
  CHECK_THAT(error([](auto& o) { o.meta_share = 1.5; }), Catch::Contains("meta_share"));
  CHECK_THAT(error([](auto& o) { o.top_p = 0.0; }), Catch::Contains("top_p"));
  CHECK_THAT(error([](auto& o) { o.prompts = -1; }), Catch::Contains("prompts"));
}
