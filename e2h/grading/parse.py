"""A whitelist parser: cleaned LaTeX answer -> a small tree of tuples. Nothing is ever eval'd.

Only the tokens below are accepted; anything else (quotes, ``__import__``, unknown commands, words
that are not math functions) raises ParseError, and the caller falls back to string comparison.
Size limits apply before any arithmetic: length, token count, nesting depth, exponent size.

    parse_answer("(-\\infty, 2) \\cup (3, \\infty)")
    -> ("union", [("tuple", "(", ")", [...]), ("tuple", "(", ")", [...])])
    parse_answer("x = \\frac{1}{2}") -> ("assign", "x", ("expr", ("div", ("num", 1), ("num", 2))))

Expression nodes: ("num", Fraction) ("sym", name) ("const", "pi"|"E"|"I"|"oo") ("add", [..]) ("mul", [..])
("div", a, b) ("neg", a) ("pow", a, b) ("fn", name, a) ("root", a, n) ("fact", a) ("binom", a, b) ("pm", a, b)
("sum"|"prod", var, lower, upper, body). Answers made only of words are ("text", "words, lower case").

Nesting deeper than MAX_DEPTH raises ParseTooDeep (the grader's verdict ``too_deep``), before any recursion
can get near Python's own limit: the answer gets a verdict that says why, never a RecursionError.
"""

from __future__ import annotations

from fractions import Fraction
import re

MAX_CHARS = 1000
MAX_TOKENS = 600
MAX_DEPTH = 40
MAX_NUMBER_DIGITS = 60


class ParseError(ValueError):
    """The text is not an answer this parser accepts (the caller compares it as a string)."""


class ParseTooDeep(ParseError):
    """Brackets or operators nested deeper than MAX_DEPTH: the grader's verdict is ``too_deep``."""


_OPEN_BRACKETS = frozenset("([{")
_CLOSE_BRACKETS = frozenset(")]}")


def bracket_depth(text: str) -> int:
    """Deepest nesting of ( [ { in ``text`` (one linear pass; unbalanced text is fine)."""
    depth = deepest = 0
    for c in text:
        if c in _OPEN_BRACKETS:
            depth += 1
            if depth > deepest:
                deepest = depth
        elif c in _CLOSE_BRACKETS and depth:
            depth -= 1
    return deepest


FUNCTIONS = {
    "sin", "cos", "tan", "sec", "csc", "cot", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
    "log", "ln", "exp", "lg",
}
GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta", "iota",
    "kappa", "lambda", "mu", "nu", "xi", "rho", "sigma", "tau", "upsilon", "phi", "varphi", "chi", "psi",
    "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Sigma", "Phi", "Psi", "Omega",
}
RELATIONS = {"=": "=", "<": "<", ">": ">", "<=": "<=", ">=": ">=", "!=": "!=",
             "\\le": "<=", "\\leq": "<=", "\\leqslant": "<=", "\\ge": ">=", "\\geq": ">=", "\\geqslant": ">=",
             "\\lt": "<", "\\gt": ">", "\\ne": "!=", "\\neq": "!=", "\\approx": "~"}
COMMANDS = FUNCTIONS | GREEK | set(RELATIONS) | {
    "frac", "sqrt", "binom", "pm", "mp", "cdot", "times", "div", "infty", "infin", "pi", "cup", "begin", "end",
    "{", "}", "|", "\\\\", "ast", "sum", "prod", "limits", "overline", "triangle", "angle",
}
_UNICODE = {"√": "\\sqrt", "π": "\\pi", "∞": "\\infty", "×": "\\times", "·": "\\cdot", "−": "-", "–": "-",
            "≤": "\\le", "≥": "\\ge", "≠": "\\ne", "±": "\\pm", "∪": "\\cup", "²": "^2", "³": "^3"}
_TOKEN_RE = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d*)?|\.\d+)|(?P<cmd>\\[A-Za-z]+|\\[{}|]|\\\\)|(?P<word>[A-Za-z]+)"
    r"|(?P<op><=|>=|!=|\*\*|[-+*/^_()\[\]{},;=<>!|&:]))"
)


