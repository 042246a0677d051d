"""e2h grade --input pairs.jsonl --output graded.jsonl [--numeric exact|rel_tol] [--mode e2h|prm800k_strict]
e2h grade --audit [golds.jsonl ...]

Each input line has ``gold`` and ``pred`` (a bare answer or a whole solution). Each output line is the
input plus ``correct``, ``reason``, ``pred_answer`` and ``grader_version``. Prints totals and timeouts.
``--audit`` parses every gold answer as a whole (default: MATH500 and the MATH train golds in tests/data),
lists the golds the grader cannot parse and prints their count per file.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from e2h.grading import GRADER_VERSION, grade_many
from e2h.grading.audit import DEFAULT_GOLD_FILES, audit_file
from e2h.jsonl import RecordError, read_jsonl, require, write_jsonl


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", "-i", help="JSONL with 'gold' and 'pred' on every line")
    parser.add_argument("--output", "-o", help="graded JSONL (written atomically)")
    parser.add_argument("--audit", nargs="*", metavar="GOLDS.jsonl", default=None,
                        help="list the gold answers ('answer' or 'gold' field) the grader cannot parse as a whole; "
                             "default files: MATH500 and the MATH train golds in tests/data")
    parser.add_argument("--numeric", choices=["exact", "rel_tol"], default="exact",
                        help="numeric convention (grading.numeric): exact (default, PRM800K) or rel_tol")
    parser.add_argument("--rel-tol", type=float, default=1e-9, help="relative tolerance for --numeric rel_tol")
    parser.add_argument("--mode", choices=["e2h", "prm800k_strict"], default="e2h",
                        help="grader (grading.mode): e2h (default) or prm800k_strict, PRM800K's grader with its SymPy "
                             "check off, as the paper's reference code grades")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per pair for SymPy (default 5)")
    parser.add_argument("--workers", type=int, default=2, help="killable SymPy worker processes (default 2)")


def run(args: argparse.Namespace) -> int:
    if args.audit is not None:
        return run_audit(args.audit)
    if not args.input or not args.output:
        print("e2h grade: --input and --output are required (or --audit)", file=sys.stderr)
        return 2

    rows = []
    for line, obj in read_jsonl(args.input):
        gold = require(obj, "gold", args.input, line, str)
        pred = obj.get("pred")
        if pred is not None and not isinstance(pred, str):
            raise RecordError(args.input, line, f"field 'pred' should be str or null, got {type(pred).__name__}")
        rows.append((obj, pred, gold))
    start = time.perf_counter()
    verdicts = grade_many([(pred, gold) for _, pred, gold in rows], timeout_s=args.timeout, workers=args.workers,
                          numeric=args.numeric, rel_tol=args.rel_tol, mode=args.mode)
    elapsed = time.perf_counter() - start
    out = []
    for (obj, _, _), v in zip(rows, verdicts):
        out.append({**obj, "correct": v.correct, "reason": v.reason, "pred_answer": v.pred_answer,
                    "grader_version": GRADER_VERSION if args.mode == "e2h" else f"{GRADER_VERSION} mode={args.mode}"})
    write_jsonl(args.output, out)
    reasons = Counter(v.reason for v in verdicts)
    correct = sum(v.correct for v in verdicts)
    n = max(len(verdicts), 1)
    print(f"graded {len(verdicts)} pairs in {elapsed:.1f}s: {correct} correct ({100 * correct / n:.1f}%), "
          f"{reasons.get('timeout', 0)} timeouts, {reasons.get('no_answer', 0)} without an answer; "
          f"grader {args.mode}, numeric convention {args.numeric} -> {args.output}", file=sys.stderr)
    return 0


def run_audit(paths: list[str]) -> int:
    files = paths or [str(p) for p in DEFAULT_GOLD_FILES]
    missing = [p for p in files if not Path(p).exists()]
    if missing:
        print(f"e2h grade --audit: no such file: {', '.join(missing)} (give gold JSONL files as arguments)",
              file=sys.stderr)
        return 2
    total = 0
    for path in files:
        result = audit_file(path)
        for uid, gold, why in result.unparsed:
            print(f"{uid}\t{gold!r}\t{why}")
        print(f"{path}: {len(result.unparsed)} of {result.golds} golds cannot be parsed as a whole")
        total += len(result.unparsed)
    print(f"unparsed golds: {total}")
    return 0
