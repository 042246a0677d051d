"""PPO's rollouts across nodes: the Generator interface over Ray actors, each holding one generation engine.

    gen = RayRolloutGenerator("runs/demo/sft", num_actors=4, engine_kwargs={"max_model_len": 1536, "seed": 0},
                              gpus_per_actor=1)
    gen.generate(prompts, params, seeds)   # prompts split into one contiguous chunk per actor, run concurrently
    gen.load_weights(state_dict)           # one copy in Ray's object store; every actor reloads from it

The split does not change the samples: a prompt's completions depend only on the model, the params and that
prompt's seed (policy/generator.py), so N actors give what one engine gives (tests/test_ray_rollouts.py). A
folder passed to ``load_weights`` must be on a filesystem every node sees; a state dict travels through Ray.
Ray: the cluster at ``RAY_ADDRESS`` (``launch/`` starts it), otherwise a local Ray on 127.0.0.1.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from e2h.ray_cluster import import_ray
from policy.generator import Completion, GenerationParams, build_generator
from policy.sample_actors import RAY_NEED, connect_ray, stop_actors


class RolloutWorker:
    """The body of one Ray actor: one engine (vLLM, or transformers.generate with ``backend="hf"``)."""

    def __init__(self, backend: str, model: str, engine_kwargs: dict[str, Any]):
        self.generator = build_generator(backend, model, **engine_kwargs)

    def ready(self) -> bool:
        return True

    def generate(self, prompts: list[str], params: GenerationParams, seeds: list[int]) -> list[list[Completion]]:
        return self.generator.generate(prompts, params, seeds)

    def load_weights(self, source) -> None:
        self.generator.load_weights(source)

    def close(self) -> None:
        self.generator.close()


class RayRolloutGenerator:
    """A :class:`policy.generator.Generator` whose work runs on ``num_actors`` Ray actors (module docstring)."""

    def __init__(self, model: str | os.PathLike, *, num_actors: int, backend: str = "vllm",
                 engine_kwargs: dict[str, Any] | None = None, cpus_per_actor: float = 1.0,
                 gpus_per_actor: float = 0.0):
        if num_actors < 1:
            raise ValueError(f"num_actors must be >= 1, got {num_actors}")
        self.ray = import_ray(RAY_NEED)
        self.model_name = str(model)
        self._started_ray = connect_ray(num_actors * cpus_per_actor)
        actor_cls = self.ray.remote(RolloutWorker).options(num_cpus=cpus_per_actor, num_gpus=gpus_per_actor)
        self.actors = [actor_cls.remote(backend, str(model), dict(engine_kwargs or {})) for _ in range(num_actors)]
        try:
            self.ray.get([actor.ready.remote() for actor in self.actors])  # engine start errors surface here
        except Exception:
            self.close()
            raise

    def generate(self, prompts: list[str], params: GenerationParams, seeds: list[int]) -> list[list[Completion]]:
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        if not prompts:
            return []
        size = -(-len(prompts) // len(self.actors))  # ceil: contiguous chunks, the last one shorter
        calls = [actor.generate.remote(prompts[start:start + size], params, seeds[start:start + size])
                 for actor, start in zip(self.actors, range(0, len(prompts), size))]
        return [per_prompt for chunk in self.ray.get(calls) for per_prompt in chunk]

    def load_weights(self, source: str | os.PathLike | Mapping[str, Any]) -> None:
        if isinstance(source, (str, os.PathLike)):
            payload = os.fspath(source)
        else:
            payload = self.ray.put({name: tensor.detach().to("cpu") for name, tensor in source.items()})
        self.ray.get([actor.load_weights.remote(payload) for actor in self.actors])

    def close(self) -> None:
        actors, self.actors = getattr(self, "actors", []), []
        stop_actors(self.ray, actors)
        if getattr(self, "_started_ray", False):
            self.ray.shutdown()
            self._started_ray = False
