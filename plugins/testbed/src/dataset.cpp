// The bootstrap dataset: generation (three independent seeded streams) and atomic JSONL writing.
#include "metareward/testbed/dataset.hpp"
#include "metareward/sdk/file_io.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "metareward/sdk/error.hpp"

namespace mr::plugins::testbed {

namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;

namespace {

// Stream ids of stream_seed(): one per file, so that each file depends only on its own options.
constexpr std::uint64_t kStreamEval = 0x6576616cULL;     // "eval"
constexpr std::uint64_t kStreamTrain = 0x747261696eULL;  // "train"
constexpr std::uint64_t kStreamSft = 0x736674ULL;        // "sft"

// Draws of one family before it counts as out of distinct prompts on its side of the split.
constexpr int kDrawAttempts = 2000;
// Upper bound of each count: keeps a typo from filling the disk.
constexpr std::int64_t kMaxCount = 10'000'000;

std::uint64_t fnv1a(std::string_view text) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::vector<TaskInstance> draw_distinct(std::int64_t count,
                                        bool eval_side,
                                        const std::vector<TaskFamily>& families,
                                        Rng& rng) {
  std::vector<TaskInstance> out;
  std::set<std::string> seen;
  std::vector<bool> exhausted(families.size(), false);
  std::size_t next = 0;
  while (static_cast<std::int64_t>(out.size()) < count) {
    std::size_t f = next;
    for (std::size_t k = 0; k < families.size() && exhausted[f]; ++k) f = (f + 1) % families.size();
    if (exhausted[f])
      throw mr::sdk::DataError("cannot draw " + std::to_string(count) + " distinct " +
                               (eval_side ? "eval" : "train") +
                               " prompts: the task families ran "
                               "out after " +
                               std::to_string(out.size()));
    next = (f + 1) % families.size();
    bool found = false;
    for (int attempt = 0; attempt < kDrawAttempts && !found; ++attempt) {
      TaskInstance t = generate_instance(families[f], rng);
      if (is_eval_prompt(t.prompt) != eval_side || !seen.insert(t.prompt).second) continue;
      out.push_back(std::move(t));
      found = true;
    }
    if (!found) exhausted[f] = true;  // the slot goes to the next family
  }
  return out;
}

TaskInstance draw_training_instance(const std::vector<TaskFamily>& families, Rng& rng) {
  const TaskFamily family = families[rng.uniform_below(families.size())];
  while (true) {  // 7/8 of every family's prompts are on the training side
    TaskInstance t = generate_instance(family, rng);
    if (!is_eval_prompt(t.prompt)) return t;
  }
}

void check_probability(const char* name, double p) {
  if (!(p >= 0.0 && p <= 1.0))
    throw mr::sdk::ConfigError(std::string(name) + " must be in [0, 1], got " + std::to_string(p));
}

void check_count(const char* name, std::int64_t n) {
  if (n < 0 || n > kMaxCount)
    throw mr::sdk::ConfigError(std::string(name) + " must be in [0, " + std::to_string(kMaxCount) +
                               "], got " + std::to_string(n));
}

ordered_json messages_json(const mr::sdk::Conversation& messages) {
  ordered_json out = ordered_json::array();
  for (const auto& m : messages) out.push_back({{"role", m.role}, {"content", m.content}});
  return out;
}

std::string numbered(const char* prefix, std::size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s-%06zu", prefix, i + 1);
  return buf;
}

std::string joined_lines(const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  return text;
}

}  // namespace

bool is_eval_prompt(std::string_view prompt) {
  return fnv1a(prompt) % kEvalSplitModulus == 0;
}

void DatasetOptions::validate() const {
  check_count("sft_examples", sft_examples);
  check_count("train_prompts", train_prompts);
  check_count("eval_prompts", eval_prompts);
  check_probability("judge_share", judge_share);
  check_probability("meta_share", meta_share);
  if (judge_share + meta_share > 1.0 + 1e-12)
    throw mr::sdk::ConfigError("judge_share + meta_share must be <= 1, got " +
                               std::to_string(judge_share + meta_share));
  check_probability("p_correct", teacher.p_correct);
  check_probability("p_verbose", teacher.p_verbose);
  check_probability("p_off_task", p_off_task);
  check_probability("judge_noise", judge_noise.p_score_noise);
  check_probability("length_bias", judge_noise.p_length_bias);
  check_probability("meta_flip", meta_noise.p_flip);
  check_probability("meta_good_exact", meta_noise.p_good_exact);
  if (families.empty()) throw mr::sdk::ConfigError("families must name at least one task family");
  for (std::size_t i = 0; i < families.size(); ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (families[i] == families[j])
        throw mr::sdk::ConfigError("families names '" + std::string(family_name(families[i])) +
                                   "' twice");
  if (judge_template.find("{response}") == std::string::npos)
    throw mr::sdk::ConfigError("judge_template must contain the placeholder {response}");
  for (const char* slot : {"{judgment_a}", "{judgment_b}"})
    if (meta_template.find(slot) == std::string::npos)
      throw mr::sdk::ConfigError(std::string("meta_template must contain the placeholder ") + slot);
}

Dataset build_dataset(const DatasetOptions& options) {
  options.validate();
  Dataset d;
  {
    Rng rng(stream_seed(options.seed, kStreamEval));
    d.eval = draw_distinct(options.eval_prompts, true, options.families, rng);
  }
  {
    Rng rng(stream_seed(options.seed, kStreamTrain));
    d.train = draw_distinct(options.train_prompts, false, options.families, rng);
  }

  Rng rng(stream_seed(options.seed, kStreamSft));
  const auto n = options.sft_examples;
  const auto n_judge =
      std::min<std::int64_t>(n, std::llround(static_cast<double>(n) * options.judge_share));
  const auto n_meta = std::min<std::int64_t>(
      n - n_judge, std::llround(static_cast<double>(n) * options.meta_share));
  enum Kind { Instruction, Judge, Meta };
  std::vector<Kind> kinds(static_cast<std::size_t>(n), Instruction);
  std::fill_n(kinds.begin(), n_judge, Judge);
  std::fill_n(kinds.begin() + n_judge, n_meta, Meta);
  rng.shuffle(kinds);
  d.sft_kind_counts = {
      {"instruction", n - n_judge - n_meta}, {"judge", n_judge}, {"meta_judge", n_meta}};

  d.sft.reserve(kinds.size());
  for (std::size_t i = 0; i < kinds.size(); ++i) {
    const TaskInstance task = draw_training_instance(options.families, rng);
    const mr::sdk::Conversation prompt = {{"user", task.prompt}};
    SftRow row;
    row.id = numbered("sft", i);
    if (kinds[i] == Instruction) {
      row.kind = "instruction";
      row.messages = prompt;
      row.messages.push_back({"assistant", teacher_answer(task, options.teacher, rng).text});
    } else {
      const JudgedResponse response =
          sample_judged_response(task, options.teacher, options.p_off_task, rng);
      const int oracle = oracle_score(task, response.text).score;
      if (kinds[i] == Judge) {
        row.kind = "judge";
        const int score = noisy_judge_score(oracle, response.verbose, options.judge_noise, rng);
        ++d.judge_target_histogram[static_cast<std::size_t>(score)];
        row.messages = judge_conversation(prompt, response.text, options.judge_template);
        row.messages.push_back({"assistant", judgment_text(score)});
      } else {
        row.kind = "meta_judge";
        const MetaJudgeExample e = meta_judge_example(oracle, options.meta_noise, rng);
        row.messages = meta_judge_conversation(prompt, response.text, e.judgment_a, e.judgment_b,
                                               options.meta_template);
        row.messages.push_back({"assistant", verdict_text(e.a_wins)});
      }
    }
    d.sft.push_back(std::move(row));
  }
  return d;
}

std::string sft_line(const SftRow& row) {
  return ordered_json{{"id", row.id}, {"kind", row.kind}, {"messages", messages_json(row.messages)}}
      .dump();
}

std::vector<std::string> judge_sft_lines(const Dataset& dataset) {
  std::vector<std::string> out;
  for (const auto& row : dataset.sft)
    if (row.kind != "instruction") out.push_back(sft_line(row));
  return out;
}

std::vector<std::string> sft_lines(const Dataset& dataset) {
  std::vector<std::string> out;
  out.reserve(dataset.sft.size());
  for (const auto& row : dataset.sft) out.push_back(sft_line(row));
  return out;
}

std::vector<std::string> train_prompt_lines(const Dataset& dataset) {
  std::vector<std::string> out;
  out.reserve(dataset.train.size());
  for (std::size_t i = 0; i < dataset.train.size(); ++i)
    out.push_back(
        ordered_json{{"id", numbered("train", i)}, {"prompt", dataset.train[i].prompt}}.dump());
  return out;
}

std::vector<std::string> eval_prompt_lines(const Dataset& dataset) {
  std::vector<std::string> out;
  out.reserve(dataset.eval.size());
  for (std::size_t i = 0; i < dataset.eval.size(); ++i) {
    const TaskInstance& t = dataset.eval[i];
    out.push_back(ordered_json{
        {"id", numbered("eval", i)},
        {"prompt", t.prompt},
        {"task", std::string(family_name(t.family))},
        {"answer",
         t.answer}}.dump());
  }
  return out;
}

std::string manifest_text(const Dataset& dataset, const DatasetOptions& options) {
  auto per_family = [](const std::vector<TaskInstance>& tasks) {
    std::array<std::int64_t, kAllFamilies.size()> counts{};
    for (const auto& t : tasks) ++counts[static_cast<std::size_t>(t.family)];
    ordered_json j = ordered_json::object();
    for (TaskFamily f : kAllFamilies)
      j[std::string(family_name(f))] = counts[static_cast<std::size_t>(f)];
    return j;
  };
  ordered_json kinds = ordered_json::object();
  for (const auto& [kind, count] : dataset.sft_kind_counts) kinds[kind] = count;
  ordered_json families = ordered_json::array();
  for (TaskFamily f : options.families) families.push_back(std::string(family_name(f)));
  ordered_json histogram = ordered_json::array();
  for (auto c : dataset.judge_target_histogram) histogram.push_back(c);
  ordered_json m = {
      {"generator", "metareward testbed-data"},
      {"options",
       {{"seed", options.seed},
        {"sft_examples", options.sft_examples},
        {"train_prompts", options.train_prompts},
        {"eval_prompts", options.eval_prompts},
        {"judge_share", options.judge_share},
        {"meta_share", options.meta_share},
        {"p_correct", options.teacher.p_correct},
        {"p_verbose", options.teacher.p_verbose},
        {"p_off_task", options.p_off_task},
        {"judge_noise", options.judge_noise.p_score_noise},
        {"length_bias", options.judge_noise.p_length_bias},
        {"meta_flip", options.meta_noise.p_flip},
        {"meta_good_exact", options.meta_noise.p_good_exact},
        {"families", families}}},
      {"judge_template", options.judge_template},
      {"meta_template", options.meta_template},
      {"eval_split", "fnv1a64(prompt) % " + std::to_string(kEvalSplitModulus) + " == 0"},
      {"sft_kinds", kinds},
      {"judge_target_histogram", histogram},
      {"train_families", per_family(dataset.train)},
      {"eval_families", per_family(dataset.eval)},
  };
  return m.dump(2) + "\n";
}

void write_text_atomic(const fs::path& file, const std::string& text) {
  mr::sdk::write_file_atomic(file, text);  // checked: errors name the file and the reason
}

void write_dataset(const Dataset& dataset,
                   const DatasetOptions& options,
                   const std::filesystem::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir))
    throw mr::sdk::DataError("cannot create the output directory '" + dir.string() + "'" +
                             (ec ? ": " + ec.message() : ""));
  write_text_atomic(dir / "sft.jsonl", joined_lines(sft_lines(dataset)));
  write_text_atomic(dir / "judge_sft.jsonl", joined_lines(judge_sft_lines(dataset)));
  write_text_atomic(dir / "train_prompts.jsonl", joined_lines(train_prompt_lines(dataset)));
  write_text_atomic(dir / "eval_prompts.jsonl", joined_lines(eval_prompt_lines(dataset)));
  // Last, so that a manifest means the data files beside it are complete.
  write_text_atomic(dir / "manifest.json", manifest_text(dataset, options));
}

}  // namespace mr::plugins::testbed
