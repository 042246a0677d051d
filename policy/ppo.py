"""``e2h ppo``: PPO with process rewards (reference §4): DeepSpeed actor and critic, vLLM rollouts.

    e2h ppo -c configs/demo.yaml                        # one process; resumes from the newest checkpoint if any
    e2h ppo -c configs/demo.yaml --fresh                # delete the output's checkpoints, start at step 0
    torchrun --nproc_per_node 8 -m policy.ppo -c configs/llemma-7b-prm800k-level1-3.yaml

Models: the actor starts from the SFT checkpoint (``ppo.policy_path``, default ``<run>/sft``) and a frozen copy of
it is the reference policy; the PRM (``ppo.prm_path``, default ``<run>/prm``) is frozen and scores rollouts; the
critic is a trainable copy of the PRM (policy/value_model.py). Actor and critic are two DeepSpeed engines (ZeRO
2 or 3 from ``ppo.deepspeed_config``). Rollouts come from a colocated vLLM engine (``transformers.generate`` where
vLLM is missing); after every update the actor's weights are pushed into it. With ``ppo.rollout_actors`` > 0 the
engines live on Ray actors instead, anywhere in the Ray cluster (policy/ray_rollouts.py), behind the same
interface.

One PPO step::

    prompts (rollout_batch_size, this rank's share)  --vLLM, T=0.7-->  responses (token ids, EOS included)
    reward per rollout (policy/rewards.py): grader answer reward (easy levels only, 0.25 elsewhere) - format
        penalty on the last token; PRM min-drop step rewards + 0.25/K bonus on the separator tokens
    per token: - kl_coef * max(logp - logp_ref, 0);  whiten rewards (keep the mean);  GAE (gamma = lambda = 1);
        whiten advantages
    ppo_epochs x (rollout_batch_size / step_batch_size) optimizer steps of the clipped policy and value losses
    push the actor's weights into the generator

Every ``validate_every`` steps (and before the first and after the last) the policy answers the validation set
greedily; the best validation accuracy's weights are kept in ``<out>/best`` (checkpoint selection as in the
reference); the last weights go to ``<out>``. TensorBoard scalars: reward parts, KL, accuracy, clip fractions,
losses, lr. Checkpoints (both engines, DeepSpeed state) every ``checkpoint_every`` PPO steps. Resume is the
default: a run whose output holds a checkpoint of the same config hash (:func:`ppo_config_hash`) continues from it
with the same step count, data order and best-so-far; one of another config is an error naming both hashes;
``--fresh`` starts over. SIGTERM / SIGUSR1 save both engines after the current PPO step and exit with code 75.

Length: ``ppo.total_epochs`` passes over the prompts, i.e. floor(total_epochs x prompts / rollout_batch_size) PPO
steps (the reference's 50 epochs: about 1,100 steps), unless ``ppo.total_steps`` is set; warmup is
``ppo.warmup_ratio`` of those steps, rounded up, unless ``ppo.warmup_steps`` is set (:func:`ppo_schedule`). Rollouts
sample with ``temperature`` and ``top_k`` (reference: 0.7, 50). Reward and advantage whitening use the statistics
of the whole batch over all ranks (all-reduced). ``ppo.whiten_padding: reference`` also counts the padding in the
whitening statistics and runs GAE through it, as the reference does.

Departures from the reference, on purpose: by default (``whiten_padding: masked``) whitening statistics and GAE
cover real response tokens only; losses always do (the reference also averages over padding); step boundaries come
from tokenizer offsets (any tokenizer) instead of Llama's [13, 13].
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import training
from e2h.config import ConfigError, RunConfig, add_config_arguments, config_from_args, save_config
from e2h.layout import RunLayout
from e2h.manifest import Manifest, file_checksum
from e2h.records import Problem, load_records
from e2h.text_format import format_prompt
from policy.generator import GenerationParams, build_generator, request_seed
from policy.process_reward import PRMStepScorer, RolloutScorer, grade_predictions
from policy.rewards import RewardSettings, predicted_answer
from policy.value_model import load_value_model
from training import freeze_embeddings_and_norms

STAGE = "ppo"


@dataclass
class PPOPaths:
    policy: str
    prm: str
    prompts: Path
    validation: Path
    out: Path


def start_models(cfg: RunConfig, section: str) -> tuple[str, str]:
    """The policy (default ``<run>/sft``) and PRM (default ``<run>/prm``) a ``section`` ("ppo", "grpo") starts
    from, each checked to be a model folder."""
    layout = RunLayout(cfg)
    policy, prm = (str(layout.ppo_policy), str(layout.ppo_prm)) if section == "ppo" else (
        str(layout.grpo_policy), str(layout.grpo_prm))
    for what, path in (("policy (SFT checkpoint)", policy), ("PRM", prm)):
        if not (Path(path) / "config.json").is_file():
            raise ConfigError(f"{what} {path} is not a model folder: train it first or set {section}.policy_path / "
                              f"{section}.prm_path")
    return policy, prm


def ppo_paths(cfg: RunConfig) -> PPOPaths:
    policy, prm = start_models(cfg, "ppo")
    layout = RunLayout(cfg)
    prompts, validation = layout.ppo_prompts, layout.ppo_validation_prompts
    for path in (prompts, validation):
        if not path.is_file():
            raise ConfigError(f"prompt set {path} not found: run `e2h data prepare` or set ppo.prompts / "
                              f"ppo.validation_prompts")
    out = layout.ppo
    return PPOPaths(policy, prm, prompts, validation, out)


def rollout_generator(model: str, cfg: RunConfig):
    """The rollout engine: vLLM colocated in this process (one per rank), the same on ``ppo.rollout_actors`` Ray
    actors, or transformers.generate where vLLM is missing."""
    p = cfg.ppo
    return build_generator(p.rollout_backend, model, actors=p.rollout_actors, cpus_per_actor=p.rollout_cpus_per_actor,
                           gpus_per_actor=p.rollout_gpus_per_actor, max_model_len=p.max_model_len, seed=p.seed,
                           kv_cache_gib=p.kv_cache_gib)


def actor_state_dict(engine) -> dict:
    """Full actor weights on every rank (ZeRO-3 gathers the shards), for the generator's weight sync."""
    module = engine.module
    if engine.zero_optimization_stage() == 3:
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(module.parameters())):
            return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    return {k: v.detach() for k, v in module.state_dict().items()}


