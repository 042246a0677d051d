"""Benchmark: what gold-blind vote grouping costs in `e2h eval` (issue #16), on MATH500-like pools.

    python bench/bench_vote_grouping.py [--problems 500] [--pool 16] [--workers 2] [--seed 0] [--symbolic]

Pools: each MATH500 problem (tests/data/math500.jsonl) gets --pool sampled answers. A right answer is the gold in
one of several writings (as written, "x = gold", \\dfrac, a terminating fraction as a decimal, the two terms of a
sum swapped: for a symbolic gold only SymPy can tell that one). Wrong answers repeat, as a model's do: each
problem has three (the gold's first number shifted or doubled, another problem's gold), also in several
writings, and a share of one-off wrong answers that grows with the level (10% x level of the wrong ones: the
gold with a random number in it). About 8% of samples have no answer; the right-answer rate falls with the level.
``--symbolic`` is the expensive case: every answer a quadratic in x written expanded, reordered or factored
(distinct grader keys that only SymPy can equate), right and wrong alike.

Measured as `e2h eval` runs it: every (answer, gold) pair is graded first (``grade_samples``), then the pools
are built with the old grouping (``gold``: by key, every key graded correct merged into one class) and with
the gold-blind one (``samples``: the grader between the samples' own answers, a fresh pair cache). Prints the
time of each, the grader comparisons asked, and majority / pass accuracy at N = pool under both.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from e2h import rerank
from e2h.commands.eval_command import build_pools, grade_samples, grouping_comparer
from e2h.records import Sample

MATH500 = Path(__file__).resolve().parents[1] / "tests" / "data" / "math500.jsonl"
_FRAC = re.compile(r"^\\[d]?frac\{(-?\d+)\}\{(\d+)\}$")
_NUMBER = re.compile(r"\d+")


def _top_level_plus(answer: str) -> int | None:
    """Index of the only '+' outside braces and brackets, if there is exactly one."""
    depth, found = 0, []
    for i, ch in enumerate(answer):
        depth += ch in "{(["
        depth -= ch in "})]"
        if ch == "+" and depth == 0:
            found.append(i)
    return found[0] if len(found) == 1 else None


def writings(answer: str) -> list[str]:
    """Ways a model writes the same answer (equal by the grader; some share the grader's key, some do not)."""
    out = [answer]
    if "=" not in answer and "\\begin" not in answer and "," not in answer:
        out.append(f"x = {answer}")
    if "\\frac" in answer:
        out.append(answer.replace("\\frac", "\\dfrac"))
    frac = _FRAC.match(answer)
    if frac:
        value = Fraction(int(frac.group(1)), int(frac.group(2)))
        if value.denominator in (2, 4, 5, 8, 10, 20, 25):
            out.append(str(float(value)))
    plus = _top_level_plus(answer)
    if plus is not None and 0 < plus < len(answer) - 1:
        out.append(answer[plus + 1:].strip() + " + " + answer[:plus].strip())
    return out


def wrong_answers(answer: str, others: list[str], rng: random.Random) -> list[str]:
    """Three wrong answers for a problem: its numbers shifted or doubled, and another problem's gold."""
    if answer.startswith("x^2"):  # --symbolic: other quadratics
        return [quadratic(rng.randint(-9, 9), rng.randint(-9, 9)) for _ in range(3)]
    wrong = []
    for change in (lambda n: n + 1, lambda n: 2 * n + 3):
        shifted = _NUMBER.sub(lambda m: str(change(int(m.group()))), answer, count=1)
        wrong.append(shifted if shifted != answer else str(change(7)))
    wrong.append(rng.choice([o for o in others if o != answer]))
    return wrong


def fresh_wrong(answer: str, rng: random.Random) -> str:
    """A one-off wrong answer: the gold with its first number replaced by a random one."""
    if answer.startswith("x^2"):
        return quadratic(rng.randint(-30, 30), rng.randint(-30, 30))
    changed = _NUMBER.sub(lambda m: str(rng.randint(0, 999)), answer, count=1)
    return changed if changed != answer else str(rng.randint(0, 999))


def quadratic(r1: int, r2: int) -> str:
    """(x - r1)(x - r2) expanded; ``quadratic_writings`` gives the other ways to write it."""
    return f"x^2 + {-(r1 + r2)}x + {r1 * r2}".replace("+ -", "- ")


def quadratic_writings(answer: str) -> list[str]:
    b, c = re.fullmatch(r"x\^2 ([+-] \d+)x ([+-] \d+)", answer).groups()
    b, c = int(b.replace(" ", "")), int(c.replace(" ", ""))
    disc = int(round((b * b - 4 * c) ** 0.5))
    r1, r2 = (-b + disc) // 2, (-b - disc) // 2
    return [answer, f"{c} + {b}x + x^2".replace("+ -", "- "), f"(x - {r1})(x - {r2})".replace("- -", "+ ")]


def make_samples(problems: int, pool: int, seed: int, symbolic: bool = False) -> list[Sample]:
    rng = random.Random(seed)
    rows = [json.loads(line) for line in MATH500.read_text(encoding="utf-8").splitlines() if line.strip()][:problems]
    if symbolic:
        for row in rows:
            row["answer"] = quadratic(rng.randint(-9, 9), rng.randint(-9, 9))
    golds = [r["answer"] for r in rows]
    write = quadratic_writings if symbolic else writings
    samples = []
    for p, row in enumerate(rows):
        p_right = 0.85 - 0.15 * (row["level"] - 1)
        wrong = wrong_answers(row["answer"], golds, rng)
        for k in range(pool):
            if rng.random() < 0.08:
                answer = None
            elif rng.random() < p_right:
                answer = rng.choice(writings(row["answer"]))
            elif rng.random() < 0.1 * row["level"]:  # a wrong answer of its own (hard problems: many)
                answer = rng.choice(write(fresh_wrong(row["answer"], rng)))
            else:
                answer = rng.choice(write(rng.choices(wrong, weights=[4, 2, 1])[0]))
            completion = "Step 1.\n\n" + (f"# Answer\n\n{answer}" if answer is not None else "I give up.")
            samples.append(Sample(problem_id=row["unique_id"], sample_index=k, prompt="", completion=completion,
                                  gold_answer=row["answer"], level=row["level"], subject=row["subject"],
                                  step_scores=[rng.random()]))
    return samples


class EvalSettings:  # the two eval settings the grader comparer reads
    def __init__(self, workers: int):
        self.grader_timeout_s, self.grader_workers = 5.0, workers


def accuracy(pools) -> dict[str, float]:
    pairs = list(zip(pools.classes, pools.n_gold))
    return {"majority": float(np.mean([rerank.majority_vote(c, g) for c, g in pairs])),
            "pass": float(np.mean([rerank.pass_at_n(c, g) for c, g in pairs]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=500)
    parser.add_argument("--pool", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--symbolic", action="store_true", help="every answer a quadratic (SymPy decides)")
    args = parser.parse_args()
    samples = make_samples(args.problems, args.pool, args.seed, args.symbolic)
    start = time.perf_counter()
    grades = grade_samples(samples, 5.0, args.workers)
    graded = time.perf_counter() - start
    print(f"{len(samples)} samples of {args.problems} problems; grading (answer, gold) pairs, as e2h eval does "
          f"first: {graded:.2f} s, {grades.graded_pairs} pairs")
    for grouping in ("gold", "samples"):
        same = grouping_comparer(EvalSettings(args.workers), grades) if grouping == "samples" else None
        start, cpu = time.perf_counter(), time.process_time()
        pools = build_pools(samples, grades, ["min"], grouping, same)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        info = pools.grouping
        asked = f", {info['compared_pairs']} grader comparisons ({info['cache_hits']} cache hits, " \
                f"{info['timeouts']} timeouts; decided by {info['grader_methods']})" if "compared_pairs" in info else ""
        print(f"grouping={grouping:7s} build_pools {wall:6.2f} s wall ({cpu:.2f} s CPU in this process): "
              f"{info['distinct_keys']} distinct keys -> {info['classes']} classes{asked}; "
              f"{info['mixed_classes']} mixed classes, {info['problems_with_several_correct_classes']} problems "
              f"with several correct classes; accuracy at N={args.pool}: "
              + ", ".join(f"{k} {v * 100:.1f}%" for k, v in accuracy(pools).items()))


if __name__ == "__main__":
    main()
