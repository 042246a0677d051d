"""Reranking N sampled solutions of one problem: majority vote, best-of-N, weighted vote (reference §3.2).

A pool is described by three arrays over its samples, never by raw strings::

    keys     ["1/2", "1/2", None, "3", "1/2"]     grader-normalised answers (None = no answer found)
    correct  [True, True, False, False, True]      the grader's verdict per sample
    scores   [0.9, 0.2, 0.7, 0.95, 0.4]            one solution score per sample (an aggregate of step scores)

:func:`answer_classes` turns keys into integer classes: **class 0 is the gold class** (every answer the grader
accepted; they are all equal to the gold answer, hence to each other, so "\\frac12" and "0.5" vote together
even when their normalised strings differ), 1, 2, ... are the other distinct keys in order of first
appearance, -1 is "no answer". A sample without an answer never wins: it adds nothing to a vote and best-of-N
never picks it.

Ties are scored by their **expected accuracy under a uniformly random tie-break**: if k answers tie for the top
and one of them is the gold answer, the pool scores 1/k. That is deterministic (no rng) and is what a random
tie-break converges to; best-of-N ties (equal scores) score the fraction of tied samples that are correct.

Every function here is vectorised over the samples of one pool; ``e2h.curves`` runs the same rules
vectorised over thousands of resampled subsets and is tested against these functions.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

AGGREGATIONS = ("min", "prod", "last", "mean")
GOLD_CLASS = 0
NO_ANSWER = -1


def aggregate_steps(step_scores: Sequence[Sequence[float] | None], how: str = "min") -> np.ndarray:
    """One solution score per sample from its step probabilities (answer step included as the last).

    >>> aggregate_steps([[0.9, 0.5, 0.8], [0.7], None], "min").tolist()
    [0.5, 0.7, nan]

    ``min`` is the paper's choice for best-of-N and ``prod`` for weighted voting (reference §3.2, App. L);
    ``last`` is the answer step's probability; a sample with no step scores gets NaN (it cannot be chosen).
    """
    if how not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation '{how}'; choose one of {', '.join(AGGREGATIONS)}")
    lengths = np.array([len(s) if s else 0 for s in step_scores], dtype=np.int64)
    out = np.full(len(lengths), np.nan)
    if not lengths.any():
        return out
    width = int(lengths.max())
    padded = np.full((len(lengths), width), np.nan)
    for row, steps in enumerate(step_scores):  # ragged -> padded; the arithmetic below is vectorised
        if steps:
            padded[row, : len(steps)] = steps
    has = lengths > 0
    body = padded[has]
    if how == "min":
        out[has] = np.nanmin(body, axis=1)
    elif how == "prod":
        out[has] = np.nanprod(body, axis=1)
    elif how == "mean":
        out[has] = np.nanmean(body, axis=1)
    else:  # last
        out[has] = body[np.arange(len(body)), lengths[has] - 1]
    return out


def answer_classes(keys: Sequence[str | None], correct: Sequence[bool] | None = None) -> np.ndarray:
    """Integer answer classes: 0 = gold (correct), 1.. = other answers by first appearance, -1 = none.

    >>> answer_classes(["1/2", "3", None, "0.5", "3"], [True, False, False, True, False]).tolist()
    [0, 1, -1, 0, 1]

    A key is gold if any sample with that key was graded correct (a grader timeout on one copy of an answer
    does not split it from its correctly graded twins). Without ``correct`` (serving: no gold known) the
    classes are simply the distinct keys, numbered from 0 in order of first appearance.
    """
    gold_keys = set()
    if correct is not None:
        if len(correct) != len(keys):
            raise ValueError(f"{len(keys)} keys but {len(correct)} correctness flags")
        gold_keys = {k for k, c in zip(keys, correct) if c and k is not None}
    ids: dict[str, int] = {}
    first_free = 1 if correct is not None else 0
    out = np.empty(len(keys), dtype=np.int32)
    for i, key in enumerate(keys):
        if key is None:
            out[i] = NO_ANSWER
        elif key in gold_keys:
            out[i] = GOLD_CLASS
        else:
            out[i] = ids.setdefault(key, first_free + len(ids))
    return out


def vote_weights(scores: np.ndarray) -> np.ndarray:
    """Weighted-vote weights: non-negative solution scores; NaN (no score) counts 0. Logits are an error."""
    scores = np.asarray(scores, dtype=np.float64)
    finite = scores[np.isfinite(scores)]
    if finite.size and (finite.min() < 0 or finite.max() > 1):
        raise ValueError("weighted voting needs scores in [0, 1] (probabilities); apply a sigmoid to logits first")
    return np.nan_to_num(scores, nan=0.0)


def class_totals(classes: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Sum of weights per answer class (index = class id); samples without an answer are left out."""
    classes = np.asarray(classes)
    answered = classes >= 0
    w = np.ones(len(classes)) if weights is None else np.asarray(weights, dtype=np.float64)
    size = int(classes.max()) + 1 if answered.any() else 1
    return np.bincount(classes[answered], weights=w[answered], minlength=max(size, 1))


