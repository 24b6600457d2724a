/// @file guarded_plugins.hpp
/// Plugin objects wrapped so that every call into them is guarded (plugin_call.hpp): the host
/// holds and hands out only these wrappers — to its own stages and to other plugins (the rubric
/// a meta-judge strategy or an evaluator calls, the models an evaluator drives) — so an exception
/// from any plugin, wherever it is called from, names that plugin, its library, the call, the
/// stage and the item.
#pragma once

#include <memory>
#include <string>

#include "metareward/core/plugin_call.hpp"
#include "metareward/core/plugin_registry.hpp"
#include "metareward/sdk/evaluator.hpp"
#include "metareward/sdk/judge_rubric.hpp"
#include "metareward/sdk/meta_judge.hpp"
#include "metareward/sdk/model_backend.hpp"
#include "metareward/sdk/optimizer.hpp"
#include "metareward/sdk/pair_selection.hpp"

namespace mr::core {

/// Where the host is, for the messages of guarded calls: the stage (set by the loop between
/// stages, on the main thread) and, per calling thread, the item being worked on.
class CallContext {
 public:
  /// "judge, iteration 2"; empty outside a stage.
  void set_stage(std::string stage) { stage_ = std::move(stage); }
  const std::string& stage() const { return stage_; }

  /// Names the item the guarded calls on this thread are about ("judgment 'p3/r1/j2'") until
  /// destroyed; scopes nest.
  class ItemScope {
   public:
    explicit ItemScope(std::string item);
    ~ItemScope();
    ItemScope(const ItemScope&) = delete;
    ItemScope& operator=(const ItemScope&) = delete;

   private:
    std::string previous_;
  };
  /// The innermost ItemScope's item on this thread, or "".
  static const std::string& current_item();

 private:
  std::string stage_;
};

/// `object` (a plugin object made from `plugin`) behind a guard; `context` names the stage and
/// item in error messages. The wrapper keeps `object` (and so its library) alive.
std::shared_ptr<sdk::ModelBackend> guard_plugin(std::shared_ptr<sdk::ModelBackend> object,
                                                const RegisteredPlugin& plugin,
                                                std::shared_ptr<const CallContext> context);
std::shared_ptr<sdk::JudgeRubric> guard_plugin(std::shared_ptr<sdk::JudgeRubric> object,
                                               const RegisteredPlugin& plugin,
                                               std::shared_ptr<const CallContext> context);
std::shared_ptr<sdk::MetaJudgeStrategy> guard_plugin(std::shared_ptr<sdk::MetaJudgeStrategy> object,
                                                     const RegisteredPlugin& plugin,
                                                     std::shared_ptr<const CallContext> context);
std::shared_ptr<sdk::PairSelectionPolicy> guard_plugin(
    std::shared_ptr<sdk::PairSelectionPolicy> object,
    const RegisteredPlugin& plugin,
    std::shared_ptr<const CallContext> context);
std::shared_ptr<sdk::Optimizer> guard_plugin(std::shared_ptr<sdk::Optimizer> object,
                                             const RegisteredPlugin& plugin,
                                             std::shared_ptr<const CallContext> context);
std::shared_ptr<sdk::Evaluator> guard_plugin(std::shared_ptr<sdk::Evaluator> object,
                                             const RegisteredPlugin& plugin,
                                             std::shared_ptr<const CallContext> context);

}  // namespace mr::core