def tokenize(text: str) -> list[tuple[str, str]]:
    if len(text) > MAX_CHARS:
        raise ParseError("too long")
    for u, rep in _UNICODE.items():
        text = text.replace(u, rep)
    tokens: list[tuple[str, str]] = []
    pos, n = 0, len(text)
    while pos < n:
        m = _TOKEN_RE.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise ParseError(f"unexpected character {text[pos]!r}")
        pos = m.end()
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "num":
            if len(value) > MAX_NUMBER_DIGITS:
                raise ParseError("number too long")
            tokens.append(("num", value))
        elif kind == "cmd":
            name = value[1:] if value[1:].isalpha() else value[1:]
            if value == "\\\\":
                tokens.append(("op", "\\\\"))
            elif name in ("{", "}"):
                tokens.append(("op", "\\" + name))
            elif name == "|":
                tokens.append(("op", "|"))
            elif name in COMMANDS or value in RELATIONS:
                tokens.append(("cmd", value))
            else:
                raise ParseError(f"command {value} not allowed")
        elif kind == "word":
            if len(tokens) >= 2 and tokens[-1] == ("op", "{") and tokens[-2][1] in ("\\begin", "\\end"):
                tokens.append(("env", value))  # \begin{pmatrix}
            elif len(tokens) >= 2 and tokens[-1] == ("op", "{") and tokens[-2] == ("op", "_"):
                tokens.append(("sub", value))  # S_{MBCN}
            elif tokens and tokens[-1] in (("cmd", "\\triangle"), ("cmd", "\\angle")) and value.isupper():
                tokens.append(("name", value))  # \triangle ABC
            elif len(tokens) >= 4 and tokens[-1] == ("op", "{") and tokens[-3] == ("env", "array"):
                tokens.append(("env", value))  # \begin{array}{ccc}
            else:
                tokens.extend(_split_word(value))
        else:
            tokens.append(("op", value))
        if len(tokens) > MAX_TOKENS:
            raise ParseError("too many tokens")
    return tokens


def _split_word(word: str) -> list[tuple[str, str]]:
    """'sin' -> function; 'pi' -> constant; 'xy' -> two letters; other words of 3+ letters are text."""
    if word in FUNCTIONS or word == "sqrt":
        return [("cmd", "\\" + word)]
    if word == "pi":
        return [("cmd", "\\pi")]
    if word in ("infty", "inf", "infinity"):
        return [("cmd", "\\infty")]
    if len(word) > 2:
        raise ParseError(f"word {word!r}")
    return [("id", c) for c in word]


# ---------------------------------------------------------------- structure

_OPEN = {"(": ")", "[": "]", "{": "}", "\\{": "\\}", "|": "|"}


def _split_top(tokens, separators):
    """Split a token list at depth-0 separators (op or cmd values)."""
    parts, current, seps, depth = [], [], [], 0
    abs_open = False
    for tok in tokens:
        v = tok[1]
        if v in ("(", "[", "{", "\\{") or (tok == ("cmd", "\\begin")):
            depth += 1
        elif v in (")", "]", "}", "\\}") or (tok == ("cmd", "\\end")):
            depth -= 1
        elif v == "|":
            abs_open = not abs_open
        if depth == 0 and not abs_open and v in separators:
            parts.append(current)
            seps.append(v)
            current = []
        else:
            current.append(tok)
    parts.append(current)
    return parts, seps


def _matching(tokens, i):
    """Index of the bracket closing tokens[i]; ( and [ close with ) or ] (intervals)."""
    depth = 0
    for j in range(i, len(tokens)):
        v = tokens[j][1]
        if v in ("(", "[", "{", "\\{"):
            depth += 1
        elif v in (")", "]", "}", "\\}"):
            depth -= 1
            if depth == 0:
                return j
    return -1


def parse_answer(text: str):
    """Parse a cleaned answer into a structure node (see module docstring).

    Raises ParseTooDeep for nesting beyond MAX_DEPTH and ParseError for anything else it does not accept."""
    if len(text) <= MAX_CHARS and bracket_depth(text) > MAX_DEPTH:
        raise ParseTooDeep(f"brackets nested deeper than {MAX_DEPTH}")
    text = last_side_of_chain(text)
    try:
        tokens = tokenize(text)
        if not tokens:
            raise ParseError("empty")
        return _answer(tokens, 0)
    except ParseTooDeep:
        raise
    except ParseError:
        words = text_answer(text)
        if words is None:
            raise
        return words


# A word answer: names, days, "odd", "two lines", "4:30 p.m.", "Softball, Kickball, Picnic": letters, digits,
# spaces and a little punctuation, tried only when the math parser refused the text. It is compared as the
# whole text (what an unparsed answer always was), so being generous here cannot accept a fragment.
_TEXT_ANSWER_RE = re.compile(r"^[A-Za-z0-9 ,.:'()\-]*[A-Za-z][A-Za-z0-9 ,.:'()\-]*$")


def text_answer(text: str):
    """('text', 'words') for an answer made of words, compared case- and space-insensitively; a comma
    list of words is an unordered list of texts. None when the text is not a word answer."""
    text = text.strip().rstrip(".")
    if len(text) > MAX_CHARS or not _TEXT_ANSWER_RE.match(text):
        return None
    parts = [p.strip() for p in text.split(",")]
    if len(parts) > 1 and all(parts):
        return ("list", [("text", " ".join(p.lower().split())) for p in parts])
    return ("text", " ".join(text.lower().split()))


