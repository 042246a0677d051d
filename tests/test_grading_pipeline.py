"""Table-driven tests of extraction, normalisation and grading (MATH conventions)."""

from __future__ import annotations

import pytest

from e2h.grading import answers_equivalent, extract_answer, grade, normalize_answer
from e2h.grading.extract import choice_letter
from e2h.grading.parse import last_side_of_chain

EXTRACT = [
    ("so the answer is $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
    ("first \\boxed{1} then \\boxed{\\frac{a}{b^{2}}}", "\\frac{a}{b^{2}}"),  # last box, nested braces
    ("\\fbox{7}", "7"),
    ("\\boxed 5.", "5"),
    ("We add.\n\nThat gives 3.\n\n# Answer\n\n3", "3"),  # e2h's own answer line
    ("Final Answer: The final answer is $5$. I hope it is correct.", "5"),
    ("so the answer is 12.", "12"),
    ("\\boxed{1} and \\boxed{2}", "1, 2"),  # boxes joined by 'and' are one list answer
    ("$y_1 = \\boxed{3}$ and $y_2 = \\boxed{4}$", "3, 4"),  # ... also when the next box is labelled
    ("\\boxed{1} papers and \\boxed{2} bins", "1, 2"),  # ... or a unit word follows a box before 'and'
    ("\\boxed{5}, or \\boxed{6}", "6"),  # alternatives: the last wins
    ("\\boxed{5} is wrong and \\boxed{6}", "6"),  # words that are not a unit break the list
    ("so $x = \\boxed{255}$. Final Answer: The final answer is $10,455$. I hope it is correct.", "10,455"),
    ("so \\boxed{7}. Final answer: as shown above.", "7"),  # a final-answer line without a number: the box
    ("We worked hard.", None),
    ("\\boxed{\\frac{1}{2}", None),  # unbalanced braces: no answer, no crash
    ("", None),
]


@pytest.mark.parametrize("text,expected", EXTRACT)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


SAME_KEY = [
    ["56,\\!01,\\!78,\\!95,\\!760", "56017895760"],  # ,\\! between digits: one number (Indian grouping)
    ["14 {, }916", "14{,}916", "14916"],  # TeX ignores the spaces around {,}
    ["x=1, y=2", "y = 2, x = 1"],  # a named tuple: by name
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
    answers = ["1/2", "1/3", "(1,2)", "[1,2]", "\\{1,2\\}", "2", "x+1", "\\sqrt{2}", "\\text{east}", "(2,1)",
               "x=1, y=2", "x=2, y=1"]
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


@pytest.mark.parametrize("text", [
    "18 + +   =  - mod1 * 1 6 3 \n\n -3 /4  *",  # a policy's garbage: several paragraphs, no answer line
    "We add 1 and 2.\n\n1 + 2 = 3",
])
def test_solution_without_an_answer_is_not_a_bare_answer(text):
    verdict = grade(text, "-3" if "-3" in text else "3")
    assert not verdict.correct and verdict.reason == "no_answer" and verdict.pred_answer is None


def test_answers_equivalent():
    assert answers_equivalent("\\frac{1}{2}", "0.5")
    assert not answers_equivalent("\\frac{1}{3}", "0.5")


CHOICES = [
    ("The answer is for sure D, it can't be A or B", "D"),  # right after "answer is" (a few words may precede)
    ("The answer: D, it doesn't make sense for it to be A or B", "D"),
    ("D. it can't be A or B", "D"),  # an option line leads the text
    ("C. x = 42", "C"),
    ("A Peter\nCelina bum", "A"),
    ("Let's think step by step. It's not A because it is odd, therefore I think it's B", "B"),  # last standalone
    ("E'", None),
    ("We compute the area of the triangle.", None),
]


@pytest.mark.parametrize("text,letter", CHOICES)
def test_choice_letter(text, letter):
    assert choice_letter(text) == letter


CHAINS = [
    ("1 = \\zzz = x = 0", "0"),  # the last side of an '=' chain; the working before it is never parsed
    ("a = b", "a = b"),  # one '=': left to the parser (a label or an equation)
    ("x = 1, y = 2", "x = 1, y = 2"),  # a list of assignments, not a chain
    ("0 < x = 3 = y", "0 < x = 3 = y"),  # mixed with an inequality: left to the parser
]


@pytest.mark.parametrize("text,expected", CHAINS)
def test_last_side_of_chain(text, expected):
    assert last_side_of_chain(text) == expected


PM = "\\begin{pmatrix}"
EM = "\\end{pmatrix}"
RULES = [
    # (rule, pred, gold, correct)
    # a bare choice letter against a sentence that picks one (lighteval / Math-Verify letter extraction)
    ("choice", "The answer is for sure D, it can't be A or B", "D", True),
    ("choice", "The answer is for sure D, it can't be A or B", "B", False),
    ("choice", "It's not A, therefore I think it's B", "B", True),
    ("choice", "It's not A, therefore I think it's B", "A", False),
    ("choice", "C. x = 42", "C", True),
    ("choice", "A", "A Peter\nCelina bum", True),
    ("choice", "B", "A Peter\nCelina bum", False),
    ("choice", "E'", "E", False),
    ("choice", "\\mathrm{E}*2", "E", False),
    ("choice", "It is B, so \\boxed{7}", "B", False),  # a box decides; the letters in the prose do not
    # a number in prose is read whole: thousands commas and a European decimal comma
    ("prose number", "Soucis : 2,74 $ a..", "2.74", True),
    ("prose number", "Soucis : 2,74 $ a..", "274", False),
    ("prose number", "The total comes to 10,455 dollars", "10455", True),
    # $..$ holding prose (or a '?') is money or prose, not math; an escaped \\$ is not a delimiter
    ("prose in $", "how many $? just about 1$", "1", True),
    ("prose in $", "$19, 46, and 82$", "19, 46, 82", True),  # 'and' glues a list: still math
    ("prose in $", "\\boxed{7:32}", "$S_{MBCN}:S=7:32$", True),  # subscripts are not words
    ("escaped $", "Answer $ \\frac{1}{2} \\$ = \\frac{10}{9} $", "$10/9$", True),
    # an equation between constants is working; its right side is the answer
    ("constant equation", "\\frac{1}{2} + \\frac{11}{18} = \\frac{10}{9}", "\\frac{10}{9}", True),
    ("constant equation", "\\frac{1}{2} = \\frac{10}{9}", "\\frac{1}{2}", False),
    # '=' chains: the last side
    ("chain", "$0$", "$1 = \\zzz = x = 0$", True),
    ("chain", "$1$", "$1 = \\zzz = x = 0$", False),
    # digit grouping
    ("grouping", "56017895760", "56,\\!01,\\!78,\\!95,\\!760", True),
    ("grouping", "56,\\!01,\\!78", "56,178", False),
    ("grouping", "14 {, }916", "14916", True),
    ("grouping", "1{,}5", "15", False),  # {,} before fewer than 3 digits may be a decimal comma: not joined
    # |x| between constants is a union of intervals
    ("abs", "z \\in [-\\frac{3}{2}, -1] \\cup [1, \\frac{3}{2}]", "1\\leq|z|\\leq \\frac{3}{2}", True),
    ("abs", "[1, \\frac{3}{2}]", "1\\leq|z|\\leq \\frac{3}{2}", False),
    ("abs", "(-\\frac{3}{2}, -1] \\cup [1, \\frac{3}{2})", "1\\leq|z|\\leq \\frac{3}{2}", False),
    ("abs", "[-2, 2]", "|x| \\le 2", True),
    ("abs", "(-2, 2)", "|x| \\le 2", False),
    ("abs", "(-\\infty, -3) \\cup (3, \\infty)", "|x| > 3", True),
    ("abs", "-2 \\le x \\le 2", "|x| \\le 2", True),
    # a matrix expression written out equals its value
    ("matrix", f"{PM}1 & 2 \\\\ 3 & 4{EM} + {PM}5 & 6 \\\\ 7 & 8{EM}", f"{PM}6 & 8 \\\\ 10 & 12{EM}", True),
    ("matrix", f"{PM}1 & 2 \\\\ 3 & 4{EM} - {PM}5 & 6 \\\\ 7 & 8{EM}", f"{PM}6 & 8 \\\\ 10 & 12{EM}", False),
    ("matrix", f"{PM}1&2\\\\3&4{EM}{PM}0&1\\\\1&0{EM}", f"{PM}2&1\\\\4&3{EM}", True),
    ("matrix", f"{PM}0&1\\\\1&0{EM}{PM}1&2\\\\3&4{EM}", f"{PM}2&1\\\\4&3{EM}", False),  # not commutative
    ("matrix", f"2{PM}1\\\\-1{EM}", f"{PM}2\\\\-2{EM}", True),
    ("matrix", f"{PM}1&2{EM} + {PM}1\\\\2{EM}", f"{PM}2&4{EM}", False),  # shapes differ
    # assignments: by name; repeated names are solution groups; x_1, x_2 roots stay unordered
    ("assignments", "(5,2),(7,2)", "p=5,q=2;p=7,q=2", True),
    ("assignments", "(2,5),(2,7)", "p=5,q=2;p=7,q=2", False),
    ("assignments", "p=7, q=2 \\text{ and } p=5, q=2", "p=5,q=2;p=7,q=2", True),
    ("assignments", "x=2, y=1", "x=1, y=2", False),
    ("assignments", "y=2, x=1", "x=1, y=2", True),
    ("assignments", "(1,2)", "x=1, y=2", True),
    ("assignments", "2, 1", "x=1, y=2", False),
    ("assignments", "2, 1", "x_1 = 1, x_2 = 2", True),
    # \\sum, \\prod: exact when the bounds are small integers (evaluate.MAX_SUM_TERMS), else by structure
    ("sum", "\\sum_{k=1}^{10} k^2", "385", True),
    ("sum", "\\sum_{k=1}^{10} k^2", "384", False),
    ("sum", "\\sum\\limits_{k=1}^{10} k", "55", True),
    ("sum", "\\sum_{k=1}^{10} k + 1", "56", True),  # the body is the product term: (sum k) + 1
    ("sum", "\\sum_{i=1}^{3}\\sum_{j=1}^{i} j", "10", True),  # nested, inner bound on the outer index
    ("sum", "\\prod_{k=1}^{5} k", "5!", True),
    ("sum", "\\prod_{k=1}^{5} \\frac{k}{k+1}", "\\frac{1}{6}", True),
    ("sum", "\\sum_{k=1}^{100000} k", "5000050000", False),  # over the term limit: structure only
    ("sum", "\\sum_{j=1}^{n} j^2", "\\sum_{k=1}^{n} k^2", True),  # the index is renamed
    ("sum", "\\sum_{j=1}^{n} j^3", "\\sum_{k=1}^{n} k^2", False),
    ("sum", "\\sum_{k=0}^{n} k", "\\sum_{k=1}^{n} k", False),  # bounds are compared, not values
    ("sum", "F_n = \\sum_{k=0}^{n-1} F_{n-k-1} F_k", "F_n = \\sum_{k=0}^{n-1} F_k F_{n-k-1}", True),
]


@pytest.mark.parametrize("rule,pred,gold,correct", RULES, ids=[f"{r[0]}-{i}" for i, r in enumerate(RULES)])
def test_grading_rules(rule, pred, gold, correct):
    verdict = grade(pred, gold)
    assert verdict.correct is correct, (rule, verdict)
