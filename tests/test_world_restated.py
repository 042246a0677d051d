"""The restated step format (world.step_format: restated): reference chains, the checker's rule, flaws and
misconceptions, each checked against what the checker says."""

import random

import pytest

from e2h.config import ConfigError, WorldSection
from e2h.records import Problem
from e2h.world import generate_world, world_step_examples
from e2h.world.checker import check_steps, evaluate_line, first_error, is_restated
from e2h.world.flaws import KINDS, flawed_solutions
from e2h.world.misconceptions import misconceived_steps
from e2h.world.restated import out_of_order, problem_tree, restated_solution


def restated_problem(text: str, answer: str) -> Problem:
    return Problem(id="t/1", problem=text, answer=answer, level=3, subject="Arithmetic",
                   solution="\n\n".join(restated_solution(text)), source="world")


@pytest.mark.parametrize("text, lines", [
    ("Compute 3 + 4 * 5 - 6.", ["4 * 5 = 20\n3 + 20 - 6", "3 + 20 = 23\n23 - 6", "23 - 6 = 17", "# Answer\n\n17"]),
    ("Compute 3 + (7 * 2 - 6 + 5) + 2.", ["7 * 2 = 14\n3 + (14 - 6 + 5) + 2", "14 - 6 = 8\n3 + (8 + 5) + 2",
                                           "8 + 5 = 13\n3 + 13 + 2", "3 + 13 = 16\n16 + 2", "16 + 2 = 18",
                                           "# Answer\n\n18"]),
    ("Compute 8 - (5 - 2) * 2.", ["5 - 2 = 3\n8 - 3 * 2", "3 * 2 = 6\n8 - 6", "8 - 6 = 2", "# Answer\n\n2"]),
    ("Compute 2 * 3 - 9.", ["2 * 3 = 6\n6 - 9", "6 - 9 = -3", "# Answer\n\n-3"]),
    ("Find the remainder when 9 * 8 + 11 is divided by 7.", ["9 * 8 = 72\n(72 + 11) mod 7", "72 + 11 = 83\n83 mod 7",
                                                              "83 mod 7 = 6", "# Answer\n\n6"]),
])
def test_reference_steps_do_one_operation_and_restate_what_is_left(text, lines):
    assert restated_solution(text) == lines
    problem = restated_problem(text, lines[-1].split()[-1])
    assert is_restated(problem)
    assert check_steps(problem, lines) == [True] * len(lines)


@pytest.mark.parametrize("steps, verdicts", [
    (["4 * 5 = 20\n3 + 20 - 6", "3 + 20 = 23\n23 - 6", "23 - 6 = 17", "# Answer\n\n17"], [True] * 4),
    (["4 * 5 = 20\n3 + 20 - 6", "4 * 5 = 20\n3 + 20 - 6", "23 - 6 = 17", "# Answer\n\n17"],
     [True, False, True, True]),  # no progress
    (["3 + 4 = 7\n7 * 5 - 6", "7 * 5 = 35\n35 - 6", "35 - 6 = 29", "# Answer\n\n29"],
     [False, False, False, False]),  # precedence ignored: right arithmetic, the expression changed
    (["4 * 5 = 21\n3 + 21 - 6", "3 + 21 = 24\n24 - 6", "24 - 6 = 18", "# Answer\n\n18"],
     [False, False, False, False]),  # a wrong product
    (["4 * 5 = 21\n3 + 20 - 6"], [False]),  # the restated line is right, the operation is not
    (["4 * 5 = 20\n3 + 20 - 7", "3 + 20 = 23\n23 - 7", "23 - 7 = 16", "# Answer\n\n17"],
     [False, False, False, True]),  # a miscopied number
    (["3 + 4 * 5 - 6 = 17", "# Answer\n\n17"], [True, True]),  # every operation at once: a true statement
    (["__import__('os')", "9" * 40, "4 * 5 = 20\n3 + 20 -", "4 * 5\n3 + 20 - 6"], [False] * 4),  # not the grammar
])
def test_checker_judges_each_step_against_the_answer_and_the_step_before(steps, verdicts):
    problem = restated_problem("Compute 3 + 4 * 5 - 6.", "17")
    assert check_steps(problem, steps) == verdicts


