"""DeepSpeed PRM training under torchrun on CPU (gloo, loopback): 1 process with an interruption + --resume,
2 processes ZeRO-2 and 2 processes ZeRO-3 must train the same model (same per-step losses, same weights)."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import prm_step_examples
from e2h.loopback import free_port

pytestmark = pytest.mark.distributed
ROOT = Path(__file__).resolve().parents[1]


def _torchrun(nproc: int, config: Path, *extra: str) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_addr",
           "127.0.0.1", "--master_port", str(free_port()), "-m", "prm.train", "-c", str(config), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    for path in glob.glob("/dev/shm/deepspeed_allreduce_buffer_*"):  # DeepSpeed's shm allreduce leak (66 MB a rank)
        try:
            os.unlink(path)
        except OSError:
            pass
    assert result.returncode == 0, result.stderr[-4000:]


def _config(tmp: Path, name: str, data: Path, backbone: str, ds_json: str) -> Path:
    cfg = {
        "run": {"name": name, "out_dir": str(tmp / name), "seed": 0},
        "prm_backbone": {"path": backbone},
        "prm": {"data": str(data), "deepspeed_config": ds_json, "lr": 1e-3, "warmup_ratio": 0.25, "epochs": 0.5,
                "micro_batch_size": 4, "global_batch_size": 8, "max_length": 96, "checkpoint_every": 2,
                "freeze_embeddings_and_norms": True},
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def _weights(folder: Path):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_prm_backbone):
    from e2h.records import save_records

    tmp = tmp_path_factory.mktemp("ds_runs")
    data = tmp / "prm.jsonl"
    save_records(data, prm_step_examples(64, seed=3))
    zero3 = json.loads((ROOT / "configs/deepspeed/zero3.json").read_text())
    zero3["zero_optimization"]["stage3_param_persistence_threshold"] = 0  # partition even the tiny tensors
    (tmp / "zero3.json").write_text(json.dumps(zero3))
    one = _config(tmp, "one", data, tiny_prm_backbone, str(ROOT / "configs/deepspeed/zero2.json"))
    _torchrun(1, one, "--max-steps", "2")  # "killed" after step 2 (its checkpoint is step-2)
    first_part = _log(tmp / "one" / "prm")
    _torchrun(1, one, "--resume")
    two_z2 = _config(tmp, "two_z2", data, tiny_prm_backbone, str(ROOT / "configs/deepspeed/zero2.json"))
    _torchrun(2, two_z2)
    two_z3 = _config(tmp, "two_z3", data, tiny_prm_backbone, str(tmp / "zero3.json"))
    _torchrun(2, two_z3)
    return {"first_part": first_part, "one": tmp / "one" / "prm", "z2": tmp / "two_z2" / "prm",
            "z3": tmp / "two_z3" / "prm"}


def test_resume_continues_the_step_count(runs):
    steps = [row["step"] for row in _log(runs["one"]) if "loss" in row]
    assert [row["step"] for row in runs["first_part"] if "loss" in row] == [1, 2]
    assert runs["first_part"][-1]["step"] == 2  # the final evaluation of the stopped run is logged at its step
    assert steps == [1, 2, 3, 4]  # the resumed run started at step 3, not 1
    assert (runs["one"] / "checkpoints" / "step-00000002").is_dir()
    assert (runs["one"] / "checkpoints" / "latest").read_text().strip() == "step-00000004"


@pytest.mark.parametrize("other", ["z2", "z3"])
def test_two_processes_train_like_one(runs, other):
    one = [row for row in _log(runs["one"]) if "loss" in row]
    two = [row for row in _log(runs[other]) if "loss" in row]
    assert [r["step"] for r in two] == [1, 2, 3, 4]
    for a, b in zip(one, two):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-5), (a, b)
        assert a["lr"] == pytest.approx(b["lr"])
    assert one[-1]["loss"] != pytest.approx(one[0]["loss"], abs=1e-4)  # the model did change
    w1, w2 = _weights(runs["one"]), _weights(runs[other])
    assert w1.keys() == w2.keys() and "score.weight" in w1
    for key in w1:
        assert (w1[key] - w2[key]).abs().max() < 1e-4, key
    assert w1["score.weight"].abs().max() > 0  # the zero-initialised head was trained


def test_saved_prm_loads_and_scores(runs):
    from prm.score import PRMScorer

    scorer = PRMScorer(runs["z3"])
    scores = scorer.score("# Question\n\nWhat is 2 + 3?\n\n# Solution\n\n", ["We add 2 and 3.\n\n2 + 3 = 5.\n\n# Answer\n\n5"])
    assert len(scores[0]) == 3 and all(0.0 < s < 1.0 for s in scores[0])
