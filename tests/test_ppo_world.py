"""PPO end to end on the leveled world with tiny models on the CPU: vLLM rollouts, two DeepSpeed engines (ZeRO-2),
the real grader and a PRM. The run must raise the mean training reward, the sampled accuracy and the greedy
validation accuracy over the SFT start (measured in the same run); a resumed run continues the step count from
its newest checkpoint.

Set-up (module fixture): a one-subject world (Arithmetic, level 1 only, small numbers), its tokenizer and tiny
Llamas (e2h.world.commands.build), SFT (policy/sft.py) on 3000 problems whose demonstrations are noisy: 60% end in
an off-by-one answer line (steps right, "# Answer" one more than the last result), the classic case where a
correctness reward knows what the demonstrations did not. PPO prompts are 1600 other problems (so the rise is
learning that carries to unseen problems, not recall of SFT data); the PRM is the world's PRM backbone, untrained
(its step scores are near-constant, so the answer reward drives learning; the process-reward path still runs).
Rollouts at the reference's temperature 0.7.

Measured on 2026-11-27 (this set-up, 48 steps): greedy validation 0.27 -> 0.72 (step 16) -> 0.80, sampled
accuracy 0.41 -> 0.78, reward 0.66 -> 1.0. What shaped it: (1) the reference's format-penalty table (0.75 when the
answer string appears in the last step) is a substring test: on a modular world "10 mod 3 = 0 ... # Answer 0"
always earns 0.75 and PPO drifted to answering 0 while greedy accuracy fell 0.34 -> 0.27; the world's format is
fixed by SFT, so the penalty is off (ppo.format_penalty_value=0), as in configs/demo.yaml. (2) The SFT start
decides what 48 steps can show: from an 800-problem start (greedy 0.14 with noisy demonstrations, 0.23 without)
greedy accuracy moved by a few problems at most (lr 5e-5: 0.14 -> 0.15; lr 1e-4 with a critic lr of 1e-3:
0.14 -> 0.18; lr 2e-4: down to 0.09 first). From this 3000-problem start a critic lr of 1e-4 or 1e-3 gives the
same curve; with clean demonstrations the start is already 0.87 greedy and PPO reached 0.89 (sampled accuracy
0.83 -> 0.92).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from e2h.config import load_config
from e2h.records import Problem, load_records, save_records
from e2h.text_format import ANSWER_MARKER

pytestmark = [pytest.mark.distributed, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]
DEEPSPEED = str(ROOT / "configs/deepspeed/zero2.json")
DIST_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_PORT")
SIZES = {"policy.hidden_size": 256, "policy.intermediate_size": 512, "policy.num_hidden_layers": 4,
         "policy.num_attention_heads": 8, "policy.num_key_value_heads": 4, "policy.max_position_embeddings": 128,
         "prm_backbone.hidden_size": 64, "prm_backbone.intermediate_size": 128,
         "prm_backbone.num_attention_heads": 2, "prm_backbone.num_key_value_heads": 1,
         "prm_backbone.max_position_embeddings": 128}
SFT_PROBLEMS = 3000  # the first level-1 training problems go to SFT; PPO samples on the rest, never seen in SFT
NOISY_FRACTION = 0.6  # SFT demonstrations ending in an off-by-one answer
WORLD = {"world.train_per_level": 4600, "world.validation_per_level": 256, "world.test_per_level": 1,
         "world.subjects": "[Arithmetic]", "world.leaf_max": "[9,9,9,9,9]", "world.value_cap": "[30,30,30,30,30]",
         "data.train_levels": "[1]", "data.prompt_levels": "[1]", **SIZES}
SFT = {"sft.lr": 1e-3, "sft.warmup_ratio": 0.1, "sft.epochs": 8, "sft.micro_batch_size": 16,
       "sft.global_batch_size": 32, "sft.max_length": 128, "sft.freeze_embeddings_and_norms": False,
       "sft.deepspeed_config": DEEPSPEED}
STEPS = 48
EVERY = 16
PPO = {"ppo.rollout_batch_size": 256, "ppo.step_batch_size": 64, "ppo.micro_batch_size": 16,
       "ppo.total_steps": STEPS, "ppo.ppo_epochs": 1, "ppo.lr": 1e-4, "ppo.warmup_steps": 0,
       "ppo.temperature": 0.7, "ppo.max_new_tokens": 48, "ppo.max_prompt_tokens": 32, "ppo.max_model_len": 128,
       "ppo.kv_cache_gib": 0.0625, "ppo.validate_every": EVERY, "ppo.checkpoint_every": EVERY,
       "ppo.format_penalty_value": 0.0, "ppo.freeze_embeddings_and_norms": False, "ppo.deepspeed_config": DEEPSPEED}

GRPO_STEPS = 24
GRPO = {"grpo.lr": 1e-4, "grpo.num_generations": 8, "grpo.batch_size": 128,
        "grpo.total_steps": GRPO_STEPS, "grpo.temperature": 0.7, "grpo.max_new_tokens": 48,
        "grpo.max_model_len": 128, "grpo.max_prompt_tokens": 32, "grpo.checkpoint_every": GRPO_STEPS // 2}


def overrides(settings: dict) -> list[str]:
    return [f"{key}={value}" for key, value in settings.items()]


def off_by_one_answers(examples: list, fraction: float, seed: int = 0) -> list:
    """SFT examples where ``fraction`` of the integer answers are replaced by answer + 1 (steps untouched)."""
    rng = random.Random(seed)
    noisy = []
    for example in examples:
        body, marker, answer = example.completion.rpartition(ANSWER_MARKER)
        if marker and answer.lstrip("-").isdigit() and rng.random() < fraction:
            example = example.model_copy(update={"completion": f"{body}{marker}{int(answer) + 1}"})
        noisy.append(example)
    return noisy


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
    save_records(tmp / "sft.jsonl", off_by_one_answers(world_sft_examples(train[:SFT_PROBLEMS]), NOISY_FRACTION))
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
    assert mean(rewards[-8:]) > mean(rewards[:4]) + 0.1, rewards
    assert mean(accuracy[-8:]) > mean(accuracy[:4]) + 0.15, accuracy
    validation = {row["step"]: row["accuracy"] for row in summary["validation"]}
    assert set(validation) == set(range(0, STEPS + 1, EVERY))
    # greedy decoding of the SFT start writes the off-by-one answer it was mostly shown; PPO must undo that
    assert validation[STEPS] > validation[0] + 0.2, validation
    assert summary["best"]["accuracy"] == max(validation.values())
    out = world["tmp"] / "ppo"
    assert (out / "best" / "config.json").is_file() and (out / "config.json").is_file()
    assert list((out / "tensorboard").glob("events.*"))
    for key in ("reward/answer", "reward/format_penalty", "reward/process", "kl/sum_per_rollout", "ppo/clipfrac",
                "ppo/value_clipfrac", "accuracy/train"):
        assert key in train[0], key
    assert train[-1]["kl/sum_per_rollout"] > 0  # the actor moved away from the reference


def test_ppo_resume_continues_the_step_count(ppo_run, world):
    """A requeued run (the same config) resumes at its newest checkpoint and logs each later step once; a run of
    another config is refused, naming both hashes, before any model is built."""
    from training import CheckpointMismatch
    from policy.ppo import run_ppo

    tmp = world["tmp"]
    shutil.copytree(tmp / "ppo", tmp / "ppo_resumed")  # checkpoints every EVERY steps; the newest before the end
    latest = STEPS - EVERY
    log_before = [json.loads(line) for line in (tmp / "ppo_resumed/train_log.jsonl").read_text().splitlines()]
    with pytest.raises(CheckpointMismatch, match="config hash"):
        run_ppo(ppo_config(world, "ppo_resumed", **{"ppo.total_steps": STEPS + 8}), generator=world["generator"])
    summary = run_ppo(ppo_config(world, "ppo_resumed"), generator=world["generator"])
    assert summary["resumed_from_step"] == latest
    new = [json.loads(line) for line in (tmp / "ppo_resumed/train_log.jsonl").read_text().splitlines()]
    kept = [row for row in log_before if row["step"] <= latest]  # what the checkpoint vouches for
    assert new[:len(kept)] == kept
    assert [row["step"] for row in new[len(kept):] if "reward/total" in row] == list(range(latest + 1, STEPS + 1))
    # the validation history and best-so-far came back with the checkpoint, then the later steps' checks
    assert [row["step"] for row in summary["validation"]] == list(range(0, STEPS + 1, EVERY))


def test_ppo_under_zero3_pushes_whole_weights_to_vllm(ppo_run, world):
    """ZeRO-3 keeps only placeholders of the actor's parameters between steps: the weight push must gather whole
    tensors (policy.ppo.actor_state_dict), or vLLM reloads garbage. Two steps, then the engine's greedy answers
    must be the saved model's."""
    from e2h.text_format import format_prompt
    from policy.generator import GenerationParams
    from policy.hf_generator import HFGenerator
    from policy.ppo import run_ppo

    tmp = world["tmp"]
    zero3 = json.loads((ROOT / "configs/deepspeed/zero3.json").read_text())
    zero3["zero_optimization"]["stage3_param_persistence_threshold"] = 0  # partition even the tiny tensors
    (tmp / "zero3.json").write_text(json.dumps(zero3))
    summary = run_ppo(ppo_config(world, "ppo_zero3", **{
        "ppo.deepspeed_config": tmp / "zero3.json", "ppo.total_steps": 2, "ppo.rollout_batch_size": 64,
        "ppo.step_batch_size": 32, "ppo.validate_every": 2, "ppo.checkpoint_every": 0, "ppo.validation_size": 16}),
        generator=world["generator"])
    assert summary["steps"] == 2 and [row["step"] for row in summary["validation"]] == [0, 2]
    prompts = [format_prompt(q.problem) for q in load_records(world["validation"], Problem)[:16]]
    greedy = GenerationParams(n=1, temperature=0.0, max_tokens=48)
    from_engine = [out[0].text for out in world["generator"].generate(prompts, greedy, seeds=[0] * 16)]
    from_saved = [out[0].text for out in HFGenerator(tmp / "ppo_zero3").generate(prompts, greedy, seeds=[0] * 16)]
    # vLLM's and PyTorch's fp32 kernels may break a near-tie differently; a wrong push changes every answer
    assert sum(a == b for a, b in zip(from_engine, from_saved)) >= 14, list(zip(from_engine, from_saved))


