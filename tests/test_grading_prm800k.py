"""grading.mode (issue #19 item 7): prm800k_strict is PRM800K's grader with its SymPy check off, as the reference
grades. Expected verdicts follow PRM800K's rules (math_normalize.py + grader.py), not a run of the code."""

import json
import subprocess
import sys

import pytest

from e2h.config import ConfigError, load_config
from e2h.grading import grade, grade_many

# e2h calls these equal (values compared); PRM800K without SymPy does not (strings differ after both normalisations)
DISAGREE = [
    ("0.25", "\\frac{1}{4}"),     # only "0.5" itself becomes \frac{1}{2}; a decimal vs a fraction goes to SymPy
    ("\\sqrt{4}", "2"),           # "sqrt(4)" vs "2": an integer gold is never matched by value
    ("2x", "x*2"),                # same value, other string: SymPy's job
    ("\\frac{2}{4}", "\\frac{1}{2}"),  # two fractions must be the same string (unreduced is wrong)
    ("2^{10}", "1024"),           # exponents are never evaluated
]

# both accept: the normalisations make the strings equal
BOTH = [
    ("\\dfrac{1}{2}", "\\frac12"),  # dfrac -> frac, \frac12 -> \frac{1}{2}
    ("0.5", "\\frac{1}{2}"),        # mathd maps "0.5" to \frac{1}{2}
    ("10\\%", "10"),                # "\%" dropped
    ("x = 3", "3"),                 # a left-hand side of at most 2 characters is dropped
    ("\\$5", "5"),                  # "\$" dropped
    ("5 \\text{ cm}", "5"),         # units after "\text{ " dropped
    ("1,000", "1000"),              # thousands commas (PRM800K's normalisation)
    ("\\left( 1, \\frac{1}{2} \\right)", "(1,1/2)"),  # \left/\right, LaTeX to text, spaces
    ("\\text{(B)}", "(B)"),         # enclosing \text{}
    ("(1/2)", "1/2"),               # one-element "tuple" of an equal fraction
]

# PRM800K's own rules, strict verdicts only
STRICT_ONLY = [
    ("5 meters", "5", True),        # unit words are deleted anywhere
    ("1.0e3", "1000", True),        # an integral float becomes an integer string (e2h reads "e" as Euler's e)
    ("[1,2]", "(1,2)", False),      # interval brackets must agree
    ("(1/2,3/4)", "(1/2,3/4)", True),
    ("(1,2)", "(1,3)", False),
    ("\\pi", "pi", True),           # \pi -> pi
    ("\\frac{\\sqrt{3}}{2}", "\\frac{\\sqrt3}{2}", True),  # mathd: \sqrt3 -> \sqrt{3}
    ("Yes", "yes", True),           # lower case
    ("-3, 2", "2, -3", False),      # order matters
]


@pytest.mark.parametrize("pred, gold", DISAGREE)
def test_the_modes_disagree(pred, gold):
    assert grade(pred, gold).correct
    verdict = grade(pred, gold, mode="prm800k_strict")
    assert not verdict.correct and verdict.reason == "prm800k_mismatch"


@pytest.mark.parametrize("pred, gold", BOTH)
def test_both_modes_accept(pred, gold):
    assert grade(pred, gold).correct
    verdict = grade(pred, gold, mode="prm800k_strict")
    assert verdict.correct and verdict.reason.startswith("prm800k_")


@pytest.mark.parametrize("pred, gold, correct", STRICT_ONLY)
def test_prm800k_rules(pred, gold, correct):
    assert grade(pred, gold, mode="prm800k_strict").correct is correct


def test_strict_mode_extracts_like_e2h_and_never_evaluates():
    solution = "We add.\n\n# Answer\n\n\\frac{3}{4}"
    assert grade(solution, "3/4", mode="prm800k_strict").correct
    assert grade("so it is $\\boxed{0.5}$.", "\\frac12", mode="prm800k_strict").correct
    assert grade(None, "1", mode="prm800k_strict").reason == "no_answer"
    # hostile text is only rewritten as a string: no eval, no SymPy, and a verdict at once
    for hostile in ["__import__('os').system('true')", "9" * 900 + "**" + "9" * 90, "{" * 5000 + "1" + "}" * 5000]:
        assert not grade(hostile, "1", mode="prm800k_strict").correct
    verdicts = grade_many([("1", "1"), ("2", "1")], mode="prm800k_strict")
    assert [v.correct for v in verdicts] == [True, False]


def test_unknown_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown grading mode 'sympy'.*e2h, prm800k_strict"):
        grade("1", "1", mode="sympy")
    with pytest.raises(ConfigError, match="grading.mode"):
        load_config(None, ["grading.mode=sympy"])
    cfg = load_config(None, ["grading.mode=prm800k_strict"])
    assert cfg.grading.options() == {"mode": "prm800k_strict", "numeric": "exact", "rel_tol": 1e-9}


def test_mode_reaches_eval_grades_and_grouping(tmp_path):
    from e2h.commands.eval_command import grade_samples, grouping_comparer
    from e2h.records import Sample

    rows = [{"problem_id": "p", "sample_index": i, "prompt": "q", "level": 1, "gold_answer": "\\frac{1}{4}",
             "completion": f"Done.\n\n# Answer\n\n{a}"} for i, a in enumerate(["0.25", "\\frac14"])]
    samples = [Sample.model_validate(r) for r in rows]

    class Cfg:
        grader_timeout_s, grader_workers = 5.0, 1

    e2h = grade_samples(samples, 5.0, 1, tmp_path / "cache.json")
    strict = grade_samples(samples, 5.0, 1, tmp_path / "cache.json", mode="prm800k_strict")
    assert e2h.correct == [True, True] and strict.correct == [False, True]  # the cache is not shared
    assert json.loads((tmp_path / "cache.json").read_text())["grader_version"].endswith("mode=prm800k_strict")
    same = grouping_comparer(Cfg, strict)
    assert same.mode == "prm800k_strict" and same([("0.25", "\\frac{1}{4}")]) == [False]


def test_mode_reaches_the_ppo_reward_and_the_cli(tmp_path):
    from policy.process_reward import grade_predictions

    assert grade_predictions(["0.25", None], ["1/4", "1"], 5.0) == [True, False]
    assert grade_predictions(["0.25", None], ["1/4", "1"], 5.0, {"mode": "prm800k_strict"}) == [False, False]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(json.dumps({"gold": "1/4", "pred": "0.25"}) + "\n")
    subprocess.run([sys.executable, "-m", "e2h", "grade", "-i", str(src), "-o", str(out), "--mode",
                    "prm800k_strict"], check=True, capture_output=True)
    row = json.loads(out.read_text())
    assert row["correct"] is False and row["grader_version"].endswith("mode=prm800k_strict")
