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
# One character or one command per step, the alternatives disjoint by their first characters: no
# backtracking on a glue that fails ("1111...1!" between two boxes would be exponential with \w+ in a star).
_BOX_GLUE_RE = re.compile(r"^(?:[\s,;.$()}\w]|\\[()\[\], ]|\\q?quad|\\text\{)*$")
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


def closing_braces(text: str) -> dict[int, int]:
    """Index of each '{' -> index just past its matching '}', in one left-to-right pass (linear time; an
    escaped brace "\\{" is not a group). Braces left open at the end have no entry."""
    closes: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACE_TOKEN_RE.finditer(text):
        c = m.group()
        if c == "{":
            stack.append(m.start())
        elif c == "}" and stack:
            closes[stack.pop()] = m.end()
    return closes


_BRACE_TOKEN_RE = re.compile(r"\\.|[{}]", re.DOTALL)  # an escape is one unit: "\\{" opens nothing


def boxed_spans(text: str) -> list[tuple[int, int, str]]:
    """All \\boxed{..}/\\fbox{..} contents as (start, end, content); \\boxed 5 (no braces) too.

    Linear in the text: brace groups are matched once for the whole text, not once per box (a box
    nested in a box, or left open, would otherwise rescan the rest of the text)."""
    spans = []
    closes: dict[int, int] | None = None
    for m in _BOX_RE.finditer(text):
        i = m.end()
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            if closes is None:
                closes = closing_braces(text)
            end = closes.get(i, -1)
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


def last_boxed(text: str, spans: list[tuple[int, int, str]] | None = None) -> str | None:
    """Content of the last box; boxes joined only by 'and' / commas / short words form one list answer."""
    spans = boxed_spans(text) if spans is None else spans
    if not spans:
        return None
    group = [spans[-1]]  # built backwards (appending keeps the walk linear), reversed at the end
    size = len(spans[-1][2])
    for prev in reversed(spans[:-1]):
        if size > MAX_ANSWER_CHARS:
            break  # already too long to be an answer: more boxes cannot change that verdict
        glue = text[prev[1] : group[-1][0]]
        if len(glue) > 60:
            break
        glue = _GLUE_UNIT_RE.sub(" ", _GLUE_LABEL_RE.sub(" ", glue))
        words = re.findall(r"[A-Za-z]{2,}", re.sub(r"\\[A-Za-z]+", " ", glue))
        if any(w.lower() not in _GLUE_WORDS_BOX for w in words) or not _BOX_GLUE_RE.match(glue):
            break
        group.append(prev)
        size += len(prev[2]) + 2
    return ", ".join(s[2].strip() for s in reversed(group)).strip()


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
    spans = boxed_spans(text)
    boxed = last_boxed(text, spans)
    if boxed is not None:
        tail = text[spans[-1][1] :]
        if _FINAL_ANSWER_RE.search(tail):
            final = _answer_is(tail)
            if final and re.search(r"\d", final):
                return final
        return boxed or None
    answer = extract_final_answer(text)
    if answer is not None:
        return answer
    return _answer_is(text)


def completion_answer(text: str | None, eos_token: str | None = None) -> str | None:
    """THE answer of a model's completion, for every consumer: ``e2h eval``, PPO's and GRPO's rewards and their
    validation, the service, the demo. e2h's answer line when the completion has one (the first, up to EOS or
    the next blank line: the answer step the PRM scores), else what :func:`extract_answer` finds (a
    ``\\boxed{..}``, "the answer is .."), else None::

        completion_answer("2 + 3 = 5\\n\\n# Answer\\n\\n5</s>", "</s>")   -> "5"
        completion_answer("So $\\boxed{5}$.")                            -> "5"
    """
    if text is None:
        return None
    if eos_token:
        text = text.split(eos_token)[0]
    return extract_final_answer(text) or extract_answer(text)


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
# A number inside a token ("pytest-3/x", "a-3b") is not a number in prose.
_NUMBER_RE = re.compile(
    r"(?<![\w.\\/-])-?\d+(?:(?:,\d{3})+(?!\d)(?:\.\d+)?|,\d{2}(?![\d,])|\.\d+)?")
# Inside $..$ an English word (3+ letters, lower case after an optional capital; not a function, not the
# list glue "and") or a '?' means the dollar signs were money or prose, not math delimiters:
# "how many $? just about 1$" -> 1. Commands and subscripts (S_{MBCN}) are removed before the search.
_NOT_PROSE = sorted(FUNCTIONS | {"sqrt", "infty", "inf", "infinity", "and"})
_PROSE_IN_MATH_RE = re.compile(
    r"\?|(?<![A-Za-z])(?!(?:" + "|".join(_NOT_PROSE) + r")\b)(?:[A-Z][a-z]{2,}|[a-z]{3,})(?![A-Za-z])"
)
_MATH_NOISE_RE = re.compile(r"\\[A-Za-z]+(\{[^{}]*\})?|_\{[^{}]*\}")
_GLUE_WORDS = {"and", "or"}


