"""The grading API: grade one prediction, many predictions, or two extracted answers.

    grade("... so $x = \\boxed{\\frac{1}{2}}$.", "0.5")
    -> Verdict(correct=True, reason="normalized_match", pred_answer="\\frac{1}{2}",
               pred_normalized="1/2", gold_normalized="1/2")

Order of work per pair: extract -> normalise (equal keys: correct) -> cache -> parse and compare
in-process (exact rationals, 40-digit numerics) -> SymPy in a killable worker for what remains.
A pair that runs out of time is incorrect with reason "timeout".

Limits (each gives its verdict at once, with the reason named):
    text longer than MAX_INPUT_CHARS (1,000,000 characters)  -> "too_long" before any scan
    an extracted answer longer than MAX_ANSWER_CHARS (1,000)   -> "too_long"
    brackets or operators nested deeper than parse.MAX_DEPTH   -> "too_deep"
Extraction is linear in the text. A text longer than IN_PROCESS_EXTRACT_CHARS is extracted in a killable
worker under the same timeout as the comparison, so no input can hold the caller past it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass
from functools import lru_cache

from e2h.grading.compare import DEFAULT_NUMERIC, DEFAULT_REL_TOL, NeedsSymPy, compare_parsed, compare_strings
from e2h.grading.extract import MAX_ANSWER_CHARS, answer_candidate, choice_letter, extract_answer, last_boxed
from e2h.grading.normalize import clean_answer
from e2h.grading.parse import MAX_DEPTH, ParseError, ParseTooDeep, bracket_depth, canonical_key, parse_answer
from e2h.grading.prm800k import grade_answer
from e2h.grading.timeout import shared_pool

# 1 MB: eight times the longest generation a MATH run makes (32k tokens of about 4 characters); a linear scan
# of it takes well under a second.
MAX_INPUT_CHARS = 1_000_000
IN_PROCESS_EXTRACT_CHARS = 100_000  # longer texts are extracted in a killable worker (see the docstring)
CACHE_SIZE = 200_000
# grading.mode: "e2h" (this module's grader) or "prm800k_strict" (the reference's: PRM800K's grader, SymPy off)
MODES = ("e2h", "prm800k_strict")
DEFAULT_MODE = "e2h"
_CHOICES = {"A", "B", "C", "D", "E"}  # keys of the multiple-choice answers "(C)", "\\text{(C)}", "C"


@dataclass
class Verdict:
    correct: bool
    reason: str
    pred_answer: str | None
    pred_normalized: str | None
    gold_normalized: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Prepared:
    pred_answer: str | None
    pred_clean: str | None
    pred_key: str | None
    gold_clean: str
    gold_key: str
    verdict: Verdict | None = None  # decided without a worker


TOO_DEEP = ("too_deep",)  # the node of an answer nested deeper than the parser's limit


@lru_cache(maxsize=65536)
def _analyse(answer: str, comma_in_number: bool = True) -> tuple[str, str, object]:
    """(cleaned, key, parsed node or None, or TOO_DEEP) for one extracted answer; cached because answers
    repeat. The whole answer is parsed; when it cannot be, it is compared as a whole normalised string."""
    cleaned = clean_answer(answer, comma_in_number=comma_in_number)
    if len(cleaned) > MAX_ANSWER_CHARS:
        return cleaned, cleaned, None
    try:
        node = parse_answer(cleaned)
        return cleaned, canonical_key(node), node
    except ParseTooDeep:
        return cleaned, "".join(cleaned.split()), TOO_DEEP
    except ParseError:
        return cleaned, "".join(cleaned.split()), None
    except RecursionError:  # not expected (depth is limited first); still a verdict, never an exception
        return cleaned, "".join(cleaned.split()), TOO_DEEP
    except (ValueError, OverflowError, ZeroDivisionError):
        return cleaned, "".join(cleaned.split()), None


class _Cache:
    """Thread-safe LRU of (pred key, gold key) -> (correct, reason)."""

    def __init__(self, size: int):
        self.size = size
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        with self._lock:
            self._data[key] = value
            if len(self._data) > self.size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


CACHE = _Cache(CACHE_SIZE)


_EXTRACT = object()  # _prepare's default: extract the answer here


def _prepare(pred_text: str | None, gold: str, numeric: str, rel_tol: float, pred_answer=_EXTRACT,
             pred_too_deep: bool = False) -> _Prepared:
    gold = gold or ""
    if len(gold) > MAX_INPUT_CHARS:
        return _Prepared(None, None, None, gold[:100], gold[:100], Verdict(False, "too_long", None, None, gold[:100]))
    gold_answer = answer_candidate(gold) or gold
    gold_clean, gold_key, gold_node = _analyse(gold_answer)
    if gold_node is TOO_DEEP:
        gold_node = None  # a gold is trusted text: compared as a whole string
    if pred_text is not None and len(pred_text) > MAX_INPUT_CHARS:
        return _Prepared(None, None, None, gold_clean, gold_key, Verdict(False, "too_long", None, None, gold_key))
    if pred_answer is _EXTRACT:
        pred_answer = answer_candidate(pred_text)
        pred_too_deep = pred_answer is None and bool(pred_text) and bracket_depth(pred_text) > MAX_DEPTH
    if pred_answer is None:
        reason = "too_deep" if pred_too_deep else "no_answer"
        return _Prepared(None, None, None, gold_clean, gold_key, Verdict(False, reason, None, None, gold_key))
    if len(pred_answer) > MAX_ANSWER_CHARS:
        return _Prepared(pred_answer[:100], None, None, gold_clean, gold_key,
                         Verdict(False, "too_long", pred_answer[:100], None, gold_key))
    pred_clean, pred_key, pred_node = _analyse(pred_answer)
    if pred_node is TOO_DEEP:
        return _Prepared(pred_answer[:100], None, None, gold_clean, gold_key,
                         Verdict(False, "too_deep", pred_answer[:100], None, gold_key))
    if gold_node is not None and gold_node[0] in ("list", "set") and pred_node is not None and pred_node[0] == "expr":
        # "19,22" reads as a European decimal 19.22 or as the list 19, 22 ("81,256" as 81256 or a list):
        # against a list gold, the list
        list_reading = _analyse(pred_answer, comma_in_number=False)
        if list_reading[0] != pred_clean and list_reading[2] not in (None, TOO_DEEP):
            pred_clean, pred_key, pred_node = list_reading
    if pred_key != gold_key and (pred_text is None or len(pred_text) <= IN_PROCESS_EXTRACT_CHARS):
        # a bare choice letter against a sentence (unparsed, several words) that picks one
        if gold_key in _CHOICES and _is_sentence(pred_node) and len(pred_answer.split()) > 1:
            letter = choice_letter(pred_answer if last_boxed(pred_text) is not None else pred_text)
            if letter is not None:
                pred_answer = letter
                pred_clean, pred_key, pred_node = _analyse(letter)
        elif pred_key in _CHOICES and _is_sentence(gold_node) and len(gold.split()) > 1:
            letter = choice_letter(gold)
            if letter is not None:
                gold_clean, gold_key, gold_node = _analyse(letter)
    prepared = _Prepared(pred_answer, pred_clean, pred_key, gold_clean, gold_key)

    def verdict(correct: bool, reason: str) -> Verdict:
        return Verdict(correct, reason, pred_answer, pred_key, gold_key)

    if pred_key == gold_key and gold_key:
        prepared.verdict = verdict(True, "normalized_match")
        return prepared
    cache_key = (pred_key, gold_key, numeric, rel_tol)
    cached = CACHE.get(cache_key)
    if cached is not None:
        prepared.verdict = verdict(*cached)
        return prepared
    if gold_node is None or pred_node is None:
        correct, method = compare_strings(gold_clean, pred_clean)
        prepared.verdict = verdict(correct, method)
        CACHE.put(cache_key, (correct, method))
        return prepared
    try:
        correct, method = compare_parsed(gold_node, pred_node, gold_clean, pred_clean, use_sympy=False,
                                         numeric=numeric, rel_tol=rel_tol)
    except NeedsSymPy:
        return prepared  # a worker decides
    except RecursionError:
        correct, method = False, "error"
    prepared.verdict = verdict(correct, method)
    CACHE.put(cache_key, (correct, method))
    return prepared


def _is_sentence(node) -> bool:
    """Unparsed, or words: a text that may pick a multiple-choice letter in passing."""
    return node is None or node[0] == "text" or (node[0] == "list" and any(x[0] == "text" for x in node[1]))


def _extract_in_workers(pairs, timeout_s: float, workers: int) -> dict[int, tuple]:
    """Answers of the texts too long to extract in-process: index -> (answer, too_deep) or a verdict."""
    big = [i for i, (pred, _) in enumerate(pairs)
           if pred is not None and IN_PROCESS_EXTRACT_CHARS < len(pred) <= MAX_INPUT_CHARS]
    if not big:
        return {}
    results = shared_pool(workers).run_many([("extract", [pairs[i][0]]) for i in big], timeout_s, threads=workers)
    out = {}
    for i, result in zip(big, results):
        if result.ok:
            out[i] = (result.value[0], bool(result.value[1]))
        else:
            out[i] = Verdict(False, "timeout" if result.timed_out else "error", None, None, "")
    return out


def grade_many(pairs: list[tuple[str, str]], timeout_s: float = 5.0, workers: int = 2,
               numeric: str = DEFAULT_NUMERIC, rel_tol: float = DEFAULT_REL_TOL, mode: str = DEFAULT_MODE
               ) -> list[Verdict]:
    """Grade (pred_text, gold) pairs; pairs that need SymPy run in ``workers`` killable processes.

    ``numeric`` is the numeric convention (``grading.numeric`` in a run config): "exact" compares numbers
    exactly; "rel_tol" accepts a decimal within ``rel_tol`` relative of the other side.
    ``mode`` (``grading.mode``) picks the grader: "e2h" (this module) or "prm800k_strict" (PRM800K's grader with
    its SymPy check off, as the reference grades: e2h.grading.prm800k; ``numeric`` does not apply to it).
    Safe to call from any thread, a Ray actor or an asyncio executor (no signals are used).
    """
    check_mode(mode)
    extracted = _extract_in_workers(pairs, timeout_s, workers)
    if mode == "prm800k_strict":
        return [_grade_prm800k(pred, gold, extracted.get(i)) for i, (pred, gold) in enumerate(pairs)]
    prepared = []
    for i, (pred, gold) in enumerate(pairs):
        done = extracted.get(i)
        if isinstance(done, Verdict):
            prep = _prepare(None, gold, numeric, rel_tol)
            prep.verdict = Verdict(done.correct, done.reason, None, None, prep.gold_key)
        elif done is not None:
            prep = _prepare(pred, gold, numeric, rel_tol, pred_answer=done[0], pred_too_deep=done[1])
        else:
            prep = _prepare(pred, gold, numeric, rel_tol)
        prepared.append(prep)
    pending: dict[tuple[str, str], list[int]] = {}
    for i, prep in enumerate(prepared):
        if prep.verdict is None:
            pending.setdefault((prep.gold_clean, prep.pred_clean), []).append(i)
    if pending:
        keys = list(pending)
        results = shared_pool(workers).run_many([("compare", [g, p, numeric, rel_tol]) for g, p in keys], timeout_s,
                                                threads=workers)
        for key, result in zip(keys, results):
            if result.ok:
                correct, reason = bool(result.value[0]), str(result.value[1])
            elif result.timed_out:
                correct, reason = False, "timeout"
            else:
                correct, reason = False, "error"
            for i in pending[key]:
                prep = prepared[i]
                prep.verdict = Verdict(correct, reason, prep.pred_answer, prep.pred_key, prep.gold_key)
            if reason != "timeout":  # a timeout may be the machine being busy: do not remember it
                first = prepared[pending[key][0]]
                CACHE.put((first.pred_key, first.gold_key, numeric, rel_tol), (correct, reason))
    return [p.verdict for p in prepared]  # type: ignore[misc]


def grade(pred_text: str | None, gold: str, timeout_s: float = 5.0, numeric: str = DEFAULT_NUMERIC,
          rel_tol: float = DEFAULT_REL_TOL, mode: str = DEFAULT_MODE) -> Verdict:
    """Grade one prediction (a whole solution or a bare answer) against a gold answer."""
    return grade_many([(pred_text, gold)], timeout_s=timeout_s, workers=1, numeric=numeric,  # type: ignore[list-item]
                      rel_tol=rel_tol, mode=mode)[0]


def answers_equivalent(a: str, b: str, timeout_s: float = 5.0, numeric: str = DEFAULT_NUMERIC,
                       rel_tol: float = DEFAULT_REL_TOL, mode: str = DEFAULT_MODE) -> bool:
    """Two already-extracted answers: does the grader call them equal? (``b`` plays the gold.)"""
    return grade(a, b, timeout_s=timeout_s, numeric=numeric, rel_tol=rel_tol, mode=mode).correct


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown grading mode {mode!r}: expected one of {', '.join(MODES)}")
    return mode


def _grade_prm800k(pred_text: str | None, gold: str, extracted) -> Verdict:
    """PRM800K's verdict on one pair. The answer is taken as e2h takes it (the answer line, \\boxed{..}, else
    a short bare text), then compared by strings only (e2h.grading.prm800k): nothing is parsed or evaluated."""
    gold = gold or ""
    if len(gold) > MAX_INPUT_CHARS or (pred_text is not None and len(pred_text) > MAX_INPUT_CHARS):
        return Verdict(False, "too_long", None, None, gold[:100])
    gold_answer = extract_answer(gold) or gold.strip()
    if isinstance(extracted, Verdict):
        return Verdict(extracted.correct, extracted.reason, None, None, gold_answer[:100])
    if extracted is not None:
        answer = extracted[0]
    elif pred_text is None:
        answer = None
    else:
        answer, bare = extract_answer(pred_text), pred_text.strip()
        if answer is None and bare and len(bare) <= 200 and "\n\n" not in bare:
            answer = bare  # a bare answer
    if answer is None:
        return Verdict(False, "no_answer", None, None, gold_answer[:100])
    if len(answer) > MAX_ANSWER_CHARS or len(gold_answer) > MAX_INPUT_CHARS:
        return Verdict(False, "too_long", answer[:100], None, gold_answer[:100])
    if bracket_depth(answer) > MAX_DEPTH:
        return Verdict(False, "too_deep", answer[:100], None, gold_answer[:100])
    correct, reason, pred_norm, gold_norm = grade_answer(answer, gold_answer)
    return Verdict(correct, reason, answer, pred_norm, gold_norm if gold_norm is not None else gold_answer[:100])
