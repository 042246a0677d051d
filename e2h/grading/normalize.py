"""String normalisation: strip LaTeX noise that never changes an answer's value (MATH conventions).

``clean_answer`` keeps the answer parseable LaTeX; ``normalize_answer`` goes further and returns a
canonical key for voting, e.g.::

    \\dfrac{1}{2} | \\frac12 | 0.5 | 1/2 | $\\frac{1}{2}$   ->  "1/2"
    x = 3 | 3.0 | \\boxed{3} | 3^\\circ | 3\\text{ cm}    ->  "3"
    \\$32,\\!348 | 32{,}348 | 32348                       ->  "32348"
    10\\% | 10 percent                                   ->  "10"      (MATH: the percent sign is dropped)
    -2, 1 | 1,-2                                        ->  "{-2,1}"  (unordered list of solutions)
"""

from __future__ import annotations

import re

from e2h.grading.extract import MAX_ANSWER_CHARS, UNIT_WORDS as _UNIT_WORDS, last_boxed

_TEXT_CMDS = r"(?:text|textbf|textit|textnormal|textrm|mbox|mathrm|mathbf|mathit|mathsf|mathcal|mathbb|operatorname|rm|bf)"
_TEXT_GROUP_RE = re.compile(r"\\" + _TEXT_CMDS + r"\s*\{([^{}]*)\}")
# A unit in \text{..} (any words) or bare unit words after a number; optional ^2 / ^3.
_TEXT_UNIT_RE = re.compile(r"\\" + _TEXT_CMDS + r"\s*\{\s*[A-Za-z][A-Za-z .]*\}(?:\^\{?\d\}?)?")
# A one-letter unit (s, m, g, l) needs a space before it: "2 s" is two seconds, "2s" and "3s^2" are math.
_BARE_UNIT_RE = re.compile(r"(?:(?<=[\d}])|\s)\s*(?!(?-i:[A-Za-z])\b)" + _UNIT_WORDS
                           + r"(?:\^\{?\d\}?|²|³)?\s*$|\s+[smgl](?:\^\{?\d\}?|²|³)?$", re.IGNORECASE)
_PERCENT_RE = re.compile(r"\\?%|\s*\b(?:percentage|percent|pct)\b", re.IGNORECASE)
_SPACING_RE = re.compile(r"(?<!\\)\\[,;:! ]|\\q?quad|~|\\displaystyle\b|\\(?:big|Big|bigg|Bigg)[lr]?\b")
# `,\!` between digits only ever pulls a grouping comma tight: one number whatever the group sizes
# (56,\!01,\!78,\!95,\!760 is Indian grouping). `{,}` may also be a decimal comma, so it needs 3 digits;
# TeX ignores spaces in math mode, so "14 {, }916" is 14{,}916.
_TIGHT_COMMA_RE = re.compile(r"(?<=\d),\s?\\!\s?(?=\d)")
_THOUSANDS_RE = re.compile(r"(?<=\d)(?:\s*\{,\s*\}\s*|,\\,|\\,)(?=\d{3}\b)")
_PLAIN_THOUSANDS_RE = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_SPACE_THOUSANDS_RE = re.compile(r"^[+-]?\d{1,3}(?: \d{3})+(?:\.\d+)?$")
_DECIMAL_COMMA_RE = re.compile(r"^(\d+),(\d{2}|\d{4,})$|^(0),(\d+)$")
_MIXED_RE = re.compile(r"^([+-]?\d+)\s*\\frac\{(\d+)\}\{(\d+)\}$|^([+-]?\d+)\s+(\d+)/(\d+)$")
_CHOICE_RE = re.compile(r"^\(?([A-E])\)?(?:\s+[A-Z][a-z]+)?$")


