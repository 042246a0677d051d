"""Reranking N sampled solutions of one problem: majority vote, best-of-N, weighted vote (reference §3.2).

A pool is described by arrays over its samples, never by raw strings::

    keys     ["1/2", "1/2", None, "3", "0.5"]      grader-normalised answers (None = no answer found)
    correct  [True, True, False, False, True]      the grader's verdict per sample, against the gold
    scores   [0.9, 0.2, 0.7, 0.95, 0.4]            one solution score per sample (an aggregate of step scores)

**Votes never know the gold.** A deployed reranker groups the answers it is given with nothing but the answers,
so the headline numbers group them the same way (:func:`answer_classes`, ``eval.vote_grouping: samples``):
samples with equal keys are one answer, and two distinct keys are one answer when the grader calls them equal
to *each other* (:class:`GraderSameAnswer`: the grader's prediction-vs-gold comparison, run prediction vs
prediction). Only after grouping is each class scored against the gold (:func:`vote_classes`): a class is
correct when at least half of its samples were graded correct. A consistent grader never mixes verdicts inside
a class; a mixed class comes from a timeout on one copy (it should not split the class from its proven twin:
hence "at least half") or from a grader that calls a ~ b and a ~ gold but not b ~ gold (then most members
decide). Metrics count mixed classes.

The class numbering every scoring function reads: classes ``0 .. n_gold-1`` are the correct ones, numbered
first, the wrong ones follow from ``max(n_gold, 1)``, -1 is "no answer". ``n_gold`` is 1 except when the
grader judged several gold-blind classes correct (each equal to the gold, not to each other: a timeout, a
tolerance); they still vote apart, as they would in deployment, and any of them winning is right. A sample
without an answer never wins: it adds nothing to a vote and best-of-N never picks it.

The gold-merging grouping this replaced (``grouping="gold"``, kept for ``eval.vote_grouping: gold``) put every
answer graded correct into class 0 before voting, so correct answers written differently voted together because
they were correct, which only the gold can tell: it can only raise majority and weighted-vote accuracy.

Ties are scored by their **expected accuracy under a uniformly random tie-break**: if k answers tie for the top
and j of them are correct, the pool scores j/k. That is deterministic (no rng) and is what a random
tie-break converges to; best-of-N ties (equal scores) score the fraction of tied samples that are correct.

Every scoring function here is vectorised over the samples of one pool; ``e2h.curves`` runs the same rules
vectorised over thousands of resampled subsets and is tested against these functions.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Callable, NamedTuple, Sequence

import numpy as np

from e2h.grading import grade_many

AGGREGATIONS = ("min", "prod", "last", "mean")
GOLD_CLASS = 0  # the first correct class (classes 0 .. n_gold-1 are correct)
NO_ANSWER = -1
VOTE_GROUPINGS = ("samples", "gold")  # eval.vote_grouping: without the gold (default) / merged by it
# score.steps: which step scores a solution's aggregates read (issue #19)
STEP_CONVENTIONS = ("reasoning_and_answer", "reasoning", "with_answer")


def select_steps(step_scores: Sequence[float] | None, has_answer: bool,
                 steps: str = "reasoning_and_answer") -> list[float]:
    """The step scores that min / prod / last / mean read, under ``score.steps`` (``step_scores`` holds one per
    step, the answer step last when ``has_answer``; the stored ``step_scores`` keep them all):

    - ``reasoning_and_answer``: every reasoning step and the answer step (e2h's default);
    - ``reasoning``: the reasoning steps only, the answer step's score dropped (the reference's
      ``inference_reward.py`` default);
    - ``with_answer``: the reasoning steps but the last, then the answer step (the reference's
      ``--process_reward_with_answer``: the paper's App. C.2, "every intermediate step and the final token").

    A solution without an answer step (cut at the length limit) keeps all its reasoning steps under every
    convention: with_answer's final-token score is then the last reasoning step's, which e2h reads at that step's
    last token, the token before EOS where the reference reads it.

    >>> [select_steps([0.9, 0.5, 0.8], True, s) for s in STEP_CONVENTIONS]
    [[0.9, 0.5, 0.8], [0.9, 0.5], [0.9, 0.8]]
    """
    if steps not in STEP_CONVENTIONS:
        raise ValueError(f"unknown score.steps '{steps}'; choose one of {', '.join(STEP_CONVENTIONS)}")
    scores = list(step_scores or [])
    if not has_answer or not scores or steps == "reasoning_and_answer":
        return scores
    if steps == "reasoning":
        return scores[:-1]
    return scores[:-2] + scores[-1:]


def aggregate_steps(step_scores: Sequence[Sequence[float] | None], how: str = "min") -> np.ndarray:
    """One solution score per sample from its step probabilities (those :func:`select_steps` keeps).

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


# ------------------------------------------------------------------------------------------- grouping
# A batch predicate over pairs of answer texts: are the two the same answer? (GraderSameAnswer is the grader's.)
SameAnswer = Callable[[list[tuple[str, str]]], list[bool]]


class VoteClasses(NamedTuple):
    """A pool's answer classes as the scoring functions read them: ``ids`` per sample (correct classes first,
    -1 = no answer) and ``n_gold``, the number of correct classes at the front (see the module docstring)."""

    ids: np.ndarray
    n_gold: int = 1


class _KeyUnion:
    """Union-find over one pool's distinct keys, in order of first appearance.

    Keys are added one at a time (``next``); each new key is compared with one representative (the root) of
    every class formed so far, so a pool with k distinct keys in c classes costs at most k * c comparisons,
    whatever its number of samples. A key that matches several classes joins them all (a grader need not be
    transitive: union-find keeps every equality it reported).
    """

    def __init__(self, keys: Sequence[str | None], texts: Sequence[str | None] | None):
        self.text: dict[str, str] = {}  # key -> the first answer text written with it (what the grader reads)
        for i, key in enumerate(keys):
            if key is not None and key not in self.text:
                self.text[key] = texts[i] if texts is not None and texts[i] is not None else key
        self.keys = list(self.text)
        self.parent = list(range(len(self.keys)))
        self.next = 1  # the first key is a class of its own

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    @property
    def done(self) -> bool:
        return self.next >= len(self.keys)

    def questions(self) -> list[tuple[int, int]]:
        """(new key, class root) pairs to compare before the next key can join."""
        roots = sorted({self.find(i) for i in range(self.next)})
        return [(self.next, root) for root in roots]

    def answer(self, questions: list[tuple[int, int]], same: list[bool]) -> None:
        for (new, root), equal in zip(questions, same):
            if equal:
                a, b = self.find(new), self.find(root)
                self.parent[max(a, b)] = min(a, b)  # the earliest key stays the root
        self.next += 1

    def classes(self, keys: Sequence[str | None]) -> np.ndarray:
        """Class ids per sample, numbered from 0 in order of first appearance; -1 for no answer."""
        index = {key: i for i, key in enumerate(self.keys)}
        ids: dict[int, int] = {}
        out = np.empty(len(keys), dtype=np.int32)
        for i, key in enumerate(keys):
            out[i] = NO_ANSWER if key is None else ids.setdefault(self.find(index[key]), len(ids))
        return out


def group_pools(pools: Sequence[Sequence[str | None]], same_answer: SameAnswer | None = None,
                texts: Sequence[Sequence[str | None]] | None = None) -> list[np.ndarray]:
    """Gold-blind answer classes of many pools at once (see :func:`answer_classes`).

    Pools advance together, one new key per pool per round, so each round is one ``same_answer`` batch over
    every pool: the grader's SymPy workers get many pairs at a time instead of a handful.
    """
    unions = [_KeyUnion(keys, texts[p] if texts is not None else None) for p, keys in enumerate(pools)]
    if same_answer is not None:
        while True:
            asked = [(u, u.questions()) for u in unions if not u.done]
            if not asked:
                break
            pairs = [(u.text[u.keys[new]], u.text[u.keys[root]]) for u, questions in asked for new, root in questions]
            same = same_answer(pairs)
            start = 0
            for u, questions in asked:
                u.answer(questions, same[start : start + len(questions)])
                start += len(questions)
    else:
        for u in unions:
            u.next = len(u.keys)  # distinct keys are distinct answers
    return [u.classes(keys) for u, keys in zip(unions, pools)]


def answer_classes(keys: Sequence[str | None], same_answer: SameAnswer | None = None,
                   texts: Sequence[str | None] | None = None) -> np.ndarray:
    """Gold-blind answer classes: what a reranker can group without the gold. -1 = no answer.

    >>> answer_classes(["b", "a", "b", None]).tolist()
    [0, 1, 0, -1]
    >>> answer_classes(["x+1", "3", "1+x"], lambda pairs: [{a, b} == {"x+1", "1+x"} for a, b in pairs]).tolist()
    [0, 1, 0]

    Equal keys are one class without any comparison; distinct keys are one class when ``same_answer`` (a batch
    predicate over pairs of answer texts, e.g. :class:`GraderSameAnswer`) calls them equal. ``texts[i]`` is the
    answer text sample i's key stands for (the grader reads texts, not keys); default: the keys themselves.
    Classes are numbered from 0 in order of first appearance.
    """
    if same_answer is not None and not callable(same_answer):
        raise TypeError("answer_classes(keys, same_answer): the grouping never sees verdicts; "
                        "score classes against the gold with vote_classes(keys, correct)")
    return group_pools([keys], same_answer, [texts] if texts is not None else None)[0]


def class_verdicts(classes: np.ndarray, correct: Sequence[bool]) -> np.ndarray:
    """Per class id: is the class correct? At least half of its samples graded correct (module docstring).

    >>> class_verdicts(np.array([0, 0, 1, 2, 2, 2, -1]), [True, False, False, True, False, False, False]).tolist()
    [True, False, False]
    """
    classes = np.asarray(classes)
    correct = np.asarray(correct, dtype=bool)
    if len(correct) != len(classes):
        raise ValueError(f"{len(classes)} samples but {len(correct)} correctness flags")
    answered = classes >= 0
    size = int(classes.max()) + 1 if answered.any() else 0
    members = np.bincount(classes[answered], minlength=size)
    right = np.bincount(classes[answered], weights=correct[answered].astype(np.float64), minlength=size)
    return 2 * right >= members


def mixed_classes(classes: np.ndarray, correct: Sequence[bool]) -> int:
    """How many classes hold both correct and incorrect samples (0 with a consistent grader)."""
    classes = np.asarray(classes)
    correct = np.asarray(correct, dtype=bool)
    answered = classes >= 0
    labels = set(zip(classes[answered].tolist(), correct[answered].tolist()))
    return sum(1 for c in {c for c, _ in labels} if (c, True) in labels and (c, False) in labels)


def gold_first(classes: np.ndarray, correct: Sequence[bool]) -> VoteClasses:
    """Renumber gold-blind classes for scoring: correct ones first (0 .. n_gold-1), the others from max(n_gold, 1).

    >>> gold_first(np.array([0, 1, 1, -1, 2]), [False, True, True, False, False])
    VoteClasses(ids=array([ 1,  0,  0, -1,  2], dtype=int32), n_gold=1)
    """
    classes = np.asarray(classes)
    verdicts = class_verdicts(classes, correct)
    good, bad = np.flatnonzero(verdicts), np.flatnonzero(~verdicts)
    n_gold = max(len(good), 1)  # no correct class: class 0 stays empty, as "class 0 = gold" always read
    new_id = np.empty(len(verdicts) + 1, dtype=np.int32)  # the extra last slot maps -1 (no answer) to -1
    new_id[good] = np.arange(len(good))
    new_id[bad] = n_gold + np.arange(len(bad))
    new_id[-1] = NO_ANSWER
    return VoteClasses(new_id[classes].astype(np.int32), n_gold)


def gold_merged_classes(keys: Sequence[str | None], correct: Sequence[bool]) -> VoteClasses:
    """The grouping that knows the gold (``grouping="gold"``): every key graded correct is class 0.

    >>> gold_merged_classes(["1/2", "3", None, "0.5", "3"], [True, False, False, True, False]).ids.tolist()
    [0, 1, -1, 0, 1]

    A key is gold if any sample with that key was graded correct; wrong keys are classes 1, 2, ... by first
    appearance. Kept only to measure how much it raised the votes (issue #16); never the default.
    """
    if len(correct) != len(keys):
        raise ValueError(f"{len(keys)} keys but {len(correct)} correctness flags")
    gold_keys = {k for k, c in zip(keys, correct) if c and k is not None}
    ids: dict[str, int] = {}
    out = np.empty(len(keys), dtype=np.int32)
    for i, key in enumerate(keys):
        if key is None:
            out[i] = NO_ANSWER
        elif key in gold_keys:
            out[i] = GOLD_CLASS
        else:
            out[i] = ids.setdefault(key, 1 + len(ids))
    return VoteClasses(out, 1)


def vote_classes_many(pools: Sequence[Sequence[str | None]], correct: Sequence[Sequence[bool]],
                      grouping: str = "samples", same_answer: SameAnswer | None = None,
                      texts: Sequence[Sequence[str | None]] | None = None) -> list[VoteClasses]:
    """:func:`vote_classes` for many pools, their grader comparisons batched (``e2h eval``)."""
    if grouping == "gold":
        return [gold_merged_classes(keys, ok) for keys, ok in zip(pools, correct)]
    if grouping != "samples":
        raise ValueError(f"unknown vote grouping '{grouping}'; choose one of {', '.join(VOTE_GROUPINGS)}")
    return [gold_first(ids, ok) for ids, ok in zip(group_pools(pools, same_answer, texts), correct)]


def vote_classes(keys: Sequence[str | None], correct: Sequence[bool], grouping: str = "samples",
                 same_answer: SameAnswer | None = None, texts: Sequence[str | None] | None = None) -> VoteClasses:
    """Answer classes for scoring: grouped without the gold (``samples``), then scored against it.

    >>> vote_classes(["1/2", "3", None, "0.5", "3"], [True, False, False, True, False])
    VoteClasses(ids=array([ 0,  2, -1,  1,  2], dtype=int32), n_gold=2)

    Without ``same_answer`` only equal keys vote together: above, "1/2" and "0.5" are two correct classes.
    ``grouping="gold"`` is :func:`gold_merged_classes`, the grouping that knows the gold.
    """
    return vote_classes_many([keys], [correct], grouping, same_answer,
                             [texts] if texts is not None else None)[0]


# grader verdicts that hold both ways round: a comparison of values (rational, 40-digit numeric, SymPy), or
# out of time (trying again the other way would cost another timeout)
_DECIDED_BOTH_WAYS = frozenset({"rational", "numeric", "sympy", "timeout"})


class GraderSameAnswer:
    """The grader's equivalence of two predicted answers, for :func:`answer_classes` (a :data:`SameAnswer`).

    Two answers are the same when ``grade_many`` accepts either one against the other as the gold: the grader
    reads the gold side's shape ("19,22" against the list "19, 22" is a list; the other way round a decimal),
    and either sample could have been the gold. A pair is tried the other way round only when the first verdict
    was not a comparison of values (those are symmetric, and on a 500 x 16 symbolic pool they are 98% of all
    verdicts) nor a timeout (a pair the grader cannot decide in time is "not the same"). Results are cached per
    unordered pair for the life of the object (one evaluation). ``stats()`` says what the grouping cost.
    """

    def __init__(self, timeout_s: float = 5.0, workers: int = 2, numeric: str = "exact", rel_tol: float = 1e-9,
                 mode: str = "e2h"):
        self.timeout_s, self.workers, self.numeric, self.rel_tol = timeout_s, workers, numeric, rel_tol
        self.mode = mode  # grading.mode: e2h or prm800k_strict
        self.cache: dict[tuple[str, str], bool] = {}
        self.compared = 0  # pairs sent to the grader (a pair tried both ways counts twice)
        self.cache_hits = 0
        self.timeouts = 0
        self.seconds = 0.0
        self.methods: Counter = Counter()  # how the grader decided each comparison ("sympy" is the slow one)

    def _grade(self, pairs: list[tuple[str, str]]):
        self.compared += len(pairs)
        verdicts = grade_many(pairs, timeout_s=self.timeout_s, workers=self.workers, numeric=self.numeric,
                              rel_tol=self.rel_tol, mode=self.mode)
        self.methods.update(v.reason for v in verdicts)
        self.timeouts += sum(v.reason == "timeout" for v in verdicts)
        return verdicts

    def __call__(self, pairs: list[tuple[str, str]]) -> list[bool]:
        started = time.perf_counter()
        wanted = [(a, b) if a <= b else (b, a) for a, b in pairs]
        todo = [pair for pair in dict.fromkeys(wanted) if pair not in self.cache]
        self.cache_hits += len(wanted) - len(todo)
        if todo:
            forward = self._grade(todo)
            same = [v.correct for v in forward]
            retry = [i for i, v in enumerate(forward) if not v.correct and v.reason not in _DECIDED_BOTH_WAYS]
            if retry:
                for i, v in zip(retry, self._grade([(todo[i][1], todo[i][0]) for i in retry])):
                    same[i] = v.correct
            self.cache.update(zip(todo, same))
        self.seconds += time.perf_counter() - started
        return [self.cache[pair] for pair in wanted]

    def stats(self) -> dict:
        return {"compared_pairs": self.compared, "cache_hits": self.cache_hits, "timeouts": self.timeouts,
                "grader_methods": dict(sorted(self.methods.items())), "seconds": round(self.seconds, 3)}


# -------------------------------------------------------------------------------------------- scoring


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


def is_gold(classes: np.ndarray, n_gold: int = 1) -> np.ndarray:
    """Per sample: is its answer in a correct class (ids 0 .. n_gold-1; -1 never)?"""
    classes = np.asarray(classes)
    return (classes >= 0) & (classes < n_gold)


def _accuracy_of_tie(tied: np.ndarray, n_gold: int) -> float:
    return float(np.mean(is_gold(tied, n_gold))) if len(tied) else 0.0


def majority_vote(classes: np.ndarray, n_gold: int = 1) -> float:
    """Expected accuracy of self-consistency: the most frequent answer wins.

    >>> majority_vote(*vote_classes(["4", "4", "5", None], [True, True, False, False]))
    1.0
    >>> majority_vote(*vote_classes(["4", "5"], [True, False]))  # a 1-1 tie: right half the time
    0.5
    """
    return _accuracy_of_tie(top_classes(class_totals(classes)), n_gold)


def weighted_vote(classes: np.ndarray, scores: np.ndarray, n_gold: int = 1) -> float:
    """Expected accuracy of weighted voting: each answer scores the sum of its solutions' scores.

    >>> ids, n_gold = vote_classes(["10", "36", "36"], [True, False, False])
    >>> weighted_vote(ids, np.array([0.9, 0.3, 0.3]), n_gold)
    1.0
    """
    return _accuracy_of_tie(top_classes(class_totals(classes, vote_weights(scores))), n_gold)


def best_of_n(classes: np.ndarray, scores: np.ndarray, n_gold: int = 1) -> float:
    """Expected accuracy of best-of-N: the answered sample with the highest score wins; equal scores tie.

    >>> ids, n_gold = vote_classes(["4", "5", None], [True, False, False])
    >>> best_of_n(ids, np.array([0.6, 0.8, 0.99]), n_gold)
    0.0
    """
    classes = np.asarray(classes)
    scores = np.where((classes >= 0) & np.isfinite(scores), scores, -np.inf)
    if not np.isfinite(scores).any():
        return 0.0
    tied = scores == scores.max()
    return float(np.mean(is_gold(classes[tied], n_gold)))


def pass_at_n(classes: np.ndarray, n_gold: int = 1) -> float:
    """Oracle: 1 if any sample is correct (the ceiling every reranker is below)."""
    return float(np.any(is_gold(classes, n_gold)))


def vote_table(keys: Sequence[str | None], scores: Sequence[float] | None = None,
               method: str = "weighted_vote") -> list[tuple[float, list[int]]]:
    """Every answer's votes, as the service reports them: (mass, indices of its samples), the most votes first
    (ties: the answer seen first). Mass is the sum of vote weights for ``weighted_vote`` (:func:`vote_weights` of
    ``scores``), else the number of samples; samples without an answer are left out.

    >>> vote_table(["3", "4", "4", None], [0.9, 0.2, 0.3, 0.5], "weighted_vote")
    [(0.9, [0]), (0.5, [1, 2])]
    """
    classes = answer_classes(keys)
    weights = vote_weights(np.asarray(scores, dtype=np.float64)) if method == "weighted_vote" else None
    totals = class_totals(classes, weights)
    table = [(float(totals[c]), [int(m) for m in np.flatnonzero(classes == c)]) for c in range(len(totals))]
    return sorted([row for row in table if row[1]], key=lambda row: (-row[0], row[1][0]))


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
