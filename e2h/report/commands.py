"""e2h report: compare evaluated runs side by side in one report.md + report.html.

    e2h report runs/llemma7b-l1-3 runs/llemma7b-l1-5 --out reports/levels

Each RUN_DIR is a run folder holding eval/metrics.json (written by `e2h eval`), or a folder holding
metrics.json directly. Runs are labelled by their run name (config run.name), else by their folder name.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from e2h.report import write_report


def find_metrics(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    for candidate in (run_dir / "eval" / "metrics.json", run_dir / "metrics.json", run_dir):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{run_dir}: no eval/metrics.json or metrics.json (run `e2h eval` first)")


def load_runs(run_dirs: list[str]) -> tuple[list[dict], list[str]]:
    metrics_list, labels = [], []
    for run_dir in run_dirs:
        path = find_metrics(run_dir)
        try:
            metrics = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
        for key in ("groups", "n_values", "headline_methods", "counts"):
            if key not in metrics:
                raise ValueError(f"{path}: missing '{key}'; is it a metrics.json written by `e2h eval`?")
        label = metrics.get("run_name") or Path(run_dir).name
        if label in labels:  # two runs with one name: tell them apart by folder
            label = f"{label} ({Path(run_dir).resolve().name})"
        metrics_list.append(metrics)
        labels.append(label)
    return metrics_list, labels


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders (or eval folders) to compare")
    parser.add_argument("--out", default="report", help="output folder for report.md and report.html")
    parser.add_argument("--label", action="append", help="label for each run, in order (default: run name)")


def run(args: argparse.Namespace) -> int:
    metrics_list, labels = load_runs(args.run_dirs)
    if args.label:
        if len(args.label) != len(labels):
            raise SystemExit(f"error: {len(args.label)} --label values for {len(labels)} runs")
        labels = args.label
    md, html_path = write_report(metrics_list, labels, args.out)
    print(f"compared {len(labels)} runs: {', '.join(labels)}; wrote {md} and {html_path}")
    return 0