_OTHER_RELATION_RE = re.compile(r"[<>]|!=|\\(?:le|ge|ne|lt|gt|leq|geq|neq|leqslant|geqslant)(?![A-Za-z])")


def last_side_of_chain(text: str) -> str:
    """'1 = \\zzz = x = 0' -> '0': in a chain of two or more '=' the answer is the last side, and the
    sides before it are working that is never parsed (so an unknown command there does not matter).
    Lists ('x = 1, y = 2') and chains mixed with inequalities are left to the parser."""
    if text.count("=") < 2 or _OTHER_RELATION_RE.search(text):
        return text
    cuts, depth = [], 0
    for i, c in enumerate(text):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and c in ",;":
            return text
        elif depth == 0 and c == "=":
            cuts.append(i)
    if len(cuts) < 2 or not text[cuts[-1] + 1 :].strip():
        return text
    return text[cuts[-1] + 1 :].strip()


def _check_depth(depth):
    if depth > MAX_DEPTH:
        raise ParseTooDeep(f"nested deeper than {MAX_DEPTH}")


def _answer(tokens, depth):
    _check_depth(depth)
    parts, _ = _split_top(tokens, {","})
    if len(parts) > 1:
        if any(not p for p in parts):
            raise ParseError("empty list element")
        return _group_solutions([_item(p, depth + 1) for p in parts])
    parts, _ = _split_top(tokens, {"\\cup"})
    if len(parts) > 1:
        return ("union", [_item(p, depth + 1) for p in parts])
    return _item(tokens, depth)


def _item(tokens, depth):
    _check_depth(depth)
    if not tokens:
        raise ParseError("empty")
    parts, ops = _split_top(tokens, set(RELATIONS))
    if ops:
        if "\\approx" in ops and "=" in ops[: ops.index("\\approx")]:
            cut = ops.index("\\approx")
            parts, ops = parts[: cut + 1], ops[:cut]
        ops = [RELATIONS[o] for o in ops]
        if any(not p for p in parts):
            raise ParseError("empty side of a relation")
        if all(o in ("=", "~") for o in ops):
            if len(parts) >= 3:
                return _item(parts[-1], depth + 1)
            lhs, rhs = parts
            if ops == ["~"] and not _is_label(lhs):  # \frac{\sqrt3}{3} \approx 0.577: the exact value
                return _answer(lhs, depth + 1)
            if ops == ["="] and not _has_symbols(lhs) and not _has_symbols(rhs):
                return _answer(rhs, depth + 1)  # "\frac12 + \frac{11}{18} = \frac{10}{9}": working, then the result
            if _is_label(lhs) or "~" in ops:
                try:
                    lhs_expr = _expr(lhs, depth + 1)
                except ParseError:
                    lhs_expr = None
                return ("assign", _label(lhs), _answer(rhs, depth + 1), lhs_expr)
            return ("eq", _expr(lhs, depth + 1), _expr(rhs, depth + 1))
        if "=" in ops or "~" in ops:
            raise ParseError("mixed relation chain")
        return ("rel", [_expr(p, depth + 1) for p in parts], ops)
    first, last = tokens[0][1], tokens[-1][1]
    if tokens[0] == ("cmd", "\\begin") and _matrix_end(tokens, 0) == len(tokens):
        return _matrix(tokens, depth)
    if first in ("(", "[") and last in (")", "]") and len(tokens) > 2 and tokens[1] == ("cmd", "\\begin") \
            and _matching(tokens, 0) == len(tokens) - 1:
        return _item(tokens[1:-1], depth + 1)  # (\\begin{pmatrix}..\\end{pmatrix}) or (A + B)
    if first in ("(", "[") and last in (")", "]") and _matching(tokens, 0) == len(tokens) - 1:
        inner = tokens[1:-1]
        parts, _ = _split_top(inner, {","})
        if len(parts) > 1:
            if any(not p for p in parts):
                raise ParseError("empty tuple element")
            return ("tuple", first, last, [_item(p, depth + 1) for p in parts])
    if first in ("\\{", "{") and last in ("\\}", "}") and _matching(tokens, 0) == len(tokens) - 1:
        inner = tokens[1:-1]
        if first == "\\{" or len(_split_top(inner, {","})[0]) > 1:
            if not inner:
                return ("set", [])
            parts, _ = _split_top(inner, {","})
            if any(not p for p in parts):
                raise ParseError("empty set element")
            # \{1, 2\} is a set; plain {1,3} is just a group around a list
            return ("set" if first == "\\{" else "list", [_item(p, depth + 1) for p in parts])
    if any(t == ("cmd", "\\begin") for t in tokens):
        return _matrix_expr(tokens, depth + 1)
    return ("expr", _expr(tokens, depth + 1))


