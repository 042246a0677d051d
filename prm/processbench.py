"""ProcessBench with a PRM (`e2h eval-processbench`): predict the earliest wrong step from step scores.

The prediction is the first step whose probability is below a threshold (-1: no step is). ProcessBench's
metric: accuracy on erroneous samples (label >= 0: predicted index == label), accuracy on correct samples
(label == -1: predicted -1) and their harmonic mean, "F1". The threshold is chosen on a SEPARATE split
(``--calibrate-on``, default the first file) to maximise F1 there, then applied to every split::

    e2h eval-processbench -c configs/demo.yaml --model runs/demo/prm --limit 200
    # gsm8k (calibration): threshold 0.62 error_acc 0.41 correct_acc 0.77 f1 0.535 ...
"""

from __future__ import annotations

import re
from pathlib import Path

from e2h.config import add_config_arguments, config_from_args
from e2h.data.processbench import _split_name, load_processbench
from e2h.jsonl import write_json
from e2h.layout import RunLayout
from e2h.text_format import format_prompt
from prm.score import PRMScorer

THRESHOLDS = tuple(i / 200 for i in range(1, 200))


def first_error(step_scores: list[float], threshold: float) -> int:
    """Index of the first step scored below ``threshold``, or -1.

    >>> first_error([0.9, 0.3, 0.1], 0.5)
    1
    """
    for index, score in enumerate(step_scores):
        if score < threshold:
            return index
    return -1


def processbench_metrics(labels: list[int], step_scores: list[list[float]], threshold: float) -> dict[str, float]:
    """error_acc, correct_acc, f1 (harmonic mean; 0 when either is 0) and counts."""
    err_hits = err_n = cor_hits = cor_n = 0
    for label, scores in zip(labels, step_scores, strict=True):
        pred = first_error(scores, threshold)
        if label >= 0:
            err_n += 1
            err_hits += pred == label
        else:
            cor_n += 1
            cor_hits += pred == -1
    error_acc = err_hits / err_n if err_n else 0.0
    correct_acc = cor_hits / cor_n if cor_n else 0.0
    f1 = 2 * error_acc * correct_acc / (error_acc + correct_acc) if error_acc + correct_acc > 0 else 0.0
    return {"error_acc": error_acc, "correct_acc": correct_acc, "f1": f1, "n_error": err_n, "n_correct": cor_n,
            "threshold": threshold}


def best_threshold(labels: list[int], step_scores: list[list[float]], grid=THRESHOLDS) -> float:
    """The grid threshold with the highest F1 (ties: the smallest)."""
    return max(grid, key=lambda t: (processbench_metrics(labels, step_scores, t)["f1"], -t))


def clean_steps(steps: list[str]) -> list[str]:
    """ProcessBench steps may hold blank lines or be empty; our format forbids the separator inside a step."""
    cleaned = []
    for step in steps:
        step = re.sub(r"\n\s*\n", "\n", step.strip())
        cleaned.append(step or "(empty step)")
    return cleaned


def score_items(scorer, items) -> list[list[float]]:
    return [scorer.score_steps(format_prompt(item.problem), [clean_steps(item.steps)])[0] for item in items]


def evaluate(scorer, splits: dict[str, list], calibrate_on: str | None = None) -> dict[str, dict]:
    """Score every split, pick the threshold on ``calibrate_on``, report each split at that threshold."""
    names = list(splits)
    calibrate_on = calibrate_on or names[0]
    if calibrate_on not in splits:
        raise ValueError(f"--calibrate-on {calibrate_on!r} is not one of the splits {names}")
    scores = {name: score_items(scorer, items) for name, items in splits.items()}
    labels = {name: [item.label for item in items] for name, items in splits.items()}
    threshold = best_threshold(labels[calibrate_on], scores[calibrate_on])
    report = {}
    for name in names:
        report[name] = {**processbench_metrics(labels[name], scores[name], threshold), "n": len(splits[name]),
                        "calibration": name == calibrate_on}
    return report


def load_splits(sources: list[str], limit: int | None = None) -> dict[str, list]:
    return {_split_name(src): load_processbench(src)[:limit] for src in sources}


def evaluate_model_on_processbench(model_path: str, sources: list[str], limit: int) -> dict[str, float]:
    """Used during training: flat metrics ``processbench/<split>/f1`` etc. at a threshold calibrated on the first
    split (with one split, calibration and report coincide: read it as an upper bound)."""
    report = evaluate(PRMScorer(model_path), load_splits(sources, limit))
    return {f"processbench/{name}/{key}": float(value) for name, metrics in report.items()
            for key, value in metrics.items() if key in ("f1", "error_acc", "correct_acc", "threshold")}


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--model", help="PRM folder (default <run>/prm)")
    parser.add_argument("--splits", nargs="+", help="ProcessBench JSONL files (default data.processbench)")
    parser.add_argument("--calibrate-on", help="split whose best threshold is used everywhere (default: the first)")
    parser.add_argument("--limit", type=int, help="first N items of each split")
    parser.add_argument("--output", help="metrics JSON (default <run>/eval/processbench.json)")


def run(args) -> int:
    cfg = config_from_args(args)
    scorer = PRMScorer(args.model or str(RunLayout(cfg).score_model), device=cfg.score.device)
    report = evaluate(scorer, load_splits(args.splits or cfg.data.processbench, args.limit), args.calibrate_on)
    output = Path(args.output or RunLayout(cfg).eval_dir / "processbench.json")
    write_json(output, report)
    for name, m in report.items():
        tag = " (calibration)" if m["calibration"] else ""
        print(f"{name}{tag}: threshold {m['threshold']:.3f} error_acc {m['error_acc']:.3f} "
              f"correct_acc {m['correct_acc']:.3f} f1 {m['f1']:.3f} (n={m['n']})")
    print(f"wrote {output}")
    return 0
