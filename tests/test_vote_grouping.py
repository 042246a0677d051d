"""Vote grouping must not know the gold (issue #16): answers are grouped by their equivalence to each other,
then each class is scored against the gold. First with a stated equivalence (table-driven, no grader), then
with the real grader's prediction-vs-prediction comparison."""

import numpy as np
import pytest

from e2h import rerank


class StatedEquivalence:
    """A SameAnswer from a list of equal pairs (not closed under transitivity: that is union-find's job);
    records every pair it is asked about."""

    def __init__(self, *equal_pairs):
        self.equal = {frozenset(pair) for pair in equal_pairs}
        self.asked: list[tuple[str, str]] = []

    def __call__(self, pairs):
        self.asked += pairs
        return [frozenset((a, b)) in self.equal for a, b in pairs]


# (name, keys, equal pairs, verdicts, gold-blind ids, n_gold, gold-merged ids)
CASES = [
    ("equal keys vote together without a comparison", ["4", "4", "5", "4"], [], [1, 1, 0, 1],
     [0, 0, 1, 0], 1, [0, 0, 1, 0]),
    ("equal forms merge without any gold", ["1/2", "0.5", "3", None], [("1/2", "0.5")], [0, 0, 0, 0],
     [1, 1, 2, -1], 1, [1, 2, 3, -1]),
    ("wrong answers equal to each other vote together", ["1/2", "3", "6/2", "0.5", "\\frac{6}{2}"],
     [("1/2", "0.5"), ("3", "6/2"), ("3", "\\frac{6}{2}")], [1, 0, 0, 1, 0],
     [0, 1, 1, 0, 1], 1, [0, 1, 2, 0, 3]),
    ("correct answers merge only when equal to each other", ["0.33333333303", "0.33333333363", "w", "w"], [],
     [1, 1, 0, 0], [0, 1, 2, 2], 2, [0, 0, 1, 1]),
    ("a key equal to two classes joins them (union-find)", ["a", "b", "c"], [("a", "c"), ("b", "c")], [0, 0, 0],
     [1, 1, 1], 1, [1, 2, 3]),
    ("mixed class: at least half correct is correct", ["a", "a'", "b"], [("a", "a'")], [1, 0, 0],
     [0, 0, 1], 1, [0, 1, 2]),
    ("mixed class: a minority of correct is wrong", ["a", "a'", "a''", "b"], [("a", "a'"), ("a", "a''")],
     [1, 0, 0, 1], [1, 1, 1, 0], 1, [0, 1, 2, 0]),
    ("no answers", [None, None], [], [0, 0], [-1, -1], 1, [-1, -1]),
]


@pytest.mark.parametrize("name, keys, pairs, verdicts, blind, n_gold, merged", CASES, ids=[c[0] for c in CASES])
def test_grouping_table(name, keys, pairs, verdicts, blind, n_gold, merged):
    correct = [bool(v) for v in verdicts]
    got = rerank.vote_classes(keys, correct, "samples", StatedEquivalence(*pairs))
    assert got.ids.tolist() == blind and got.n_gold == n_gold
    old = rerank.vote_classes(keys, correct, "gold")
    assert old.ids.tolist() == merged and old.n_gold == 1
    # the grouping itself never reads a verdict: the same keys with every verdict flipped group alike
    flipped = rerank.vote_classes(keys, [not c for c in correct], "samples", StatedEquivalence(*pairs))
    same_partition = {(a, b) for a, b in zip(got.ids.tolist(), flipped.ids.tolist())}
    assert len(same_partition) == len({a for a, _ in same_partition}) == len({b for _, b in same_partition})


def test_the_two_groupings_disagree_where_the_gold_helped():
    # "wrong answers equal to each other vote together": gold-blind, the wrong class wins 3-2; merged by the gold
    # the two correct samples win against three wrong keys of one vote each
    keys, correct = ["1/2", "3", "6/2", "0.5", "\\frac{6}{2}"], [True, False, False, True, False]
    same = StatedEquivalence(("1/2", "0.5"), ("3", "6/2"), ("3", "\\frac{6}{2}"))
    assert rerank.majority_vote(*rerank.vote_classes(keys, correct, "samples", same)) == 0.0
    assert rerank.majority_vote(*rerank.vote_classes(keys, correct, "gold")) == 1.0


