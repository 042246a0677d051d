"""``grading.mode: prm800k_strict``: the grader behind the paper's accuracies and PPO rewards.

The reference (Sun et al. 2024) grades with PRM800K's grader (openai/prm800k, grading/grader.py and
math_normalize.py, MIT licence, (c) OpenAI) with its SymPy check commented out. What is left decides by strings:

1. the Hendrycks MATH ("mathd") normalisation of both answers; equal -> correct;
2. PRM800K's own normalisation of both (dollars, percent, unit words, thousands commas, LaTeX to text,
   spaces, braces, lower case); equal -> correct;
3. the tuple/interval walk: brackets and element counts must agree, and every element must be a fraction
   "a/b" equal as a string to its partner; any other element would have gone to SymPy, which is off -> wrong.

This is an independent re-implementation of those rules (no code copied). The one approximation: PRM800K turns
LaTeX into text with pylatexenc; :func:`_latex_to_text` does the same for the macros MATH answers use
(\\frac -> a/b, \\sqrt -> sqrt(x), \\pi -> pi, \\infty -> inf, \\cup -> U, \\cdot and \\times -> *, letters and
relations to their Unicode signs, unknown macros dropped, groups to their contents). Nothing is evaluated: the
answers are only rewritten as strings.
"""

from __future__ import annotations

import re
import unicodedata

# ----------------------------------------------------------------------------- 1. mathd (Hendrycks) normalisation

_TEXT_RE = re.compile(r"^\\text\{(?P<text>.+?)\}$")


def _mathd_fracs(s: str) -> str:
    head, *rest = s.split("\\frac")
    out = head
    for part in rest:
        out += "\\frac"
        if part[0] == "{":  # an empty tail raises, as the original does (the caller keeps the raw answer)
            out += part
            continue
        if len(part) < 2:
            return s
        a, b, tail = part[0], part[1], part[2:]
        out += "{" + a + "}" + (b if b == "{" else "{" + b + "}") + tail
    return out


def _mathd_slash(s: str) -> str:
    parts = s.split("/")
    if len(parts) != 2:
        return s
    try:
        a, b = int(parts[0]), int(parts[1])
    except ValueError:
        return s
    return f"\\frac{{{a}}}{{{b}}}" if s == f"{a}/{b}" else s


def _mathd_sqrt(s: str) -> str:
    head, *rest = s.split("\\sqrt")
    return head + "".join("\\sqrt" + (p if p[0] == "{" else "{" + p[0] + "}" + p[1:]) for p in rest)


class _Keep(Exception):
    """The original's assertion or index error: the answer is kept as it came."""


def mathd_normalize(answer: str | None) -> str | None:
    if answer is None:
        return None
    answer = answer.strip()
    try:
        m = _TEXT_RE.search(answer)
        if m is not None:
            answer = m.group("text").strip()
        return _mathd_strip(answer)
    except (_Keep, IndexError):
        return answer


def _mathd_strip(s: str) -> str:
    s = s.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac").replace("\\left", "").replace("\\right", "")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "").replace("\\$", "")
    if "\\text{ " in s:  # units on the right; the original asserts a single occurrence
        pieces = s.split("\\text{ ")
        if len(pieces) != 2:
            raise _Keep
        s = pieces[0]
    s = s.replace("\\%", "")
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    sides = s.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:  # "k = 3" -> " 3"
        s = sides[1]
    s = _mathd_sqrt(s) if "\\sqrt" in s else s
    s = s.replace(" ", "")
    s = _mathd_fracs(s)
    if s == "0.5":
        s = "\\frac{1}{2}"
    return _mathd_slash(s)


# ----------------------------------------------------------------------------- 2. PRM800K's normalisation

_UNITS = ("degree", "cm", "centimeter", "meter", "mile", "second", "minute", "hour", "day", "week", "month",
          "year", "foot", "feet", "inch", "yard")
