"""Restated solutions (``world.step_format: restated``): each step rewrites the whole remaining expression with
one operation replaced by its value, so the state of the computation is on the page::

    problem     Compute 3 + 4 * 5 - 6.                              (answer 17)
    fact        4 * 5 = 20     3 + 20 = 23     23 - 6 = 17     # Answer 17
    restated    3 + 20 - 6     23 - 6          17              # Answer 17

    problem     Find the remainder when 9 * 8 + 11 is divided by 7.
    restated    (72 + 11) mod 7     83 mod 7     6             # Answer 6

Why a second format: in the fact format, whether "3 + 8 = 11" is right depends on which value the problem needs
next, which a reader rebuilds from the whole problem and every earlier step in one pass; measured on the demo,
a PRM never learned to see such a step even on the levels it trained on, and it is the commonest first error of
the policy on long problems. A restated step is judged against the line before it: one operation replaced by
its value, everything else copied. The check is local and the same on a long problem as on a short one.

A restated step is correct (e2h.world.checker) when it parses, has fewer operations than the last correct line,
and still evaluates to the problem's answer: nothing was lost, miscopied or miscomputed on the way.

Only Arithmetic and Modular Arithmetic problems are expressions this module reads (``Compute E.``,
``Find the remainder when E is divided by m.``).
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Callable

from e2h.world.checker import EXPRESSION_PROBLEM, Malformed, tokenize
from e2h.world.generator import Node, apply_op, latex_answer

SUBJECTS = ("Arithmetic", "Modular Arithmetic")


Path = tuple[str, ...]  # "L" / "R" moves from the root to a node


class Stuck(ValueError):
    """A (wrong) chain reached an operation with no value: a division by zero, a remainder of a fraction."""


# ----------------------------------------------------------------------------------------------- reading
class _TreeParser:
    """expr := term (('+'|'-') term)* ; term := unary (('*'|'/'|'mod') unary)* ; unary := '-' unary | '(' expr ')'
    | INT, left-associative, so parsing a rendered tree gives back the same tree."""

    def __init__(self, tokens: list[str]):
        self.tokens, self.pos = tokens, 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        if self.pos >= len(self.tokens):
            raise Malformed("unexpected end")
        self.pos += 1
        return self.tokens[self.pos - 1]

    def expr(self) -> Node:
        node = self.term()
        while self.peek() in ("+", "-"):
            node = combine(node, self.take(), self.term())
        return node

    def term(self) -> Node:
        node = self.unary()
        while self.peek() in ("*", "/", "mod"):
            node = combine(node, self.take(), self.unary())
        return node

    def unary(self) -> Node:
        token = self.take()
        if token == "-":
            inner = self.unary()
            if inner.op is not None:
                raise Malformed("a minus sign before a bracket")
            return Node(-inner.value)
        if token == "(":
            node = self.expr()
            if self.take() != ")":
                raise Malformed("unbalanced parenthesis")
            return node
        if token[0] in "0123456789":
            return Node(Fraction(int(token)))
        raise Malformed(f"unexpected {token!r}")


def combine(left: Node, op: str, right: Node) -> Node:
    return Node(evaluate(left.value, op, right.value), op, left, right)


def evaluate(left: Fraction, op: str, right: Fraction) -> Fraction:
    if op in ("/", "mod") and right == 0 or op == "mod" and (left.denominator != 1 or right.denominator != 1
                                                             or right < 0):
        raise Stuck(f"{left} {op} {right}")
    return apply_op(op, left, right)


def parse_expression(text: str) -> Node:
    parser = _TreeParser(tokenize(text))
    node = parser.expr()
    if parser.pos != len(parser.tokens):
        raise Malformed("trailing tokens")
    return node


def problem_tree(problem_text: str) -> Node | None:
    """The expression a problem asks for, a remainder problem's ``mod`` at the root; None for other subjects."""
    match = EXPRESSION_PROBLEM.match(problem_text)
    if match is None:
        return None
    tree = parse_expression(match["compute"] or match["mod"])
    if match["m"] is not None:
        tree = combine(tree, "mod", Node(Fraction(int(match["m"]))))
    return tree


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
# (step index, tree before the step) -> the tree the author writes at that step, or None for the usual reduction
Detour = Callable[[int, Node], Node | None]


def reduce_chain(tree: Node, rule: Rule | None = None, detour: Detour | None = None) -> tuple[list[str], Fraction]:
    """The restated lines of reducing ``tree`` to one number, and that number. ``rule`` changes what an
    operation gives wherever it applies (a misconception); ``detour`` replaces one step (a slip), and the steps
    after it go on, correctly, from what it wrote."""
    lines: list[str] = []
    while tree.op is not None:
        changed = detour(len(lines), tree) if detour is not None else None
        if changed is None:
            path = ready_path(tree)
            node = node_at(tree, path)
            value = rule(node.left.value, node.op, node.right.value) if rule is not None else None
            changed = replace_at(tree, path, Node(evaluate(node.left.value, node.op, node.right.value)
                                                  if value is None else value))
        tree = changed
        lines.append(tree.render())
        if len(lines) > 64:
            raise Stuck("a chain that does not end")
    return lines, tree.value


def answer_step(value: Fraction) -> str:
    return f"# Answer\n\n{latex_answer(value)}"


def restated_solution(problem_text: str) -> list[str]:
    """The reference solution's steps (answer step last) of an Arithmetic or Modular Arithmetic problem."""
    tree = problem_tree(problem_text)
    if tree is None:
        raise ValueError(f"restated steps need an Arithmetic or Modular Arithmetic problem, got {problem_text!r}")
    lines, value = reduce_chain(tree)
    return [*lines, answer_step(value)]


def out_of_order(tree: Node) -> list[Node]:
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
            results.append(new)
    return results


def _drop_lone_brackets(text: str) -> str:
    while True:
        new = re.sub(r"\( (-?\d+) \)", r"\1", text)
        if new == text:
            return text
        text = new


def left_to_right(tree: Node) -> list[str]:
    """The lines of an author who ignores brackets and precedence: always the leftmost operation first (a
    remainder problem's expression is read that way, then its remainder taken)."""
    modulus = None
    if tree.op == "mod":
        tree, modulus = tree.left, tree.right.value
    tokens = [t for t in tokenize(tree.render()) if t not in ("(", ")")]
    if tokens and tokens[0] == "-":
        tokens = [f"-{tokens[1]}", *tokens[2:]]
    lines = []
    while len(tokens) > 1:
        value = evaluate(Fraction(tokens[0]), tokens[1], Fraction(tokens[2]))
        if value.denominator != 1:
            raise Stuck("a fraction mid-chain")
        tokens = [str(value), *tokens[3:]]
        text = " ".join(tokens)
        if modulus is not None:
            text = f"({text}) mod {modulus}" if len(tokens) > 1 else f"{text} mod {modulus}"
        lines.append(text)
    if modulus is not None:
        lines.append(str(evaluate(Fraction(tokens[0]), "mod", modulus)))
    return lines
