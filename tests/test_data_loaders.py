"""Each loader on the real files in ../shared/data; expected counts come from that folder's README."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from e2h.data.math import TEST_ORIGIN, TRAIN_ORIGIN, load_math500, load_math_train
from e2h.data.processbench import load_processbench

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def math500():
    return load_math500(str(DATA / "math500.jsonl"))


@pytest.fixture(scope="module")
def math_train():
    return load_math_train(str(DATA / "math_train.jsonl"))


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
    assert len(math_train) == 12000
    assert Counter(p.level for p in math_train) == {1: 958, 2: 2152, 3: 2618, 4: 2776, 5: 3494, None: 2}
    assert {p.id for p in math_train if p.level is None} == {"train/geometry/377.json", "train/geometry/471.json"}
    assert Counter(p.source for p in math_train) == {TRAIN_ORIGIN: 7500, TEST_ORIGIN: 4500}
    assert sum(1 for p in math_train if p.level in (1, 2, 3)) == 5728
    empty = {p.id for p in math_train if p.answer == ""}
    assert empty == {"train/number_theory/7115.json", "train/number_theory/7117.json"}


def test_math_train_and_math500_do_not_share_ids(math_train, math500):
    assert not {p.id for p in math_train} & {p.id for p in math500}


@pytest.mark.parametrize("name, rows, all_correct, answer_correct", [
    ("gsm8k", 400, 193, 200),
    ("math", 1000, 406, 500),
])
def test_processbench(name, rows, all_correct, answer_correct):
    items = load_processbench(str(DATA / f"processbench_{name}.jsonl"))
    assert len(items) == rows
    assert sum(i.label == -1 for i in items) == all_correct
    assert sum(i.final_answer_correct for i in items) == answer_correct
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
