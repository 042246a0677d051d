"""The two clipped PPO losses (reference §4.1 step 8), averaged over real response tokens.

    loss, stats = policy_loss(logprobs, old_logprobs, advantages, mask, clip=0.2)
    stats  # {"clipfrac": fraction of tokens where the clipped term won, "approx_kl": 0.5 * mean (dlogp)^2}

Policy: ``max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps))`` with ``ratio = exp(logp - logp_old)``.
Value: ``0.5 * max((V - R)^2, (clip(V, V_old - eps, V_old + eps) - R)^2)``; the recipe multiplies it by vf_coef.
"""

from __future__ import annotations

import torch

from policy.advantages import masked_mean


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                *, clip: float = 0.2) -> tuple[torch.Tensor, dict[str, float]]:
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {
            "clipfrac": float(masked_mean((clipped > unclipped).float(), mask)),
            "approx_kl": float(masked_mean(0.5 * (logprobs - old_logprobs) ** 2, mask)),
        }
    return loss, stats


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               *, clip: float = 0.2) -> tuple[torch.Tensor, dict[str, float]]:
    clipped_values = torch.clamp(values, old_values - clip, old_values + clip)
    unclipped_err = (values - returns) ** 2
    clipped_err = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped_err, clipped_err), mask)
    with torch.no_grad():
        stats = {
            "clipfrac": float(masked_mean((clipped_err > unclipped_err).float(), mask)),
            "error": float(masked_mean(unclipped_err, mask)),
        }
    return loss, stats
