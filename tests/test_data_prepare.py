"""`e2h data prepare` end to end on the MATH source: the right problems reach each set, none leaks."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

import e2h.commands.cli
from e2h.config import load_config
from e2h.data.math import load_math500, load_math_train
from e2h.data.rows import normalize_problem_text
from e2h.data.splits import split_validation
from e2h.manifest import Manifest
from e2h.records import Problem, SFTExample, StepExample, load_records

DATA = Path(__file__).resolve().parent / "data"
VALIDATION = 20  # the most the sample's 150 test-origin problems cover in MATH500's subject x level mix
ADDITIONAL = "What is the smallest positive integer such that the product of its digits is $2016$?"


def prm_record(problem: str, answer: str) -> dict:
    """Two steps: a +1 and a -1 candidate (the +1 chosen), then a +1 answer step -> 3 PRM, 2 SFT examples."""
    step = lambda completions: {"completions": [{"text": t, "rating": r, "flagged": False} for t, r in completions],
                                "human_completion": None, "chosen_completion": 0}
    return {"question": {"problem": problem}, "label": {"steps": [
        step([("We work it out.", 1), ("We guess.", -1)]), step([(f"So it is {answer}.\n\n# Answer\n\n{answer}", 1)])]}}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prepare")
    # the sample of the 12k split plus its real rows without a level or an answer (tests/data/LICENSES.md)
    math_train = tmp / "math_train.jsonl"
    math_train.write_text("".join((DATA / name).read_text() for name in ("math_train_sample.jsonl",
                                                                          "math_train_edge_rows.jsonl")))
    train = load_math_train(str(math_train))
    math500 = load_math500(str(DATA / "math500.jsonl"))
    _, validation = split_validation(train, math500, VALIDATION, seed=1234)  # which problems validation will hold
    easy = next(p for p in train if p.source == "math12k:train" and p.level == 2)
    hard = next(p for p in train if p.source == "math12k:train" and p.level == 5)
    picks = {"easy": easy.problem, "hard": hard.problem, "math500": math500[0].problem,
             "validation": validation[0].problem, "additional": ADDITIONAL,
             # MATH500 text with other whitespace must still be caught
             "math500_respaced": "  " + math500[1].problem.replace(" ", "  ") + "\n"}
    prm = tmp / "prm.jsonl"
    prm.write_text("".join(json.dumps(prm_record(text, str(i))) + "\n" for i, text in enumerate(picks.values())))
    config = tmp / "config.yaml"
    config.write_text(f"run:\n  out_dir: {tmp / 'run'}\ndata:\n  source: math\n  math_train: {math_train}\n"
                      f"  math500: {DATA / 'math500.jsonl'}\n  prm800k: [{prm}]\n  validation_size: {VALIDATION}\n")
    return tmp, config, easy, picks


def run_cli(monkeypatch, *argv) -> int:
    # only the data command: this test must not depend on other commands' modules being importable
    monkeypatch.setattr(e2h.commands.cli, "COMMANDS", [c for c in e2h.commands.cli.COMMANDS if c[0] == "data"])
    return e2h.commands.cli.main(["data", "prepare", *argv])


def test_prepare_end_to_end(setup, monkeypatch, capsys):
    tmp, config, easy, picks = setup
    assert run_cli(monkeypatch, "--config", str(config)) == 0
    out = capsys.readouterr().out
    assert "prm_train" in out and "step labels 0=1 1=3" in out  # 1 wrong step, 2 right steps + answer step (2 labels)
    data = tmp / "run" / "data"

    prm = load_records(data / "prm_train.jsonl", StepExample)
    sft = load_records(data / "sft_train.jsonl", SFTExample)
    assert {ex.problem for ex in prm} == {easy.problem} and len(prm) == 3
    assert {(ex.problem_id, ex.level) for ex in prm} == {(easy.id, 2)}
    assert [ex.completion for ex in sft] == ["We work it out.\n\n", "So it is 0.\n\n# Answer\n\n0"]
    assert [ex.eos for ex in sft] == [False, True]

    train = load_records(data / "prompts_train.jsonl", Problem)
    validation = load_records(data / "prompts_validation.jsonl", Problem)
    test = load_records(data / "prompts_test.jsonl", Problem)
    assert len(test) == 500 and len(validation) == VALIDATION
    # every leveled row of the training file is in train or validation (levels read with plain json)
    raw = [json.loads(line) for line in (tmp / "math_train.jsonl").read_text().splitlines()]
    leveled = Counter(r["level"] for r in raw if r["level"] is not None)
    assert leveled == {1: 180, 2: 180, 3: 180, 4: 70, 5: 70 + 2}  # LICENSES.md: the sample + 2 level-5 edge rows
    assert Counter(p.level for p in train) + Counter(p.level for p in validation) == leveled
    texts = lambda ps: {normalize_problem_text(p.problem) for p in ps}
    held = texts(validation) | texts(test)
    assert not texts(train) & held
    assert not texts(validation) & texts(test)
    assert not {normalize_problem_text(ex.problem) for ex in prm} & held
    assert None not in {p.level for p in train}  # the two level-less MATH problems are in no leveled set
    assert len(train) == len(raw) - VALIDATION - 2 == 680 + 4 - VALIDATION - 2

    summary = json.loads((data / "summary.json").read_text())
    assert summary["prm800k_rows"] == {"additional": 1, "held_out": 3, "kept": 1, "other_level": 1}
    manifest = Manifest(tmp / "run" / "manifest.json")
    assert manifest.is_done("data")
    assert load_config(data / "config.yaml").data.validation_size == VALIDATION


def test_prepare_skips_when_done_and_rebuilds_on_a_new_config(setup, monkeypatch, capsys):
    tmp, config, easy, picks = setup
    assert run_cli(monkeypatch, "--config", str(config)) == 0
    capsys.readouterr()
    assert run_cli(monkeypatch, "--config", str(config)) == 0
    assert "already prepared" in capsys.readouterr().out

    assert run_cli(monkeypatch, "--config", str(config), "data.include_additional_prm800k=true") == 0
    prm = load_records(tmp / "run" / "data" / "prm_train.jsonl", StepExample)
    assert {ex.problem for ex in prm} == {easy.problem, ADDITIONAL}
    assert {ex.level for ex in prm if ex.problem == ADDITIONAL} == {None}

    assert run_cli(monkeypatch, "--config", str(config), "data.train_levels=[4,5]", "data.prompt_levels=[4,5]") == 0
    prm = load_records(tmp / "run" / "data" / "prm_train.jsonl", StepExample)
    assert {ex.problem for ex in prm} == {picks["hard"]}
    assert {p.level for p in load_records(tmp / "run" / "data" / "prompts_train.jsonl", Problem)} == {4, 5}


def test_bad_levels_and_bad_rows_fail_with_exit_code_2(setup, monkeypatch, capsys, tmp_path):
    tmp, config, _, _ = setup
    assert run_cli(monkeypatch, "--config", str(config), "data.train_levels=[0,3]") == 2
    assert "data.train_levels" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": {"problem": 5}, "label": {"steps": []}}\n')
    assert run_cli(monkeypatch, "--config", str(config), f"data.prm800k=[{bad}]", "--force") == 2
    assert f"{bad}:1: field 'question.problem'" in capsys.readouterr().err