def _unwrap_delimiters(s: str) -> str:
    s = s.strip()
    for left, right in (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$")):
        if s.startswith(left) and s.endswith(right) and len(s) >= len(left) + len(right):
            s = s[len(left) : len(s) - len(right)].strip()
    return s


def clean_answer(answer: str, comma_in_number: bool = True) -> str:
    """Remove presentation-only LaTeX; the result is still LaTeX-like and is what the parser reads.

    ``comma_in_number``: read a bare "1,22" as the European decimal 1.22 and "81,256" as 81256 (False: both
    as lists; the grader tries that reading against a list gold)."""
    s = answer.strip()
    if len(s) > MAX_ANSWER_CHARS:
        return s
    boxed = last_boxed(s)
    if boxed is not None:
        s = boxed
    s = re.sub(r"(?<!\\)\\\\(?=[A-Za-z])", r"\\", s)  # doubly escaped "\\frac" -> "\frac"
    s = re.sub(r"\\phantom\s*(?:\{[^{}]*\}|\\?.)", "", s)  # invisible: "\\phantom -1" shows "1"
    s = s.replace("\\$", "").replace("$", " ").replace("\\(", " ").replace("\\)", " ")
    s = s.replace("\\[", " ").replace("\\]", " ").replace("\n", " ")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\cfrac", "\\frac")
    s = re.sub(r"\\(?:left|right)\s*", "", s)
    s = _TIGHT_COMMA_RE.sub("", s)
    s = _THOUSANDS_RE.sub("", s)
    s = _SPACING_RE.sub(" ", s)
    s = re.sub(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|°|\\degree", "", s)
    s = _PERCENT_RE.sub("", s)
    s = re.sub(r"\\text\{\s*(and|or)\s*\}", r" \1 ", s)
    s = _TEXT_UNIT_RE.sub(lambda m: m.group(0) if _only_text(s, m) else " ", s)
    s = re.sub(r"\s+", " ", s).strip()
    s = _BARE_UNIT_RE.sub("", s).strip() if re.search(r"\d", s) else s
    s = _TEXT_GROUP_RE.sub(lambda m: m.group(1), s)  # remaining \text{Evelyn} -> Evelyn
    s = re.sub(r",?\s+(?:and|or)\s+|\s*;\s*", ", ", s)  # "19, 46, and 82": the Oxford comma too
    s = re.sub(r"\s+", " ", s).strip().rstrip(".\\").strip()
    s = re.sub(r"^\\?in\s+|^[a-zA-Z]\s*\\in(?![A-Za-z])\s*", "", s)  # "x \\in [-2,7]", "x\\in[-2,7]"
    s = re.sub(r"^(?:\\approx|=)\s*", "", s).rstrip(",").strip()  # "\\approx 8.24", "\\text{(E)},"
    s = re.sub(r"(?<=[)\]])\s*(?:or|and)\s*(?=[(\[])", ", ", s)  # (11,7)or(7,11)
    m = _DECIMAL_COMMA_RE.match(s) if comma_in_number else None
    if m:  # European decimal comma: "1,22" -> "1.22", "0,111" -> "0.111" (not "1,2": a list)
        whole, frac = [g for g in m.groups() if g is not None]
        s = f"{whole}.{frac}"
    if _PLAIN_THOUSANDS_RE.match(s) and comma_in_number:
        s = s.replace(",", "")
    elif _SPACE_THOUSANDS_RE.match(s):
        s = s.replace(" ", "")
    m = _MIXED_RE.match(s)
    if m:  # mixed number 7\frac{3}{4} -> 7+3/4 (keeps the sign on the fraction)
        whole, num, den = [g for g in m.groups() if g is not None]
        sign = "-" if whole.startswith("-") else "+"
        s = f"{whole}{sign}\\frac{{{num}}}{{{den}}}"
    m = _CHOICE_RE.match(s)
    if m:
        s = m.group(1)
    return s


def _only_text(s: str, m: re.Match) -> bool:
    """True when the \\text{..} group is the whole answer (a word answer, not a unit)."""
    rest = (s[: m.start()] + s[m.end() :]).strip(" .,")
    return not rest or not re.search(r"[\dA-Za-z]", rest)


def normalize_answer(answer: str | None) -> str:
    """Canonical key: answers the grader calls equal usually share it (see module docstring)."""
    if answer is None:
        return ""
    from e2h.grading.parse import ParseError, canonical_key, parse_answer  # local: parse imports us

    cleaned = clean_answer(answer)
    if len(cleaned) > MAX_ANSWER_CHARS:
        return cleaned
    try:
        return canonical_key(parse_answer(cleaned))
    except ParseError:
        return re.sub(r"\s+", "", cleaned)
