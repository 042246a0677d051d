"""Generate the offline leveled world and the tiny models that learn it.

    e2h world --config configs/demo.yaml [world.train_per_level=200 ...] [--force]

Writes, under ``run.out_dir``::

    world/train.jsonl world/validation.jsonl world/test.jsonl   Problem records, all five levels in each
    world/config.yaml  world/summary.json                        resolved config; counts and token lengths
    models/tokenizer                                             byte-level BPE trained on the train split
    models/policy_init  models/prm_init                          untrained tiny Llamas (sizes: policy, prm_backbone)

and marks the stage ``world`` done in ``manifest.json`` last, with a fingerprint of the config sections it read;
re-running with the same config skips, a changed config (or ``--force``) rebuilds. Every file and model folder
is written to a temporary name first and renamed into place.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import re
import shutil
from collections import defaultdict
from pathlib import Path
from statistics import mean
from typing import Iterator

from e2h.config import RunConfig, add_config_arguments, config_from_args, save_config
from e2h.jsonl import write_json
from e2h.layout import RunLayout
from e2h.manifest import Manifest
from e2h.records import Problem, save_records
from e2h.text_format import STEP_SEPARATOR, format_prompt
from e2h.world import generate_world
from e2h.world.tiny_models import save_tiny_model, train_tokenizer

STAGE = "world"
SPLITS = ("train", "validation", "test")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--force", action="store_true", help="rebuild even if the manifest marks the world done")


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    summary = build(cfg, force=args.force)
    print(format_summary(summary, str(RunLayout(cfg).root)))
    return 0


def fingerprint(cfg: RunConfig) -> str:
    parts = {name: getattr(cfg, name).model_dump(mode="json") for name in ("world", "tokenizer", "policy",
                                                                             "prm_backbone")}
    parts["seed"] = cfg.run.seed
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def model_texts(problem: Problem) -> str:
    """What a model reads for one problem: prompt and solution, exactly as SFT / PRM data lays them out."""
    return format_prompt(problem.problem) + (problem.solution or "")


def world_tokenizer(texts: list[str], vocab_size: int, split_digits: bool = True):
    """e2h.world.tiny_models' byte-level BPE, then every digit made its own token.

    A number is read digit by digit, so level 4-5 numbers (larger than any in training) are made of the same
    tokens the model learned on levels 1-3, instead of unseen multi-digit merges (``tokenizer.split_digits``;
    off, a step like "12 + 7 = 19" is one lookup for a tiny model instead of digit-wise carries). The step separator "\\n\\n"
    becomes one added token: byte-level pre-tokenization splits "\\n\\n3" into "\\n" + "\\n", so BPE alone never
    learns it, and a PRM reads step boundaries more easily from one token.
    """
    from tokenizers import AddedToken, pre_tokenizers  # local: `e2h --help` and the world's data need no tokenizers

    if split_digits:
        # merges are learned on digit-free text, so no vocabulary is spent on multi-digit tokens nobody will use
        tokenizer = train_tokenizer([re.sub(r"\d+", "", text) for text in texts], vocab_size=vocab_size)
        tokenizer.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)])
    else:  # a base pretrained on every level sees every number: frequent ones merge into one token each
        tokenizer = train_tokenizer(texts, vocab_size=vocab_size)
    tokenizer.add_tokens([AddedToken(STEP_SEPARATOR, normalized=False, special=False)])
    return tokenizer


def check_tokenizer(tokenizer, texts: list[str]) -> None:
    """The properties training relies on; a tokenizer from ``tokenizer.path`` is checked too."""
    separator = tokenizer.encode(STEP_SEPARATOR, add_special_tokens=False)
    if len(separator) != 1:
        raise ValueError(f"the tokenizer splits the step separator '\\n\\n' into {len(separator)} tokens")
    for text in texts[:200]:
        if tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) != text:
            raise ValueError(f"the tokenizer does not round-trip {text[:60]!r}")


@contextlib.contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """A temporary folder next to ``path``, swapped into place only if the block succeeds."""
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def token_lengths(tokenizer, splits: dict[str, list[Problem]]) -> dict[str, dict[str, float]]:
    """Prompt + solution + EOS tokens per level (all splits): the lengths every model must hold."""
    by_level: dict[int, list[int]] = defaultdict(list)
    for problems in splits.values():
        for problem in problems:
            by_level[problem.level].append(len(tokenizer.encode(model_texts(problem), add_special_tokens=False)) + 1)
    return {f"L{level}": {"mean": round(mean(n), 1), "max": max(n)} for level, n in sorted(by_level.items())}


def build(cfg: RunConfig, force: bool = False) -> dict:
    """Generate and write the world and its tiny models; returns the summary (skips when already done)."""
    manifest = Manifest(RunLayout(cfg).manifest)
    key = fingerprint(cfg)
    if not force and manifest.is_done(STAGE) and manifest.entries[STAGE].get("fingerprint") == key:
        return {**manifest.entries[STAGE].get("summary", {}), "skipped": True}
    manifest.forget(STAGE)

    world_dir, models_dir = RunLayout(cfg).path("world"), RunLayout(cfg).path("models")
    splits = generate_world(cfg.world)
    outputs = []
    for name in SPLITS:
        path = world_dir / f"{name}.jsonl"
        save_records(path, splits[name])
        outputs.append(path)

    texts = [model_texts(p) for p in splits["train"]]
    if cfg.tokenizer.path:
        from transformers import AutoTokenizer  # local: transformers takes seconds to import

        tokenizer = AutoTokenizer.from_pretrained(cfg.tokenizer.path)
    else:
        tokenizer = world_tokenizer(texts, cfg.tokenizer.vocab_size, cfg.tokenizer.split_digits)
    check_tokenizer(tokenizer, texts)
    lengths = token_lengths(tokenizer, splits)
    longest = max(entry["max"] for entry in lengths.values())
    with atomic_dir(models_dir / "tokenizer") as tmp:
        tokenizer.save_pretrained(tmp)
    outputs.append(models_dir / "tokenizer")

    models = {}
    for folder, sizes, seed in (("policy_init", cfg.policy, cfg.run.seed), ("prm_init", cfg.prm_backbone,
                                                                           cfg.run.seed + 1)):
        if sizes.path:  # a given checkpoint is used as is; nothing to build
            models[folder] = {"path": sizes.path}
            continue
        if longest > sizes.max_position_embeddings:
            raise ValueError(f"the longest world text has {longest} tokens but {folder} holds "
                             f"{sizes.max_position_embeddings} (raise max_position_embeddings)")
        with atomic_dir(models_dir / folder) as tmp:
            save_tiny_model(tmp, tokenizer, sizes, seed=seed)
        models[folder] = {"path": str(models_dir / folder), "parameters": _count_parameters(models_dir / folder)}
        outputs.append(models_dir / folder)

    summary = {
        "splits": {name: _counts(problems) for name, problems in splits.items()},
        "tokens": lengths,
        "vocab_size": len(tokenizer),
        "models": models,
    }
    save_config(cfg, world_dir)
    write_json(world_dir / "summary.json", summary)
    outputs += [world_dir / "config.yaml", world_dir / "summary.json"]
    manifest.mark_done(STAGE, outputs, fingerprint=key, summary=summary)
    return summary


def _counts(problems: list[Problem]) -> dict[str, dict[str, int]]:
    by_level: dict[str, int] = defaultdict(int)
    by_subject: dict[str, int] = defaultdict(int)
    for problem in problems:
        by_level[f"L{problem.level}"] += 1
        by_subject[problem.subject] += 1
    return {"by_level": dict(sorted(by_level.items())), "by_subject": dict(sorted(by_subject.items()))}


def _count_parameters(folder: Path) -> int:
    from safetensors import safe_open  # local: only the summary reads weights

    with safe_open(str(folder / "model.safetensors"), framework="pt") as handle:
        return sum(math.prod(handle.get_slice(name).get_shape()) for name in handle.keys())


def format_summary(summary: dict, where: str) -> str:
    head = f"world already built in {where} (same config; --force rebuilds)" if summary.get("skipped") \
        else f"built the world in {where}"
    lines = [head]
    for name, counts in summary["splits"].items():
        levels = " ".join(f"{k}={v}" for k, v in counts["by_level"].items())
        lines.append(f"  {name:<11} {sum(counts['by_level'].values()):>6}  {levels}")
    tokens = " ".join(f"{k}:{v['mean']:.0f}/{v['max']}" for k, v in summary["tokens"].items())
    lines.append(f"  tokens (mean/max per level) {tokens}; vocab {summary['vocab_size']}")
    for folder, info in summary["models"].items():
        size = f"{info['parameters']:,} parameters" if "parameters" in info else "given checkpoint"
        lines.append(f"  {folder:<11} {info['path']}  ({size})")
    return "\n".join(lines)
