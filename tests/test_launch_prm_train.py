"""The launch path end to end: launch/run_local.sh starts torchrun with 2 CPU processes (gloo, 127.0.0.1), the
same `python -m e2h train-prm` the Slurm scripts start on each node, and DeepSpeed trains a few PRM steps."""

from __future__ import annotations

import glob
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "configs/demo.yaml"


def e2h(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "e2h", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"e2h {' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.slow
@pytest.mark.distributed
def test_two_process_prm_training_through_run_local(tmp_path):
    out = tmp_path / "run"
    overrides = [f"run.out_dir={out}", "world.train_per_level=12", "world.validation_per_level=2",
                 "world.test_per_level=2", "prm.epochs=1", "prm.micro_batch_size=2", "prm.global_batch_size=8",
                 "prm.max_length=256", "prm.output_dir=" + str(out / "prm")]
    e2h("world", "--config", CONFIG, *overrides)
    e2h("data", "prepare", "--config", CONFIG, *overrides)
    overrides.append(f"prm_backbone.path={out / 'models' / 'prm_init'}")  # the backbone the world stage built
    before = set(glob.glob("/dev/shm/deepspeed_allreduce_buffer_*"))
    try:
        proc = subprocess.run(["bash", "launch/run_local.sh", "--nproc", "2", "train-prm", CONFIG, *overrides],
                              cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=600)
    finally:
        for leftover in set(glob.glob("/dev/shm/deepspeed_allreduce_buffer_*")) - before:
            os.remove(leftover)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "+ torchrun --nnodes=1 --nproc_per_node=2 --master_addr=127.0.0.1" in proc.stdout
    from training import read_train_log

    losses = [row["loss"] for row in read_train_log(out / "prm") if "loss" in row]  # other rows: eval, markers
    assert len(losses) >= 2, "fewer than 2 logged optimizer steps"
    assert all(math.isfinite(loss) for loss in losses)
    assert (out / "prm" / "config.json").exists(), "no HF checkpoint saved"
