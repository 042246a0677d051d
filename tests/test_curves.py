"""Bootstrap curves: the vectorised kernels agree with the single-pool rules, and the curves have the
properties that sampling without replacement implies; the intervals cover what they claim to."""

import math
import random
from collections import Counter

import numpy as np
import pytest

from e2h import curves, rerank
from e2h.curves import Method

METHODS = [Method("majority", "majority"), Method("wv", "weighted_vote", "s"), Method("bon", "best_of_n", "s"),
           Method("pass", "pass")]


def random_pools(rng, problems, pool, n_answers=4, quantised=True):
    classes = [rng.integers(-1, n_answers, size=pool).astype(np.int32) for _ in range(problems)]
    # quantised scores make exact ties frequent, so the tie rules are exercised
    scores = [np.round(rng.random(pool) * 4) / 4 if quantised else rng.random(pool) for _ in range(problems)]
    return classes, {"s": scores}


@pytest.mark.parametrize("most_gold", [1, 3], ids=["one correct class", "up to three correct classes"])
def test_kernels_match_single_pool_rules_on_every_prefix(most_gold):
    rng = np.random.default_rng(1)
    classes, scores = random_pools(rng, problems=12, pool=10)
    # gold-blind grouping can leave several correct classes (ids 0 .. n_gold-1) that vote apart
    n_gold = rng.integers(1, most_gold + 1, size=12)
    resamples = 40
    perms = np.stack([rng.permutation(10) for _ in range(12 * resamples)], axis=1)  # (M, columns)
    column_problem = np.repeat(np.arange(12), resamples)
    checkpoints = [1, 2, 3, 5, 8, 10]
    table = np.stack(classes), {"s": np.stack(scores["s"])}
    acc = curves.prefix_accuracy(*table, METHODS, column_problem, perms, checkpoints, n_gold)
    for col, p in enumerate(column_problem):
        g = int(n_gold[p])
        for k, n in enumerate(checkpoints):
            subset = perms[:n, col]
            c, s = table[0][p, subset], table[1]["s"][p, subset]
            assert acc["majority"][col, k] == pytest.approx(rerank.majority_vote(c, g))
            assert acc["wv"][col, k] == pytest.approx(rerank.weighted_vote(c, s, g))
            assert acc["bon"][col, k] == pytest.approx(rerank.best_of_n(c, s, g))
            assert acc["pass"][col, k] == rerank.pass_at_n(c, g)
    # whole pools through resample_accuracy read n_gold the same way
    whole = curves.resample_accuracy(classes, scores, METHODS, [10], resamples=3, seed=0, n_gold=n_gold)
    for method in METHODS:
        expected = [curves.full_pool_accuracy(method, c, {"s": s}, int(g))
                    for c, s, g in zip(classes, scores["s"], n_gold)]
        np.testing.assert_allclose(whole[method.name][:, 0, 0], expected, rtol=1e-6)


def test_correct_classes_vote_apart():
    # classes 0 and 1 are both correct (grouped without the gold) with 2 votes each; wrong class 2 has 3 and wins.
    # Merged by the gold they would have won 4-3: the kernels must not merge them.
    classes = [np.array([0, 0, 1, 1, 2, 2, 2], dtype=np.int32)]
    acc = curves.resample_accuracy(classes, {}, METHODS[:1] + METHODS[3:], [4, 7], resamples=200, seed=0, n_gold=[2])
    assert (acc["majority"][0, :, -1] == 0).all() and (acc["pass"][0, :, -1] == 1).all()
    merged = curves.resample_accuracy([np.array([0, 0, 0, 0, 1, 1, 1])], {}, METHODS[:1], [7], resamples=2)
    assert (merged["majority"] == 1).all()
    with pytest.raises(ValueError, match="1 pools but 2 n_gold"):
        curves.resample_accuracy(classes, {}, METHODS[:1], [4], n_gold=[1, 1])


def test_partial_shuffles_are_uniform_permutation_prefixes():
    rng = np.random.default_rng(0)
    draws = curves.partial_shuffles(5, 20000, 5, rng)
    assert all(sorted(draws[:, c].tolist()) == [0, 1, 2, 3, 4] for c in range(0, 20000, 997))  # permutations
    first = np.bincount(draws[0], minlength=5) / 20000  # each element equally likely at each position
    last = np.bincount(draws[4], minlength=5) / 20000
    np.testing.assert_allclose(first, 0.2, atol=0.015)
    np.testing.assert_allclose(last, 0.2, atol=0.015)


def test_curve_properties():
    rng = np.random.default_rng(2)
    classes, scores = random_pools(rng, problems=30, pool=16, quantised=False)
    scores["s"] = [s * 0.9 + 0.05 for s in scores["s"]]  # strictly positive weights: WV@1 is the drawn sample
    n_values = [1, 2, 4, 8, 16]
    acc = curves.resample_accuracy(classes, scores, METHODS, n_values, resamples=300, seed=0)
    # pass@N never decreases with N, in every resample (nested subsets) and on average
    assert (np.diff(acc["pass"], axis=2) >= 0).all()
    # at N = 1 every method scores the one drawn sample: identical in every resample
    for name in ("wv", "bon", "pass"):
        np.testing.assert_array_equal(acc[name][:, :, 0], acc["majority"][:, :, 0])
    # majority@1 estimates the mean per-sample accuracy
    truth = np.mean([np.mean(c == 0) for c in classes])
    se = acc["majority"][:, :, 0].mean(axis=0).std() / math.sqrt(300)
    assert abs(acc["majority"][:, :, 0].mean() - truth) < 4 * se + 1e-9
    # N = pool size: every resample is the whole pool, equal to the single-pool rule
    for method in METHODS:
        full = acc[method.name][:, :, -1]
        assert (full == full[:, :1]).all()
        expected = [curves.full_pool_accuracy(method, c, {"s": s}) for c, s in zip(classes, scores["s"])]
        np.testing.assert_allclose(full[:, 0], expected, rtol=1e-6)
        summary = curves.summarize(acc[method.name])
        assert summary["lo"][-1] == pytest.approx(summary["hi"][-1]) == pytest.approx(summary["mean"][-1])
    # oracle is the ceiling for every reranker, at every N
    for name in ("majority", "wv", "bon"):
        assert (acc[name].mean(axis=1) <= acc["pass"].mean(axis=1) + 1e-6).all()


