"""The leveled world's generator: seeded, leveled, disjoint splits, and every reference solution checks out."""

from __future__ import annotations

import re
from statistics import mean

import pytest

from e2h.config import ConfigError, WorldSection
from e2h.text_format import ANSWER_PREFIX, format_prompt, split_solution
from e2h.world import (SUBJECTS, check_steps, generate_world, parse_answer, world_sft_examples)

SMALL = WorldSection(seed=3, train_per_level=24, validation_per_level=8, test_per_level=12)


@pytest.fixture(scope="module")
def world():
    return generate_world(SMALL)


def dumped(splits):
    return {name: [p.model_dump() for p in problems] for name, problems in splits.items()}


def test_same_seed_same_world_and_other_seed_other_world(world):
    assert dumped(generate_world(SMALL)) == dumped(world)
    other = generate_world(SMALL.model_copy(update={"seed": 4}))
    assert [p.problem for p in other["train"]] != [p.problem for p in world["train"]]


def test_test_split_does_not_depend_on_train_size(world):
    bigger = generate_world(SMALL.model_copy(update={"train_per_level": 40}))
    assert dumped(bigger)["test"] == dumped(world)["test"]
    assert dumped(bigger)["validation"] == dumped(world)["validation"]


def test_sizes_levels_subjects_and_fields(world):
    for name, per_level in (("train", 24), ("validation", 8), ("test", 12)):
        problems = world[name]
        assert len(problems) == 5 * per_level
        for level in range(1, 6):
            at_level = [p for p in problems if p.level == level]
            assert len(at_level) == per_level
            assert {p.subject for p in at_level} == set(SUBJECTS)
        assert all(p.source == "world" and p.id.startswith(f"world/{name}/") for p in problems)


def test_splits_are_disjoint_by_id_and_text(world):
    ids = [p.id for problems in world.values() for p in problems]
    texts = [" ".join(p.problem.split()) for problems in world.values() for p in problems]
    assert len(set(ids)) == len(ids)
    assert len(set(texts)) == len(texts)


def numbers_in(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"[0-9]+", text)]


def test_levels_grow_in_steps_and_numbers(world):
    problems = [p for split in world.values() for p in split]
    steps = {lv: mean(len(split_solution(p.solution)) for p in problems if p.level == lv) for lv in range(1, 6)}
    largest = {lv: mean(max(numbers_in(p.solution)) for p in problems if p.level == lv) for lv in range(1, 6)}
    for level in range(1, 5):
        assert steps[level] < steps[level + 1], steps
        assert largest[level] < largest[level + 1], largest
    for subject in SUBJECTS:  # per subject too: the same step kinds, more of them
        per = [mean(len(split_solution(p.solution)) for p in problems if p.level == lv and p.subject == subject)
               for lv in range(1, 6)]
        assert per == sorted(per) and per[0] < per[-1], (subject, per)


def test_every_reference_solution_passes_the_checker_and_ends_in_its_answer(world):
    for problem in (p for split in world.values() for p in split):
        steps = split_solution(problem.solution)
        assert check_steps(problem, steps) == [True] * len(steps), problem
        assert steps[-1] == ANSWER_PREFIX + problem.answer
        for step in steps[:-1]:
            assert re.fullmatch(r"-?[0-9]+(/[0-9]+)? (\+|-|\*|/|mod) [0-9]+(/[0-9]+)? = -?[0-9]+(/[0-9]+)?", step), step


def test_answers_are_integers_or_reduced_latex_fractions(world):
    for problem in (p for split in world.values() for p in split):
        assert re.fullmatch(r"-?[0-9]+|\\frac\{[0-9]+\}\{[0-9]+\}", problem.answer), problem.answer
        value = parse_answer(problem.answer)
        assert value is not None
        if problem.answer.startswith("\\frac"):
            p, q = numbers_in(problem.answer)
            assert value.q == q > 1 and value.p == p  # lowest terms: SymPy's reduced form is what is written


def test_solutions_stay_short_at_level_5(world):
    # a rough character budget standing in for ~200 tokens with digit-level tokenization
    longest = max(len(format_prompt(p.problem) + p.solution) for split in world.values() for p in split)
    assert longest < 400


def test_sft_examples_are_prompt_and_full_solution(world):
    examples = world_sft_examples(world["train"])
    assert len(examples) == len(world["train"])
    for problem, example in zip(world["train"], examples):
        assert example.prompt == format_prompt(problem.problem) and example.completion == problem.solution
        assert example.eos and example.level == problem.level and example.problem_id == problem.id


def test_unknown_subject_is_a_config_error():
    with pytest.raises(ConfigError, match="world.subjects"):
        generate_world(WorldSection(subjects=["Geometry"]))


def test_one_subject_world_and_too_many_problems_asked():
    only = generate_world(WorldSection(subjects=["Fractions"], train_per_level=5, validation_per_level=1,
                                       test_per_level=1))
    assert {p.subject for p in only["train"]} == {"Fractions"}
    with pytest.raises(ValueError, match="too few distinct level-1 Fractions"):
        generate_world(WorldSection(subjects=["Fractions"], train_per_level=5000, validation_per_level=0,
                                    test_per_level=0))


def intermediate_values(problem) -> list[int]:
    """The value each reasoning step writes after its '='."""
    return [int(step.split(" = ")[1]) for step in split_solution(problem.solution)[:-1]]


def test_small_number_scale_caps_every_level_and_keeps_levels_apart_in_steps():
    scaled = WorldSection(seed=3, train_per_level=24, validation_per_level=0, test_per_level=0,
                          subjects=["Arithmetic", "Modular Arithmetic"],
                          leaf_max=[9, 9, 9, 9, 9], value_cap=[30, 30, 30, 30, 30])
    problems = generate_world(scaled)["train"]
    for problem in problems:
        assert max(numbers_in(problem.problem)) <= 30, problem.problem
        if problem.subject == "Arithmetic":  # leaves <= 9, exact divisors <= 12, every step value within the cap
            assert max(numbers_in(problem.problem)) <= 12, problem.problem
            assert max(abs(v) for v in intermediate_values(problem)) <= 30, problem.solution
        assert check_steps(problem, split_solution(problem.solution)) == [True] * len(split_solution(problem.solution))
    steps = {lv: mean(len(split_solution(p.solution)) for p in problems if p.level == lv) for lv in range(1, 6)}
    assert [steps[lv] for lv in range(1, 6)] == sorted(steps.values()) and steps[1] + 2 < steps[5], steps
    # the default scale is what a world without the keys gets
    assert dumped(generate_world(SMALL.model_copy(update={"leaf_max": None}))) == dumped(generate_world(SMALL))


@pytest.mark.parametrize("update, key", [
    ({"leaf_max": [9, 9, 9]}, "world.leaf_max"),
    ({"leaf_max": []}, "world.leaf_max"),
    ({"value_cap": [30, 30, 30, 30, 1]}, "world.value_cap"),
    ({"leaf_max": [20] * 5, "value_cap": [30] * 5}, "twice its largest leaf"),
    ({"nest_p": [0, 0, 0, 0, 1.5]}, "world.nest_p"),
])
def test_bad_number_scale_is_a_config_error(update, key):
    with pytest.raises(ConfigError, match=key):
        generate_world(SMALL.model_copy(update=update))
