"""Benchmark: bootstrap reranking curves for 500 problems x pool 256 x 1000 resamples (target < 5 s).

    python bench/bench_rerank.py [--problems 500] [--pool 256] [--resamples 1000] [--python-problems 2]

Work measured: majority vote, weighted vote (prod), best-of-N (min) and pass@N at N = 1, 2, 4, ..., 256, each
N drawn without replacement in every resample (e2h.curves.resample_accuracy). Baseline: the same work as a
plain-Python loop (random.sample per (problem, resample, N), dict vote counts), run on --python-problems
problems and extrapolated linearly to all problems (the loop is far too slow to run in full), in this process.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import defaultdict

import numpy as np

from e2h import curves
from e2h.curves import Method

METHODS = [Method("majority", "majority"), Method("weighted_vote/prod", "weighted_vote", "prod"),
           Method("best_of_n/min", "best_of_n", "min"), Method("pass", "pass")]


def synthetic_pools(problems: int, pool: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    classes, scores = [], {"min": [], "prod": []}
    for _ in range(problems):
        n_answers = int(rng.integers(2, 60))  # easy problems: few distinct answers; hard ones: many
        c = rng.integers(-1, n_answers, size=pool).astype(np.int32)
        classes.append(c)
        scores["min"].append(rng.random(pool))
        scores["prod"].append(rng.random(pool))
    return classes, scores


def python_loop(classes, scores, n_values, resamples, seed=0):
    """The same computation, one (problem, resample, N) at a time, in plain Python."""
    rng = random.Random(seed)
    out = []
    for p, cls in enumerate(classes):
        cls = cls.tolist()
        s_min, s_prod = scores["min"][p].tolist(), scores["prod"][p].tolist()
        whole = None  # N >= pool: every resample is the whole pool; computed once, as e2h.curves does
        for _ in range(resamples):
            for n in n_values:
                if n >= len(cls) and whole is not None:
                    out.append(whole)
                    continue
                idx = rng.sample(range(len(cls)), min(n, len(cls)))
                votes, weights = defaultdict(float), defaultdict(float)
                best, best_gold, n_best = -1.0, 0, 0
                for i in idx:
                    c = cls[i]
                    if c < 0:
                        continue
                    votes[c] += 1
                    weights[c] += s_prod[i]
                    if s_min[i] > best:
                        best, best_gold, n_best = s_min[i], int(c == 0), 1
                    elif s_min[i] == best:
                        best_gold, n_best = best_gold + (c == 0), n_best + 1
                row = []
                for totals in (votes, weights):
                    top = max(totals.values(), default=0)
                    tied = [k for k, v in totals.items() if v == top] if top > 0 else []
                    row.append(tied.count(0) / len(tied) if tied else 0.0)
                row.append(best_gold / n_best if n_best else 0.0)
                row.append(float(any(cls[i] == 0 for i in idx)))
                out.append(row)
                if n >= len(cls):
                    whole = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=500)
    parser.add_argument("--pool", type=int, default=256)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--python-problems", type=int, default=2)
    args = parser.parse_args()
    classes, scores = synthetic_pools(args.problems, args.pool)
    n_values = curves.default_n_values(args.pool)

    start, cpu = time.perf_counter(), time.process_time()
    acc = curves.resample_accuracy(classes, scores, METHODS, n_values, args.resamples, seed=0)
    summaries = {name: curves.summarize(a) for name, a in acc.items()}
    vectorised, vectorised_cpu = time.perf_counter() - start, time.process_time() - cpu

    k = min(args.python_problems, args.problems)
    start = time.perf_counter()
    python_loop(classes[:k], scores, n_values, args.resamples)
    python_part = time.perf_counter() - start
    python_full = python_part * args.problems / k

    print(f"work: {args.problems} problems x pool {args.pool} x {args.resamples} resamples, N = {n_values}, "
          f"methods: {', '.join(m.name for m in METHODS)}")
    print(f"vectorised numpy (e2h.curves): {vectorised:.2f} s wall, {vectorised_cpu:.2f} s CPU "
          f"(target < 5 s: {'OK' if vectorised < 5 else 'wall over target'}; wall > CPU means the machine is shared)")
    print(f"plain-Python loop: {python_part:.2f} s on {k} problems, extrapolated to {args.problems}: "
          f"{python_full:.1f} s")
    print(f"speed-up: {python_full / vectorised:.0f}x")
    print("accuracy at N=max:", {name: round(s["mean"][-1], 3) for name, s in summaries.items()})


if __name__ == "__main__":
    main()
