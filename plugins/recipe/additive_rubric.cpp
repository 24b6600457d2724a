// The additive five-point judge rubric (method.md §3), default text in our own words.
#include "additive_rubric.hpp"

namespace mr::plugins::recipe {

const char* const kAdditive5Template =
    R"(Please grade how well an AI assistant answered a user. Read the user's question and the assistant's response below, then score the response with the additive rubric that follows. Start from 0 and add one point for each criterion the response meets; judge each criterion on its own.

- Add 1 point if the response is relevant to the question and offers at least some related information, even if it is incomplete or includes off-topic material.
- Add 1 point if the response covers a substantial part of what the user asked, even if it does not settle the question completely.
- Add 1 point if the response usefully answers the essential parts of the question, even if it is not polished or exhaustive.
- Add 1 point if the response is clearly written from an AI assistant's point of view, answers the question directly and comprehensively, and is well organized and helpful, even if it could be more concise or focused.
- Add 1 point if the response is impeccably tailored to the question, shows expert knowledge, and contains no extraneous information: an engaging, insightful, high-quality answer.

User's question:
{instruction}

<response>
{response}
</response>

After examining the question and the response:
- Explain your grade in no more than 100 words.
- Finish with a final line giving the total in exactly this form: "Score: <total points>")";

mr::sdk::Schema additive5_schema() {
  return template_rubric_schema(
      {kAdditive5Template, 0.0, 5.0,
       "default: additive five-point rubric, <=100-word justification, final 'Score: <total "
       "points>'"});
}

}  // namespace mr::plugins::recipe
