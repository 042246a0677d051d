"""Experiment tracking (issue #21 item 9): ``report_to: none | tensorboard | wandb`` for the trainers.

:func:`make_tracker` returns an object with ``log(metrics, step)`` and ``close()``. ``none`` does nothing;
``tensorboard`` (the default) writes scalars with torch's SummaryWriter into ``<log_dir>/tensorboard``; ``wandb``
imports wandb lazily and starts a run in ``<log_dir>/wandb`` (``$WANDB_DIR`` overrides ``<log_dir>``) with ``mode``
from ``$WANDB_MODE`` (``offline`` when unset and ``$WANDB_API_KEY`` is missing, so a machine without an account or
network never blocks on a login). Only rank 0 makes a tracker: training.TrainLogger builds one on the main
process only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

ReportTo = Literal["none", "tensorboard", "wandb"]
REPORT_TO = ("none", "tensorboard", "wandb")
WANDB_PROJECT_ENV = "WANDB_PROJECT"
DEFAULT_WANDB_PROJECT = "e2h"


class NullTracker:
    """``report_to: none``: logs nowhere."""

    def log(self, metrics: dict[str, float], step: int) -> None:
        pass

    def close(self) -> None:
        pass


class TensorBoardTracker:
    """Scalars into ``<log_dir>/tensorboard`` (one events file per run, appended on resume)."""

    def __init__(self, log_dir: str | os.PathLike):
        from torch.utils.tensorboard import SummaryWriter

        self.path = Path(log_dir) / "tensorboard"
        self.writer = SummaryWriter(str(self.path))

    def log(self, metrics: dict[str, float], step: int) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, float(value), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbTracker:
    """A wandb run in ``<log_dir>/wandb``; ``$WANDB_MODE`` (online / offline / disabled) is respected."""

    def __init__(self, log_dir: str | os.PathLike, run_name: str, config: dict | None):
        try:
            import wandb
        except ImportError as err:
            raise ImportError("report_to: wandb needs the wandb package: pip install wandb (the e2h[track] extra) "
                              "(or set report_to: tensorboard / none)") from err
        mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(mode=mode, dir=os.environ.get("WANDB_DIR") or str(log_dir), name=run_name,
                              project=os.environ.get(WANDB_PROJECT_ENV, DEFAULT_WANDB_PROJECT),
                              config=config or {})

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log({k: float(v) for k, v in metrics.items()}, step=step)

    def close(self) -> None:
        self.run.finish()


def make_tracker(kind: str, log_dir: str | os.PathLike, run_name: str = "e2h", config_dict: dict | None = None):
    """The tracker ``report_to`` names (``none``, ``tensorboard`` or ``wandb``); call on rank 0 only."""
    if kind == "none":
        return NullTracker()
    if kind == "tensorboard":
        return TensorBoardTracker(log_dir)
    if kind == "wandb":
        return WandbTracker(log_dir, run_name, config_dict)
    raise ValueError(f"report_to must be one of {', '.join(REPORT_TO)}, not {kind!r}")


def trl_report_to(kind: str) -> list[str]:
    """The same choice as TRL / transformers' ``report_to`` argument."""
    if kind not in REPORT_TO:
        raise ValueError(f"report_to must be one of {', '.join(REPORT_TO)}, not {kind!r}")
    return [] if kind == "none" else [kind]
