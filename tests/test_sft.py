"""Policy SFT with DeepSpeed (training/__init__.py): completion-only labels, loss falls on arithmetic solutions, the
SFT model writes step-formatted solutions where the untrained one does not, and a run killed after a checkpoint
resumes to the same weights as an uninterrupted run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import kill_process_group
from e2h.config import load_config
from e2h.records import SFTExample, save_records
from e2h.text_format import format_prompt
from policy.sft_data import IGNORE_INDEX, collate, tokenize_example, tokenize_examples

ROOT = Path(__file__).resolve().parents[1]
DIST_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_PORT")


@pytest.fixture(scope="module")
def tokenizer(tiny_policy):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_policy["path"])


@pytest.mark.parametrize("eos", [True, False])
def test_labels_cover_only_the_completion_and_eos_when_asked(tokenizer, eos):
    example = SFTExample(id="a", problem_id="p", prompt=format_prompt("What is 2 + 3?"),
                         completion="We add 2 and 3.\n\n# Answer\n\n5", eos=eos)
    item = tokenize_example(example, tokenizer)
    prompt_ids = tokenizer(example.prompt)["input_ids"]
    completion_ids = tokenizer(example.completion, add_special_tokens=False)["input_ids"]
    assert item["input_ids"][: len(prompt_ids)] == prompt_ids
    assert item["labels"][: len(prompt_ids)] == [IGNORE_INDEX] * len(prompt_ids)
    expected = completion_ids + ([tokenizer.eos_token_id] if eos else [])
    assert item["labels"][len(prompt_ids):] == expected == item["input_ids"][len(prompt_ids):]
    assert tokenizer.decode(item["input_ids"][len(prompt_ids):], skip_special_tokens=True) == example.completion


def test_long_examples_are_dropped_and_padding_is_masked(tokenizer):
    short = SFTExample(id="s", problem_id="p", prompt=format_prompt("1 + 1?"), completion="# Answer\n\n2")
    long = SFTExample(id="l", problem_id="p", prompt=format_prompt("1 + 1?"), completion="We add. " * 40)
    items, dropped = tokenize_examples([short, long], tokenizer, max_length=40)
    assert dropped == 1 and len(items) == 1
    other = tokenize_example(long, tokenizer)
    batch = collate([items[0], other], pad_id=tokenizer.pad_token_id)
    size = len(items[0]["input_ids"])
    assert batch["input_ids"].shape == (2, len(other["input_ids"]))
    assert batch["attention_mask"][0].tolist() == [1] * size + [0] * (batch["input_ids"].shape[1] - size)
    assert (batch["labels"][0, size:] == IGNORE_INDEX).all()
    assert batch["labels"][1].tolist() == other["labels"]


def sft_overrides(tmp: Path, tiny_policy, out: str) -> list[str]:
    data = tmp / "sft_train.jsonl"
    if not data.exists():
        save_records(data, [SFTExample(id=p.id, problem_id=p.id, prompt=format_prompt(p.problem),
                                       completion=p.solution, eos=True, level=1) for p in tiny_policy["problems"]])
    settings = {"run.out_dir": tmp / out, "sft.data": data, "sft.init": tiny_policy["path"],
                "sft.deepspeed_config": ROOT / "configs/deepspeed/zero2.json", "sft.lr": 1e-2,
                "sft.warmup_ratio": 0.05, "sft.epochs": 8, "sft.micro_batch_size": 16, "sft.global_batch_size": 32,
                "sft.max_length": 128, "sft.freeze_embeddings_and_norms": False, "sft.checkpoint_every": 40}
    return [f"{key}={value}" for key, value in settings.items()]


@pytest.fixture(scope="module")
def sft_run(tiny_policy, tmp_path_factory):
    """One uninterrupted SFT run in this process (400 examples, 96 steps of 32, ZeRO-2, 1 process)."""
    from policy.sft import run_sft

    tmp = tmp_path_factory.mktemp("sft")
    saved = {k: os.environ.get(k) for k in DIST_ENV}
    cfg = load_config(None, sft_overrides(tmp, tiny_policy, "full"))
    try:
        summary = run_sft(cfg)
    finally:  # leave no RANK / MASTER_PORT behind for later subprocesses
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    return {"tmp": tmp, "cfg": cfg, "summary": summary, "out": tmp / "full" / "sft"}


def valid_rate(model_path, problems) -> float:
    from policy.generator import GenerationParams
    from policy.hf_generator import HFGenerator
    from policy.stopping import is_complete_solution

    generator = HFGenerator(model_path)
    outputs = generator.generate([format_prompt(p.problem) for p in problems],
                                 GenerationParams(n=4, temperature=0.7, top_k=20, max_tokens=40),
                                 seeds=list(range(len(problems))))
    flags = [is_complete_solution(c.text) and c.finish_reason == "stop" for per in outputs for c in per]
    return sum(flags) / len(flags)


@pytest.mark.distributed
def test_sft_loss_falls_and_the_model_writes_step_formatted_solutions(sft_run, tiny_policy):
    import training
    from e2h.manifest import Manifest

    log = training.read_train_log(sft_run["out"])
    assert [row["step"] for row in log] == list(range(1, 97))
    first, last = sum(r["loss"] for r in log[:5]) / 5, sum(r["loss"] for r in log[-5:]) / 5
    assert last < 0.4 * first, (first, last)
    assert (sft_run["out"] / "config.json").is_file() and (sft_run["out"] / "tokenizer.json").is_file()
    assert (sft_run["out"] / "checkpoints" / "latest").read_text().strip() == "step-00000080"
    assert Manifest(sft_run["tmp"] / "full" / "manifest.json").is_done("sft")
    before, after = valid_rate(tiny_policy["path"], tiny_policy["test"]), valid_rate(sft_run["out"],
                                                                                    tiny_policy["test"])
    assert after >= 0.5 and after > before + 0.4, (before, after)


@pytest.mark.distributed
def test_killed_sft_resumes_from_its_checkpoint_to_the_same_weights(sft_run, tiny_policy):
    import torch
    from transformers import AutoModelForCausalLM

    from policy.sft import run_sft

    tmp = sft_run["tmp"]
    overrides = sft_overrides(tmp, tiny_policy, "killed")
    out = tmp / "killed" / "sft"
    env = {k: v for k, v in os.environ.items() if k not in DIST_ENV}
    log = open(tmp / "killed.log", "w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "run_paused.py"), "60", "policy.sft", *overrides],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None and not (out / "checkpoints" / "latest").exists():
            time.sleep(0.5)
        time.sleep(1.0)  # 'latest' is written last, but give the writer a moment to close its files
        assert proc.poll() is None, (tmp / "killed.log").read_text()[-3000:]
    finally:
        kill_process_group(proc)
        log.close()
    steps_before_kill = [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert steps_before_kill == list(range(1, 41))
    assert not (out / "config.json").exists()  # no final model yet

    saved = {k: os.environ.get(k) for k in DIST_ENV}
    try:
        summary = run_sft(load_config(None, overrides))
        again = run_sft(load_config(None, overrides))
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    assert summary["resumed_from_step"] == 40 and summary["steps"] == 96
    assert again.get("skipped") is True
    resumed = AutoModelForCausalLM.from_pretrained(out).state_dict()
    full = AutoModelForCausalLM.from_pretrained(sft_run["out"]).state_dict()
    assert resumed.keys() == full.keys()
    for name in full:
        torch.testing.assert_close(resumed[name], full[name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.distributed
def test_max_steps_stops_early_and_saves_the_model_where_later_stages_look(tmp_path, tiny_policy):
    from transformers import AutoConfig, GenerationConfig

    from policy.sft import run_sft

    overrides = sft_overrides(tmp_path, tiny_policy, "short")
    saved = {k: os.environ.get(k) for k in DIST_ENV}
    try:
        short = run_sft(load_config(None, overrides), max_steps=3)
        again = run_sft(load_config(None, overrides), max_steps=3)
        longer = run_sft(load_config(None, overrides), max_steps=4)
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    out = tmp_path / "short" / "sft"
    assert short["steps"] == 3 and again.get("skipped") is True and longer["steps"] == 4
    # trained with the KV cache off, saved for generation: use_cache on in both files users' generate() reads
    assert json.loads((out / "config.json").read_text())["use_cache"] is True
    assert json.loads((out / "generation_config.json").read_text())["use_cache"] is True
    assert AutoConfig.from_pretrained(out).use_cache is True and GenerationConfig.from_pretrained(out).use_cache


def test_save_for_generation_turns_the_cache_on_on_disk_only(tiny_policy, tmp_path):
    """The helper SFT and PPO save the policy with: training's use_cache=False stays in memory, not on disk."""
    from transformers import AutoModelForCausalLM

    from training import save_for_generation

    model = AutoModelForCausalLM.from_pretrained(tiny_policy["path"])
    model.config.use_cache = False
    model.generation_config.use_cache = False  # e.g. a model that came from an older e2h SFT checkpoint
    save_for_generation(model, tmp_path / "policy")
    assert json.loads((tmp_path / "policy" / "config.json").read_text())["use_cache"] is True
    assert json.loads((tmp_path / "policy" / "generation_config.json").read_text())["use_cache"] is True
    assert model.config.use_cache is False and model.generation_config.use_cache is False
