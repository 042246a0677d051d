"""``e2h grpo``: GRPO with process rewards, on TRL's GRPOTrainer with a colocated vLLM engine.

    e2h grpo -c configs/demo.yaml                        # --resume continues from the newest checkpoint
    accelerate launch -m policy.grpo -c configs/...      # one process per GPU

An alternative to ``e2h ppo`` with no critic: for each prompt TRL samples ``grpo.num_generations`` completions
(vLLM, colocated), rewards each with the PPO's reward function (policy/process_reward.py: the grader's answer
reward on easy levels, the format penalty, the PRM's min-drop step rewards and bonus, with the constants of the
``ppo`` section) summed to one number per completion (``RolloutReward.total``: GRPO has no per-token rewards, so
where a process reward lands does not matter), and uses the group's mean reward as the baseline. KL to the
frozen SFT policy at ``grpo.kl_coef``. TensorBoard scalars and checkpoints are TRL's, under ``grpo.output_dir``;
the reward function also logs the training accuracy and the mean answer, format and process parts.

vLLM 0.32 weight sync: TRL 1.16 pushes each trained parameter into the colocated engine with the model's
``load_weights``, which vLLM 0.32 rejects once the model is loaded ("'Parameter' object has no attribute
'weight_loader'", seen on the CPU build). The model runner's in-place ``reload_weights(weights_iterator=...)``
takes the same (name, tensor) pairs, so the trainer's generation object syncs through it
(:func:`reload_in_place`); tests/test_ppo_world.py (``test_grpo_raises_training_reward_with_vllm_in_sync``)
checks that the engine samples from the trained weights.
"""

from __future__ import annotations

import os
import types
from pathlib import Path

from e2h.config import ConfigError, RunConfig, add_config_arguments, config_from_args, resolve_shipped_file, save_config
from e2h.layout import RunLayout
from e2h.manifest import Manifest
from e2h.text_format import format_prompt
from policy.ppo import load_prompt_set, start_models
from policy.process_reward import PRMStepScorer, RolloutScorer
from policy.rewards import RewardSettings
from training.tracking import trl_report_to

STAGE = "grpo"


class ProcessRewardFunction:
    """The PPO's rollout reward as a TRL reward function: one number per completion.

    TRL calls it with the prompts, the completions, their token ids and the dataset's other columns (here
    ``answer`` and ``level``); ``log_metric`` (TRL's) receives the accuracy and the reward's parts.
    """

    __name__ = "process_reward"  # TRL names the logged reward after the function

    def __init__(self, scorer: RolloutScorer, tokenizer):
        self.scorer, self.tokenizer = scorer, tokenizer

    def __call__(self, prompts, completions, completion_ids, answer, level, log_metric=None, **_) -> list[float]:
        from policy.rollouts import response_offsets  # local: imports torch

        decoded = [response_offsets(self.tokenizer, list(ids)) for ids in completion_ids]
        parts = self.scorer.score(list(prompts), [text for text, _ in decoded], [offs for _, offs in decoded],
                                  [len(ids) for ids in completion_ids], list(answer), list(level))
        if log_metric is not None and parts:
            n = len(parts)
            log_metric("accuracy/train", sum(part.correct for part in parts) / n)
            log_metric("reward/answer", sum(part.answer for part in parts) / n)
            log_metric("reward/format_penalty", sum(part.penalty for part in parts) / n)
            log_metric("reward/process", sum(part.process_sum for part in parts) / n)
        return [part.total for part in parts]


def reload_in_place(generation) -> None:
    """Push the trained weights into TRL's colocated vLLM engine with vLLM's in-place reload (module docstring)."""
    # streamed, one tensor at a time (a 34B policy has no room for a second copy); each is cloned because under
    # ZeRO-3 the gathered tensor is released once the iterator moves on, and vLLM may hold a layer's tensors
    weights = ((name, tensor.detach().clone()) for name, tensor in generation._iter_named_params())
    runner = generation.llm.llm_engine.model_executor.driver_worker.model_runner
    runner.reload_weights(weights_iterator=weights)
    generation.llm.reset_prefix_cache()


def prompt_dataset(problems):
    """TRL's standard (non-chat) prompt format plus the columns the reward function reads."""
    from datasets import Dataset

    return Dataset.from_list([{"prompt": format_prompt(q.problem), "answer": q.answer, "level": q.level,
                               "problem_id": q.id} for q in problems])


