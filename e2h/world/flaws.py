"""Flawed solutions with a known first wrong step: the PRM's negatives.

Each flaw changes one step of the reference solution and lets the change flow on, the way a model's slip
does: later steps redo their (correct) arithmetic on the wrong value, so the answer comes out wrong too::

    reference   7 * 6 = 42      42 - 5 = 37     # Answer 37
    arithmetic  7 * 6 = 43      43 - 5 = 38     # Answer 38      first error: step 0 (wrong result)
    operation   7 + 6 = 13      13 - 5 = 8      # Answer 8       first error: step 0 (wrong operation)
    operand     7 * 6 = 42      42 - 6 = 36     # Answer 36      first error: step 1 (a misread number)
    answer      7 * 6 = 42      42 - 5 = 37     # Answer 38      first error: step 2 (the answer step)
    misstep     7 * 5 = 35      35 - 5 = 30     # Answer 30      first error: step 0 (the wrong operands)

A misstep combines numbers the solution may use (the problem's numbers, earlier results), with the right
operation and right arithmetic, but not ones the expression lets it combine: "7 * 5 = 35" for 7 * 6 - 5 (while
"8 - 2 = 6" for 8 - 5 - 2 regroups the difference and is correct, so it is never a misstep). It is the
commonest first error of the world's policies on long problems, and the one a verifier can only catch by
knowing which value the problem needs next, so the PRM needs it among its negatives. Its default weight is 0:
the corpus's slips keep the four kinds above; ``world.flaw_weights`` turns it on for PRM data.

Every flawed step is one the step checker flags (a wrong value, or numbers the expression does not let it
combine; a misstep is drawn again when the checker accepts it); steps before it are the reference's, hence
correct.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from fractions import Fraction

from e2h.records import Problem
from e2h.text_format import format_solution, is_answer_step, split_solution
from e2h.world import restated
from e2h.world.checker import first_error, is_restated
from e2h.world.expression import Stuck, problem_tree
from e2h.world.generator import Node, answer_step, apply_op, step_text

KINDS = ("arithmetic", "operation", "operand", "answer", "misstep")
KIND_WEIGHTS = {"arithmetic": 0.5, "operation": 0.2, "operand": 0.15, "answer": 0.15, "misstep": 0.0}

_NUMBER = r"(-?\d+(?:/\d+)?)"
_REFERENCE_STEP = re.compile(rf"^{_NUMBER} (\+|-|\*|/|mod) {_NUMBER} = {_NUMBER}$")


@dataclass(frozen=True)
class PlanStep:
    """One reference step ``left op right = value``; ``*_from`` is the index of the step whose result an
    operand is (None: a number from the problem)."""

    left: Fraction
    op: str
    right: Fraction
    value: Fraction
    left_from: int | None
    right_from: int | None


@dataclass(frozen=True)
class FlawedSolution:
    steps: list[str]  # reasoning steps and the answer step, in e2h's text format
    first_error: int
    kind: str

    @property
    def text(self) -> str:
        return format_solution(self.steps)


def plan_of(problem: Problem) -> list[PlanStep]:
    """Recover the reference computation from the solution text. An operand equal to a not-yet-used earlier
    result is taken to be that result (each result feeds exactly one later step in the world's solutions)."""
    plan: list[PlanStep] = []
    unused: list[int] = []
    for step in split_solution(problem.solution or ""):
        if is_answer_step(step):
            continue
        match = _REFERENCE_STEP.match(step)
        if match is None:
            raise ValueError(f"problem {problem.id}: {step!r} is not a world reference step")
        left, op, right, value = Fraction(match[1]), match[2], Fraction(match[3]), Fraction(match[4])
        sources = []
        for operand in (left, right):
            source = next((j for j in reversed(unused) if plan[j].value == operand), None)
            if source is not None:
                unused.remove(source)
            sources.append(source)
        plan.append(PlanStep(left, op, right, value, sources[0], sources[1]))
        unused.append(len(plan) - 1)
    if not plan:
        raise ValueError(f"problem {problem.id}: no reference steps")
    return plan


def _integers_only(plan: list[PlanStep]) -> bool:
    return all(s.value.denominator == 1 and s.left.denominator == 1 and s.right.denominator == 1 for s in plan)


def near_misses(value: Fraction, rng: random.Random, integers: bool) -> list[Fraction]:
    """Plausible wrong results: off by one or two, a slipped tens digit, a numerator / denominator slip."""
    if integers:
        deltas = [1, -1, 2, -2, 10, -10, 3, -3]
        rng.shuffle(deltas)
        return [value + d for d in deltas]
    p, q = value.numerator, value.denominator
    candidates = [Fraction(p + 1, q), Fraction(p - 1, q), Fraction(p, q + 1), Fraction(p * 2, q),
                  Fraction(p + 2, q)] + ([Fraction(p, q - 1)] if q > 2 else [])
    rng.shuffle(candidates)
    return candidates


def replay_step(step: PlanStep, values: list[Fraction]) -> tuple[Fraction, Fraction, Fraction]:
    """(left, right, value) of a reference step redone on the values earlier steps now give: the operands that
    come from earlier results take those results, and the arithmetic is redone."""
    left = values[step.left_from] if step.left_from is not None else step.left
    right = values[step.right_from] if step.right_from is not None else step.right
    if step.op in ("/", "mod") and right == 0:
        right = step.right
    # exact, even where a wrong value no longer divides evenly ("29 / 4 = 29/4"): rounding would often land back
    # on the right value and hide the slip; there is no remainder of a fraction, so that step keeps its value
    value = apply_op(step.op, left, right) if step.op != "mod" or left.denominator == 1 else step.value
    return left, right, value


def _propagate(plan: list[PlanStep], index: int, new_value: Fraction,
               new_step: tuple[Fraction, str, Fraction] | None = None) -> tuple[list[str], Fraction]:
    """Steps with step ``index`` changed (its operands / op to ``new_step`` if given, its result to
    ``new_value``) and every later step recomputed on the values it now receives."""
    values: list[Fraction] = []
    texts: list[str] = []
    for j, step in enumerate(plan):
        left, right, value = replay_step(step, values)
        op = step.op
        if j == index:
            if new_step is not None:
                left, op, right = new_step
            value = new_value
        elif j < index:
            value = step.value
        values.append(value)
        texts.append(step_text(left, op, right, value))
    return texts, values[-1]


def _needed(plan: list[PlanStep], answer: Fraction) -> set[Fraction]:
    return {s.value for s in plan} | {answer}


def make_flaw(problem: Problem, plan: list[PlanStep], kind: str, index: int,
              rng: random.Random) -> FlawedSolution | None:
    """One flaw of ``kind`` at reasoning step ``index`` (ignored for "answer"); None if that spot has none."""
    integers = _integers_only(plan)
    answer = plan[-1].value
    needed = _needed(plan, answer)
    step = plan[index]
    if kind == "answer":
        texts = [step_text(s.left, s.op, s.right, s.value) for s in plan]
        wrong = next((v for v in near_misses(answer, rng, integers) if v != answer), None)
        return FlawedSolution(texts + [answer_step(wrong)], first_error=len(plan), kind=kind)
    if kind == "arithmetic":
        for wrong in near_misses(step.value, rng, integers):
            if wrong not in needed and (wrong > 0 or step.value <= 0):
                texts, final = _propagate(plan, index, wrong)
                return FlawedSolution(texts + [answer_step(final)], first_error=index, kind=kind)
        return None
    if kind == "operation":
        if step.op not in ("+", "-", "*"):
            return None
        for op in rng.sample(["+", "-", "*"], 3):
            wrong = apply_op(op, step.left, step.right)
            if op != step.op and wrong not in needed and wrong > 0:
                texts, final = _propagate(plan, index, wrong, (step.left, op, step.right))
                return FlawedSolution(texts + [answer_step(final)], first_error=index, kind=kind)
        return None
    if kind == "operand":
        slots = [i for i, src in enumerate((step.left_from, step.right_from)) if src is None]
        if not slots or step.op == "mod":
            return None
        slot = rng.choice(slots)
        original = (step.left, step.right)[slot]
        for misread in near_misses(original, rng, original.denominator == 1):
            if misread <= 0 or (step.op == "/" and (step.left / misread if slot else misread / step.right)
                                .denominator != 1):
                continue
            left, right = (misread, step.right) if slot == 0 else (step.left, misread)
            wrong = apply_op(step.op, left, right)
            if wrong not in needed and wrong > 0:
                texts, final = _propagate(plan, index, wrong, (left, step.op, right))
                return FlawedSolution(texts + [answer_step(final)], first_error=index, kind=kind)
        return None
    if kind == "misstep":
        if step.op == "mod":  # the modulus is the problem's last step; a wrong one is an "operand" flaw
            return None
        available = _available_operands(plan, index)
        pairs = [(x, y) for x in available for y in available if (x, y) != (step.left, step.right)]
        rng.shuffle(pairs)
        for left, right in pairs:
            if step.op == "/" and (right == 0 or (integers and (left / right).denominator != 1)):
                continue
            wrong = apply_op(step.op, left, right)
            if wrong not in needed and (wrong > 0 or step.value <= 0):
                texts, final = _propagate(plan, index, wrong, (left, step.op, right))
                # "8 - 2 = 6" in 8 - 5 - 2 regroups the difference: a correct step, so no misstep
                if first_error(problem, texts) == index:
                    return FlawedSolution(texts + [answer_step(final)], first_error=index, kind=kind)
        return None
    raise ValueError(f"unknown flaw kind {kind!r}; expected one of {KINDS}")


def make_restated_flaw(problem: Problem, tree: Node, kind: str, index: int,
                       rng: random.Random) -> FlawedSolution | None:
    """One flaw of ``kind`` at step ``index`` of a restated solution (e2h.world.restated), the steps after it
    going on correctly from what it wrote; None if that spot has none. The kinds as in the fact format:
    arithmetic (a wrong value), operation (another operation on the same numbers), operand (a number miscopied
    from the line before), misstep (an operation done out of order: "3 + 4 * 5" -> "7 * 5"), answer."""

    def detour(step: int, current: Node) -> restated.Step | None:
        if step != index:
            return None
        path = restated.ready_path(current)
        node = restated.node_at(current, path)
        if kind in ("arithmetic", "operation"):
            if kind == "arithmetic":
                wrongs = [(node.op, w) for w in near_misses(node.value, rng, node.value.denominator == 1)]
            else:
                wrongs = [(op, apply_op(op, node.left.value, node.right.value))
                          for op in rng.sample(["+", "-", "*"], 3) if op != node.op and node.op != "mod"]
            op, wrong = next(((o, w) for o, w in wrongs if w != node.value and (w > 0 or node.value <= 0)),
                             (None, None))
            if wrong is None:
                return None
            return (restated.replace_at(current, path, Node(wrong)),
                    step_text(node.left.value, op, node.right.value, wrong))
        if kind == "operand":
            leaf_path = rng.choice(_leaf_paths(current))
            leaf = restated.node_at(current, leaf_path)
            misread = next((m for m in near_misses(leaf.value, rng, True) if m > 0), None)
            return None if misread is None else restated.reduce_step(
                restated.replace_at(current, leaf_path, Node(misread)))
        if kind == "misstep":
            options = restated.out_of_order(current)
            return rng.choice(options) if options else None
        raise ValueError(f"unknown flaw kind {kind!r}; expected one of {KINDS}")

    try:
        if kind == "answer":
            lines, value = restated.reduce_chain(tree)
            wrong = next(v for v in near_misses(value, rng, value.denominator == 1) if v != value)
            steps = [*lines, answer_step(wrong)]
        else:
            lines, value = restated.reduce_chain(tree, detour=detour)
            # the same answer: no detour was taken, or the remainder absorbed the slip (no wrong answer to learn)
            if value == tree.value:
                return None
            steps = [*lines, answer_step(value)]
    except Stuck:
        return None
    error = first_error(problem, steps)
    return None if error is None else FlawedSolution(steps, first_error=error, kind=kind)


def _leaf_paths(tree: Node, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if tree.op is None:
        return [path]
    return _leaf_paths(tree.left, (*path, "L")) + _leaf_paths(tree.right, (*path, "R"))


def _available_operands(plan: list[PlanStep], index: int) -> list[Fraction]:
    """Values a solution may combine at step ``index``: the problem's numbers and the earlier steps' results
    (each once, in order of appearance)."""
    values = [v for s in plan for v, src in ((s.left, s.left_from), (s.right, s.right_from)) if src is None]
    values += [s.value for s in plan[:index]]
    return list(dict.fromkeys(values))


def flawed_solutions(problem: Problem, rng: random.Random, k: int,
                     weights: dict[str, float] | None = None) -> list[FlawedSolution]:
    """Up to ``k`` distinct flawed solutions of a world problem, kinds drawn by ``weights`` (default
    KIND_WEIGHTS; a kind left out has weight 0), the wrong step uniform over the reasoning steps."""
    weights = KIND_WEIGHTS if weights is None else weights
    unknown = set(weights) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown flaw kind(s) {sorted(unknown)}; expected some of {KINDS}")
    kind_weights = [weights.get(kind, 0.0) for kind in KINDS]
    if is_restated(problem):
        tree = problem_tree(problem.problem)
        steps = restated.operations(tree)

        def draw(kind: str) -> FlawedSolution | None:
            return make_restated_flaw(problem, tree, kind, rng.randrange(steps), rng)
    else:
        plan = plan_of(problem)

        def draw(kind: str) -> FlawedSolution | None:
            return make_flaw(problem, plan, kind, rng.randrange(len(plan)), rng)
    found: dict[str, FlawedSolution] = {}
    for _ in range(20 * k):
        if len(found) >= k:
            break
        kind = rng.choices(KINDS, weights=kind_weights)[0]
        flaw = draw(kind)
        if flaw is not None:
            found.setdefault(flaw.text, flaw)
    return list(found.values())