def test_grpo_raises_training_reward_with_vllm_in_sync(world):
    """`e2h grpo` (TRL's GRPOTrainer, colocated vLLM, the PPO's reward) from the same SFT start, in its own process.

    Measured on 2026-11-27: sampled accuracy 0.24 -> about 0.55 in 24 steps of 16 prompts x 8; the vLLM-vs-trainer
    log-probability gap of the sampled tokens stayed near 0.001. With the weight sync turned off (the engine keeps
    the SFT weights) the gap grew to 0.13 within 12 steps and the KL exploded: the check below can fail.
    """
    tmp = world["tmp"]
    settings = {**world["base"], **GRPO, "grpo.policy_path": tmp / "run/sft", "grpo.prm_path": tmp / "prm",
                "grpo.prompts": world["prompts"], "grpo.output_dir": tmp / "grpo",
                "ppo.format_penalty_value": 0.0}  # the reward's constants are the ppo section's
    # a fresh process, without the rendezvous variables this process's SFT set (its port is still taken)
    env = {key: value for key, value in os.environ.items() if key not in (*DIST_ENV, "MASTER_ADDR")}
    subprocess.run([sys.executable, "-m", "e2h", "grpo", *overrides(settings)], check=True, cwd=ROOT, env=env)
    state = json.loads((tmp / "grpo/trainer_state.json").read_text())
    log = [row for row in state["log_history"] if "reward" in row]
    assert [row["step"] for row in log] == list(range(1, GRPO_STEPS + 1))
    rewards = [row["reward"] for row in log]
    accuracy = [row["accuracy/train"] for row in log]
    print("GRPO", rewards, accuracy, [row["sampling/sampling_logp_difference/mean"] for row in log])
    assert mean(rewards[-6:]) > mean(rewards[:3]) + 0.1, rewards
    assert mean(accuracy[-6:]) > mean(accuracy[:3]) + 0.1, accuracy
    # vLLM samples from the trained weights: its log-probabilities of the sampled tokens match the trainer's
    # (a stale engine would drift away as the policy moves, and the policy did move: KL to the SFT start grew)
    assert log[-1]["kl"] > 10 * log[0]["kl"] and log[-1]["kl"] > 1e-3, [row["kl"] for row in log]
    assert max(row["sampling/sampling_logp_difference/mean"] for row in log) < 0.01
    assert (tmp / "grpo/model.safetensors").is_file() and list((tmp / "grpo").glob("checkpoint-*"))
