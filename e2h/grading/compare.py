"""Compare two parsed answers (gold decides the shape). Runs the same code in-process and in workers:
in-process, a comparison that needs SymPy raises NeedsSymPy and the pair goes to a killable worker.

Rules (MATH conventions):
    tuples / intervals: ordered, bracket types must match      (3,4] != (3,4)
    bare comma lists and sets: unordered                       "1, -2" == "-2, 1" == \\{1,-2\\}
    assignments to distinct names: by name, else in order      x=1, y=2 == y=2, x=1 == (1,2) != x=2, y=1
    a \\pm b: the two values as a set                          1\\pm\\sqrt{19} == "1-\\sqrt{19}, 1+\\sqrt{19}"
    unions of intervals: unordered
    matrices: same shape, element-wise
    x = 3 (a label on the left) vs 3: the value               y = 2x+3 == y = 3+2x
    equations with math on both sides: proportional            2x+4y-3=0 == y = -x/2 + 3/4
    inequalities in one variable: as intervals                 x \\ge 5 == 5 \\le x
    |x| between constants: as intervals                        1 \\le |z| \\le 2 == [-2,-1] \\cup [1,2]
    numbers: exact rationals (grading.numeric: exact, the default)   0.5 == \\frac12, 3.14 != \\pi
             or, with grading.numeric: rel_tol, a decimal within rel_tol  0.0833333333 == 1/12 (rel_tol 1e-9)
    sums, products: evaluated when the bounds are small integers  \\sum_{k=1}^{10} k == 55
                    else by structure (bounds, then the body)      \\sum_{k=0}^{n-1} a_k b_k == \\sum_{j=0}^{n-1} b_j a_j
    word answers: case- and space-insensitive text             \\text{Devon} == devon
    constants: 40-digit evaluation                             \\sqrt{117} == 3\\sqrt{13}
    expressions with symbols: 40-digit evaluation at random points to reject,
    SymPy simplify(a - b) == 0 (in a worker) to accept        (x+1)^2 == x^2+2x+1
"""

from __future__ import annotations

import random
import re

from e2h.grading.evaluate import (
    _CTX, EvalError, TooLarge, complex_value, constant_value, exact_value, free_symbols, to_sympy)
from e2h.grading.parse import ParseError, _has_pm, expand_pm, expr_str, indexed_roots, named_values, parse_answer

NUMERIC_CONVENTIONS = ("exact", "rel_tol")
DEFAULT_NUMERIC = "exact"
DEFAULT_REL_TOL = 1e-9
EXACT_REL_TOL = 1e-25  # 40-digit evaluation noise: "exact" for irrational constants
MAX_SYMBOLS = 6


class NeedsSymPy(Exception):
    """Raised in-process when only SymPy can decide; the pair is sent to a worker."""


