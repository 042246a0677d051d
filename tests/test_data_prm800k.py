"""The PRM800K walk (reference §1.3/1.4) against expectations worked out by hand from prm800k_sample.jsonl.

Line 1 of the sample (phase 1, "Three pencils ...") as read from the file:
  step 0: 1 completion rated +1, chosen 0
  step 1: 5 completions all rated -1, no chosen; human completion "We have $3p+e=1.24$ and $5p+e=1.82$."
  steps 2-4: 1 completion each rated +1, chosen 0
  step 5: 5 completions rated 0, +1, +1, +1, +1 (the last two end in "# Answer\\n\\n29"), chosen 4
so the PRM gets 1 + 5 + 1 + 1 + 1 + 5 = 14 examples (labels: five 0, nine 1, the rating-0 step counts as 1)
and SFT gets the +1 ratings only: 1 + 3 + 4 = 8 examples, eos on the two answer steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from e2h.data.prm800k import iter_rated_steps, prm_examples, sft_examples, to_steps

DATA = Path(__file__).resolve().parent / "data"  # sources in tests/data/LICENSES.md
SAMPLE = DATA / "prm800k_sample.jsonl"
STEPWISE = DATA / "prm800k_phase1_test_stepwise_level1-3.jsonl"  # its rows 1-15 are the pencil problem too

P = ("Three pencils and a jumbo eraser cost $\\$1.24$. Five pencils and a jumbo eraser cost $\\$1.82$. "
     "No prices include tax. In cents, what is the cost of a pencil?")
S0 = "Let's call the price of a pencil p and the price of a jumbo eraser e. Then we can write two equations."
WRONG = ["The first equation is 3p + e = 124, and the second equation is 5p + e = 182.",
         "The first equation is 3p+e=124, and the second is 5p+e=182.",
         "The first equation is 3p + e = 124.",
         "The first equation is $3p+e=124$. The second equation is $5p+e=182$.",
         "The first equation is $3p+e=124$."]
H1 = "We have $3p+e=1.24$ and $5p+e=1.82$."
S2 = "To solve this system, let's subtract the first equation from the second equation. This will eliminate e."
S3 = "$5p+e-3p-e=1.82-1.24$."
S4 = "This simplifies to $2p=0.58$. So $p=0.29$."
PRE5 = [S0, H1, S2, S3, S4]
N = None
PENCIL_PRM = [
    ([S0], [1]),
    *[([S0, wrong], [N, 0]) for wrong in WRONG],
    ([S0, H1, S2], [N, N, 1]),
    ([S0, H1, S2, S3], [N, N, N, 1]),
    (PRE5, [N, N, N, N, 1]),
    (PRE5 + ["We could also solve this system by substitution."], [N] * 5 + [1]),  # rating 0 -> label 1
    (PRE5 + ["So a pencil costs $0.29."], [N] * 5 + [1]),
    (PRE5 + ["Right. One pencil costs $\\$0.29$."], [N] * 5 + [1]),
    (PRE5 + ["So the price of a pencil is 29 cents.", "# Answer\n\n29"], [N] * 5 + [1, 1]),
    (PRE5 + ["That means a pencil costs 29 cents.", "# Answer\n\n29"], [N] * 5 + [1, 1]),
]
Q = "# Question\n\n" + P + "\n\n# Solution\n\n"
Q5 = Q + "\n\n".join(PRE5) + "\n\n"
# A reasoning step's SFT target ends with its separator (the model learns to end a step), an answer step with EOS.
PENCIL_SFT = [
    (Q, S0 + "\n\n", False),
    (Q + S0 + "\n\n" + H1 + "\n\n", S2 + "\n\n", False),
    (Q + S0 + "\n\n" + H1 + "\n\n" + S2 + "\n\n", S3 + "\n\n", False),
    (Q + S0 + "\n\n" + H1 + "\n\n" + S2 + "\n\n" + S3 + "\n\n", S4 + "\n\n", False),
    (Q5, "So a pencil costs $0.29.\n\n", False),
    (Q5, "Right. One pencil costs $\\$0.29$.\n\n", False),
    (Q5, "So the price of a pencil is 29 cents.\n\n# Answer\n\n29", True),
    (Q5, "That means a pencil costs 29 cents.\n\n# Answer\n\n29", True),
]


def rated_on_line(line: int, source=SAMPLE):
    return [r for r in iter_rated_steps(str(source)) if r.line == line]


def test_pencil_record_gives_the_hand_checked_prm_examples():
    examples = prm_examples(rated_on_line(1))
    assert [(ex.steps, ex.labels) for ex in examples] == PENCIL_PRM
    assert {ex.problem for ex in examples} == {P}
    assert len({ex.id for ex in examples}) == len(examples)


def test_pencil_record_gives_the_hand_checked_sft_examples():
    examples = sft_examples(rated_on_line(1))
    assert [(ex.prompt, ex.completion, ex.eos) for ex in examples] == PENCIL_SFT


def test_duplicate_candidates_are_dropped_and_the_walk_stops_without_a_chosen_step():
    # line 6: steps 0 and 1 rated +1 (chosen); step 2 has the same -1 text twice and nothing chosen
    a0 = ("I notice that the problem involves both geometric and arithmetic sequences, so I should recall the "
          "definitions and formulas for them.")
    a1 = "A geometric sequence has a common ratio $r$ such that $a_{n+1} = r a_n$ for all $n$."
    a2 = "An arithmetic sequence has a common difference $d$ such that $a_{n+1} = a_n + d$ for all $n$."
    rated = rated_on_line(6)
    assert len(rated) == 4  # the walk yields both copies; dedupe happens when examples are built
    assert [(ex.steps, ex.labels) for ex in prm_examples(rated)] == [
        ([a0], [1]), ([a0, a1], [N, 1]), ([a0, a1, a2], [N, N, 0])]
    assert [ex.completion for ex in sft_examples(rated)] == [a0 + "\n\n", a1 + "\n\n"]


def test_phase2_record_counts():
    # line 4 (Senate committee): steps 0-5 one completion each rated 1,0,1,1,1,1 (chosen);
    # step 6: four completions rated -1,1,1,1, none chosen, no human completion -> walk ends there
    prm = prm_examples(rated_on_line(4))
    assert len(prm) == 10
    assert [ex.labels[-1] for ex in prm] == [1, 1, 1, 1, 1, 1, 0, 1, 1, 1]
    assert [len(ex.steps) for ex in prm] == [1, 2, 3, 4, 5, 6, 7, 7, 7, 7]
    sft = sft_examples(rated_on_line(4))
    assert len(sft) == 8 and not any(ex.eos for ex in sft)


def test_whole_sample_rating_counts_match_the_file():
    # every non-null rating of the file (counted here with plain json: 1 -> 106, -1 -> 88, 0 -> 61, null -> 7) is
    # reached by the walk
    raw = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    in_file = [c["rating"] for record in raw for step in record["label"]["steps"] for c in step["completions"] or []]
    assert (in_file.count(1), in_file.count(-1), in_file.count(0), in_file.count(None)) == (106, 88, 61, 7)
    ratings = [r.rating for r in iter_rated_steps(str(SAMPLE))]
    assert (ratings.count(1), ratings.count(-1), ratings.count(0)) == (106, 88, 61)


def test_stepwise_layout_gives_the_same_pencil_examples():
    # stepwise rows 1-15 are the pencil solution of line 1 of the sample; row 7 is the (unrated) human step
    rated = [r for r in iter_rated_steps(str(STEPWISE)) if r.line <= 15]
    assert [(ex.steps, ex.labels) for ex in prm_examples(rated)] == PENCIL_PRM


def test_stepwise_rating_counts_match_the_file():
    # one rated candidate a row (plain json: 1 -> 356, -1 -> 342, 0 -> 112, null -> 56); null rows are human
    # steps, skipped
    raw = [json.loads(line)["rating"] for line in STEPWISE.read_text().splitlines()]
    assert (raw.count(1), raw.count(-1), raw.count(0), raw.count(None)) == (356, 342, 112, 56)
    ratings = [r.rating for r in iter_rated_steps(str(STEPWISE))]
    assert (ratings.count(1), ratings.count(-1), ratings.count(0), len(ratings)) == (356, 342, 112, 810)


def _record(steps, problem="What is 2+2?"):
    return {"question": {"problem": problem}, "label": {"steps": steps, "finish_reason": "solution"}}


def _step(texts_ratings, chosen=None, human=None):
    return {"completions": None if texts_ratings is None else
            [{"text": t, "rating": r, "flagged": False} for t, r in texts_ratings],
            "human_completion": human, "chosen_completion": chosen}


def test_walk_rules_on_a_synthetic_record(tmp_path):
    record = _record([
        _step([("Two and two.", 1), ("Five.", -1)], chosen=0),
        _step([("", 1), ("never seen", 1)], human={"text": "Add them.", "rating": None}),  # empty -> step ends
        _step([("It is four.", None)]),  # unrated, but the only completion: it extends the prefix
        _step([("So 4.\n# Answer\n\n4", 0)], chosen=0),  # one-newline answer marker
        _step(None),  # completions null: the walk stops
        _step([("unreachable", 1)], chosen=0),
    ])
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(record) + "\n")
    got = [(ex.steps, ex.labels) for ex in prm_examples(iter_rated_steps(str(path)))]
    assert got == [
        (["Two and two."], [1]),
        (["Five."], [0]),  # a sibling of step 0: same (empty) prefix
        (["Two and two.", "Add them.", "It is four.", "So 4.", "# Answer\n\n4"], [N, N, N, 1, 1]),
    ]


@pytest.mark.parametrize("text, steps", [
    ("So 29.\n\n# Answer\n\n29", ["So 29.", "# Answer\n\n29"]),
    ("So 29.\n# Answer\n\n29", ["So 29.", "# Answer\n\n29"]),
    ("So 29.\n\n# Answer\n29", ["So 29.", "# Answer\n\n29"]),
    ("# Answer\n\n29", ["# Answer\n\n29"]),
    ("First part.\n\nSecond part.", ["First part.", "Second part."]),
    ("  plain step  ", ["plain step"]),
    ("", []),
])
def test_candidate_text_to_steps(text, steps):
    assert to_steps(text) == steps