def load_prompt_set(path: Path, tokenizer, max_prompt_tokens: int, limit: int | None = None) -> list[Problem]:
    """Problems whose prompt fits ``max_prompt_tokens`` (longer ones are dropped, as in the reference); with
    ``limit``, a fixed random subset of that many, in file order. Not the first rows: prompt files are sorted by
    level, and the first 100 of the world's validation split hold no level 4-5 problem."""
    problems = [p for p in load_records(path, Problem)
                if len(tokenizer(format_prompt(p.problem))["input_ids"]) <= max_prompt_tokens]
    if not problems:
        raise ConfigError(f"{path}: no problem has a prompt of at most {max_prompt_tokens} tokens")
    if limit is not None and limit < len(problems):
        problems = [problems[i] for i in sorted(random.Random(0).sample(range(len(problems)), limit))]
    return problems


def validate(generator, tokenizer, problems: list[Problem], max_tokens: int, timeout_s: float, dist,
             grading: dict | None = None) -> dict:
    """Greedy accuracy on this rank's share of ``problems``, summed over ranks: {"accuracy", "accuracy/level_k"}."""
    mine = problems[dist.rank::dist.world_size]
    outs = generator.generate([format_prompt(p.problem) for p in mine],
                              GenerationParams(n=1, temperature=0.0, max_tokens=max_tokens), seeds=[0] * len(mine))
    texts = [tokenizer.decode(o[0].token_ids, skip_special_tokens=True) if o[0].token_ids else o[0].text
             for o in outs]
    correct = grade_predictions([predicted_answer(t) for t in texts], [p.answer for p in mine], timeout_s, grading)
    levels = sorted({p.level for p in problems if p.level is not None})
    counts = [len(mine), sum(correct)]
    for level in levels:
        counts += [sum(p.level == level for p in mine), sum(c for p, c in zip(mine, correct) if p.level == level)]
    counts = training.sum_across_ranks(counts)
    out = {"accuracy": counts[1] / max(counts[0], 1)}
    for i, level in enumerate(levels):
        out[f"accuracy/level_{level}"] = counts[3 + 2 * i] / max(counts[2 + 2 * i], 1)
    return out


