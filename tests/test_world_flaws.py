"""Flawed solutions and the PRM examples built from them."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from e2h.config import WorldSection
from e2h.text_format import ANSWER_PREFIX, split_solution
from e2h.world import check_steps, first_error, flawed_solutions, generate_world, world_step_examples
from e2h.world.flaws import KINDS, make_flaw, plan_of

CFG = WorldSection(seed=5, train_per_level=20, validation_per_level=0, test_per_level=0, flawed_per_problem=3)


@pytest.fixture(scope="module")
def problems():
    return generate_world(CFG)["train"]


EVERY_KIND = {kind: 1.0 for kind in KINDS}


def test_checker_finds_the_known_first_error_of_every_flaw(problems):
    kinds = Counter()
    for problem in problems:
        reference = split_solution(problem.solution)
        flaws = flawed_solutions(problem, random.Random(problem.id), 3, EVERY_KIND)
        assert flaws, problem
        for flaw in flaws:
            kinds[flaw.kind] += 1
            assert first_error(problem, flaw.steps) == flaw.first_error, (problem.problem, flaw)
            assert flaw.steps[:flaw.first_error] == reference[:flaw.first_error]
            assert len(flaw.steps) == len(reference) and flaw.steps[-1].startswith(ANSWER_PREFIX)
            assert split_solution(flaw.text) == flaw.steps
            if problem.subject != "Modular Arithmetic":  # a remainder can absorb a slip; elsewhere it shows
                assert check_steps(problem, flaw.steps)[-1] is False
    assert set(kinds) == set(KINDS), kinds


def test_flaws_are_seeded_and_distinct(problems):
    problem = problems[-1]
    first = flawed_solutions(problem, random.Random(0), 4)
    again = flawed_solutions(problem, random.Random(0), 4)
    assert [f.steps for f in first] == [f.steps for f in again]
    assert len({f.text for f in first}) == len(first)


def test_hand_made_flaws():
    from e2h.records import Problem

    problem = Problem(id="hand", problem="Compute 7 * 6 - 5.", answer="37", level=1, source="world",
                      solution="7 * 6 = 42\n\n42 - 5 = 37\n\n# Answer\n\n37")
    assert [(s.left_from, s.right_from) for s in plan_of(problem)] == [(None, None), (0, None)]
    rng = random.Random(1)
    arithmetic = make_flaw(problem, plan_of(problem), "arithmetic", 0, rng)
    wrong = int(arithmetic.steps[0].split(" = ")[1])
    assert wrong != 42 and arithmetic.steps[1] == f"{wrong} - 5 = {wrong - 5}"
    assert arithmetic.steps[2] == f"# Answer\n\n{wrong - 5}"
    operation = make_flaw(problem, plan_of(problem), "operation", 0, rng)
    assert operation.steps[0] in ("7 + 6 = 13", "7 - 6 = 1") and operation.first_error == 0
    answer = make_flaw(problem, plan_of(problem), "answer", 0, rng)
    assert answer.steps[:2] == ["7 * 6 = 42", "42 - 5 = 37"] and answer.steps[2] != "# Answer\n\n37"
    assert answer.first_error == 2
    # a misstep: the right operation and arithmetic on numbers the solution has, but not the ones it combines
    misstep = make_flaw(problem, plan_of(problem), "misstep", 1, rng)
    left, right = misstep.steps[1].split(" = ")[0].split(" - ")
    assert misstep.steps[0] == "7 * 6 = 42" and misstep.first_error == 1
    assert {left, right} <= {"7", "6", "5", "42"} and (left, right) != ("42", "5")
    assert misstep.steps[1] == f"{left} - {right} = {int(left) - int(right)}"
    assert check_steps(problem, misstep.steps) == [True, False, False]


def test_default_weights_make_no_misstep_and_unknown_kinds_are_refused(problems):
    """The corpus's slips use the defaults: turning missteps on for PRM data must not change the corpus."""
    kinds = {f.kind for p in problems for f in flawed_solutions(p, random.Random(p.id), 3)}
    assert "misstep" not in kinds and kinds == set(KINDS) - {"misstep"}
    with pytest.raises(ValueError, match="unknown flaw kind"):
        flawed_solutions(problems[0], random.Random(0), 1, {"misread": 1.0})


@pytest.mark.parametrize("after_error", ["label", "cut"])
def test_step_examples_label_every_step(problems, after_error):
    cfg = CFG.model_copy(update={"after_error": after_error, "flawed_per_problem": 2})
    examples = world_step_examples(problems, cfg, seed=1)
    assert examples == world_step_examples(problems, cfg, seed=1)
    by_problem = Counter(ex.problem_id for ex in examples)
    assert set(by_problem) == {p.id for p in problems} and max(by_problem.values()) == 3
    solutions = {p.id: p for p in problems}
    for ex in examples:
        assert all(label in (0.0, 1.0) for label in ex.labels) and len(ex.labels) == len(ex.steps)
        assert ex.level == solutions[ex.problem_id].level and ex.source == "world"
        if ex.id.endswith("/reference"):
            assert ex.steps == split_solution(solutions[ex.problem_id].solution) and set(ex.labels) == {1.0}
            continue
        first_zero = ex.labels.index(0.0)
        assert ex.labels[:first_zero] == [1.0] * first_zero
        if after_error == "cut":
            assert len(ex.steps) == first_zero + 1
        else:
            assert ex.labels == [float(v) for v in check_steps(solutions[ex.problem_id], ex.steps)]
    labels = Counter(label for ex in examples for label in ex.labels)
    # enough negatives to learn from: one per flaw when cut, more when later steps keep their verdicts
    assert labels[0.0] > (0.15 if after_error == "cut" else 0.25) * sum(labels.values()), labels


def test_step_examples_default_config_and_other_seed(problems):
    few = problems[:8]
    default = world_step_examples(few)  # data prepare calls it with the problems alone
    assert len(default) == 8 * (1 + WorldSection().flawed_per_problem)
    assert [e.steps for e in world_step_examples(few, CFG, seed=2)] != [e.steps for e in world_step_examples(
        few, CFG, seed=3)]


def test_flaw_weights_reach_the_prm_examples(problems):
    cfg = CFG.model_copy(update={"flaw_weights": {"misstep": 1.0}})
    flawed = [e for e in world_step_examples(problems, cfg) if "/flaw-" in e.id]
    assert flawed and all(e.id.endswith("-misstep") and 0.0 in e.labels for e in flawed)
