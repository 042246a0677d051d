"""Reranking rules on hand-built pools whose right answers are known (keys + verdicts given), and the gold-blind
vote grouping: table-driven with a stated equivalence, then with the real grader."""

import math

import numpy as np
import pytest

from e2h import rerank


@pytest.mark.parametrize("how, expected", [
    ("min", [0.5, 0.7]),
    ("prod", [0.9 * 0.5 * 0.8, 0.7]),
    ("last", [0.8, 0.7]),
    ("mean", [(0.9 + 0.5 + 0.8) / 3, 0.7]),
])
def test_aggregate_steps(how, expected):
    out = rerank.aggregate_steps([[0.9, 0.5, 0.8], [0.7], None, []], how)
    np.testing.assert_allclose(out[:2], expected)
    assert np.isnan(out[2]) and np.isnan(out[3])  # no step scores: cannot be chosen


def test_aggregate_steps_rejects_unknown():
    with pytest.raises(ValueError, match="unknown aggregation 'max'"):
        rerank.aggregate_steps([[0.5]], "max")


def test_gold_merged_classes_merge_everything_graded_correct_into_gold():
    # the old grouping (eval.vote_grouping=gold): "1/2" and "0.5" join class 0 because both were graded correct
    classes = rerank.gold_merged_classes(["1/2", "3", None, "0.5", "3", "7"], [True, False, False, True, False, False])
    assert classes.ids.tolist() == [0, 1, -1, 0, 1, 2] and classes.n_gold == 1
    # a key graded correct once (another copy timed out) is gold for every copy
    assert rerank.gold_merged_classes(["4", "4"], [False, True]).ids.tolist() == [0, 0]
    # no gold known (serving): first appearance order from 0
    assert rerank.answer_classes(["b", "a", "b", None]).tolist() == [0, 1, 0, -1]


def test_answer_classes_refuse_verdicts():
    with pytest.raises(TypeError, match="never sees verdicts"):
        rerank.answer_classes(["4", "5"], [True, False])


# (name, keys, correct, scores, majority, weighted vote, best-of-N, pass)
POOLS = [
    ("clear majority", ["4", "4", "5"], [1, 1, 0], [0.2, 0.2, 0.9], 1.0, 0.0, 0.0, 1.0),
    # paper Fig. 22: the wrong answer has more votes, the right one more summed reward
    ("weighted vote flips the majority", ["10", "10", "36", "36", "36"], [1, 1, 0, 0, 0],
     [0.9, 0.8, 0.3, 0.3, 0.3], 0.0, 1.0, 1.0, 1.0),
    ("1-1 tie", ["4", "5"], [1, 0], [0.5, 0.5], 0.5, 0.5, 0.5, 1.0),
    ("three-way tie", ["4", "5", "6"], [1, 0, 0], [0.25, 0.25, 0.25], 1 / 3, 1 / 3, 1 / 3, 1.0),
    ("tie between two wrong answers", ["5", "6", "4"], [0, 0, 1], [0.5, 0.5, 0.25], 1 / 3, 0.0, 0.0, 1.0),
    ("equal keys vote together", ["1/2", "1/2", "3", "3"], [1, 1, 0, 0], [0.5, 0.5, 0.5, 0.5],
     0.5, 0.5, 0.5, 1.0),
    # without an equivalence "1/2" and "0.5" are two correct classes: they vote apart, "3" wins 2-1-1
    ("correct answers not known equal vote apart", ["1/2", "0.5", "3", "3"], [1, 1, 0, 0], [0.5, 0.5, 0.3, 0.3],
     0.0, 0.0, 1.0, 1.0),
    ("two correct classes tie with a wrong one", ["1/2", "0.5", "3"], [1, 1, 0], [0.5, 0.5, 0.5], 2 / 3, 2 / 3, 2 / 3,
     1.0),
    ("unanswered never wins", [None, None, None, "5"], [0, 0, 0, 0], [0.99, 0.99, 0.99, 0.1], 0.0, 0.0, 0.0, 0.0),
    ("unanswered does not block the right one", [None, None, "5"], [0, 0, 1], [0.99, 0.99, 0.1], 1.0, 1.0, 1.0, 1.0),
    ("no answers at all", [None, None], [0, 0], [0.5, 0.5], 0.0, 0.0, 0.0, 0.0),
    ("missing scores count zero / cannot be chosen", ["4", "5", "5"], [1, 0, 0], [0.6, float("nan"), 0.1],
     0.0, 1.0, 1.0, 1.0),
    ("all gold", ["2", "2"], [1, 1], [0.1, 0.2], 1.0, 1.0, 1.0, 1.0),
]


