"""The step checker on hand-written problems and candidate steps, hostile text included."""

from __future__ import annotations

import time

import pytest

from e2h.records import Problem
from e2h.world import check_steps, first_error, label_with_checker, parse_answer
from e2h.world.checker import Malformed, parse_step


def world_problem(text: str, steps: list[str], answer: str) -> Problem:
    return Problem(id=f"hand/{text}", problem=text, answer=answer, level=1, subject="hand", source="world",
                   solution="\n\n".join([*steps, f"# Answer\n\n{answer}"]))


CHAIN = world_problem("Compute (3 * 7 + 5) * 2.", ["3 * 7 = 21", "21 + 5 = 26", "26 * 2 = 52"], "52")
FRACTIONS = world_problem("Compute 1/2 + 1/3 * 3/4.", ["1/3 * 3/4 = 1/4", "1/2 + 1/4 = 3/4"], "\\frac{3}{4}")
MODULAR = world_problem("Find the remainder when 9 * 8 + 11 is divided by 7.",
                        ["9 * 8 = 72", "72 + 11 = 83", "83 mod 7 = 6"], "6")
LINEAR = world_problem("Solve for x: 3(x - 4) + 5 = 20.", ["20 - 5 = 15", "15 / 3 = 5", "5 + 4 = 9"], "9")
NEGATIVE = world_problem("Compute 4 - 11.", ["4 - 11 = -7"], "-7")
REGROUP = world_problem("Compute 3 + (7 * 2 - 6 + 5) + 2.",
                        ["7 * 2 = 14", "14 - 6 = 8", "8 + 5 = 13", "3 + 13 = 16", "16 + 2 = 18"], "18")
PRODUCT = world_problem("Compute 2 * 3 * 4 / 6.", ["2 * 3 = 6", "6 * 4 = 24", "24 / 6 = 4"], "4")

