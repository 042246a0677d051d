"""The one text format every stage shares (reference §1.5).

A solution is a list of steps joined by a blank line; its last step is the answer step
``"# Answer\\n\\n{answer}"``, followed by EOS when a model writes it::

    # Question

    What is 1+2?

    # Solution

    We add 1 and 2.

    That gives 3.

    # Answer

    3

Data preparation, PRM training, sampling stop strings, scoring and the service all call these
functions; the step-tag bugs peers suffer come from having two definitions of this format.
"""

from __future__ import annotations

import re

PROMPT_TEMPLATE = "# Question\n\n{problem}\n\n# Solution\n\n"
STEP_SEPARATOR = "\n\n"
ANSWER_HEADER = "# Answer"
ANSWER_PREFIX = ANSWER_HEADER + STEP_SEPARATOR  # starts the answer step
ANSWER_MARKER = STEP_SEPARATOR + ANSWER_PREFIX  # what precedes the answer in a full solution
NO_ANSWER = None

# PRM800K writes the answer line with zero, one or two newlines before and after "# Answer".
_ANSWER_VARIANTS = re.compile(r"\n{0,2}# Answer\n{0,2}")


def format_prompt(problem: str) -> str:
    """The prompt a policy continues and a PRM reads before the solution."""
    return PROMPT_TEMPLATE.format(problem=problem.strip())


def answer_step(answer: str) -> str:
    return ANSWER_PREFIX + answer.strip()


def is_answer_step(step: str) -> bool:
    return step.lstrip().startswith(ANSWER_HEADER)


def ends_with_answer(steps: list[str]) -> bool:
    """True when a split solution's last step is its answer step (a length-truncated sample has none)."""
    return bool(steps) and is_answer_step(steps[-1])


def format_solution(steps: list[str], answer: str | None = None) -> str:
    """Join reasoning steps (and, if given, the final answer) into solution text.

    ``steps`` may already end with an answer step; then ``answer`` must be None.
    """
    parts = [s.strip() for s in steps]
    if answer is not None:
        if parts and is_answer_step(parts[-1]):
            raise ValueError("steps already end with an answer step")
        parts.append(answer_step(answer))
    if any(STEP_SEPARATOR in p for p in parts if not is_answer_step(p)):
        raise ValueError("a reasoning step contains the step separator '\\n\\n'")
    return STEP_SEPARATOR.join(parts)


def normalize_answer_marker(text: str) -> str:
    """Rewrite every '# Answer' spelling to exactly '\\n\\n# Answer\\n\\n' (as the reference does)."""
    return _ANSWER_VARIANTS.sub(ANSWER_MARKER, text)


def split_solution(text: str) -> list[str]:
    """Split solution text into steps; the answer step, if present, stays one step.

    Inverse of :func:`format_solution` for well-formed text. Empty steps (runs of blank lines) are dropped.
    """
    head, sep, answer = text.partition(ANSWER_MARKER)
    if not sep and text.lstrip().startswith(ANSWER_PREFIX):
        head, answer, sep = "", text.lstrip()[len(ANSWER_PREFIX):], ANSWER_MARKER
    steps = [s.strip() for s in head.split(STEP_SEPARATOR) if s.strip()]
    if sep:
        steps.append(answer_step(answer.split(STEP_SEPARATOR)[0]))
    return steps


def extract_final_answer(text: str, eos_token: str | None = None) -> str | None:
    """The text after the FIRST answer marker (up to EOS or the next blank line), or None if there is none: the
    solution ends at its answer line (split_solution stops there, so the PRM scores this same answer), and
    whatever a model writes after it is not part of the solution."""
    if eos_token:
        text = text.split(eos_token)[0]
    if ANSWER_MARKER in text:
        answer = text.split(ANSWER_MARKER, 1)[1]
    elif text.lstrip().startswith(ANSWER_PREFIX):
        answer = text.lstrip()[len(ANSWER_PREFIX):]
    else:
        return None
    answer = answer.split(STEP_SEPARATOR)[0].strip()
    return answer or None