@pytest.mark.parametrize("name, keys, correct, scores, majority, weighted, best, oracle", POOLS,
                         ids=[p[0] for p in POOLS])
def test_methods_on_hand_built_pools(name, keys, correct, scores, majority, weighted, best, oracle):
    classes, n_gold = rerank.vote_classes(keys, [bool(c) for c in correct])
    scores = np.array(scores)
    assert rerank.majority_vote(classes, n_gold) == pytest.approx(majority)
    assert rerank.weighted_vote(classes, scores, n_gold) == pytest.approx(weighted)
    assert rerank.best_of_n(classes, scores, n_gold) == pytest.approx(best)
    assert rerank.pass_at_n(classes, n_gold) == oracle


def test_best_of_n_ties_score_the_correct_fraction():
    classes, n_gold = rerank.vote_classes(["4", "5", "5", "4"], [True, False, False, True])
    assert rerank.best_of_n(classes, np.array([0.9, 0.9, 0.9, 0.2]), n_gold) == pytest.approx(1 / 3)


def test_weighted_vote_rejects_logits():
    with pytest.raises(ValueError, match="sigmoid"):
        rerank.weighted_vote(np.array([0, 1]), np.array([2.5, -1.0]))


@pytest.mark.parametrize("method, scores, expected", [
    ("majority", None, ("4", 1)),
    ("weighted_vote", [0.9, 0.2, 0.3, 0.1], ("3", 0)),
    ("best_of_n", [0.2, 0.9, 0.95, 0.1], ("4", 2)),
])
def test_select_answer(method, scores, expected):
    assert rerank.select_answer(["3", "4", "4", None], scores, method) == expected


def test_select_answer_ties_go_to_first_seen_and_none_without_answers():
    assert rerank.select_answer(["b", "a"], None, "majority") == ("b", 0)
    assert rerank.select_answer([None, None], [0.3, 0.4], "weighted_vote") == (None, None)
    assert rerank.select_answer([None], [0.3], "best_of_n") == (None, None)
    assert math.isclose(rerank.class_totals(np.array([0, 0, 1, -1]), np.array([0.5, 0.25, 1.0, 9.0]))[0], 0.75)


# score.steps (issue #19): which step scores the aggregates read. Columns: step scores (the answer step last when
# has_answer), has_answer, then what reasoning_and_answer / reasoning / with_answer keep.
STEP_TABLE = [
    ([0.9, 0.5, 0.8], True, [0.9, 0.5, 0.8], [0.9, 0.5], [0.9, 0.8]),  # two reasoning steps + answer
    ([0.6, 0.3], True, [0.6, 0.3], [0.6], [0.3]),  # one reasoning step + answer: with_answer keeps the answer only
    ([0.9, 0.5], False, [0.9, 0.5], [0.9, 0.5], [0.9, 0.5]),  # cut at the length limit: no answer step
    ([0.6], False, [0.6], [0.6], [0.6]),  # one reasoning step, no answer
    ([0.7], True, [0.7], [], [0.7]),  # the answer step alone
    ([], False, [], [], []),
    (None, False, [], [], []),
]


@pytest.mark.parametrize("scores, has_answer, both, reasoning, with_answer", STEP_TABLE)
def test_select_steps_conventions(scores, has_answer, both, reasoning, with_answer):
    from e2h.rerank import STEP_CONVENTIONS, select_steps

    got = {c: select_steps(scores, has_answer, c) for c in STEP_CONVENTIONS}
    assert got == {"reasoning_and_answer": both, "reasoning": reasoning, "with_answer": with_answer}
    assert select_steps(scores, has_answer) == both  # the default keeps e2h's behaviour


def test_select_steps_rejects_an_unknown_convention():
    from e2h.rerank import select_steps

    with pytest.raises(ValueError, match="score.steps"):
        select_steps([0.5], True, "answer_only")