_UNIT_RES = [re.compile(unit + r"(es)?(s)? *(\^[0-9]+)?") for unit in _UNITS]
_THOUSANDS_RE = re.compile(r"(\d)(,)(\d\d\d)($|\D)")
_MIXED_RE = re.compile(r"([0-9]) +([0-9])")


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _near_int(x: float) -> bool:
    try:
        return abs(x - int(round(x))) <= 1e-7
    except (OverflowError, ValueError):
        return False


def _strip_thousands(s: str) -> str:
    while True:
        nxt = _THOUSANDS_RE.sub(r"\1\3\4", s)
        if nxt == s:
            return s
        s = nxt


def _str_is_int(s: str) -> bool:
    s = _strip_thousands(s)
    return _is_float(s) and _near_int(float(s))


def normalize(expr: str | None) -> str | None:
    """PRM800K's ``_normalize``, rule for rule."""
    if expr is None:
        return None
    m = _TEXT_RE.search(expr)
    if m is not None:
        expr = m.group("text")
    expr = expr.replace("\\%", "%").replace("\\$", "$").replace("$", "").replace("%", "")
    expr = expr.replace(" or ", " , ").replace(" and ", " , ")
    expr = expr.replace("million", "*10^6").replace("billion", "*10^9").replace("trillion", "*10^12")
    for unit in _UNIT_RES:
        expr = unit.sub("", expr)
    expr = re.sub(r"\^ *\\circ", "", expr)
    if expr and expr[0] == "{" and expr[-1] == "}":
        expr = expr[1:-1]
    expr = re.sub(r",\\! *", "", expr)
    if _is_float(expr) and _near_int(float(expr)):
        expr = str(int(round(float(expr))))
    if "\\" in expr:
        expr = _latex_to_text(expr.replace("\\tfrac", "\\frac").replace("\\dfrac", "\\frac")
                              .replace("\\frac", " \\frac")).strip()
    expr = re.sub("- *", "-", expr)
    expr = _MIXED_RE.sub(r"\1+\2", expr)
    expr = expr.replace(" ", "").replace("{", "").replace("}", "").lower()
    if _str_is_int(expr):
        expr = str(int(float(expr.replace(",", ""))))
    return expr


# LaTeX to text, after pylatexenc's latex2text defaults (what PRM800K calls), for the macros answers use
_SYMBOLS = {
    "pi": "pi", "infty": "inf", "cup": "U", "cdot": "*", "times": "*",  # PRM800K's own replacements
    "pm": "\u00b1", "mp": "\u2213", "le": "\u2264", "leq": "\u2264", "ge": "\u2265", "geq": "\u2265",
    "ne": "\u2260", "neq": "\u2260", "circ": "\u2218", "cap": "\u2229", "in": "\u2208", "to": "\u2192",
    "rightarrow": "\u2192", "ldots": "\u2026", "dots": "\u2026", "cdots": "\u22ef", "emptyset": "\u2205",
    "varnothing": "\u2205", "approx": "\u2248", "div": "\u00f7", "angle": "\u2220",
    ",": " ", ";": " ", ":": " ", " ": " ", "!": "", "quad": "  ", "qquad": "    ",
    "{": "{", "}": "}", "%": "%", "$": "$", "&": "&", "#": "#", "_": "_",
}
_GREEK = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron rho sigma tau "
          "upsilon phi chi psi omega").split()
for _name in _GREEK:
    _unicode_name = "LAMDA" if _name == "lambda" else _name.upper()  # Unicode spells it so
    _SYMBOLS.setdefault(_name, unicodedata.lookup(f"GREEK SMALL LETTER {_unicode_name}"))
    _SYMBOLS[_name.capitalize()] = unicodedata.lookup(f"GREEK CAPITAL LETTER {_unicode_name}")
_SYMBOLS["pi"] = "pi"
_MAX_LATEX_DEPTH = 100


def _latex_to_text(s: str) -> str:
    out, _ = _latex_run(s, 0, 0, closing=False)
    return out


def _latex_arg(s: str, i: int, depth: int) -> tuple[str, int]:
    """One macro argument from s[i:]: a {group} or a single token."""
    while i < len(s) and s[i].isspace():
        i += 1
    if i >= len(s):
        return "", i
    if s[i] == "{":
        return _latex_run(s, i + 1, depth + 1, closing=True)
    if s[i] == "\\":
        return _latex_macro(s, i, depth)
    return s[i], i + 1


