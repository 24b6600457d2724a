// Guarding wrappers of the six plugin interfaces (guarded_plugins.hpp).
#include "metareward/core/run/guarded_plugins.hpp"

namespace mr::core {

namespace {

thread_local std::string current_item_text;

/// What every wrapper shares: the wrapped object and how to name a call of it.
template <class Interface>
class Guard {
 public:
  Guard(std::shared_ptr<Interface> object,
        const RegisteredPlugin& plugin,
        std::shared_ptr<const CallContext> context)
      : object_(std::move(object)), base_(plugin_call(plugin, "")), context_(std::move(context)) {}

 protected:
  /// Calls `f` with the wrapped object; a failure names `call`, the stage and the item.
  template <class F>
  decltype(auto) call(const char* name, F&& f) const {
    try {
      return std::forward<F>(f)(*object_);
    } catch (...) {
      PluginCall site = base_;
      site.call = name;
      if (context_) site.stage = context_->stage();
      site.item = CallContext::current_item();
      rethrow_from_plugin(site);
    }
  }

  std::shared_ptr<Interface> object_;
  PluginCall base_;
  std::shared_ptr<const CallContext> context_;
};

class GuardedModelBackend final : public sdk::ModelBackend, Guard<sdk::ModelBackend> {
 public:
  using Guard::Guard;
  sdk::ModelInfo info() const override {
    return call("info", [](sdk::ModelBackend& m) { return m.info(); });
  }
  std::vector<sdk::GenerationResult> generate(
      const std::vector<sdk::GenerationRequest>& requests) override {
    return call("generate", [&](sdk::ModelBackend& m) { return m.generate(requests); });
  }
  std::int64_t count_tokens(std::string_view text) const override {
    return call("count_tokens", [&](sdk::ModelBackend& m) { return m.count_tokens(text); });
  }
  std::vector<sdk::ScoreResult> score(const std::vector<sdk::ScoreRequest>& requests) override {
    return call("score", [&](sdk::ModelBackend& m) { return m.score(requests); });
  }
  sdk::TrainableModel* trainable() override {
    return call("trainable", [](sdk::ModelBackend& m) { return m.trainable(); });
  }
  void reload(const std::filesystem::path& checkpoint_dir) override {
    call("reload", [&](sdk::ModelBackend& m) { m.reload(checkpoint_dir); });
  }
  std::vector<std::int64_t> tokenize(std::string_view text) const override {
    return call("tokenize", [&](sdk::ModelBackend& m) { return m.tokenize(text); });
  }
  bool supports_prompt_text() const override {
    return call("supports_prompt_text",
                [](sdk::ModelBackend& m) { return m.supports_prompt_text(); });
  }
  bool generates_remotely() const override {
    return call("generates_remotely", [](sdk::ModelBackend& m) { return m.generates_remotely(); });
  }
  void suspend() override {
    call("suspend", [](sdk::ModelBackend& m) { m.suspend(); });
  }
};

class GuardedJudgeRubric final : public sdk::JudgeRubric, Guard<sdk::JudgeRubric> {
 public:
  using Guard::Guard;
  sdk::Conversation build_prompt(const sdk::Conversation& prompt,
                                 std::string_view response) const override {
    return call("build_prompt",
                [&](sdk::JudgeRubric& r) { return r.build_prompt(prompt, response); });
  }
  sdk::ParsedScore parse(std::string_view judgment) const override {
    return call("parse", [&](sdk::JudgeRubric& r) { return r.parse(judgment); });
  }
  sdk::ScoreRange score_range() const override {
    return call("score_range", [](sdk::JudgeRubric& r) { return r.score_range(); });
  }
};

class GuardedMetaJudge final : public sdk::MetaJudgeStrategy, Guard<sdk::MetaJudgeStrategy> {
 public:
  using Guard::Guard;
  std::vector<sdk::BattleRequest> plan(const std::vector<sdk::PromptGroup>& groups,
                                       const sdk::JudgeRubric& rubric,
                                       const sdk::IterationInfo& info) override {
    return call("plan", [&](sdk::MetaJudgeStrategy& m) { return m.plan(groups, rubric, info); });
  }
  sdk::MetaJudgeResult decide(const std::vector<sdk::PromptGroup>& groups,
                              const sdk::JudgeRubric& rubric,
                              std::vector<sdk::Battle> battles,
                              const sdk::IterationInfo& info,
                              std::int64_t actor_pairs) override {
    return call("decide", [&](sdk::MetaJudgeStrategy& m) {
      return m.decide(groups, rubric, std::move(battles), info, actor_pairs);
    });
  }
};

class GuardedPairPolicy final : public sdk::PairSelectionPolicy, Guard<sdk::PairSelectionPolicy> {
 public:
  using Guard::Guard;
  sdk::PairSelectionResult select(const std::vector<sdk::PromptGroup>& groups,
                                  const sdk::IterationInfo& info) override {
    return call("select", [&](sdk::PairSelectionPolicy& p) { return p.select(groups, info); });
  }
};

class GuardedOptimizer final : public sdk::Optimizer, Guard<sdk::Optimizer> {
 public:
  using Guard::Guard;
  sdk::TrainingSummary train(sdk::TrainableModel& model,
                             const std::vector<sdk::PreferencePair>& pairs,
                             const sdk::TrainingJob& job) override {
    return call("train", [&](sdk::Optimizer& o) { return o.train(model, pairs, job); });
  }
};

class GuardedEvaluator final : public sdk::Evaluator, Guard<sdk::Evaluator> {
 public:
  using Guard::Guard;
  sdk::EvaluationResult evaluate(const sdk::EvaluationRequest& request) override {
    return call("evaluate", [&](sdk::Evaluator& e) { return e.evaluate(request); });
  }
};

}  // namespace

CallContext::ItemScope::ItemScope(std::string item) : previous_(std::move(current_item_text)) {
  current_item_text = std::move(item);
}

CallContext::ItemScope::~ItemScope() {
  current_item_text = std::move(previous_);
}

const std::string& CallContext::current_item() {
  return current_item_text;
}

std::shared_ptr<sdk::ModelBackend> guard_plugin(std::shared_ptr<sdk::ModelBackend> object,
                                                const RegisteredPlugin& plugin,
                                                std::shared_ptr<const CallContext> context) {
  return std::make_shared<GuardedModelBackend>(std::move(object), plugin, std::move(context));
}
std::shared_ptr<sdk::JudgeRubric> guard_plugin(std::shared_ptr<sdk::JudgeRubric> object,
                                               const RegisteredPlugin& plugin,
                                               std::shared_ptr<const CallContext> context) {
  return std::make_shared<GuardedJudgeRubric>(std::move(object), plugin, std::move(context));
}
std::shared_ptr<sdk::MetaJudgeStrategy> guard_plugin(std::shared_ptr<sdk::MetaJudgeStrategy> object,
                                                     const RegisteredPlugin& plugin,
                                                     std::shared_ptr<const CallContext> context) {
  return std::make_shared<GuardedMetaJudge>(std::move(object), plugin, std::move(context));
}
std::shared_ptr<sdk::PairSelectionPolicy> guard_plugin(
    std::shared_ptr<sdk::PairSelectionPolicy> object,
    const RegisteredPlugin& plugin,
    std::shared_ptr<const CallContext> context) {
  return std::make_shared<GuardedPairPolicy>(std::move(object), plugin, std::move(context));
}
std::shared_ptr<sdk::Optimizer> guard_plugin(std::shared_ptr<sdk::Optimizer> object,
                                             const RegisteredPlugin& plugin,
                                             std::shared_ptr<const CallContext> context) {
  return std::make_shared<GuardedOptimizer>(std::move(object), plugin, std::move(context));
}
std::shared_ptr<sdk::Evaluator> guard_plugin(std::shared_ptr<sdk::Evaluator> object,
                                             const RegisteredPlugin& plugin,
                                             std::shared_ptr<const CallContext> context) {
  return std::make_shared<GuardedEvaluator>(std::move(object), plugin, std::move(context));
}

}  // namespace mr::core
