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

from e2h.text_format import extract_final_answer

MAX_ANSWER_CHARS = 1000  # an "answer" longer than this is not an answer

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\b")
# Text allowed between two boxes that are read as one list answer ("\boxed{1} and \boxed{2}").
_BOX_GLUE_RE = re.compile(r"^(?:[\s,;.$()]|\\[()\[\]]|\\quad|\\qquad|\\,|\\ |\\text\{|\}|and|or|\w+)*$")
_GLUE_WORDS_BOX = {"and", "for", "part"}  # "\\boxed{A}, or \\boxed{B}" are alternatives: the last wins
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
    """The final answer written in ``text`` (see the module docstring), or None when there is none."""
    if not text:
        return None
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed or None
    answer = extract_final_answer(text)
    if answer is not None:
        return answer
    return _answer_is(text)


_MATH_SEGMENT_RE = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|\\\((.+?)\\\)|\$([^$\n]+?)\$", re.DOTALL)


def answer_candidate(text: str | None, bare_max_chars: int = 200) -> str | None:
    """What ``grade`` compares: the extracted answer, else the text itself when it is short (a bare
    answer such as "1/2" or "$x=3$"; in a short sentence its last math), else None."""
    if text is None:
        return None
    answer = extract_answer(text)
    if answer is not None:
        return answer
    stripped = text.strip()
    if not stripped or len(stripped) > bare_max_chars:
        return None
    return prose_to_math(stripped)


_NUMBER_RE = re.compile(r"(?<![\w.\\/])-?\d+(?:,\d{3})*(?:\.\d+)?")
_GLUE_WORDS = {"and", "or"}


def prose_to_math(text: str) -> str:
    """'Therefore $x \\geq 5$ is the solution.' -> 'x \\geq 5'; 'The volume is 120' -> '120';
    '$1$ and $2$' -> '1, 2'. Text without prose words is returned unchanged."""
    segments = [(m.start(), m.end(), next(g for g in m.groups() if g is not None))
                for m in _MATH_SEGMENT_RE.finditer(text)]
    outside = _MATH_SEGMENT_RE.sub(lambda m: " " * len(m.group(0)), text)  # keeps positions
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
