"""Grader throughput: e2h.grading vs math-verify on MATH500 (same run, same pairs, timeouts on).

Pairs: every MATH500 gold against itself (500) and against the next problem's gold (500) = 1000.
Labels: gold-vs-gold is equivalent; gold-vs-neighbour is not, except literal duplicates.
Hostile sizes: 256 KB, 1 MB and 4 MB predictions (repeated boxes, unclosed boxes, plain text): seconds per
call, and the verdict; each must come back inside the timeout (1 MB is under the input limit and is
extracted in a killable worker; 4 MB is over it: too_long at once).

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


def hostile_inputs() -> list[tuple[str, str]]:
    rows = []
    for size, label in ((256_000, "256 KB"), (1_000_000, "1 MB"), (4_000_000, "4 MB")):
        rows.append((f"{label} of \\boxed{{1}}", ("\\boxed{1}" * (size // 9 + 1))[:size]))
        rows.append((f"{label} of \\boxed{{ left open", ("\\boxed{" * (size // 7 + 1))[:size]))
        rows.append((f"{label} of prose, one box at the end", ("We add the terms. " * (size // 18))[: size - 11]
                     + "\\boxed{42}"))
    return rows


def run_hostile(timeout_s: float, workers: int) -> bool:
    from e2h.grading import grade

    ok = True
    print(f"hostile sizes (timeout {timeout_s:g} s per call):")
    for label, text in hostile_inputs():
        start = time.perf_counter()
        verdict = grade(text, "42", timeout_s=timeout_s)
        seconds = time.perf_counter() - start
        inside = seconds < timeout_s
        ok &= inside
        print(f"  {label:<40} {len(text):>9,} chars  {seconds:7.3f} s/call  {verdict.reason:<16} "
              f"{'inside' if inside else 'OVER'} the timeout")
    return ok


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
    hostile_ok = run_hostile(args.timeout, args.workers)
    mv = run_math_verify(pairs, args.timeout)
    if mv is not None:
        theirs, t_mv = mv
        agree_mv = sum(o == l for o, l in zip(theirs, labels)) / len(pairs)
        both = sum(o == t for o, t in zip(ours, theirs)) / len(pairs)
        print(f"math-verify : {len(pairs)} pairs in {t_mv:.3f}s = {len(pairs) / t_mv:,.0f} pairs/s, "
              f"agreement with labels {100 * agree_mv:.1f}%")
        print(f"speed ratio e2h / math-verify = {t_mv / t_ours:.1f}x; the two graders agree on {100 * both:.1f}%")
    return 0 if hostile_ok else 1


if __name__ == "__main__":
    sys.exit(main())
