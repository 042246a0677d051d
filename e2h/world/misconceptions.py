"""Systematic misconceptions: wrong rules an author applies consistently, wherever they apply.

A slip (e2h.world.flaws) is random: two samples of one problem rarely slip the same way. A misconception is a
wrong *rule*, so every solution written under it lands on the same wrong answer. That is what defeats majority
voting on real hard problems, and what a step-level verifier can still catch (each misconceived step is a step
the checker rejects)::

    problem        Compute 3 + 4 * 5 - 6.                       (answer 17)
    left_to_right  3 + 4 = 7      7 * 5 = 35     35 - 6 = 29     # Answer 29   brackets and precedence ignored
    problem        Find the remainder when 9 * 8 + 11 is divided by 7.
    mod_quotient   9 * 8 = 72     72 + 11 = 83   83 mod 7 = 11   # Answer 11   "a mod b" taken as the quotient
    problem        Compute 2 * 3 - 9.
    reversed_subtraction  2 * 3 = 6   6 - 9 = 3                  # Answer 3    "a - b" with a < b taken as b - a

A longer problem meets ``left_to_right`` more often (more operators, more chances that the written order is
not the evaluation order), so hard problems are where misconceptions pile up, as on real hard math.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Callable

from e2h.records import Problem
from e2h.text_format import split_solution
from e2h.world import restated
from e2h.world.checker import is_restated
from e2h.world.expression import EXPRESSION_PROBLEM, Stuck, problem_tree
from e2h.world.flaws import PlanStep, plan_of, replay_step
from e2h.world.generator import answer_step, apply_op, step_text

MISCONCEPTIONS = ("left_to_right", "mod_quotient", "reversed_subtraction")



def _mod_quotient(left: Fraction, op: str, right: Fraction) -> Fraction | None:
    if op == "mod" and left.denominator == 1 and right.denominator == 1:
        return Fraction(left.numerator // right.numerator)
    return None


def _reversed_subtraction(left: Fraction, op: str, right: Fraction) -> Fraction | None:
    return right - left if op == "-" and left < right else None


STEP_RULES: dict[str, Callable[[Fraction, str, Fraction], Fraction | None]] = {
    "mod_quotient": _mod_quotient,
    "reversed_subtraction": _reversed_subtraction,
}


def _replay(plan: list[PlanStep], rule: Callable[[Fraction, str, Fraction], Fraction | None]) -> list[str]:
    """The reference computation with ``rule`` applied at every step it covers; the other steps are redone on
    the values the earlier ones now give (e2h.world.flaws.replay_step, the rule a slip's later steps follow)."""
    values: list[Fraction] = []
    texts: list[str] = []
    for step in plan:
        left, right, value = replay_step(step, values)
        wrong = rule(left, step.op, right)
        if wrong is not None:
            value = wrong
        values.append(value)
        texts.append(step_text(left, step.op, right, value))
    return [*texts, answer_step(values[-1])]


def _left_to_right(problem: Problem) -> list[str] | None:
    """Read the expression's numbers and operators in written order, brackets dropped, each result feeding the
    next operator; a remainder problem then takes the (true) remainder of that result."""
    match = EXPRESSION_PROBLEM.match(problem.problem)
    if match is None:
        return None
    expression = match["compute"] or match["mod"]
    tokens = expression.replace("(", " ").replace(")", " ").split()
    if len(tokens) < 3 or len(tokens) % 2 == 0:
        return None
    try:
        value = Fraction(tokens[0])
        texts = []
        for op, number in zip(tokens[1::2], tokens[2::2]):
            operand = Fraction(number)
            if op not in ("+", "-", "*", "/") or (op == "/" and operand == 0):
                return None
            result = apply_op(op, value, operand)
            texts.append(step_text(value, op, operand, result))
            value = result
    except (ValueError, ZeroDivisionError):
        return None
    if match["m"] is not None:
        if value.denominator != 1 or value <= 0:
            return None
        modulus = Fraction(int(match["m"]))
        result = apply_op("mod", value, modulus)
        texts.append(step_text(value, "mod", modulus, result))
        value = result
    return [*texts, answer_step(value)]


def misconceived_steps(problem: Problem, rule: str) -> list[str] | None:
    """The solution an author holding misconception ``rule`` writes (reasoning steps and the answer step), or
    None when the rule does not change this problem's solution (the author then gets it right)."""
    if rule not in MISCONCEPTIONS:
        raise ValueError(f"unknown misconception {rule!r}; choose from {list(MISCONCEPTIONS)}")
    if is_restated(problem):
        return _restated_misconception(problem, rule)
    plan = plan_of(problem)
    reference = [step_text(s.left, s.op, s.right, s.value) for s in plan]
    steps = _left_to_right(problem) if rule == "left_to_right" else _replay(plan, STEP_RULES[rule])
    if steps is None or steps[:-1] == reference:
        return None
    return steps


def _restated_misconception(problem: Problem, rule: str) -> list[str] | None:
    """The same rules in the restated format (e2h.world.restated): each line the author writes under them."""
    tree = problem_tree(problem.problem)
    try:
        if rule == "left_to_right":
            lines, value = restated.left_to_right(tree)
        else:
            lines, value = restated.reduce_chain(tree, rule=STEP_RULES[rule])
    except (Stuck, ValueError):
        return None
    steps = [*lines, answer_step(value)]
    return None if steps == split_solution(problem.solution or "") else steps


def applicable(problem: Problem) -> list[str]:
    """The misconceptions that change this problem's solution."""
    return [rule for rule in MISCONCEPTIONS if misconceived_steps(problem, rule) is not None]