def test_operations_are_counted_without_unary_minus():
    assert evaluate_line("-3 + 4 * 2")[1] == 2
    assert evaluate_line("(72 + 11) mod 7") == (6, 2)


@pytest.mark.parametrize("text, expected", [
    ("Compute 3 + 4 * 5.", [("7 * 5", "3 + 4 = 7")]),
    ("Compute 8 - 5 - 2.", [("8 - 3", "5 - 2 = 3")]),
    ("Compute 3 + 14 - 6.", []),  # 14 - 6 first keeps the value: no error
])
def test_out_of_order_steps_change_the_value(text, expected):
    assert [(tree.render(), fact) for tree, fact in out_of_order(problem_tree(text))] == expected


@pytest.mark.parametrize("text, answer, rule, wrong_answer", [
    ("Compute 3 + 4 * 5 - 6.", "17", "left_to_right", "29"),
    ("Find the remainder when 9 * 8 + 11 is divided by 7.", "6", "mod_quotient", "11"),
    ("Compute 2 * 3 - 9.", "-3", "reversed_subtraction", "3"),
])
def test_each_misconception_writes_the_wrong_step_it_claims_and_the_checker_flags_it(text, answer, rule,
                                                                                    wrong_answer):
    problem = restated_problem(text, answer)
    steps = misconceived_steps(problem, rule)
    assert steps is not None and steps[-1] == f"# Answer\n\n{wrong_answer}"
    assert first_error(problem, steps) is not None
    assert check_steps(problem, steps)[-1] is False


def test_misconception_that_does_not_apply_leaves_the_problem_right():
    problem = restated_problem("Compute 3 * 4 + 5.", "17")
    assert misconceived_steps(problem, "left_to_right") is None
    assert misconceived_steps(problem, "mod_quotient") is None


@pytest.mark.parametrize("kind", KINDS)
def test_every_flaw_kind_has_its_first_error_where_the_checker_finds_it(kind):
    world = generate_world(WorldSection(subjects=["Arithmetic", "Modular Arithmetic"], step_format="restated",
                                        train_per_level=10, validation_per_level=0, test_per_level=0))
    found = 0
    for problem in world["train"]:
        for flaw in flawed_solutions(problem, random.Random(problem.id), 2, {kind: 1.0}):
            found += 1
            verdicts = check_steps(problem, flaw.steps)
            assert flaw.kind == kind
            assert verdicts[:flaw.first_error] == [True] * flaw.first_error
            assert verdicts[flaw.first_error] is False
            assert verdicts[-1] is False  # the answer of a flawed chain is wrong
    assert found >= 10


def test_restated_world_reference_chains_all_pass_and_prm_data_has_negatives_of_every_source():
    cfg = WorldSection(subjects=["Arithmetic", "Modular Arithmetic"], step_format="restated", train_per_level=8,
                       validation_per_level=2, test_per_level=2, misconceptions={"left_to_right": 0.2})
    world = generate_world(cfg)
    for problems in world.values():
        for problem in problems:
            steps = problem.solution.split("\n\n# Answer\n\n")[0].split("\n\n")
            assert all("\n" in step for step in steps[:-1]) and "\n" not in steps[-1]
            assert all(check_steps(problem, steps))
    examples = world_step_examples(world["train"], cfg)
    kinds = {example.id.split("/")[-1].split("-")[0] for example in examples if 0.0 in example.labels}
    assert kinds == {"flaw", "misconception"}


def test_restated_needs_expression_subjects():
    with pytest.raises(ConfigError, match="step_format"):
        generate_world(WorldSection(subjects=["Fractions"], step_format="restated", train_per_level=1,
                                    validation_per_level=0, test_per_level=0))