def _group_solutions(items):
    """'p=5, q=2, p=7, q=2' -> [[p=5, q=2], [p=7, q=2]]: when the labels of a list of assignments repeat
    in the same pattern, each repetition is one solution. 'x=1, x=2' (one label) stays a flat list."""
    if len(items) < 4 or any(item[0] != "assign" for item in items):
        return ("list", items)
    labels = [item[1] for item in items]
    k = next((j for j in range(1, len(labels)) if labels[j] in labels[:j]), None)
    if k is None or k < 2 or len(labels) % k or len(set(labels[:k])) != k \
            or any(labels[j] != labels[j % k] for j in range(len(labels))):
        return ("list", items)
    return ("list", [("list", items[g : g + k]) for g in range(0, len(items), k)])


def named_values(node) -> dict | None:
    """'x=1, y=2' -> {'x': 1, 'y': 2}: a list of assignments to distinct names (a named tuple); else None."""
    if node[0] != "list" or len(node[1]) < 2 or any(item[0] != "assign" for item in node[1]):
        return None
    values = {item[1]: item[2] for item in node[1]}
    return values if len(values) == len(node[1]) else None


_INDEXED_LABEL_RE = re.compile(r"^([A-Za-z])_\{?\d+\}?$")


def indexed_roots(labels) -> bool:
    """x_1, x_2: numbered names of one unknown's solutions, whose order is arbitrary."""
    bases = {m.group(1) if m else None for m in map(_INDEXED_LABEL_RE.match, labels)}
    return len(bases) == 1 and None not in bases


def _has_symbols(tokens) -> bool:
    return any(k in ("id", "sub") or (k == "cmd" and v[1:] in GREEK) for k, v in tokens)


def _is_label(lhs) -> bool:
    """'x', 'f(x)', '|AB|', 'A:B', '(p,q)': the left side names the answer rather than being math to check."""
    if lhs[0][0] == "num" or len(lhs) > 12:
        return False
    if not _has_symbols(lhs):
        return False  # \frac{\sqrt3}{3} \approx 0.577: math, not a name
    parts, _ = _split_top(lhs, {"+", "-", "\\pm"})
    return len(parts) == 1


def _label(lhs) -> str:
    return "".join(v for _, v in lhs if v not in ("{", "}"))  # a_{37} and a_37 are one name


def _matrix(tokens, depth):
    """\\begin{pmatrix} a & b \\\\ c & d \\end{pmatrix} (also bmatrix, array{cc}...) -> ("matrix", rows)."""
    if len(tokens) < 4 or tokens[1][1] != "{" or tokens[-1][1] != "}":
        raise ParseError("bad matrix")
    close = _matching(tokens, 1)
    env = "".join(v for _, v in tokens[2:close])
    if env not in ("pmatrix", "bmatrix", "matrix", "vmatrix", "array", "smallmatrix", "Bmatrix"):
        raise ParseError(f"environment {env}")
    body_start = close + 1
    if env == "array" and body_start < len(tokens) and tokens[body_start][1] == "{":
        body_start = _matching(tokens, body_start) + 1
    end_at = max(i for i, t in enumerate(tokens) if t == ("cmd", "\\end"))
    body = tokens[body_start:end_at]
    rows_tok, _ = _split_top(body, {"\\\\"})
    rows = []
    for row in rows_tok:
        if not row:
            continue
        cells, _ = _split_top(row, {"&"})
        rows.append([_expr(c, depth + 1) for c in cells])
    if not rows or len({len(r) for r in rows}) != 1:
        raise ParseError("ragged matrix")
    return ("matrix", rows)


MAX_MATRIX_DIM = 10
MAX_MATRIX_FACTORS = 4  # each product multiplies the entry trees' size: A B C D E ... is refused
MAX_MATRIX_TERMS = 10


def _matrix_end(tokens, i) -> int:
    """Index just past the \\end{env} closing the \\begin at tokens[i]; -1 when it is not closed."""
    depth = 0
    for j in range(i, len(tokens)):
        if tokens[j] == ("cmd", "\\begin"):
            depth += 1
        elif tokens[j] == ("cmd", "\\end"):
            depth -= 1
            if depth == 0:
                close = _matching(tokens, j + 1) if j + 1 < len(tokens) and tokens[j + 1][1] == "{" else -1
                return close + 1 if close > 0 else -1
    return -1


