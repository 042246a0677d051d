"""The step checker: is each step of ANY candidate solution to a world problem correct?

A reasoning step is correct when all three hold::

    "21 + 5 = 26"   1. it parses in the world's small grammar and its two sides are equal (exact SymPy numbers)
                    2. every number it uses is grounded: written in the problem, or produced by an earlier
                       step that was itself correct (so a step building on a wrong value is wrong)
                    3. it is a step the problem calls for: for a problem that is one integer expression
                       (Arithmetic, Modular Arithmetic) it combines two numbers that the expression, as the
                       earlier correct steps left it, lets it combine, in any grouping a sum or a product allows
                       ("3 + 8 = 11" after "14 - 6 = 8" in 3 + (14 - 6 + 5)), and never across precedence
                       ("3 + 7 = 10" in 3 + 7 * 2); for the other subjects its value is a value of a reference
                       solution step (so "3 + 7 = 10" where the problem says 3 * 7 is wrong although 3 + 7 is 10)

A world built with ``world.step_format: restated`` (e2h.world.restated) writes each step as its operation and
the remaining expression; such steps have their own rule (``_check_restated``), chosen by the reference
solution's format.

The answer step ``"# Answer\\n\\n{ans}"`` is correct iff ``ans`` equals the problem's answer (``11/12`` and
``\\frac{11}{12}`` are the same value). Model output is untrusted text: it is never eval'd or sympify'd; a
hand-written tokenizer (e2h.world.expression) and recursive-descent parser accept only integers,
``+ - * / mod ( ) =`` and build SymPy numbers, under limits on length, tokens, digits, nesting and magnitude. Anything else (prose,
``__import__('os')``, ``9**9**9**9``, a 10,000-character line) is simply an incorrect step, decided in
microseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

import sympy

from e2h.records import Problem
from e2h.text_format import ANSWER_HEADER, is_answer_step, split_solution
from e2h.world.expression import (EXPRESSION_PROBLEM, MAX_DIGITS, Malformed, Stuck,
                                  parse_expression, problem_tree, tokenize)
from e2h.world.generator import Node

MAX_DEPTH = 8
MAX_ABS = 10**12
MAX_ANSWER_CHARS = 60

_ANSWER_INT = re.compile(r"^(-?)([0-9]{1,12})$")
_ANSWER_FRAC = re.compile(r"^(-?)\\[dt]?frac\{([0-9]{1,12})\}\{([0-9]{1,12})\}$")
_ANSWER_SLASH = re.compile(r"^(-?)([0-9]{1,12})/([0-9]{1,12})$")
_PROBLEM_NUMBER = re.compile(r"[0-9]+")  # ASCII digits only: "٣" is not a world number


class _Parser:
    """expr := term (('+'|'-') term)* ; term := unary (('*'|'/'|'mod') unary)* ;
    unary := '-' unary | '(' expr ')' | INT. Evaluates while parsing; collects the integer literals."""

    def __init__(self, tokens: list[str]):
        self.tokens, self.pos, self.depth = tokens, 0, 0
        self.literals: list[sympy.Rational] = []

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise Malformed("unexpected end")
        self.pos += 1
        return token

    def expr(self) -> sympy.Rational:
        value = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            value = _checked(value + self.term() if op == "+" else value - self.term())
        return value

    def term(self) -> sympy.Rational:
        value = self.unary()
        while self.peek() in ("*", "/", "mod"):
            op, right = self.take(), self.unary()
            if op == "*":
                value = _checked(value * right)
            elif right == 0:
                raise Malformed("division by zero")
            elif op == "/":
                value = _checked(value / right)
            else:
                if not (value.is_integer and right.is_integer and right > 0):
                    raise Malformed("mod needs integers and a positive modulus")
                value = sympy.Mod(value, right)
        return value

    def unary(self) -> sympy.Rational:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise Malformed("nested too deeply")
        token = self.take()
        if token == "-":
            value = -self.unary()
        elif token == "(":
            value = self.expr()
            if self.take() != ")":
                raise Malformed("unbalanced parenthesis")
        elif token[0] in "0123456789":
            value = sympy.Integer(int(token))
            self.literals.append(value)
        else:
            raise Malformed(f"unexpected {token!r}")
        self.depth -= 1
        return value


def _checked(value: sympy.Rational) -> sympy.Rational:
    if abs(value.p) > MAX_ABS or abs(value.q) > MAX_ABS:
        raise Malformed("number too large")
    return value


@dataclass(frozen=True)
class ParsedStep:
    value: sympy.Rational  # what the left side evaluates to
    claimed: sympy.Rational  # what the step says it equals
    literals: tuple[sympy.Rational, ...]  # numbers the left side uses
    written: tuple[sympy.Rational, ...]  # numbers the right side is written with ("3/12": 3 and 12)


def parse_step(text: str) -> ParsedStep:
    """Parse ``"<expression> = <number>"`` (a trailing period is allowed); raises Malformed otherwise."""
    text = text.strip()
    text = text[:-1] if text.endswith(".") else text
    tokens = tokenize(text)
    if tokens.count("=") != 1:
        raise Malformed("a step states exactly one equation")
    split = tokens.index("=")
    left, right = _Parser(tokens[:split]), _Parser(tokens[split + 1:])
    value = left.expr()
    claimed = right.expr()
    if left.pos != len(left.tokens) or right.pos != len(right.tokens) or not left.tokens:
        raise Malformed("trailing tokens")
    number = right.tokens[1:] if right.tokens[:1] == ["-"] else right.tokens
    if not (len(number) == 1 or len(number) == 3 and number[1] == "/") or not all(t[0] in "0123456789" for t in number[::2]):
        raise Malformed("the right side must be a number")  # "-7" and "19/12" are numbers; "2 + 3" is not
    return ParsedStep(value=value, claimed=claimed, literals=tuple(left.literals), written=tuple(right.literals))


def parse_answer(text: str) -> sympy.Rational | None:
    """``-7``, ``\\frac{3}{4}``, ``-\\dfrac{3}{4}``, ``3/4`` (``$``s and spaces ignored) -> a number; else None."""
    text = text.strip()
    if len(text) > MAX_ANSWER_CHARS:
        return None
    text = text.replace("$", "").replace(" ", "")
    if (match := _ANSWER_INT.match(text)) is not None:
        return sympy.Integer(int(match[2])) * (-1 if match[1] else 1)
    for pattern in (_ANSWER_FRAC, _ANSWER_SLASH):
        if (match := pattern.match(text)) is not None and int(match[3]) != 0:
            return sympy.Rational(int(match[2]), int(match[3])) * (-1 if match[1] else 1)
    return None


def _answer_text(step: str) -> str:
    return step.lstrip()[len(ANSWER_HEADER):].strip()


@dataclass(frozen=True)
class Reference:
    """What the checker knows about one problem: its numbers, the values its solution needs, its answer."""

    numbers: frozenset[int]
    needed: frozenset[sympy.Rational]
    answer: sympy.Rational


# ------------------------------------------------------------------------------------- the expression's state
# A problem that is one integer expression ("Compute ...", "Find the remainder when ...") is checked against what
# is left of it, not against one reference order: a sum may be added up in any grouping (3 + (8 + 5) is
# (3 + 8) + 5), so "3 + 8 = 11" after "14 - 6 = 8" in 3 + (14 - 6 + 5) is a correct step although the reference
# never writes 11, while "3 + 7 = 10" in 3 + 7 * 2 is not: the 7 belongs to the product. A state is a tree whose
# + / - and * / / runs are flattened into chains; a number in a chain is kept signed (-6 in 20 - 6 + 3) or
# inverted (1/4 in 8 / 4 * 3), an unevaluated part as (inverted, subtree). A step is correct when the
# operations of its left side, done one by one, each combine two numbers of one chain (or take a "mod" of two
# numbers) and the result replaces them. "6 - 3 = 3" in 20 - 6 + 3 is read as -(6 - 3), so it is correct too.
MAX_STATES = 32  # a repeated number can match twice: every resulting state is kept, up to this many
_FRACTION_LITERAL = re.compile(r"\d/\d")  # the Fractions subject writes 1/2 as one number, not a division
_CHAIN = {"+": "sum", "-": "sum", "*": "prod", "/": "prod"}


def _is_number(state) -> bool:
    return isinstance(state, Fraction)


def _chain_item(kind: str, inverted: bool, operand):
    if not _is_number(operand):
        return (inverted, operand)
    return (False, (-operand if kind == "sum" else 1 / operand) if inverted else operand)


def _state_of(node: Node):
    """A parsed expression (e2h.world.expression) as a state: a number, ("mod", left, right) or
    (kind, (item, ...))."""
    if node.op is None:
        return node.value
    if node.op == "mod":
        return ("mod", _state_of(node.left), _state_of(node.right))
    kind = _CHAIN[node.op]
    inverse = "-" if kind == "sum" else "/"

    def flatten(part: Node, inverted: bool) -> list:
        if _CHAIN.get(part.op) != kind:
            return [_chain_item(kind, inverted, _state_of(part))]
        return flatten(part.left, inverted) + flatten(part.right, inverted != (part.op == inverse))

    return (kind, tuple(flatten(node, False)))


def _collapsed(kind: str, items: tuple):
    if len(items) > 1:
        return (kind, items)
    inverted, operand = items[0]
    return (kind, items) if inverted else operand


def _applied(state, op: str, left: Fraction, right: Fraction, result: Fraction) -> list:
    """Every state that the operation "left op right = result" can lead to from ``state`` (none: it does not apply)."""
    if _is_number(state):
        return []
    if state[0] == "mod":
        found = [result] if op == "mod" and state[1] == left and state[2] == right else []
        found += [("mod", s, state[2]) for s in _applied(state[1], op, left, right, result)]
        return found + [("mod", state[1], s) for s in _applied(state[2], op, left, right, result)]
    kind, items = state
    found = []
    if _CHAIN.get(op) == kind:
        # the two numbers as the chain holds them, and the result, for "left op right" or for its negation
        # (reciprocal): "6 - 3 = 3" takes -6 and +3 from the chain and puts back -3
        if kind == "sum":
            right_held = right if op == "+" else -right
            readings = [(left, right_held, result), (-left, -right_held, -result)]
        else:
            right_held = right if op == "*" else (1 / right if right != 0 else None)
            readings = [(left, right_held, result)]
            if right_held and left != 0 and result != 0:
                readings.append((1 / left, 1 / right_held, 1 / result))
        for want_left, want_right, put in readings:
            for i, (_, value_i) in enumerate(items):
                if not _is_number(value_i) or value_i != want_left:
                    continue
                for j, (_, value_j) in enumerate(items):
                    if j != i and _is_number(value_j) and value_j == want_right:
                        rest = tuple(item for k, item in enumerate(items) if k not in (i, j))
                        found.append(_collapsed(kind, ((False, put),) + rest))
    for k, (inverted, operand) in enumerate(items):
        for inner in _applied(operand, op, left, right, result):
            item = _chain_item(kind, inverted, inner)
            found.append(_collapsed(kind, items[:k] + (item,) + items[k + 1:]))
    return found


def _operations(node: Node) -> list[tuple[str, Fraction, Fraction, Fraction]]:
    """A step's left side as its operations in the order they are done: "3 * 7 + 5" -> (*, 3, 7, 21), (+, 21, 5, 26)."""
    if node.op is None:
        return []
    return [*_operations(node.left), *_operations(node.right), (node.op, node.left.value, node.right.value, node.value)]


