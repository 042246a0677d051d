"""training/__init__.py pieces that need no process group: batch plan, schedule, data order, DeepSpeed config."""

from __future__ import annotations

import json

import pytest

import training
from e2h.config import TrainSection


@pytest.mark.parametrize("micro,global_,world,expected", [(4, 128, 8, (4, 4)), (4, 8, 1, (4, 2)), (4, 8, 2, (4, 1))])
def test_batch_plan(micro, global_, world, expected):
    assert training.batch_plan(TrainSection(micro_batch_size=micro, global_batch_size=global_), world) == expected


def test_batch_plan_rejects_indivisible_global_batch():
    with pytest.raises(ValueError, match="not a multiple"):
        training.batch_plan(TrainSection(micro_batch_size=3, global_batch_size=8), 2)


def test_schedule_warms_up_over_one_epoch_and_decays_to_min_ratio():
    cfg = TrainSection(lr=1.0, epochs=2, warmup_ratio=0.2, min_lr_ratio=0.01)
    sched = training.schedule(cfg, steps_per_epoch=10)
    assert (sched.total_steps, sched.warmup_steps) == (20, 2)  # warmup = 0.2 x ONE epoch (reference §2)
    lrs = [training.lr_multiplier(s, sched.total_steps, sched.warmup_steps, cfg.min_lr_ratio) for s in range(20)]
    assert lrs[0] == pytest.approx(0.5) and lrs[1] == pytest.approx(1.0) and lrs[2] == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(0.01)
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:]))  # monotone cosine decay after warmup


def test_epoch_order_is_seeded_per_epoch():
    a = training.epoch_order(50, epoch=0, seed=1)
    assert a == training.epoch_order(50, epoch=0, seed=1) and sorted(a) == list(range(50))
    assert a != training.epoch_order(50, epoch=1, seed=1) and a != training.epoch_order(50, epoch=0, seed=2)


def test_global_batch_resumes_in_the_same_order():
    steps = [training.global_batch(s, 40, steps_per_epoch=5, global_batch_size=8, seed=3) for s in range(10)]
    assert sorted(sum(steps[:5], [])) == list(range(40))  # one epoch covers every example once
    assert steps[7] == training.global_batch(7, 40, 5, 8, 3)


def test_micro_batches_are_the_same_for_one_and_two_processes():
    indices = list(range(8))
    lengths = [5, 9, 1, 7, 3, 8, 2, 6]
    one = list(training.micro_batches(indices, training.DistContext(0, 1, 0, "cpu"), 4, 2, lengths))
    two = [list(training.micro_batches(indices, training.DistContext(r, 2, r, "cpu"), 4, 1, lengths))[0]
           for r in range(2)]
    assert one == two
    assert one[0] == [1, 5, 3, 7]  # length-grouped: the longest four together


@pytest.mark.parametrize("name,stage", [("zero2.json", 2), ("zero3.json", 3)])
def test_deepspeed_json_autos_are_filled_from_the_typed_config(name, stage):
    cfg = TrainSection(deepspeed_config=f"configs/deepspeed/{name}", lr=3e-4, micro_batch_size=2,
                       global_batch_size=16, grad_clip=0.5, adam_betas=(0.9, 0.95))
    ds = training.build_deepspeed_config(cfg, world_size=2, device="cpu")
    assert "auto" not in json.dumps(ds)
    assert ds["zero_optimization"]["stage"] == stage
    assert (ds["train_batch_size"], ds["train_micro_batch_size_per_gpu"], ds["gradient_accumulation_steps"]) == (16, 2, 4)
    assert ds["optimizer"]["params"]["lr"] == 3e-4 and ds["optimizer"]["params"]["betas"] == [0.9, 0.95]
    assert ds["optimizer"]["params"]["torch_adam"] is True and ds["bf16"]["enabled"] is False  # CPU
    assert ds["gradient_clipping"] == 0.5
    gpu = training.build_deepspeed_config(cfg, world_size=2, device="cuda")
    assert gpu["bf16"]["enabled"] is True and gpu["optimizer"]["params"]["torch_adam"] is False


def test_unfilled_auto_is_an_error(tmp_path):
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({"train_batch_size": "auto", "zero_optimization": {"stage": "auto"}}))
    with pytest.raises(ValueError, match="zero_optimization.stage"):
        training.build_deepspeed_config(TrainSection(micro_batch_size=1, global_batch_size=1), 1, "cpu", str(path))