def _matrix_expr(tokens, depth):
    """A matrix expression written out evaluates to its matrix, as "2+3" is 5:
    A + B, A - B, 2A, A \\cdot B, A B (matrix product). Entries stay expression trees."""
    terms, signs, current, level = [], ["+"], [], 0
    for tok in tokens:
        if tok == ("cmd", "\\begin") or tok[1] in ("(", "[", "{"):
            level += 1
        elif tok == ("cmd", "\\end") or tok[1] in (")", "]", "}"):
            level -= 1
        if level == 0 and tok[1] in ("+", "-") and tok[0] == "op":
            if current:
                terms.append(current)
                current = []
                signs.append(tok[1])
            else:
                signs[-1] = "-" if (signs[-1] == "-") != (tok[1] == "-") else "+"
            continue
        current.append(tok)
    if not current:
        raise ParseError("dangling sign")
    terms.append(current)
    if len(terms) > MAX_MATRIX_TERMS:
        raise ParseError("too many matrix terms")
    total = None
    for sign, term in zip(signs, terms):
        value = _matrix_product(term, depth)
        if value[0] != "matrix":
            raise ParseError("a matrix plus a scalar")
        if sign == "-":
            value = ("matrix", [[("neg", c) for c in row] for row in value[1]])
        if total is None:
            total = value
        else:
            if len(total[1]) != len(value[1]) or len(total[1][0]) != len(value[1][0]):
                raise ParseError("matrix shapes differ")
            total = ("matrix", [[("add", [a, b]) for a, b in zip(ra, rb)] for ra, rb in zip(total[1], value[1])])
    return total


def _matrix_product(tokens, depth):
    """Factors of one term: matrices (multiplied in order) and scalar factors between them."""
    scalars, matrices, pending, i = [], [], [], 0
    while i < len(tokens):
        if tokens[i] == ("cmd", "\\begin"):
            end = _matrix_end(tokens, i)
            if end < 0:
                raise ParseError("unclosed matrix")
            if pending:
                scalars.append(_expr(pending, depth + 1))
                pending = []
            node = _matrix(tokens[i:end], depth + 1)
            if len(node[1]) > MAX_MATRIX_DIM or len(node[1][0]) > MAX_MATRIX_DIM:
                raise ParseError("matrix too large")
            matrices.append(node[1])
            if len(matrices) > MAX_MATRIX_FACTORS:
                raise ParseError("too many matrix factors")
            i = end
        elif tokens[i][1] in ("\\cdot", "\\times", "*") and (matrices or scalars or pending):
            if pending:
                scalars.append(_expr(pending, depth + 1))
                pending = []
            i += 1
        else:
            pending.append(tokens[i])
            i += 1
    if pending:
        scalars.append(_expr(pending, depth + 1))
    if not matrices:
        raise ParseError("no matrix")
    rows = matrices[0]
    for right in matrices[1:]:
        if len(rows[0]) != len(right):
            raise ParseError("matrix shapes do not multiply")
        rows = [[("add", [("mul", [rows[r][k], right[k][c]]) for k in range(len(right))])
                 for c in range(len(right[0]))] for r in range(len(rows))]
    if scalars:
        rows = [[("mul", scalars + [c]) for c in row] for row in rows]
    return ("matrix", rows)


# ---------------------------------------------------------------- expressions

_ATOM_START_OPS = {"(", "[", "{", "|"}


