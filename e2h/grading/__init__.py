"""Safe, fast answer grading for MATH-style answers.

Pipeline (like math-verify): extract -> normalise -> parse (own whitelist parser) -> compare
(exact rationals / high-precision numerics in-process, SymPy in killable worker processes).

    >>> from e2h.grading import grade, normalize_answer
    >>> grade("... so the answer is $\\boxed{\\dfrac12}$.", "0.5").correct
    True
    >>> normalize_answer("x = \\frac{1}{2}")
    '1/2'
"""

from __future__ import annotations

from e2h.grading.extract import completion_answer, extract_answer
from e2h.grading.normalize import normalize_answer

GRADER_VERSION = "e2h-grader-2.0"  # 2.0: whole answers, text answers, sums, numeric convention (issue #20)

__all__ = [
    "GRADER_VERSION", "Verdict", "answers_equivalent", "completion_answer", "extract_answer", "grade", "grade_many",
    "normalize_answer",
]


def __getattr__(name):  # the batch API pulls in multiprocessing machinery only when used
    if name in ("grade", "grade_many", "answers_equivalent", "Verdict"):
        from e2h.grading import batch  # lazy, see above

        return getattr(batch, name)
    raise AttributeError(name)
