"""Evaluating parsed expression trees: exact rationals, high-precision complex numbers, SymPy.

All three walk the tree from ``parse.py``; none of them evaluates text. Sizes are bounded: an exponent
larger than MAX_EXPONENT or a factorial above MAX_FACTORIAL raises EvalError instead of computing.

    exact_value(("div", ("num", 1), ("num", 2)))     -> Fraction(1, 2)
    constant_value(("root", ("num", 117), ("num", 2))) -> mpc(10.816...)
"""

from __future__ import annotations

from fractions import Fraction

import mpmath

MAX_EXPONENT = 1000
MAX_BITS = 20000
MAX_FACTORIAL = 200
MAX_MAGNITUDE = mpmath.mpf(10) ** 400
# \sum / \prod are evaluated term by term only when their bounds are integers and the terms of all nested
# sums together are at most this many; otherwise they stay symbolic and are compared by structure.
MAX_SUM_TERMS = 1000
_CTX = mpmath.MPContext()
_CTX.dps = 40


class EvalError(ValueError):
    """The tree cannot be evaluated this way (symbols, irrational, division by zero)."""


class TooLarge(EvalError):
    """A number, exponent or factorial beyond the limits: the answer is rejected, SymPy never sees it."""


def exact_value(node, env: dict | None = None) -> Fraction:
    """Exact rational value of a tree made only of numbers, + - * /, integer powers, factorials and sums or
    products with small integer bounds. ``env`` holds the values of bound summation variables."""
    kind = node[0]
    if kind == "num":
        return node[1]
    if kind == "sym":
        if env and node[1] in env:
            return env[node[1]]
        raise EvalError("symbol")
    if kind in ("sum", "prod"):
        env = _sum_env(env)
        total = Fraction(0) if kind == "sum" else Fraction(1)
        for k in _sum_range(node, exact_value(node[2], env), exact_value(node[3], env), env):
            term = exact_value(node[4], {**env, node[1]: Fraction(k)})
            total = total + term if kind == "sum" else total * term
            _check_size(total)
        return total
    if kind == "add":
        return sum((exact_value(c, env) for c in node[1]), Fraction(0))
    if kind == "mul":
        out = Fraction(1)
        for c in node[1]:
            out *= exact_value(c, env)
            _check_size(out)
        return out
    if kind == "neg":
        return -exact_value(node[1], env)
    if kind == "div":
        den = exact_value(node[2], env)
        if den == 0:
            raise EvalError("division by zero")
        return exact_value(node[1], env) / den
    if kind == "pow":
        base, exp = exact_value(node[1], env), exact_value(node[2], env)
        if exp.denominator != 1 or abs(exp) > MAX_EXPONENT:
            raise EvalError("non-integer or large exponent")
        if base == 0 and exp < 0:
            raise EvalError("division by zero")
        if abs(exp) * max(abs(base.numerator), abs(base.denominator)).bit_length() > MAX_BITS:
            raise EvalError("too large")
        return base ** int(exp)
    if kind == "fact":
        n = exact_value(node[1], env)
        if n.denominator != 1 or n < 0 or n > MAX_FACTORIAL:
            raise EvalError("factorial")
        import math

        return Fraction(math.factorial(int(n)))
    if kind == "binom":
        n, k = exact_value(node[1], env), exact_value(node[2], env)
        if n.denominator != 1 or k.denominator != 1 or not 0 <= n <= 10 * MAX_FACTORIAL:
            raise EvalError("binomial")
        import math

        return Fraction(math.comb(int(n), int(k)) if k >= 0 else 0)
    if kind == "root":
        value, index = exact_value(node[1], env), exact_value(node[2], env)
        if index.denominator != 1 or not 1 < index <= 20 or value < 0:
            raise EvalError("root")
        r = _exact_root(value, int(index))
        if r is None:
            raise EvalError("irrational root")
        return r
    raise EvalError(kind)


def _sum_env(env: dict | None) -> dict:
    """The evaluation's shared term budget travels in env under the key None (never a symbol's name)."""
    env = dict(env or {})
    env.setdefault(None, [MAX_SUM_TERMS])
    return env


def _sum_range(node, lower, upper, env: dict) -> range:
    """The integer range of a sum's index; EvalError (the sum stays symbolic) when the bounds are not
    integers or the terms would exceed the shared budget of MAX_SUM_TERMS."""
    lo, hi = complex(lower), complex(upper)
    if lo.imag or hi.imag or lo.real != int(lo.real) or hi.real != int(hi.real):
        raise EvalError("sum bounds are not integers")
    count = max(0, int(hi.real) - int(lo.real) + 1)
    budget = env[None]
    if count > budget[0]:
        raise EvalError(f"more than {MAX_SUM_TERMS} terms")
    budget[0] -= count
    return range(int(lo.real), int(hi.real) + 1)


