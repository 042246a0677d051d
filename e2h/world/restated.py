"""Restated solutions (``world.step_format: restated``): each step does one operation, as in the fact format, and
then rewrites the whole remaining expression, so the state of the computation is on the page::

    problem     Compute 3 + 4 * 5 - 6.                                  (answer 17)
    fact        4 * 5 = 20           3 + 20 = 23       23 - 6 = 17      # Answer 17
    restated    4 * 5 = 20           3 + 20 = 23       23 - 6 = 17      # Answer 17
                3 + 20 - 6           23 - 6

    problem     Find the remainder when 9 * 8 + 11 is divided by 7.
    restated    9 * 8 = 72           72 + 11 = 83      83 mod 7 = 6     # Answer 6
                (72 + 11) mod 7      83 mod 7

(one step per blank-line block; its two lines are separated by a single newline; the last step has nothing left
to restate). Why: in the fact format, whether "3 + 8 = 11" is right depends on which value the problem needs
next, which a reader rebuilds from the whole problem and every earlier step in one pass; measured on the demo,
a PRM never learned to see such a step even on the levels it trained on, and it is the commonest first error of
the policy on long problems. A restated step is judged against the block before it: the operation is one that
stands in the last line, its value is right, and the new line is the old one with that operation replaced.
The check is local and the same on a long problem as on a short one. (Restating alone, without the operation,
was measured first: the tiny policy then computes each value with its operands far back in the text and its
accuracy collapsed, majority@16 23% on levels 1-3.)

A restated step is correct (e2h.world.checker) when its operation's arithmetic is right, and what is left
parses, has fewer operations than the last correct step's and still evaluates to the problem's answer: nothing
was lost, miscopied or miscomputed on the way.

Only Arithmetic and Modular Arithmetic problems are expressions this module reads (``Compute E.``,
``Find the remainder when E is divided by m.``).
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Callable

from e2h.world.expression import (Malformed, Stuck, combine, evaluate, parse_expression, problem_tree,
                                  tokenize)
from e2h.world.generator import Node, answer_step, step_text

SUBJECTS = ("Arithmetic", "Modular Arithmetic")


Path = tuple[str, ...]  # "L" / "R" moves from the root to a node


def operations(tree: Node) -> int:
    return 0 if tree.op is None else 1 + operations(tree.left) + operations(tree.right)


# ----------------------------------------------------------------------------------------------- reducing
def ready_path(tree: Node) -> Path | None:
    """The first operation in evaluation (post-)order whose operands are both numbers: the one to do next."""
    if tree.op is None:
        return None
    for side, child in (("L", tree.left), ("R", tree.right)):
        path = ready_path(child)
        if path is not None:
            return (side, *path)
    return ()


def node_at(tree: Node, path: Path) -> Node:
    for side in path:
        tree = tree.left if side == "L" else tree.right
    return tree


def replace_at(tree: Node, path: Path, new: Node) -> Node:
    """``tree`` with the node at ``path`` replaced; the values above it are recomputed from the new one."""
    if not path:
        return new
    if path[0] == "L":
        return combine(replace_at(tree.left, path[1:], new), tree.op, tree.right)
    return combine(tree.left, tree.op, replace_at(tree.right, path[1:], new))


# (left, op, right) -> the value an author writes instead of the true one, or None to write the true one
Rule = Callable[[Fraction, str, Fraction], Fraction | None]
# one step as an author writes it: the expression after it, and the operation done as "a op b = c"
Step = tuple[Node, str]
# (step index, expression before the step) -> the step the author writes instead of the usual one, or None
Detour = Callable[[int, Node], "Step | None"]


def step_text_of(after: Node, fact: str) -> str:
    """``"4 * 5 = 20\n3 + 20 - 6"``: the operation, then what is left (the last step has nothing left)."""
    return fact if after.op is None else f"{fact}\n{after.render()}"


def reduce_step(tree: Node, rule: Rule | None = None) -> Step:
    """Do the next operation (by ``rule``'s value where it gives one)."""
    path = ready_path(tree)
    node = node_at(tree, path)
    value = rule(node.left.value, node.op, node.right.value) if rule is not None else None
    if value is None:
        value = evaluate(node.left.value, node.op, node.right.value)
    return replace_at(tree, path, Node(value)), step_text(node.left.value, node.op, node.right.value, value)


def reduce_chain(tree: Node, rule: Rule | None = None, detour: Detour | None = None) -> tuple[list[str], Fraction]:
    """The steps of reducing ``tree`` to one number, and that number. ``rule`` changes what an operation gives
    wherever it applies (a misconception); ``detour`` replaces one step (a slip), and the steps after it go on,
    correctly, from what it wrote."""
    steps: list[str] = []
    while tree.op is not None:
        done = detour(len(steps), tree) if detour is not None else None
        tree, fact = done if done is not None else reduce_step(tree, rule)
        steps.append(step_text_of(tree, fact))
        if len(steps) > 64:
            raise Stuck("a chain that does not end")
    return steps, tree.value


def restated_solution(problem_text: str) -> list[str]:
    """The reference solution's steps (answer step last) of an Arithmetic or Modular Arithmetic problem."""
    tree = problem_tree(problem_text)
    if tree is None:
        raise ValueError(f"restated steps need an Arithmetic or Modular Arithmetic problem, got {problem_text!r}")
    lines, value = reduce_chain(tree)
    return [*lines, answer_step(value)]


def out_of_order(tree: Node) -> list[Step]:
    """Trees an author writes by doing an operation whose operands stand side by side in the text but which
    changes the expression's value ("3 + 4 * 5" -> "7 * 5", "8 - 5 - 2" -> "8 - 3"): the written text reparsed,
    precedence and all. An operation done early that keeps the value ("3 + 14 - 6" -> "3 + 8") is no error."""
    tokens = tokenize(tree.render())
    results = []
    for i in range(1, len(tokens) - 1):
        left, op, right = tokens[i - 1], tokens[i], tokens[i + 1]
        if op not in ("+", "-", "*", "/", "mod") or not (left[0].isdigit() and right[0].isdigit()):
            continue
        if i >= 2 and tokens[i - 2] == "-" and (i == 2 or tokens[i - 3] in ("(", "+", "-", "*", "/", "mod")):
            continue  # the left number is negative: "-5 + 3" is not "5 + 3"
        try:
            value = evaluate(Fraction(int(left)), op, Fraction(int(right)))
            if value < 0 or value.denominator != 1:
                continue
            new = parse_expression(_drop_lone_brackets(" ".join([*tokens[:i - 1], str(value), *tokens[i + 2:]])))
        except (Malformed, Stuck):
            continue
        if new.value != tree.value:
            results.append((new, f"{left} {op} {right} = {value}"))
    return results


def _drop_lone_brackets(text: str) -> str:
    while True:
        new = re.sub(r"\( (-?\d+) \)", r"\1", text)
        if new == text:
            return text
        text = new


def left_to_right(tree: Node) -> tuple[list[str], Fraction]:
    """The steps of an author who ignores brackets and precedence: always the leftmost operation first (a
    remainder problem's expression is read that way, then its remainder taken)."""
    modulus = None
    if tree.op == "mod":
        tree, modulus = tree.left, tree.right.value
    tokens = [t for t in tokenize(tree.render()) if t not in ("(", ")")]
    if tokens and tokens[0] == "-":
        tokens = [f"-{tokens[1]}", *tokens[2:]]
    steps = []
    while len(tokens) > 1:
        value = evaluate(Fraction(tokens[0]), tokens[1], Fraction(tokens[2]))
        if value.denominator != 1:
            raise Stuck("a fraction mid-chain")
        fact = f"{tokens[0]} {tokens[1]} {tokens[2]} = {value}"
        tokens = [str(value), *tokens[3:]]
        left = " ".join(tokens)
        if modulus is not None:
            left = f"({left}) mod {modulus}" if len(tokens) > 1 else f"{left} mod {modulus}"
        steps.append(f"{fact}\n{left}" if modulus is not None or len(tokens) > 1 else fact)
    value = Fraction(tokens[0])
    if modulus is not None:
        remainder = evaluate(value, "mod", modulus)
        steps.append(step_text(value, "mod", modulus, remainder))
        value = remainder
    return steps, value