def ppo_schedule(p, num_prompts: int) -> tuple[int, int]:
    """(PPO steps, warmup PPO steps) of a PPO section over ``num_prompts`` prompts.

    Steps: ``p.total_steps`` when set, else floor(total_epochs x num_prompts / rollout_batch_size) (the
    reference's count: episodes over the rollout batch). Warmup: ``p.warmup_steps`` when set, else
    ceil(warmup_ratio x steps); at most the steps.

    >>> from e2h.config import PPOSection
    >>> ppo_schedule(PPOSection(), 12_000)   # the reference's 50 epochs of 512 rollouts, warmup ratio 0.01
    (1171, 12)
    """
    if p.total_steps is not None:
        total = p.total_steps
    else:
        total = math.floor(p.total_epochs * num_prompts / p.rollout_batch_size)
    if total < 1:
        raise ConfigError(f"ppo: {p.total_epochs} epochs of {num_prompts} prompts make no PPO step of "
                          f"{p.rollout_batch_size} rollouts (set ppo.total_epochs or ppo.total_steps)")
    warmup = p.warmup_steps if p.warmup_steps is not None else math.ceil(p.warmup_ratio * total)
    return total, min(warmup, total)


def ppo_config_hash(cfg: RunConfig, paths: PPOPaths) -> str:
    """What decides the trained policy: the ppo section less paths, logging, checkpoint/validation cadence and
    where rollouts run; the start models; the prompts' checksum; the grading mode and train levels (rewards)."""
    placement = {"rollout_backend", "rollout_actors", "rollout_cpus_per_actor", "rollout_gpus_per_actor",
                 "kv_cache_gib", "forward_batch_size", "validation_prompts", "validation_size", "prompts"}
    section = {k: v for k, v in training.training_keys(cfg.ppo).items() if k not in placement}
    return training.config_hash({"ppo": section, "policy": paths.policy, "prm": paths.prm,
                                 "prompts": file_checksum(paths.prompts),
                                 "grading": cfg.grading.model_dump(mode="json"), "train_levels": cfg.data.train_levels})


def run_ppo(cfg: RunConfig, resume: bool = False, generator=None, fresh: bool = False) -> dict:
    """Train; returns a summary. ``generator``: reuse a rollout engine (tests) built on ``ppo.policy_path``.
    Resumes from the output's checkpoints of the same config hash by default; ``fresh`` deletes them first,
    ``resume`` requires one. Raises :class:`training.Stopped` after saving when SIGTERM/SIGUSR1 arrive."""
    p = cfg.ppo
    paths = ppo_paths(cfg)
    config_key = ppo_config_hash(cfg, paths)
    plan = training.resume_plan(paths.out, config_key, fresh=fresh, require=resume)  # before any model is built
    start_time = time.perf_counter()
    if p.rollout_batch_size % p.step_batch_size:
        raise ConfigError(f"ppo.rollout_batch_size {p.rollout_batch_size} is not a multiple of ppo.step_batch_size "
                          f"{p.step_batch_size}")
    tokenizer, problems, validation = _load_prompts(cfg, paths)
    # the generator first: vLLM spawns its engine process before this one joins a process group
    own_generator = generator is None
    if own_generator:
        generator = rollout_generator(paths.policy, cfg)
    dist = training.init_distributed()
    if plan == "fresh":
        training.start_fresh(paths.out, dist)
    if p.rollout_batch_size % dist.world_size:
        raise ConfigError(f"ppo.rollout_batch_size must be a multiple of the {dist.world_size} processes")
    total_steps, warmup_steps = ppo_schedule(p, len(problems))
    models = _build_models(cfg, paths, dist, tokenizer, total_steps, warmup_steps)
    out = paths.out
    first, best, history = 0, {"accuracy": -1.0, "step": -1}, []
    if plan == "resume":
        first, best, history = _resume(models, out)
        generator.load_weights(actor_state_dict(models.actor_engine))
    if first == 0 and not own_generator:
        generator.load_weights(actor_state_dict(models.actor_engine))  # a reused engine may hold other weights
    if dist.is_main:
        save_config(cfg, out)
        if first == 0:
            (out / "train_log.jsonl").unlink(missing_ok=True)
        else:
            training.truncate_train_log(out, first)  # rows a killed run wrote after its last checkpoint
    logger = training.TrainLogger(dist, out, total_steps, initial_step=first, desc="ppo", report_to=p.report_to,
                                  config=cfg.model_dump(mode="json"))
    validator = _Validator(cfg, generator, models, validation, dist, logger, out, best, history)
    if first == 0:
        validator.run(0)
    _train_loop(cfg, models, generator, own_generator, problems, dist, logger, validator, out, config_key,
                first, total_steps)

    training.save_final(models.actor_engine, out, models.save_actor)
    training.save_final(models.critic_engine, out / "critic", models.save_critic)
    logger.close()
    if own_generator:
        generator.close()
    log = [row for row in training.read_train_log(out) if "reward/total" in row]
    summary = {"steps": total_steps, "resumed_from_step": first, "best": validator.best,
               "validation": validator.history,
               "first_reward": log[0]["reward/total"] if log else None,
               "last_reward": log[-1]["reward/total"] if log else None,
               "seconds": time.perf_counter() - start_time, "output_dir": str(out)}
    if dist.is_main:
        Manifest(RunLayout(cfg).manifest).mark_done(STAGE, [out / "config.json"], summary=summary)
    training.barrier()
    return summary


