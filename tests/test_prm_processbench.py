"""ProcessBench first-error metric on a hand-made set, threshold calibration on a separate split."""

from __future__ import annotations

import pytest

from prm.processbench import best_threshold, clean_steps, evaluate, first_error, processbench_metrics


@pytest.mark.parametrize("scores,threshold,expected", [
    ([0.9, 0.8, 0.7], 0.5, -1), ([0.9, 0.4, 0.1], 0.5, 1), ([0.2], 0.5, 0), ([0.9, 0.8], 0.85, 1), ([], 0.5, -1),
])
def test_first_error(scores, threshold, expected):
    assert first_error(scores, threshold) == expected


def test_metric_on_hand_made_set():
    labels = [1, 0, 2, -1, -1, -1]
    scores = [[0.9, 0.2, 0.1],  # predicts 1: right
              [0.9, 0.9],  # predicts -1, label 0: wrong
              [0.8, 0.3, 0.1],  # predicts 1, label 2: wrong (too early)
              [0.9, 0.9], [0.7, 0.6, 0.9],  # correct samples, predicted -1: right
              [0.9, 0.4]]  # correct sample flagged: wrong
    m = processbench_metrics(labels, scores, 0.5)
    assert (m["n_error"], m["n_correct"]) == (3, 3)
    assert m["error_acc"] == pytest.approx(1 / 3) and m["correct_acc"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 * (1 / 3) * (2 / 3) / (1 / 3 + 2 / 3))
    assert processbench_metrics([-1], [[0.9]], 0.5)["f1"] == 0.0  # no erroneous samples: error_acc 0


def test_threshold_is_chosen_on_the_calibration_split_only():
    class Item:
        def __init__(self, problem, steps, label):
            self.problem, self.steps, self.label = problem, steps, label

    class StubScorer:  # step text "s=0.35" scores 0.35: lets the test pin the scores
        def score_steps(self, prompt, solutions):
            return [[float(step.split("=")[1]) for step in steps] for steps in solutions]

    calib = [Item("q", ["s=0.9", "s=0.35"], 1), Item("q", ["s=0.9", "s=0.45"], -1)]
    test = [Item("q", ["s=0.3"], 0), Item("q", ["s=0.42"], -1)]
    threshold = best_threshold([1, -1], [[0.9, 0.35], [0.9, 0.45]])
    assert 0.35 < threshold <= 0.45
    report = evaluate(StubScorer(), {"calib": calib, "test": test}, calibrate_on="calib")
    assert report["calib"]["f1"] == 1.0 and report["calib"]["calibration"]
    assert report["test"]["threshold"] == threshold and not report["test"]["calibration"]
    assert report["test"]["error_acc"] == 1.0 and report["test"]["correct_acc"] == (1.0 if threshold <= 0.42 else 0.0)


def test_clean_steps_removes_blank_lines_inside_steps():
    assert clean_steps(["a\n\nb", "  ", "c\n \n\nd"]) == ["a\nb", "(empty step)", "c\nd"]


def test_real_processbench_file_scores_with_a_prm(tiny_prm_dir):
    from prm.processbench import load_splits
    from prm.score import PRMScorer

    splits = load_splits(["tests/data/processbench_gsm8k.jsonl", "tests/data/processbench_math.jsonl"], 6)
    report = evaluate(PRMScorer(tiny_prm_dir), splits)
    assert set(report) == {"gsm8k", "math"} and report["gsm8k"]["calibration"]
    assert report["math"]["n"] == 6 and 0.0 <= report["math"]["f1"] <= 1.0
