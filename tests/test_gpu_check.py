"""bench/gpu_check.sh and bench/gpu_check.py: the GPU check cannot run here, so its CPU paths keep it from rotting.

The numbers on a CPU with a tiny model mean nothing; what is checked is that every stage runs (e2h's training
step, the plain loop, PRMScorer with and without prompt sharing) and that the JSON report has what the README
promises.
"""

from __future__ import annotations

import importlib.util
import json
import math
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_report(report: dict, engine: str) -> None:
    train = report["train"]
    assert train["e2h"]["engine"] == engine
    for run in (train["e2h"], train["plain"]):
        assert run["steps_timed"] >= 1 and run["useful_tokens"] > 0 and run["useful_tokens_per_s"] > 0
        assert run["padded_tokens"] >= run["useful_tokens"]
        assert math.isclose(run["first_loss"], math.log(2), abs_tol=1e-3)
    # the same global batches: both runs read exactly the same useful tokens
    assert train["e2h"]["useful_tokens"] == train["plain"]["useful_tokens"]
    assert train["ratio_e2h_over_plain"] > 0
    score = report["score"]
    assert score["no_sharing"]["solutions"] == score["share_prompt"]["solutions"] == 2 * 16
    assert score["steps_scored"] > 32
    assert score["max_abs_score_diff"] < 1e-4  # float32 on CPU: sharing the prompt's cache changes nothing
    assert report["model"]["params"] > 0


def test_no_gpu_means_a_message_and_exit_0():
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the script would run the full check")
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "no GPU present" in done.stdout


def test_tiny_cpu_run_writes_the_report(tmp_path, monkeypatch):
    monkeypatch.setenv("OUT", str(tmp_path))
    report = load_gpu_check().main(["--device", "cpu", "--tiny", "--engine", "torch"])
    written = json.loads((tmp_path / "gpu_check.json").read_text())
    assert written == json.loads(json.dumps(report))
    check_report(written, "torch")


@pytest.mark.slow
@pytest.mark.distributed
def test_tiny_cpu_run_on_deepspeed(tmp_path):
    """e2h's real engine (DeepSpeed ZeRO-2, a process group of one on loopback): in a subprocess, so the process
    group does not outlive the test. The first run JIT-builds a DeepSpeed op (about a minute)."""
    pytest.importorskip("deepspeed")
    import sys

    out = tmp_path / "report.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--device", "cpu", "--tiny",
                           "--engine", "deepspeed", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    check_report(json.loads(out.read_text()), "deepspeed")
