"""PPO step 7 (whitening, GAE) in both padding modes on hand-computed numbers, whitening across ranks with a
2-process gloo group on loopback, and the PPO LR schedule's length (ppo.total_epochs / total_steps / warmup)."""

from __future__ import annotations

import math

import pytest
import torch

from policy.advantages import advantages_and_returns, gae, masked_whiten

VALUES = torch.tensor([[1.0, 3.0], [2.0, 0.0]])
MASK = torch.tensor([[1.0, 1.0], [1.0, 0.0]])  # row 1's second position is padding


def test_whiten_masked_hand_computed():
    # real entries 1, 3, 2: mean 2, population var 2/3 -> std 0.81650; padding stays 0
    s = math.sqrt(2 / 3)
    assert torch.allclose(masked_whiten(VALUES, MASK), torch.tensor([[-1 / s, 1 / s], [0.0, 0.0]]), atol=1e-6)
    assert torch.allclose(masked_whiten(VALUES, MASK, shift_mean=False),
                          torch.tensor([[2 - 1 / s, 2 + 1 / s], [2.0, 0.0]]), atol=1e-6)


def test_whiten_reference_hand_computed():
    # all four positions 1, 3, 2, 0 count: mean 1.5, var (0.25 + 2.25 + 0.25 + 2.25) / 4 = 1.25; padding whitened
    s = math.sqrt(1.25)
    expected = torch.tensor([[-0.5 / s, 1.5 / s], [0.5 / s, -1.5 / s]])
    assert torch.allclose(masked_whiten(VALUES, MASK, padding="reference"), expected, atol=1e-6)
    assert torch.allclose(masked_whiten(VALUES, MASK, shift_mean=False, padding="reference"), expected + 1.5,
                          atol=1e-6)


REWARDS = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
CRITIC = torch.tensor([[0.5, 0.5], [0.5, 0.25]])


def test_gae_masked_hand_computed():
    adv, ret = gae(REWARDS, CRITIC, MASK, gamma=1.0, lam=1.0)
    # row 0: t1 delta 1 - 0.5 = 0.5; t0 delta 0 + 0.5 - 0.5 = 0 -> A 0.5. Row 1 ends at t0: 1 - 0.5 = 0.5
    assert torch.allclose(adv, torch.tensor([[0.5, 0.5], [0.5, 0.0]]))
    assert torch.allclose(ret, torch.tensor([[1.0, 1.0], [1.0, 0.0]]))


def test_gae_reference_runs_through_padding():
    adv, ret = gae(REWARDS, CRITIC, MASK, gamma=1.0, lam=0.5, padding="reference")
    # row 0: t1 delta 0.5 -> A 0.5; t0 delta 0 -> A 0 + 0.5 * 0.5 = 0.25
    # row 1 (padding at t1 counts): t1 delta 0 - 0.25 = -0.25; t0 delta 1 + 0.25 - 0.5 = 0.75 -> A 0.75 - 0.125
    assert torch.allclose(adv, torch.tensor([[0.25, 0.5], [0.625, -0.25]]))
    assert torch.allclose(ret, torch.tensor([[0.75, 1.0], [1.125, 0.0]]))
    masked, _ = gae(REWARDS, CRITIC, MASK, gamma=1.0, lam=0.5)
    assert torch.allclose(masked, torch.tensor([[0.25, 0.5], [0.5, 0.0]]))


def test_unknown_padding_mode_is_an_error():
    with pytest.raises(ValueError, match="padding"):
        masked_whiten(VALUES, MASK, padding="zeros")


def _random_batch(seed: int, rows: int, width: int):
    rng = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, width + 1, (rows,), generator=rng)
    mask = (torch.arange(width)[None, :] < lengths[:, None]).float()
    rewards = torch.randn(rows, width, generator=rng) * mask
    values = torch.randn(rows, width, generator=rng) * mask
    return rewards, values, mask


def _rank(rank: int, port: int, padding: str, queue) -> None:
    import torch.distributed as tdist

    from e2h.loopback import LOOPBACK

    tdist.init_process_group("gloo", init_method=f"tcp://{LOOPBACK}:{port}", rank=rank, world_size=2)
    try:
        rewards, values, mask = _random_batch(rank, 3 + rank, 6)  # ranks hold different row counts
        adv, ret = advantages_and_returns(rewards, values, mask, padding=padding)
        queue.put((rank, adv, ret, masked_whiten(rewards, mask, shift_mean=False, padding=padding)))
    finally:
        tdist.destroy_process_group()


@pytest.mark.parametrize("padding", ["masked", "reference"])
def test_whitening_across_two_ranks_equals_the_concatenated_batch(padding):
    import torch.multiprocessing as mp

    from e2h.loopback import free_port

    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    port = free_port()
    procs = [ctx.Process(target=_rank, args=(r, port, padding, queue)) for r in range(2)]
    for proc in procs:
        proc.start()
    results = {}
    for _ in procs:
        rank, adv, ret, white = queue.get()
        results[rank] = (adv, ret, white)
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    batches = [_random_batch(r, 3 + r, 6) for r in range(2)]
    rewards, values, mask = (torch.cat([b[i] for b in batches]) for i in range(3))
    adv, ret = advantages_and_returns(rewards, values, mask, padding=padding)
    white = masked_whiten(rewards, mask, shift_mean=False, padding=padding)
    got = [torch.cat([results[r][i] for r in range(2)]) for i in range(3)]
    for mine, whole in zip(got, (adv, ret, white)):
        assert torch.allclose(mine, whole, atol=1e-5)
    # per-rank statistics would differ: rank 0 alone whitens its rows otherwise
    alone = masked_whiten(batches[0][0], batches[0][2], shift_mean=False, padding=padding)
    assert not torch.allclose(alone, results[0][2], atol=1e-3)


# --- the PPO schedule's length ----------------------------------------------------------------------------------

def test_schedule_from_epochs_as_the_reference():
    from e2h.config import PPOSection
    from policy.ppo import ppo_schedule

    p = PPOSection()  # reference defaults: 50 epochs, 512 rollouts a step, warmup_ratio 0.01
    # floor(50 x 12,000 / 512) = floor(1171.9) = 1171 PPO steps; warmup ceil(11.71) = 12
    assert ppo_schedule(p, 12_000) == (1171, 12)
    assert ppo_schedule(p, 11_300) == (1103, 12)  # about 1,100 with the prompts the 384-token limit keeps
    assert ppo_schedule(p.model_copy(update={"total_steps": 500}), 12_000) == (500, 5)  # explicit override
    assert ppo_schedule(p.model_copy(update={"warmup_steps": 3}), 12_000) == (1171, 3)  # warmup_steps wins
    assert ppo_schedule(p.model_copy(update={"total_steps": 2, "warmup_steps": 5}), 12_000) == (2, 2)
    with pytest.raises(Exception, match="no PPO step"):
        ppo_schedule(p.model_copy(update={"total_epochs": 0.5}), 1000)
