"""Level sets and the validation split: MATH500's subject x level mix, seeded, test-origin only, no overlap."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from e2h.data.math import TEST_ORIGIN, load_math500, load_math_train
from e2h.data.rows import normalize_problem_text
from e2h.data.splits import HeldOut, select_levels, split_validation, validation_quotas
from e2h.records import Problem

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def math():
    return load_math_train(str(DATA / "math_train.jsonl")), load_math500(str(DATA / "math500.jsonl"))


def cells(problems):
    return Counter((p.subject, p.level) for p in problems)


def test_validation_matches_math500_mix_and_never_overlaps(math):
    train, math500 = math
    rest, validation = split_validation(train, math500, 500, seed=1234)
    assert len(validation) == 500 and len(rest) == 11500
    assert cells(validation) == cells(math500)
    assert all(p.source == TEST_ORIGIN for p in validation)
    texts = lambda ps: {normalize_problem_text(p.problem) for p in ps}
    assert not texts(validation) & texts(math500)
    assert not {p.id for p in validation} & {p.id for p in rest}
    assert {p.id for p in validation} | {p.id for p in rest} == {p.id for p in train}


def test_validation_is_seeded(math):
    train, math500 = math
    ids = lambda seed: [p.id for p in split_validation(train, math500, 500, seed=seed)[1]]
    assert ids(1234) == ids(1234)
    assert set(ids(1234)) != set(ids(7))


def test_smaller_validation_keeps_the_mix_in_proportion(math):
    train, math500 = math
    _, validation = split_validation(train, math500, 50, seed=1234)
    assert len(validation) == 50
    by_level = Counter(p.level for p in validation)
    # MATH500 levels 43/90/105/128/134 scaled by 1/10, within the rounding of 7x5 subject-level cells
    for level, full in {1: 43, 2: 90, 3: 105, 4: 128, 5: 134}.items():
        assert abs(by_level[level] - full / 10) <= 3


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


@pytest.mark.parametrize("levels, expected", [((1, 2, 3), 5728), ((4, 5), 6270), ((5,), 3494), ((1, 5), 4452)])
def test_select_levels(math, levels, expected):
    chosen = select_levels(math[0], levels)
    assert len(chosen) == expected and {p.level for p in chosen} == set(levels)


def test_held_out_matches_by_text_with_other_spacing_and_by_id():
    held = HeldOut.of([Problem(id="test/a/1.json", problem="What is  $1+1$?\n", answer="2")])
    assert Problem(id="x", problem="What is $1+1$?", answer="2") in held
    assert Problem(id="test/a/1.json", problem="something else", answer="2") in held
    assert Problem(id="y", problem="What is $1+2$?", answer="3") not in held
