"""PPO's rollouts on Ray actors (policy/ray_rollouts.py): two actors, each with its own vLLM engine, must give
exactly what one local engine gives, before and after a weight push, since every prompt's samples depend only on
its seed. Three engine starts (one local, one per actor)."""

from __future__ import annotations

import pytest
import torch

from policy.generator import GenerationParams, request_seed

pytestmark = pytest.mark.distributed
ENGINE = {"max_model_len": 256, "seed": 0, "kv_cache_gib": 0.0625}
PROMPTS = [f"# Question\n\nWhat is {a} + {b}?\n\n# Solution\n\n" for a, b in [(3, 4), (10, 2), (8, 8), (1, 9), (6, 5)]]
PARAMS = GenerationParams(n=2, temperature=1.0, top_k=20, max_tokens=12)


def texts(outputs):
    return [[c.text for c in per_prompt] for per_prompt in outputs]


def test_two_actors_sample_what_one_engine_samples_and_follow_weight_pushes(tiny_policy):
    from transformers import AutoModelForCausalLM

    from policy.ray_rollouts import RayRolloutGenerator
    from policy.vllm_engine import VLLMGenerator

    seeds = [request_seed(3, prompt) for prompt in PROMPTS]
    local = VLLMGenerator(tiny_policy["path"], **ENGINE)
    # two actors on 2 cores: one logical CPU each (each engine binds its threads to the core vLLM leaves it)
    remote = RayRolloutGenerator(tiny_policy["path"], num_actors=2, engine_kwargs=ENGINE, cpus_per_actor=1)
    try:
        before = texts(local.generate(PROMPTS, PARAMS, seeds))
        assert texts(remote.generate(PROMPTS, PARAMS, seeds)) == before  # 5 prompts: chunks of 3 and 2
        assert remote.generate([], PARAMS, []) == []

        model = AutoModelForCausalLM.from_pretrained(tiny_policy["path"], dtype=torch.float32)
        torch.manual_seed(0)
        state = {name: tensor + 0.05 * torch.randn_like(tensor) for name, tensor in model.state_dict().items()}
        local.load_weights(state)
        remote.load_weights(state)  # through Ray's object store
        after = texts(local.generate(PROMPTS, PARAMS, seeds))
        assert after != before  # the push changed the policy
        assert texts(remote.generate(PROMPTS, PARAMS, seeds)) == after

        remote.load_weights(tiny_policy["path"])  # a folder every actor can read
        assert texts(remote.generate(PROMPTS, PARAMS, seeds)) == before
    finally:
        remote.close()
        local.close()


def test_rollout_actor_settings_and_validation():
    from e2h.config import load_config

    cfg = load_config(None, ["ppo.rollout_actors=2", "ppo.rollout_cpus_per_actor=0.5"])
    assert (cfg.ppo.rollout_actors, cfg.ppo.rollout_cpus_per_actor, cfg.ppo.rollout_gpus_per_actor) == (2, 0.5, 0.0)
    with pytest.raises(ValueError, match="num_actors must be >= 1"):
        from policy.ray_rollouts import RayRolloutGenerator

        RayRolloutGenerator("unused", num_actors=0)