def _is_expression_problem(problem: Problem) -> bool:
    return EXPRESSION_PROBLEM.match(problem.problem) is not None and not _FRACTION_LITERAL.search(problem.problem)


def _check_expression(problem: Problem, answer: sympy.Rational, steps: list[str]) -> list[bool | None]:
    states = [_state_of(problem_tree(problem.problem))]
    verdicts: list[bool | None] = []
    for step in steps:
        if is_answer_step(step):
            verdicts.append(parse_answer(_answer_text(step)) == answer)
            continue
        try:
            parsed = parse_step(step)
            operations = _operations(parse_expression(step.strip().removesuffix(".").partition("=")[0]))
        except (Malformed, Stuck):
            verdicts.append(False)
            continue
        following = states if operations and parsed.value == parsed.claimed else []
        for operation in operations:
            after = []
            for state in following:
                after += [s for s in _applied(state, *operation) if s not in after]
            following = after[:MAX_STATES]
        if following:
            states = following
        verdicts.append(bool(following))
    return verdicts


def reference_of(problem: Problem) -> Reference:
    answer = parse_answer(problem.answer)
    if answer is None or not problem.solution:
        raise ValueError(f"problem {problem.id}: not a world problem (answer {problem.answer!r}, "
                         f"solution present: {bool(problem.solution)})")
    needed = {answer}
    for step in split_solution(problem.solution):
        if not is_answer_step(step):
            try:
                needed.add(parse_step(step).claimed)
            except Malformed as err:
                raise ValueError(f"problem {problem.id}: reference step {step!r} is malformed ({err})") from None
    numbers = frozenset(int(n) for n in _PROBLEM_NUMBER.findall(problem.problem) if len(n) <= MAX_DIGITS)
    return Reference(numbers=numbers, needed=frozenset(needed), answer=answer)