A = "# Answer\n\n"
CASES = [
    # (name, problem, steps, expected verdicts)
    ("reference", CHAIN, ["3 * 7 = 21", "21 + 5 = 26", "26 * 2 = 52", A + "52"], [True] * 4),
    ("wrong result propagated", CHAIN, ["3 * 7 = 22", "22 + 5 = 27", "27 * 2 = 54", A + "54"], [False] * 4),
    ("later step uses a value never derived", CHAIN, ["3 * 7 = 21", "21 + 5 = 27", "26 * 2 = 52", A + "52"],
     [True, False, False, True]),  # 26 was never correctly produced, so "26 * 2" is ungrounded
    ("wrong operation, true arithmetic", CHAIN, ["3 + 7 = 10", "10 + 5 = 15", A + "15"], [False] * 3),
    ("commutative", CHAIN, ["7 * 3 = 21", "5 + 21 = 26", "2 * 26 = 52", A + "52"], [True] * 4),
    ("two operations in one step", CHAIN, ["3 * 7 + 5 = 26", "26 * 2 = 52"], [True, True]),
    ("trailing period and spacing", CHAIN, ["3*7=21.", " 21 +5 = 26 "], [True, True]),
    ("value used before it is derived", CHAIN, ["21 + 5 = 26"], [False]),
    ("number not in the problem", CHAIN, ["3 * 8 = 24"], [False]),
    ("right side must be a number", CHAIN, ["3 * 7 = 20 + 1", "3 * 7 = (21)", "3 * 7 = 21 * 1"], [False] * 3),
    ("right side may be an unreduced fraction", CHAIN, ["3 * 7 = 42/2"], [True]),
    ("two equations", CHAIN, ["3 * 7 = 21 = 21"], [False]),
    ("answer forms", CHAIN, [A + "52", A + "$52$", A + "\\frac{104}{2}", A + "53", A, A + "fifty-two",
                             A + "52.0"], [True, True, True, False, False, False, False]),
    ("prose is not a step", CHAIN, ["We multiply 3 by 7.", "x = 21", ""], [False] * 3),
    ("fractions", FRACTIONS, ["1/3 * 3/4 = 1/4", "1/2 + 1/4 = 3/4", A + "\\frac{3}{4}"], [True] * 3),
    ("unreduced fraction has the same value", FRACTIONS, ["1/3 * 3/4 = 3/12", "1/2 + 3/12 = 3/4"], [True, True]),
    ("fraction wrong order of operations", FRACTIONS, ["1/2 + 1/3 = 5/6", "5/6 * 3/4 = 5/8", A + "\\frac{5}{8}"],
     [False] * 3),
    ("fraction answers", FRACTIONS, [A + "3/4", A + "\\dfrac{3}{4}", A + "-\\frac{3}{4}", A + "\\frac{3}{0}",
                                     A + "0.75"], [True, True, False, False, False]),
    ("modular", MODULAR, ["9 * 8 = 72", "72 + 11 = 83", "83 mod 7 = 6", A + "6"], [True] * 4),
    ("modular slips", MODULAR, ["9 * 8 = 72", "72 + 11 = 83", "83 mod 7 = 13", "83 mod 0 = 0", "83 mod 7 = 5"],
     [True, True, False, False, False]),
    ("linear", LINEAR, ["20 - 5 = 15", "15 / 3 = 5", "5 + 4 = 9", A + "9"], [True] * 4),
    ("linear wrong inverse", LINEAR, ["20 + 5 = 25", "25 / 3 = 25/3", A + "\\frac{25}{3}"], [False] * 3),
    ("negative", NEGATIVE, ["4 - 11 = -7", A + "-7", A + "7"], [True, True, False]),
    ("unary minus", NEGATIVE, ["-11 + 4 = -7", A + "-7"], [True, True]),
    ("unary minus, operands swapped", NEGATIVE, ["4 + -11 = -7"], [True]),
    ("spaced minus in the result", NEGATIVE, ["4 - 11 = - 7"], [True]),
    # an expression problem is checked against what is left of it, not against one reference order
    ("a sum regrouped", REGROUP, ["7 * 2 = 14", "14 - 6 = 8", "3 + 8 = 11", "11 + 5 = 16", "16 + 2 = 18", A + "18"],
     [True] * 6),
    ("a sum in another order", REGROUP, ["7 * 2 = 14", "3 + 14 = 17", "17 - 6 = 11", "5 + 11 = 16", "2 + 16 = 18"],
     [True] * 5),
    ("a difference taken out of the sum", REGROUP, ["7 * 2 = 14", "6 - 5 = 1", "14 - 1 = 13"], [True, True, True]),
    ("a signed pair read with its sign", REGROUP, ["3 - 6 = -3", "-3 + 5 = 2"], [True, True]),
    ("precedence still holds", REGROUP, ["3 + 7 = 10", "10 * 2 = 20"], [False, False]),
    ("a sign dropped", REGROUP, ["7 * 2 = 14", "6 + 5 = 11", "14 - 11 = 3"], [True, False, False]),
    ("a number used twice", REGROUP, ["7 * 2 = 14", "14 - 6 = 8", "14 + 5 = 19"], [True, True, False]),
    ("a step repeated", CHAIN, ["3 * 7 = 21", "3 * 7 = 21", "21 + 5 = 26"], [True, False, True]),
    ("a product regrouped", PRODUCT, ["3 * 4 = 12", "12 * 2 = 24", "24 / 6 = 4"], [True, True, True]),
    ("a quotient taken first", PRODUCT, ["2 * 3 = 6", "6 / 6 = 1", "1 * 4 = 4"], [True, True, True]),
    ("a factor divided into the wrong side", PRODUCT, ["3 * 6 = 18"], [False]),
]

