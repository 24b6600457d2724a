// The host's own config sections ([run], [prompts], [plugins], [roles], [generation.*]) and the
// host keys of the [seed_sft] plugin table: declared once here as data, with help text, so
// validation, `config show` and the docs share one source.
#include <utility>
#include <vector>

#include "metareward/core/config_loader.hpp"

namespace mr::core {

namespace {

using sdk::ParamSpec;
using sdk::Schema;

// Sampling settings shared by the three roles; `samples` is the only key that differs.
Schema generation_schema(const char* role, std::int64_t samples, std::int64_t max_new_tokens) {
  Schema s;
  if (samples > 0) {
    s.push_back(ParamSpec::int_("samples", samples,
                                std::string("Samples drawn per ") + role + " request (" +
                                    (std::string(role) == "actor" ? "responses per prompt"
                                                                  : "judgments per response") +
                                    ").")
                    .range(1, std::nullopt)
                    .per_iteration_allowed());
  }
  s.push_back(ParamSpec::float_("temperature", 0.8, "Sampling temperature; 0 means greedy.")
                  .range(0.0, std::nullopt)
                  .per_iteration_allowed());
  s.push_back(ParamSpec::float_("top_p", 0.95,
                                "Nucleus sampling: keep the smallest token set "
                                "whose probability mass reaches top_p.")
                  .range(0.0, 1.0, /*lo_exclusive=*/true, /*hi_exclusive=*/false)
                  .per_iteration_allowed());
  s.push_back(ParamSpec::int_("top_k", 0, "Keep only the k most likely tokens; 0 disables it.")
                  .range(0, std::nullopt));
  s.push_back(ParamSpec::int_("max_new_tokens", max_new_tokens,
                              "Generation stops after this many new tokens.")
                  .range(1, std::nullopt));
  s.push_back(ParamSpec::int_("batch_size", 64, "Requests generated together in one batch.")
                  .range(1, std::nullopt));
  return s;
}

std::vector<std::pair<std::string, Schema>> build_host_sections() {
  std::vector<std::pair<std::string, Schema>> sections;

  sections.emplace_back(
      "run",
      Schema{
          ParamSpec::int_("iterations", 4, "Number of Meta-Rewarding iterations (M_t -> M_t+1).")
              .range(1, std::nullopt),
          ParamSpec::int_("seed", 1,
                          "Base seed; every random choice of the run is derived from it.")
              .range(0, std::nullopt),
          ParamSpec::int_("threads", 0, "CPU threads for intra-op work; 0 = all cores.")
              .range(0, std::nullopt),
          ParamSpec::string_("output_dir", "runs/metareward",
                             "Run directory: artifacts, checkpoints and logs are written here."),
          ParamSpec::bool_("train_judge", true,
                           "Whether the iteration trains the judge with meta-judge pairs; the "
                           "paper uses [true, true, false, false].")
              .per_iteration_allowed(),
          ParamSpec::bool_("keep_merged_models", true,
                           "false: once an iteration is complete, delete the checkpoints "
                           "iter_S/model of earlier iterations that trained a LoRA adapter "
                           "(iter_S/adapter exists), since `metareward merge-lora --model "
                           "<previous model> --adapter iter_S/adapter` rebuilds them; the latest "
                           "iteration's model and the config's models are always kept."),
      });

  sections.emplace_back(
      "prompts",
      Schema{
          ParamSpec::string_list("files", {}, "JSONL prompt files forming the prompt pool."),
          ParamSpec::int_("per_iteration", 5000, "Prompts used in each iteration.")
              .range(1, std::nullopt),
          ParamSpec::int_("pool_size", 0, "Prompts kept from the files; 0 = use all.")
              .range(0, std::nullopt),
          ParamSpec::bool_("dedupe", true, "Drop prompts whose text appears earlier in the pool."),
          ParamSpec::bool_("disjoint", true,
                           "Give every iteration its own disjoint slice of the pool."),
          ParamSpec::bool_("shuffle", true, "Shuffle the pool (seeded) before slicing it."),
      });

  sections.emplace_back(
      "plugins",
      Schema{
          ParamSpec::string_list("libraries", {},
                                 "Plugin libraries to load; a library that fails to load is a "
                                 "fatal error."),
          ParamSpec::string_list("dirs", {},
                                 "Extra directories scanned for plugin libraries (bad files are "
                                 "logged and skipped)."),
      });

  sections.emplace_back(
      "roles",
      Schema{
          ParamSpec::string_("actor", "policy", "The [models.<name>] entry that writes responses."),
          ParamSpec::string_("judge", "policy", "The [models.<name>] entry that scores responses."),
          ParamSpec::string_("meta_judge", "policy",
                             "The [models.<name>] entry that compares judgments."),
          ParamSpec::string_("train", "",
                             "The [models.<name>] entry the trainer trains, when the roles "
                             "generate through a model that cannot train (an `openai` server): "
                             "a `torch` model of the same checkpoint, loaded only for the train "
                             "stage. \"\" = the actor's model."),
          ParamSpec::string_list("policy_models", {},
                                 "Other [models.<name>] entries that serve the trained policy "
                                 "and reload each new checkpoint with the actor's model (e.g. a "
                                 "second server pool for the judge); models not listed stay "
                                 "fixed."),
      });

  sections.emplace_back(
      "distributed",
      Schema{
          ParamSpec::string_("backend", "auto",
                             "Process group for training tensors when the run has several "
                             "ranks (torchrun or `metareward launch`): \"gloo\" (CPU), "
                             "\"nccl\" (CUDA builds) or \"auto\" (nccl when this build and "
                             "machine have CUDA, else gloo). The host's own messages always use "
                             "gloo.")
              .one_of({"auto", "gloo", "nccl"}),
          ParamSpec::float_("timeout_s", 1800.0,
                            "Seconds a rank waits in a collective (for a command, results, "
                            "gradients) before it stops with an error naming the ranks that "
                            "did not answer.")
              .range(1.0, std::nullopt),
          ParamSpec::int_("check_replicas_every_steps", 0,
                          "Compare a checksum of the trained weights across ranks every this "
                          "many optimizer steps (0: once, after the last step); a mismatch "
                          "stops the run.")
              .range(0, std::nullopt),
      });

  sections.emplace_back("generation.actor", generation_schema("actor", 7, 1024));
  sections.emplace_back("generation.judge", generation_schema("judge", 11, 512));
  sections.emplace_back("generation.meta_judge", generation_schema("meta_judge", 0, 512));
  return sections;
}

}  // namespace

const std::vector<std::pair<std::string, sdk::Schema>>& host_sections() {
  static const auto sections = build_host_sections();
  return sections;
}

const sdk::Schema& seed_stage_host_schema() {
  static const Schema schema{
      ParamSpec::required_("data", sdk::ParamType::String,
                           "JSONL file of judge-format conversations {\"messages\": [...]}, "
                           "relative to the config file; the loss is on the assistant turns."),
  };
  return schema;
}

}  // namespace mr::core
