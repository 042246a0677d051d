"""Prepare a run's data sets, or count what the configured sources hold.

    e2h data prepare --config configs/demo.yaml [data.train_levels=[1,2,3] ...] [--force]
    e2h data stats   --config configs/llemma-7b-prm800k-level1-3.yaml
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter

from e2h.config import add_config_arguments, load_config
from e2h.data.math import load_math500, load_math_train
from e2h.data.prepare import data_dir, prepare
from e2h.data.prm800k import iter_rated_steps
from e2h.data.processbench import load_processbench

def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    prepare = sub.add_parser("prepare", help="write PRM / SFT / prompt sets into <run.out_dir>/data/")
    add_config_arguments(prepare)
    prepare.add_argument("--force", action="store_true", help="rebuild even if the manifest marks data done")
    stats = sub.add_parser("stats", help="load every configured source and print its counts")
    add_config_arguments(stats)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    try:
        if args.data_command == "prepare":
            summary = prepare(cfg, force=args.force)
            print(_format_summary(summary, str(data_dir(cfg))))
        else:
            print(json.dumps(source_stats(cfg), indent=2))
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ValueError as err:
        if type(err) is ValueError:  # split / quota problems; RecordError and ConfigError go to e2h.commands.cli
            print(f"error: {err}", file=sys.stderr)
            return 2
        raise
    return 0


def _format_summary(summary: dict, where: str) -> str:
    head = f"data already prepared in {where} (same config; --force rebuilds)" if summary.get("skipped") \
        else f"prepared data in {where}"
    lines = [head]
    for name, entry in summary.items():
        if not isinstance(entry, dict) or "rows" not in entry:
            continue
        levels = " ".join(f"L{k}={v}" for k, v in entry["by_level"].items())
        extra = ""
        if "by_label" in entry:
            extra = "  step labels " + " ".join(f"{k}={v}" for k, v in entry["by_label"].items())
        if "eos" in entry:
            extra = f"  eos={entry['eos']}"
        lines.append(f"  {name:<19} {entry['rows']:>7}  {levels}{extra}")
    if "prm800k_rows" in summary:
        lines.append("  prm800k rows       " + " ".join(f"{k}={v}" for k, v in summary["prm800k_rows"].items()))
    return "\n".join(lines)


def source_stats(cfg) -> dict:
    """Counts straight from the configured sources (no splitting or filtering)."""
    def by_level(problems):
        counts = Counter(p.level for p in problems)
        return {("none" if k is None else str(k)): counts[k] for k in sorted(counts, key=lambda k: (k is None, k or 0))}

    if cfg.data.source == "world":
        return {"source": "world", "note": "the world is generated; see `e2h world`"}
    stats: dict = {"math_train": by_level(load_math_train(cfg.data.math_train)),
                   "math500": by_level(load_math500(cfg.data.math500))}
    for source in cfg.data.prm800k:
        ratings = Counter(str(step.rating) for step in iter_rated_steps(source))
        stats[f"prm800k {source}"] = {"rated_candidates": dict(sorted(ratings.items()))}
    for source in cfg.data.processbench:
        items = load_processbench(source)
        stats[f"processbench {source}"] = {"rows": len(items), "all_correct": sum(i.label == -1 for i in items),
                                           "final_answer_correct": sum(i.final_answer_correct for i in items)}
    return stats
