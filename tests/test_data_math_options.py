"""The MATH source's two options for the public PRM800K sample (tests/data): the labelled MATH500 problems leave
the test set, and SFT can learn from MATH's reference solutions split into steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from e2h.config import ConfigError, load_config
from e2h.data.math import solution_steps
from e2h.data.prepare import prepare
from e2h.data.rows import normalize_problem_text
from e2h.records import Problem, SFTExample, StepExample, load_records
from e2h.text_format import split_solution

DATA = Path(__file__).resolve().parent / "data"
PRM800K = [DATA / "prm800k_sample.jsonl", DATA / "prm800k_phase1_test_stepwise_level1-3.jsonl"]


def _config(tmp_path, **data):
    overrides = [f"run.out_dir={tmp_path / 'run'}", "data.source=math",
                 f"data.math_train={DATA / 'math_train_sample.jsonl'}", f"data.math500={DATA / 'math500.jsonl'}",
                 f"data.prm800k=[{','.join(str(p) for p in PRM800K)}]", "data.validation_size=20"]
    return load_config(None, overrides + [f"data.{key}={value}" for key, value in data.items()])


def _labelled_texts() -> set[str]:
    """Problem texts of the two PRM800K files, read straight from their JSON (both layouts)."""
    texts = set()
    for path in PRM800K:
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            texts.add(normalize_problem_text(row["question"]["problem"] if "question" in row else row["instruction"]))
    return texts


def test_prm800k_labels_on_math500_problems_are_refused_with_the_way_out(tmp_path):
    with pytest.raises(ConfigError, match="0 prm_train rows.*held_out.*test_excludes_prm800k_problems"):
        prepare(_config(tmp_path))


def test_labelled_math500_problems_move_from_test_to_train(tmp_path):
    prepare(_config(tmp_path, test_excludes_prm800k_problems="true"))
    data = tmp_path / "run" / "data"
    prm = load_records(data / "prm_train.jsonl", StepExample)
    test = load_records(data / "prompts_test.jsonl", Problem)
    math500 = [json.loads(line) for line in (DATA / "math500.jsonl").read_text().splitlines()]
    labelled = _labelled_texts()
    trained = {normalize_problem_text(ex.problem) for ex in prm}
    assert trained and trained <= labelled and {ex.level for ex in prm} <= {1, 2, 3}
    assert not trained & {normalize_problem_text(p.problem) for p in test}
    assert len(test) == sum(normalize_problem_text(r["problem"]) not in labelled for r in math500)
    assert len(test) < 500


def test_sft_on_reference_solutions_of_the_train_levels(tmp_path):
    prepare(_config(tmp_path, test_excludes_prm800k_problems="true", sft_source="math_solutions"))
    data = tmp_path / "run" / "data"
    sft = load_records(data / "sft_train.jsonl", SFTExample)
    held = {normalize_problem_text(p.problem) for name in ("prompts_test", "prompts_validation")
            for p in load_records(data / f"{name}.jsonl", Problem)}
    rows = {json.loads(line)["unique_id"]: json.loads(line)  # train problems and the MATH500 ones moved to train
            for name in ("math_train_sample", "math500") for line in (DATA / f"{name}.jsonl").read_text().splitlines()}
    assert len(sft) > 300 and {ex.level for ex in sft} <= {1, 2, 3} and all(ex.eos for ex in sft)
    for example in sft:
        steps = split_solution(example.completion)
        assert len(steps) >= 2 and steps[-1] == "# Answer\n\n" + rows[example.problem_id]["answer"].strip()
        assert normalize_problem_text(example.prompt.split("\n\n")[1]) not in held


@pytest.mark.parametrize("solution, steps", [
    ("We have $x = 2$. Then $y = 3.$", ["We have $x = 2$.", "Then $y = 3.$"]),
    ("Since $a. B$ is odd, stop.", ["Since $a. B$ is odd, stop."]),  # no split inside inline math
    ("First line\nSecond line.", ["First line", "Second line."]),
    ("So\n$$x = 1.\ny = 2.$$\nDone.", ["So", "$$x = 1. y = 2.$$", "Done."]),  # display math: one step
    ("Then \\[\\frac{1}{2}. A\\] Hence $\\boxed{1}$.", ["Then", "\\[\\frac{1}{2}. A\\]", "Hence $\\boxed{1}$."]),
])
def test_solution_steps(solution, steps):
    assert solution_steps(solution) == steps
