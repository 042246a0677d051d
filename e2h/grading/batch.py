"""The grading API: grade one prediction, many predictions, or two extracted answers.

    grade("... so $x = \\boxed{\\frac{1}{2}}$.", "0.5")
    -> Verdict(correct=True, reason="normalized_match", pred_answer="\\frac{1}{2}",
               pred_normalized="1/2", gold_normalized="1/2")

Order of work per pair: extract -> normalise (equal keys: correct) -> cache -> parse and compare
in-process (exact rationals, 40-digit numerics) -> SymPy in a killable worker for what remains.
A pair that runs out of time is incorrect with reason "timeout".
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass
from functools import lru_cache

from e2h.grading.compare import NeedsSymPy, compare_parsed, compare_strings
from e2h.grading.extract import MAX_ANSWER_CHARS, answer_candidate, choice_letter, last_boxed
from e2h.grading.normalize import clean_answer
from e2h.grading.parse import ParseError, canonical_key, parse_answer
from e2h.grading.timeout import shared_pool

CACHE_SIZE = 200_000
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


@lru_cache(maxsize=65536)
def _analyse(answer: str) -> tuple[str, str, object]:
    """(cleaned, key, parsed node or None) for one extracted answer; cached because answers repeat."""
    cleaned = clean_answer(answer)
    if len(cleaned) > MAX_ANSWER_CHARS:
        return cleaned, cleaned, None
    try:
        node = parse_answer(cleaned)
        return cleaned, canonical_key(node), node
    except ParseError:
        return cleaned, "".join(cleaned.split()), None
    except (RecursionError, ValueError, OverflowError, ZeroDivisionError):
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


def _prepare(pred_text: str | None, gold: str) -> _Prepared:
    gold_answer = answer_candidate(gold) or gold or ""
    gold_clean, gold_key, gold_node = _analyse(gold_answer)
    pred_answer = answer_candidate(pred_text)
    if pred_answer is None:
        return _Prepared(None, None, None, gold_clean, gold_key, Verdict(False, "no_answer", None, None, gold_key))
    if len(pred_answer) > MAX_ANSWER_CHARS:
        return _Prepared(pred_answer[:100], None, None, gold_clean, gold_key,
                         Verdict(False, "too_long", pred_answer[:100], None, gold_key))
    pred_clean, pred_key, pred_node = _analyse(pred_answer)
    if pred_key != gold_key:  # a bare choice letter against a sentence (unparsed, several words) that picks one
        if gold_key in _CHOICES and pred_node is None and len(pred_answer.split()) > 1:
            letter = choice_letter(pred_answer if last_boxed(pred_text) is not None else pred_text)
            if letter is not None:
                pred_answer = letter
                pred_clean, pred_key, pred_node = _analyse(letter)
        elif pred_key in _CHOICES and gold_node is None and len(gold.split()) > 1:
            letter = choice_letter(gold)
            if letter is not None:
                gold_clean, gold_key, gold_node = _analyse(letter)
    prepared = _Prepared(pred_answer, pred_clean, pred_key, gold_clean, gold_key)

    def verdict(correct: bool, reason: str) -> Verdict:
        return Verdict(correct, reason, pred_answer, pred_key, gold_key)

    if pred_key == gold_key and gold_key:
        prepared.verdict = verdict(True, "normalized_match")
        return prepared
    cached = CACHE.get((pred_key, gold_key))
    if cached is not None:
        prepared.verdict = verdict(*cached)
        return prepared
    if gold_node is None or pred_node is None:
        correct, method = compare_strings(gold_clean, pred_clean)
        if not correct and (gold_node is None) != (pred_node is None) and len(gold_clean) < len(pred_clean):
            method = "string"
        prepared.verdict = verdict(correct, method)
        CACHE.put((pred_key, gold_key), (correct, method))
        return prepared
    try:
        correct, method = compare_parsed(gold_node, pred_node, gold_clean, pred_clean, use_sympy=False)
    except NeedsSymPy:
        return prepared  # a worker decides
    except RecursionError:
        correct, method = False, "error"
    prepared.verdict = verdict(correct, method)
    CACHE.put((pred_key, gold_key), (correct, method))
    return prepared


def grade_many(pairs: list[tuple[str, str]], timeout_s: float = 5.0, workers: int = 2) -> list[Verdict]:
    """Grade (pred_text, gold) pairs; pairs that need SymPy run in ``workers`` killable processes.

    Safe to call from any thread, a Ray actor or an asyncio executor (no signals are used).
    """
    prepared = [_prepare(pred, gold) for pred, gold in pairs]
    pending: dict[tuple[str, str], list[int]] = {}
    for i, prep in enumerate(prepared):
        if prep.verdict is None:
            pending.setdefault((prep.gold_clean, prep.pred_clean), []).append(i)
    if pending:
        keys = list(pending)
        results = shared_pool(workers).run_many([("compare", [g, p]) for g, p in keys], timeout_s, threads=workers)
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
                CACHE.put((first.pred_key, first.gold_key), (correct, reason))
    return [p.verdict for p in prepared]  # type: ignore[misc]


def grade(pred_text: str | None, gold: str, timeout_s: float = 5.0) -> Verdict:
    """Grade one prediction (a whole solution or a bare answer) against a gold answer."""
    return grade_many([(pred_text, gold)], timeout_s=timeout_s, workers=1)[0]  # type: ignore[list-item]


def answers_equivalent(a: str, b: str, timeout_s: float = 5.0) -> bool:
    """Two already-extracted answers: does the grader call them equal? (``b`` plays the gold.)"""
    return grade(a, b, timeout_s=timeout_s).correct
