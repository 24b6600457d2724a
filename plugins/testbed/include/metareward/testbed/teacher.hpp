/// @file teacher.hpp
/// The deliberately imperfect teacher whose answers make the SFT instruction data: right only
/// part of the time, plausibly wrong otherwise, and sometimes wrapped in chatty filler. A seed
/// model trained on it is a mediocre actor with a taste for verbosity, as an instruction-tuned
/// LLM is.
#pragma once

#include <string>
#include <string_view>

#include "metareward/testbed/rng.hpp"
#include "metareward/testbed/tasks.hpp"

namespace mr::plugins::testbed {

/// How the teacher answers.
struct TeacherOptions {
  double p_correct = 0.6;  ///< Probability that the answer is the exact answer.
  double p_verbose = 0.3;  ///< Probability that the answer is wrapped in filler text.
};

/// One teacher answer and how it was made.
struct TeacherAnswer {
  std::string text;      ///< What the assistant says.
  bool correct = false;  ///< The exact answer is in `text`.
  bool verbose = false;  ///< `text` wraps the answer in filler.
};

/// Draws one answer: correct with probability p_correct (else wrong_answer()), then verbose with
/// probability p_verbose (wrap_verbose()). A pure function of the task and the stream state.
TeacherAnswer teacher_answer(const TaskInstance& task, const TeacherOptions& options, Rng& rng);

/// A plausibly wrong bare answer, never equal to the task's answer and always of the right form:
/// sort — two neighbours swapped, an element dropped, the input order echoed or an element off
/// by one; reverse — two neighbouring letters swapped, a letter dropped, the word echoed or a
/// letter replaced; add / multiply / count — off by one, a carry slip (±10), a wrong operation
/// (a + b for a product), a dropped group (a·(b±1)), or the word length for count.
std::string wrong_answer(const TaskInstance& task, Rng& rng);

/// `answer` inside one of a fixed set of chatty wrappers, e.g. "Sure! The answer is 7. Let me
/// know if you need more help." The wrappers contain no digits, so the oracle still reads the
/// answer (a correct verbose answer scores 4).
std::string wrap_verbose(std::string_view answer, Rng& rng);

}  // namespace mr::plugins::testbed
