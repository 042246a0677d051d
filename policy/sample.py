"""``e2h sample``: N solutions per problem from the policy with vLLM, sharded, resumable, optionally on Ray.

    e2h sample --config configs/demo.yaml                       # <run>/data/prompts_test.jsonl -> <run>/samples/
    e2h sample -c configs/demo.yaml sample.n=64 sample.num_actors=8 sample.gpus_per_actor=1   # RAY_ADDRESS=...

Reads Problem rows, writes ``<samples>/shard-00000.jsonl`` ... of Sample rows, e.g.::

    {"problem_id": "world/test/3", "sample_index": 5, "prompt": "# Question\\n\\n...\\n\\n# Solution\\n\\n",
     "completion": "We add 3 and 4.\\n\\n# Answer\\n\\n7", "gold_answer": "7", "level": 4, "model": "runs/demo/sft",
     "sampling": {"n": 16, "temperature": 0.7, "top_p": 1.0, "top_k": 20, "max_tokens": 256, "stop": []},
     "seed": 1804289388, "finish_reason": "stop", "num_tokens": 17, ...}

Steps: resolve model / prompts / output folder -> cut problems into shards -> skip shards the manifest lists as
done with the same fingerprint -> generate the rest (in this process, or on Ray actors when
``sample.num_actors > 1``) -> write each shard atomically and mark it done -> mark the stage done in the run
manifest and print a summary. Kill it at any point and run the same command again: finished shards are kept,
the rest are redone, and every (problem, sample index) row ends up exactly once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from e2h.config import ConfigError, RunConfig, add_config_arguments, config_from_args, save_config
from e2h.layout import RunLayout
from e2h.manifest import Manifest
from e2h.records import Problem, load_records
from policy.generator import GenerationParams, Generator, build_generator
from policy.sample_actors import run_on_actors
from policy.shards import ShardStore, plan_shards, run_fingerprint, sample_shard, shard_fingerprint

STAGE = "sample"


@dataclass
class SamplingSummary:
    problems: int
    samples: int
    shards: int
    shards_skipped: int
    tokens_generated: int  # by this invocation (skipped shards generated nothing)
    seconds: float  # wall time of the whole invocation
    generate_seconds: float  # from engines ready to the last shard written (engine start excluded)
    output_dir: str

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_generated / self.generate_seconds if self.generate_seconds > 0 else 0.0

    def line(self) -> str:
        return (f"sampled {self.problems} problems -> {self.samples} samples in {self.shards} shards "
                f"({self.shards_skipped} already done); {self.tokens_generated} tokens in "
                f"{self.generate_seconds:.1f} s = {self.tokens_per_s:.0f} tokens/s "
                f"(wall {self.seconds:.1f} s with engine start) -> {self.output_dir}")


def resolve_model(cfg: RunConfig) -> str:
    if cfg.sample.model:
        return cfg.sample.model
    sft = RunLayout(cfg).sft_model
    if (sft / "config.json").is_file():
        return str(sft)
    if cfg.policy.path:
        return cfg.policy.path
    raise ConfigError("no policy to sample from: run `e2h sft` first or set sample.model=PATH (or policy.path)")


def generation_params(cfg: RunConfig) -> GenerationParams:
    s = cfg.sample
    return GenerationParams(n=s.n, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k,
                            max_tokens=s.max_tokens, stop=tuple(s.stop))


def run_sampling(cfg: RunConfig, generator: Generator | None = None) -> SamplingSummary:
    """Sample every unfinished shard. ``generator``: reuse an engine (tests, PPO) instead of building one."""
    from tqdm.auto import tqdm

    start = time.perf_counter()
    model = generator.model_name if generator is not None else resolve_model(cfg)
    prompts_path = RunLayout(cfg).sample_prompts
    if not prompts_path.is_file():
        raise ConfigError(f"prompt set {prompts_path} not found: run `e2h data prepare` or set sample.prompts=PATH")
    problems = load_records(prompts_path, Problem)[: cfg.sample.limit]
    params = generation_params(cfg)
    store = ShardStore(RunLayout(cfg).samples)
    # one run may sample several pools (test prompts, a PRM-data pool): each gets its own run-manifest entry
    stage = STAGE if not cfg.sample.output_dir else f"{STAGE}/{store.directory.name}"
    store.remove_partial_files()
    save_config(cfg, store.directory)

    shards = plan_shards(problems, cfg.sample.shard_size)
    run = run_fingerprint(model, params, cfg.sample.seed, cfg.sample.cut_after_answer)
    fingerprints = {s.index: shard_fingerprint(s, run) for s in shards}
    todo = [s for s in shards if not store.is_done(s, fingerprints[s.index])]

    tokens = 0
    ready_at: list[float] = []  # when the engine(s) finished starting
    progress = tqdm(total=len(shards), initial=len(shards) - len(todo), desc="shards", unit="shard")

    def finish(shard, rows) -> None:
        nonlocal tokens
        store.write(shard, rows, fingerprints[shard.index])
        tokens += sum(r.num_tokens or 0 for r in rows)
        progress.update(1)

    try:
        if todo and cfg.sample.num_actors > 1 and generator is None:
            for shard, rows in run_on_actors(todo, backend=cfg.sample.backend, model=model, section=cfg.sample,
                                             params=params, run_seed=cfg.sample.seed,
                                             cut_after_answer=cfg.sample.cut_after_answer,
                                             on_ready=lambda: ready_at.append(time.perf_counter())):
                finish(shard, rows)
        elif todo:
            own = generator is None
            if own:
                generator = build_generator(cfg.sample.backend, model, cfg.sample)
            ready_at.append(time.perf_counter())
            try:
                for shard in todo:
                    finish(shard, sample_shard(generator, shard, params, cfg.sample.seed,
                                               cfg.sample.cut_after_answer))
            finally:
                if own:
                    generator.close()
    finally:
        progress.close()

    rows = sum(store.manifest.entries[s.name]["outputs"][str(store.path(s))]["rows"] for s in shards)
    Manifest(RunLayout(cfg).manifest).mark_done(
        stage, [store.directory], model=model, problems=len(problems), samples=rows, shards=len(shards))
    end = time.perf_counter()
    return SamplingSummary(problems=len(problems), samples=rows, shards=len(shards),
                           shards_skipped=len(shards) - len(todo), tokens_generated=tokens, seconds=end - start,
                           generate_seconds=end - ready_at[0] if ready_at else 0.0,
                           output_dir=str(store.directory))


def add_arguments(parser) -> None:
    add_config_arguments(parser)


def run(args) -> int:
    print(run_sampling(config_from_args(args)).line())
    return 0


if __name__ == "__main__":  # `python -m policy.sample -c ...` equals `e2h sample -c ...` (and guards vLLM's spawn)
    import argparse
    import sys

    _parser = argparse.ArgumentParser(prog="python -m policy.sample", description=__doc__.split("\n")[0])
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))