def _load_prompts(cfg: RunConfig, paths: PPOPaths):
    """The policy's tokenizer, the training prompts and the validation prompts (each fitting ppo.max_prompt_tokens)."""
    from transformers import AutoTokenizer  # heavy: the CLI imports this module for --help

    p = cfg.ppo
    tokenizer = AutoTokenizer.from_pretrained(paths.policy)
    problems = load_prompt_set(paths.prompts, tokenizer, p.max_prompt_tokens)
    validation = load_prompt_set(paths.validation, tokenizer, p.max_prompt_tokens, p.validation_size)
    if len(problems) < p.rollout_batch_size:
        raise ConfigError(f"{paths.prompts}: {len(problems)} prompts, fewer than ppo.rollout_batch_size "
                          f"{p.rollout_batch_size}")
    return tokenizer, problems, validation


@dataclass
class _PPOModels:
    """Everything a PPO step trains or reads: the actor and critic engines, the frozen reference, the reward."""

    tokenizer: Any
    pad_id: int
    actor_engine: Any
    critic_engine: Any
    reference: Any
    scorer: RolloutScorer
    micro: int  # sequences per micro-batch and rank

    def save_actor(self, state: dict, folder: Path) -> None:  # trained with the cache off, saved for generation
        training.save_for_generation(self.actor_engine.module, folder, state_dict=state, tokenizer=self.tokenizer)

    def save_critic(self, state: dict, folder: Path) -> None:
        self.critic_engine.module.save_pretrained(folder, state_dict=state)


def _build_models(cfg: RunConfig, paths: PPOPaths, dist, tokenizer, total_steps: int, warmup_steps: int) -> _PPOModels:
    import torch  # heavy: see _load_prompts
    from transformers import AutoModelForCausalLM

    p = cfg.ppo
    device = dist.device
    updates_per_step = p.ppo_epochs * p.rollout_batch_size // p.step_batch_size
    # the LR schedule counts optimizer steps: each PPO step is updates_per_step of them
    sched = training.Schedule(steps_per_epoch=updates_per_step, total_steps=total_steps * updates_per_step,
                              warmup_steps=warmup_steps * updates_per_step)
    critic_cfg = p.model_copy(update={"lr": p.value_lr or p.lr})
    micro, accum = training.batch_plan(p, dist.world_size, p.step_batch_size)

    torch.manual_seed(p.seed)
    actor = AutoModelForCausalLM.from_pretrained(paths.policy, dtype=torch.float32)
    actor.config.use_cache = False
    if p.freeze_embeddings_and_norms:
        freeze_embeddings_and_norms(actor)
    reference = AutoModelForCausalLM.from_pretrained(paths.policy, dtype=torch.float32).to(device).eval()
    reference.requires_grad_(False)
    critic = load_value_model(paths.prm, p.freeze_embeddings_and_norms)
    settings = RewardSettings.from_config(p, cfg.data.train_levels)
    scorer = RolloutScorer(PRMStepScorer(paths.prm, device, settings, p.forward_batch_size), settings,
                           cfg.eval.grader_timeout_s, cfg.grading.options())
    actor_engine = training.create_engine(actor, p, dist, sched, global_batch_size=p.step_batch_size)
    critic_engine = training.create_engine(critic, critic_cfg, dist, sched, global_batch_size=p.step_batch_size)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return _PPOModels(tokenizer, pad_id, actor_engine, critic_engine, reference, scorer, micro)


