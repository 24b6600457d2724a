// The `testbed` command (`data`, `bootstrap`), its `testbed-data` alias and the library's
// registration (the `testbed` evaluator).
#include "metareward/testbed/commands.hpp"

#include <algorithm>
#include <iostream>
#include <memory>
#include <optional>

#include "cli_flags.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/testbed/bootstrap.hpp"
#include "metareward/testbed/dataset.hpp"
#include "metareward/testbed/evaluator.hpp"

namespace mr::plugins::testbed {

namespace {

/// `testbed data` parses into this: the dataset options and the output directory.
struct DataArgs {
  DatasetOptions options;
  std::optional<std::string> out;
};

const std::vector<cli::Flag<DataArgs>>& data_flags() {
  static const std::vector<cli::Flag<DataArgs>> table = [] {
    std::vector<cli::Flag<DataArgs>> f;
    f.push_back({"out", "DIR", "output directory, created if missing (required)",
                 [](DataArgs& a, const std::string& flag, const std::string& v) {
                   if (v.empty()) throw UsageError(flag + " needs a non-empty directory");
                   a.out = v;
                 }});
    for (auto& d : cli::dataset_flags<DataArgs>(
             [](DataArgs& a) -> DatasetOptions& { return a.options; }, true))
      f.push_back(std::move(d));
    return f;
  }();
  return table;
}

}  // namespace

std::string testbed_data_usage(const std::string& name) {
  return "usage: metareward " + name +
         " --out DIR [--seed S] [--sft-examples N] [--train-prompts N]\n"
         "         [--eval-prompts N] [--p-correct X] [--p-verbose X] [--judge-share X]\n"
         "         [--meta-share X] [--p-off-task X] [--judge-noise X] [--length-bias X]\n"
         "         [--meta-flip X]\n"
         "  Writes the oracle testbed's bootstrap dataset into DIR: sft.jsonl (instruction, judge\n"
         "  and meta-judge examples for the seed model), train_prompts.jsonl (loop prompts, no\n"
         "  answers), eval_prompts.jsonl (held-out prompts with task and answer) and\n"
         "  manifest.json. The same options always give byte-identical files.\n"
         "Options [default]:\n" +
         cli::flag_lines(data_flags());
}

int testbed_data_command(const std::vector<std::string>& args,
                         std::ostream& out,
                         std::ostream& err,
                         const std::string& name) {
  DataArgs parsed;
  try {
    if (!cli::apply_flags(args, data_flags(), parsed)) {
      out << testbed_data_usage(name);
      return 0;
    }
    if (!parsed.out) throw UsageError("--out DIR is required");
    cli::check_shares(parsed.options);
  } catch (const UsageError& e) {
    err << "metareward " << name << ": " << e.what() << "\n" << testbed_data_usage(name);
    return 2;
  }
  const DatasetOptions& options = parsed.options;
  const Dataset dataset = build_dataset(options);
  write_dataset(dataset, options, *parsed.out);
  out << name << ": wrote " << dataset.sft.size() << " SFT rows ("
      << dataset.sft_kind_counts.at("instruction") << " instruction, "
      << dataset.sft_kind_counts.at("judge") << " judge, "
      << dataset.sft_kind_counts.at("meta_judge") << " meta_judge), " << dataset.train.size()
      << " train prompts and " << dataset.eval.size() << " eval prompts to " << *parsed.out
      << " (seed " << options.seed << ")\n";
  return 0;
}

std::string testbed_usage() {
  return "usage: metareward testbed SUBCOMMAND [options]\n"
         "  The oracle testbed. Subcommands (each takes --help):\n"
         "    data       write the bootstrap dataset (SFT rows, train and eval prompts)\n"
         "    bootstrap  make the seed model from scratch: data, init-model, sft\n"
         "  The evaluator `[evaluation] type = \"testbed\"` measures a run against the oracle.\n";
}

int testbed_command(const std::vector<std::string>& args,
                    mr::sdk::HostContext& ctx,
                    std::ostream& out,
                    std::ostream& err) {
  // The subcommand is the first word that is not an option: the host moves a global --help to
  // just after the command name (`testbed --help bootstrap`).
  const auto sub_it = std::find_if(args.begin(), args.end(),
                                   [](const std::string& a) { return a.rfind('-', 0) != 0; });
  const bool help = std::any_of(args.begin(), args.end(),
                                [](const std::string& a) { return a == "--help" || a == "-h"; });
  if (sub_it == args.end() || (*sub_it == "help" && help)) {
    if (help) {
      out << testbed_usage();
      return 0;
    }
    err << "metareward testbed: a subcommand is required\n" << testbed_usage();
    return 2;
  }
  const std::string sub = *sub_it;
  std::vector<std::string> rest(args.begin(), sub_it);
  rest.insert(rest.end(), sub_it + 1, args.end());
  if (sub == "data") return testbed_data_command(rest, out, err, "testbed data");
  if (sub == "bootstrap") return bootstrap_command(rest, ctx, out, err);
  if (sub == "help") {
    out << testbed_usage();
    return 0;
  }
  err << "metareward testbed: unknown subcommand '" << sub << "'\n" << testbed_usage();
  return 2;
}

void register_testbed_plugins(mr::sdk::Registrar& registrar) {
  registrar.add<mr::sdk::Evaluator>(
      "testbed", kLibraryVersion,
      "Oracle testbed evaluation: actor oracle score and win rate vs the seed, judge and "
      "meta-judge agreement with the oracle",
      testbed_evaluator_schema(),
      [](mr::sdk::HostContext& ctx) { return std::make_unique<TestbedEvaluator>(ctx); });
  registrar.add_command({"testbed",
                         "The oracle testbed: `testbed data`, `testbed bootstrap` (the seed model)",
                         [](const std::vector<std::string>& args, mr::sdk::HostContext& ctx) {
                           return testbed_command(args, ctx, std::cout, std::cerr);
                         }});
  registrar.add_command({"testbed-data",
                         "Alias of `testbed data`: write the oracle testbed's dataset",
                         [](const std::vector<std::string>& args, mr::sdk::HostContext&) {
                           return testbed_data_command(args, std::cout, std::cerr, "testbed-data");
                         }});
}

}  // namespace mr::plugins::testbed
