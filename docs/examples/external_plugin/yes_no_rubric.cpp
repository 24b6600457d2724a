// An example judge rubric plugin: the judge answers a yes/no question about the response and
// ends with "Verdict: yes" or "Verdict: no", scored 1 or 0.
#include <cctype>
#include <memory>
#include <string>
#include <string_view>

#include <metareward/sdk/plugin.hpp>

namespace example {

/// The rubric object. Created once per run from the [judge_rubric] table; const and
/// thread-safe, as the JudgeRubric interface requires.
class YesNoRubric : public mr::sdk::JudgeRubric {
 public:
  explicit YesNoRubric(mr::sdk::HostContext& ctx)
      : question_(ctx.config().get_string("question")), strict_(ctx.config().get_bool("strict")) {
    // Semantic checks a schema cannot express belong in the constructor; Config::fail names the
    // file, line and key in the error.
    if (question_.find('?') == std::string::npos)
      ctx.config().fail("question", "must be a question (end it with '?')");
    ctx.logger().debug("asking: " + question_);
  }

  mr::sdk::Conversation build_prompt(const mr::sdk::Conversation& prompt,
                                     std::string_view response) const override {
    std::string text = "Here is a conversation and a response to its last message.\n\n";
    for (const auto& m : prompt) text += "<" + m.role + ">\n" + m.content + "\n";
    text += "<response>\n" + std::string(response) + "\n</response>\n\n" + question_ +
            "\nExplain briefly, then finish with a line \"Verdict: yes\" or \"Verdict: no\".";
    return {{"user", text}};
  }

  mr::sdk::ParsedScore parse(std::string_view judgment) const override {
    const auto pos = judgment.rfind("Verdict:");
    if (pos == std::string_view::npos) return {std::nullopt, "no 'Verdict:' line"};
    std::string word;
    for (char c : judgment.substr(pos + 8)) {
      if (std::isalpha(static_cast<unsigned char>(c)))
        word += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      else if (!word.empty())
        break;
    }
    const auto line_end = judgment.find('\n', pos);
    if (strict_ && line_end != std::string_view::npos &&
        judgment.find_first_not_of(" \t\r\n", line_end) != std::string_view::npos)
      return {std::nullopt, "text after the 'Verdict:' line"};
    if (word == "yes") return {1.0, ""};
    if (word == "no") return {0.0, ""};
    return {std::nullopt, "verdict '" + word + "' is neither yes nor no"};
  }

  mr::sdk::ScoreRange score_range() const override { return {0.0, 1.0}; }

 private:
  std::string question_;
  bool strict_;
};

/// The keys [judge_rubric] accepts with type = "yes_no". The host validates the user's TOML
/// against this before the factory runs, and `metareward plugins describe yes_no` prints it.
mr::sdk::Schema yes_no_schema() {
  using mr::sdk::ParamSpec;
  return {
      ParamSpec::string_("question", "Is the response helpful, correct and harmless?",
                         "The yes/no question the judge answers about each response."),
      ParamSpec::bool_("strict", false, "Reject judgments with text after the 'Verdict:' line."),
  };
}

/// Registers every plugin of this library; MR_PLUGIN below exports it.
void register_example_plugins(mr::sdk::Registrar& r) {
  r.add<mr::sdk::JudgeRubric>(
      "yes_no", "1.0.0", "Binary judge rubric: 'Verdict: yes' scores 1, 'Verdict: no' 0",
      yes_no_schema(),
      [](mr::sdk::HostContext& ctx) { return std::make_unique<YesNoRubric>(ctx); });
}

}  // namespace example

MR_PLUGIN("mr-example-yes-no", "1.0.0", example::register_example_plugins)
