"""Which wrong steps a PRM catches: step ROC-AUC of each kind of wrong step against the correct steps, on a
world run's scored samples, easy (levels 1-3) vs hard (4-5). Use it on the VALIDATION split to see where the
verifier breaks (the demo's report gives only the AUC over all wrong steps):

    python bench/verifier_by_step_kind.py RUN            # RUN: a `e2h demo demo.eval_split=validation` run

Kinds of the first wrong step of a sample: ``arithmetic`` (the operation's result is wrong), ``structural`` (the
arithmetic is right but it is not a step the problem calls for: wrong operands, out of order, or in the restated
format a remaining expression that lost the answer), ``malformed`` (not a step of the world's grammar), ``answer``
(the answer line of a chain with no earlier error). Every step after the first error is ``after_error``.

``by_position`` compares each kind with the correct steps *at the same step index* (indices 5 and later pooled):
a PRM whose scores fall with the step index (later steps are more often wrong, so that is what it learns
first) can reach a fair overall AUC without telling a right step from a wrong one in the same place.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from e2h.config import load_config
from e2h.layout import RunLayout
from e2h.records import Problem, Sample, iter_records, load_records
from e2h.text_format import is_answer_step, split_solution
from e2h.world import check_steps
from e2h.world.checker import Malformed, parse_step
from e2h.world.verifier_quality import roc_auc

GROUPS = {"easy": (1, 2, 3), "hard": (4, 5)}


def first_error_kind(step: str) -> str:
    if is_answer_step(step):
        return "answer"
    try:
        parsed = parse_step(step.strip().partition("\n")[0])
    except Malformed:
        return "malformed"
    return "arithmetic" if parsed.value != parsed.claimed else "structural"


LAST_POSITION = 5  # step indices from here on are pooled in by_position


def auc_against(correct: list[float], wrong: list[float]) -> float:
    return round(roc_auc(correct + wrong, [True] * len(correct) + [False] * len(wrong)), 3)


def step_kinds(problem: Problem, sample: Sample) -> list[tuple[float, str]]:
    """(PRM probability, kind) per step: ``correct`` or the kind of wrong step."""
    steps = split_solution(sample.completion)
    kinds, failed = [], False
    for score, step, verdict in zip(sample.step_scores or [], steps, check_steps(problem, steps)):
        if verdict:
            kinds.append((score, "correct" if not failed else "after_error"))
        else:
            kinds.append((score, "after_error" if failed else first_error_kind(step)))
            failed = True
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--scored", type=Path, help="folder of scored shards (default: the run's scored/)")
    args = parser.parse_args()
    cfg = load_config(args.run / "config.yaml")
    layout = RunLayout(cfg)
    problems = {p.id: p for p in load_records(layout.path("world", f"{cfg.demo.eval_split}.jsonl"), Problem)}
    scored = args.scored or layout.scored
    by_group: dict[str, dict[str, list[float]]] = {g: defaultdict(list) for g in GROUPS}
    by_position: dict[tuple[str, int], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for shard in sorted(scored.glob("shard-*.jsonl")):
        for sample in iter_records(shard, Sample):
            group = next((g for g, levels in GROUPS.items() if sample.level in levels), None)
            if group is not None:
                for position, (score, kind) in enumerate(step_kinds(problems[sample.problem_id], sample)):
                    by_group[group][kind].append(score)
                    by_position[group, min(position, LAST_POSITION)][kind].append(score)
    table, positions = {}, {}
    for group, kinds in by_group.items():
        correct = kinds.get("correct", [])
        table[group] = {kind: {"steps": len(scores), "auc_vs_correct": auc_against(correct, scores)}
                        for kind, scores in sorted(kinds.items()) if kind != "correct"}
        table[group]["correct"] = {"steps": len(correct)}
    for (group, position), kinds in sorted(by_position.items()):
        correct = kinds.get("correct", [])
        positions.setdefault(group, {})[str(position)] = {
            "correct": {"steps": len(correct), "mean_score": round(sum(correct) / len(correct), 3) if correct else None},
            **{kind: {"steps": len(scores), "auc_vs_correct": auc_against(correct, scores)}
               for kind, scores in sorted(kinds.items()) if kind != "correct" and correct}}
    print(json.dumps({"split": cfg.demo.eval_split, "scored": str(scored), "kinds": table,
                      "by_position": positions}, indent=1))


if __name__ == "__main__":
    main()
