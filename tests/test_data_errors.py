"""Malformed input fails with the file, the line and the field named."""

from __future__ import annotations

import copy
import json

import pytest

from e2h.data.math import load_math500, load_math_train
from e2h.data.prm800k import iter_rated_steps
from e2h.data.processbench import load_processbench
from e2h.jsonl import RecordError

MATH_ROW = {"problem": "What is $1+1$?", "solution": "$\\boxed{2}$", "answer": "2", "subject": "Algebra",
            "level": 1, "level_raw": "Level 1", "unique_id": "train/algebra/1.json", "source_split": "train"}
PRM_ROW = {"question": {"problem": "What is $1+1$?"},
           "label": {"steps": [{"completions": [{"text": "It is 2.", "rating": 1, "flagged": False}],
                                "human_completion": None, "chosen_completion": 0}]}}
PB_ROW = {"id": "math-9", "generator": "g", "problem": "p", "steps": ["a", "b"], "final_answer_correct": True,
          "label": -1}


def changed(row, path, value):
    row = copy.deepcopy(row)
    node = row
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return row


def two_good(row):
    """Two valid rows (MATH rows need distinct ids)."""
    if "unique_id" in row:
        return [row, changed(row, ["unique_id"], "train/algebra/2.json")]
    return [row, row]


def write(tmp_path, good, bad_line):
    first, second = two_good(good)
    path = tmp_path / "rows.jsonl"
    text = json.dumps(first) + "\n\n" + json.dumps(second) + "\n" + (bad_line + "\n" if bad_line else "")
    path.write_text(text)
    return path  # the bad row is on line 4 (line 2 is blank)


CASES = [
    # loader, good row, bad row (or raw text), words the message must contain
    (load_math_train, MATH_ROW, "{not json", ["invalid JSON"]),
    (load_math_train, MATH_ROW, "[1, 2]", ["expected a JSON object"]),
    (load_math_train, MATH_ROW, changed(MATH_ROW, ["answer"], KeyError), ["'answer'", "missing"]),
    (load_math_train, MATH_ROW, changed(MATH_ROW, ["problem"], 3), ["'problem'", "string"]),
    (load_math_train, MATH_ROW, changed(MATH_ROW, ["level"], "Level 9"), ["'level'"]),
    (load_math_train, MATH_ROW, changed(MATH_ROW, ["level"], True), ["'level'"]),
    (load_math_train, MATH_ROW, changed(MATH_ROW, ["source_split"], "dev"), ["'source_split'"]),
    (load_math_train, MATH_ROW, MATH_ROW, ["'unique_id'", "repeats line 1"]),
    (load_math500, MATH_ROW, changed(MATH_ROW, ["subject"], None), ["'subject'"]),
    (iter_rated_steps, PRM_ROW, changed(PRM_ROW, ["question", "problem"], KeyError), ["'question.problem'"]),
    (iter_rated_steps, PRM_ROW, changed(PRM_ROW, ["label", "steps", 0, "completions", 0, "rating"], 2),
     ["'label.steps[0].completions[0].rating'"]),
    (iter_rated_steps, PRM_ROW, changed(PRM_ROW, ["label", "steps", 0, "completions", 0, "text"], None),
     ["'label.steps[0].completions[0].text'"]),
    (iter_rated_steps, PRM_ROW, changed(PRM_ROW, ["label", "steps", 0, "chosen_completion"], 3),
     ["'label.steps[0].chosen_completion'"]),
    (iter_rated_steps, PRM_ROW, changed(PRM_ROW, ["label"], KeyError), ["'label'"]),
    (iter_rated_steps, PRM_ROW, {"something": "else"}, ["'question'", "'instruction'"]),
    (load_processbench, PB_ROW, changed(PB_ROW, ["label"], 2), ["'label'"]),
    (load_processbench, PB_ROW, changed(PB_ROW, ["steps"], ["a", 7]), ["'steps[1]'"]),
    (load_processbench, PB_ROW, changed(PB_ROW, ["final_answer_correct"], "yes"), ["'final_answer_correct'"]),
]


@pytest.mark.parametrize("loader, good, bad, words", CASES, ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(CASES)])
def test_bad_row_names_file_line_and_field(tmp_path, loader, good, bad, words):
    path = write(tmp_path, good, bad if isinstance(bad, str) else json.dumps(bad))
    with pytest.raises(RecordError) as info:
        list(loader(str(path)))
    message = str(info.value)
    assert message.startswith(f"{path}:4: "), message
    assert info.value.line == 4
    for word in words:
        assert word in message, message


@pytest.mark.parametrize("loader, good", [(load_math_train, MATH_ROW), (load_math500, MATH_ROW),
                                          (iter_rated_steps, PRM_ROW), (load_processbench, PB_ROW)])
def test_the_good_rows_alone_load(tmp_path, loader, good):
    # so each error above comes from its bad line, not from the rows around it
    assert len(list(loader(str(write(tmp_path, good, ""))))) == 2


def test_bad_row_in_a_datasets_file_names_the_row(tmp_path):
    from datasets import Dataset

    path = tmp_path / "math.parquet"
    Dataset.from_list([MATH_ROW, changed(MATH_ROW, ["level"], 7)]).to_parquet(str(path))
    with pytest.raises(RecordError, match=r"math\.parquet:2: field 'level'"):
        load_math500(str(path))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="math.jsonl"):
        load_math500(str(tmp_path / "math.jsonl"))
