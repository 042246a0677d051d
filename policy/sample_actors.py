"""Scale-out for sampling: Ray actors, each holding one generation engine, fed shards one at a time.

    for shard, rows in run_on_actors(todo, backend="vllm", model="runs/demo/sft", section=cfg.sample, ...):
        store.write(shard, rows, fingerprint(shard))     # the driver is the only writer of files and manifest

Shards are handed out dynamically (an idle actor gets the next one), so a slow actor never holds up the rest, and
since every row's seed comes from (run seed, problem id), which actor ran a shard does not change its rows.
Ray: a cluster when ``RAY_ADDRESS`` is set (``launch/`` starts it), otherwise a local Ray on 127.0.0.1.
vLLM inside a Ray actor works on the CPU build (tests/test_sample_vllm.py runs two): the actor's process spawns
the engine core as usual. On GPUs each actor asks Ray for ``gpus_per_actor`` GPUs (>= tensor_parallel_size) and
vLLM runs its own multiprocessing executor inside them.
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable, Iterator

from e2h.config import ConfigError, SampleSection
from e2h.ray_cluster import import_ray, start_ray
from policy.generator import GenerationParams, build_generator
from policy.shards import Shard, sample_shard


RAY_NEED = "Ray actors (sample.num_actors > 1, ppo.rollout_actors > 0)"


def connect_ray(min_cpus: float) -> bool:
    """Join the cluster at RAY_ADDRESS, or start a local Ray bound to 127.0.0.1. True if we started it."""
    return start_ray(num_cpus=max(os.cpu_count() or 1, math.ceil(min_cpus)), log_to_driver=True, need=RAY_NEED)


def stop_actors(ray, actors: list) -> None:
    """Close each actor's engine (a minute at most), then kill the actor."""
    for actor in actors:
        try:
            ray.get(actor.close.remote(), timeout=60)
        except Exception:  # the actor may be the thing that failed; killing it below is enough
            pass
        ray.kill(actor)


class SamplerWorker:
    """The body of one Ray actor: builds its engine once, then samples whatever shard it is given."""

    def __init__(self, backend: str, model: str, section_json: dict[str, Any]):
        section = SampleSection.model_validate(section_json)
        # inside an actor, vLLM would pick its Ray executor for tensor parallelism and ask this Ray for a new
        # placement group; the actor already holds its GPUs, so vLLM's own multiprocessing executor runs the shards
        extra = {"distributed_executor_backend": "mp"} if backend == "vllm" and section.tensor_parallel_size > 1 else {}
        self.generator = build_generator(backend, model, section, **extra)

    def ready(self) -> bool:
        return True

    def sample(self, shard: Shard, params: GenerationParams, run_seed: int, cut_after_answer: bool) -> list:
        return sample_shard(self.generator, shard, params, run_seed, cut_after_answer)

    def close(self) -> None:
        self.generator.close()


def run_on_actors(shards: list[Shard], *, backend: str, model: str, section, params: GenerationParams,
                  run_seed: int, cut_after_answer: bool,
                  on_ready: Callable[[], None] | None = None) -> Iterator[tuple[Shard, list]]:
    """Yield (shard, rows) as actors finish them; at most one shard in flight per actor.
    ``on_ready`` is called once every actor's engine has started."""
    if 0 < section.gpus_per_actor < section.tensor_parallel_size:
        raise ConfigError(f"sample.gpus_per_actor ({section.gpus_per_actor}) must be >= sample.tensor_parallel_size "
                          f"({section.tensor_parallel_size}): each actor's engine spans its own GPUs")
    ray = import_ray(RAY_NEED)
    started = connect_ray(section.num_actors * section.cpus_per_actor)
    actor_cls = ray.remote(SamplerWorker).options(num_cpus=section.cpus_per_actor, num_gpus=section.gpus_per_actor)
    actors = [actor_cls.remote(backend, model, section.model_dump(mode="json"))
              for _ in range(min(section.num_actors, len(shards)))]
    try:
        ray.get([a.ready.remote() for a in actors])  # surface engine start errors before any work is handed out
        if on_ready is not None:
            on_ready()
        pending = list(shards)
        in_flight: dict[Any, tuple[Any, Shard]] = {}

        def hand_out(actor) -> None:
            if pending:
                shard = pending.pop(0)
                in_flight[actor.sample.remote(shard, params, run_seed, cut_after_answer)] = (actor, shard)

        for actor in actors:
            hand_out(actor)
        while in_flight:
            done, _ = ray.wait(list(in_flight), num_returns=1)
            actor, shard = in_flight.pop(done[0])
            rows = ray.get(done[0])
            hand_out(actor)  # keep the actor busy while the driver writes this shard
            yield shard, rows
    finally:
        stop_actors(ray, actors)
        if started:
            ray.shutdown()
