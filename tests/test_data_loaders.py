"""Each loader on the real data copies in tests/data (sources in tests/data/LICENSES.md). MATH500 is the whole set, so
its counts are the published ones; for the samples, expected counts are read from the file with plain json here, so a
loader that drops, invents or mislabels a row fails."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from e2h.data import rows as rows_module
from e2h.data.math import TEST_ORIGIN, TRAIN_ORIGIN, load_math500, load_math_train
from e2h.data.processbench import load_processbench

DATA = Path(__file__).resolve().parent / "data"


def raw_rows(name: str) -> list[dict]:
    """The fixture's rows as plain json, independent of every loader."""
    return [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def math500():
    return load_math500(str(DATA / "math500.jsonl"))


@pytest.fixture(scope="module")
def math_train():
    return load_math_train(str(DATA / "math_train_sample.jsonl"))


def test_math500_levels_subjects_and_ids(math500):
    assert len(math500) == 500
    assert Counter(p.level for p in math500) == {1: 43, 2: 90, 3: 105, 4: 128, 5: 134}
    assert Counter(p.subject for p in math500) == {
        "Algebra": 124, "Intermediate Algebra": 97, "Prealgebra": 82, "Number Theory": 62, "Precalculus": 56,
        "Geometry": 41, "Counting & Probability": 38}
    assert len({p.id for p in math500}) == 500
    first = math500[0]
    assert first.id == "test/precalculus/807.json" and first.answer == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert first.source == "math500" and first.solution.startswith("We have that $r = ")


def test_math_train_levels_and_origins(math_train):
    raw = raw_rows("math_train_sample.jsonl")
    assert len(math_train) == len(raw) == 680  # LICENSES.md: 150 + 150 + 150 + 40 + 40 train-origin, 5 x 30 test-origin
    assert [p.id for p in math_train] == [r["unique_id"] for r in raw]
    assert Counter(p.level for p in math_train) == Counter(r["level"] for r in raw) == {1: 180, 2: 180, 3: 180,
                                                                                        4: 70, 5: 70}
    origin = {"train": TRAIN_ORIGIN, "test": TEST_ORIGIN}
    assert [p.source for p in math_train] == [origin[r["source_split"]] for r in raw]
    assert Counter(p.source for p in math_train) == {TRAIN_ORIGIN: 530, TEST_ORIGIN: 150}
    assert [(p.problem, p.answer, p.subject, p.solution) for p in math_train] == [
        (r["problem"], r["answer"], r["subject"], r["solution"]) for r in raw]


def test_math_train_rows_without_a_level_or_an_answer():
    """The real MATH rows that are special (LICENSES.md): two have level "Level ?" (null), two an empty box."""
    problems = load_math_train(str(DATA / "math_train_edge_rows.jsonl"))
    assert {p.id for p in problems if p.level is None} == {"train/geometry/377.json", "train/geometry/471.json"}
    empty = {p.id for p in problems if p.answer == ""}
    assert empty == {"train/number_theory/7115.json", "train/number_theory/7117.json"}
    assert {p.level for p in problems if p.id in empty} == {5}
    assert {p.source for p in problems} == {TRAIN_ORIGIN}


def test_math_train_and_math500_do_not_share_ids(math_train, math500):
    assert not {p.id for p in math_train} & {p.id for p in math500}


@pytest.mark.parametrize("name, rows, all_correct, answer_correct", [
    ("gsm8k", 20, 10, 10),  # LICENSES.md: every 20th row of the GSM8K split
    ("math", 20, 8, 10),    # every 50th row of the MATH split
])
def test_processbench(name, rows, all_correct, answer_correct):
    raw = raw_rows(f"processbench_{name}.jsonl")
    items = load_processbench(str(DATA / f"processbench_{name}.jsonl"))
    assert len(items) == len(raw) == rows
    assert sum(i.label == -1 for i in items) == sum(r["label"] == -1 for r in raw) == all_correct
    assert sum(i.final_answer_correct for i in items) == sum(r["final_answer_correct"] for r in raw) == answer_correct
    assert [(i.id, i.steps, i.label) for i in items] == [(r["id"], r["steps"], r["label"]) for r in raw]
    assert {i.split for i in items} == {name}


def test_processbench_step_labels():
    items = {i.id: i for i in load_processbench(str(DATA / "processbench_math.jsonl"))}
    # math-0 has 2 steps and label 0: the first step is wrong, the second is not judged
    assert items["math-0"].to_step_example().labels == [0.0, None]
    correct = next(i for i in items.values() if i.label == -1)
    assert correct.to_step_example().labels == [1.0] * len(correct.steps)
    late = next(i for i in items.values() if i.label == 2 and len(i.steps) > 3)
    assert late.to_step_example().labels[:4] == [1.0, 1.0, 0.0, None]


def test_datasets_path_reads_parquet_like_the_jsonl(tmp_path):
    """Files other than .jsonl (and hub ids) go through `datasets`; the rows must come out the same."""
    from datasets import Dataset

    rows = [json.loads(line) for line in (DATA / "math500.jsonl").read_text().splitlines()[:20]]
    parquet = tmp_path / "math500_head.parquet"
    Dataset.from_list(rows).to_parquet(str(parquet))
    assert load_math500(str(parquet)) == load_math500(str(DATA / "math500.jsonl"))[:20]


# --- the public sources config.DataSection names by default, in their published row schemas ---------------------


def fake_hub(monkeypatch, rows: list[dict]) -> list[tuple]:
    """Hub ids load through `datasets.load_dataset(name, split=...)`; answer with ``rows`` and record the call."""
    from datasets import Dataset

    calls = []

    def load_dataset(*args, **kwargs):
        calls.append((args, kwargs))
        return Dataset.from_list(rows)

    monkeypatch.setattr(rows_module, "_load_dataset", load_dataset)
    return calls


def test_math500_hub_id_reads_the_hub_schema(monkeypatch):
    # HuggingFaceH4/MATH-500 (PRM800K's math_splits/test.jsonl): problem, solution, answer, subject, level (int),
    # unique_id: the fields of tests/data/math500.jsonl
    rows = raw_rows("math500.jsonl")[:20]
    assert all(set(r) == {"problem", "solution", "answer", "subject", "level", "unique_id"} for r in rows)
    calls = fake_hub(monkeypatch, rows)
    problems = load_math500("HuggingFaceH4/MATH-500:test")
    assert calls == [(("HuggingFaceH4/MATH-500",), {"split": "test"})]
    assert problems == load_math500(str(DATA / "math500.jsonl"))[:20]


@pytest.mark.parametrize("split", ["gsm8k", "math"])
def test_processbench_hub_id_reads_the_hub_schema(monkeypatch, split):
    # Qwen/ProcessBench, one split per source: id, generator, problem, steps, final_answer_correct, label
    rows = raw_rows(f"processbench_{split}.jsonl")
    calls = fake_hub(monkeypatch, rows)
    items = load_processbench(f"Qwen/ProcessBench:{split}")
    assert calls == [(("Qwen/ProcessBench",), {"split": split})]
    assert {i.split for i in items} == {split}
    assert items == load_processbench(str(DATA / f"processbench_{split}.jsonl"))


def test_prm800k_math_splits_schema_reads_origin_from_the_unique_id(tmp_path):
    """openai/prm800k `math_splits/train.jsonl` rows have problem, solution, answer, subject, level (an integer, null
    for MATH's "Level ?") and unique_id, but neither level_raw nor source_split: the MATH split a problem came
    from (train or test, which the validation split needs) is read from its unique_id."""
    raw = raw_rows("math_train_sample.jsonl") + raw_rows("math_train_edge_rows.jsonl")
    published = tmp_path / "train.jsonl"
    published.write_text("".join(json.dumps({k: r[k] for k in ("problem", "solution", "answer", "subject", "level",
                                                                "unique_id")}) + "\n" for r in raw))
    problems = load_math_train(str(published))
    combined = load_math_train(str(DATA / "math_train_sample.jsonl")) + load_math_train(
        str(DATA / "math_train_edge_rows.jsonl"))
    assert problems == combined
    assert Counter(p.source for p in problems) == Counter(f"math12k:{r['source_split']}" for r in raw)
    assert sum(p.level is None for p in problems) == 2
