"""Where the easy-to-hard chain breaks, for one policy on the world: per level, the greedy and sampled accuracy
with every step checked, pass@1, majority@N, and how often samples (and the majority) land on a misconception's
answer. Runs on the VALIDATION split by default: use it to tune the world and the sizes, never on test.

    python bench/probe_policy.py --config configs/demo.yaml --model runs/demo/sft [--n 16] [--per-level 40]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

from e2h.config import load_config
from e2h.records import Problem, load_records
from e2h.text_format import extract_final_answer, format_prompt, is_answer_step, split_solution
from e2h.world import check_steps, generate_world
from e2h.world.checker import parse_answer
from e2h.world.misconceptions import MISCONCEPTIONS, misconceived_steps


def checked(problem: Problem, text: str) -> bool:
    steps = split_solution(text)
    return bool(steps) and is_answer_step(steps[-1]) and all(check_steps(problem, steps))


def same(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return False
    try:
        return parse_answer(a) == parse_answer(b)
    except Exception:  # noqa: BLE001 untrusted text
        return a.strip() == b.strip()


def probe(cfg, model: str, split: str, per_level: int, n: int, max_tokens: int) -> dict:
    from policy.generator import GenerationParams, request_seed
    from policy.vllm_engine import VLLMGenerator

    problems = generate_world(cfg.world)[split] if split != "file" else []
    by_level: dict[int, list[Problem]] = {}
    for p in problems:
        by_level.setdefault(p.level, []).append(p)
    chosen = [p for level in sorted(by_level) for p in by_level[level][:per_level]]
    engine = VLLMGenerator(model, max_model_len=cfg.sample.max_model_len, kv_cache_gib=0.25)
    prompts = [format_prompt(p.problem) for p in chosen]
    seeds = [request_seed(0, p.id) for p in chosen]
    greedy = engine.generate(prompts, GenerationParams(n=1, temperature=0.0, max_tokens=max_tokens), seeds)
    sampled = engine.generate(prompts, GenerationParams(n=n, temperature=cfg.sample.temperature,
                                                        top_k=cfg.sample.top_k, max_tokens=max_tokens), seeds)
    rows: dict[int, Counter] = {}
    for problem, g, s in zip(chosen, greedy, sampled):
        row = rows.setdefault(problem.level, Counter())
        row["problems"] += 1
        row["greedy_checked"] += checked(problem, g[0].text)
        wrong_answers = {rule: steps[-1].split("\n\n", 1)[1] for rule in MISCONCEPTIONS
                         if (steps := misconceived_steps(problem, rule)) is not None}
        answers = [extract_final_answer(c.text) for c in s]
        row["samples"] += len(s)
        row["sample_checked"] += sum(checked(problem, c.text) for c in s)
        row["sample_correct"] += sum(same(a, problem.answer) for a in answers)
        row["sample_misconception"] += sum(any(same(a, w) for w in wrong_answers.values()) for a in answers)
        votes = Counter(a.strip() for a in answers if a)
        if votes:
            top = votes.most_common(1)[0][0]
            row["majority_correct"] += same(top, problem.answer)
            row["majority_misconception"] += any(same(top, w) for w in wrong_answers.values())
            row["oracle"] += any(same(a, problem.answer) for a in answers)
    table = {}
    for level, row in sorted(rows.items()):
        p, s = row["problems"], max(row["samples"], 1)
        table[f"L{level}"] = {"greedy_checked": round(100 * row["greedy_checked"] / p, 1),
                              "checked@1": round(100 * row["sample_checked"] / s, 1),
                              "pass@1": round(100 * row["sample_correct"] / s, 1),
                              "misconception@1": round(100 * row["sample_misconception"] / s, 1),
                              f"majority@{n}": round(100 * row["majority_correct"] / p, 1),
                              "majority_is_misconception": round(100 * row["majority_misconception"] / p, 1),
                              f"oracle@{n}": round(100 * row["oracle"] / p, 1)}
    return table, engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--model", required=True)
    parser.add_argument("--split", default="validation", choices=["validation", "train"])
    parser.add_argument("--per-level", type=int, default=40)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--out", help="also write the table to this JSON file")
    args = parser.parse_args()
    cfg = load_config(args.config, args.overrides)
    table, engine = probe(cfg, args.model, args.split, args.per_level, args.n, args.max_tokens)
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(table, handle, indent=1)
    for level, row in table.items():
        print(level, " ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    engine.close()  # last: vLLM's shutdown may end the process


if __name__ == "__main__":
    main()
