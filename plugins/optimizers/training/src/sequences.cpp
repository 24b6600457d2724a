// Sequences (length fit, right-padded batches, summed response log-probs) and the preference
// losses.
#include "training_internal.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <optional>
#include <random>
#include <sstream>
#include <system_error>

#include "metareward/sdk/error.hpp"
namespace mr::training {

using namespace detail;

// ---------------------------------------------------------------------------------------------
// Sequences

Fit fit_to_length(TokenizedExample& example, std::int64_t max_length) {
  const auto p = static_cast<std::int64_t>(example.prompt_ids.size());
  const auto r = static_cast<std::int64_t>(example.response_ids.size());
  if (r == 0 || p >= max_length) return Fit::Dropped;
  if (p + r <= max_length) return Fit::Kept;
  example.response_ids.resize(static_cast<std::size_t>(max_length - p));
  return Fit::Truncated;
}

namespace {

// The batch's scored positions, their next tokens and their sequences, as tensors on `device`.
void set_targets(SequenceBatch& out,
                 const std::vector<std::int64_t>& rows,
                 const std::vector<std::int64_t>& targets,
                 const std::vector<std::int64_t>& seq_index,
                 const torch::Device& device) {
  auto to_tensor = [&device](const std::vector<std::int64_t>& v) {
    return v.empty() ? torch::zeros({0}, torch::kInt64).to(device)
                     : torch::tensor(v, torch::kInt64).to(device);
  };
  out.target_rows = to_tensor(rows);
  out.target_ids = to_tensor(targets);
  out.target_sequence = to_tensor(seq_index);
}

}  // namespace

SequenceBatch collate(const std::vector<const TokenizedExample*>& sequences,
                      const torch::Device& device) {
  const auto b = static_cast<std::int64_t>(sequences.size());
  std::int64_t t_max = 1;
  for (const auto* s : sequences) t_max = std::max(t_max, total_length(*s));
  auto ids = torch::zeros({b, t_max}, torch::kInt64);
  auto mask = torch::zeros({b, t_max}, torch::kInt64);
  auto* id_ptr = ids.data_ptr<std::int64_t>();
  auto* mask_ptr = mask.data_ptr<std::int64_t>();
  std::vector<std::int64_t> rows, targets, seq_index;
  SequenceBatch out;
  out.response_tokens.resize(sequences.size());
  for (std::int64_t i = 0; i < b; ++i) {
    const auto& ex = *sequences[static_cast<std::size_t>(i)];
    const auto p = static_cast<std::int64_t>(ex.prompt_ids.size());
    const std::int64_t len = total_length(ex);
    std::int64_t* row = id_ptr + i * t_max;
    std::copy(ex.prompt_ids.begin(), ex.prompt_ids.end(), row);
    std::copy(ex.response_ids.begin(), ex.response_ids.end(), row + p);
    std::fill(mask_ptr + i * t_max, mask_ptr + i * t_max + len, 1);
    // Position t predicts token t+1: score the positions whose next token is a response token.
    for (std::int64_t t = std::max<std::int64_t>(p, 1) - 1; t + 1 < len; ++t) {
      rows.push_back(i * t_max + t);
      targets.push_back(row[t + 1]);
      seq_index.push_back(i);
    }
    out.response_tokens[static_cast<std::size_t>(i)] = scored_tokens(ex);
    out.real_tokens += len;
  }
  out.input_ids = ids.to(device);
  out.attention_mask = mask.to(device);
  set_targets(out, rows, targets, seq_index, device);
  return out;
}

namespace {

// Whether the group's sequences (two or more) all have one non-empty prompt.
bool shares_prompt(const std::vector<const TokenizedExample*>& group) {
  if (group.size() < 2 || group.front()->prompt_ids.empty()) return false;
  for (const auto* s : group)
    if (s->prompt_ids != group.front()->prompt_ids) return false;
  return true;
}

}  // namespace

SequenceBatch collate_groups(const std::vector<std::vector<const TokenizedExample*>>& groups,
                             const torch::Device& device,
                             bool share_prompt) {
  const std::size_t m = groups.size();
  const std::size_t k = m == 0 ? 0 : groups.front().size();
  bool pack = share_prompt && m > 0;
  for (const auto& g : groups) pack = pack && g.size() == k && shares_prompt(g);
  if (!pack) {
    std::vector<const TokenizedExample*> seqs;
    for (std::size_t s = 0; s < k; ++s)
      for (const auto& g : groups) seqs.push_back(g.at(s));
    return collate(seqs, device);
  }
  const auto b = static_cast<std::int64_t>(m);
  std::int64_t t_max = 1;
  for (const auto& g : groups) {
    auto len = static_cast<std::int64_t>(g.front()->prompt_ids.size());
    for (const auto* s : g) len += static_cast<std::int64_t>(s->response_ids.size());
    t_max = std::max(t_max, len);
  }
  auto ids = torch::zeros({b, t_max}, torch::kInt64);
  auto mask = torch::zeros({b, t_max}, torch::kInt64);
  auto branch = torch::full({b, t_max}, -1, torch::kInt64);
  auto pos = torch::zeros({b, t_max}, torch::kInt64);
  auto* id_ptr = ids.data_ptr<std::int64_t>();
  auto* mask_ptr = mask.data_ptr<std::int64_t>();
  auto* branch_ptr = branch.data_ptr<std::int64_t>();
  auto* pos_ptr = pos.data_ptr<std::int64_t>();
  std::vector<std::int64_t> rows, targets, seq_index;
  SequenceBatch out;
  out.response_tokens.resize(m * k);
  for (std::int64_t i = 0; i < b; ++i) {
    const auto& group = groups[static_cast<std::size_t>(i)];
    const auto& prompt = group.front()->prompt_ids;
    const auto p = static_cast<std::int64_t>(prompt.size());
    const std::int64_t base = i * t_max;
    std::copy(prompt.begin(), prompt.end(), id_ptr + base);
    std::fill(branch_ptr + base, branch_ptr + base + p, 0);
    for (std::int64_t t = 0; t < p; ++t) pos_ptr[base + t] = t;
    std::int64_t offset = p;  // Where the next response starts in the row.
    for (std::size_t s = 0; s < k; ++s) {
      const auto& ex = *group[s];
      const auto r = static_cast<std::int64_t>(ex.response_ids.size());
      const auto logical = static_cast<std::int64_t>(s * m) + i;
      std::copy(ex.response_ids.begin(), ex.response_ids.end(), id_ptr + base + offset);
      std::fill(branch_ptr + base + offset, branch_ptr + base + offset + r,
                static_cast<std::int64_t>(s) + 1);
      for (std::int64_t j = 0; j < r; ++j) pos_ptr[base + offset + j] = p + j;
      // The prompt's last position predicts every response's first token; then each response
      // token predicts the next one of its own response.
      for (std::int64_t j = 0; j < r; ++j) {
        rows.push_back(base + (j == 0 ? p - 1 : offset + j - 1));
        targets.push_back(ex.response_ids[static_cast<std::size_t>(j)]);
        seq_index.push_back(logical);
      }
      out.response_tokens[static_cast<std::size_t>(logical)] = scored_tokens(ex);
      out.real_tokens += total_length(ex);
      offset += r;
    }
    std::fill(mask_ptr + base, mask_ptr + base + offset, 1);
  }
  out.input_ids = ids.to(device);
  out.attention_mask = mask.to(device);
  out.branch_ids = branch.to(device);
  out.position_ids = pos.to(device);
  set_targets(out, rows, targets, seq_index, device);
  return out;
}

torch::Tensor sequence_logps(const torch::Tensor& logits, const SequenceBatch& batch) {
  MR_CHECK_AS(BackendError, !batch.branch_ids.defined(),
              "sequence_logps(logits, batch): a packed batch (collate_groups with shared "
              "prompts) needs sequence_logps(model, batch)");
  MR_CHECK_AS(BackendError,
              logits.dim() == 3 && logits.size(0) == batch.input_ids.size(0) &&
                  logits.size(1) == batch.input_ids.size(1),
              "model forward returned logits of shape ", shape_text(logits.sizes()), ", expected [",
              batch.input_ids.size(0), ", ", batch.input_ids.size(1), ", vocab]");
  const std::int64_t b = logits.size(0);
  const std::int64_t v = logits.size(2);
  // Gather the scored rows first: prompt positions (often most of a judge sequence) never reach
  // the softmax, which saves memory and leaves their gradient exactly zero.
  torch::Tensor rows = logits.reshape({-1, v}).index_select(0, batch.target_rows);
  // Half-precision logits are summed in fp32: a bf16 sum of hundreds of token log-probs keeps
  // ~3 significant digits, less than the DPO margins it feeds.
  if (rows.scalar_type() == torch::kBFloat16 || rows.scalar_type() == torch::kHalf)
    rows = rows.to(torch::kFloat32);
  const torch::Tensor token_logp =
      rows.gather(1, batch.target_ids.unsqueeze(1)).squeeze(1) - rows.logsumexp(1);
  return torch::zeros({b}, token_logp.options()).index_add(0, batch.target_sequence, token_logp);
}

torch::Tensor sequence_logps(TrainableModel& model, const SequenceBatch& batch) {
  const auto b = static_cast<std::int64_t>(batch.response_tokens.size());
  const std::int64_t n = batch.target_rows.size(0);
  if (n == 0)
    return torch::zeros({b}, torch::dtype(torch::kFloat32).device(batch.input_ids.device()));
  const torch::Tensor token_logp =
      batch.branch_ids.defined()
          ? model.branched_target_logprobs(batch.input_ids, batch.branch_ids, batch.position_ids,
                                           batch.target_rows, batch.target_ids)
          : model.target_logprobs(batch.input_ids, batch.attention_mask, batch.target_rows,
                                  batch.target_ids);
  MR_CHECK_AS(BackendError, token_logp.dim() == 1 && token_logp.size(0) == n,
              "model target_logprobs returned shape ", shape_text(token_logp.sizes()), " for ", n,
              " targets, expected [", n, "]");
  return torch::zeros({b}, token_logp.options()).index_add(0, batch.target_sequence, token_logp);
}

// ---------------------------------------------------------------------------------------------
// Losses

PreferenceLoss dpo_loss(double beta) {
  MR_CHECK_AS(ConfigError, beta > 0 && std::isfinite(beta), "DPO beta must be > 0, got ",
              num(beta));
  PreferenceLoss loss;
  loss.id = "dpo beta=" + num(beta);
  loss.compute = [beta](const PairLogps& l) {
    const torch::Tensor chosen = beta * (l.policy_chosen - l.reference_chosen);
    const torch::Tensor rejected = beta * (l.policy_rejected - l.reference_rejected);
    PairLossResult r;
    r.losses = -torch::log_sigmoid(chosen - rejected);
    const torch::Tensor c = chosen.detach(), rj = rejected.detach();
    r.metrics["rewards/chosen"] = c;
    r.metrics["rewards/rejected"] = rj;
    r.metrics["margin"] = c - rj;
    r.metrics["accuracy"] = (c > rj).to(c.scalar_type());
    return r;
  };
  return loss;
}

PreferenceLoss rpo_loss(double beta, double alpha) {
  MR_CHECK_AS(ConfigError, alpha >= 0 && std::isfinite(alpha), "RPO alpha must be >= 0, got ",
              num(alpha));
  PreferenceLoss dpo = dpo_loss(beta);
  PreferenceLoss loss;
  loss.id = "rpo beta=" + num(beta) + " alpha=" + num(alpha);
  loss.compute = [dpo = std::move(dpo.compute), alpha](const PairLogps& l) {
    PairLossResult r = dpo(l);
    const torch::Tensor nll = -l.policy_chosen / l.chosen_tokens.clamp_min(1);
    r.losses = r.losses + alpha * nll;
    r.metrics["nll"] = nll.detach();
    return r;
  };
  return loss;
}

}  // namespace mr::training