def _check_size(x: Fraction) -> None:
    if x.numerator.bit_length() > MAX_BITS or x.denominator.bit_length() > MAX_BITS:
        raise EvalError("too large")


def _exact_root(value: Fraction, n: int) -> Fraction | None:
    def iroot(k: int) -> int | None:
        r = round(k ** (1.0 / n)) if k.bit_length() < 1000 else None
        if r is None:
            return None
        for c in (r - 1, r, r + 1):
            if c >= 0 and c**n == k:
                return c
        return None

    num, den = iroot(value.numerator), iroot(value.denominator)
    return Fraction(num, den) if num is not None and den is not None else None


def free_symbols(node, out: set | None = None) -> set:
    out = set() if out is None else out
    kind = node[0]
    if kind == "sym":
        out.add(node[1])
    elif kind in ("add", "mul"):
        for c in node[1]:
            free_symbols(c, out)
    elif kind in ("neg", "fact"):
        free_symbols(node[1], out)
    elif kind == "fn":
        free_symbols(node[2], out)
    elif kind in ("sum", "prod"):  # the index is bound: not a free symbol
        free_symbols(node[2], out)
        free_symbols(node[3], out)
        out |= free_symbols(node[4]) - {node[1]}
    elif kind not in ("num", "const"):
        free_symbols(node[1], out)
        free_symbols(node[2], out)
    return out


def complex_value(node, env: dict):
    """Value with symbols taken from ``env`` (40 significant digits, complex); EvalError if undefined."""
    try:
        with _CTX.workdps(40):
            value = _cv(node, env)
    except EvalError:
        raise
    except (ZeroDivisionError, OverflowError, ValueError, TypeError) as err:
        raise EvalError(str(err)) from None
    return value


def constant_value(node):
    """Value of a tree without symbols, or None when it has symbols."""
    if free_symbols(node):
        return None
    return complex_value(node, {})


def _guard(x):
    if _CTX.isnan(x):
        raise EvalError("nan")
    if abs(x) > MAX_MAGNITUDE:
        raise TooLarge("overflow")
    return x


def _cv(node, env):
    c = _CTX
    kind = node[0]
    if kind == "num":
        return c.mpc(c.mpf(node[1].numerator) / node[1].denominator)
    if kind == "sym":
        if node[1] not in env:
            raise EvalError(f"unbound {node[1]}")
        return env[node[1]]
    if kind == "const":
        name = node[1]
        if name == "pi":
            return c.mpc(c.pi)
        if name == "I":
            return c.mpc(0, 1)
        if name == "E":
            return c.mpc(c.e)
        raise EvalError("infinity")
    if kind == "add":
        return _guard(c.fsum(_cv(x, env) for x in node[1]))
    if kind == "mul":
        out = c.mpc(1)
        for x in node[1]:
            out = _guard(out * _cv(x, env))
        return out
    if kind == "neg":
        return -_cv(node[1], env)
    if kind == "div":
        den = _cv(node[2], env)
        if den == 0:
            raise EvalError("division by zero")
        return _guard(_cv(node[1], env) / den)
    if kind == "pow":
        base, exp = _cv(node[1], env), _cv(node[2], env)
        if abs(exp) > MAX_EXPONENT and abs(base) != 1:
            raise TooLarge("large exponent")
        if base == 0:
            if exp.real <= 0:
                raise EvalError("0 to a non-positive power")
            return c.mpc(0)
        if exp.imag == 0 and exp.real == int(exp.real) and base.imag == 0:
            return _guard(c.mpc(base.real ** int(exp.real)))
        if exp.imag == 0 and base.imag == 0 and base.real < 0:
            # real odd root of a negative number: (-8)^(1/3) = -2 in MATH answers
            q = Fraction(float(exp.real)).limit_denominator(100)
            if q.denominator % 2 == 1 and abs(float(exp.real) - float(q)) < 1e-12:
                return _guard(c.mpc((-1) ** q.numerator * c.power(-base.real, c.mpf(q.numerator) / q.denominator)))
        return _guard(c.power(base, exp))
    if kind == "root":
        value, index = _cv(node[1], env), _cv(node[2], env)
        if index.imag != 0 or abs(index) > MAX_EXPONENT or index == 0:
            raise EvalError("root index")
        n = index.real
        if value.imag == 0 and value.real < 0 and n == int(n) and int(n) % 2 == 1:
            return c.mpc(-c.root(-value.real, int(n)))
        return _guard(c.power(value, 1 / index))
    if kind == "fact":
        n = _cv(node[1], env)
        if n.imag == 0 and n.real > MAX_FACTORIAL:
            raise TooLarge("factorial")
        if n.imag != 0 or n.real < 0 or n.real != int(n.real):
            raise EvalError("factorial")
        return c.mpc(c.factorial(int(n.real)))
    if kind == "binom":
        n, k = _cv(node[1], env), _cv(node[2], env)
        if abs(n) > 10 * MAX_FACTORIAL or abs(k) > 10 * MAX_FACTORIAL:
            raise TooLarge("binomial")
        return c.mpc(c.binomial(n.real, k.real))
    if kind == "fn":
        x = _cv(node[2], env)
        if abs(x) > 1e6 and node[1] not in ("abs", "log", "ln", "lg"):
            raise EvalError("large argument")
        name = node[1]
        if name == "abs":
            return c.mpc(abs(x))
        if name == "lg":
            return c.log(x, 10)
        fn = {"sin": c.sin, "cos": c.cos, "tan": c.tan, "sec": c.sec, "csc": c.csc, "cot": c.cot,
              "arcsin": c.asin, "arccos": c.acos, "arctan": c.atan, "sinh": c.sinh, "cosh": c.cosh,
              "tanh": c.tanh, "log": c.log, "exp": c.exp}[name]
        if name == "exp" and abs(x) > 900:
            raise TooLarge("large exponent")
        if name == "log" and x == 0:
            raise EvalError("log 0")
        return _guard(fn(x))
    if kind in ("sum", "prod"):
        env = _sum_env(env)
        terms = []
        for k in _sum_range(node, _cv(node[2], env), _cv(node[3], env), env):
            terms.append(_cv(node[4], {**env, node[1]: c.mpc(k)}))
        if kind == "sum":
            return _guard(c.fsum(terms))
        out = c.mpc(1)
        for t in terms:
            out = _guard(out * t)
        return out
    if kind == "pm":
        raise EvalError("\\pm")
    raise EvalError(kind)


