"""e2h grade --input pairs.jsonl --output graded.jsonl

Each input line has ``gold`` and ``pred`` (a bare answer or a whole solution). Each output line is the
input plus ``correct``, ``reason``, ``pred_answer`` and ``grader_version``. Prints totals and timeouts.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

from e2h.jsonl import RecordError, read_jsonl, require, write_jsonl


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", "-i", required=True, help="JSONL with 'gold' and 'pred' on every line")
    parser.add_argument("--output", "-o", required=True, help="graded JSONL (written atomically)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per pair for SymPy (default 5)")
    parser.add_argument("--workers", type=int, default=2, help="killable SymPy worker processes (default 2)")


def run(args: argparse.Namespace) -> int:
    from e2h.grading import GRADER_VERSION, grade_many

    rows = []
    for line, obj in read_jsonl(args.input):
        gold = require(obj, "gold", args.input, line, str)
        pred = obj.get("pred")
        if pred is not None and not isinstance(pred, str):
            raise RecordError(args.input, line, f"field 'pred' should be str or null, got {type(pred).__name__}")
        rows.append((obj, pred, gold))
    start = time.perf_counter()
    verdicts = grade_many([(pred, gold) for _, pred, gold in rows], timeout_s=args.timeout, workers=args.workers)
    elapsed = time.perf_counter() - start
    out = []
    for (obj, _, _), v in zip(rows, verdicts):
        out.append({**obj, "correct": v.correct, "reason": v.reason, "pred_answer": v.pred_answer,
                    "grader_version": GRADER_VERSION})
    write_jsonl(args.output, out)
    reasons = Counter(v.reason for v in verdicts)
    correct = sum(v.correct for v in verdicts)
    n = max(len(verdicts), 1)
    print(f"graded {len(verdicts)} pairs in {elapsed:.1f}s: {correct} correct ({100 * correct / n:.1f}%), "
          f"{reasons.get('timeout', 0)} timeouts, {reasons.get('no_answer', 0)} without an answer -> {args.output}",
          file=sys.stderr)
    return 0
