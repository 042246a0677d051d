"""The unlabeled pretraining corpus and the misconception rules (issue #16 items 1-3)."""

from __future__ import annotations

from collections import Counter

import pytest

from e2h.config import ConfigError, WorldSection
from e2h.data.rows import normalize_problem_text
from e2h.records import Problem
from e2h.text_format import split_solution
from e2h.world import check_steps, generate_world, world_step_examples
from e2h.world.corpus import build_corpus, corpus_examples
from e2h.world.misconceptions import MISCONCEPTIONS, applicable, misconceived_steps

SMALL = dict(subjects=["Arithmetic", "Modular Arithmetic"], train_per_level=20, validation_per_level=10,
             test_per_level=10, corpus_per_level=150, leaf_max=[9] * 5, value_cap=[30] * 5,
             misconceptions={"left_to_right": 0.2, "mod_quotient": 0.15, "reversed_subtraction": 0.1})


def _problem(text: str, steps: list[str], answer: str, subject: str = "Arithmetic") -> Problem:
    solution = "\n\n".join([*steps, f"# Answer\n\n{answer}"])
    return Problem(id="t/1", problem=text, answer=answer, level=3, subject=subject, solution=solution, source="world")


# (rule, problem text, reference steps, answer, the misconceived steps the rule must give)
CASES = [
    ("left_to_right", "Compute 3 + 4 * 5 - 6.", ["4 * 5 = 20", "3 + 20 = 23", "23 - 6 = 17"], "17",
     ["3 + 4 = 7", "7 * 5 = 35", "35 - 6 = 29", "# Answer\n\n29"]),
    ("left_to_right", "Compute 8 - (2 + 3).", ["2 + 3 = 5", "8 - 5 = 3"], "3",
     ["8 - 2 = 6", "6 + 3 = 9", "# Answer\n\n9"]),
    ("left_to_right", "Find the remainder when 2 + 3 * 4 is divided by 5.", ["3 * 4 = 12", "2 + 12 = 14",
                                                                              "14 mod 5 = 4"], "4",
     ["2 + 3 = 5", "5 * 4 = 20", "20 mod 5 = 0", "# Answer\n\n0"]),
    ("mod_quotient", "Find the remainder when 9 * 8 + 11 is divided by 7.", ["9 * 8 = 72", "72 + 11 = 83",
                                                                              "83 mod 7 = 6"], "6",
     ["9 * 8 = 72", "72 + 11 = 83", "83 mod 7 = 11", "# Answer\n\n11"]),
    ("reversed_subtraction", "Compute 2 * 3 - 9.", ["2 * 3 = 6", "6 - 9 = -3"], "-3",
     ["2 * 3 = 6", "6 - 9 = 3", "# Answer\n\n3"]),
]


@pytest.mark.parametrize("rule,text,steps,answer,expected", CASES)
def test_each_misconception_writes_its_wrong_steps_and_the_checker_flags_them(rule, text, steps, answer, expected):
    subject = "Modular Arithmetic" if text.startswith("Find") else "Arithmetic"
    problem = _problem(text, steps, answer, subject)
    assert all(check_steps(problem, split_solution(problem.solution)))  # the reference passes
    wrong = misconceived_steps(problem, rule)
    assert wrong == expected
    verdicts = check_steps(problem, wrong)
    # a misconceived step and the answer are flagged; the first step that differs from the reference may still
    # be correct ("8 - 2 = 6" in 8 - (2 + 3): the misconception shows at "6 + 3 = 9")
    assert verdicts[-1] is False and False in verdicts[:-1], verdicts


@pytest.mark.parametrize("rule,text,steps,answer", [
    ("left_to_right", "Compute 7 * 6 - 5.", ["7 * 6 = 42", "42 - 5 = 37"], "37"),  # written order is the order
    ("mod_quotient", "Compute 7 * 6 - 5.", ["7 * 6 = 42", "42 - 5 = 37"], "37"),  # no mod
    ("reversed_subtraction", "Compute 9 - 2.", ["9 - 2 = 7"], "7"),  # a >= b
])
def test_a_misconception_that_does_not_apply_changes_nothing(rule, text, steps, answer):
    assert misconceived_steps(_problem(text, steps, answer), rule) is None


def test_a_misconception_is_deterministic_so_its_authors_agree():
    problem = _problem(*CASES[0][1:4])
    assert len({tuple(misconceived_steps(problem, "left_to_right")) for _ in range(5)}) == 1


def test_the_corpus_never_holds_a_validation_or_test_problem():
    cfg = WorldSection(**SMALL)
    splits = generate_world(cfg)
    documents = build_corpus(cfg, splits["validation"] + splits["test"])
    held_out = {normalize_problem_text(p.problem) for p in splits["validation"] + splits["test"]}
    assert len(documents) > 500
    assert not held_out & {normalize_problem_text(d.problem.problem) for d in documents}
    # and the corpus does reach problems of the held-out kind: every level is there
    assert {d.problem.level for d in documents} == {1, 2, 3, 4, 5}


def test_the_corpus_has_careful_careless_and_misconceived_authors_and_no_labels():
    cfg = WorldSection(**{**SMALL, "misconceptions": {"left_to_right": 0.3, "mod_quotient": 0.2}},
                       corpus_slip_share=0.2)
    splits = generate_world(cfg)
    documents = build_corpus(cfg, splits["validation"] + splits["test"])
    wrong = Counter(d.author for d in documents if not d.text.endswith(f"# Answer\n\n{d.problem.answer}"))
    assert wrong["slip"] > 30 and wrong["left_to_right"] > 30 and wrong["mod_quotient"] > 30
    assert "careful" not in wrong and "reversed_subtraction" not in wrong
    rows = corpus_examples(documents)
    assert all(row.prompt == "" and row.completion.startswith("# Question") for row in rows)
    assert not any("author" in row.model_dump() or row.level is not None for row in rows)


def test_harder_problems_meet_left_to_right_more_often():
    cfg = WorldSection(**{**SMALL, "test_per_level": 40})
    test = generate_world(cfg)["test"]
    share = {level: sum("left_to_right" in applicable(p) for p in test if p.level == level) for level in (1, 5)}
    assert share[5] > 2 * share[1]


def test_misconception_shares_are_checked():
    cfg = WorldSection(**{**SMALL, "misconceptions": {"brackets_first": 0.2}})
    with pytest.raises(ConfigError, match="world.misconceptions"):
        build_corpus(cfg, [])
    cfg = WorldSection(**{**SMALL, "misconceptions": {"left_to_right": 0.6}}, corpus_slip_share=0.6)
    with pytest.raises(ConfigError, match="sum to at most 1"):
        build_corpus(cfg, [])


def test_prm_negatives_include_the_misconceptions_of_easy_problems():
    cfg = WorldSection(**SMALL)
    train = [p for p in generate_world(cfg)["train"] if p.level <= 3]
    examples = world_step_examples(train, cfg)
    kinds = Counter(e.id.rsplit("/", 1)[1] for e in examples if "misconception" in e.id)
    assert set(kinds) <= {f"misconception-{rule}" for rule in MISCONCEPTIONS} and len(kinds) >= 2
    for example in (e for e in examples if "misconception" in e.id):
        assert 0.0 in example.labels  # the checker catches each misconceived chain (its answer may be right by luck)