def to_sympy(node):
    """Build a SymPy expression from a tree (only in a worker process; sizes were checked before)."""
    import sympy as sp

    kind = node[0]
    if kind == "num":
        return sp.Rational(node[1].numerator, node[1].denominator)
    if kind == "sym":  # positive, like the numeric test points: sqrt(x^2) = x, (x^2)^(1/3) = x^(2/3)
        return sp.Symbol(node[1], positive=True)
    if kind == "const":
        return {"pi": sp.pi, "I": sp.I, "E": sp.E, "oo": sp.oo}[node[1]]
    if kind == "add":
        return sp.Add(*[to_sympy(c) for c in node[1]])
    if kind == "mul":
        return sp.Mul(*[to_sympy(c) for c in node[1]])
    if kind == "neg":
        return -to_sympy(node[1])
    if kind == "div":
        return to_sympy(node[1]) / to_sympy(node[2])
    if kind == "pow":
        return sp.Pow(to_sympy(node[1]), to_sympy(node[2]))
    if kind == "root":
        value, index = to_sympy(node[1]), to_sympy(node[2])
        if index.is_Integer and int(index) % 2 == 1 and value.is_number and value.is_negative:
            return -sp.root(-value, index)
        return sp.root(value, index)
    if kind == "fact":
        return sp.factorial(to_sympy(node[1]))
    if kind == "binom":
        return sp.binomial(to_sympy(node[1]), to_sympy(node[2]))
    if kind == "fn":
        arg = to_sympy(node[2])
        if node[1] == "abs":
            return sp.Abs(arg)
        if node[1] == "lg":
            return sp.log(arg, 10)
        fn = {"sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "sec": sp.sec, "csc": sp.csc, "cot": sp.cot,
              "arcsin": sp.asin, "arccos": sp.acos, "arctan": sp.atan, "sinh": sp.sinh, "cosh": sp.cosh,
              "tanh": sp.tanh, "log": sp.log, "exp": sp.exp}[node[1]]
        return fn(arg)
    if kind in ("sum", "prod"):  # kept unevaluated: SymPy compares the structures
        index = sp.Symbol(node[1], integer=True)
        body = to_sympy(node[4]).subs(sp.Symbol(node[1], positive=True), index)
        big = sp.Sum if kind == "sum" else sp.Product
        return big(body, (index, to_sympy(node[2]), to_sympy(node[3])))
    raise EvalError(kind)
