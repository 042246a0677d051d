"""The world's expression grammar: the tokenizer every step and problem goes through, and expression trees.

Model output is untrusted text: it is never eval'd or sympify'd. ``tokenize`` accepts only integers and
``+ - * / mod ( ) =`` under limits on length, tokens and digits; the recursive-descent parser below builds a
:class:`e2h.world.generator.Node` tree (exact Fractions) from them. The step checker (e2h.world.checker) and the
restated format (e2h.world.restated) both read expressions here.
"""

from __future__ import annotations

import re
from fractions import Fraction

from e2h.world.generator import Node, apply_op

MAX_STEP_CHARS = 200
MAX_TOKENS = 64
MAX_DIGITS = 9

_TOKEN = re.compile(r"\s*(?:([0-9]+)|(mod)(?![A-Za-z])|([-+*/()=]))")
# the problems whose question is one expression (Arithmetic, Modular Arithmetic)
EXPRESSION_PROBLEM = re.compile(r"^(?:Compute (?P<compute>.+)\.|Find the remainder when (?P<mod>.+) is divided by "
                         r"(?P<m>\d+)\.)$")


class Malformed(ValueError):
    """A step outside the world's grammar or limits."""


def tokenize(text: str) -> list[str]:
    if len(text) > MAX_STEP_CHARS:
        raise Malformed("step too long")
    tokens, pos, end = [], 0, len(text.rstrip())
    while pos < end:
        match = _TOKEN.match(text, pos)
        if match is None:
            raise Malformed(f"unexpected character at {pos}")
        number, word, symbol = match.groups()
        if number is not None and len(number) > MAX_DIGITS:
            raise Malformed("number too long")
        tokens.append(number or word or symbol)
        if len(tokens) > MAX_TOKENS:
            raise Malformed("too many tokens")
        pos = match.end()
    return tokens


class Stuck(ValueError):
    """A (wrong) chain reached an operation with no value: a division by zero, a remainder of a fraction."""


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
