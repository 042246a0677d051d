"""How well a PRM judges steps it was never trained on: step-level ROC-AUC against the world's checker.

Every step of every scored sample gets the checker's verdict (a step building on a wrong value is wrong, see
e2h.world.checker); the PRM's probability for that step is the score. The AUC is the chance that a random
correct step scores above a random wrong one (ties count half), computed per group of levels, so a reader sees
whether a verifier trained on levels 1-3 still separates steps on levels 4-5::

    step_auc(problems, samples, {"easy": (1, 2, 3), "hard": (4, 5)})
    # {"easy": {"auc": 0.93, "correct_steps": 5120, "wrong_steps": 880}, "hard": {...}}
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from e2h.records import Problem, Sample
from e2h.text_format import split_solution
from e2h.world.checker import check_steps


def roc_auc(scores: Iterable[float], labels: Iterable[bool]) -> float:
    """Mann-Whitney AUC with average ranks for ties; NaN when one class is empty."""
    scores, labels = np.asarray(list(scores), dtype=float), np.asarray(list(labels), dtype=bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    start = 0
    while start < len(scores):  # average rank over each run of equal scores
        end = start
        while end + 1 < len(scores) and sorted_scores[end + 1] == sorted_scores[start]:
            end += 1
        ranks[order[start:end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def step_verdicts(problem: Problem, sample: Sample) -> list[tuple[float, bool]]:
    """(PRM probability, checker verdict) per step the checker can judge; empty if the sample is unscored."""
    if not sample.step_scores:
        return []
    steps = split_solution(sample.completion)
    verdicts = check_steps(problem, steps)
    return [(score, verdict) for score, verdict in zip(sample.step_scores, verdicts) if verdict is not None]


def step_auc(problems: dict[str, Problem], samples: Iterable[Sample],
             groups: dict[str, tuple[int, ...]]) -> dict[str, dict[str, float]]:
    pairs: dict[str, list[tuple[float, bool]]] = {name: [] for name in groups}
    for sample in samples:
        for name, levels in groups.items():
            if sample.level in levels:
                pairs[name] += step_verdicts(problems[sample.problem_id], sample)
    result = {}
    for name, rows in pairs.items():
        labels = [verdict for _, verdict in rows]
        result[name] = {"auc": roc_auc([score for score, _ in rows], labels),
                        "correct_steps": sum(labels), "wrong_steps": len(labels) - sum(labels)}
    return result
