// Config-driven judge rubric: one-pass template substitution + last-match score parsing.
#include "template_rubric.hpp"

#include "metareward/sdk/error.hpp"

namespace mr::plugins::recipe {

mr::sdk::Schema template_rubric_schema(const TemplateRubricDefaults& d) {
  using mr::sdk::ParamSpec;
  return {
      ParamSpec::string_("template", d.template_text,
                         "Judge prompt template (" + d.scale_help +
                             "). Placeholders: {instruction} (the user's conversation as text) "
                             "and {response} (required). Substituted in one pass, so a response "
                             "containing these markers cannot alter the prompt."),
      ParamSpec::string_("system", "",
                         "Optional system prompt sent before the judge prompt; empty = none."),
      ParamSpec::string_("instruction_turns", "all",
                         "What {instruction} shows: 'all' turns (a single user turn appears "
                         "bare, longer conversations as 'User: ...' blocks) or only the "
                         "'last_user' turn.")
          .one_of({"all", "last_user"}),
      ParamSpec::string_("score_regex", kDefaultScorePattern,
                         "PCRE2 regex (case-insensitive) with exactly one capture group "
                         "holding the score; the LAST match in the judgment decides. The "
                         "default reads 'Score: 4', '**Score:** 4.5', 'Score: 4/5', "
                         "'*Score*: 4 points'."),
      ParamSpec::float_("min_score", d.min_score,
                        "Lowest valid score (inclusive); lower parsed values are rejected."),
      ParamSpec::float_("max_score", d.max_score,
                        "Highest valid score (inclusive); higher parsed values are rejected."),
  };
}

namespace {
mr::sdk::ScoreRange read_range(const mr::sdk::Config& config) {
  mr::sdk::ScoreRange r{config.get_float("min_score"), config.get_float("max_score")};
  if (!(r.min < r.max))
    config.fail("max_score", "must be greater than min_score (" + std::to_string(r.min) +
                                 "), got " + std::to_string(r.max));
  return r;
}

std::string read_template(const mr::sdk::Config& config) {
  std::string t = config.get_string("template");
  if (!has_placeholder(t, "response"))
    config.fail("template", "must contain the placeholder {response}");
  return t;
}
}  // namespace

TemplateRubric::TemplateRubric(const mr::sdk::Config& config)
    : template_(read_template(config)),
      system_(config.get_string("system")),
      turns_(parse_instruction_turns(config.get_string("instruction_turns"))),
      parser_(Pattern::compile(config.get_string("score_regex"), config, "score_regex"),
              read_range(config)) {}

mr::sdk::Conversation TemplateRubric::build_prompt(const mr::sdk::Conversation& prompt,
                                                   std::string_view response) const {
  std::string instruction = render_instruction(prompt, turns_);
  mr::sdk::Conversation out;
  if (!system_.empty()) out.push_back({"system", system_});
  out.push_back(
      {"user", substitute(template_, {{"instruction", instruction}, {"response", response}})});
  return out;
}

mr::sdk::ParsedScore TemplateRubric::parse(std::string_view judgment) const {
  return parser_.parse(judgment);
}

}  // namespace mr::plugins::recipe
