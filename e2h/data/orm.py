"""ORM and OPRM training data (``prm.kind: orm | oprm``; reference §1.8, paper §3.2 and App. C).

ORM: policy samples (``e2h.records.Sample``, e.g. ``e2h sample`` shards) on the train-level training problems, each
labelled by the grader's verdict of its final answer. The label sits on the answer step only; the other steps are
context (label None, ignored by the PRM loss), so one model and loss serve PRM, ORM and OPRM::

    StepExample {"id": "orm/train/algebra/5.json/3", "problem_id": "train/algebra/5.json", "problem": "...",
                 "steps": ["We add.", "# Answer\\n\\n4"], "labels": [null, 0.0], "source": "orm"}

A sample without an answer step (cut at the length limit) carries the grader's verdict (wrong unless the grader
finds an answer elsewhere, e.g. a ``\\boxed{..}``) on its last step.

The paper kept each problem's positive:negative ratio between 1:3 and 3:1 (``data.orm_max_ratio``: the larger
class is cut, seeded, to at most ratio x the smaller; a one-sided problem is left out). OPRM is the union of the
step data (PRM800K or Math-Shepherd) and the ORM data, every row of both ("mixed data"; no script of the reference
sets other proportions).
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

from e2h.data.rows import normalize_problem_text
from e2h.data.splits import HeldOut
from e2h.grading import grade_many
from e2h.grading.extract import completion_answer
from e2h.records import Problem, Sample, StepExample, iter_records, jsonl_files
from e2h.text_format import format_prompt, normalize_answer_marker, split_solution

SOURCE = "orm"


def sample_files(source: str | Path) -> list[Path]:
    """A Sample JSONL file, or every ``*.jsonl`` of a folder (sample shards) in name order."""
    return jsonl_files(source, "data.orm_samples")


def iter_samples(source: str | Path) -> Iterator[Sample]:
    """Validated samples; a malformed line raises RecordError naming file, line and field."""
    for path in sample_files(source):
        yield from iter_records(path, Sample)


def match_samples(samples: Iterable[Sample], train: list[Problem], held: HeldOut, train_levels: list[int],
                  skipped: Counter) -> list[tuple[Sample, Problem]]:
    """Pair each sample with its training problem (by id, else by its prompt's text); ``skipped`` counts the rest:
    held_out (a validation/test problem), other_level, unknown_problem."""
    by_id = {p.id: p for p in train}
    by_prompt = {normalize_problem_text(format_prompt(p.problem)): p for p in train}
    wanted = set(train_levels)
    kept = []
    for sample in samples:
        problem = by_id.get(sample.problem_id) or by_prompt.get(normalize_problem_text(sample.prompt))
        if sample.problem_id in held.ids or (problem is not None and problem in held):
            skipped["held_out"] += 1
        elif problem is None:
            skipped["unknown_problem"] += 1
        elif problem.level not in wanted:
            skipped["other_level"] += 1
        else:
            kept.append((sample, problem))
    return kept


def grade_pairs(pairs: list[tuple[Sample, Problem]], grading: dict | None = None) -> list[bool]:
    """The grader's verdict (e2h.grading.grade_many, ``grading`` = config.grading.options()) of each sample's
    answer (e2h.grading.extract.completion_answer; none = wrong) against its problem's gold answer."""
    if not pairs:
        return []
    # the one answer rule every consumer uses (eval, PPO rewards, the service): the answer step the PRM scores
    answers = [completion_answer(normalize_answer_marker(s.completion)) for s, _ in pairs]
    verdicts = grade_many([(a, p.answer) for a, (_, p) in zip(answers, pairs)], **(grading or {}))
    return [bool(v.correct) for v in verdicts]


def outcome_example(sample: Sample, problem: Problem, correct: bool) -> StepExample | None:
    """The ORM row of one sample: its steps, the verdict on the answer step (the last step if it has none)."""
    steps = split_solution(normalize_answer_marker(sample.completion))
    if not steps:
        return None
    labels: list[float | None] = [None] * (len(steps) - 1) + [1.0 if correct else 0.0]
    return StepExample(id=f"{SOURCE}/{sample.problem_id}/{sample.sample_index}", problem_id=problem.id,
                       problem=problem.problem, steps=steps, labels=labels, level=problem.level, source=SOURCE)


def balance(examples: list[StepExample], max_ratio: float | None, seed: int, skipped: Counter) -> list[StepExample]:
    """Per problem, cut the larger class to at most ``max_ratio`` x the smaller (seeded per problem); a problem
    with one class only is left out (``skipped["one_sided"]`` counts its samples). None keeps everything."""
    if max_ratio is None:
        return examples
    by_problem: dict[str, list[StepExample]] = {}
    for ex in examples:
        by_problem.setdefault(ex.problem_id, []).append(ex)
    keep: set[str] = set()
    for problem_id, rows in by_problem.items():
        right = [ex for ex in rows if ex.labels[-1] == 1.0]
        wrong = [ex for ex in rows if ex.labels[-1] != 1.0]
        if not right or not wrong:
            skipped["one_sided"] += len(rows)
            continue
        cap = int(max_ratio * min(len(right), len(wrong)))
        rng = random.Random(f"{seed}/{problem_id}")
        for group in (right, wrong):
            chosen = group if len(group) <= cap else rng.sample(group, cap)
            if len(group) > len(chosen):
                skipped["ratio_cut"] += len(group) - len(chosen)
            keep.update(ex.id for ex in chosen)
    return [ex for ex in examples if ex.id in keep]


def orm_examples(samples: Iterable[Sample], train: list[Problem], held: HeldOut, train_levels: list[int],
                 grading: dict | None = None, max_ratio: float | None = 3.0, seed: int = 0,
                 skipped: Counter | None = None) -> list[StepExample]:
    """ORM rows from policy samples; ``skipped`` (if given) counts samples left out by reason and ``kept``."""
    skipped = Counter() if skipped is None else skipped
    pairs = match_samples(samples, train, held, train_levels, skipped)
    examples, seen = [], set()
    for (sample, problem), correct in zip(pairs, grade_pairs(pairs, grading)):
        example = outcome_example(sample, problem, correct)
        if example is None:
            skipped["empty"] += 1
        elif example.id in seen:
            raise ValueError(f"data.orm_samples: sample ({sample.problem_id}, {sample.sample_index}) appears twice")
        else:
            seen.add(example.id)
            examples.append(example)
    examples = balance(examples, max_ratio, seed, skipped)
    skipped["kept"] += len(examples)
    return examples


def oprm_examples(step_examples: list[StepExample], outcome: list[StepExample]) -> list[StepExample]:
    """The union: every step-labelled row and every outcome row; ids must stay unique."""
    ids = {ex.id for ex in step_examples}
    clash = next((ex.id for ex in outcome if ex.id in ids), None)
    if clash is not None:
        raise ValueError(f"OPRM data: id {clash!r} is both a step row and an outcome row")
    return [*step_examples, *outcome]
