"""`e2h world`: world files, a tokenizer and tiny models that load like any checkpoint, a manifest entry."""

from __future__ import annotations

import json
import pathlib

import pytest

from e2h.commands.cli import main
from e2h.manifest import Manifest
from e2h.records import Problem, load_records
from e2h.text_format import format_prompt

ROOT = pathlib.Path(__file__).resolve().parents[1]
SIZES = ["world.train_per_level=8", "world.validation_per_level=4", "world.test_per_level=4",
         "policy.hidden_size=64", "policy.num_hidden_layers=2", "policy.intermediate_size=96", "policy.num_attention_heads=2",
         "policy.num_key_value_heads=1", "prm_backbone.hidden_size=64", "prm_backbone.num_hidden_layers=1",
         "tokenizer.split_digits=true"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("world_run") / "run"
    args = ["world", "--config", str(ROOT / "configs/demo.yaml"), f"run.out_dir={out}", *SIZES]
    assert main(args) == 0
    return out, args


def test_world_files_are_problem_records(built):
    out, _ = built
    splits = {name: load_records(out / "world" / f"{name}.jsonl", Problem) for name in ("train", "validation", "test")}
    assert [len(splits[n]) for n in ("train", "validation", "test")] == [40, 20, 20]
    assert {p.level for p in splits["test"]} == {1, 2, 3, 4, 5}
    summary = json.loads((out / "world" / "summary.json").read_text())
    assert summary["splits"]["train"]["by_level"] == {f"L{k}": 8 for k in range(1, 6)}
    assert (out / "world" / "config.yaml").is_file()


def test_tokenizer_and_models_load_and_run(built):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, _ = built
    tokenizer = AutoTokenizer.from_pretrained(out / "models" / "tokenizer")
    assert len(tokenizer.encode("\n\n", add_special_tokens=False)) == 1
    digits = tokenizer.encode("12345 = 987", add_special_tokens=False)
    assert [tokenizer.decode([t]) for t in digits] == ["1", "2", "3", "4", "5", " =", " ", "9", "8", "7"]
    problem = load_records(out / "world" / "test.jsonl", Problem)[-1]
    text = format_prompt(problem.problem) + problem.solution
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text and tokenizer.unk_token_id not in ids
    for folder, hidden, layers in (("policy_init", 64, 2), ("prm_init", 64, 1)):
        model = AutoModelForCausalLM.from_pretrained(out / "models" / folder)
        assert (model.config.hidden_size, model.config.num_hidden_layers) == (hidden, layers)
        assert model.config.vocab_size == len(tokenizer)
        assert model.config.eos_token_id == tokenizer.eos_token_id
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits
        assert logits.shape == (1, len(ids), len(tokenizer))


def test_rerun_skips_and_force_rebuilds(built, capsys):
    out, args = built
    manifest = Manifest(out / "manifest.json")
    assert manifest.is_done("world")
    before = (out / "world" / "train.jsonl").stat().st_mtime_ns
    capsys.readouterr()
    assert main(args) == 0
    assert "already built" in capsys.readouterr().out
    assert (out / "world" / "train.jsonl").stat().st_mtime_ns == before
    (out / "world" / "train.jsonl").write_text("")  # a damaged output no longer counts as done
    assert not Manifest(out / "manifest.json").is_done("world")
    assert main(args) == 0
    assert len(load_records(out / "world" / "train.jsonl", Problem)) == 40


def test_models_too_short_for_the_world_is_an_error(tmp_path):
    args = ["world", "--config", str(ROOT / "configs/demo.yaml"), f"run.out_dir={tmp_path / 'run'}", *SIZES,
            "policy.max_position_embeddings=16"]
    with pytest.raises(ValueError, match="policy_init holds 16"):
        main(args)
    assert not Manifest(tmp_path / "run" / "manifest.json").is_done("world")


def test_whole_number_tokens_when_digits_are_not_split():
    """tokenizer.split_digits=false (the demo's base): frequent numbers are one token each, the text round-trips."""
    from e2h.world.commands import check_tokenizer, world_tokenizer

    texts = [format_prompt(f"Compute {a} + {b}.") + f"{a} + {b} = {a + b}\n\n# Answer\n\n{a + b}"
             for a in range(2, 30) for b in range(2, 10)]
    tokenizer = world_tokenizer(texts, vocab_size=400, split_digits=False)
    check_tokenizer(tokenizer, texts)
    pieces = [tokenizer.decode([t]).strip() for t in tokenizer.encode("12 + 7 = 19", add_special_tokens=False)]
    assert pieces == ["12", "+", "7", "=", "19"]
