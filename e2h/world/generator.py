"""The leveled world's problems: four subjects, five levels, every solution a chain of small checkable steps.

A level adds steps of the SAME kinds and somewhat larger numbers, so a model (and a PRM) that learned the step
kinds on levels 1-3 meets familiar steps on levels 4-5, just more of them::

    level 1  Arithmetic          Compute 7 * 6 - 5.
             solution            7 * 6 = 42\\n\\n42 - 5 = 37\\n\\n# Answer\\n\\n37
    level 3  Linear Equations    Solve for x: 3(2(x + 5) - 7) + 4 = 49.
             solution            49 - 4 = 45\\n\\n45 / 3 = 15\\n\\n15 + 7 = 22\\n\\n22 / 2 = 11\\n\\n11 - 5 = 6\\n\\n# Answer\\n\\n6
    level 2  Modular Arithmetic  Find the remainder when 9 * 8 + 11 is divided by 7.
             solution            9 * 8 = 72\\n\\n72 + 11 = 83\\n\\n83 mod 7 = 6\\n\\n# Answer\\n\\n6
    level 2  Fractions           Compute 1/2 + 2/3 - 1/4.
             solution            1/2 + 2/3 = 7/6\\n\\n7/6 - 1/4 = 11/12\\n\\n# Answer\\n\\n\\frac{11}{12}

Every reasoning step is ``"<a> <op> <b> = <value>"``, where ``a`` and ``b`` are numbers from the problem or
results of earlier steps (operators always have spaces around them; a fraction ``11/12`` never does), and
the answer is an integer or ``\\frac{p}{q}`` in lowest terms. Generation is seeded per (seed, level, subject),
so a split's problems do not change when another split's size does.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Iterator

from e2h.data.rows import normalize_problem_text
from e2h.records import Problem
from e2h.text_format import format_solution

LEVELS = (1, 2, 3, 4, 5)
SUBJECTS = ("Arithmetic", "Linear Equations", "Modular Arithmetic", "Fractions")
SLUGS = {"Arithmetic": "arithmetic", "Linear Equations": "linear", "Modular Arithmetic": "modular",
         "Fractions": "fractions"}

# Per-level knobs, index 0 = level 1. Hard levels: more steps, larger numbers, more nesting.
ARITH_OPS = (2, 3, 4, 5, 6)  # operations in an Arithmetic expression
LEAF_MAX = (9, 12, 15, 20, 25)  # largest number written in the problem
VALUE_CAP = (100, 150, 200, 300, 400)  # largest intermediate value
MUL_SMALL = (9, 9, 9, 12, 12)  # a product needs one factor at most this
NEST_P = (0.0, 0.25, 0.35, 0.45, 0.55)  # chance an operand is itself a parenthesised operation
MOD_OPS = (1, 2, 3, 4, 5)  # operations before the final "mod"
MOD_MAX = (9, 10, 11, 12, 13)
LINEAR_LAYERS = (2, 3, 4, 5, 6)  # operations wrapped around x, peeled one per step
X_MAX = (9, 10, 12, 14, 16)
FRACTION_OPS = (1, 2, 3, 4, 5)
DEN_MAX = (7, 7, 8, 9, 10)  # largest denominator written in the problem
FRACTION_DEN_CAP = (30, 30, 36, 48, 60)  # largest denominator of an intermediate result
FRACTION_NUM_CAP = (30, 40, 50, 60, 80)

PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "mod": 2}


@dataclass(frozen=True)
class Scale:
    """How large the numbers of Arithmetic and Modular Arithmetic get, and how often an operand is a bracketed
    operation, per level (index 0 = level 1; world.leaf_max / value_cap / nest_p). Small numbers make every step
    one of a few hundred arithmetic facts a tiny model can learn from a few thousand examples, so the levels
    differ in their number of steps."""

    leaf_max: tuple[int, ...] = LEAF_MAX
    value_cap: tuple[int, ...] = VALUE_CAP
    nest_p: tuple[float, ...] = NEST_P


# ----------------------------------------------------------------------------------------------- number text
def format_number(value: Fraction) -> str:
    """A number as a step writes it: ``21``, ``-7``, ``11/12``, ``-3/4``."""
    if value.denominator == 1:
        return str(value.numerator)
    return f"{value.numerator}/{value.denominator}"


def latex_answer(value: Fraction) -> str:
    """A final answer as the MATH grader reads it: ``21``, ``-7``, ``\\frac{11}{12}``, ``-\\frac{3}{4}``."""
    if value.denominator == 1:
        return str(value.numerator)
    sign = "-" if value < 0 else ""
    return f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"


def answer_step(value: Fraction) -> str:
    """The answer step of a world solution: ``"# Answer\\n\\n\\frac{11}{12}"``."""
    return f"# Answer\n\n{latex_answer(value)}"


def apply_op(op: str, a: Fraction, b: Fraction) -> Fraction:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        return a / b
    if op == "mod":
        return Fraction(a.numerator % b.numerator)
    raise ValueError(f"unknown operation {op!r}")


def step_text(a: Fraction, op: str, b: Fraction, value: Fraction) -> str:
    return f"{format_number(a)} {op} {format_number(b)} = {format_number(value)}"


# ----------------------------------------------------------------------------------------------- expressions
@dataclass(frozen=True)
class Node:
    """An expression tree; a leaf has ``op`` None. ``value`` is exact."""

    value: Fraction
    op: str | None = None
    left: "Node | None" = None
    right: "Node | None" = None

    def render(self, parent_prec: int = 0, is_right: bool = False) -> str:
        """Problem text with the parentheses the step order needs (a compound right operand of equal precedence
        is always bracketed, so ``a - (b + c)`` and ``a + (b + c)`` both say which sum comes first)."""
        if self.op is None:
            return format_number(self.value)
        prec = PRECEDENCE[self.op]
        text = f"{self.left.render(prec)} {self.op} {self.right.render(prec, is_right=True)}"
        return f"({text})" if prec < parent_prec or (is_right and prec == parent_prec) else text

    def steps(self) -> list[str]:
        """One step per operation, in evaluation (post-)order."""
        if self.op is None:
            return []
        return [*self.left.steps(), *self.right.steps(),
                step_text(self.left.value, self.op, self.right.value, self.value)]


class Rejected(Exception):
    """A random draw broke a constraint; the caller draws again."""


@dataclass(frozen=True)
class TreeSpec:
    ops: tuple[str, ...]
    n_ops: int
    leaf: Callable[[random.Random], Fraction]
    nest_p: float
    ok: Callable[[Fraction, bool], bool]  # (value, is_root) -> allowed
    mul_small: int = 9
    swap_p: float = 0.25  # chance the new operand goes on the left


def _combine(rng: random.Random, spec: TreeSpec, a: Node, op: str, b: Node, is_root: bool) -> Node:
    if op == "*" and min(abs(a.value), abs(b.value)) > spec.mul_small and a.value.denominator == 1:
        raise Rejected
    if op == "/" and (b.value == 0 or (a.value / b.value).denominator != 1):
        raise Rejected
    value = apply_op(op, a.value, b.value)
    if not spec.ok(value, is_root):
        raise Rejected
    return Node(value, op, a, b)


def _operand(rng: random.Random, spec: TreeSpec, op: str, current: Node, allow_nest: bool) -> Node:
    if op == "/":  # an exact division: the divisor is a small divisor of the current value
        divisors = [d for d in range(2, 13) if current.value.denominator == 1 and current.value % d == 0]
        if not divisors:
            raise Rejected
        return Node(Fraction(rng.choice(divisors)))
    if allow_nest and rng.random() < spec.nest_p:
        inner_op = rng.choice([o for o in spec.ops if o != "/"])
        return _combine(rng, spec, Node(spec.leaf(rng)), inner_op, Node(spec.leaf(rng)), is_root=False)
    return Node(spec.leaf(rng))


def random_tree(rng: random.Random, spec: TreeSpec, tries: int = 200) -> Node:
    """Grow an expression by ``spec.n_ops`` operations; every intermediate value satisfies ``spec.ok``."""
    for _ in range(tries):
        try:
            node = Node(spec.leaf(rng))
            used = 0
            while used < spec.n_ops:
                op = rng.choice(spec.ops)
                nest = spec.n_ops - used >= 2
                other = _operand(rng, spec, op, node, nest)
                used += 1 if other.op is None else 2
                is_root = used == spec.n_ops
                if op != "/" and rng.random() < spec.swap_p:
                    node = _combine(rng, spec, other, op, node, is_root)
                else:
                    node = _combine(rng, spec, node, op, other, is_root)
            return node
        except Rejected:
            continue
    raise RuntimeError(f"no expression satisfied the constraints in {tries} draws: {spec}")


# ----------------------------------------------------------------------------------------------- subjects
@dataclass(frozen=True)
class Drawn:
    problem: str
    steps: list[str]
    answer: Fraction


def _integer_leaf(level: int, scale: Scale) -> Callable[[random.Random], Fraction]:
    return lambda rng: Fraction(rng.randint(2, scale.leaf_max[level - 1]))


def draw_arithmetic(rng: random.Random, level: int, scale: Scale = Scale()) -> Drawn:
    cap = scale.value_cap[level - 1]
    spec = TreeSpec(ops=("+", "-", "*", "+", "-", "*", "/"), n_ops=ARITH_OPS[level - 1],
                    leaf=_integer_leaf(level, scale),
                    nest_p=scale.nest_p[level - 1], mul_small=MUL_SMALL[level - 1],
                    # only the final result may be negative: a negative operand mid-chain reads badly
                    ok=lambda v, root: v.denominator == 1 and abs(v) <= cap and (root and v != 0 or v >= 1))
    tree = random_tree(rng, spec)
    return Drawn(f"Compute {tree.render()}.", tree.steps(), tree.value)


def draw_modular(rng: random.Random, level: int, scale: Scale = Scale()) -> Drawn:
    cap = scale.value_cap[level - 1]
    spec = TreeSpec(ops=("+", "-", "*"), n_ops=MOD_OPS[level - 1], leaf=_integer_leaf(level, scale),
                    nest_p=scale.nest_p[level - 1], mul_small=MUL_SMALL[level - 1],
                    ok=lambda v, root: v.denominator == 1 and 1 <= v <= cap)
    tree = random_tree(rng, spec)
    while tree.value < 4:  # a remainder of a number below the modulus is no computation
        tree = random_tree(rng, spec)
    m = Fraction(rng.randint(3, min(MOD_MAX[level - 1], int(tree.value) - 1)))
    rest = apply_op("mod", tree.value, m)
    steps = [*tree.steps(), step_text(tree.value, "mod", m, rest)]
    return Drawn(f"Find the remainder when {tree.render()} is divided by {m}.", steps, rest)


def draw_fractions(rng: random.Random, level: int, scale: Scale = Scale()) -> Drawn:  # noqa: ARG001 own sizes
    den_max, den_cap, num_cap = DEN_MAX[level - 1], FRACTION_DEN_CAP[level - 1], FRACTION_NUM_CAP[level - 1]

    def leaf(r: random.Random) -> Fraction:
        den = r.randint(2, den_max)
        return Fraction(r.choice([n for n in range(1, den) if math.gcd(n, den) == 1]), den)

    spec = TreeSpec(ops=("+", "-", "*"), n_ops=FRACTION_OPS[level - 1], leaf=leaf, nest_p=NEST_P[level - 1],
                    ok=lambda v, root: v > 0 and v.denominator <= den_cap and v.numerator <= num_cap)
    tree = random_tree(rng, spec)
    return Drawn(f"Compute {tree.render()}.", tree.steps(), tree.value)


def draw_linear(rng: random.Random, level: int, scale: Scale = Scale()) -> Drawn:  # noqa: ARG001 own sizes
    """``a(x + b) - c = d`` style: layers alternate multiply / add-or-subtract around x; steps peel them off."""
    cap = VALUE_CAP[level - 1]  # six layers at level 5 need room: a small cap would reject every draw
    for _ in range(200):
        x = rng.randint(1, X_MAX[level - 1])
        value, text, layers = x, "x", []
        multiply = rng.random() < 0.5
        try:
            for _ in range(LINEAR_LAYERS[level - 1]):
                if multiply:
                    a = rng.randint(2, 3 + level)
                    value *= a
                    text = f"{a}x" if text == "x" else f"{a}({text})"
                    layers.append(("*", a))
                else:
                    b = rng.randint(1, 5 + 3 * level)
                    op = rng.choice("+-")
                    value = value + b if op == "+" else value - b
                    text = f"{text} {op} {b}"
                    layers.append((op, b))
                if not 1 <= value <= cap:
                    raise Rejected
                multiply = not multiply
        except Rejected:
            continue
        steps, current = [], Fraction(value)
        undo = {"*": "/", "+": "-", "-": "+"}
        for op, n in reversed(layers):
            nxt = apply_op(undo[op], current, Fraction(n))
            steps.append(step_text(current, undo[op], Fraction(n), nxt))
            current = nxt
        assert current == x
        return Drawn(f"Solve for x: {text} = {value}.", steps, Fraction(x))
    raise RuntimeError(f"no linear equation satisfied the constraints at level {level}")


DRAWERS: dict[str, Callable[[random.Random, int, Scale], Drawn]] = {
    "Arithmetic": draw_arithmetic,
    "Linear Equations": draw_linear,
    "Modular Arithmetic": draw_modular,
    "Fractions": draw_fractions,
}


# ----------------------------------------------------------------------------------------------- problems
def make_problem(drawn: Drawn, problem_id: str, level: int, subject: str, step_format: str = "fact") -> Problem:
    """A world problem whose reference solution is written in ``step_format``: "fact" steps ("4 * 5 = 20") or
    "restated" ones (the whole remaining expression, e2h.world.restated)."""
    answer = latex_answer(drawn.answer)
    if step_format == "restated":
        from e2h.world.restated import restated_solution  # restated builds on this module's Node

        return Problem(id=problem_id, problem=drawn.problem, answer=answer, level=level, subject=subject,
                       solution=format_solution(restated_solution(drawn.problem)), source="world")
    return Problem(id=problem_id, problem=drawn.problem, answer=answer, level=level, subject=subject,
                   solution=format_solution(drawn.steps, answer), source="world")


def draw_stream(seed: int, level: int, subject: str, scale: Scale = Scale()) -> Iterator[Drawn]:
    """An endless seeded stream of one subject's problems at one level (duplicates included)."""
    rng = random.Random(f"e2h-world/{seed}/{level}/{subject}")  # str seeds hash the same in every process
    draw = DRAWERS[subject]
    while True:
        yield draw(rng, level, scale)


class TooFewProblems(ValueError):
    """A level and subject ran out of distinct problems for the requested count."""


def unique_problems(seed: int, level: int, subjects: list[str], count: int, seen: set[str],
                    max_misses: int = 20000, scale: Scale = Scale()) -> Iterator[tuple[str, Drawn]]:
    """``count`` (subject, problem) pairs, subjects round-robin, none whose text is already in ``seen``."""
    streams = {subject: draw_stream(seed, level, subject, scale) for subject in subjects}
    misses = 0
    for index in range(count):
        subject = subjects[index % len(subjects)]
        while True:
            drawn = next(streams[subject])
            key = normalize_problem_text(drawn.problem)
            if key not in seen:
                seen.add(key)
                break
            misses += 1
            if misses > max_misses:
                raise TooFewProblems(f"the world has too few distinct level-{level} {subject} problems for the "
                                 f"requested sizes; lower world.*_per_level")
        yield subject, drawn