def test_draws_are_without_replacement():
    # one correct sample in a pool of 8: without replacement pass@N = N/8 exactly (with replacement: 1-(7/8)^N)
    classes = [np.array([0] + [1] * 7, dtype=np.int32)] * 50
    acc = curves.resample_accuracy(classes, {}, [Method("pass", "pass")], [1, 2, 4, 8], resamples=400, seed=3)
    means = acc["pass"].mean(axis=(0, 1))
    np.testing.assert_allclose(means, [1 / 8, 2 / 8, 4 / 8, 1.0], atol=0.02)
    assert abs(means[2] - (1 - (7 / 8) ** 4)) > 0.08  # the with-replacement value is clearly excluded


def test_seeded_and_short_pools():
    rng = np.random.default_rng(4)
    classes, scores = random_pools(rng, problems=6, pool=8)
    classes.append(np.array([0, 1, 1, -1], dtype=np.int32))  # a short pool
    scores["s"].append(np.array([0.5, 0.25, 0.25, 1.0]))
    a = curves.resample_accuracy(classes, scores, METHODS, [1, 2, 4, 8], resamples=50, seed=7)
    b = curves.resample_accuracy(classes, scores, METHODS, [1, 2, 4, 8], resamples=50, seed=7)
    c = curves.resample_accuracy(classes, scores, METHODS, [1, 2, 4, 8], resamples=50, seed=8)
    assert all(np.array_equal(a[m.name], b[m.name]) for m in METHODS)
    assert not np.array_equal(a["majority"], c["majority"])
    # the short pool uses all 4 of its samples at N = 4 and N = 8: majority "1" (2 votes) beats the gold (1)
    assert (a["majority"][-1, :, 2:] == 0).all() and (a["pass"][-1, :, 2:] == 1).all()


def test_bad_arguments():
    classes = [np.array([0, 1], dtype=np.int32)]
    with pytest.raises(ValueError, match="increasing"):
        curves.resample_accuracy(classes, {}, [Method("p", "pass")], [2, 1])
    with pytest.raises(ValueError, match="reads score 'x'"):
        curves.resample_accuracy(classes, {}, [Method("b", "best_of_n", "x")], [1])
    with pytest.raises(ValueError, match="needs a score"):
        Method("w", "weighted_vote")
    assert curves.default_n_values(12) == [1, 2, 4, 8, 12] and curves.default_n_values(16) == [1, 2, 4, 8, 16]


def plain_majority(answers):
    """Independent plain-Python majority vote with expected accuracy over ties (answers: list of (key, ok))."""
    counts = Counter(key for key, _ in answers if key is not None)
    if not counts:
        return 0.0
    top = max(counts.values())
    tied = [key for key, n in counts.items() if n == top]
    return sum(1 for key in tied if key == "gold") / len(tied)


def test_sample_interval_covers_fresh_experiments():
    """The 'samples' interval is where the accuracy of a fresh N-sample draw on these problems falls 95% of
    the time: check with draws made by plain Python, independent of the vectorised code."""
    rng = np.random.default_rng(5)
    pools = []
    for _ in range(40):
        p = rng.uniform(0.1, 0.7)
        pools.append([("gold", True) if rng.random() < p else (str(rng.integers(1, 4)), False) for _ in range(16)])
    classes = [rerank.vote_classes([k for k, _ in pool], [ok for _, ok in pool]).ids for pool in pools]
    acc = curves.resample_accuracy(classes, {}, [Method("majority", "majority")], [4], resamples=1000, seed=1)
    summary = curves.summarize(acc["majority"])
    lo, hi = summary["lo"][0], summary["hi"][0]
    draw = random.Random(11)
    fresh = [np.mean([plain_majority(draw.sample(pool, 4)) for pool in pools]) for _ in range(400)]
    inside = np.mean([(lo <= f <= hi) for f in fresh])
    assert 0.90 <= inside <= 0.99, inside


def test_problem_interval_covers_the_true_accuracy():
    """Problem-bootstrap intervals: problems drawn from a known distribution (true accuracy at N = 1 is the
    mean success rate, 0.4); over many synthetic test sets the interval should hold it about 95% of the time."""
    rng = np.random.default_rng(6)
    method = [Method("majority", "majority")]
    hits, trials = 0, 150
    for trial in range(trials):
        rates = rng.beta(2, 3, size=60)  # mean 0.4
        classes = [np.where(rng.random(8) < r, 0, 1).astype(np.int32) for r in rates]
        acc = curves.resample_accuracy(classes, {}, method, [1], resamples=300, seed=trial)
        counts = curves.problem_bootstrap_counts(60, 300, seed=trial + 1000)
        s = curves.summarize(acc["majority"], problem_counts=counts)
        hits += s["lo_problems"][0] <= 0.4 <= s["hi_problems"][0]
    assert 0.88 <= hits / trials <= 0.995, hits / trials
