"""Answer extraction: find the final answer inside a model's solution text.

Priority (first hit wins)::

    "... so $x = \\boxed{\\frac{1}{2}}$."      -> "\\frac{1}{2}"      last \\boxed{..} / \\fbox{..}
    "...\\n\\n# Answer\\n\\n3"                  -> "3"                 e2h's own answer line
    "Final Answer: The final answer is $5$."  -> "$5$"               lm-eval / Minerva style
    "... so the answer is 12."                -> "12"
    "We worked hard."                         -> None

Every scan is linear in the text length (no backtracking regexes over model output).
"""

from __future__ import annotations

import re

from e2h.grading.parse import FUNCTIONS
from e2h.text_format import extract_final_answer

MAX_ANSWER_CHARS = 1000  # an "answer" longer than this is not an answer

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\b")
# Text allowed between two boxes that are read as one list answer ("\boxed{1} and \boxed{2}").
_BOX_GLUE_RE = re.compile(r"^(?:[\s,;.$()]|\\[()\[\]]|\\quad|\\qquad|\\,|\\ |\\text\{|\}|and|or|\w+)*$")
_GLUE_WORDS_BOX = {"and", "for", "part"}  # "\\boxed{A}, or \\boxed{B}" are alternatives: the last wins
# Glue parts that name or qualify a box and do not break a list: the next box's label ("and y_2 = \\boxed{..}")
# and one unit word right after a box when "and" follows ("\\boxed{1} papers and \\boxed{2} bins").
_GLUE_LABEL_RE = re.compile(r"(?<![\\\w])[A-Za-z](?:_\{?\w+\}?)?(?:\([A-Za-z]\))?\s*=\s*(?=[$\\]|$)")
_GLUE_UNIT_RE = re.compile(r"^\s*(?:\\text\{\s*)?[A-Za-z]{2,}\s*\}?(?=[\s$,]*and\b)")
_FINAL_ANSWER_RE = re.compile(r"final answer(?: is|:)", re.IGNORECASE)
_ANSWER_IS_RE = re.compile(
    r"(?:final answer is|final answer:|answer is:?|answer:)\s*", re.IGNORECASE
)
_HOPE_RE = re.compile(r"\.?\s*I hope it is correct.*$", re.IGNORECASE | re.DOTALL)


def _group_end(text: str, start: int) -> int:
    """Index just past the brace group opening at text[start] == '{', or -1 if unbalanced."""
    depth = 0
    i = start
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2  # an escaped brace "\{" does not open a group
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return -1


def boxed_spans(text: str) -> list[tuple[int, int, str]]:
    """All \\boxed{..}/\\fbox{..} contents as (start, end, content); \\boxed 5 (no braces) too."""
    spans = []
    for m in _BOX_RE.finditer(text):
        i = m.end()
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            end = _group_end(text, i)
            if end < 0:
                continue
            spans.append((m.start(), end, text[i + 1 : end - 1]))
        elif m.group(0) == "\\boxed" and i > m.end():  # "\boxed 5": one token up to a delimiter
            j = i
            while j < len(text) and text[j] not in " $\n.,":
                j += 1
            if j > i:
                spans.append((m.start(), j, text[i:j]))
    return spans


def last_boxed(text: str) -> str | None:
    """Content of the last box; boxes joined only by 'and' / commas / short words form one list answer."""
    spans = boxed_spans(text)
    if not spans:
        return None
    group = [spans[-1]]
    for prev in reversed(spans[:-1]):
        glue = text[prev[1] : group[0][0]]
        if len(glue) <= 60:
            glue = _GLUE_UNIT_RE.sub(" ", _GLUE_LABEL_RE.sub(" ", glue))
        words = re.findall(r"[A-Za-z]{2,}", re.sub(r"\\[A-Za-z]+", " ", glue))
        if len(glue) > 60 or any(w.lower() not in _GLUE_WORDS_BOX for w in words) or not _BOX_GLUE_RE.match(glue):
            break
        group.insert(0, prev)
    return ", ".join(s[2].strip() for s in group).strip()


def _answer_is(text: str) -> str | None:
    """'The final answer is X.' / 'Final Answer: X' / 'the answer is X' -> X (to the end of its line)."""
    last = None
    for m in _ANSWER_IS_RE.finditer(text):
        last = m
    if last is None:
        return None
    rest = text[last.end() :]
    rest = _HOPE_RE.sub("", rest.split("\n")[0]).strip()
    if len(rest) > MAX_ANSWER_CHARS:
        return None
    if rest.lower().startswith("the final answer is"):
        rest = rest[len("the final answer is") :].strip()
    rest = rest.rstrip(" .")
    return prose_to_math(rest) if rest else None


def extract_answer(text: str | None) -> str | None:
    """The final answer written in ``text`` (see the module docstring), or None when there is none.

    A "Final Answer: The final answer is X" statement written after the last box wins over it: the
    boxes were intermediate results ("... = \\boxed{255}. ... The final answer is $10,455$.")."""
    if not text:
        return None
    boxed = last_boxed(text)
    if boxed is not None:
        tail = text[boxed_spans(text)[-1][1] :]
        if _FINAL_ANSWER_RE.search(tail):
            final = _answer_is(tail)
            if final and re.search(r"\d", final):
                return final
        return boxed or None
    answer = extract_final_answer(text)
    if answer is not None:
        return answer
    return _answer_is(text)