def _resume(models: _PPOModels, out: Path) -> tuple[int, dict, list[dict]]:
    """Both engines from their checkpoints; (step, best validation, validation history)."""
    client = training.resume(models.actor_engine, out)
    critic_client = training.resume(models.critic_engine, out / "critic")
    if client is None or critic_client is None or critic_client["step"] != client["step"]:
        raise RuntimeError(f"{out}: actor and critic checkpoints are at different steps")
    return int(client["step"]), client["best"], client.get("validation", [])


class _Validator:
    """Greedy validation accuracy, logged and kept in ``history``; the best actor so far is saved to <out>/best."""

    def __init__(self, cfg: RunConfig, generator, models: _PPOModels, problems: list[Problem], dist, logger,
                 out: Path, best: dict, history: list[dict]):
        self.cfg, self.generator, self.models, self.problems = cfg, generator, models, problems
        self.dist, self.logger, self.out, self.best, self.history = dist, logger, out, best, history
        self.max_tokens = max_response_tokens(cfg.ppo)

    def run(self, step: int) -> None:
        cfg, out = self.cfg, self.out
        result = validate(self.generator, self.models.tokenizer, self.problems, self.max_tokens,
                          cfg.eval.grader_timeout_s, self.dist, cfg.grading.options())
        self.history.append({"step": step, **result})
        self.logger.log(step, {f"validation/{k}": v for k, v in result.items()}, advance=False)
        if result["accuracy"] > self.best["accuracy"]:
            self.best = {"accuracy": result["accuracy"], "step": step}
            state = training.consolidated_state_dict(self.models.actor_engine)
            if self.dist.is_main:
                self.models.save_actor(state, out / "best")
                (out / "best" / "validation.json").write_text(json.dumps(self.best) + "\n", encoding="utf-8")
            training.barrier()


def max_response_tokens(p) -> int:
    """The longest response a rollout may generate: ppo.max_new_tokens, within the engine's context."""
    return min(p.max_new_tokens, p.max_model_len - p.max_prompt_tokens)


def _train_loop(cfg: RunConfig, models: _PPOModels, generator, own_generator: bool, problems: list[Problem], dist,
                logger, validator: _Validator, out: Path, config_key: str, first: int, total_steps: int) -> None:
    """PPO steps first..total_steps: rollouts, advantages, updates, weight sync, logging, validation, checkpoints.
    SIGTERM / SIGUSR1: both engines are saved after the current step and training.Stopped is raised."""
    p = cfg.ppo
    sample_params = GenerationParams(n=1, temperature=p.temperature, top_k=p.top_k,
                                     max_tokens=max_response_tokens(p))
    steps_per_epoch = len(problems) // p.rollout_batch_size
    with training.GracefulStop() as stop:
        for step in range(first, total_steps):
            indices = training.global_batch(step, len(problems), steps_per_epoch, p.rollout_batch_size, p.seed)
            batch_problems = [problems[i] for i in indices[dist.rank::dist.world_size]]
            batch, parts, score = _rollouts(cfg, models, generator, batch_problems, sample_params, step)
            targets = _advantages(cfg, models, batch, score, dist.device)
            stats = _ppo_updates(cfg, models, batch, targets, dist, step)
            generator.load_weights(actor_state_dict(models.actor_engine))
            scalars = _step_scalars(parts, batch, score, targets, stats, models)
            logger.log(step + 1, {k: training.mean_across_ranks(v) for k, v in scalars.items()})
            if p.validate_every and (step + 1) % p.validate_every == 0 or step + 1 == total_steps:
                validator.run(step + 1)
            client = {"best": validator.best, "validation": validator.history, "config_hash": config_key}
            saved = p.checkpoint_every and (step + 1) % p.checkpoint_every == 0 and step + 1 < total_steps
            if saved:
                training.save_checkpoint(models.actor_engine, out, step + 1, client)
                training.save_checkpoint(models.critic_engine, out / "critic", step + 1, client)
            if step + 1 < total_steps and stop.requested():  # collective: every rank saves, then every rank leaves
                if not saved:
                    training.save_checkpoint(models.actor_engine, out, step + 1, client)
                    training.save_checkpoint(models.critic_engine, out / "critic", step + 1, client)
                logger.close()
                training.barrier()
                if own_generator:
                    generator.close()
                raise training.Stopped(step + 1, stop.reason, out)


