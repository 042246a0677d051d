"""Grader throughput: e2h.grading vs math-verify on MATH500 (same run, same pairs, timeouts on).

Pairs: every MATH500 gold against itself (500) and against the next problem's gold (500) = 1000.
Labels: gold-vs-gold is equivalent; gold-vs-neighbour is not, except literal duplicates.

    python bench/bench_grader.py            # math-verify is optional: pip install 'math-verify[antlr4_13_2]'
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = ROOT / "tests" / "data" / "math500.jsonl"


def build_pairs(path: Path) -> tuple[list[tuple[str, str]], list[bool]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    golds = [r["answer"] for r in rows]

    def plain(a: str) -> str:
        return re.sub(r"^[a-z]=", "", "".join(a.split()).replace("\\dfrac", "\\frac").replace("\\$", ""))

    pairs = [(g, g) for g in golds] + [(golds[(i + 1) % len(golds)], g) for i, g in enumerate(golds)]
    labels = [True] * len(golds) + [plain(golds[(i + 1) % len(golds)]) == plain(g) for i, g in enumerate(golds)]
    return pairs, labels


def run_e2h(pairs, timeout_s: float, workers: int) -> tuple[list[bool], float]:
    from e2h.grading import grade_many
    from e2h.grading.batch import CACHE
    from e2h.grading.timeout import shared_pool

    shared_pool(workers).run_many([("compare", ["1", "1"])] * workers, 60)  # start workers outside the clock
    CACHE.clear()
    start = time.perf_counter()
    verdicts = grade_many([(f"so the answer is $\\boxed{{{p}}}$", g) for p, g in pairs], timeout_s, workers)
    return [v.correct for v in verdicts], time.perf_counter() - start


def run_math_verify(pairs, timeout_s: float) -> tuple[list[bool], float] | None:
    try:
        from math_verify import parse, verify
    except ImportError:
        print("math-verify is not installed: pip install 'math-verify[antlr4_13_2]' (benchmark only)", file=sys.stderr)
        return None
    seconds = int(max(1, timeout_s))
    start = time.perf_counter()
    out = []
    for pred, gold in pairs:
        try:
            g = parse(f"${gold}$", parsing_timeout=seconds)
            p = parse(f"so the answer is $\\boxed{{{pred}}}$", parsing_timeout=seconds)
            out.append(bool(verify(g, p, timeout_seconds=seconds)))
        except Exception:  # noqa: BLE001 - a crash counts as "not equal", as in our grader
            out.append(False)
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    pairs, labels = build_pairs(args.data)
    ours, t_ours = run_e2h(pairs, args.timeout, args.workers)
    agree = sum(o == l for o, l in zip(ours, labels)) / len(pairs)
    print(f"e2h.grading : {len(pairs)} pairs in {t_ours:.3f}s = {len(pairs) / t_ours:,.0f} pairs/s, "
          f"agreement with labels {100 * agree:.1f}%")
    mv = run_math_verify(pairs, args.timeout)
    if mv is not None:
        theirs, t_mv = mv
        agree_mv = sum(o == l for o, l in zip(theirs, labels)) / len(pairs)
        both = sum(o == t for o, t in zip(ours, theirs)) / len(pairs)
        print(f"math-verify : {len(pairs)} pairs in {t_mv:.3f}s = {len(pairs) / t_mv:,.0f} pairs/s, "
              f"agreement with labels {100 * agree_mv:.1f}%")
        print(f"speed ratio e2h / math-verify = {t_mv / t_ours:.1f}x; the two graders agree on {100 * both:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
