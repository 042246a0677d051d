"""The grader against real data: the labelled corpus and MATH500 (tests/data, sources in tests/data/LICENSES.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from e2h.grading import extract_answer, grade_many

DATA = Path(__file__).resolve().parent / "data"
CASES = DATA / "grader_cases.jsonl"
MATH500 = DATA / "math500.jsonl"

# Flags the data README marks as not a test oracle: excluded.
UNSAFE_FLAGS = ("ambiguous", "config_dependent", "label_conflict", "curator_disagrees")
# `removed_later` (8 NeMo-Skills cases, rows 301-308) is kept: the README does not call it unsafe, each
# label was asserted by a real test, and a later version dropping an assertion says nothing against it.
# We agree with all 8 (row 307 via the MATH percent convention below); none is excluded to lift the score.
# Where a label follows another grader's convention, we follow MATH's (row index: reason).
MATH_CONVENTION = {
    307: "MATH drops the percent sign: 10% == 10, not 0.1 (an old NeMo-Skills label)",
    310: "issue #3 / MATH solution lists: a comma list of solutions is unordered (hendrycks test is ordered)",
    317: "same: unordered comma list",
    134: "MATH grades the last \\boxed answer; a solution without one has no answer (Math-Verify guesses)",
    135: "same: no \\boxed / answer line in the response",
    136: "same: no \\boxed / answer line in the response",
    156: "same: no \\boxed / answer line in the response",
}
# Row 120 ("0.0833333333333333" for 1/12) is Math-Verify's rounding; under the default numeric convention
# (grading.numeric: exact, PRM800K's) it is wrong, under rel_tol right: see test_numeric_convention_row.
NUMERIC_CONVENTION = {120: {"exact": False, "rel_tol": True}}
# Issue #3 asked >= 98%. Known misses (4 of 495, 99.2%), each a Math-Verify/lighteval quirk with no MATH rule:
#   28, 29   "Answer $ \n 9 \n $": Math-Verify refuses math delimiters spanning a line break (label false)
#   181      "\\boxed{35 cm} ++++++ \\boxed{4}" read as one list answer
#   206      an unclosed, doubly escaped "\\boxed{W(n) = 1 ..." against "W(x)=1orW(x)=-1"
# Row 247 (\sum_{k=0}^{n-1} with the factors swapped) passes since issue #20: sums are compared by structure.
MIN_AGREEMENT = 0.99


def _rows():
    return [json.loads(line) for line in CASES.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_grader_cases_agreement():
    rows = [(i, r) for i, r in enumerate(_rows()) if not any(r.get(f) for f in UNSAFE_FLAGS)]
    verdicts = grade_many([(r["pred"], r["gold"]) for _, r in rows], timeout_s=5.0)
    expected = [NUMERIC_CONVENTION[i]["exact"] if i in NUMERIC_CONVENTION else
                (not r["equivalent"]) if i in MATH_CONVENTION else r["equivalent"] for i, r in rows]
    wrong = [(i, r["gold"][:40], r["pred"][:60], v.reason) for (i, r), v, e in zip(rows, verdicts, expected)
             if v.correct != e]
    agreement = 1 - len(wrong) / len(rows)
    assert agreement >= MIN_AGREEMENT, (agreement, wrong)
    # answer-level cases (no prose / full responses on either side): the pure is_equiv part
    answer_level = [(i, r) for i, r in rows if r["gold_form"] not in ("prose", "full_response")
                    and r["pred_form"] not in ("prose", "full_response")]
    wrong_ids = {w[0] for w in wrong}
    answer_agreement = 1 - sum(i in wrong_ids for i, _ in answer_level) / len(answer_level)
    assert answer_agreement >= 0.96, answer_agreement


def test_math500_extract_then_grade_and_neighbours():
    rows = [json.loads(line) for line in MATH500.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(rows) == 500
    for r in rows:
        assert extract_answer(r["solution"]) == r["answer"]
    own = grade_many([(r["solution"], r["answer"]) for r in rows])
    assert sum(v.correct for v in own) == 500, [(r["answer"], v) for r, v in zip(rows, own) if not v.correct]
    # every gold against the next problem's gold: incorrect unless the two golds are truly the same answer
    neighbours = [(rows[i]["answer"], rows[(i + 1) % 500]["answer"]) for i in range(500)]
    verdicts = grade_many(neighbours)
    same = [(a, b) for (a, b), v in zip(neighbours, verdicts) if v.correct]
    def plain(answer: str) -> str:  # an independent, literal notion of "the same answer"
        s = "".join(answer.split()).replace("\\dfrac", "\\frac").replace("\\$", "")
        return re.sub(r"^[a-z]=", "", s)

    for a, b in same:
        assert plain(a) == plain(b), (a, b)


def test_numeric_convention_row():
    rows = _rows()
    for i, by_convention in NUMERIC_CONVENTION.items():
        for numeric, correct in by_convention.items():
            assert grade_many([(rows[i]["pred"], rows[i]["gold"])], numeric=numeric)[0].correct is correct, (i, numeric)
