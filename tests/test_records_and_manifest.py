import json

import pytest

from e2h.jsonl import RecordError, write_jsonl
from e2h.manifest import Manifest, model_identity
from e2h.records import Problem, Sample, StepExample, load_records, save_records


def test_records_round_trip(tmp_path):
    rows = [
        StepExample(id="a", problem_id="p", problem="q", steps=["s1", "# Answer\n\n1"], labels=[None, 1.0], level=2),
        StepExample(id="b", problem_id="p", problem="q", steps=["s1"], labels=[0.25]),
    ]
    path = tmp_path / "steps.jsonl"
    assert save_records(path, rows) == 2
    assert load_records(path, StepExample) == rows


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"problem": "q", "answer": "1"}', "field 'id'"),
        ('{"id": "x", "problem": "q", "answer": "1", "level": 9}', "field 'level'"),
        ('{"id": "x", "problem": "q", "answer": "1", "colour": "red"}', "field 'colour'"),
    ],
)
def test_malformed_lines_name_file_line_and_field(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    good = json.dumps({"id": "ok", "problem": "q", "answer": "1"})
    path.write_text(good + "\n\n" + line + "\n")
    with pytest.raises(RecordError) as err:
        load_records(path, Problem)
    assert str(err.value).startswith(f"{path}:3: ")
    assert message in str(err.value)


@pytest.mark.parametrize(
    "labels, message",
    [([1.0], "labels has 1 entries but steps has 2"), ([None, None], "no step carries a label"), ([0.5, 2.0], "outside")],
)
def test_step_example_validation(labels, message):
    with pytest.raises(ValueError, match=message):
        StepExample(id="a", problem_id="p", problem="q", steps=["s1", "s2"], labels=labels)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    path = tmp_path / "out.jsonl"

    def rows():
        yield {"a": 1}
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_jsonl(path, rows())
    assert list(tmp_path.iterdir()) == []


def test_manifest_detects_changed_or_missing_outputs(tmp_path):
    out = tmp_path / "shard.jsonl"
    save_records(out, [Sample(problem_id="p", sample_index=0, prompt="x", completion="y")])
    manifest = Manifest(tmp_path / "manifest.json")
    assert not manifest.is_done("shard-0")
    manifest.mark_done("shard-0", [out], rows_expected=1)
    reloaded = Manifest(tmp_path / "manifest.json")
    assert reloaded.is_done("shard-0")
    assert reloaded.entries["shard-0"]["outputs"][str(out)]["rows"] == 1
    out.write_text(out.read_text() + '{"extra": 1}\n')
    assert not reloaded.is_done("shard-0")  # a changed file no longer counts as done
    out.unlink()
    assert not reloaded.is_done("shard-0")
    with pytest.raises(FileNotFoundError):
        manifest.mark_done("shard-1", [tmp_path / "missing.jsonl"])


def test_model_identity_follows_the_weights_not_the_path(tmp_path):
    model = tmp_path / "prm"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"first")
    (model / "train_log.jsonl").write_text("{}\n")
    first = model_identity(model)
    assert model_identity(model) == first and str(model.resolve()) in first
    (model / "train_log.jsonl").write_text("{}\n{}\n")  # not part of the model
    assert model_identity(model) == first
    (model / "model.safetensors").write_bytes(b"second")  # retrained in place
    assert model_identity(model) != first
    assert model_identity("EleutherAI/llemma_7b") == "EleutherAI/llemma_7b"  # a hub id is its own identity
