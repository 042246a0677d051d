"""Accuracy-vs-N curves: for each N, draw N of a problem's pooled samples without replacement, many times.

Data example (two problems, pools of 4 and 3 samples; class 0 = correct answer, -1 = no answer; classes as
``e2h.rerank.vote_classes`` numbers them, correct classes first)::

    classes = [np.array([0, 1, 1, -1]), np.array([2, 0, 0])]
    scores  = {"prm_min": [np.array([.9, .2, .3, .5]), np.array([.1, .8, .4])]}
    methods = [Method("majority", "majority"), Method("best_of_n/min", "best_of_n", "prm_min")]
    acc = resample_accuracy(classes, scores, methods, n_values=[1, 2, 4], resamples=1000, seed=0)
    acc["majority"].shape == (2, 1000, 3)        # problem x resample x N, expected accuracy over ties
    summarize(acc["majority"])["mean"]           # one number per N, plus a 95% interval
    resample_accuracy(classes, scores, methods, [1, 2, 4], n_gold=[2, 1])  # problem 0: classes 0 and 1 correct

How a resample is drawn: for every (problem, resample) a uniformly random permutation of the pool is built
step by step (a vectorised partial Fisher-Yates shuffle, seeded), and the subset for N is its first N entries.
Subsets for different N are therefore nested within one resample (pass@N can only grow with N), and each is a
uniform N-subset drawn without replacement. When N >= the pool size every resample is the whole pool, so that
point is computed once, exactly, by the single-pool functions of ``e2h.rerank`` (all resamples equal).
A problem whose pool is smaller than N uses its whole pool at that N (``resample_accuracy`` reports how many).

Every method keeps a running state per (problem, resample) while the permutation grows one sample at a time:
vote totals per answer class, the top total and how many classes share it (ties score j/k when j of the k
tied classes are correct, as in ``e2h.rerank``); the best score so far, how many samples share it and how many
of those are correct; whether a correct sample has appeared. Cost is O(problems x resamples x max N) with
numpy doing the inner work over thousands of (problem, resample) columns at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from e2h import rerank

Kind = Literal["majority", "weighted_vote", "best_of_n", "pass"]
COLUMNS_PER_CHUNK = 8192  # (problem, resample) columns processed together; small enough to stay in cache


@dataclass(frozen=True)
class Method:
    """A reranking rule: ``kind`` plus the name of the solution score it reads (None for majority / pass)."""

    name: str
    kind: Kind
    score: str | None = None

    def __post_init__(self):
        if self.kind in ("weighted_vote", "best_of_n") and self.score is None:
            raise ValueError(f"method '{self.name}' ({self.kind}) needs a score name")


def default_n_values(max_pool: int) -> list[int]:
    """1, 2, 4, ... up to the largest pool, plus the pool size itself when it is not a power of two."""
    values, n = [], 1
    while n <= max_pool:
        values.append(n)
        n *= 2
    if max_pool >= 1 and values[-1] != max_pool:
        values.append(max_pool)
    return values


def full_pool_accuracy(method: Method, classes: np.ndarray, scores: dict[str, np.ndarray], n_gold: int = 1) -> float:
    """One problem, all of its samples: the exact value every resample has when N >= pool size."""
    if method.kind == "majority":
        return rerank.majority_vote(classes, n_gold)
    if method.kind == "pass":
        return rerank.pass_at_n(classes, n_gold)
    if method.kind == "weighted_vote":
        return rerank.weighted_vote(classes, scores[method.score], n_gold)
    return rerank.best_of_n(classes, scores[method.score], n_gold)


def partial_shuffles(pool_size: int, columns: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """(draws, columns) pool indices: the first ``draws`` entries of an independent random permutation per column.

    A column-wise partial Fisher-Yates shuffle: column c starts as 0..M-1 and step i swaps position i with a
    uniform position in [i, M). Only the first max-N positions are drawn, so the cost is O(max N) per column,
    not O(M log M) as with argsort of random keys.
    """
    m, b = pool_size, columns
    dtype = np.int16 if m < 2**15 else np.int32
    perm = np.tile(np.arange(m, dtype=dtype)[:, None], (1, b))
    flat = perm.ravel()
    cols = np.arange(b)
    for i in range(draws):
        j = i + (rng.random(b) * (m - i)).astype(np.intp)
        np.minimum(j, m - 1, out=j)  # guard the float rounding of random() * (m - i) up to m - i
        where = j * b + cols
        drawn = flat[where]
        flat[where] = perm[i]
        perm[i] = drawn
    return perm[:draws]


def prefix_accuracy(classes: np.ndarray, scores: dict[str, np.ndarray], methods: Sequence[Method],
                    column_problem: np.ndarray, positions: np.ndarray,
                    checkpoints: Sequence[int], n_gold: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Accuracy of every method on growing prefixes, for a batch of columns (one (problem, resample) each).

    classes: (G, M) answer classes of G problems with equal pool size M (-1 = no answer); n_gold: (G,) how
    many classes are correct per problem (classes 0 .. n_gold-1; default 1: class 0 = gold).
    scores:  name -> (G, M) solution scores. column_problem: (b,) which problem each column samples from.
    positions: (T, b) pool indices in drawing order (column c's first T draws), T >= max(checkpoints).
    Returns name -> (b, len(checkpoints)) expected accuracy after the first N draws, for each N in checkpoints.
    """
    g, m = classes.shape
    b = len(column_problem)
    steps = max(checkpoints)
    n_classes = int(classes.max(initial=0)) + 1
    dummy = n_classes  # where "no answer" samples go; it never takes part in a vote
    flat = column_problem.astype(np.intp)[None, :] * m + positions[:steps]  # (T, b) into the (G, M) tables
    cls = np.where(classes >= 0, classes, dummy).ravel()[flat]
    answered = cls != dummy
    column_gold = np.ones(g, dtype=np.int32)[column_problem] if n_gold is None else np.asarray(n_gold)[column_problem]
    gold = answered & (cls < column_gold[None, :])
    ks = np.asarray(checkpoints) - 1
    out = {}
    for method in methods:
        if method.kind == "pass":
            out[method.name] = _pass_prefixes(gold, ks)
        elif method.kind == "best_of_n":
            s = np.asarray(scores[method.score], dtype=np.float64).ravel()[flat]
            out[method.name] = _best_prefixes(np.where(answered & np.isfinite(s), s, -np.inf), gold, ks)
        else:
            if method.kind == "majority":
                w = answered.astype(np.float64)
            else:
                w = np.where(answered, rerank.vote_weights(scores[method.score]).ravel()[flat], 0.0)
            out[method.name] = _vote_prefixes(cls, w, n_classes + 1, ks, column_gold)
    return out