def _rollouts(cfg: RunConfig, models: _PPOModels, generator, batch_problems: list[Problem],
              sample_params: GenerationParams, step: int):
    """One response per problem, scored: (padded rollouts, each rollout's reward parts, per-token scores)."""
    import torch  # heavy: see _load_prompts

    from policy.rollouts import pad_rollouts, response_offsets  # local: imports torch

    p, tokenizer = cfg.ppo, models.tokenizer
    prompts = [format_prompt(q.problem) for q in batch_problems]
    completions = generator.generate(prompts, sample_params,
                                     seeds=[request_seed(p.seed, f"{step}/{q.id}") for q in batch_problems])
    pairs, texts, offsets = [], [], []
    for prompt, comp in zip(prompts, completions):
        ids = list(comp[0].token_ids) or [tokenizer.eos_token_id]
        text, offs = response_offsets(tokenizer, ids)
        pairs.append((tokenizer(prompt)["input_ids"], ids))
        texts.append(text)
        offsets.append(offs)
    parts = models.scorer.score(prompts, texts, offsets, [len(ids) for _, ids in pairs],
                                [q.answer for q in batch_problems], [q.level for q in batch_problems])
    batch = pad_rollouts(pairs, models.pad_id)
    score = torch.zeros(len(batch), batch.response_width)
    for row, part in enumerate(parts):
        dense = part.dense()
        if p.process_reward_placement == "terminal":
            dense = np.eye(len(dense))[-1] * dense.sum()
        score[row, :len(dense)] = torch.tensor(dense, dtype=torch.float32)
    return batch, parts, score


@dataclass
class _Targets:
    """What the updates fit, from the rollouts before any update."""

    old_logprobs: Any
    old_values: Any
    kl: Any  # clamped per-token KL to the reference
    rewards: Any  # score - kl_coef * kl
    advantages: Any
    returns: Any


def _advantages(cfg: RunConfig, models: _PPOModels, batch, score, device) -> _Targets:
    """Log-probabilities, values, KL, rewards, then GAE advantages and returns."""
    import torch  # heavy: see _load_prompts

    from policy.advantages import advantages_and_returns  # local: imports torch
    from policy.rollouts import batched, response_logprobs, response_values  # local: imports torch

    p = cfg.ppo
    actor, critic = models.actor_engine.module, models.critic_engine.module
    actor.eval()
    critic.eval()
    fwd = p.forward_batch_size
    old_logprobs = batched(lambda b: response_logprobs(actor, b.to(device), p.temperature), batch, fwd)
    ref_logprobs = batched(lambda b: response_logprobs(models.reference, b.to(device), p.temperature), batch, fwd)
    old_values = batched(lambda b: response_values(critic, b.to(device)), batch, fwd)
    mask = batch.mask
    kl = torch.clamp(old_logprobs - ref_logprobs, min=0.0) * mask
    rewards = (score - p.kl_coef * kl) * mask
    # whitening statistics over the whole batch, all ranks (collective: every rank gets here each step)
    advantages, returns = advantages_and_returns(
        rewards, old_values, mask, whiten_rewards=p.whiten_rewards,
        unwhitened_reward_scale=p.unwhitened_reward_scale, gamma=p.gamma, lam=p.lam, padding=p.whiten_padding)
    return _Targets(old_logprobs, old_values, kl, rewards, advantages, returns)


