"""Reward whitening and generalised advantage estimation over padded response batches (reference §4.1 step 7).

Tensors are ``[batch, response_len]`` with a 0/1 ``mask`` marking real response tokens (right padding)::

    rewards = torch.tensor([[0.0, 0.5, 1.0]]); values = torch.tensor([[0.2, 0.1, 0.4]]); mask = torch.ones(1, 3)
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    ret      # tensor([[1.5, 1.5, 1.0]])     reward-to-go (gamma = lambda = 1)
    adv      # tensor([[1.3, 1.4, 0.6]])     reward-to-go minus value

The reference whitens the per-token rewards over the whole rollout batch but adds the mean back (so the sign of
the average reward survives), and fully whitens the advantages (mean 0, std 1). Statistics here are over real
tokens only (the reference also counts the padding positions).
"""

from __future__ import annotations

import torch


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1)


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, *, shift_mean: bool = True,
                  eps: float = 1e-8) -> torch.Tensor:
    """``(x - mean) / (std + eps)`` over the masked entries (population std); ``shift_mean=False`` adds the mean
    back. Padding positions come out as 0."""
    mean = masked_mean(values, mask)
    var = masked_mean((values - mean) ** 2, mask)
    whitened = (values - mean) / (var.sqrt() + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, *, gamma: float = 1.0,
        lam: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns) by GAE; the episode ends after the last real token (bootstrap value 0).

    delta_t = r_t + gamma * V_{t+1} - V_t;  A_t = delta_t + gamma * lam * A_{t+1};  returns = A + V.
    """
    rewards, values = rewards * mask, values * mask
    length = rewards.size(1)
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(length)):
        next_values = values[:, t + 1] if t + 1 < length else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_values - values[:, t]
        last = (delta + gamma * lam * last) * mask[:, t]
        advantages[:, t] = last
    return advantages, (advantages + values) * mask
