"""`e2h pretrain`: the world's base model, built once per world config (issue #16 item 3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from e2h.config import load_config
from e2h.records import SFTExample, load_records
from e2h.data.rows import normalize_problem_text
from e2h.world import generate_world
from policy.pretrain import base_dir, base_fingerprint

pytestmark = pytest.mark.distributed
ROOT = Path(__file__).resolve().parents[1]


def _config(tmp: Path, **world) -> Path:
    cfg = {
        "run": {"name": "base", "out_dir": str(tmp / "run"), "seed": 0},
        "world": {"subjects": ["Arithmetic", "Modular Arithmetic"], "train_per_level": 5, "validation_per_level": 5,
                  "test_per_level": 5, "corpus_per_level": 40, "leaf_max": [9] * 5, "value_cap": [30] * 5,
                  "misconceptions": {"left_to_right": 0.3, "mod_quotient": 0.2}, **world},
        "tokenizer": {"vocab_size": 300, "split_digits": False},
        "policy": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2,
                   "num_key_value_heads": 1, "max_position_embeddings": 256},
        "pretrain": {"epochs": 1, "global_batch_size": 16, "micro_batch_size": 16, "max_length": 200,
                     "lr": 3e-3, "output_dir": None},
    }
    path = tmp / f"config-{len(list(tmp.glob('config-*')))}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _pretrain(config: Path, cache: Path) -> str:
    env = {**os.environ, "E2H_CACHE": str(cache), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_PORT"):
        env.pop(key, None)
    result = subprocess.run([sys.executable, "-m", "e2h", "pretrain", "--config", str(config)], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_the_base_is_built_once_per_world_config_and_rebuilt_when_it_changes(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("E2H_CACHE", str(cache))
    first = _config(tmp_path)
    cfg = load_config(first)
    out = base_dir(cfg)
    assert out == cache / "world-bases" / base_fingerprint(cfg)

    assert "built" in _pretrain(first, cache) and (out / "model" / "config.json").is_file()
    log = [json.loads(line) for line in (out / "model" / "train_log.jsonl").read_text().splitlines()]
    losses = [row["loss"] for row in log if "loss" in row]
    assert losses[-1] < losses[0]

    # the corpus: every level, never a validation or test problem, no label of any kind
    rows = load_records(out / "corpus.jsonl", SFTExample)
    splits = generate_world(cfg.world)
    held_out = {normalize_problem_text(p.problem) for p in splits["validation"] + splits["test"]}
    problems = {normalize_problem_text(row.completion.split("\n\n")[1]) for row in rows}
    assert len(rows) > 100 and not problems & held_out
    assert all(row.prompt == "" and row.level is None for row in rows)

    weights = out / "model" / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    assert "already built" in _pretrain(first, cache)  # same config: skipped, weights untouched
    assert weights.stat().st_mtime_ns == stamp
    # another seed of the run shares the base; a changed corpus key builds another
    assert base_fingerprint(load_config(first, ["run.seed=3"])) == base_fingerprint(cfg)
    second = _config(tmp_path, corpus_slip_share=0.3)
    other = base_dir(load_config(second))
    assert other != out
    assert "already built" not in _pretrain(second, cache) and (other / "model" / "config.json").is_file()
    assert weights.stat().st_mtime_ns == stamp


def test_corpus_rows_train_on_every_token(tiny_policy):
    from transformers import AutoTokenizer

    from policy.sft_data import IGNORE_INDEX, tokenize_example

    tokenizer = AutoTokenizer.from_pretrained(tiny_policy["path"])
    row = SFTExample(id="c", problem_id="p", prompt="", completion="# Question\n\nCompute 2 + 3.\n\n# Solution\n\n"
                     "2 + 3 = 5\n\n# Answer\n\n5", eos=True)
    item = tokenize_example(row, tokenizer)
    assert IGNORE_INDEX not in item["labels"] and item["labels"] == item["input_ids"]


def test_a_change_to_the_code_that_writes_the_corpus_changes_the_base(tmp_path, monkeypatch):
    import e2h.world.corpus as corpus
    import policy.pretrain as pretrain

    cfg = load_config(_config(tmp_path))
    before = base_fingerprint(cfg)
    written = corpus.author_solution
    monkeypatch.setattr(corpus, "author_solution", lambda *args: written(*args) + ["an extra line"])
    pretrain._corpus_digest.cache_clear()
    try:
        assert base_fingerprint(cfg) != before
    finally:
        pretrain._corpus_digest.cache_clear()
