"""Size and depth limits (issue #20.2, #20.3): every input gets a verdict that says why, at once or inside
the timeout; extraction is linear in the text; deep nesting is `too_deep`, never no_answer or RecursionError."""

from __future__ import annotations

import time

import pytest

from e2h.grading import grade, grade_many
from e2h.grading.batch import IN_PROCESS_EXTRACT_CHARS, MAX_INPUT_CHARS
from e2h.grading.extract import boxed_spans, closing_braces, extract_answer
from e2h.grading.parse import MAX_DEPTH, ParseTooDeep, bracket_depth, parse_answer


def test_input_over_the_limit_is_too_long_at_once():
    for text in ("\\boxed{1}" * (MAX_INPUT_CHARS // 9 + 1), "1" * (MAX_INPUT_CHARS + 1)):
        start = time.monotonic()
        verdict = grade(text, "1")
        assert (verdict.correct, verdict.reason) == (False, "too_long")
        assert time.monotonic() - start < 0.5  # no scan of the text


def test_long_input_is_graded_inside_the_timeout():
    # over IN_PROCESS_EXTRACT_CHARS: extracted in a killable worker; still a verdict well inside 5 s
    text = "We think. " * (IN_PROCESS_EXTRACT_CHARS // 10) + "\\boxed{42}"
    assert len(text) > IN_PROCESS_EXTRACT_CHARS
    grade("1", "1")  # warm nothing: the pool starts on first use below either way
    start = time.monotonic()
    verdicts = grade_many([(text, "42"), (text, "41")], timeout_s=5.0)
    assert [(v.correct, v.reason) for v in verdicts] == [(True, "normalized_match"), (False, "rational")]
    assert time.monotonic() - start < 30  # includes a worker's start (SymPy import) on a busy machine


def test_extraction_is_linear():
    # 1 MB of boxes: once quadratic (3.8 s); brace matching and box grouping are now one pass each
    def seconds(n):
        text = "\\boxed{1}" * n
        start = time.perf_counter()
        assert extract_answer(text).startswith("1, 1")
        return time.perf_counter() - start

    small, large = seconds(25_000), seconds(100_000)
    assert large < 1.5, large
    assert large < 12 * max(small, 1e-3), (small, large)  # 4x the input: far from 16x


@pytest.mark.parametrize("text", ["\\boxed{" * 50_000, "{" * 50_000 + "\\boxed{3}", "\\boxed{1}}" * 50_000])
def test_unbalanced_braces_are_one_pass(text):
    start = time.perf_counter()
    boxed_spans(text)
    assert time.perf_counter() - start < 1.0


def test_closing_braces_match_and_skip_escapes():
    assert closing_braces("{a{b}\\{c}") == {2: 5, 0: 9}
    assert closing_braces("{{") == {}


DEEP = [
    ("(" * 3000 + "x" + ")" * 3000, "bare"),  # thousands of parentheses: once a silent no_answer
    ("\\boxed{" + "(" * 300 + "x" + ")" * 300 + "}", "boxed"),
    ("\\boxed{" + "\\frac{1}{" * (MAX_DEPTH + 5) + "2" + "}" * (MAX_DEPTH + 5) + "}", "fractions"),
    ("\\boxed{" + "-" * 500 + "1}", "signs"),  # no brackets, one recursion per sign
    ("\\boxed{" + "2**" * 250 + "2}", "powers"),  # 2**2**...: one recursion per power
]


@pytest.mark.parametrize("text,kind", DEEP, ids=[k for _, k in DEEP])
def test_deep_nesting_is_too_deep(text, kind):
    verdict = grade(text, "3")
    assert (verdict.correct, verdict.reason) == (False, "too_deep"), kind


def test_nesting_within_the_limit_still_parses():
    depth = MAX_DEPTH // 4  # each bracket level costs a few parser levels
    assert grade("(" * depth + "3" + ")" * depth, "3").correct
    assert bracket_depth("((a)[b]{c})") == 2
    with pytest.raises(ParseTooDeep):
        parse_answer("(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1))