def top_classes(totals: np.ndarray) -> np.ndarray:
    """Classes tied at the highest total; empty when every total is 0 (nothing can win)."""
    best = totals.max(initial=0.0)
    if best <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(totals == best)


def _accuracy_of_tie(tied: np.ndarray) -> float:
    return float(np.mean(tied == GOLD_CLASS)) if len(tied) else 0.0


def majority_vote(classes: np.ndarray) -> float:
    """Expected accuracy of self-consistency: the most frequent answer wins.

    >>> majority_vote(answer_classes(["4", "4", "5", None], [True, True, False, False]))
    1.0
    >>> majority_vote(answer_classes(["4", "5"], [True, False]))  # a 1-1 tie: right half the time
    0.5
    """
    return _accuracy_of_tie(top_classes(class_totals(classes)))


def weighted_vote(classes: np.ndarray, scores: np.ndarray) -> float:
    """Expected accuracy of weighted voting: each answer scores the sum of its solutions' scores.

    >>> weighted_vote(answer_classes(["10", "36", "36"], [True, False, False]), np.array([0.9, 0.3, 0.3]))
    1.0
    """
    return _accuracy_of_tie(top_classes(class_totals(classes, vote_weights(scores))))


def best_of_n(classes: np.ndarray, scores: np.ndarray) -> float:
    """Expected accuracy of best-of-N: the answered sample with the highest score wins; equal scores tie.

    >>> best_of_n(answer_classes(["4", "5", None], [True, False, False]), np.array([0.6, 0.8, 0.99]))
    0.0
    """
    classes = np.asarray(classes)
    scores = np.where((classes >= 0) & np.isfinite(scores), scores, -np.inf)
    if not np.isfinite(scores).any():
        return 0.0
    tied = scores == scores.max()
    return float(np.mean(classes[tied] == GOLD_CLASS))


def pass_at_n(classes: np.ndarray) -> float:
    """Oracle: 1 if any sample is correct (the ceiling every reranker is below)."""
    return float(np.any(np.asarray(classes) == GOLD_CLASS))


def select_answer(keys: Sequence[str | None], scores: Sequence[float] | None = None,
                  method: str = "weighted_vote") -> tuple[str | None, int | None]:
    """The answer a reranker returns when no gold is known (the service): (answer key, index of its best sample).

    >>> select_answer(["3", "4", "4"], [0.9, 0.2, 0.3], "weighted_vote")
    ('3', 0)

    Ties go to the answer seen first (deterministic). Returns (None, None) when no sample has an answer.
    """
    classes = answer_classes(keys)
    if method == "majority":
        tied = top_classes(class_totals(classes))
    elif method == "weighted_vote":
        tied = top_classes(class_totals(classes, vote_weights(np.asarray(scores, dtype=np.float64))))
    elif method == "best_of_n":
        s = np.where((classes >= 0) & np.isfinite(scores), np.asarray(scores, dtype=np.float64), -np.inf)
        if not np.isfinite(s).any():
            return None, None
        index = int(np.argmax(s))  # first of the tied
        return keys[index], index
    else:
        raise ValueError(f"unknown method '{method}'; choose majority, weighted_vote or best_of_n")
    if not len(tied):
        return None, None
    members = np.flatnonzero(classes == tied.min())
    if scores is not None:
        index = int(members[np.argmax(np.nan_to_num(np.asarray(scores, dtype=np.float64)[members], nan=-np.inf))])
    else:
        index = int(members[0])
    return keys[index], index