class _ExprParser:
    def __init__(self, tokens, depth):
        self.t = tokens
        self.i = 0
        self.depth = depth
        self.abs_depth = 0

    def peek(self, k=0):
        j = self.i + k
        return self.t[j] if j < len(self.t) else ("eof", "")

    def take(self):
        tok = self.peek()
        self.i += 1
        return tok

    def expect(self, value):
        tok = self.take()
        if tok[1] != value:
            raise ParseError(f"expected {value!r}, got {tok[1]!r}")

    def enter(self):
        self.depth += 1
        _check_depth(self.depth)

    def parse(self):
        node = self.expr()
        if self.i != len(self.t):
            raise ParseError(f"unexpected {self.peek()[1]!r}")
        return node

    def expr(self):
        self.enter()
        terms = [self.signed()]
        while self.peek()[1] in ("+", "-", "\\pm", "\\mp"):
            op = self.take()[1]
            rhs = self.term()
            if op == "+":
                terms.append(rhs)
            elif op == "-":
                terms.append(("neg", rhs))
            else:
                left = ("add", terms) if len(terms) > 1 else terms[0]
                terms = [("pm", left, rhs if op == "\\pm" else ("neg", rhs))]
        self.depth -= 1
        return ("add", terms) if len(terms) > 1 else terms[0]

    def signed(self):
        op = self.peek()[1]
        if op in ("-", "+", "\\pm", "\\mp"):
            self.take()
            self.enter()  # "- - - ... 1" recurses once per sign: it counts as nesting
            inner = self.signed()
            self.depth -= 1
            if op == "-":
                return ("neg", inner)
            if op == "+":
                return inner
            return ("pm", ("num", Fraction(0)), inner)
        return self.term()

    def term(self):
        factors = [self.power()]
        while True:
            tok = self.peek()
            v = tok[1]
            if v in ("*", "\\cdot", "\\times", "\\ast"):
                self.take()
                factors.append(self.signed_power())
            elif v in ("/", "\\div", ":"):
                self.take()
                left = ("mul", factors) if len(factors) > 1 else factors[0]
                factors = [("div", left, self.signed_power())]
            elif self.starts_atom(tok):
                factors.append(self.power())
            else:
                break
        return ("mul", factors) if len(factors) > 1 else factors[0]

    def signed_power(self):
        if self.peek()[1] == "-":
            self.take()
            self.enter()
            node = ("neg", self.signed_power())
            self.depth -= 1
            return node
        return self.power()

    def starts_atom(self, tok):
        kind, v = tok
        if kind in ("num", "id"):
            return True
        if kind == "cmd":
            return v in ("\\frac", "\\sqrt", "\\binom", "\\pi", "\\infty", "\\infin", "\\sum", "\\prod",
                         "\\overline", "\\triangle", "\\angle") or v[1:] in FUNCTIONS \
                or v[1:] in GREEK
        if v == "|":
            return self.abs_depth == 0  # a '|' inside |..| closes it, it does not start a factor
        return v in ("(", "[", "{")

    def power(self):
        base = self.postfix(self.atom())
        if self.peek()[1] in ("^", "**"):
            op = self.take()[1]
            self.enter()  # a^b^c^... recurses once per power
            if op == "^" and self.peek()[1] != "{":
                exponent = self.exponent_token()
            else:
                exponent = self.signed_power()
            self.depth -= 1
            base = self.postfix(("pow", base, exponent))
        return base

    def exponent_token(self):
        """x^2 or x^-1 / x^\\pi: a LaTeX exponent without braces is a single token."""
        tok = self.peek()
        if tok[1] == "-":
            self.take()
            self.enter()
            node = ("neg", self.exponent_token())
            self.depth -= 1
            return node
        if tok[0] == "num":
            self.take()
            # TeX reads x^23 as x^2 3; keep only the first digit
            if len(tok[1]) > 1 and tok[1].isdigit():
                self.t.insert(self.i, ("num", tok[1][1:]))
                return ("num", Fraction(int(tok[1][0])))
            return ("num", Fraction(tok[1]))
        return self.atom()

    def postfix(self, node):
        while self.peek()[1] == "!" and self.peek(1)[1] != "=":
            self.take()
            node = ("fact", node)
        return node

    def group(self):
        """A TeX argument: {..} or a single token (\\frac12, \\sqrt3)."""
        tok = self.peek()
        if tok[1] == "{":
            self.take()
            node = self.expr()
            self.expect("}")
            return node
        if tok[0] == "num":
            self.take()
            digits = tok[1]
            if len(digits) > 1 and digits.isdigit():  # \frac12 = \frac{1}{2}: one digit per argument
                self.t.insert(self.i, ("num", digits[1:]))
                digits = digits[0]
            return ("num", Fraction(digits))
        if tok[0] == "id":
            self.take()
            return ("sym", tok[1])
        return self.atom()

    def atom(self):
        self.enter()
        node = self._atom()
        self.depth -= 1
        if self.peek()[1] == "_":  # subscript: x_1, a_{37}, 52_8 (a base) -> one opaque symbol
            self.take()
            sub = self.take()
            if sub[1] == "{":
                parts = []
                while self.peek()[1] not in ("}", ""):
                    parts.append(self.take()[1])
                self.expect("}")
                sub = ("", "".join(parts))
            node = ("sym", f"{_name(node)}_{sub[1]}")
        return node

    def _atom(self):
        kind, v = self.take()
        if kind == "num":
            return ("num", Fraction(v))
        if kind == "id":
            if v == "i":
                return ("const", "I")
            return ("sym", v)
        if kind == "op":
            if v in ("(", "[", "{"):
                node = self.expr()
                self.expect({"(": ")", "[": "]", "{": "}"}[v])
                return node
            if v == "|":
                self.abs_depth += 1
                node = self.expr()
                self.expect("|")
                self.abs_depth -= 1
                return ("fn", "abs", node)
            raise ParseError(f"unexpected {v!r}")
        if kind == "cmd":
            name = v[1:]
            if name == "frac":
                return ("div", self.group(), self.group())
            if name == "binom":
                return ("binom", self.group(), self.group())
            if name == "sqrt":
                index = None
                if self.peek()[1] == "[":
                    self.take()
                    index = self.expr()
                    self.expect("]")
                return ("root", self.group(), index or ("num", Fraction(2)))
            if name == "pi":
                return ("const", "pi")
            if name in ("sum", "prod"):
                return self.big_operator(name)
            if name in ("triangle", "angle"):  # \\triangle ABC: a figure's name, one symbol
                letters = [self.take()[1]] if self.peek()[0] == "name" else []
                while self.peek()[0] == "id" and self.peek()[1].isupper():
                    letters.append(self.take()[1])
                if not letters:
                    raise ParseError(f"\\{name} without a name")
                return ("sym", f"{name}_{''.join(letters)}")
            if name == "overline":  # \\overline{CD}: a segment's name, one symbol
                if self.peek()[1] != "{":
                    return ("sym", "overline_" + self.take()[1])
                self.take()
                parts = []
                while self.peek()[1] not in ("}", ""):
                    parts.append(self.take()[1])
                self.expect("}")
                return ("sym", "overline_" + "".join(parts))
            if name in ("infty", "infin"):
                return ("const", "oo")
            if name in GREEK:
                return ("sym", name)
            if name in FUNCTIONS:
                power = None
                if self.peek()[1] == "^":  # \sin^2 x
                    self.take()
                    power = self.group()
                arg = self.group() if self.peek()[1] in ("{", "(") or self.peek()[0] != "op" else None
                if arg is None:
                    raise ParseError(f"{name} without argument")
                if self.peek()[1] not in ("+", "-", ")", "]", "}", ",", "eof", "") and arg[0] == "sym":
                    # \sin x y is ambiguous; \sin 2x means \sin(2x) in MATH answers
                    pass
                node = ("fn", "log" if name == "ln" else name, arg)
                return ("pow", node, power) if power is not None else node
        raise ParseError(f"unexpected {v!r}")


    def big_operator(self, name):
        """\\sum_{k=1}^{10} k^2 -> ("sum", "k", 1, 10, k^2): the body is the product term that follows, as
        in "\\sum_{k=1}^{n} k + 1" = (\\sum k) + 1. Bounds must be written as _{var=lower}^{upper}."""
        if self.peek() == ("cmd", "\\limits"):
            self.take()
        self.expect("_")
        self.expect("{")
        var = self.take()  # the tokenizer reads a word right after "_{" as a subscript: "k" is ("sub", "k")
        if var[0] not in ("id", "sub") and not (var[0] == "cmd" and var[1][1:] in GREEK):
            raise ParseError(f"\\{name} needs a bound variable")
        var_name = var[1].lstrip("\\")
        self.expect("=")
        lower = self.expr()
        self.expect("}")
        self.expect("^")
        upper = self.group()
        self.enter()
        body = self.term()
        self.depth -= 1
        if var_name == "i":  # \\sum_{i=1}: here i is the index, not the imaginary unit
            body = _index_for_i(body)
        return (name, var_name, lower, upper, body)


