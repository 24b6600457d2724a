// The CI-sized `metareward run` setup the e2e run tests share: a tiny random model, 8 prompts and a
// config over the real plugins (torch, additive5, pairwise_elo, length_control, dpo).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "cli_runner.hpp"
#include "tiny_model.hpp"

namespace mr::tests {

namespace fs = std::filesystem;

/// The CI-sized run: 8 prompts, 4 per iteration, K=3 responses, N=3 judgments, 2 iterations
/// (the judge is trained in the first). The random model's outputs are bytes, so the score and
/// verdict patterns accept any digit 0-5 / letter a-b: the real plugins then see parsed and
/// unparsed judgments alike and make pairs.
inline std::string run_config(const fs::path& model, const fs::path& out) {
  return R"toml(
[run]
iterations = 2
seed = 7
threads = 1
output_dir = ")toml" +
         out.string() + R"toml("
train_judge = [true, false]

[prompts]
files = ["prompts.jsonl"]
per_iteration = 4

[models.policy]
type = "torch"
path = ")toml" +
         model.string() +
         R"toml("

[generation.actor]
samples = 3
max_new_tokens = 16
batch_size = 2

[generation.judge]
samples = 3
max_new_tokens = 40
batch_size = 4

[generation.meta_judge]
max_new_tokens = 40
batch_size = 4

[judge_rubric]
type = "additive5"
template = "Rate: {instruction} -> {response}\n"
score_regex = "([0-5])"

[meta_judge]
type = "pairwise_elo"
template = "Which judgment? {instruction} {response} A: {judgment_a} B: {judgment_b}\n"
verdict_regex = "([ab])"

[pair_selection]
type = "length_control"
rho = [0.0, 0.3]
allow_truncated = true   # the random model rarely ends a response before max_new_tokens

[optimizer]
type = "dpo"
batch_size = 2
micro_batch_size = 2
learning_rate = 0.01
)toml";
}

inline const char* kPrompts =
    "{\"id\": \"p1\", \"prompt\": \"Sort: 3 1 2\"}\n"
    "{\"id\": \"p2\", \"prompt\": \"Reverse: abc\"}\n"
    "{\"id\": \"p3\", \"prompt\": \"Add: 2 + 5\"}\n"
    "{\"id\": \"p4\", \"prompt\": \"Count a in banana\"}\n"
    "{\"id\": \"p5\", \"prompt\": \"Multiply: 3 * 4\"}\n"
    "{\"id\": \"p6\", \"prompt\": \"Sort: 9 7 8 1\"}\n"
    "{\"id\": \"p7\", \"prompt\": \"Reverse: hello\"}\n"
    "{\"id\": \"p8\", \"instruction\": \"Add\", \"input\": \"10 + 11\"}\n";

/// A scratch directory holding the model, the prompts and run.toml; run() runs `metareward run`.
struct RunSetup {
  ScratchDir dir;
  fs::path model, config, out;
  /// `tag` names the scratch directory: two setups alive at once need two tags.
  explicit RunSetup(const std::string& tag = "run") : dir(tag) {
    model = tiny_model(dir);
    dir.write("prompts.jsonl", kPrompts);
    out = dir.path() / "run";
    config = dir.write("run.toml", run_config(model, out));
  }
  CliResult run(std::vector<std::string> extra = {}) const {
    std::vector<std::string> args = {"run", config.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_cli(args, dir.path());
  }
};

}  // namespace mr::tests