class Comparer:
    def __init__(self, use_sympy: bool, decimals: bool, numeric: str = DEFAULT_NUMERIC,
                 rel_tol: float = DEFAULT_REL_TOL):
        if numeric not in NUMERIC_CONVENTIONS:
            raise ValueError(f"numeric convention {numeric!r}: one of {NUMERIC_CONVENTIONS}")
        self.use_sympy = use_sympy
        # a decimal on either side may be a rounded value: under rel_tol it matches within rel_tol
        self.decimal_tol = rel_tol if numeric == "rel_tol" and decimals else None
        self.method = "structure"

    # ------------------------------------------------------------ structures
    def equal(self, g, p) -> bool:
        gk, pk = g[0], p[0]
        if gk == "text" or pk == "text":
            self.method = "string"
            return gk == pk and g[1].replace(" ", "") == p[1].replace(" ", "")
        if gk == "assign" and pk == "assign":
            return self.equal(g[2], p[2])
        if gk == "assign":
            if pk == "eq" and g[3] is not None and g[2][0] == "expr":
                return self.equal(("eq", g[3], g[2][1]), p)
            return self.equal(g[2], p)
        if pk == "assign":
            if gk == "eq" and p[3] is not None and p[2][0] == "expr":
                return self.equal(g, ("eq", p[3], p[2][1]))
            return self.equal(g, p[2])
        if gk == "rel" or pk == "rel":
            gi, pi = _as_interval(g), _as_interval(p)
            if gi is not None and pi is not None:
                return self.equal(gi, pi)
            if gk == "rel" and pk == "rel":
                return self.relations_equal(g, p)
            return False
        if gk == "expr" and pk == "expr":
            gv, pv = _values(g[1]), _values(p[1])
            if len(gv) == 1 and len(pv) == 1:
                return self.expr_equal(gv[0], pv[0])
            return self.unordered([("expr", x) for x in gv], [("expr", x) for x in pv])
        gn, pn = named_values(g), named_values(p)
        if gn is not None or pn is not None:
            named = self.named_equal(g, p, gn, pn)
            if named is not None:
                return named
        if gk in ("list", "set") or pk in ("list", "set") or (gk == "expr" and _has_pm(g[1])):
            if gk == "tuple" and pk == "list" or gk == "list" and pk == "tuple":
                return self.ordered(g[3] if gk == "tuple" else g[1], p[3] if pk == "tuple" else p[1])
            ge, pe = _elements(g), _elements(p)
            if ge is None or pe is None:
                return False
            return self.unordered(ge, pe)
        if gk == "tuple" and pk == "tuple":
            return g[1] == p[1] and g[2] == p[2] and self.ordered(g[3], p[3])
        if gk == "union" and pk == "union":
            return self.unordered(g[1], p[1])
        if gk == "matrix" and pk == "matrix":
            if len(g[1]) != len(p[1]) or len(g[1][0]) != len(p[1][0]):
                return False
            return all(self.expr_equal(a, b) for ra, rb in zip(g[1], p[1]) for a, b in zip(ra, rb))
        if gk == "eq" and pk == "eq":
            return self.equations_equal(g, p)
        return False

    def named_equal(self, g, p, gn, pn) -> bool | None:
        """A named tuple 'x=1, y=2': match by name when both sides name the same unknowns, else in
        order against a list or tuple; None leaves it to the list rules (x_1, x_2 roots, sets)."""
        if gn is not None and pn is not None and set(gn) == set(pn):
            return all(self.equal(gn[name], pn[name]) for name in gn)
        if indexed_roots(gn or pn):
            return None
        values = [_positional(g), _positional(p)]
        if None in values:
            return None
        return self.ordered(*values)

    def ordered(self, gs, ps) -> bool:
        return len(gs) == len(ps) and all(self.equal(a, b) for a, b in zip(gs, ps))

    def unordered(self, gs, ps) -> bool:
        if len(gs) != len(ps):
            return False
        remaining = list(ps)
        for a in gs:
            for j, b in enumerate(remaining):
                if self.equal(a, b):
                    del remaining[j]
                    break
            else:
                return False
        return True

    # ------------------------------------------------------------ expressions
    def expr_equal(self, a, b) -> bool:
        ia, ib = _infinity_sign(a), _infinity_sign(b)
        if ia is not None or ib is not None:
            return ia == ib
        try:
            x, y = exact_value(a), exact_value(b)
            self.method = "rational"
            if x == y:
                return True
            return self.decimal_tol is not None and abs(x - y) <= self.decimal_tol * max(abs(x), abs(y))
        except EvalError:
            pass
        if a[0] in ("sum", "prod") and b[0] == a[0]:
            return self.big_operators_equal(a, b)
        if _has_big_operator(a) or _has_big_operator(b):
            self.method = "structure"  # a symbolic sum inside a larger expression: only the same writing
            return expr_str(a) == expr_str(b)
        symbols = free_symbols(a) | free_symbols(b)
        if not symbols:
            try:
                x, y = constant_value(a), constant_value(b)
            except TooLarge:
                raise
            except EvalError:
                return self.fallback(a, b)
            self.method = "numeric"
            return _close(x, y, self.decimal_tol or EXACT_REL_TOL)
        if len(symbols) > MAX_SYMBOLS:
            return self.fallback(a, b)
        agreed = 0
        for env in _points(symbols):
            try:
                x, y = complex_value(a, env), complex_value(b, env)
            except TooLarge:
                raise
            except EvalError:
                continue
            if not _close(x, y, self.decimal_tol or 1e-20):
                self.method = "numeric"
                return False
            agreed += 1
        if agreed == 0:
            return self.fallback(a, b)
        return self.sympy_equal(a, b)

    def big_operators_equal(self, a, b) -> bool:
        """Two sums (or products) that cannot be evaluated: the same bounds and the same body, the index
        renamed (\\sum_{k=1}^{n} k^2 == \\sum_{j=1}^{n} j^2)."""
        if expr_str(a) == expr_str(b):
            self.method = "structure"
            return True
        body_b = _rename(b[4], b[1], a[1]) if a[1] != b[1] else b[4]
        return self.expr_equal(a[2], b[2]) and self.expr_equal(a[3], b[3]) and self.expr_equal(a[4], body_b)

    def fallback(self, a, b) -> bool:
        if expr_str(a) == expr_str(b):
            self.method = "structure"
            return True
        return self.sympy_equal(a, b)

    def sympy_equal(self, a, b) -> bool:
        if not self.use_sympy:
            raise NeedsSymPy
        import sympy as sp

        self.method = "sympy"
        diff = to_sympy(a) - to_sympy(b)
        if diff == 0 or sp.expand(diff) == 0:
            return True
        return sp.simplify(diff) == 0

    # ------------------------------------------------------------ relations
    def equations_equal(self, g, p) -> bool:
        """L1 = R1 and L2 = R2 describe the same set when L1-R1 = k (L2-R2) for a constant k != 0."""
        return self._proportional(("add", [g[1], ("neg", g[2])]), ("add", [p[1], ("neg", p[2])]), sign=0)

    def relations_equal(self, g, p) -> bool:
        ga, gops = _lower_form(g)
        pa, pops = _lower_form(p)
        if ga is None or pa is None or len(ga) != len(pa) or gops != pops:
            return False
        if gops == ["!="]:
            return self._proportional(ga[0], pa[0], sign=0)
        return all(self._proportional(x, y, sign=1) for x, y in zip(ga, pa))

    def _proportional(self, d1, d2, sign: int) -> bool:
        symbols = free_symbols(d1) | free_symbols(d2)
        if not symbols or len(symbols) > MAX_SYMBOLS:
            return False
        ratios = []
        for env in _points(symbols):
            try:
                x, y = complex_value(d1, env), complex_value(d2, env)
            except TooLarge:
                raise
            except EvalError:
                continue
            if y == 0 or x == 0:
                if x != y:
                    return False
                continue
            ratios.append(x / y)
        self.method = "numeric"
        if len(ratios) < 2 or not all(_close(r, ratios[0], 1e-20) for r in ratios):
            return False
        r = ratios[0]
        return abs(r.imag) < 1e-20 and (sign == 0 or r.real > 0)


