"""PPO end to end on the leveled world with tiny models on the CPU: vLLM rollouts, two DeepSpeed engines (ZeRO-2),
the real grader and a PRM. The run must raise the mean training reward and the sampled accuracy over the SFT start
(measured in the same run); a resumed run continues the step count from its newest checkpoint.

Set-up (module fixture): a one-subject world (Arithmetic, level 1 only, small numbers: answers spread over about
sixty values, so guessing a frequent answer does not pay), its tokenizer and tiny Llamas
(e2h.world.commands.build), a short SFT (policy/sft.py) on 800 problems, PPO prompts from 1600 others (so a rise
is learning that carries to unseen problems, not recall of SFT data), and a PRM on the world's PRM backbone
(untrained: its step scores are near-constant, so the answer reward drives learning; the process-reward path
still runs). Rollouts at the reference's temperature 0.7.

Two things measured on 2026-11-27 shape it. (1) The reference's format-penalty table (0.75 when the answer string
appears in the last step, 1.0 otherwise) is a substring test: on a modular-arithmetic world "10 mod 3 = 0 ...
# Answer 0" always earns 0.75 and PPO drifted to answering 0, raising reward and sampled accuracy while greedy
accuracy fell 0.34 -> 0.27. The world's format is fixed by SFT, so the penalty is off here
(ppo.format_penalty_value=0), as in configs/demo.yaml. (2) 64 rollouts a step at lr 1e-4 random-walk (greedy
0.23 -> 0.15); 256 at lr 5e-5 raise the reward and the sampled accuracy steadily. PPO on the SFT problems
themselves lifted sampled accuracy 0.30 -> 0.50 in 96 steps while greedy validation moved 0.234 -> 0.266: recall,
not skill. On unseen prompts (this set-up, 64 steps) sampled accuracy went 0.15 -> 0.24 and greedy validation
0.195 -> 0.227 (4 of 128 problems). Greedy validation is logged and the best checkpoint kept (reference
section 4), but its rise is too small to assert: issue #8 stays open on it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from e2h.config import load_config
from e2h.records import Problem, load_records, save_records

pytestmark = [pytest.mark.distributed, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]
DEEPSPEED = str(ROOT / "configs/deepspeed/zero2.json")
DIST_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_PORT")
SIZES = {"policy.hidden_size": 256, "policy.intermediate_size": 512, "policy.num_hidden_layers": 4,
         "policy.num_attention_heads": 8, "policy.num_key_value_heads": 4, "policy.max_position_embeddings": 128,
         "prm_backbone.hidden_size": 64, "prm_backbone.intermediate_size": 128,
         "prm_backbone.num_attention_heads": 2, "prm_backbone.num_key_value_heads": 1,
         "prm_backbone.max_position_embeddings": 128}
SFT_PROBLEMS = 800  # the first level-1 training problems go to SFT; PPO samples on the rest, never seen in SFT
WORLD = {"world.train_per_level": 2400, "world.validation_per_level": 128, "world.test_per_level": 1,
         "world.subjects": "[Arithmetic]", "world.leaf_max": "[9,9,9,9,9]", "world.value_cap": "[30,30,30,30,30]",
         "data.train_levels": "[1]", "data.prompt_levels": "[1]", **SIZES}
SFT = {"sft.lr": 1e-3, "sft.warmup_ratio": 0.1, "sft.epochs": 10, "sft.micro_batch_size": 16,
       "sft.global_batch_size": 32, "sft.max_length": 128, "sft.freeze_embeddings_and_norms": False,
       "sft.deepspeed_config": DEEPSPEED}
STEPS = 48
EVERY = 16
PPO = {"ppo.rollout_batch_size": 256, "ppo.step_batch_size": 64, "ppo.micro_batch_size": 16,
       "ppo.total_steps": STEPS, "ppo.ppo_epochs": 1, "ppo.lr": 5e-5, "ppo.warmup_steps": 0,
       "ppo.temperature": 0.7, "ppo.max_new_tokens": 48, "ppo.max_prompt_tokens": 32, "ppo.max_model_len": 128,
       "ppo.kv_cache_gib": 0.0625, "ppo.validate_every": EVERY, "ppo.checkpoint_every": EVERY,
       "ppo.format_penalty_value": 0.0, "ppo.freeze_embeddings_and_norms": False, "ppo.deepspeed_config": DEEPSPEED}


def overrides(settings: dict) -> list[str]:
    return [f"{key}={value}" for key, value in settings.items()]


def level_one(src: Path, dst: Path) -> Path:
    save_records(dst, [p for p in load_records(src, Problem) if p.level == 1])
    return dst


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from transformers import AutoTokenizer

    from e2h.world import world_sft_examples
    from e2h.world.commands import build
    from policy.sft import run_sft
    from prm.model import RewardModel

    tmp = tmp_path_factory.mktemp("ppo_world")
    saved = {k: os.environ.get(k) for k in DIST_ENV}
    shm_before = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    base = {"run.out_dir": tmp / "run", **WORLD}
    build(load_config(None, overrides(base)))
    train = load_records(level_one(tmp / "run/world/train.jsonl", tmp / "train.jsonl"), Problem)
    validation = level_one(tmp / "run/world/validation.jsonl", tmp / "validation.jsonl")
    save_records(tmp / "sft.jsonl", world_sft_examples(train[:SFT_PROBLEMS]))
    prompts = tmp / "prompts.jsonl"
    save_records(prompts, train[SFT_PROBLEMS:])
    run_sft(load_config(None, overrides({**base, **SFT, "sft.data": tmp / "sft.jsonl",
                                         "sft.init": tmp / "run/models/policy_init"})))
    tokenizer = AutoTokenizer.from_pretrained(tmp / "run/models/prm_init")
    RewardModel.from_backbone(tmp / "run/models/prm_init").save_pretrained(tmp / "prm", tokenizer)
    from policy.vllm_engine import VLLMGenerator

    generator = VLLMGenerator(tmp / "run/sft", max_model_len=128, seed=0, kv_cache_gib=0.0625)
    yield {"tmp": tmp, "base": base, "generator": generator, "prompts": prompts, "validation": validation}
    generator.close()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if os.path.isdir("/dev/shm"):  # DeepSpeed's shared-memory allreduce buffers (only when LOCAL_SIZE is set)
        for name in set(os.listdir("/dev/shm")) - shm_before:
            if name.startswith("deepspeed_allreduce_buffer_"):
                Path("/dev/shm", name).unlink(missing_ok=True)


def ppo_config(world, out: str, **extra):
    tmp = world["tmp"]
    return load_config(None, overrides({
        **world["base"], **PPO, "ppo.policy_path": tmp / "run/sft", "ppo.prm_path": tmp / "prm",
        "ppo.prompts": world["prompts"], "ppo.validation_prompts": world["validation"],
        "ppo.output_dir": tmp / out, **extra}))


@pytest.fixture(scope="module")
def ppo_run(world):
    from policy.ppo import run_ppo

    summary = run_ppo(ppo_config(world, "ppo"), generator=world["generator"])
    log = [json.loads(line) for line in (world["tmp"] / "ppo/train_log.jsonl").read_text().splitlines()]
    return summary, log


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def test_ppo_raises_training_reward(ppo_run, world):
    summary, log = ppo_run
    train = [row for row in log if "reward/total" in row]
    assert [row["step"] for row in train] == list(range(1, STEPS + 1))
    # the first steps' rollouts come from (nearly) the SFT policy: the start measured in this very run
    rewards = [row["reward/total"] for row in train]
    accuracy = [row["accuracy/train"] for row in train]
    assert mean(rewards[-8:]) > mean(rewards[:4]) + 0.03, rewards
    assert mean(accuracy[-8:]) > mean(accuracy[:4]) + 0.03, accuracy
    validation = {row["step"]: row["accuracy"] for row in summary["validation"]}
    assert set(validation) == set(range(0, STEPS + 1, EVERY))
    assert summary["best"]["accuracy"] == max(validation.values())
    # Greedy validation accuracy is logged at every check and the best checkpoint is kept (reference §4); its rise
    # is within noise here (see the module docstring), so it is not asserted.
    out = world["tmp"] / "ppo"
    assert (out / "best" / "config.json").is_file() and (out / "config.json").is_file()
    assert list((out / "tensorboard").glob("events.*"))
    for key in ("reward/answer", "reward/format_penalty", "reward/process", "kl/sum_per_rollout", "ppo/clipfrac",
                "ppo/value_clipfrac", "accuracy/train"):
        assert key in train[0], key
    assert train[-1]["kl/sum_per_rollout"] > 0  # the actor moved away from the reference


def test_ppo_resume_continues_the_step_count(ppo_run, world):
    from policy.ppo import run_ppo

    tmp = world["tmp"]
    shutil.copytree(tmp / "ppo", tmp / "ppo_resumed")  # checkpoints every EVERY steps; the newest before the end
    latest = STEPS - EVERY
    log_before = (tmp / "ppo_resumed/train_log.jsonl").read_text().splitlines()
    summary = run_ppo(ppo_config(world, "ppo_resumed", **{"ppo.total_steps": latest + 1}), resume=True,
                      generator=world["generator"])
    assert summary["resumed_from_step"] == latest
    new = [json.loads(line) for line in (tmp / "ppo_resumed/train_log.jsonl").read_text().splitlines()]
    assert new[:len(log_before)] == [json.loads(line) for line in log_before]
    assert [row["step"] for row in new[len(log_before):] if "reward/total" in row] == [latest + 1]
    # the validation history and best-so-far came back with the checkpoint, then the one new step's check
    assert [row["step"] for row in summary["validation"]] == [*range(0, latest + 1, EVERY), latest + 1]