def is_restated(problem: Problem) -> bool:
    """Whether the problem's reference solution is in the restated format (e2h.world.restated): its first
    reasoning step restates the expression on a second line."""
    first = next((s for s in split_solution(problem.solution or "") if not is_answer_step(s)), "")
    return "\n" in first.strip()


def evaluate_line(text: str) -> tuple[sympy.Rational, int]:
    """An expression's value (precedence as usual) and how many operations it still has; Malformed if it is
    not an expression of the world's grammar."""
    text = text.strip()
    text = text[:-1] if text.endswith(".") else text
    tokens = tokenize(text)
    parser = _Parser(tokens)
    value = parser.expr()
    if not tokens or parser.pos != len(tokens):
        raise Malformed("not one expression")
    binary = sum(1 for i, t in enumerate(tokens) if t in ("+", "-", "*", "/", "mod") and i > 0
                 and (tokens[i - 1][0] in "0123456789" or tokens[i - 1] == ")"))
    return value, binary


def _check_restated(problem: Problem, answer: sympy.Rational, steps: list[str]) -> list[bool | None]:
    """A restated step ("4 * 5 = 20\n3 + 20 - 6") is correct when its operation's arithmetic is right and what
    is left (the second line; the operation's value on the last step) has fewer operations than the last
    correct step's (the problem's at first) and still evaluates to the answer."""
    _, remaining = evaluate_line(_problem_expression(problem))
    verdicts: list[bool | None] = []
    for step in steps:
        if is_answer_step(step):
            verdicts.append(parse_answer(_answer_text(step)) == answer)
            continue
        fact, _, left = step.strip().partition("\n")
        try:
            parsed = parse_step(fact)
            value, operations = evaluate_line(left) if left.strip() else (parsed.claimed, 0)
        except Malformed:
            verdicts.append(False)
            continue
        ok = parsed.value == parsed.claimed and value == answer and operations < remaining
        if ok:
            remaining = operations
        verdicts.append(ok)
    return verdicts