# The three kernels below walk the draws one step at a time with a few in-place numpy ops over all columns;
# (ufunc.accumulate along the draw axis was measured 3x slower than this loop).

def _pass_prefixes(gold: np.ndarray, ks: np.ndarray) -> np.ndarray:
    seen = np.zeros(gold.shape[1], dtype=bool)
    acc = np.zeros((gold.shape[1], len(ks)), dtype=np.float32)
    wanted = {int(k): j for j, k in enumerate(ks)}
    for i in range(int(ks[-1]) + 1):
        seen |= gold[i]
        if i in wanted:
            acc[:, wanted[i]] = seen
    return acc


def _best_prefixes(scores: np.ndarray, gold: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """Best-of-N: the top score so far, how many drawn samples share it, how many of those are correct."""
    b = scores.shape[1]
    top = np.full(b, -np.inf)
    n_top = np.zeros(b, dtype=np.int32)
    n_gold = np.zeros(b, dtype=np.int32)
    acc = np.zeros((b, len(ks)), dtype=np.float32)
    wanted = {int(k): j for j, k in enumerate(ks)}
    for i in range(int(ks[-1]) + 1):
        s, g = scores[i], gold[i]
        above = s > top
        tie = (s == top) & (s > -np.inf)
        n_top += tie
        n_gold += tie & g
        n_top[above] = 1
        n_gold[above] = g[above]
        np.maximum(top, s, out=top)
        if i in wanted:
            acc[:, wanted[i]] = np.where(n_top > 0, n_gold / np.maximum(n_top, 1), 0.0)
    return acc


def _vote_prefixes(cls: np.ndarray, w: np.ndarray, width: int, ks: np.ndarray, n_gold: np.ndarray) -> np.ndarray:
    """Running vote totals per (column, class); after each wanted step, expected accuracy of the vote.

    State per column: the top total and how many classes share it. Weights are >= 0, so a class's total only
    grows: it passes the top (new top, 1 class) or reaches it (one more tied class) or stays below. At a
    wanted step, the correct classes (ids below the column's n_gold) that sit at the top are counted.
    """
    steps, b = cls.shape
    base = np.arange(b, dtype=np.intp) * width
    totals = np.zeros(b * width)
    top = np.zeros(b)
    n_top = np.zeros(b, dtype=np.int32)
    wanted = {int(k): j for j, k in enumerate(ks)}
    acc = np.zeros((b, len(ks)), dtype=np.float32)
    gold_slots = np.arange(width)[None, :] < n_gold[:, None]  # (b, width): which classes are correct
    for i in range(steps):
        idx = base + cls[i]
        wi = w[i]
        new = totals[idx] + wi
        totals[idx] = new
        above = new > top
        n_top += (new == top) & (wi > 0)  # reached the top from below
        n_top[above] = 1
        np.maximum(top, new, out=top)
        j = wanted.get(i)
        if j is not None:
            gold_on_top = ((totals.reshape(b, width) == top[:, None]) & gold_slots).sum(axis=1)
            acc[:, j] = np.where(top > 0, gold_on_top / np.maximum(n_top, 1), 0.0)
    return acc


def resample_accuracy(classes: Sequence[np.ndarray], scores: dict[str, Sequence[np.ndarray]],
                      methods: Sequence[Method], n_values: Sequence[int], resamples: int = 1000,
                      seed: int = 0, n_gold: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """Expected accuracy per (problem, resample, N) for every method: name -> float32 (P, R, len(n_values)).

    classes[p] holds problem p's answer classes and n_gold[p] how many of them are correct
    (``e2h.rerank.vote_classes``; default 1: class 0 = gold); scores[name][p] its solution scores. Problems
    are grouped by pool size; each group draws its own seeded permutations.
    """
    n_values = [int(n) for n in n_values]
    if not n_values or min(n_values) < 1 or n_values != sorted(set(n_values)):
        raise ValueError(f"n_values must be increasing positive integers, got {n_values}")
    if resamples < 1:
        raise ValueError("resamples must be >= 1")
    for method in methods:
        if method.score is not None and method.score not in scores:
            raise ValueError(f"method '{method.name}' reads score '{method.score}', which the pool does not have")
    p = len(classes)
    out = {method.name: np.zeros((p, resamples, len(n_values)), dtype=np.float32) for method in methods}
    sizes = np.array([len(c) for c in classes])
    if (sizes == 0).any():
        raise ValueError(f"problem {int(np.flatnonzero(sizes == 0)[0])} has an empty pool")
    golds = np.ones(p, dtype=np.int32) if n_gold is None else np.asarray(n_gold, dtype=np.int32)
    if len(golds) != p:
        raise ValueError(f"{p} pools but {len(golds)} n_gold values")
    rng = np.random.default_rng(seed)
    for m in sorted(set(sizes.tolist())):
        members = np.flatnonzero(sizes == m)
        group_classes = np.stack([classes[i] for i in members]).astype(np.int32)
        group_gold = golds[members]
        group_scores = {name: np.stack([np.asarray(values[i], dtype=np.float64) for i in members])
                        for name, values in scores.items()}
        drawn = [k for k, n in enumerate(n_values) if n < m]
        whole = [k for k, n in enumerate(n_values) if n >= m]
        if whole:  # every resample is the whole pool: one exact value, broadcast
            for method in methods:
                values = [full_pool_accuracy(method, group_classes[j], {s: v[j] for s, v in group_scores.items()},
                                             int(group_gold[j])) for j in range(len(members))]
                out[method.name][np.ix_(members, np.arange(resamples), whole)] = np.asarray(values)[:, None, None]
        if not drawn:
            continue
        checkpoints = [n_values[k] for k in drawn]  # a prefix of n_values, since they are sorted
        per_chunk = max(1, COLUMNS_PER_CHUNK // resamples)  # whole problems per chunk
        for start in range(0, len(members), per_chunk):
            chunk = np.arange(start, min(start + per_chunk, len(members)))
            column_problem = np.repeat(chunk, resamples)
            positions = partial_shuffles(m, len(column_problem), max(checkpoints), rng)
            acc = prefix_accuracy(group_classes, group_scores, methods, column_problem, positions, checkpoints,
                                  group_gold)
            for method in methods:
                out[method.name][members[chunk], :, : len(drawn)] = acc[method.name].reshape(
                    len(chunk), resamples, len(drawn))
    return out


def problem_bootstrap_counts(n_problems: int, resamples: int, seed: int) -> np.ndarray:
    """(R, P) multiplicities: resample r uses problem p counts[r, p] times (problems drawn with replacement)."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_problems, np.full(n_problems, 1.0 / n_problems), size=resamples).astype(np.float32)


def summarize(acc: np.ndarray, level: float = 0.95, problem_counts: np.ndarray | None = None) -> dict[str, list]:
    """Curve summary of (P, R, len(N)) accuracies: mean and percentile intervals per N.

    ``lo``/``hi``: percentiles over resamples of the mean over problems, i.e. where the accuracy of one
    N-sample experiment on these problems falls, depending on which samples were drawn (the paper's shaded
    margin; a prediction interval for a single run of best-of-N / voting).
    ``lo_problems``/``hi_problems`` (given ``problem_counts`` from :func:`problem_bootstrap_counts`): a
    confidence interval for the mean accuracy itself over the problem distribution, from resampling problems
    with replacement (each with its expected accuracy over resamples). Use it to compare methods or runs:
    it says how much the number would move on another test set of the same size.
    """
    p, r, _ = acc.shape
    alpha = (1 - level) / 2 * 100
    per_resample = acc.mean(axis=0, dtype=np.float64)  # (R, N)
    summary = {
        "mean": per_resample.mean(axis=0).tolist(),
        "lo": np.percentile(per_resample, alpha, axis=0).tolist(),
        "hi": np.percentile(per_resample, 100 - alpha, axis=0).tolist(),
    }
    if problem_counts is not None and p > 0:
        if problem_counts.shape != (r, p):
            raise ValueError(f"problem_counts has shape {problem_counts.shape}, expected {(r, p)}")
        expected = acc.mean(axis=1, dtype=np.float64)  # (P, N): each problem's expected accuracy
        both = problem_counts.astype(np.float64) @ expected / p
        summary["lo_problems"] = np.percentile(both, alpha, axis=0).tolist()
        summary["hi_problems"] = np.percentile(both, 100 - alpha, axis=0).tolist()
    return summary
