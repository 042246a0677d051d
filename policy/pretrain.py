"""``e2h pretrain``: the world's base model, built once per world configuration and shared by runs and seeds.

    e2h pretrain --config configs/demo.yaml          # -> $E2H_CACHE/world-bases/<hash>/model (or skips)

The paper's policy and PRM both start from Llemma, a model pretrained on unlabeled web math of every
difficulty; only the supervision (SFT demonstrations, PRM step labels) is restricted to easy problems. This is
that pretraining for the world: causal-LM training on the unlabeled corpus of e2h.world.corpus (all five
levels, imperfect authors, never a validation or test problem), through the SFT recipe with an empty prompt, so
the loss covers every token (one training code path, policy/sft.py). Writes::

    <base>/corpus.jsonl  corpus_stats.json   the corpus (SFTExample rows) and what its authors got wrong per level
    <base>/tokenizer  <base>/init           the world tokenizer trained on the corpus, the untrained model
    <base>/model                            the pretrained base (HF checkpoint with its tokenizer)
    <base>/manifest.json                    "base" done, with the hash of everything that decides it

The hash covers the corpus text, the world keys that decide it, the tokenizer and policy sizes and the ``pretrain``
section; ``run.seed`` is not in it (seeds vary everything after the base). A changed key gives another folder.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
from pathlib import Path

from e2h.config import RunConfig, SFTSection, WorldSection, add_config_arguments, config_from_args
from e2h.jsonl import write_json
from e2h.manifest import Manifest
from e2h.models import cache_root
from e2h.records import save_records
from e2h.world import generate_world
from e2h.world.commands import atomic_dir, check_tokenizer, world_tokenizer
from e2h.world.corpus import build_corpus, corpus_examples, corpus_statistics
from e2h.world.tiny_models import save_tiny_model
from policy.sft import run_sft

STAGE = "base"
# world keys that never reach the corpus: the training split's size and how PRM negatives are made
_NOT_IN_CORPUS = {"train_per_level", "flawed_per_problem", "flaw_weights", "after_error"}


@functools.lru_cache(maxsize=8)
def _corpus_digest(world_json: str) -> str:
    world = WorldSection.model_validate_json(world_json)
    splits = generate_world(world)
    texts = [d.text for d in build_corpus(world, splits["validation"] + splits["test"])]
    return hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]


def base_fingerprint(cfg: RunConfig) -> str:
    parts = {
        "world": cfg.world.model_dump(mode="json", exclude=_NOT_IN_CORPUS),
        # the corpus text itself, so a change to the code that writes it rebuilds the base (config keys alone
        # let an edited generator silently reuse a base pretrained on the old text)
        "corpus": _corpus_digest(cfg.world.model_dump_json()),
        "tokenizer": cfg.tokenizer.model_dump(mode="json"),
        "policy": cfg.policy.model_dump(mode="json", exclude={"path"}),
        "pretrain": cfg.pretrain.model_dump(mode="json", exclude={"output_dir", "report_to"}),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def base_dir(cfg: RunConfig) -> Path:
    if cfg.pretrain.output_dir:
        return Path(cfg.pretrain.output_dir)
    return cache_root() / "world-bases" / base_fingerprint(cfg)


def base_model(cfg: RunConfig) -> Path:
    return base_dir(cfg) / "model"


def is_built(cfg: RunConfig) -> bool:
    manifest = Manifest(base_dir(cfg) / "manifest.json")
    return manifest.is_done(STAGE) and manifest.entries[STAGE].get("fingerprint") == base_fingerprint(cfg)


def build_base(cfg: RunConfig, force: bool = False) -> dict:
    """Corpus, tokenizer, initial model, then pretraining; skipped when the folder holds this config's base."""
    out, key = base_dir(cfg), base_fingerprint(cfg)
    manifest = Manifest(out / "manifest.json")
    if not force and is_built(cfg):
        return {**manifest.entries[STAGE].get("summary", {}), "skipped": True, "path": str(out / "model")}
    manifest.forget(STAGE)
    if cfg.policy.path:
        raise ValueError("e2h pretrain builds the policy from its sizes: policy.path must be unset")
    splits = generate_world(cfg.world)
    documents = build_corpus(cfg.world, splits["validation"] + splits["test"])
    save_records(out / "corpus.jsonl", corpus_examples(documents))
    stats = corpus_statistics(documents)
    write_json(out / "corpus_stats.json", stats)

    texts = [d.text for d in documents]
    if cfg.tokenizer.path:
        from transformers import AutoTokenizer  # local: transformers takes seconds to import

        tokenizer = AutoTokenizer.from_pretrained(cfg.tokenizer.path)
    else:
        tokenizer = world_tokenizer(texts, cfg.tokenizer.vocab_size, cfg.tokenizer.split_digits)
    check_tokenizer(tokenizer, texts)
    with atomic_dir(out / "tokenizer") as tmp:
        tokenizer.save_pretrained(tmp)

    with atomic_dir(out / "init") as tmp:
        save_tiny_model(tmp, tokenizer, cfg.policy, seed=cfg.world.seed)

    recipe = cfg.model_copy(deep=True)
    recipe.run.out_dir, recipe.run.seed = str(out), cfg.world.seed
    recipe.sft = SFTSection(**cfg.pretrain.model_dump(exclude={"output_dir"}), data=str(out / "corpus.jsonl"),
                            init=str(out / "init"), output_dir=str(out / "model"))
    summary = {"corpus": stats, **run_sft(recipe, force=force)}
    manifest = Manifest(out / "manifest.json")
    manifest.mark_done(STAGE, [out / "model" / "config.json"], fingerprint=key, summary=summary)
    return {**summary, "path": str(out / "model")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--force", action="store_true", help="rebuild even if this config's base exists")


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    summary = build_base(cfg, force=args.force)
    state = "already built" if summary.get("skipped") else "built"
    print(f"base model {state}: {summary['path']} (final loss {summary.get('final_loss')})")
    return 0