def _has_big_operator(node) -> bool:
    if node[0] in ("sum", "prod"):
        return True
    kind = node[0]
    if kind in ("num", "sym", "const"):
        return False
    if kind in ("add", "mul"):
        return any(_has_big_operator(c) for c in node[1])
    if kind in ("neg", "fact"):
        return _has_big_operator(node[1])
    if kind == "fn":
        return _has_big_operator(node[2])
    return _has_big_operator(node[1]) or _has_big_operator(node[2])


def _rename(node, old: str, new: str):
    """The tree with the symbol ``old`` renamed ``new`` (a summation index)."""
    kind = node[0]
    if kind == "sym":
        return ("sym", new) if node[1] == old else node
    if kind in ("num", "const"):
        return node
    if kind in ("add", "mul"):
        return (kind, [_rename(c, old, new) for c in node[1]])
    if kind in ("neg", "fact"):
        return (kind, _rename(node[1], old, new))
    if kind == "fn":
        return (kind, node[1], _rename(node[2], old, new))
    if kind in ("sum", "prod"):
        inner = node[4] if node[1] == old else _rename(node[4], old, new)  # an inner sum may rebind the name
        return (kind, node[1], _rename(node[2], old, new), _rename(node[3], old, new), inner)
    return (kind, _rename(node[1], old, new), _rename(node[2], old, new))


