"""``e2h sft``: fine-tune the policy (a causal LM) on step-formatted solutions with DeepSpeed.

    e2h sft -c configs/demo.yaml                                  # one process (CPU: gloo, fp32)
    torchrun --nproc_per_node 8 -m policy.sft -c configs/llemma-7b-prm800k-level1-3.yaml   # a GPU node

Reads SFTExample rows (``e2h data prepare`` writes ``<run>/data/sft_train.jsonl``)::

    {"id": "...", "problem_id": "...", "prompt": "# Question\\n\\nWhat is 1 + 2?\\n\\n# Solution\\n\\n",
     "completion": "We add.\\n\\n# Answer\\n\\n3", "eos": true, "level": 1}

and writes the fine-tuned HF checkpoint (model + tokenizer) to ``sft.output_dir`` (default ``<run>/sft``), which
``e2h sample`` then loads. The loss covers only completion tokens (+ EOS where ``eos`` is true; see
policy/sft_data.py). Engine, batch plan, LR schedule, data order, checkpoints and logs come from the shared
DeepSpeed helper package ``training/`` (the PRM trainer uses the same one).

Resume: every ``sft.checkpoint_every`` optimizer steps a DeepSpeed checkpoint lands in ``<out>/checkpoints``;
the same command after a kill loads the newest one and continues with exactly the batches the uninterrupted run
would have seen. A finished run is recorded in ``<run>/manifest.json`` and skipped unless ``--force``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import training
from e2h.config import ConfigError, RunConfig, add_config_arguments, config_from_args, save_config
from e2h.layout import RunLayout
from e2h.manifest import Manifest, file_checksum
from e2h.records import SFTExample, load_records
from policy.sft_data import collate, tokenize_examples

STAGE = "sft"


def sft_paths(cfg: RunConfig) -> tuple[Path, str, Path]:
    """(SFT data file, model to start from, output folder)."""
    data = RunLayout(cfg).sft_data
    if not data.is_file():
        raise ConfigError(f"SFT data {data} not found: run `e2h data prepare` or set sft.data=PATH")
    init = cfg.sft.init or cfg.policy.path
    if not init:
        raise ConfigError("no model to fine-tune: set policy.path (or sft.init) to a causal-LM folder")
    out = RunLayout(cfg).sft_model
    return data, init, out


def fingerprint(cfg: RunConfig, data: Path, init: str) -> str:
    """What decides the trained weights: the SFT section, the data file, the starting model, the seed."""
    payload = {"sft": cfg.sft.model_dump(mode="json", exclude={"output_dir", "report_to"}), "data": file_checksum(data),
               "init": str(init), "seed": cfg.run.seed}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def run_sft(cfg: RunConfig, force: bool = False, max_steps: int | None = None) -> dict:
    """Train (or resume, or skip when done); returns a summary dict. ``max_steps`` stops early (the schedule is
    the full run's); the model is saved where later stages look all the same."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data, init, out = sft_paths(cfg)
    key = fingerprint(cfg, data, init)
    manifest = Manifest(RunLayout(cfg).manifest)
    entry = manifest.entries.get(STAGE, {})
    if (not force and manifest.is_done(STAGE) and entry.get("fingerprint") == key
            and entry.get("max_steps") == max_steps):
        return {**entry.get("summary", {}), "skipped": True}

    start_time = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(init)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    examples = load_records(data, SFTExample)
    items, dropped = tokenize_examples(examples, tokenizer, cfg.sft.max_length)
    if not items:
        raise ConfigError(f"{data}: no SFT example to train on ({len(examples)} read, {dropped} dropped as longer "
                          f"than sft.max_length={cfg.sft.max_length} or with nothing to learn)")
    lengths = [len(item["input_ids"]) for item in items]

    dist = training.init_distributed()
    micro, accum = training.batch_plan(cfg.sft, dist.world_size)
    sched = training.schedule(cfg.sft, len(items) // cfg.sft.global_batch_size)
    torch.manual_seed(cfg.run.seed)
    model = AutoModelForCausalLM.from_pretrained(init, dtype=torch.float32)
    model.config.use_cache = False  # training only; saved with the cache on (training.save_for_generation)
    if cfg.sft.freeze_embeddings_and_norms:
        training.freeze_embeddings_and_norms(model)
    if cfg.sft.lora_rank > 0:
        raise ConfigError("sft.lora_rank > 0 is not supported yet: full fine-tuning only")
    engine = training.create_engine(model, cfg.sft, dist, sched)

    def save_hf(state: dict, folder: Path) -> None:  # use_cache on in config.json and generation_config.json
        training.save_for_generation(engine.module, folder, state_dict=state, tokenizer=tokenizer)

    client = None if force else training.resume(engine, out)
    if client is not None and client.get("fingerprint") != key:
        raise ConfigError(f"the checkpoints in {training.checkpoint_root(out)} come from another config or data; "
                          f"delete them or pass --force to start over")
    first = int(client["step"]) if client else 0
    if dist.is_main:
        save_config(cfg, out)
        if first == 0:
            (out / "train_log.jsonl").unlink(missing_ok=True)  # a fresh run's log starts empty
    logger = training.TrainLogger(dist, out, sched.total_steps, initial_step=first, desc="sft",
                                  report_to=cfg.sft.report_to, config=cfg.model_dump(mode="json"))
    tokens = 0
    engine.train()
    stop = sched.total_steps if max_steps is None else min(sched.total_steps, max_steps)
    for step in range(first, stop):
        indices = training.global_batch(step, len(items), sched.steps_per_epoch, cfg.sft.global_batch_size,
                                        cfg.run.seed)
        losses = []
        for batch_indices in training.micro_batches(indices, dist, micro, accum, lengths):
            batch = {k: v.to(dist.device) for k, v in collate([items[i] for i in batch_indices], pad_id).items()}
            loss = engine(**batch).loss  # HF shifts labels; mean over this micro-batch's completion tokens
            engine.backward(loss)  # DeepSpeed divides by the accumulation steps
            engine.step()
            losses.append(float(loss.item()))
            tokens += int(batch["attention_mask"].sum())
        logger.log(step + 1, {"loss": training.mean_across_ranks(sum(losses) / len(losses)),
                              "lr": training.current_lr(engine)})
        every = cfg.sft.checkpoint_every
        if every and (step + 1) % every == 0 and step + 1 < stop:
            training.save_checkpoint(engine, out, step + 1, {"fingerprint": key}, save_hf)
    training.save_final(engine, out, save_hf)
    logger.close()

    log = training.read_train_log(out)
    summary = {"examples": len(items), "dropped_too_long": dropped, "steps": stop,
               "resumed_from_step": first, "first_loss": log[0]["loss"] if log else None,
               "final_loss": log[-1]["loss"] if log else None, "world_size": dist.world_size,
               "tokens_per_s_this_run": tokens * dist.world_size / max(time.perf_counter() - start_time, 1e-9)}
    if dist.is_main:
        manifest.mark_done(STAGE, [out / "config.json"], fingerprint=key, output_dir=str(out), summary=summary,
                           max_steps=max_steps)
    training.barrier()
    return summary


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--force", action="store_true", help="train from scratch even if done or checkpointed")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimizer steps (schedule unchanged); "
                        "the model is saved where later stages look")


def run(args) -> int:
    summary = run_sft(config_from_args(args), force=args.force, max_steps=args.max_steps)
    if int(os.environ.get("RANK", "0")) == 0:
        if summary.get("skipped"):
            print("sft: already done with this config (use --force to retrain)")
        else:
            print(f"sft: {summary['examples']} examples ({summary['dropped_too_long']} too long), "
                  f"{summary['steps']} steps (resumed at {summary['resumed_from_step']}), loss "
                  f"{summary['first_loss']:.4f} -> {summary['final_loss']:.4f}, "
                  f"{summary['tokens_per_s_this_run']:.0f} tokens/s")
    return 0


if __name__ == "__main__":  # `torchrun ... -m policy.sft -c ...` runs one rank per process
    import argparse
    import sys

    _parser = argparse.ArgumentParser(prog="python -m policy.sft", description=__doc__.split("\n")[0])
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))