HOSTILE = [
    "__import__('os').system('echo hacked') = 0",
    "__import__('os')",
    "9**9**9**9 = 1",
    "9^9^9^9 = 1",
    "eval('3*7') = 21",
    "lambda: 0",
    "(" * 5000 + "3" + ")" * 5000 + " = 3",
    "1" * 100_000 + " = 1",
    "3" * 9 + " * " + "7" * 9 + " * " + "7" * 9 + " * " + "7" * 9 + " = 1",
    "- " * 40 + "3 = 3",
    " + ".join(["3"] * 60) + " = 180",
    "3 * 7 = 21\x00",
    "٣ * 7 = 21",  # Arabic-Indic three: not an ASCII digit
    "3 mod -7 = 3",
    "3 / 0 = 0",
    "3 * 7 = 21; import os",
    "{3 * 7} = 21",
    "\\frac{3}{7} = 3/7",
    "# Answer\n\n" + "9" * 100_000,
    "# Answer\n\n\\frac{" + "9" * 50 + "}{1}",
]


@pytest.mark.parametrize("name, problem, steps, expected", CASES, ids=[c[0] for c in CASES])
def test_checker_verdicts(name, problem, steps, expected):
    assert check_steps(problem, steps) == expected


@pytest.mark.parametrize("step", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_steps_are_incorrect_and_quick(step):
    start = time.perf_counter()
    assert check_steps(CHAIN, [step]) == [False]
    assert time.perf_counter() - start < 0.05


def test_parse_step_refuses_beyond_its_limits():
    for text in ["9" * 10 + " = 9", "(((((((((3))))))))) = 3", "999999999 * 999999999 * 99999 = 1"]:
        with pytest.raises(Malformed):
            parse_step(text)
    assert parse_step("(((3))) * 7 = 21").value == 21


def test_parse_answer():
    assert parse_answer("-\\frac{3}{4}") == parse_answer("-3/4") == -parse_answer("\\tfrac{3}{4}")
    assert parse_answer("12") == 12 and parse_answer("x") is None and parse_answer("1/0") is None


def test_first_error():
    assert first_error(CHAIN, ["3 * 7 = 21", "21 + 5 = 26", "26 * 2 = 52", A + "52"]) is None
    assert first_error(CHAIN, ["3 * 7 = 21", "21 + 5 = 27", "27 * 2 = 54", A + "54"]) == 1
    assert first_error(CHAIN, ["3 * 7 = 21", "21 + 5 = 26", "26 * 2 = 52", A + "50"]) == 3
    assert first_error(CHAIN, []) is None


def test_not_a_world_problem_is_an_error():
    prose = Problem(id="math/1", problem="What is $1+2$?", answer="3", solution="We add.\n\n# Answer\n\n3")
    with pytest.raises(ValueError, match="math/1"):
        check_steps(prose, ["1 + 2 = 3"])
    with pytest.raises(ValueError, match="not a world problem"):
        check_steps(Problem(id="x", problem="?", answer="\\sqrt{2}", solution="1 + 1 = 2"), ["1 + 1 = 2"])


def test_label_with_checker_labels_every_step_or_cuts():
    text = "3 * 7 = 21\n\n21 + 5 = 27\n\n27 * 2 = 54\n\n# Answer\n\n54"
    example = label_with_checker(CHAIN, text)
    assert example.steps == ["3 * 7 = 21", "21 + 5 = 27", "27 * 2 = 54", A + "54"]
    assert example.labels == [1.0, 0.0, 0.0, 0.0]
    assert example.problem_id == CHAIN.id and example.source == "world"
    assert label_with_checker(CHAIN, text).id == example.id != label_with_checker(CHAIN, text + " ").id
    cut = label_with_checker(CHAIN, text, after_error="cut")
    assert cut.steps == ["3 * 7 = 21", "21 + 5 = 27"] and cut.labels == [1.0, 0.0]
    empty = label_with_checker(CHAIN, "")
    assert empty.steps == [""] and empty.labels == [0.0]
    trailing = label_with_checker(CHAIN, "3 * 7 = 21\n\n21 + 5 = 26\n\n26 * 2 = 52\n\n# Answer\n\n52\n\nextra")
    assert trailing.labels == [1.0, 1.0, 1.0, 1.0]