def _positional(node):
    """Elements of a list or tuple in written order (None for sets and other shapes)."""
    if node[0] == "list":
        return node[1]
    if node[0] == "tuple":
        return node[3]
    return None


def _values(expr) -> list:
    return expand_pm(expr) if _has_pm(expr) else [expr]


def _elements(node):
    kind = node[0]
    if kind in ("list", "set"):
        out = []
        for item in node[1]:
            if item[0] == "expr" and _has_pm(item[1]):
                out.extend(("expr", x) for x in expand_pm(item[1]))
            else:
                out.append(item)
        return out
    if kind == "expr":
        return [("expr", x) for x in _values(node[1])]
    if kind == "assign":
        return _elements(node[2])
    return [node]


def _infinity_sign(node):
    if node == ("const", "oo"):
        return 1
    if node[0] == "neg" and node[1] == ("const", "oo"):
        return -1
    return None


def _close(x, y, rel) -> bool:
    scale = max(abs(x), abs(y), 1e-30)
    return abs(x - y) <= rel * scale


def _points(symbols):
    rng = random.Random(1234)
    names = sorted(symbols)
    for _ in range(4):
        yield {n: _CTX.mpc(_CTX.mpf(rng.randint(310, 2710)) / 1000 + _CTX.mpf(rng.random()) / 10**7) for n in names}


_FLIP = {">": "<", ">=": "<=", "<": ">", "<=": ">="}


def _lower_form(rel):
    """a < b < c -> ([b - a, c - b], ['<', '<']) with every relation turned into 'positive' form."""
    exprs, ops = rel[1], rel[2]
    if "!=" in ops:
        if len(ops) != 1:
            return None, None
        return [("add", [exprs[0], ("neg", exprs[1])])], ["!="]
    if all(o in (">", ">=") for o in ops):
        exprs, ops = list(reversed(exprs)), [_FLIP[o] for o in reversed(ops)]
    if not all(o in ("<", "<=") for o in ops):
        return None, None
    return [("add", [b, ("neg", a)]) for a, b in zip(exprs, exprs[1:])], ops


def _as_interval(node):
    """x > 2 -> (2, oo); -1 <= x < 3 -> [-1, 3); |x| < 2 -> (-2, 2); tuples and unions stay; else None."""
    if node[0] == "tuple" and len(node[3]) == 2 or node[0] == "union":
        return node
    if node[0] == "assign" and node[2][0] == "tuple":
        return node[2]
    if node[0] != "rel":
        return None
    exprs, ops = node[1], node[2]
    if "!=" in ops:
        return None
    if all(o in (">", ">=") for o in ops):
        exprs, ops = list(reversed(exprs)), [_FLIP[o] for o in reversed(ops)]
    if not all(o in ("<", "<=") for o in ops):
        return None
    oo = ("const", "oo")
    if any(_is_abs_of_symbol(e) for e in exprs):
        return _abs_interval(exprs, ops)
    if len(exprs) == 3 and free_symbols(exprs[1]) and not free_symbols(exprs[0]) and not free_symbols(exprs[2]):
        lo, hi = exprs[0], exprs[2]
        return ("tuple", "(" if ops[0] == "<" else "[", ")" if ops[1] == "<" else "]", [("expr", lo), ("expr", hi)])
    if len(exprs) == 2:
        a, b = exprs
        if a[0] == "sym" and not free_symbols(b):  # x < b
            return ("tuple", "(", ")" if ops[0] == "<" else "]", [("expr", ("neg", oo)), ("expr", b)])
        if b[0] == "sym" and not free_symbols(a):  # a < x
            return ("tuple", "(" if ops[0] == "<" else "[", ")", [("expr", a), ("expr", oo)])
    return None


