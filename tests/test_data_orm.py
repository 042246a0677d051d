"""ORM / OPRM data (prm.kind orm | oprm) on the world, from hand-written policy samples: no model involved."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from conftest import world_sample as sample, wrong_answer as wrong

from e2h.config import ConfigError, WorldSection, load_config
from e2h.data.orm import balance, iter_samples, oprm_examples, orm_examples
from e2h.data.prepare import output_paths, prepare
from e2h.data.splits import HeldOut
from e2h.grading import grade
from e2h.jsonl import RecordError
from e2h.records import Sample, StepExample, load_records
from e2h.world import generate_world

SIZES = {"train_per_level": 4, "validation_per_level": 2, "test_per_level": 2}


@pytest.fixture(scope="module")
def world():
    splits = generate_world(WorldSection(**SIZES))
    held = HeldOut.of(splits["validation"], splits["test"])
    return splits, held


def hand_samples(splits) -> list[Sample]:
    easy = [p for p in splits["train"] if p.level in (1, 2)][:2]
    hard = next(p for p in splits["train"] if p.level == 5)
    rows = []
    for problem in easy:
        rows += [sample(problem, 0, problem.solution), sample(problem, 1, wrong(problem)),
                 sample(problem, 2, problem.solution.replace("\n\n# Answer\n\n", "\n\n# Answer\n\n ")),
                 sample(problem, 3, problem.solution.split("\n\n")[0])]  # cut before its answer: wrong
    rows += [sample(hard, 0, hard.solution), sample(splits["test"][0], 0, splits["test"][0].solution)]
    return rows


def test_orm_labels_agree_with_the_grader(world):
    splits, held = world
    samples = hand_samples(splits)
    skipped = Counter()
    rows = orm_examples(samples, held.filter(splits["train"]), held, [1, 2, 3], max_ratio=None, skipped=skipped)
    assert skipped == Counter(kept=8, other_level=1, held_out=1)
    by_key = {(s.problem_id, s.sample_index): s for s in samples}
    for row in rows:
        source = by_key[(row.problem_id, int(row.id.rsplit("/", 1)[1]))]
        assert row.source == "orm" and row.labels[:-1] == [None] * (len(row.steps) - 1)  # the answer step only
        assert row.labels[-1] == float(grade(source.completion, source.gold_answer).correct)
    assert Counter(row.labels[-1] for row in rows) == Counter({1.0: 4, 0.0: 4})
    assert len({row.id for row in rows}) == len(rows)
    easy = rows[0]
    problem = next(p for p in splits["train"] if p.id == easy.problem_id)
    boxed = sample(problem, 7, f"We work it out, so it is $\\boxed{{{problem.answer}}}$.")  # no answer step
    (row,) = orm_examples([boxed], splits["train"], held, [1, 2, 3], max_ratio=None)
    assert row.labels == [1.0] == [float(grade(boxed.completion, problem.answer).correct)]


def test_balance_cuts_the_larger_class_and_drops_one_sided_problems():
    def row(problem: str, i: int, label: float) -> StepExample:
        return StepExample(id=f"orm/{problem}/{i}", problem_id=problem, problem="p", steps=["# Answer\n\n1"],
                           labels=[label])
    rows = ([row("a", i, 1.0) for i in range(5)] + [row("a", 9, 0.0)]
            + [row("b", i, 0.0) for i in range(3)])
    skipped = Counter()
    kept = balance(rows, 3.0, seed=0, skipped=skipped)
    assert Counter(r.labels[0] for r in kept) == Counter({1.0: 3, 0.0: 1})
    assert skipped == Counter(ratio_cut=2, one_sided=3)
    assert balance(rows, 3.0, seed=0, skipped=Counter()) == kept  # seeded
    assert balance(rows, None, seed=0, skipped=Counter()) == rows


def test_oprm_refuses_clashing_ids():
    ex = StepExample(id="x", problem_id="p", problem="p", steps=["# Answer\n\n1"], labels=[1.0])
    with pytest.raises(ValueError, match="'x'"):
        oprm_examples([ex], [ex])


def test_malformed_sample_names_file_and_line(tmp_path):
    path = tmp_path / "samples.jsonl"
    good = {"problem_id": "p", "sample_index": 0, "prompt": "q", "completion": "# Answer\n\n1"}
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "sample_index": -1}) + "\n")
    with pytest.raises(RecordError, match=r"samples\.jsonl:2: field 'sample_index'"):
        list(iter_samples(path))


def _config(tmp_path, kind: str, samples=None, ratio="3.0"):
    overrides = [f"run.out_dir={tmp_path / kind}", f"prm.kind={kind}", f"data.orm_max_ratio={ratio}",
                 *(f"world.{k}={v}" for k, v in SIZES.items())]
    if samples is not None:
        overrides.append(f"data.orm_samples={samples}")
    return load_config(None, overrides)


def test_prepare_writes_prm_orm_and_oprm_data(world, tmp_path):
    splits, _ = world
    shards = tmp_path / "samples"
    shards.mkdir()
    samples = hand_samples(splits)
    for i in range(2):  # a folder of shards, as `e2h sample` writes
        (shards / f"shard-{i:05d}.jsonl").write_text(
            "".join(s.model_dump_json() + "\n" for s in samples[i::2]))

    prepare(_config(tmp_path, "prm"))
    step_rows = load_records(output_paths(_config(tmp_path, "prm"))["prm_train"], StepExample)

    orm_summary = prepare(_config(tmp_path, "orm", shards))
    orm_rows = load_records(output_paths(_config(tmp_path, "orm", shards))["prm_train"], StepExample)
    assert {r.source for r in orm_rows} == {"orm"} and len(orm_rows) == 8  # 2 right : 2 wrong per problem
    assert orm_summary["orm_samples"] == {"held_out": 1, "kept": 8, "other_level": 1}

    cfg = _config(tmp_path, "oprm", shards)
    summary = prepare(cfg)
    oprm_rows = load_records(output_paths(cfg)["prm_train"], StepExample)
    assert len(oprm_rows) == len(step_rows) + len(orm_rows) == summary["prm_train"]["rows"]
    assert len({r.id for r in oprm_rows}) == len(oprm_rows)
    assert {r.id for r in oprm_rows} == {r.id for r in step_rows} | {r.id for r in orm_rows}
    assert summary["prm_train"]["by_source"] == {"orm": 8, "world": len(step_rows)}
    assert prepare(cfg)["skipped"]  # same samples, same config: nothing to redo

    with pytest.raises(ConfigError, match="data.orm_samples"):
        prepare(_config(tmp_path, "orm"))
    with pytest.raises(ConfigError, match="0 ORM rows"):  # one sample per problem: every problem one-sided
        one = tmp_path / "one.jsonl"
        one.write_text(samples[0].model_dump_json() + "\n")
        prepare(_config(tmp_path, "orm", one))
