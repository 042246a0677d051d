"""MetaMathQA SFT and Math-Shepherd PRM loaders (e2h.data.extra) on small files in the real formats, and
`e2h data prepare` with data.sft_source metamath / data.prm_source math_shepherd."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from e2h.config import load_config
from e2h.data.extra import LevelIndex, metamath_sft_examples, metamath_steps, shepherd_step_examples
from e2h.data.math import load_math500, load_math_train
from e2h.data.prepare import output_paths, prepare
from e2h.data.splits import HeldOut
from e2h.jsonl import RecordError
from e2h.records import SFTExample, StepExample, load_records

DATA = Path(__file__).resolve().parent / "data"
TAG = "ки"


@pytest.fixture(scope="module")
def problems():
    train = [p for p in load_math_train(str(DATA / "math_train_sample.jsonl")) if p.level is not None]
    math500 = load_math500(str(DATA / "math500.jsonl"))
    held = HeldOut.of(math500)
    train = held.filter(train)
    # train-origin problems: prepare draws validation from the test-origin ones
    easy = next(p for p in train if p.level == 2 and p.source == "math12k:train")
    hard = next(p for p in train if p.level == 5 and p.source == "math12k:train")
    return train, held, easy, hard, math500[0]


def write_jsonl(path: Path, rows: list) -> str:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)) + "\n"
                            for row in rows), encoding="utf-8")
    return str(path)


def metamath_rows(easy, hard, test) -> list[dict]:
    return [
        {"query": "Rephrased: " + easy.problem, "type": "MATH_Rephrased", "original_question": easy.problem,
         "response": "We look at the cases.\nSince Mr. Smith said so, it is 2. Then we stop.\n\n"
                     "So $x = 2. Y$ holds.\nThe answer is: 2"},
        {"query": hard.problem, "type": "MATH_AnsAug", "original_question": hard.problem,
         "response": "Hard.\nThe answer is: 7"},
        {"query": test.problem, "type": "MATH_AnsAug", "original_question": test.problem,
         "response": "Held out.\nThe answer is: 1"},
        {"query": "Tom has 3 apples and buys 2. How many?", "type": "GSM_AnsAug",
         "original_question": "Tom has 3 apples and buys 2. How many?", "response": "3 + 2 = 5\nThe answer is: 5"},
    ]


def test_metamath_response_to_steps():
    assert metamath_steps("Add them.\n2+3=5.\nThe answer is: 5") == (["Add them.", "2+3=5."], "5")
    assert metamath_steps("No final line.") is None


def test_metamath_keeps_math_rows_of_the_train_levels(problems, tmp_path):
    train, held, easy, hard, test = problems
    source = write_jsonl(tmp_path / "metamath.jsonl", metamath_rows(easy, hard, test))
    counts = Counter()
    rows = metamath_sft_examples(source, LevelIndex(train, held, [1, 2, 3]), skipped=counts)
    assert counts == Counter(kept=1, other_level=1, held_out=1, gsm=1)
    (row,) = rows
    assert row.problem_id == easy.id and row.level == 2 and row.eos
    assert row.prompt == f"# Question\n\nRephrased: {easy.problem.strip()}\n\n# Solution\n\n"
    assert row.completion == ("We look at the cases.\n\nSince Mr. Smith said so, it is 2.\n\nThen we stop.\n\n"
                              "So $x = 2. Y$ holds.\n\n# Answer\n\n2")
    with_gsm = metamath_sft_examples(source, LevelIndex(train, held, [1, 2, 3]), include_gsm=True)
    assert [r.level for r in with_gsm] == [2, None]


def test_metamath_malformed_row_names_file_and_line(problems, tmp_path):
    train, held, easy, hard, test = problems
    rows = metamath_rows(easy, hard, test)
    del rows[2]["response"]
    source = write_jsonl(tmp_path / "metamath.jsonl", rows)
    with pytest.raises(RecordError, match=r"metamath\.jsonl:3: missing field 'response'"):
        metamath_sft_examples(source, LevelIndex(train, held, [1, 2, 3]))


def shepherd_row(question: str, steps: list[str], marks: str, task: str = "MATH") -> dict:
    body = "\n".join(f"Step {i + 1}: {s} {TAG}" for i, s in enumerate(steps))
    labelled = body
    for mark in marks:
        labelled = labelled.replace(TAG, mark, 1)
    return {"input": f"{question} {body}", "label": f"{question} {labelled}", "task": task}


def shepherd_rows(easy, hard, test) -> list[dict]:
    return [
        shepherd_row(easy.problem, ["Pi is about 3.14.", "So the second case applies.", "The answer is: 2"], "+-+"),
        shepherd_row(hard.problem, ["Hard.", "The answer is: 7"], "++"),
        shepherd_row(test.problem, ["Held.", "The answer is: 1"], "++"),
        shepherd_row("Tom has 3 apples and buys 2. How many?", ["3+2=5. The answer is: 5"], "+", task="GSM8K"),
    ]


def test_math_shepherd_tags_and_labels(problems, tmp_path):
    train, held, easy, hard, test = problems
    source = write_jsonl(tmp_path / "shepherd.jsonl", shepherd_rows(easy, hard, test))
    counts = Counter()
    rows = shepherd_step_examples(source, LevelIndex(train, held, [1, 2, 3]), counts)
    assert counts == Counter(kept=1, other_level=1, held_out=1, gsm8k=1)
    (row,) = rows
    assert row.problem == easy.problem.strip() and row.problem_id == easy.id and row.level == 2
    assert row.steps == ["Pi is about 3.14.", "So the second case applies.", "# Answer\n\n2"]
    assert row.labels == [1.0, 0.0, 1.0] and row.source == "math_shepherd"


def test_math_shepherd_prefix_match_finds_rephrasings(problems, tmp_path):
    train, held, easy, hard, test = problems
    rephrased = easy.problem[:60] + " (asked again in other words)"
    source = write_jsonl(tmp_path / "shepherd.jsonl", [shepherd_row(rephrased, ["The answer is: 2"], "+")])
    assert shepherd_step_examples(source, LevelIndex(train, held, [1, 2, 3])) == []
    (row,) = shepherd_step_examples(source, LevelIndex(train, held, [1, 2, 3], prefix=True))
    assert row.steps == ["# Answer\n\n2"] and row.labels == [1.0]


@pytest.mark.parametrize("broken, message", [
    (lambda row: {**row, "label": row["label"].replace(" +\nStep 2", " ?\nStep 2", 1)},
     r":2: field 'label': step 1 is marked '\?'"),
    (lambda row: {**row, "label": row["label"] + "x"}, r":2: field 'label' does not match field 'input'"),
    (lambda row: {k: v for k, v in row.items() if k != "input"}, r":2: missing field 'input'"),
])
def test_math_shepherd_malformed_row_names_file_and_line(problems, tmp_path, broken, message):
    train, held, easy, hard, test = problems
    rows = shepherd_rows(easy, hard, test)[:2]
    rows[1] = broken(rows[1])
    source = write_jsonl(tmp_path / "shepherd.jsonl", rows)
    with pytest.raises(RecordError, match=r"shepherd\.jsonl" + message):
        shepherd_step_examples(source, LevelIndex(train, held, [1, 2, 3]))


def test_prepare_with_metamath_and_math_shepherd(problems, tmp_path):
    train, held, easy, hard, test = problems
    metamath = write_jsonl(tmp_path / "metamath.jsonl", metamath_rows(easy, hard, test))
    shepherd = write_jsonl(tmp_path / "shepherd.jsonl", shepherd_rows(easy, hard, test))
    cfg = load_config(None, [f"run.out_dir={tmp_path / 'run'}", "data.source=math",
                             f"data.math_train={DATA / 'math_train_sample.jsonl'}",
                             f"data.math500={DATA / 'math500.jsonl'}",
                             "data.validation_size=20", f"data.prm800k=[{tmp_path / 'absent.jsonl'}]",
                             "data.sft_source=metamath", f"data.metamath={metamath}",
                             "data.prm_source=math_shepherd", f"data.math_shepherd={shepherd}"])
    summary = prepare(cfg)
    paths = output_paths(cfg)
    assert [r.problem_id for r in load_records(paths["sft_train"], SFTExample)] == [easy.id]
    assert [r.labels for r in load_records(paths["prm_train"], StepExample)] == [[1.0, 0.0, 1.0]]
    assert summary["metamath_rows"]["kept"] == 1 and summary["math_shepherd_rows"]["kept"] == 1
    assert "prm800k_rows" not in summary  # PRM800K was not read