def _is_abs_of_symbol(node) -> bool:
    return node[0] == "fn" and node[1] == "abs" and node[2][0] == "sym"


def _abs_interval(exprs, ops):
    """lo < |x| < hi -> (-hi, -lo) U (lo, hi); |x| <= hi -> [-hi, hi]; |x| > lo -> (-oo, -lo) U (lo, oo).
    Bounds must be real constants (lo > 0); anything else is None (compared as a relation)."""
    oo = ("const", "oo")
    if len(exprs) == 3 and _is_abs_of_symbol(exprs[1]):
        lo, lo_op, hi, hi_op = exprs[0], ops[0], exprs[2], ops[1]
    elif len(exprs) == 2 and _is_abs_of_symbol(exprs[0]):
        lo, lo_op, hi, hi_op = None, None, exprs[1], ops[0]
    elif len(exprs) == 2 and _is_abs_of_symbol(exprs[1]):
        lo, lo_op, hi, hi_op = exprs[0], ops[0], None, None
    else:
        return None
    for bound in (lo, hi):
        if bound is not None:
            value = _real_constant(bound)
            if value is None or value <= 0:
                return None
    def piece(left, right, left_closed, right_closed):
        return ("tuple", "[" if left_closed else "(", "]" if right_closed else ")", [("expr", left), ("expr", right)])
    hi_closed = hi_op == "<="
    lo_closed = lo_op == "<="
    if lo is None:
        return piece(("neg", hi), hi, hi_closed, hi_closed)
    upper = hi if hi is not None else oo
    return ("union", [piece(("neg", upper), ("neg", lo), hi_closed, lo_closed),
                      piece(lo, upper, lo_closed, hi_closed)])


def _real_constant(node):
    try:
        value = constant_value(node)
    except EvalError:
        return None
    if value is None or abs(value.imag) > 1e-30:
        return None
    return value.real


_DECIMAL_RE = re.compile(r"\d\.\d|(?<![\d.])\.\d")


def compare_parsed(gold_node, pred_node, gold_clean: str, pred_clean: str, use_sympy: bool,
                   numeric: str = DEFAULT_NUMERIC, rel_tol: float = DEFAULT_REL_TOL) -> tuple[bool, str]:
    """(correct, method). Raises NeedsSymPy when use_sympy is False and SymPy must decide."""
    decimals = bool(_DECIMAL_RE.search(gold_clean) or _DECIMAL_RE.search(pred_clean))
    comparer = Comparer(use_sympy, decimals, numeric, rel_tol)
    try:
        result = comparer.equal(gold_node, pred_node)
    except TooLarge:
        return False, "too_large"
    except (EvalError, ParseError, RecursionError, OverflowError, ZeroDivisionError):
        return False, "error"
    return result, comparer.method


def compare_strings(gold_clean: str, pred_clean: str) -> tuple[bool, str]:
    """Answers that do not parse (words, names): compare case-insensitively without spaces."""
    g = re.sub(r"\s+", "", gold_clean).lower()
    p = re.sub(r"\s+", "", pred_clean).lower()
    return (g == p and g != ""), "string"


def worker_compare(gold_clean: str, pred_clean: str, numeric: str = DEFAULT_NUMERIC,
                   rel_tol: float = DEFAULT_REL_TOL) -> tuple[bool, str]:
    """Entry point in a worker process: the full comparison with SymPy allowed."""
    try:
        g, p = parse_answer(gold_clean), parse_answer(pred_clean)
    except ParseError:
        return compare_strings(gold_clean, pred_clean)
    return compare_parsed(g, p, gold_clean, pred_clean, use_sympy=True, numeric=numeric, rel_tol=rel_tol)