def _index_for_i(node):
    """The tree with the constant I read back as the symbol i (a summation index named i)."""
    kind = node[0]
    if node == ("const", "I"):
        return ("sym", "i")
    if kind in ("num", "sym", "const"):
        return node
    if kind in ("add", "mul"):
        return (kind, [_index_for_i(c) for c in node[1]])
    if kind in ("neg", "fact"):
        return (kind, _index_for_i(node[1]))
    if kind == "fn":
        return (kind, node[1], _index_for_i(node[2]))
    if kind in ("sum", "prod"):
        return (kind, node[1], _index_for_i(node[2]), _index_for_i(node[3]),
                node[4] if node[1] == "i" else _index_for_i(node[4]))
    return (kind, _index_for_i(node[1]), _index_for_i(node[2]))


def _name(node) -> str:
    if node[0] == "sym":
        return node[1]
    if node[0] == "num":
        n = node[1]
        return str(n.numerator) if n.denominator == 1 else str(float(n))
    raise ParseError("subscript on an expression")


def _expr(tokens, depth):
    if not tokens:
        raise ParseError("empty expression")
    return _ExprParser(list(tokens), depth).parse()


# ---------------------------------------------------------------- canonical key

def canonical_key(node) -> str:
    """A canonical string for voting; equal keys mean the grader would (almost always) call them equal."""
    from e2h.grading.evaluate import EvalError, constant_value, exact_value  # local: evaluate imports us

    kind = node[0]
    if kind == "expr":
        expr = node[1]
        if _has_pm(expr):
            return "{" + ",".join(sorted(canonical_key(("expr", e)) for e in expand_pm(expr))) + "}"
        try:
            value = exact_value(expr)
            return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
        except EvalError:
            pass
        try:
            c = constant_value(expr)
            if c is not None:
                return _format_constant(c)
        except EvalError:
            pass
        return expr_str(expr)
    if kind == "assign":
        return canonical_key(node[2])
    named = named_values(node)
    if named is not None and not indexed_roots(named):
        return "(" + ",".join(f"{name}={canonical_key(named[name])}" for name in sorted(named)) + ")"
    if kind in ("list", "set"):
        keys = []
        for item in node[1]:
            k = canonical_key(item)
            keys.extend(k[1:-1].split(",") if k.startswith("{") and item[0] == "expr" else [k])
        return "{" + ",".join(sorted(set(keys))) + "}"
    if kind == "tuple":
        return node[1] + ",".join(canonical_key(x) for x in node[3]) + node[2]
    if kind == "union":
        return "U".join(sorted(canonical_key(x) for x in node[1]))
    if kind == "matrix":
        return "M[" + ";".join(",".join(canonical_key(("expr", c)) for c in row) for row in node[1]) + "]"
    if kind == "eq":
        return "eq:" + expr_str(node[1]) + "=" + expr_str(node[2])
    if kind == "text":
        return "text:" + node[1].replace(" ", "")
    if kind == "rel":
        return "rel:" + "".join(expr_str(e) + (o if i < len(node[2]) else "")
                                for i, (e, o) in enumerate(zip(node[1], node[2] + [""])))
    raise ParseError(kind)