def _ppo_updates(cfg: RunConfig, models: _PPOModels, batch, targets: _Targets, dist, step: int) -> dict:
    """ppo.ppo_epochs passes over the rollouts in shuffled step batches: clipped policy and value losses."""
    import torch  # heavy: see _load_prompts

    from policy.ppo_losses import policy_loss, value_loss  # local: imports torch
    from policy.rollouts import response_logprobs, response_values  # local: imports torch

    p, device, micro = cfg.ppo, dist.device, models.micro
    actor_engine, critic_engine = models.actor_engine, models.critic_engine
    actor_engine.module.train()
    critic_engine.module.train()
    order_rng = random.Random(p.seed * 1_000_003 + step)
    stats: dict[str, list[float]] = {k: [] for k in ("policy_loss", "clipfrac", "approx_kl", "value_loss",
                                                    "value_clipfrac")}
    per_rank = p.step_batch_size // dist.world_size
    for _ in range(p.ppo_epochs):
        order = list(range(len(batch)))
        order_rng.shuffle(order)
        for start in range(0, len(order), per_rank):
            for mb_start in range(start, start + per_rank, micro):
                rows = order[mb_start:mb_start + micro]
                mb = batch.select(rows).to(device)
                width = mb.response_width
                sel = torch.tensor(rows)
                take = (lambda t: t[sel, :width].to(device))
                logp = response_logprobs(actor_engine, mb, p.temperature)
                loss, pstats = policy_loss(logp, take(targets.old_logprobs), take(targets.advantages), mb.mask,
                                           clip=p.clip_ratio)
                actor_engine.backward(loss)
                actor_engine.step()
                vpred = response_values(critic_engine, mb)
                vloss, vstats = value_loss(vpred, take(targets.old_values), take(targets.returns), mb.mask,
                                           clip=p.value_clip)
                critic_engine.backward(p.vf_coef * vloss)
                critic_engine.step()
                for key, value in (("policy_loss", loss.item()), ("clipfrac", pstats["clipfrac"]),
                                   ("approx_kl", pstats["approx_kl"]), ("value_loss", vloss.item()),
                                   ("value_clipfrac", vstats["clipfrac"])):
                    stats[key].append(value)
    return stats


def _step_scalars(parts, batch, score, targets: _Targets, stats: dict, models: _PPOModels) -> dict[str, float]:
    """This rank's step metrics (the caller averages them over ranks)."""
    n = len(parts)
    mask, kl, rewards = batch.mask, targets.kl, targets.rewards
    lengths = mask.sum(1)
    return {
        "reward/total": float(rewards.sum(1).mean()),  # score + KL penalty per rollout: the training reward
        "reward/score": float(score.sum(1).mean()),
        "reward/terminal": sum(r.terminal for r in parts) / n,
        "reward/answer": sum(r.answer for r in parts) / n,
        "reward/format_penalty": sum(r.penalty for r in parts) / n,
        "reward/process": sum(r.process_sum for r in parts) / n,
        "reward/steps": sum(len(r.step_probs) for r in parts) / n,
        "reward/step_prob_min": float(np.mean([min(r.step_probs) if r.step_probs else 0.0 for r in parts])),
        "kl/sum_per_rollout": float(kl.sum(1).mean()),
        "kl/per_token": float(kl.sum() / mask.sum()),
        "accuracy/train": sum(r.correct for r in parts) / n,
        "response_tokens": float(lengths.mean()),
        "lr": training.current_lr(models.actor_engine),
        **{f"ppo/{k}": float(np.mean(v)) for k, v in stats.items() if v},
    }


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    training.add_resume_arguments(parser)


def run(args) -> int:
    try:
        summary = run_ppo(config_from_args(args), resume=args.resume, fresh=args.fresh)
    except training.Stopped as err:  # SIGTERM / SIGUSR1: checkpoint saved, exit 75 so a requeue resumes
        return training.report_stopped(err)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"ppo: {summary['steps']} steps (resumed at {summary['resumed_from_step']}), training reward "
              f"{summary['first_reward']:.3f} -> {summary['last_reward']:.3f}, best validation accuracy "
              f"{summary['best']['accuracy']:.3f} at step {summary['best']['step']} -> {summary['output_dir']}")
    return 0


if __name__ == "__main__":  # `torchrun ... -m policy.ppo -c ...` runs one rank per process
    import argparse
    import sys

    _parser = argparse.ArgumentParser(prog="python -m policy.ppo", description=__doc__.split("\n")[0])
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))
