"""The critic: a per-token scalar head on the reward model's backbone, initialised from the trained PRM (reference
§4.1: "the value model is initialised from the reward model").

    critic = load_value_model("runs/demo/prm")          # prm.model.RewardModel, trainable
    values, _ = critic(input_ids, attention_mask=mask)    # [B, L]: V after reading tokens[: t + 1]

It is the PRM's own class, so its checkpoints load with ``prm.model.load_reward_model`` too. The frozen PRM that
scores rollouts is a second, separate copy.
"""

from __future__ import annotations

import os


def load_value_model(prm_path: str | os.PathLike, freeze_embeddings_and_norms: bool = False):
    """A trainable copy of the PRM at ``prm_path`` (fp32; DeepSpeed casts it if bf16 is on)."""
    import torch

    from prm.model import load_reward_model  # local: imports torch

    model, _, _ = load_reward_model(prm_path, device="cpu", dtype=torch.float32)
    if model.lm_head is not None:  # a value is a function of h_t alone; the PRM's likelihood term stays with the PRM
        model.lm_head, model.likelihood_scale = None, None
        model.info["likelihood_feature"] = False
    for param in model.parameters():
        param.requires_grad_(True)
    if freeze_embeddings_and_norms:
        model.freeze_embeddings_and_norms()
    model.net.config.use_cache = False
    return model.train()
