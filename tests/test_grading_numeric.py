"""The numeric convention (issue #20.5): `grading.numeric: exact | rel_tol`, the config key, the report."""

from __future__ import annotations

import pytest

from e2h.config import ConfigError, RunConfig, load_config
from e2h.grading import grade

CONVENTIONS = [
    # (pred, gold, correct under exact, correct under rel_tol 1e-9)
    ("0.0833333333333333", "\\frac{1}{12}", False, True),  # a rounded decimal: only within a tolerance
    ("0.08333", "\\frac{1}{12}", False, False),  # 4e-5 relative: outside 1e-9
    ("0.5", "\\frac{1}{2}", True, True),  # an exact decimal is exact under both
    ("0.577350269189626", "\\frac{\\sqrt{3}}{3}", False, True),
    ("3.14", "\\pi", False, False),
    ("1.5000000000001", "1.5", False, True),
    ("2", "2.0", True, True),
]


@pytest.mark.parametrize("pred,gold,exact,rel_tol", CONVENTIONS, ids=[c[0] for c in CONVENTIONS])
def test_numeric_conventions(pred, gold, exact, rel_tol):
    assert grade(pred, gold, numeric="exact").correct is exact
    assert grade(pred, gold, numeric="rel_tol", rel_tol=1e-9).correct is rel_tol


def test_default_is_exact():
    assert grade("0.0833333333333333", "\\frac{1}{12}").correct is False
    assert RunConfig().grading.numeric == "exact"


def test_tolerance_is_a_key():
    assert grade("0.08333", "\\frac{1}{12}", numeric="rel_tol", rel_tol=1e-3).correct is True
    cfg = load_config(None, ["grading.numeric=rel_tol", "grading.rel_tol=1e-3"])
    assert (cfg.grading.numeric, cfg.grading.rel_tol) == ("rel_tol", 1e-3)
    for bad in (["grading.numeric=rounding"], ["grading.rel_tol=0"]):
        with pytest.raises(ConfigError, match="grading"):
            load_config(None, bad)


def test_eval_report_prints_the_convention(tmp_path):
    from e2h.commands.eval_command import compute_metrics, grade_samples
    from e2h.records import Sample
    from e2h.report import write_report

    samples = [Sample(problem_id=f"p{p}", sample_index=k, prompt="q", completion=f"# Answer\n\n{answer}",
                      gold_answer="\\frac{1}{12}", level=1 + p % 5, subject="Algebra", step_scores=[0.5])
               for p in range(4) for k, answer in enumerate(["0.0833333333333333", "1/12", "7"])]
    cfg = load_config(None, ["eval.resamples=20"]).eval
    for numeric, correct in (("exact", 4), ("rel_tol", 8)):
        grades = grade_samples(samples, 5.0, 1, numeric=numeric, rel_tol=1e-9)
        assert sum(grades.correct) == correct  # the rounded decimal counts only under rel_tol
        metrics = compute_metrics(samples, grades, cfg)
        assert metrics["numeric_convention"].startswith(numeric)
        metrics["run_name"] = numeric
        write_report([metrics], [numeric], tmp_path / numeric)
        md = (tmp_path / numeric / "report.md").read_text(encoding="utf-8")
        assert f"numeric convention {numeric}" in md  # the summary line
        assert f"| numeric convention | {metrics['numeric_convention']}" in md  # the settings table
