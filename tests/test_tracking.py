"""Experiment tracking (issue #21 item 9): ``report_to: none | tensorboard | wandb`` (training.tracking) for the PRM,
SFT/pretrain, PPO and GRPO trainers. The tracker as a unit (TensorBoard scalars read back, none writes nothing,
wandb offline or a clear error where wandb is missing), GRPO's TRL argument, and a real tiny PRM run."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from conftest import prm_step_examples
from training.tracking import make_tracker, trl_report_to



def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag of the TensorBoard event files under ``folder``: [(step, value), ...]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_tracker_writes_scalars_that_read_back(tmp_path):
    tracker = make_tracker("tensorboard", tmp_path, "unit", {"lr": 0.1})
    tracker.log({"loss": 2.0, "lr": 0.1}, step=1)
    tracker.log({"loss": 1.5, "lr": 0.05, "reward/total": 0.25}, step=2)
    tracker.close()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    got = scalars(tmp_path / "tensorboard")
    assert [s for s, _ in got["loss"]] == [1, 2]
    assert [v for _, v in got["loss"]] == pytest.approx([2.0, 1.5])
    assert [v for _, v in got["lr"]] == pytest.approx([0.1, 0.05])
    assert got["reward/total"] == [(2, pytest.approx(0.25))]


def test_none_tracker_writes_nothing(tmp_path):
    tracker = make_tracker("none", tmp_path / "out", "unit", {})
    tracker.log({"loss": 1.0}, step=1)
    tracker.close()
    assert not (tmp_path / "out").exists()


def test_unknown_kind_is_refused(tmp_path):
    with pytest.raises(ValueError, match="none, tensorboard, wandb"):
        make_tracker("mlflow", tmp_path, "unit", {})


def test_grpo_passes_report_to_through_to_trl():
    assert trl_report_to("tensorboard") == ["tensorboard"]
    assert trl_report_to("wandb") == ["wandb"]
    assert trl_report_to("none") == []


def test_report_to_is_a_key_of_every_trainer_section():
    from e2h.config import load_config

    cfg = load_config(None, ["prm.report_to=none", "sft.report_to=wandb", "ppo.report_to=none",
                             "grpo.report_to=none"])
    assert (cfg.prm.report_to, cfg.sft.report_to, cfg.ppo.report_to, cfg.grpo.report_to) == (
        "none", "wandb", "none", "none")
    assert cfg.pretrain.report_to == "tensorboard"  # the default everywhere


def test_report_to_does_not_change_what_decides_the_weights():
    import training
    from e2h.config import load_config

    a, b = load_config(None, []), load_config(None, ["prm.report_to=none", "ppo.report_to=wandb"])
    assert training.training_keys(a.prm) == training.training_keys(b.prm)
    assert training.training_keys(a.ppo) == training.training_keys(b.ppo)


def test_wandb_missing_is_a_clear_error(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed: `import wandb` raises ImportError
    with pytest.raises(ImportError, match="pip install wandb"):
        make_tracker("wandb", tmp_path, "unit", {})


def test_wandb_offline_run_holds_the_logged_history(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)

    def no_network(*args, **kwargs):
        raise OSError("network is off in this test")

    monkeypatch.setattr(socket, "create_connection", no_network)
    tracker = make_tracker("wandb", tmp_path / "out", "unit", {"lr": 0.1})
    tracker.log({"loss": 2.0, "lr": 0.1}, step=1)
    tracker.log({"loss": 1.5, "lr": 0.05}, step=2)
    tracker.close()
    runs = list(tmp_path.glob("wandb/offline-run-*"))
    assert len(runs) == 1
    (history,) = runs[0].glob("*.wandb")
    data = history.read_bytes()
    assert b"loss" in data and b"lr" in data


@pytest.mark.distributed
def test_a_tiny_prm_run_reports_to_tensorboard_or_nowhere(tmp_path, tiny_prm_backbone, world_of_one):
    import training
    from e2h.config import load_config
    from e2h.records import save_records
    from prm.train import train_prm

    data = tmp_path / "prm.jsonl"
    save_records(data, prm_step_examples(16, seed=5))

    def run(name: str, report_to: str) -> Path:
        values = {"run.out_dir": tmp_path / name, "run.seed": 0, "prm_backbone.path": tiny_prm_backbone,
                  "prm.data": data, "prm.deepspeed_config": "configs/deepspeed/zero2.json", "prm.lr": 1e-3,
                  "prm.epochs": 1, "prm.micro_batch_size": 4, "prm.global_batch_size": 8, "prm.max_length": 96,
                  "prm.report_to": report_to}
        train_prm(load_config(None, [f"{k}={v}" for k, v in values.items()]), max_steps=2)
        return tmp_path / name / "prm"

    out = run("tb", "tensorboard")
    got = scalars(out / "tensorboard")
    assert [s for s, _ in got["loss"]] == [1, 2] and [s for s, _ in got["lr"]] == [1, 2]

    out = run("none", "none")
    assert not (out / "tensorboard").exists()
    assert [r["step"] for r in training.read_train_log(out) if "loss" in r] == [1, 2]
