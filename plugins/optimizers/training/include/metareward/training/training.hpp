/// @file training.hpp
/// mr_training, the support library of optimizer plugins (metareward::training; not part of the
/// plugin ABI: a plugin links its own copy of the version it was built with). The shared training
/// loop: tokenization with length
/// limits, right-padded micro-batches, summed response-token log-probs, AdamW with gradient
/// accumulation, clipping and a warm-up + decay schedule, per-step metrics, resumable state and
/// the final save. A preference-loss plugin only writes its loss (a PreferenceLoss) and calls
/// train_preference(); supervised fine-tuning is train_sft().
///
/// Everything here runs on the caller's thread and is not thread-safe (neither is the model).
/// Tensors live on the device of the model's first parameter; the loop never copies the model,
/// so a DPO run holds one model plus the cached reference log-probs (two doubles per pair).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "metareward/sdk/collective.hpp"
#include "metareward/sdk/config.hpp"
#include "metareward/sdk/host.hpp"
#include "metareward/sdk/optimizer.hpp"
#include "metareward/sdk/trainable_model.hpp"
#include "metareward/sdk/types.hpp"

namespace mr::training {

/// The SDK's types (Config, TrainableModel, PreferencePair, ...) are this library's vocabulary;
/// they are named unqualified here as in the SDK itself (as torch:: does with at::).
using namespace mr::sdk;

// ---------------------------------------------------------------------------------------------
// Options

/// Learning-rate decay after the linear warm-up.
enum class LrSchedule {
  Cosine,    ///< Half cosine from the peak to min_learning_rate.
  Linear,    ///< Straight line from the peak to min_learning_rate.
  Constant,  ///< Stays at the peak.
};

/// "cosine", "linear" or "constant".
const char* lr_schedule_name(LrSchedule schedule);
/// Inverse of lr_schedule_name(); throws ConfigError naming the allowed values.
LrSchedule parse_lr_schedule(const std::string& name);

/// Hyper-parameters of one training run. Defaults are the paper's DPO settings (method.md §6).
struct TrainingOptions {
  double learning_rate = 5e-6;  ///< Peak learning rate of AdamW.
  LrSchedule lr_schedule = LrSchedule::Cosine;
  double min_learning_rate = 0.0;  ///< Where cosine/linear decay ends (<= learning_rate).
  double warmup_ratio = 0.1;       ///< Warm-up steps = ceil(ratio * total steps) ...
  std::int64_t warmup_steps = -1;  ///< ... unless this is >= 0 (not a config key).
  int epochs = 1;                  ///< Passes over the data.
  int batch_size = 32;             ///< Examples (pairs) per optimizer step (global batch).
  /// Examples per forward/backward pass; gradients of the micro-batches of one step are
  /// accumulated. Capped at batch_size. Does not change the result (up to rounding).
  int micro_batch_size = 4;
  double weight_decay = 0.0;  ///< AdamW decoupled weight decay (applied to every parameter).
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_eps = 1e-8;
  double max_grad_norm = 1.0;  ///< Global L2 norm clip; 0 = no clipping (the norm is still logged).
  /// Prompt + response tokens per sequence. Longer responses are cut from the right (counted);
  /// an example whose prompt alone leaves no room for a response token is dropped (counted).
  std::int64_t max_length = 2048;
  /// > 0 trains with the model's dropout on (TrainableModel::set_training(true)); the rate
  /// itself is the model's own, the SDK cannot set it. 0 trains in eval mode (deterministic).
  double dropout = 0.0;
  /// Seeds the per-epoch shuffle; same seed, same run. With dropout > 0 libtorch's global RNG is
  /// also reseeded from it before every step, so that a resumed run draws the same masks.
  std::uint64_t seed = 0;
  /// Writes the resumable state every N optimizer steps; 0 = only at the end of each epoch.
  std::int64_t save_every_steps = 0;
  /// Sorts the examples of each optimizer step by length before splitting them into
  /// micro-batches, so that similar lengths share a batch and padding shrinks.
  bool length_balanced = false;
  /// With bf16 or fp16 parameters, keep fp32 master weights and fp32 AdamW moments: the update is
  /// computed in fp32 and the rounded result written back (an lr of 5e-6 otherwise rounds away
  /// for almost every bf16 weight). fp16 adds dynamic loss scaling: a step whose gradient
  /// overflows is skipped (metric "skipped") and the scale halved. No effect on fp32/fp64 models.
  bool master_weights = true;
  /// Append the end-of-turn token after a response that was cut at max_new_tokens too (trains it
  /// as if it had ended). Off: such a response is trained as the unfinished text it is.
  bool close_truncated = false;
  /// Train a LoRA adapter (TrainableModel::add_lora) instead of every weight. The reference
  /// log-probs come from the base (adapter disabled); at the end the adapter is written to
  /// TrainingJob::adapter_dir (when set), merged into the weights, and the merged model saved.
  bool lora = false;
  int lora_r = 16;             ///< LoRA rank.
  double lora_alpha = 32.0;    ///< LoRA alpha (scale alpha / r).
  double lora_dropout = 0.05;  ///< Dropout on the adapter input (trains in training mode).
  std::vector<std::string> lora_target_modules{"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                               "gate_proj", "up_proj", "down_proj"};
  /// Recompute each decoder layer in backward (TrainableModel::set_gradient_checkpointing).
  bool gradient_checkpointing = false;
  /// Compute a pair's prompt once for both responses (one packed row per pair, when the model
  /// supports_shared_prefix()); off, chosen and rejected are separate rows.
  bool share_prompt = true;
  /// Intra-op threads for libtorch (torch::set_num_threads); 0 leaves the current setting.
  int threads = 0;
};

/// The config keys every training run accepts, in documentation order, with `defaults` as
/// their default values: learning_rate, lr_schedule, warmup_ratio, epochs, batch_size,
/// micro_batch_size, weight_decay, adam_beta1, adam_beta2, adam_eps, max_grad_norm, max_length,
/// dropout, save_every_steps, master_weights, close_truncated, lora, lora_r, lora_alpha,
/// lora_dropout, lora_target_modules, gradient_checkpointing, length_balanced, share_prompt (and
/// min_learning_rate after lr_schedule). learning_rate and
/// epochs may be per-iteration arrays. A loss plugin's schema is its own keys (e.g. `beta`)
/// followed by these.
Schema training_schema(const TrainingOptions& defaults = {});

/// Reads the training_schema() keys from a validated `config` (`iteration` selects
/// per-iteration values, 1-based; 0 for a config with scalars only). Keys the config lacks keep
/// their TrainingOptions defaults. seed and threads are left at their defaults: callers set them
/// from TrainingJob::info.seed and HostContext::threads().
TrainingOptions options_from_config(const Config& config, int iteration = 0);

/// Throws ConfigError when `options` is out of range (for options built in code; config values
/// are checked by the schema).
void validate(const TrainingOptions& options);

// ---------------------------------------------------------------------------------------------
// Schedule

/// Optimizer steps of one epoch over `examples` examples: ceil(examples / batch_size) (the last
/// batch of an epoch may be smaller).
std::int64_t steps_per_epoch(std::int64_t examples, const TrainingOptions& options);

/// Warm-up steps of a run of `total_steps` steps (warmup_steps, or ceil(warmup_ratio * total)).
std::int64_t warmup_steps(const TrainingOptions& options, std::int64_t total_steps);

/// Learning rate of optimizer step `step` (0-based) of `total_steps`. Warm-up: peak * (s+1)/W
/// for s < W, so the first step already moves and step W-1 reaches the peak. Then with
/// p = (s - W) / (total - W) and floor = min_learning_rate: cosine
/// floor + (peak - floor)(1 + cos(pi p)) / 2, linear floor + (peak - floor)(1 - p), constant peak.
double learning_rate_at(const TrainingOptions& options,
                        std::int64_t step,
                        std::int64_t total_steps);

// ---------------------------------------------------------------------------------------------
// Sequences and log-probs

/// What fit_to_length() did to an example.
enum class Fit { Kept, Truncated, Dropped };

/// Makes `example` fit in `max_length` tokens by cutting response tokens from the right. Returns
/// Dropped (example unchanged) when the response is empty or the prompt leaves no room for a
/// single response token.
Fit fit_to_length(TokenizedExample& example, std::int64_t max_length);

/// A right-padded batch of prompt+response sequences and the positions whose next token is a
/// response token (the only positions that carry loss).
struct SequenceBatch {
  torch::Tensor input_ids;       ///< [B, T] int64, padded with 0.
  torch::Tensor attention_mask;  ///< [B, T] int64, 1 = real token.
  /// [N] int64: flat index b*T + t of every position t whose next token t+1 is a response token.
  torch::Tensor target_rows;
  torch::Tensor target_ids;       ///< [N] int64: that next token.
  torch::Tensor target_sequence;  ///< [N] int64: b of each target.
  /// Scored response tokens per sequence (equals the response length when the prompt is not
  /// empty; the first token of a prompt-less sequence has no position that predicts it).
  std::vector<std::int64_t> response_tokens;
  /// Non-padding tokens of the sequences (a packed row counts its prompt once per response, so
  /// throughput figures do not depend on packing).
  std::int64_t real_tokens = 0;
  /// Set by collate_groups() when it packed each group into one row (a shared prompt, then each
  /// sequence's response): TrainableModel::branched_target_logprobs()'s branch ids [B, T]
  /// (0 prompt, s + 1 the response of sequence s, -1 padding) and RoPE positions [B, T].
  /// Undefined for plain rows.
  torch::Tensor branch_ids;
  torch::Tensor position_ids;  ///< [B, T] int64, with branch_ids.
};

/// Builds the batch of `sequences` (all non-null) on `device`.
SequenceBatch collate(const std::vector<const TokenizedExample*>& sequences,
                      const torch::Device& device);

/// The batch of `groups` (each the sequences of one item, e.g. a pair's chosen and rejected; all
/// groups of one size k), whose sequences are numbered s * groups.size() + i (all first
/// sequences, then all second ones...), as collate() of them in that order numbers them. With
/// `share_prompt` and groups of k >= 2 sequences that all share a non-empty prompt, each group
/// becomes one packed row, the prompt once and then every response (branch_ids set); otherwise
/// it is collate() of the sequences in that order.
SequenceBatch collate_groups(const std::vector<std::vector<const TokenizedExample*>>& groups,
                             const torch::Device& device,
                             bool share_prompt);

/// Summed log-probs of the response tokens of every sequence: [B], dtype of `logits`
/// ([B, T, V] from TrainableModel::forward on `batch`). Only response-predicting positions are
/// read, so the gradient w.r.t. prompt and padding logits is exactly zero.
torch::Tensor sequence_logps(const torch::Tensor& logits, const SequenceBatch& batch);

/// The same sums from TrainableModel::target_logprobs() (branched_target_logprobs() for a
/// packed batch), which lets the backend avoid materialising the batch's [B, T, V] logits: one
/// per sequence, float32. What the trainers use.
torch::Tensor sequence_logps(TrainableModel& model, const SequenceBatch& batch);

// ---------------------------------------------------------------------------------------------
// Preference losses

/// Summed response log-probs of the pairs of one micro-batch, all [B] and of one dtype/device.
struct PairLogps {
  torch::Tensor policy_chosen;       ///< log π(y_c|x), differentiable.
  torch::Tensor policy_rejected;     ///< log π(y_r|x), differentiable.
  torch::Tensor reference_chosen;    ///< log π_ref(y_c|x), constant (zeros without a reference).
  torch::Tensor reference_rejected;  ///< log π_ref(y_r|x), constant.
  torch::Tensor chosen_tokens;       ///< Scored response tokens of y_c (as floating point).
  torch::Tensor rejected_tokens;     ///< Scored response tokens of y_r.
};

/// A loss's value for each pair of a micro-batch.
struct PairLossResult {
  /// [B] per-pair losses. The step's loss is their mean over the step's pairs, which is what
  /// makes gradient accumulation exact: a loss must be a sum of per-pair terms.
  torch::Tensor losses;
  /// Extra per-pair metrics ([B] each, no grad needed), averaged over the step and reported under
  /// their key (e.g. "rewards/chosen"). The loop adds loss, logps/chosen, logps/rejected,
  /// grad_norm, lr, tokens_per_s and epoch itself.
  std::map<std::string, torch::Tensor> metrics;
};

/// A preference loss: all a loss plugin writes.
struct PreferenceLoss {
  /// Name and hyper-parameters, e.g. "dpo beta=0.1". Recorded in the resumable state: a state
  /// written with another id is refused.
  std::string id;
  /// Whether `compute` reads the reference log-probs. When false no reference pass is run.
  bool needs_reference = true;
  std::function<PairLossResult(const PairLogps&)> compute;
};

/// DPO: −log σ(β·[(log π(y_c) − log π_ref(y_c)) − (log π(y_r) − log π_ref(y_r))]). Metrics:
/// rewards/chosen = β(log π − log π_ref)(y_c), rewards/rejected, margin = their difference,
/// accuracy = [margin > 0].
PreferenceLoss dpo_loss(double beta);

/// RPO (Pang et al. 2024, "Iterative Reasoning Preference Optimization"): the DPO loss plus
/// α · (−log π(y_c|x) / |y_c|), the chosen response's NLL normalised by its token count. Metrics:
/// DPO's plus "nll".
PreferenceLoss rpo_loss(double beta, double alpha);

// ---------------------------------------------------------------------------------------------
// Preference training

/// One pair ready for training: tokenized, fitted to max_length, with its reference log-probs.
struct PreparedPair {
  std::size_t source_index = 0;  ///< Index of the pair in the caller's vector.
  TokenizedExample chosen;
  TokenizedExample rejected;
  double reference_chosen = 0.0;    ///< log π_ref(y_c|x), set by compute_reference_logps().
  double reference_rejected = 0.0;  ///< log π_ref(y_r|x).
};

/// The pairs of a run after tokenization, and what happened to the others.
struct PreparedPairs {
  std::vector<PreparedPair> pairs;
  std::int64_t truncated = 0;  ///< Pairs with a response cut to max_length.
  /// Responses that were cut at generation (PreferencePair::*_complete false), tokenized
  /// without an end-of-turn token unless close_truncated.
  std::int64_t unfinished = 0;
  DropCounts dropped;            ///< "prompt_too_long", "empty_response" -> count.
  bool reference_ready = false;  ///< True once reference_* hold the reference log-probs.
};

/// Tokenizes every pair with model.tokenize() (the generation chat template) and fits it to
/// options.max_length.
PreparedPairs prepare_pairs(const TrainableModel& model,
                            const std::vector<PreferencePair>& pairs,
                            const TrainingOptions& options);

/// Summed response log-probs (chosen, rejected) of every pair under `model` as it is now, with no
/// grad and dropout off, in batches of `micro_batch_size` pairs; with `share_prompt` (and a
/// model that supports_shared_prefix()) each pair is one packed row. Leaves the model in eval
/// mode.
std::vector<std::pair<double, double>> pair_logps(TrainableModel& model,
                                                  const std::vector<PreparedPair>& pairs,
                                                  int micro_batch_size,
                                                  bool share_prompt = true);

/// Fills reference_chosen/reference_rejected with pair_logps() of `model` (the reference is the
/// model before training) and sets reference_ready. With `ranks` (world size > 1) every rank
/// computes its share of the batches and all get every value.
void compute_reference_logps(TrainableModel& model,
                             PreparedPairs& prepared,
                             const TrainingOptions& options,
                             Collective* ranks = nullptr);

/// Trains `model` in place on prepared pairs with `loss`, then saves it to job.output_dir (when
/// not empty). Computes the reference log-probs first (unless prepared.reference_ready or the
/// run resumes). Resumes from job.state_dir when it holds the state of this same run (same
/// loss id, data and options) and writes the state there every save_every_steps steps and at
/// the end of every epoch (atomically). job.on_step gets every step's metrics; after a resume
/// the steps after the last saved state are reported again. `host` (optional) provides the
/// logger and the progress display. Throws DataError for no pairs or an unusable state.
TrainingSummary train_prepared_pairs(TrainableModel& model,
                                     PreparedPairs prepared,
                                     const PreferenceLoss& loss,
                                     const TrainingOptions& options,
                                     const TrainingJob& job,
                                     HostContext* host = nullptr);

/// prepare_pairs() then train_prepared_pairs(): what Optimizer::train of a loss plugin calls.
TrainingSummary train_preference(TrainableModel& model,
                                 const std::vector<PreferencePair>& pairs,
                                 const PreferenceLoss& loss,
                                 const TrainingOptions& options,
                                 const TrainingJob& job,
                                 HostContext* host = nullptr);

// ---------------------------------------------------------------------------------------------
// Supervised fine-tuning

/// One SFT example: the conversation up to the assistant turn and the target response.
struct SftExample {
  std::string id;
  Conversation prompt;
  std::string response;
};

/// Defaults of SFT runs: as TrainingOptions but learning_rate 1e-5, epochs 3, batch_size 16.
TrainingOptions sft_defaults();

/// training_schema(sft_defaults()): the keys of the `[sft]` config table.
Schema sft_schema();

/// Supervised fine-tuning: minimises the mean negative log-likelihood of the response tokens of
/// each optimizer step (prompt tokens carry no loss), then saves to job.output_dir. Same loop,
/// resume rules and metrics (loss, grad_norm, lr, tokens_per_s, epoch) as train_preference().
TrainingSummary train_sft(TrainableModel& model,
                          const std::vector<SftExample>& examples,
                          const TrainingOptions& options,
                          const TrainingJob& job,
                          HostContext* host = nullptr);

// ---------------------------------------------------------------------------------------------
// Resumable state

/// Format version of the resumable state file; a file with another version is refused.
inline constexpr std::int64_t kTrainerStateVersion = 1;
/// Name of the state file inside TrainingJob::state_dir (a libtorch archive).
inline constexpr const char* kTrainerStateFile = "trainer_state.pt";

/// The header of a state file.
struct TrainerStateInfo {
  std::int64_t format_version = 0;
  std::string run;          ///< Loss id ("dpo beta=0.1") or "sft".
  std::string fingerprint;  ///< Hash of the run's token ids and options.
  std::int64_t step = 0;    ///< Optimizer steps completed.
  std::int64_t total_steps = 0;
};

/// Reads the header of `state_dir`/kTrainerStateFile (for status displays and tests). Throws
/// DataError when it is missing or not a metareward trainer state.
TrainerStateInfo read_trainer_state_info(const std::filesystem::path& state_dir);

}  // namespace mr::training
