"""Table-driven tests of extraction, normalisation and grading (MATH conventions)."""

from __future__ import annotations

import pytest

from e2h.grading import answers_equivalent, extract_answer, grade, normalize_answer

EXTRACT = [
    ("so the answer is $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
    ("first \\boxed{1} then \\boxed{\\frac{a}{b^{2}}}", "\\frac{a}{b^{2}}"),  # last box, nested braces
    ("\\fbox{7}", "7"),
    ("\\boxed 5.", "5"),
    ("We add.\n\nThat gives 3.\n\n# Answer\n\n3", "3"),  # e2h's own answer line
    ("Final Answer: The final answer is $5$. I hope it is correct.", "5"),
    ("so the answer is 12.", "12"),
    ("\\boxed{1} and \\boxed{2}", "1, 2"),  # boxes joined by 'and' are one list answer
    ("We worked hard.", None),
    ("\\boxed{\\frac{1}{2}", None),  # unbalanced braces: no answer, no crash
    ("", None),
]


@pytest.mark.parametrize("text,expected", EXTRACT)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


SAME_KEY = [
    ["\\dfrac{1}{2}", "\\frac12", "0.5", "1/2", "$\\frac{1}{2}$", "\\tfrac{1}{2}"],
    ["x = 3", "3", "3.0", "\\boxed{3}", "3^\\circ", "3\\text{ cm}", "03"],
    ["\\$32,\\!348", "32{,}348", "32348", "32,348"],
    ["10\\%", "10", "10 percent"],
    ["-2, 1", "1,-2", "\\{1, -2\\}"],
    ["\\sqrt{117}", "3\\sqrt{13}"],
    ["1 \\pm \\sqrt{19}", "1-\\sqrt{19}, 1+\\sqrt{19}"],
    ["137 \\frac{1}{2}", "275/2", "137.5"],
]


@pytest.mark.parametrize("group", SAME_KEY, ids=lambda g: g[0])
def test_normalize_answer_groups_equal_answers(group):
    keys = {normalize_answer(a) for a in group}
    assert len(keys) == 1, keys


def test_normalize_answer_separates_different_answers():
    answers = ["1/2", "1/3", "(1,2)", "[1,2]", "\\{1,2\\}", "2", "x+1", "\\sqrt{2}", "\\text{east}", "(2,1)"]
    keys = [normalize_answer(a) for a in answers]
    assert len(set(keys)) == len(keys), keys


GRADE = [
    # (pred, gold, correct)  fractions, decimals, mixed numbers
    ("\\dfrac{14}{3}", "\\frac{14}{3}", True),
    ("4\\frac{2}{3}", "\\frac{14}{3}", True),
    ("0.75", "3/4", True),
    ("\\frac{3}{14}", "\\frac{14}{3}", False),
    ("3.14", "\\pi", False),
    ("5.001", "5", False),
    # sqrt, pi, powers
    ("\\sqrt{117}", "3\\sqrt{13}", True),
    ("\\frac{1}{\\sqrt{3}}", "\\frac{\\sqrt{3}}{3}", True),
    ("2(9+\\pi)", "18+2\\pi", True),
    ("2^{10}", "1024", True),
    ("13\\sqrt{3}", "3\\sqrt{13}", False),
    # thousands, money, percent, degrees, units, text
    ("32348", "\\$32,\\!348", True),
    ("32.348", "\\$32,\\!348", False),
    ("10", "10\\%", True),  # MATH: the percent sign is dropped
    ("90", "90^\\circ", True),
    ("864 \\text{ square inches}", "864 \\mbox{ inches}^2", True),
    ("Evelyn", "\\text{Evelyn}", True),
    ("\\text{Briana}", "\\text{Evelyn}", False),
    # equations, choices
    ("x = 5", "5", True),
    ("y = 3 + 2x", "y = 2x + 3", True),
    ("y = 2x - 3", "y = 2x + 3", False),
    ("(C)", "\\text{(C)}", True),
    ("\\text{(D)}", "\\text{(C)}", False),
    # tuples (ordered), intervals (brackets matter, unions unordered), lists and sets (unordered)
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\pi/2)", True),
    ("(1,-2)", "(-2,1)", False),
    ("(3,4)", "(3,4]", False),
    ("(3, \\infty) \\cup (-\\infty, 2)", "(-\\infty, 2) \\cup (3, \\infty)", True),
    ("x \\ge 5", "[5, \\infty)", True),
    ("-2, 1", "1, -2", True),
    ("\\{-2, 1+\\sqrt{5}, 1-\\sqrt{5}\\}", "\\{1\\pm\\sqrt{5},-2\\}", True),
    ("1+\\sqrt{19}", "1 \\pm \\sqrt{19}", False),
    # matrices, complex numbers, symbolic equivalence
    ("\\begin{bmatrix}-1&0\\\\0&-1\\end{bmatrix}", "\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}", True),
    ("\\begin{pmatrix} 0.2 \\\\ -3.6 \\end{pmatrix}", "\\begin{pmatrix} 1/5 \\\\ -18/5 \\end{pmatrix}", True),
    ("\\begin{pmatrix} -18/5 \\\\ 1/5 \\end{pmatrix}", "\\begin{pmatrix} 1/5 \\\\ -18/5 \\end{pmatrix}", False),
    ("6-5i", "6 - 5i", True),
    ("(2+i)(2-i)", "5", True),
    ("6+5i", "6 - 5i", False),
    ("(x+1)^2", "x^2+2x+1", True),
    ("x^3+2x+1", "x^2+2x+1", False),
    ("\\tan^2(y)+1", "\\sec^2(y)", True),
    # whole solutions
    ("We compute.\n\n# Answer\n\n\\frac{1}{2}", "0.5", True),
    ("Thus $x = \\boxed{1 \\pm \\sqrt{19}}$.", "1 \\pm \\sqrt{19}", True),
    ("I am not sure what to do here, and I give up on this problem entirely without finishing it. " * 3, "3", False),
    (None, "3", False),
]


@pytest.mark.parametrize("pred,gold,correct", GRADE)
def test_grade_math_conventions(pred, gold, correct):
    verdict = grade(pred, gold)
    assert verdict.correct is correct, verdict


def test_verdict_fields_and_reasons():
    v = grade("so $\\boxed{\\dfrac12}$", "0.5")
    assert (v.correct, v.reason, v.pred_answer, v.pred_normalized, v.gold_normalized) == (
        True, "normalized_match", "\\dfrac12", "1/2", "1/2")
    assert grade("no answer here at all, we only talk about the weather and nothing else" * 5, "1").reason == \
        "no_answer"


def test_answers_equivalent():
    assert answers_equivalent("\\frac{1}{2}", "0.5")
    assert not answers_equivalent("\\frac{1}{3}", "0.5")
