/// @file tiny_model.hpp
/// A tiny TrainableModel for the training-loop tests: characters as tokens, and a causal
/// "model" that feeds [token embedding, mean of the prefix's embeddings, position embedding]
/// through a tanh MLP. Double precision by default so finite differences are accurate. Test-only.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "metareward/sdk/trainable_model.hpp"
#include "metareward/sdk/types.hpp"

namespace mr::test {

class TinyCausalLm : public sdk::TrainableModel {
 public:
  // Token ids: 0 pad, 1 bos, 2..4 system/user/assistant headers, 5 end of turn, 6 space,
  // 7..32 'a'..'z', 33 anything else.
  static constexpr std::int64_t kVocab = 40;
  static constexpr std::int64_t kMaxPositions = 128;
  static constexpr std::int64_t kEot = 5;

  explicit TinyCausalLm(std::uint64_t seed,
                        std::int64_t dim = 8,
                        std::int64_t hidden = 16,
                        double dropout = 0.0,
                        torch::Dtype dtype = torch::kFloat64)
      : dim_(dim), dropout_(dropout) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0.0, 1.0);
    auto init = [&](std::vector<std::int64_t> shape, double scale) {
      std::int64_t n = 1;
      for (auto s : shape) n *= s;
      std::vector<double> v(static_cast<std::size_t>(n));
      for (auto& x : v) x = normal(rng) * scale;
      return torch::tensor(v, torch::kFloat64).reshape(shape).to(dtype).set_requires_grad(true);
    };
    params_ = {init({kVocab, dim}, 0.5),     init({kMaxPositions, dim}, 0.5),
               init({3 * dim, hidden}, 0.5), init({hidden}, 0.1),
               init({hidden, kVocab}, 0.5),  init({kVocab}, 0.1)};
  }

  /// A deep copy (same weights, independent tensors).
  TinyCausalLm clone() const {
    TinyCausalLm copy(*this);
    for (auto& p : copy.params_) p = p.detach().clone().set_requires_grad(true);
    copy.no_grad_forwards = 0;
    return copy;
  }

  torch::Tensor forward(const torch::Tensor& input_ids,
                        const torch::Tensor& attention_mask) override {
    if (!torch::GradMode::is_enabled()) ++no_grad_forwards;
    const auto& [tok, pos, w1, b1, w2, b2] =
        std::tie(params_[0], params_[1], params_[2], params_[3], params_[4], params_[5]);
    const std::int64_t b = input_ids.size(0), t = input_ids.size(1);
    if (t > kMaxPositions) throw std::invalid_argument("TinyCausalLm: sequence too long");
    const auto e = tok.index_select(0, input_ids.reshape({-1})).view({b, t, dim_});
    const auto m = attention_mask.to(e.scalar_type()).unsqueeze(-1);
    const auto prefix = (e * m).cumsum(1) / m.cumsum(1).clamp_min(1.0);
    const auto p = pos.slice(0, 0, t).unsqueeze(0).expand({b, t, dim_});
    auto h = torch::tanh(torch::cat({e, prefix, p}, -1).matmul(w1) + b1);
    if (training_ && dropout_ > 0) h = torch::dropout(h, dropout_, true);
    return h.matmul(w2) + b2;
  }

  std::vector<torch::Tensor> parameters() override { return params_; }

  sdk::TokenizedExample tokenize(const sdk::Conversation& prompt,
                                 const std::string& response,
                                 bool response_complete) const override {
    sdk::TokenizedExample ex;
    ex.prompt_ids.push_back(1);
    for (const auto& msg : prompt) {
      ex.prompt_ids.push_back(msg.role == "system" ? 2 : msg.role == "user" ? 3 : 4);
      for (char c : msg.content) ex.prompt_ids.push_back(char_id(c));
      ex.prompt_ids.push_back(kEot);
    }
    ex.prompt_ids.push_back(4);
    for (char c : response) ex.response_ids.push_back(char_id(c));
    if (response_complete) ex.response_ids.push_back(kEot);
    return ex;
  }

  void set_training(bool training) override { training_ = training; }
  bool training() const { return training_; }

  /// Writes the weights to `dir`/weights.pt via a temporary sibling and a rename.
  void save(const std::filesystem::path& dir) const override {
    namespace fs = std::filesystem;
    const fs::path tmp = dir.string() + ".tmp";
    fs::remove_all(tmp);
    fs::create_directories(tmp);
    std::vector<torch::Tensor> detached;
    for (const auto& p : params_) detached.push_back(p.detach());
    torch::save(detached, (tmp / "weights.pt").string());
    fs::remove_all(dir);
    fs::rename(tmp, dir);
  }

  /// Reads weights written by save().
  static std::vector<torch::Tensor> load_weights(const std::filesystem::path& dir) {
    std::vector<torch::Tensor> weights;
    torch::load(weights, (dir / "weights.pt").string());
    return weights;
  }

  /// Forward passes run with grad mode off (reference / evaluation passes).
  int no_grad_forwards = 0;

 private:
  static std::int64_t char_id(char c) {
    if (c == ' ') return 6;
    if (c >= 'a' && c <= 'z') return 7 + (c - 'a');
    return 33;
  }

  std::int64_t dim_;
  double dropout_;
  bool training_ = false;
  std::vector<torch::Tensor> params_;
};

/// True when both parameter lists have the same shapes and values within `tol`.
inline bool same_parameters(const std::vector<torch::Tensor>& a,
                            const std::vector<torch::Tensor>& b,
                            double tol) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].sizes() != b[i].sizes() ||
        !torch::allclose(a[i].detach(), b[i].detach(), /*rtol=*/0, /*atol=*/tol))
      return false;
  return true;
}

/// Largest absolute difference between two parameter lists of equal shapes.
inline double max_difference(const std::vector<torch::Tensor>& a,
                             const std::vector<torch::Tensor>& b) {
  double d = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    d = std::max(d, (a[i].detach() - b[i].detach()).abs().max().item<double>());
  return d;
}

/// Preference pairs over tiny prompts (letters and spaces only).
inline std::vector<sdk::PreferencePair> tiny_pairs(std::size_t n) {
  static const char* rows[][3] = {
      {"name a pet", "cat", "rock"},       {"sky color", "blue", "green grass"},
      {"say hi", "hi", "bye now"},         {"one plus one", "two", "three"},
      {"opposite of up", "down", "left"},  {"a fruit", "apple", "brick"},
      {"night light", "moon", "sun"},      {"cold water", "ice", "steam cloud"},
      {"bird sound", "tweet", "moo"},      {"first letter", "a", "zed"},
      {"big cat", "lion", "mouse"},        {"wet weather", "rain", "sand"},
      {"fast animal", "cheetah", "snail"}, {"sweet food", "cake", "salt"},
      {"dog says", "woof", "meow"},        {"red fruit", "cherry", "lime"},
  };
  std::vector<sdk::PreferencePair> pairs;
  for (std::size_t i = 0; i < n; ++i) {
    const auto& r = rows[i % 16];
    sdk::PreferencePair p;
    p.id = "pair" + std::to_string(i);
    p.prompt = {{"user", std::string(r[0]) + (i >= 16 ? " again" : "")}};
    p.chosen = r[1];
    p.rejected = r[2];
    pairs.push_back(std::move(p));
  }
  return pairs;
}

}  // namespace mr::test
