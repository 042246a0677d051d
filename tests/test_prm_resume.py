"""Resume on resubmit (issue #21 item 1): a PRM run stopped by SIGTERM saves a checkpoint and exits 75; the same
command run again resumes at the saved step with the losses of an uninterrupted run; a changed config is refused
naming both config hashes; --fresh starts at step 0. Plus the resume decision and the stop flag as units."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import kill_process_group, prm_step_examples

ROOT = Path(__file__).resolve().parents[1]
DIST_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def overrides(tmp_path, data, backbone, name, **extra) -> list[str]:
    values = {"run.out_dir": tmp_path / name, "run.seed": 0, "prm_backbone.path": backbone, "prm.data": data,
              "prm.deepspeed_config": "configs/deepspeed/zero2.json", "prm.lr": 2e-2, "prm.warmup_ratio": 0.1,
              "prm.epochs": 3, "prm.micro_batch_size": 4, "prm.global_batch_size": 8, "prm.max_length": 96,
              "prm.checkpoint_every": 0, **extra}
    return [f"{k}={v}" for k, v in values.items()]


def losses(out: Path) -> dict[int, float]:
    import training

    return {r["step"]: r["loss"] for r in training.read_train_log(out) if "loss" in r}


@pytest.mark.distributed
def test_sigterm_saves_and_the_resubmit_resumes_with_identical_losses(tmp_path, tiny_prm_backbone, world_of_one):
    import training
    from e2h.config import load_config
    from e2h.records import save_records
    from prm.train import train_prm

    data = tmp_path / "prm.jsonl"
    save_records(data, prm_step_examples(64, seed=5))  # 8 steps an epoch, 24 in all
    full = train_prm(load_config(None, overrides(tmp_path, data, tiny_prm_backbone, "full")))
    assert full["steps"] == 24

    # the interrupted run: a subprocess (as Slurm runs it) sent SIGTERM once it has logged step 3
    args = overrides(tmp_path, data, tiny_prm_backbone, "cut")
    out = tmp_path / "cut" / "prm"
    env = {k: v for k, v in os.environ.items() if k not in DIST_ENV}
    with open(tmp_path / "cut.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "prm.train", *args], cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            deadline = time.time() + 300
            while time.time() < deadline and proc.poll() is None and max(losses(out), default=0) < 3:
                time.sleep(0.05)
            assert proc.poll() is None, (tmp_path / "cut.log").read_text()[-3000:]
            os.kill(proc.pid, signal.SIGTERM)
            code = proc.wait(timeout=300)
        finally:
            kill_process_group(proc)
    text = (tmp_path / "cut.log").read_text()
    assert code == training.EXIT_STOPPED, text[-3000:]
    assert "SIGTERM received" in text and "stopped by SIGTERM after step" in text
    logged = sorted(losses(out))
    saved = int((out / "checkpoints" / "latest").read_text().strip().removeprefix("step-"))
    assert logged == list(range(1, saved + 1)) and 3 <= saved < 24  # the checkpoint is the last logged step
    meta = json.loads((out / "checkpoints" / f"step-{saved:08d}" / "e2h_checkpoint.json").read_text())
    assert meta["step"] == saved and len(meta["config_hash"]) == 16
    assert not (out / "model.safetensors").exists()  # no final model: the run did not finish

    # the resubmit: the same command, no flag
    summary = train_prm(load_config(None, args))
    assert summary["steps"] == 24
    resumed, reference = losses(out), losses(tmp_path / "full" / "prm")
    assert sorted(resumed) == list(range(1, 25)) == sorted(reference)
    for step in range(saved + 1, 25):
        assert resumed[step] == pytest.approx(reference[step], rel=1e-4, abs=1e-6), step
    assert (out / "model.safetensors").exists()

    # another config in the same directory: refused, both hashes named, --fresh suggested
    changed = load_config(None, overrides(tmp_path, data, tiny_prm_backbone, "cut", **{"prm.lr": 1e-2}))
    with pytest.raises(training.CheckpointMismatch) as err:
        train_prm(changed)
    assert meta["config_hash"] in str(err.value) and "--fresh" in str(err.value)
    from prm.train import prm_config_hash

    assert prm_config_hash(changed, data, tiny_prm_backbone) in str(err.value)
    # settings that do not change the weights may change on a resubmit
    relaxed = load_config(None, overrides(tmp_path, data, tiny_prm_backbone, "cut", **{"prm.checkpoint_every": 5}))
    assert prm_config_hash(relaxed, data, tiny_prm_backbone) == meta["config_hash"]

    # --fresh: the old checkpoints go, training starts at step 0
    train_prm(changed, fresh=True, max_steps=2)
    assert sorted(losses(out)) == [1, 2]
    assert sorted(p.name for p in (out / "checkpoints").glob("step-*")) == ["step-00000002"]


# --- the decision and the flag, without training ----------------------------------------------------------------


def fake_checkpoint(out: Path, step: int, key: str | None) -> None:
    root = out / "checkpoints"
    (root / f"step-{step:08d}").mkdir(parents=True)
    if key is not None:
        (root / f"step-{step:08d}" / "e2h_checkpoint.json").write_text(json.dumps({"config_hash": key,
                                                                                    "step": step}))
    (root / "latest").write_text(f"step-{step:08d}")


def test_resume_plan(tmp_path):
    import training

    assert training.resume_plan(tmp_path, "aaaa") == "fresh"  # nothing there
    with pytest.raises(FileNotFoundError, match="--resume"):
        training.resume_plan(tmp_path, "aaaa", require=True)
    fake_checkpoint(tmp_path, 4, "aaaa")
    assert training.resume_plan(tmp_path, "aaaa") == "resume"
    assert training.resume_plan(tmp_path, "aaaa", require=True) == "resume"
    assert training.resume_plan(tmp_path, "bbbb", fresh=True) == "fresh"
    with pytest.raises(training.CheckpointMismatch, match=r"aaaa.*bbbb.*--fresh"):
        training.resume_plan(tmp_path, "bbbb")
    with pytest.raises(ValueError):
        training.resume_plan(tmp_path, "aaaa", fresh=True, require=True)
    legacy = tmp_path / "legacy"
    fake_checkpoint(legacy, 2, None)
    with pytest.raises(training.CheckpointMismatch, match="unknown"):
        training.resume_plan(legacy, "aaaa")


def test_config_hash_ignores_paths_and_cadence_only():
    import training
    from e2h.config import PRMSection

    base = training.config_hash({"prm": training.training_keys(PRMSection())})
    same = PRMSection(output_dir="/elsewhere", data="/x.jsonl", checkpoint_every=7, eval_every=3)
    assert training.config_hash({"prm": training.training_keys(same)}) == base
    for changed in (PRMSection(lr=1e-3), PRMSection(epochs=1.0), PRMSection(global_batch_size=64)):
        assert training.config_hash({"prm": training.training_keys(changed)}) != base


def test_graceful_stop_flags_signals_and_the_stop_file(tmp_path, monkeypatch):
    import training

    monkeypatch.delenv(training.STOP_FILE_ENV, raising=False)
    before = signal.getsignal(signal.SIGUSR1)
    with training.GracefulStop() as stop:
        assert not stop.requested()
        os.kill(os.getpid(), signal.SIGUSR1)
        assert stop.requested() and stop.reason == "SIGUSR1"
    assert signal.getsignal(signal.SIGUSR1) is before  # handlers restored
    stop_file = tmp_path / "stop"
    monkeypatch.setenv(training.STOP_FILE_ENV, str(stop_file))
    with training.GracefulStop() as stop:
        assert not stop.requested()
        stop_file.touch()
        assert stop.requested() and "stop file" in stop.reason


@pytest.mark.parametrize("script", ["slurm_train_prm.sbatch", "slurm_ppo.sbatch"])
def test_sbatch_relays_usr1_to_the_trainers_and_requeues(tmp_path, script):
    """A fake srun stands in for the trainers: it waits for $E2H_STOP_FILE (what every rank polls), exits 75; USR1
    to the batch shell (Slurm's --signal=B:USR1@120) must create the file, then `scontrol requeue` the job."""
    from test_launch import slurm_env

    header = (ROOT / "launch" / script).read_text()
    assert "#SBATCH --requeue" in header and "#SBATCH --signal=B:USR1@120" in header
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "srun").write_text('#!/bin/bash\necho "$E2H_STOP_FILE" > "$RECORD.stopfile"\n'
                                   'for i in $(seq 600); do [ -e "$E2H_STOP_FILE" ] && exit 75; sleep 0.1; done\n'
                                   'exit 1\n')
    (fake_bin / "scontrol").write_text('#!/bin/sh\n[ "$1" = show ] && { printf "gpu01\\ngpu02\\n"; exit 0; }\n'
                                       'echo "$@" > "$RECORD.scontrol"\n')
    for tool in ("srun", "scontrol"):
        (fake_bin / tool).chmod(0o755)
    record = tmp_path / "record"
    env = slurm_env(tmp_path, PATH=f"{fake_bin}:{os.environ['PATH']}", RECORD=str(record))
    (tmp_path / "launch").mkdir()
    (tmp_path / "launch" / "stop").touch()  # left by the previous run of this (requeued) job: removed at start
    proc = subprocess.Popen(["bash", str(ROOT / "launch" / script), "--no-doctor", "configs/demo.yaml"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 30
    while time.time() < deadline and not Path(f"{record}.stopfile").exists():
        time.sleep(0.05)
    if not Path(f"{record}.stopfile").exists():
        proc.kill()
        pytest.fail(proc.communicate()[0])
    assert Path(f"{record}.stopfile").read_text().strip() == str(tmp_path / "launch" / "stop")
    assert proc.poll() is None  # the stale stop file was removed: the trainer is still running
    proc.send_signal(signal.SIGUSR1)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 75, out
    assert Path(f"{record}.scontrol").read_text().split() == ["requeue", "4242"], out
