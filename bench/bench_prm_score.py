"""Benchmark: PRM scoring of 16 problems x N=16 samples with a tiny model on this CPU.

(a) baseline: one forward pass per step prefix, one text at a time (the TRL docs' way);
(b) ours: PRMScorer.score, one forward per solution, batched by length, the prompt's KV cache shared by the N
    samples of a problem.
Prints candidates/s for both and the ratio (goal >= 5x) and asserts equal scores (max abs diff < 1e-4).

    python bench/bench_prm_score.py [--problems 16] [--n 16]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path


def build_prm(folder: Path):
    import torch

    from e2h.config import BackboneSection
    from e2h.text_format import answer_step, format_prompt, format_solution
    from e2h.world.tiny_models import save_tiny_model, train_tokenizer
    from prm.model import RewardModel

    rng = random.Random(0)
    texts = []
    for _ in range(400):
        a, b = rng.randrange(50), rng.randrange(50)
        texts.append(format_prompt(f"What is {a} + {b}?")
                     + format_solution([f"We add {a} and {b}.", f"{a} + {b} = {a + b}.", answer_step(str(a + b))]))
    tokenizer = train_tokenizer(texts, vocab_size=400)
    sizes = BackboneSection(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                            num_key_value_heads=1, max_position_embeddings=512)
    save_tiny_model(folder / "backbone", tokenizer, sizes)
    model = RewardModel.from_backbone(folder / "backbone")
    torch.manual_seed(0)
    with torch.no_grad():
        model.net.score.weight.normal_(0, 0.5)
    model.save_pretrained(folder / "prm", tokenizer=tokenizer)
    return folder / "prm"


def make_pool(problems: int, n: int, seed: int = 1):
    """PRM800K-like shape at tiny scale: a 1-3 sentence question, 3-8 reasoning steps + the answer step."""
    from e2h.text_format import answer_step, format_prompt, format_solution

    rng = random.Random(seed)
    pool = []
    for p in range(problems):
        a, b = rng.randrange(50), rng.randrange(50)
        prompt = format_prompt(f"What is {a} + {b}? Show each step of the sum {a} + {b} clearly.")
        completions = []
        for _ in range(n):
            steps, total = [], a
            for k in range(rng.randrange(3, 9)):
                add = rng.randrange(10)
                steps.append(f"We add {add} to {total} and get {total + add}.")
                total += add
            completions.append(format_solution(steps + [answer_step(str(total))]))
        pool.append((prompt, completions))
    return pool


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=16)
    parser.add_argument("--n", type=int, default=16)
    args = parser.parse_args(argv)

    import torch

    from prm.score import PRMScorer

    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as tmp:
        scorer = PRMScorer(build_prm(Path(tmp)))
        pool = make_pool(args.problems, args.n)
        candidates = args.problems * args.n
        scorer.score(*pool[0])  # warm-up
        scorer.score_per_prefix(pool[0][0], pool[0][1][0])

        start = time.perf_counter()
        baseline = [[scorer.score_per_prefix(prompt, c) for c in completions] for prompt, completions in pool]
        t_base = time.perf_counter() - start
        start = time.perf_counter()
        ours = [scorer.score(prompt, completions) for prompt, completions in pool]
        t_ours = time.perf_counter() - start
        scorer.share_prompt = False
        start = time.perf_counter()
        ours_noshare = [scorer.score(prompt, completions) for prompt, completions in pool]
        t_noshare = time.perf_counter() - start

    diff = max(abs(x - y) for A, B in zip(baseline, ours) for a, b in zip(A, B) for x, y in zip(a, b))
    diff2 = max(abs(x - y) for A, B in zip(baseline, ours_noshare) for a, b in zip(A, B) for x, y in zip(a, b))
    steps = sum(len(s) for group in baseline for s in group)
    print(f"{args.problems} problems x N={args.n} = {candidates} candidates, {steps} steps scored")
    print(f"(a) per-prefix forward : {candidates / t_base:9.1f} candidates/s  ({t_base:.2f} s)")
    print(f"(b) one pass, shared KV: {candidates / t_ours:9.1f} candidates/s  ({t_ours:.2f} s)  "
          f"ratio {t_base / t_ours:.1f}x (goal >= 5x)")
    print(f"    one pass, no sharing: {candidates / t_noshare:9.1f} candidates/s  ({t_noshare:.2f} s)  "
          f"ratio {t_base / t_noshare:.1f}x")
    print(f"max abs diff vs per-prefix: {diff:.2e} (shared KV), {diff2:.2e} (no sharing)")
    assert diff < 1e-4 and diff2 < 1e-4, "one-pass scores differ from per-prefix scores"
    return 0


if __name__ == "__main__":
    sys.exit(main())
