"""Level sets and the validation split: MATH500's subject x level mix, seeded, test-origin only, no overlap."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from e2h.data.math import TEST_ORIGIN, load_math500, load_math_train
from e2h.data.rows import normalize_problem_text
from e2h.data.splits import HeldOut, select_levels, split_validation, validation_quotas
from e2h.records import Problem

DATA = Path(__file__).resolve().parent / "data"
# the sample of PRM800K's 12k split (tests/data/LICENSES.md) has 30 test-origin problems a level: enough for a
# 20-problem validation split in MATH500's full subject x level mix
SIZE = 20


@pytest.fixture(scope="module")
def math():
    train = load_math_train(str(DATA / "math_train_sample.jsonl")) + load_math_train(
        str(DATA / "math_train_edge_rows.jsonl"))  # + the real rows without a level or an answer
    return train, load_math500(str(DATA / "math500.jsonl"))


def cells(problems):
    return Counter((p.subject, p.level) for p in problems)


def check_split(train, reference, rest, validation, size):
    assert len(validation) == size and len(rest) == len(train) - size
    assert all(p.source == TEST_ORIGIN for p in validation)
    texts = lambda ps: {normalize_problem_text(p.problem) for p in ps}
    assert not texts(validation) & texts(reference)
    assert not {p.id for p in validation} & {p.id for p in rest}
    assert {p.id for p in validation} | {p.id for p in rest} == {p.id for p in train}


def test_validation_matches_math500_mix_and_never_overlaps(math):
    train, math500 = math
    rest, validation = split_validation(train, math500, SIZE, seed=1234)
    check_split(train, math500, rest, validation, SIZE)
    assert cells(validation) == validation_quotas(math500, SIZE)


def test_full_size_validation_has_the_reference_mix_exactly(math):
    """size == the reference's size: each (subject, level) count is the reference's own (no scaling)."""
    train, math500 = math
    reference = math500[:40]  # 40 MATH500 problems whose cells the sample's test-origin problems fill
    rest, validation = split_validation(train, reference, len(reference), seed=1234)
    check_split(train, reference, rest, validation, len(reference))
    assert cells(validation) == cells(reference)


def test_validation_is_seeded(math):
    train, math500 = math
    ids = lambda seed: [p.id for p in split_validation(train, math500, SIZE, seed=seed)[1]]
    assert ids(1234) == ids(1234)
    assert set(ids(1234)) != set(ids(7))


def test_smaller_validation_keeps_the_mix_in_proportion(math):
    train, math500 = math
    _, validation = split_validation(train, math500, SIZE, seed=1234)
    assert len(validation) == SIZE
    by_level = Counter(p.level for p in validation)
    # MATH500 levels 43/90/105/128/134 scaled by 20/500, within the rounding of 7x5 subject-level cells
    for level, full in {1: 43, 2: 90, 3: 105, 4: 128, 5: 134}.items():
        assert abs(by_level[level] - full * SIZE / 500) <= 1


def test_quotas_sum_to_the_size_and_use_largest_remainders():
    ref = [Problem(id=str(i), problem=str(i), answer="", subject=s, level=1) for i, s in enumerate("AAAAABBBCC")]
    # shares for size 4: A 2.0, B 1.2, C 0.8 -> A 2, B 1, C 1
    assert validation_quotas(ref, 4) == {("A", 1): 2, ("B", 1): 1, ("C", 1): 1}
    assert validation_quotas(ref, 10) == {("A", 1): 5, ("B", 1): 3, ("C", 1): 2}


def test_missing_test_origin_problems_is_an_error():
    ref = [Problem(id="r", problem="r", answer="", subject="A", level=1)]
    train = [Problem(id="t", problem="t", answer="", subject="A", level=1, source="math12k:train")]
    with pytest.raises(ValueError, match="not enough test-origin"):
        split_validation(train, ref, 1)


# the sample: 180 problems at each of levels 1-3, 70 at 4 and 5; the edge rows: 2 more at level 5, 2 without a level
@pytest.mark.parametrize("levels, expected", [((1, 2, 3), 540), ((4, 5), 142), ((5,), 72), ((1, 5), 252)])
def test_select_levels(math, levels, expected):
    raw = [json.loads(line) for name in ("math_train_sample.jsonl", "math_train_edge_rows.jsonl")
           for line in (DATA / name).read_text().splitlines()]
    chosen = select_levels(math[0], levels)
    assert len(chosen) == sum(r["level"] in levels for r in raw) == expected
    assert {p.level for p in chosen} == set(levels)
    assert [p.id for p in chosen] == [r["unique_id"] for r in raw if r["level"] in levels]


def test_held_out_matches_by_text_with_other_spacing_and_by_id():
    held = HeldOut.of([Problem(id="test/a/1.json", problem="What is  $1+1$?\n", answer="2")])
    assert Problem(id="x", problem="What is $1+1$?", answer="2") in held
    assert Problem(id="test/a/1.json", problem="something else", answer="2") in held
    assert Problem(id="y", problem="What is $1+2$?", answer="3") not in held
