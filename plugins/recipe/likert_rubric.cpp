// The 1–10 holistic rating rubric.
#include "likert_rubric.hpp"

namespace mr::plugins::recipe {

const char* const kLikert10Template =
    R"(Rate the quality of an AI assistant's response to a user on a scale from 1 to 10.

Anchor points:
- 1-2: unhelpful, wrong, or unrelated to the question.
- 3-4: touches on the question but is largely incomplete or contains significant errors.
- 5-6: a partially useful answer with noticeable gaps, mistakes, or poor organization.
- 7-8: a correct and helpful answer that covers the question well, with minor shortcomings.
- 9-10: accurate, complete, clear, and precisely suited to what the user asked, with nothing superfluous.

Weigh helpfulness, correctness, depth, clarity, and whether the response stays on task. Do not reward length for its own sake.

User's question:
{instruction}

<response>
{response}
</response>

Give a brief justification of at most 100 words, then end with a final line in exactly this form: "Score: <rating from 1 to 10>")";

mr::sdk::Schema likert10_schema() {
  return template_rubric_schema(
      {kLikert10Template, 1.0, 10.0,
       "default: holistic 1-10 rating with anchor points and a final 'Score: <rating>'"});
}

}  // namespace mr::plugins::recipe