# Words that do not make a text a sentence: units, list glue, math words, and one- and two-letter names of
# variables and points (qr, AB). A sentence needs an English word of three or more letters or one of the
# short function words below ("x is 5").
UNIT_WORDS = (
    r"(?:square\s+|sq\s*\.?\s*|cubic\s+)?(?:units?|degrees?|cm|centimeters?|centimetres?|mm|km|m|meters?|metres?|"
    r"inches?|in|feet|foot|ft|yards?|yd|miles?|mi|mph|seconds?|sec|s|minutes?|min|hours?|hrs?|days?|weeks?|"
    r"months?|years?|dollars?|cents?|yuan|euros?|pounds?|lbs?|ounces?|oz|grams?|g|kg|liters?|litres?|l|ml|"
    r"gallons?|people|students?|ways?|points?|marbles?|pages?|books?|boxes?|coins?|tiles?|steps?|times)"
)
_UNIT_WORD_RE = re.compile(r"^(?:" + UNIT_WORDS + r"|square|cubic|sq|percent|percentage|pct)$", re.IGNORECASE)
_SHORT_PROSE = {"is", "so", "be", "it", "to", "of", "as", "at", "we", "by", "an", "if", "on", "he", "me", "my",
                "am", "do", "us", "up", "no"}
_COMMAND_WITH_ARG_RE = re.compile(r"\\[A-Za-z]+(?:\s*\{[^{}]*\})?")
# The gap between two answers of one list in a sentence: "3, 4 and 5", "$1$, or $2$".
_LIST_GLUE_RE = re.compile(r"^\s*(?:,\s*(?:(?:and|or)\s+)?|(?:and|or)\s+)$")


def _prose_word(word: str) -> bool:
    low = word.lower()
    if word.isupper() and len(word) > 1:
        return False  # ABC, CBAD: names of points and figures
    if len(word) <= 2:
        return low in _SHORT_PROSE
    return low not in _NOT_PROSE and low not in _GLUE_WORDS and not _UNIT_WORD_RE.match(word)


def prose_to_math(text: str) -> str:
    """The answer a short text states, whole.

    Text that is not a sentence is an answer as written, never cut to a part of it: '1, 2, and 3',
    'AB=4, CD=5', '3qr + 6q - 15r - 30', '8\\sqrt{3} square inches' stay whole ('$5$' -> '5').
    A sentence states its answer last: 'Therefore $x \\geq 5$ is the solution.' -> 'x \\geq 5';
    'The volume is 120' -> '120'; a list in a sentence is kept whole: 'The roots are 3 and 4.' -> '3, 4'."""
    if len(text) > MAX_ANSWER_CHARS:
        return text  # too long to be an answer; the caller says so
    segments, pieces, at = [], [], 0
    for m in _MATH_SEGMENT_RE.finditer(text):
        body = next(g for g in m.groups() if g is not None)
        if m.group(4) is not None and _PROSE_IN_MATH_RE.search(_MATH_NOISE_RE.sub(" ", body)):
            continue  # "$? just about 1$": not math
        segments.append((m.start(), m.end(), body))
        pieces += [text[at : m.start()], " " * (m.end() - m.start())]  # blanked: positions are kept
        at = m.end()
    outside = "".join(pieces) + text[at:]
    words = re.findall(r"[A-Za-z]+", _COMMAND_WITH_ARG_RE.sub(" ", outside))
    if not any(_prose_word(w) for w in words):
        if len(segments) == 1 and segments[0][0] == 0 and segments[0][1] == len(text):
            return segments[0][2].strip()  # "$5$" -> "5"
        if len(segments) > 1 and all(w.lower() in _GLUE_WORDS for w in words):
            return ", ".join(seg[2].strip() for seg in segments)  # "$1$ and $2$"
        return text
    candidates = [(start, end, body.strip()) for start, end, body in segments]
    candidates += [(m.start(), m.end(), m.group(0)) for m in _NUMBER_RE.finditer(outside)]
    if not candidates:
        return text
    candidates.sort(key=lambda c: c[1])
    run = [candidates[-1]]
    for prev in reversed(candidates[:-1]):
        if not _LIST_GLUE_RE.match(text[prev[1] : run[-1][0]]):
            break
        run.append(prev)
    return ", ".join(c[2] for c in reversed(run))


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