def _latex_macro(s: str, i: int, depth: int) -> tuple[str, int]:
    j = i + 1
    while j < len(s) and s[j].isalpha():
        j += 1
    if j == i + 1 and j < len(s):  # a one-character macro: \, \{ \%
        j += 1
    name = s[i + 1:j]
    if name in ("frac", "nicefrac", "textfrac"):
        num, j = _latex_arg(s, j, depth)
        den, j = _latex_arg(s, j, depth)
        return f"{num}/{den}", j
    if name == "sqrt":
        k = j
        while k < len(s) and s[k].isspace():
            k += 1
        if k < len(s) and s[k] == "[":  # the degree is dropped, as latex2text's default does
            end = s.find("]", k)
            j = end + 1 if end >= 0 else len(s)
        radicand, j = _latex_arg(s, j, depth)
        return f"sqrt({radicand})", j
    return _SYMBOLS.get(name, ""), j  # \text, \mathrm, \left, \boxed ...: dropped, their group read as text


def _latex_run(s: str, i: int, depth: int, closing: bool) -> tuple[str, int]:
    if depth > _MAX_LATEX_DEPTH:
        raise _Keep
    out = []
    while i < len(s):
        ch = s[i]
        if ch == "}" and closing:
            return "".join(out), i + 1
        if ch == "{":
            text, i = _latex_run(s, i + 1, depth + 1, closing=True)
            out.append(text)
        elif ch == "\\":
            text, i = _latex_macro(s, i, depth)
            out.append(text)
        else:
            out.append(ch)
            i += 1
    return "".join(out), i


# ----------------------------------------------------------------------------- 3. the verdict

_BRACKETS = "()[]"
_FRAC_RE = re.compile(r"^-?[0-9]+.?/0*[1-9][0-9]*.?$")


def _elements(expr: str) -> list[str]:
    expr = _strip_thousands(expr)
    if not expr:
        return []
    if (len(expr) > 2 and expr[0] in _BRACKETS and expr[-1] in _BRACKETS
            and not any(ch in expr[1:-1] for ch in _BRACKETS)):
        return [e.strip() for e in expr[1:-1].split(",")]
    return [expr]


def grade_answer(given: str | None, gold: str) -> tuple[bool, str, str | None, str | None]:
    """(correct, reason, given normalised, gold normalised) under PRM800K's grader with SymPy off.

    Reasons: "prm800k_mathd" (equal after the MATH normalisation), "prm800k_normalized" (equal after PRM800K's),
    "prm800k_elements" (a tuple of equal fractions), "prm800k_mismatch" (anything else: no value comparison)."""
    if given is None:
        return False, "no_answer", None, normalize(gold)
    try:
        if mathd_normalize(gold) == mathd_normalize(given):
            return True, "prm800k_mathd", normalize(given), normalize(gold)
        gold_n, given_n = normalize(gold), normalize(given)
    except (_Keep, RecursionError):
        return False, "too_deep", None, None
    if gold_n is None:
        return False, "prm800k_mismatch", given_n, gold_n
    if gold_n == given_n:
        return True, "prm800k_normalized", given_n, gold_n
    if not given_n:
        return False, "prm800k_mismatch", given_n, gold_n
    gold_elems, given_elems = _elements(gold_n), _elements(given_n)
    if len(gold_elems) > 1 and (gold_n[0] != given_n[0] or gold_n[-1] != given_n[-1]):
        return False, "prm800k_mismatch", given_n, gold_n
    if len(gold_elems) != len(given_elems):
        return False, "prm800k_mismatch", given_n, gold_n
    for g, p in zip(gold_elems, given_elems):
        # two fractions must be the same string (unreduced is wrong); anything else went to SymPy, which is off
        if not (_FRAC_RE.search(g) and _FRAC_RE.search(p) and g == p):
            return False, "prm800k_mismatch", given_n, gold_n
    return True, "prm800k_elements", given_n, gold_n
