// The `testbed data` command, its `testbed-data` alias and the library's registration: the
// `testbed` evaluator and the `testbed` command group (subcommands `data` and `bootstrap`).
#include "metareward/testbed/commands.hpp"

#include <iostream>
#include <memory>

#include "cli_options.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/testbed/bootstrap.hpp"
#include "metareward/testbed/dataset.hpp"
#include "metareward/testbed/evaluator.hpp"
#include "metareward/testbed/oracle_backend.hpp"

namespace mr::plugins::testbed {

namespace {

/// `testbed data` parses into this: the dataset options and the output directory.
struct DataArgs {
  DatasetOptions options;
  std::string out;
};

/// The options of `testbed data`, stored into `a`.
cli::OptionTable data_options(DataArgs& a) {
  cli::OptionTable t("Options [default]");
  t.value("out", "DIR", "output directory, created if missing (required)", a.out, cli::parse_dir);
  cli::add_dataset_options(t, a.options, true);
  return t;
}

}  // namespace

std::string testbed_data_usage(const std::string& name) {
  DataArgs defaults;
  return "usage: metareward " + name +
         " --out DIR [--seed S] [--sft-examples N] [--train-prompts N]\n"
         "         [--eval-prompts N] [--p-correct X] [--p-verbose X] [--judge-share X]\n"
         "         [--meta-share X] [--p-off-task X] [--judge-noise X] [--length-bias X]\n"
         "         [--meta-flip X] [--families LIST]\n"
         "  Writes the oracle testbed's bootstrap dataset into DIR: sft.jsonl (instruction, judge\n"
         "  and meta-judge examples for the seed model), train_prompts.jsonl (loop prompts, no\n"
         "  answers), eval_prompts.jsonl (held-out prompts with task and answer) and\n"
         "  manifest.json. The same options always give byte-identical files.\n" +
         cli::option_lines(data_options(defaults));
}

int testbed_data_command(const std::vector<std::string>& args,
                         std::ostream& out,
                         std::ostream& err,
                         const std::string& name) {
  DataArgs parsed;
  try {
    if (!cli::parse_options(args, data_options(parsed))) {
      out << testbed_data_usage(name);
      return 0;
    }
    if (parsed.out.empty()) throw UsageError("--out DIR is required");
    cli::check_shares(parsed.options);
  } catch (const UsageError& e) {
    err << "metareward " << name << ": " << e.what() << "\n" << testbed_data_usage(name);
    return 2;
  }
  const DatasetOptions& options = parsed.options;
  const Dataset dataset = build_dataset(options);
  write_dataset(dataset, options, parsed.out);
  out << name << ": wrote " << dataset.sft.size() << " SFT rows ("
      << dataset.sft_kind_counts.at("instruction") << " instruction, "
      << dataset.sft_kind_counts.at("judge") << " judge, "
      << dataset.sft_kind_counts.at("meta_judge") << " meta_judge), " << dataset.train.size()
      << " train prompts and " << dataset.eval.size() << " eval prompts to " << parsed.out
      << " (seed " << options.seed << ")\n";
  return 0;
}

void register_testbed_plugins(mr::sdk::Registrar& registrar) {
  registrar.add<mr::sdk::Evaluator>(
      "testbed", kLibraryVersion,
      "Oracle testbed evaluation: actor oracle score and win rate vs the seed, judge and "
      "meta-judge agreement with the oracle",
      testbed_evaluator_schema(),
      [](mr::sdk::HostContext& ctx) { return std::make_unique<TestbedEvaluator>(ctx); });
  registrar.add<mr::sdk::ModelBackend>(
      "testbed_oracle", kLibraryVersion,
      "Controlled judge and meta-judge from the testbed's oracle: set judge accuracy, length "
      "bias, meta-judge accuracy and position bias; reads the configured templates' prompts",
      oracle_backend_schema(),
      [](mr::sdk::HostContext& ctx) { return std::make_unique<OracleBackend>(ctx); });
  // `testbed` only groups its subcommands: the host picks one, lists them for `testbed --help`
  // and rejects a missing or unknown one.
  mr::sdk::CommandDescriptor testbed;
  testbed.name = "testbed";
  testbed.summary = "The oracle testbed: `testbed data`, `testbed bootstrap` (the seed model)";
  testbed.subcommands.push_back({"data",
                                 "Write the bootstrap dataset (SFT rows, train and eval prompts)",
                                 [](const std::vector<std::string>& args, mr::sdk::HostContext&) {
                                   return testbed_data_command(args, std::cout, std::cerr,
                                                               "testbed data");
                                 },
                                 {}});
  testbed.subcommands.push_back(
      {"bootstrap",
       "Make the seed model from scratch: data, init-model, sft",
       [](const std::vector<std::string>& args, mr::sdk::HostContext& ctx) {
         return bootstrap_command(args, ctx, std::cout, std::cerr);
       },
       {}});
  registrar.add_command(std::move(testbed));
  registrar.add_command({"testbed-data",
                         "Alias of `testbed data`: write the oracle testbed's dataset",
                         [](const std::vector<std::string>& args, mr::sdk::HostContext&) {
                           return testbed_data_command(args, std::cout, std::cerr, "testbed-data");
                         },
                         {}});
}

}  // namespace mr::plugins::testbed