def trainer_args(cfg: RunConfig, out: Path):
    import torch
    from trl import GRPOConfig

    g = cfg.grpo
    if g.batch_size % g.num_generations:
        raise ConfigError(f"grpo.batch_size {g.batch_size} is not a multiple of grpo.num_generations "
                          f"{g.num_generations}")
    cuda = torch.cuda.is_available()
    return GRPOConfig(
        output_dir=str(out), learning_rate=g.lr, per_device_train_batch_size=g.batch_size,
        gradient_accumulation_steps=g.gradient_accumulation_steps, num_generations=g.num_generations,
        max_steps=g.total_steps, warmup_steps=g.warmup_steps, lr_scheduler_type="constant_with_warmup",
        temperature=g.temperature, max_completion_length=g.max_new_tokens, beta=g.kl_coef, epsilon=g.clip_ratio,
        use_vllm=g.use_vllm, vllm_mode="colocate", vllm_max_model_length=g.max_model_len,
        vllm_gpu_memory_utilization=g.gpu_memory_utilization, use_cpu=not cuda,
        bf16=cuda and torch.cuda.is_bf16_supported(), deepspeed=str(resolve_shipped_file(g.deepspeed_config)) if g.deepspeed_config else None,
        save_strategy="steps", save_steps=g.checkpoint_every, logging_steps=g.log_every,
        report_to=trl_report_to(g.report_to), seed=g.seed, data_seed=g.seed,
    )


def run_grpo(cfg: RunConfig, resume: bool = False) -> dict:
    """Train; returns a summary (steps, first and last logged reward, output folder)."""
    import torch
    from transformers import AutoTokenizer
    from trl import GRPOTrainer

    g = cfg.grpo
    policy, prm = start_models(cfg, STAGE)
    prompts = RunLayout(cfg).grpo_prompts
    if not prompts.is_file():
        raise ConfigError(f"prompt set {prompts} not found: run `e2h data prepare` or set grpo.prompts")
    out = RunLayout(cfg).grpo
    tokenizer = AutoTokenizer.from_pretrained(policy)
    problems = load_prompt_set(prompts, tokenizer, g.max_prompt_tokens)

    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if torch.cuda.is_available() else "cpu"
    settings = RewardSettings.from_config(cfg.ppo, cfg.data.train_levels)
    scorer = RolloutScorer(PRMStepScorer(prm, device, settings, g.forward_batch_size), settings,
                           cfg.eval.grader_timeout_s, cfg.grading.options())
    trainer = GRPOTrainer(model=policy, reward_funcs=ProcessRewardFunction(scorer, tokenizer),
                          args=trainer_args(cfg, out), train_dataset=prompt_dataset(problems),
                          processing_class=tokenizer)
    generation = getattr(trainer, "vllm_generation", None)
    if generation is not None and getattr(generation, "mode", None) == "colocate":
        generation.sync_weights = types.MethodType(reload_in_place, generation)
    newest = resume and any(out.glob("checkpoint-*"))
    trainer.train(resume_from_checkpoint=True if newest else None)
    trainer.save_model(str(out))
    trainer.save_state()  # trainer_state.json: the whole log history, next to the weights
    log = [row for row in trainer.state.log_history if "reward" in row]
    summary = {"steps": trainer.state.global_step, "resumed": bool(newest),
               "first_reward": log[0]["reward"] if log else None, "last_reward": log[-1]["reward"] if log else None,
               "output_dir": str(out)}
    if trainer.is_world_process_zero():  # save_model wrote the tokenizer too (it is the processing class)
        save_config(cfg, out)
        Manifest(RunLayout(cfg).manifest).mark_done(STAGE, [out / "config.json"], summary=summary)
    return summary


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the output")


def run(args) -> int:
    summary = run_grpo(config_from_args(args), resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"grpo: {summary['steps']} steps, training reward {summary['first_reward']:.3f} -> "
              f"{summary['last_reward']:.3f} -> {summary['output_dir']}")
    return 0


if __name__ == "__main__":  # `accelerate launch -m policy.grpo -c ...` runs one rank per process
    import argparse
    import sys

    _parser = argparse.ArgumentParser(prog="python -m policy.grpo", description=__doc__.split("\n")[0])
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))
