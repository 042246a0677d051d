"""bench/verifier_by_step_kind.py: each step of a scored sample gets the kind the checker gives it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from e2h.records import Problem, Sample

BENCH = Path(__file__).resolve().parents[1] / "bench" / "verifier_by_step_kind.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("verifier_by_step_kind", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PROBLEM = Problem(id="hand/1", problem="Compute 4 + 8 + 3.", answer="15", level=1, subject="Arithmetic",
                  source="world", solution="4 + 8 = 12\n\n12 + 3 = 15\n\n# Answer\n\n15")


def sample(completion: str, scores: list[float]) -> Sample:
    return Sample(problem_id=PROBLEM.id, sample_index=0, prompt="", completion=completion, level=1,
                  step_scores=scores)


@pytest.mark.parametrize("completion, kinds", [
    ("4 + 8 = 12\n\n12 + 3 = 15\n\n# Answer\n\n15", ["correct", "correct", "correct"]),
    ("4 + 8 = 12\n\n12 + 4 = 16\n\n# Answer\n\n16", ["correct", "structural", "after_error"]),  # a used number
    ("4 + 8 = 13\n\n13 + 3 = 16\n\n# Answer\n\n16", ["arithmetic", "after_error", "after_error"]),
    ("we add\n\n12 + 3 = 15\n\n# Answer\n\n15", ["malformed", "after_error", "after_error"]),
    ("4 + 8 = 12\n\n12 + 3 = 15\n\n# Answer\n\n14", ["correct", "correct", "answer"]),
])
def test_each_step_gets_its_kind(bench, completion, kinds):
    scores = [0.9, 0.5, 0.1]
    assert bench.step_kinds(PROBLEM, sample(completion, scores)) == list(zip(scores, kinds))


def test_auc_against_the_correct_steps(bench):
    assert bench.auc_against([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert bench.auc_against([0.1, 0.2], [0.9, 0.8]) == 0.0