def _problem_expression(problem: Problem) -> str:
    match = EXPRESSION_PROBLEM.match(problem.problem)
    if match is None:
        raise ValueError(f"problem {problem.id}: restated steps need a 'Compute ...' or remainder problem")
    return match["compute"] if match["m"] is None else f"({match['mod']}) mod {match['m']}"


def check_steps(problem: Problem, steps: list[str]) -> list[bool | None]:
    """One verdict per step (see the module docstring). The world's checker judges every step, so it never
    returns None; the type leaves room for checkers that cannot.

    For "Compute 3 * 7 + 5." (answer 26)::

        check_steps(p, ["3 * 7 = 21", "21 + 5 = 27", "# Answer\\n\\n27"])   ->  [True, False, False]
        check_steps(p, ["3 + 7 = 10", "10 + 5 = 15", "# Answer\\n\\n26"])   ->  [False, False, True]
    """
    if is_restated(problem) or _is_expression_problem(problem):
        answer = parse_answer(problem.answer)
        if answer is None:
            raise ValueError(f"problem {problem.id}: not a world problem (answer {problem.answer!r})")
        check = _check_restated if is_restated(problem) else _check_expression
        return check(problem, answer, steps)
    ref = reference_of(problem)
    grounded = set(ref.numbers)
    verdicts: list[bool | None] = []
    for step in steps:
        if is_answer_step(step):
            verdicts.append(parse_answer(_answer_text(step)) == ref.answer)
            continue
        try:
            parsed = parse_step(step)
        except Malformed:
            verdicts.append(False)
            continue
        ok = (parsed.value == parsed.claimed
              and all(abs(int(lit)) in grounded for lit in parsed.literals)
              and parsed.claimed in ref.needed)
        if ok:  # its value may now be used, as written or in lowest terms
            grounded.update((abs(int(parsed.claimed.p)), int(parsed.claimed.q)))
            grounded.update(int(n) for n in parsed.written)
        verdicts.append(ok)
    return verdicts


def first_error(problem: Problem, steps: list[str]) -> int | None:
    """Index of the first incorrect step, or None when every step is correct."""
    for index, verdict in enumerate(check_steps(problem, steps)):
        if verdict is False:
            return index
    return None
