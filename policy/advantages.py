"""Reward whitening and generalised advantage estimation over padded response batches (reference §4.1 step 7).

Tensors are ``[batch, response_len]`` with a 0/1 ``mask`` marking real response tokens (right padding)::

    rewards = torch.tensor([[0.0, 0.5, 1.0]]); values = torch.tensor([[0.2, 0.1, 0.4]]); mask = torch.ones(1, 3)
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    ret      # tensor([[1.5, 1.5, 1.0]])     reward-to-go (gamma = lambda = 1)
    adv      # tensor([[1.3, 1.4, 0.6]])     reward-to-go minus value

The reference whitens the per-token rewards over the whole rollout batch but adds the mean back (so the sign of
the average reward survives), and fully whitens the advantages (mean 0, std 1). The statistics cover the whole
batch over all ranks: when torch.distributed is initialised, the sums (values, count, squared deviations) are
all-reduced, so each rank whitens with the statistics of the concatenated batch.

``padding`` (``ppo.whiten_padding``) chooses what the padding positions do:

- ``"masked"`` (default): statistics over real response tokens only; GAE ends at the last real token; padding
  comes out as 0.
- ``"reference"``: as the reference, every position of the padded ``[batch, response_len]`` tensor counts in the
  statistics and GAE runs through the padding (e2h's padded positions hold reward 0 and value 0 before
  whitening; each rank pads to its own longest response, so the number of padded positions depends on that).
"""

from __future__ import annotations

import torch


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1)


PADDING_MODES = ("masked", "reference")


def _sum_across_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """All-reduce (sum) a small float64 tensor when torch.distributed is initialised; identity otherwise."""
    import torch.distributed as tdist

    if not (tdist.is_available() and tdist.is_initialized()) or tdist.get_world_size() == 1:
        return tensor
    device = torch.device("cuda", torch.cuda.current_device()) if tdist.get_backend() == "nccl" else "cpu"
    reduced = tensor.to(device)
    tdist.all_reduce(reduced)
    return reduced.cpu()


def _weights(mask: torch.Tensor, padding: str) -> torch.Tensor:
    if padding not in PADDING_MODES:
        raise ValueError(f"padding must be one of {PADDING_MODES}, got {padding!r}")
    return mask if padding == "masked" else torch.ones_like(mask)


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, *, shift_mean: bool = True, eps: float = 1e-8,
                  padding: str = "masked", across_ranks: bool = True) -> torch.Tensor:
    """``(x - mean) / (std + eps)`` (population std); ``shift_mean=False`` adds the mean back.

    Statistics over the masked entries (``padding="masked"``, padding comes out as 0) or over every position
    (``"reference"``, padding is whitened too), summed over all ranks when ``across_ranks`` and torch.distributed
    is initialised (two all-reduces: sum and count, then squared deviations from the global mean).
    """
    weight = _weights(mask, padding).to(values.dtype)
    totals = torch.stack([(values * weight).sum(), weight.sum()]).double().cpu()
    if across_ranks:
        totals = _sum_across_ranks(totals)
    count = totals[1].clamp(min=1)
    mean = totals[0] / count
    squares = (((values.double() - mean.to(values.device)) ** 2) * weight.double()).sum().reshape(1).cpu()
    if across_ranks:
        squares = _sum_across_ranks(squares)
    var = squares[0] / count
    mean_t, std_t = mean.to(values.dtype).to(values.device), var.sqrt().to(values.dtype).to(values.device)
    whitened = (values - mean_t) / (std_t + eps)
    if not shift_mean:
        whitened = whitened + mean_t
    return whitened * mask if padding == "masked" else whitened


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, *, gamma: float = 1.0,
        lam: float = 1.0, padding: str = "masked") -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns) by GAE with bootstrap value 0 after the last position.

    delta_t = r_t + gamma * V_{t+1} - V_t;  A_t = delta_t + gamma * lam * A_{t+1};  returns = A + V.
    ``padding="masked"``: the episode ends after the last real token, padding comes out as 0; ``"reference"``:
    the recursion runs over every position of the padded tensor, padding included.
    """
    mask = _weights(mask, padding).to(rewards.dtype)
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


def advantages_and_returns(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, *,
                           whiten_rewards: bool = True, unwhitened_reward_scale: float = 50.0, gamma: float = 1.0,
                           lam: float = 1.0, padding: str = "masked") -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's step 7: whiten the rewards keeping their mean (or scale them), GAE, whiten the advantages; all
    statistics over the whole batch on every rank. Returns (advantages, returns)."""
    shaped = masked_whiten(rewards, mask, shift_mean=False, padding=padding) if whiten_rewards else \
        rewards * unwhitened_reward_scale
    advantages, returns = gae(shaped, values, mask, gamma=gamma, lam=lam, padding=padding)
    return masked_whiten(advantages, mask, shift_mean=True, padding=padding), returns