def test_comparisons_are_over_distinct_keys_and_class_representatives():
    # 64 samples, 4 distinct keys in 2 classes: keys 2, 3, 4 are each compared with the current class roots only
    keys = ["a", "b", "a2", "b2"] * 16
    same = StatedEquivalence(("a", "a2"), ("b", "b2"))
    classes = rerank.answer_classes(keys, same)
    assert classes.tolist() == [0, 1, 0, 1] * 16
    assert same.asked == [("b", "a"), ("a2", "a"), ("a2", "b"), ("b2", "a"), ("b2", "b")]


def test_pools_are_grouped_in_batched_rounds():
    calls = []

    def same(pairs):
        calls.append(len(pairs))
        return [False] * len(pairs)

    pools = [["a", "b", "c"], ["x", "y"], ["only"] * 5, [None]]
    out = rerank.group_pools(pools, same)
    assert [c.tolist() for c in out] == [[0, 1, 2], [0, 1], [0] * 5, [-1]]
    assert calls == [2, 2]  # round 1: (b,a) and (y,x); round 2: c against a and b


def test_texts_are_what_the_equivalence_reads():
    # keys are grader keys; the comparison reads the answer text of the first sample with each key
    same = StatedEquivalence(("\\frac12", "0.5"))
    classes = rerank.answer_classes(["k1", "k1", "k2"], same, texts=["\\frac12", "1/2", "0.5"])
    assert classes.tolist() == [0, 0, 0] and same.asked == [("0.5", "\\frac12")]


def test_class_verdicts_and_mixed_counts():
    classes = np.array([0, 0, 1, 1, 1, 2, -1])
    correct = [True, False, True, False, False, False, True]
    assert rerank.class_verdicts(classes, correct).tolist() == [True, False, False]
    assert rerank.mixed_classes(classes, correct) == 2
    with pytest.raises(ValueError, match="7 samples but 2"):
        rerank.class_verdicts(classes, [True, False])


# ----------------------------------------------------------------------------------------- the real grader
GRADER_CASES = [
    ("1/2 and 0.5, no gold anywhere", ["1/2", "0.5", "3", None], [0, 0, 1, -1]),
    ("wrong forms of 3", ["3", "6/2", "\\frac{6}{2}", "4"], [0, 0, 0, 1]),
    ("an inequality and its interval", ["x \\ge 5", "[5,\\infty)", "(5,\\infty)"], [0, 0, 1]),
    ("the list reading holds either way round", ["19, 22", "19,22"], [0, 0]),
    ("words and numbers stay apart", ["\\text{Devon}", "devon", "7"], [0, 0, 1]),
]


@pytest.mark.parametrize("name, keys, expected", GRADER_CASES, ids=[c[0] for c in GRADER_CASES])
def test_grader_equivalence_groups_answers(name, keys, expected):
    same = rerank.GraderSameAnswer(timeout_s=5.0, workers=1)
    assert rerank.answer_classes(keys, same).tolist() == expected
    assert same.timeouts == 0


def test_grader_equivalence_caches_unordered_pairs():
    same = rerank.GraderSameAnswer(timeout_s=5.0, workers=1)
    assert same([("19, 22", "19,22"), ("19,22", "19, 22"), ("3", "4")]) == [True, True, False]
    # one unordered pair asked twice is graded once; "19, 22" against "19,22" reads a decimal (unequal shapes), so it
    # is tried the other way round; 3 != 4 is a comparison of values, which holds both ways: 3 comparisons
    assert same.cache_hits == 1 and same.compared == 3
    assert same.stats()["grader_methods"] == {"normalized_match": 1, "rational": 1, "structure": 1}
    assert same([("4", "3")]) == [False] and same.cache_hits == 2 and same.compared == 3


def test_grader_equivalence_symbolic_answers_go_to_sympy():
    same = rerank.GraderSameAnswer(timeout_s=30.0, workers=1)
    assert rerank.answer_classes(["x^2+2x", "2x+x^2", "x^2"], same).tolist() == [0, 0, 1]
