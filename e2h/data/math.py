"""MATH problems: PRM800K's 12k training split (with levels) and MATH500, as :class:`~e2h.records.Problem`.

One row of the 12k split (``tests/data/math_train_sample.jsonl``; PRM800K's ``math_splits/train.jsonl`` has
these fields except ``level_raw`` and ``source_split``; the origin is then read from ``unique_id``)::

    {"problem": "How many vertical asymptotes ...", "solution": "... $\\boxed{2}$ vertical asymptotes.",
     "answer": "2", "subject": "Algebra", "level": 3, "level_raw": "Level 3",
     "unique_id": "test/algebra/1.json", "source_split": "test"}

becomes ``Problem(id="test/algebra/1.json", problem=..., answer="2", level=3, subject="Algebra",
solution=..., source="math12k:test")``. ``source`` keeps where the problem came from in MATH: the validation
split is drawn only from test-origin problems (reference §1.1). MATH500 rows become ``source="math500"``.

``level`` may be an integer 1-5, a string "Level N" (hendrycks format), or null / "Level ?" (two MATH train
problems have no level; they are never in a leveled set).
"""

from __future__ import annotations

import re

from e2h.data.rows import field, iter_rows
from e2h.jsonl import RecordError
from e2h.records import Problem, SFTExample
from e2h.text_format import format_prompt, format_solution

TRAIN_ORIGIN = "math12k:train"
TEST_ORIGIN = "math12k:test"
MATH500 = "math500"

_LEVEL_RAW = re.compile(r"^Level (\d|\?)$")


def parse_level(value, where: str, line: int, name: str = "level") -> int | None:
    """1-5, or None for an unknown level; anything else is an error naming the field."""
    if value is None:
        return None
    if isinstance(value, str):
        match = _LEVEL_RAW.match(value.strip())
        if match is None:
            raise RecordError(where, line, f"field '{name}' should be 1-5 or 'Level N', got {value!r}")
        value = None if match.group(1) == "?" else int(match.group(1))
        if value is None:
            return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        raise RecordError(where, line, f"field '{name}' should be an integer 1-5 or null, got {value!r}")
    return value


def _origin(row: dict, unique_id: str | None, where: str, line: int) -> str:
    split = field(row, "source_split", (str, type(None)), where, line, optional=True)
    if split is None and unique_id is not None:
        split = unique_id.split("/", 1)[0]  # MATH unique ids start with their original split
    if split not in ("train", "test"):
        raise RecordError(where, line, f"field 'source_split' should be 'train' or 'test', got {split!r}")
    return TRAIN_ORIGIN if split == "train" else TEST_ORIGIN


def load_math(source: str, *, kind: str = "train") -> list[Problem]:
    """Load MATH problems from a local file or hub id.

    ``kind="train"``: the 12k split; every row needs ``source_split`` or a ``unique_id`` starting with its split.
    ``kind="math500"``: the 500 test problems.
    Duplicate ``unique_id`` values are an error (they would make exclusion by id ambiguous).
    """
    if kind not in ("train", "math500"):
        raise ValueError(f"kind must be 'train' or 'math500', not {kind!r}")
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for where, line, row in iter_rows(source):
        problem = field(row, "problem", str, where, line)
        answer = field(row, "answer", str, where, line)
        subject = field(row, "subject", str, where, line)
        if "level" not in row:
            raise RecordError(where, line, "missing field 'level'")
        level = parse_level(row["level"], where, line)
        solution = field(row, "solution", (str, type(None)), where, line, optional=True)
        unique_id = field(row, "unique_id", (str, type(None)), where, line, optional=True)
        if not problem.strip():
            raise RecordError(where, line, "field 'problem' is empty")
        origin = _origin(row, unique_id, where, line) if kind == "train" else MATH500
        problem_id = unique_id or f"{origin}/{line}"
        if problem_id in seen:
            raise RecordError(where, line, f"field 'unique_id' {problem_id!r} repeats line {seen[problem_id]}")
        seen[problem_id] = line
        problems.append(Problem(id=problem_id, problem=problem, answer=answer, level=level, subject=subject,
                                solution=solution, source=origin))
    return problems


def load_math_train(source: str) -> list[Problem]:
    return load_math(source, kind="train")


def load_math500(source: str) -> list[Problem]:
    return load_math(source, kind="math500")


def is_test_origin(problem: Problem) -> bool:
    return problem.source == TEST_ORIGIN


# --- reference solutions as step-by-step demonstrations ---------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\\$(])")
_DISPLAY_MATH = re.compile(r"\$\$.*?\$\$|\\\[.*?\\\]|\\begin\{(align\*?|equation\*?|eqnarray\*?)\}.*?\\end\{\1\}",
                           re.DOTALL)


def solution_steps(solution: str) -> list[str]:
    """A MATH reference solution as e2h reasoning steps: one step per sentence or display equation, as the
    reference's MetaMath conversion splits ("newlines, '. ' and display-math ends"), never inside math.

    >>> solution_steps("We have $x = 2$. Then $y = 3.$\\n\\n$$z = 5.$$ So $\\\\boxed{5}$.")
    ['We have $x = 2$.', 'Then $y = 3.$', '$$z = 5.$$', 'So $\\\\boxed{5}$.']
    """
    pieces: list[str] = []
    cursor = 0
    for match in _DISPLAY_MATH.finditer(solution):  # display blocks are steps of their own, kept whole
        pieces += _prose_steps(solution[cursor:match.start()])
        pieces.append(" ".join(line.strip() for line in match.group(0).splitlines() if line.strip()))
        cursor = match.end()
    pieces += _prose_steps(solution[cursor:])
    return [p for p in pieces if p]


def _prose_steps(text: str) -> list[str]:
    steps = []
    for paragraph in text.split("\n"):
        sentence = ""
        for part in _SENTENCE_END.split(paragraph.strip()):
            sentence = f"{sentence} {part}".strip() if sentence else part.strip()
            if sentence.count("$") % 2 == 0:  # a sentence end inside inline math is no sentence end
                steps.append(sentence)
                sentence = ""
        if sentence:
            steps.append(sentence)
    return [s for s in steps if s]


def demonstration(problem: Problem) -> SFTExample | None:
    """The problem's reference solution as one SFT example in e2h's format (None without a solution)."""
    if not problem.solution or not problem.answer.strip():
        return None
    steps = solution_steps(problem.solution)
    if not steps:
        return None
    return SFTExample(id=f"{problem.id}/demo", problem_id=problem.id, prompt=format_prompt(problem.problem),
                      completion=format_solution(steps, problem.answer), eos=True, level=problem.level)