# $..$ may contain an escaped dollar sign (\\$5 inside math); it is not a delimiter.
_MATH_SEGMENT_RE = re.compile(
    r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|\\\((.+?)\\\)|(?<!\\)\$((?:\\\$|[^$\n])+?)(?<!\\)\$", re.DOTALL
)


def answer_candidate(text: str | None, bare_max_chars: int = 200) -> str | None:
    """What ``grade`` compares: the extracted answer, else the text itself when it is short (a bare
    answer such as "1/2" or "$x=3$"; in a short sentence its last math), else None."""
    if text is None:
        return None
    answer = extract_answer(text)
    if answer is not None:
        return answer
    stripped = text.strip()
    if not stripped or len(stripped) > bare_max_chars or "\n\n" in stripped:
        return None  # a bare answer is one short paragraph; several paragraphs are a solution without an answer
    return prose_to_math(stripped)


# A number in prose, whole: thousands commas (10,455), decimals, and a European decimal comma (2,74; the
# same rule as a bare answer in normalize.clean_answer).
_NUMBER_RE = re.compile(r"(?<![\w.\\/])-?\d+(?:(?:,\d{3})+(?!\d)(?:\.\d+)?|,\d{2}(?![\d,])|\.\d+)?")
# Inside $..$ an English word (3+ letters, lower case after an optional capital; not a function, not the
# list glue "and") or a '?' means the dollar signs were money or prose, not math delimiters:
# "how many $? just about 1$" -> 1. Commands and subscripts (S_{MBCN}) are removed before the search.
_NOT_PROSE = sorted(FUNCTIONS | {"sqrt", "infty", "inf", "infinity", "and"})
_PROSE_IN_MATH_RE = re.compile(
    r"\?|(?<![A-Za-z])(?!(?:" + "|".join(_NOT_PROSE) + r")\b)(?:[A-Z][a-z]{2,}|[a-z]{3,})(?![A-Za-z])"
)
_MATH_NOISE_RE = re.compile(r"\\[A-Za-z]+(\{[^{}]*\})?|_\{[^{}]*\}")
_GLUE_WORDS = {"and", "or"}


def prose_to_math(text: str) -> str:
    """'Therefore $x \\geq 5$ is the solution.' -> 'x \\geq 5'; 'The volume is 120' -> '120';
    '$1$ and $2$' -> '1, 2'. Text without prose words is returned unchanged."""
    segments, outside = [], text
    for m in _MATH_SEGMENT_RE.finditer(text):
        body = next(g for g in m.groups() if g is not None)
        if m.group(4) is not None and _PROSE_IN_MATH_RE.search(_MATH_NOISE_RE.sub(" ", body)):
            continue  # "$? just about 1$": not math
        segments.append((m.start(), m.end(), body))
        outside = outside[: m.start()] + " " * (m.end() - m.start()) + outside[m.end() :]  # keeps positions
    words = re.findall(r"[A-Za-z]{2,}", re.sub(r"\\[A-Za-z]+(\{[^{}]*\})?", " ", outside))
    if not words:
        if len(segments) == 1 and segments[0][0] == 0 and segments[0][1] == len(text):
            return segments[0][2].strip()  # "$5$" -> "5"
        return text
    if segments and all(w.lower() in _GLUE_WORDS for w in words) and len(segments) > 1:
        return ", ".join(seg[2].strip() for seg in segments)
    candidates = [(end, body.strip()) for _, end, body in segments]
    for m in _NUMBER_RE.finditer(outside):
        candidates.append((m.end(), m.group(0)))
    if not candidates:
        return text
    return max(candidates)[1]


_CHOICE_AFTER_ANSWER_RE = re.compile(
    r"(?i:answer)(?:\s+is\b|\s*:)\s*(?:[a-z]+\s+){0,3}?\(?([A-E])\)?(?![\w'])"
)
_CHOICE_LEADING_RE = re.compile(r"^\s*\(?([A-E])(?:[.):]|\s*$|\s*\n|\s+[A-Z][a-z])")
_CHOICE_STANDALONE_RE = re.compile(r"(?<![\w'\\])\(?([A-E])\)?(?![\w'])")


def choice_letter(text: str | None) -> str | None:
    """The multiple-choice letter A-E a sentence picks; used only against a bare letter on the other side.

        "The answer is for sure D, it can't be A or B"  -> "D"   (after "answer is" / "answer:")
        "C. x = 42" | "A Peter\nCelina bum"            -> "C" | "A"  (leads the text, as an option line)
        "It's not A, therefore I think it's B"          -> "B"   (else the last standalone letter)
    """
    if not text or len(text) > 4 * MAX_ANSWER_CHARS:
        return None
    for regex in (_CHOICE_AFTER_ANSWER_RE, _CHOICE_LEADING_RE):
        m = regex.search(text)
        if m:
            return m.group(1)
    last = None
    for m in _CHOICE_STANDALONE_RE.finditer(text):
        last = m
    return last.group(1) if last else None