def _format_constant(c) -> str:
    re_, im = float(c.real), float(c.imag)
    if abs(im) < 1e-12 * max(1.0, abs(re_)):
        return f"~{re_:.12g}"
    return f"~{re_:.12g}{im:+.12g}i"


def _has_pm(node) -> bool:
    if node[0] == "pm":
        return True
    return any(_has_pm(c) for c in _children(node))


def _children(node):
    kind = node[0]
    if kind in ("num", "sym", "const"):
        return []
    if kind in ("add", "mul"):
        return node[1]
    if kind in ("neg", "fact"):
        return [node[1]]
    if kind == "fn":
        return [node[2]]
    if kind in ("sum", "prod"):
        return [node[2], node[3], node[4]]
    return [node[1], node[2]]


def expand_pm(node) -> list:
    """a \\pm b -> [a + b, a - b] (each \\pm doubles the list; at most 4 results)."""
    kind = node[0]
    if kind == "pm":
        a, b = node[1], node[2]
        out = []
        for x in expand_pm(a):
            for y in expand_pm(b):
                out += [("add", [x, y]), ("add", [x, ("neg", y)])]
        if len(out) > 4:
            raise ParseError("too many \\pm")
        return out
    if not _has_pm(node):
        return [node]
    if kind in ("sum", "prod"):
        raise ParseError("\\pm inside a sum or product")
    if kind in ("add", "mul"):
        results = [[]]
        for child in node[1]:
            results = [r + [c] for r in results for c in expand_pm(child)]
            if len(results) > 4:
                raise ParseError("too many \\pm")
        return [(kind, r) for r in results]
    if kind in ("neg", "fact"):
        return [(kind, c) for c in expand_pm(node[1])]
    if kind == "fn":
        return [(kind, node[1], c) for c in expand_pm(node[2])]
    return [(kind, a, b) for a in expand_pm(node[1]) for b in expand_pm(node[2])]


def expr_str(node) -> str:
    kind = node[0]
    if kind == "num":
        n = node[1]
        return str(n.numerator) if n.denominator == 1 else f"({n.numerator}/{n.denominator})"
    if kind in ("sym", "const"):
        return node[1]
    if kind == "add":
        return "(" + "+".join(expr_str(c) for c in node[1]) + ")"
    if kind == "mul":
        return "(" + "*".join(expr_str(c) for c in node[1]) + ")"
    if kind == "neg":
        return "(-" + expr_str(node[1]) + ")"
    if kind == "fact":
        return expr_str(node[1]) + "!"
    if kind == "fn":
        return f"{node[1]}({expr_str(node[2])})"
    if kind in ("sum", "prod"):
        return f"{kind}({node[1]}={expr_str(node[2])},{expr_str(node[3])},{expr_str(node[4])})"
    sym = {"div": "/", "pow": "^", "root": "root", "binom": "binom", "pm": "pm"}[kind]
    return f"{sym}({expr_str(node[1])},{expr_str(node[2])})"
