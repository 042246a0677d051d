"""LoRA PRM training (prm.lora_rank > 0): adapters on the backbone + the full head, DeepSpeed ZeRO-2 in this
process (a world of one on a loopback port), adapters merged into the saved folder, adapter state resumed."""

from __future__ import annotations

import json

import pytest

from conftest import prm_step_examples

PROMPT = "# Question\n\nWhat is 2 + 3?\n\n# Solution\n\n"
COMPLETIONS = ["We add 2 and 3.\n\n2 + 3 = 5.\n\n# Answer\n\n5", "We add 2 and 3.\n\n2 + 3 = 25.\n\n# Answer\n\n25"]


def test_lora_trains_only_adapters_and_head_and_merges_exactly(tiny_prm_backbone):
    """The merged plain model computes exactly what the adapted model computes (B made non-zero first)."""
    import torch

    from prm.model import RewardModel

    model = RewardModel.from_backbone(tiny_prm_backbone)
    model.freeze_embeddings_and_norms()
    trainable = model.apply_lora(rank=4, alpha=8)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all(".lora_A." in n or ".lora_B." in n or n.startswith("net.score.") for n in names)
    projections = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert {n.split(".")[-4] for n in names if ".lora_" in n} == projections  # attention + MLP, 2 layers
    assert len(model.lora_scaling) == 2 * len(projections) and set(model.lora_scaling.values()) == {2.0}
    assert trainable == sum(p.numel() for n, p in model.named_parameters() if n in names)

    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".lora_B." in name or name.startswith("net.score."):
                param.normal_(0.0, 0.2)
    ids = torch.randint(3, 300, (2, 17))
    with torch.no_grad():
        adapted, _ = model(ids)
    from prm.model import merge_lora

    merged_state = merge_lora(model.state_dict(), model.lora_scaling)
    assert not any("lora_" in k or "base_layer" in k for k in merged_state)
    plain = RewardModel.from_backbone(tiny_prm_backbone)
    plain.load_state_dict(merged_state)  # strict: exactly the plain model's keys
    with torch.no_grad():
        merged, _ = plain(ids)
        base, _ = RewardModel.from_backbone(tiny_prm_backbone)(ids)
    assert (merged - adapted).abs().max() < 1e-5
    plain.net.score.load_state_dict(model.net.score.state_dict())
    assert (merged - plain(ids)[0]).abs().max() < 1e-5 and (base - adapted).abs().max() > 1e-3


def _cfg(tmp_path, data, backbone, name):
    from e2h.config import RunConfig

    return RunConfig.model_validate({
        "run": {"name": name, "out_dir": str(tmp_path / name), "seed": 0},
        "prm_backbone": {"path": backbone},
        "prm": {"data": str(data), "deepspeed_config": "configs/deepspeed/zero2.json", "lr": 2e-2,
                "warmup_ratio": 0.1, "epochs": 1, "micro_batch_size": 4, "global_batch_size": 8,
                "max_length": 96, "checkpoint_every": 3, "lora_rank": 4, "lora_alpha": 8},
    })


@pytest.mark.distributed
def test_prm_trains_with_lora_under_deepspeed_and_resumes(tmp_path, tiny_prm_backbone, world_of_one):
    import torch
    from safetensors.torch import load_file

    import training
    from e2h.records import save_records
    from prm.score import PRMScorer
    from prm.train import train_prm

    data = tmp_path / "prm.jsonl"
    save_records(data, prm_step_examples(64, seed=5))
    full = train_prm(_cfg(tmp_path, data, tiny_prm_backbone, "full"))
    interrupted = _cfg(tmp_path, data, tiny_prm_backbone, "resumed")
    train_prm(interrupted, max_steps=3)  # "killed" after step 3 (its checkpoint is step-3)
    # a short run still leaves its model where score and serve look (not only under checkpoints/step-3/hf)
    assert PRMScorer(tmp_path / "resumed" / "prm", device="cpu").score("What is 1 + 2?", ["3.\n\n# Answer\n\n3"])
    train_prm(interrupted, resume=True)

    full_log = [r for r in training.read_train_log(tmp_path / "full" / "prm") if "loss" in r]
    resumed_log = [r for r in training.read_train_log(tmp_path / "resumed" / "prm") if "loss" in r]
    assert [r["step"] for r in full_log] == list(range(1, 9)) == [r["step"] for r in resumed_log]
    assert full_log[0]["loss"] == pytest.approx(0.6931, abs=1e-3)  # zero head
    assert sum(r["loss"] for r in full_log[-3:]) / 3 < 0.8 * full_log[0]["loss"]
    for a, b in zip(full_log, resumed_log):  # the adapters and their optimizer state came back from step 3
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-5), (a, b)
    assert full["steps"] == 8

    # DeepSpeed checkpoints hold the trainable tensors only: adapters + head, no frozen backbone weight
    ckpt = tmp_path / "resumed" / "prm" / "checkpoints" / "step-00000003" / "mp_rank_00_model_states.pt"
    module = torch.load(ckpt, map_location="cpu", weights_only=False)["module"]
    assert module and all(".lora_" in k or k.startswith("net.score.") for k in module)

    # the final folder is a plain PRM: adapters merged into the projections, loadable by the scorer
    folder = tmp_path / "full" / "prm"
    weights, backbone = load_file(str(folder / "model.safetensors")), load_file(tiny_prm_backbone + "/model.safetensors")
    assert not any("lora_" in k or "base_layer" in k for k in weights)
    q = "model.layers.0.self_attn.q_proj.weight"
    assert (weights[q] - backbone[q]).abs().max() > 1e-4  # trained B @ A was merged in
    assert json.loads((folder / "prm_config.json").read_text())["lora"]["rank"] == 4
    scores = PRMScorer(folder).score(PROMPT, COMPLETIONS)
    from_checkpoint = PRMScorer(folder / "checkpoints" / "step-00000008" / "hf").score(PROMPT, COMPLETIONS)
    assert scores == from_checkpoint  # the end checkpoint's HF copy is the same merged model
    assert [len(s) for s in scores] == [3, 3]
    assert max(abs(s - 0.5) for s in scores[0] + scores[1]) > 1e-3  # the zero-head start scores 0.5 everywhere
