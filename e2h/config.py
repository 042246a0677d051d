"""Typed run configuration: YAML in configs/ is the single source of truth, dotted overrides on the command line.

    e2h train-prm --config configs/demo.yaml prm.lr=1e-5 prm.epochs=3

Unknown keys and wrong types are errors that name the key. Every run writes its resolved config next to
its outputs (:func:`save_config`). Each stage owns one section; a section's fields carry the paper's
defaults where the paper has one (Sun et al. 2024, arXiv 2403.09472, and its code, Edward-Sun/easy-to-hard).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from e2h.jsonl import atomic_path


REPO_ROOT = Path(__file__).resolve().parents[1]


def resolve_shipped_file(path: str | os.PathLike) -> Path:
    """A relative path as given if it exists from the working directory, else the file the project ships under that
    name (``configs/deepspeed/zero2.json`` works from any directory, as a config's defaults promise)."""
    given = Path(path).expanduser()
    if given.is_absolute() or given.exists():
        return given
    shipped = REPO_ROOT / given
    return shipped if shipped.exists() else given


class ConfigError(ValueError):
    """A config problem; the message names the key."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RunSection(Section):
    name: str = "run"
    out_dir: str = "runs/run"
    seed: int = 0


class DataSection(Section):
    """Where problems and labels come from (local paths or hub ids) and which levels count as training data."""

    source: Literal["world", "math"] = "world"
    # The defaults name the public sources (only read with source: math). PRM800K's files are paths inside a clone
    # of openai/prm800k made in the working directory (`git lfs install; git clone https://github.com/openai/prm800k`,
    # its files are Git LFS): the 12k MATH training split of the paper, and the phase 1 + 2 training labels.
    # MATH500 and ProcessBench are hub ids (owner/name:split, loaded with `datasets`). Every shipped config sets
    # its own; configs/smollm2-135m-math.yaml reads the small copies in tests/data.
    math_train: str = "prm800k/prm800k/math_splits/train.jsonl"
    math500: str = "HuggingFaceH4/MATH-500:test"
    prm800k: list[str] = Field(default_factory=lambda: ["prm800k/prm800k/data/phase1_train.jsonl",
                                                        "prm800k/prm800k/data/phase2_train.jsonl"])
    processbench: list[str] = Field(default_factory=lambda: ["Qwen/ProcessBench:gsm8k", "Qwen/ProcessBench:math"])
    train_levels: list[int] = Field(default_factory=lambda: [1, 2, 3])  # levels the PRM / SFT data may come from
    prompt_levels: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5])  # PPO prompts: all levels (§1.7)
    validation_size: int = 500
    validation_seed: int = 1234
    # PRM800K problems in neither MATH file have no level; the reference keeps them, we leave them out by default
    # (no level means no easy/hard claim can be made about them). configs/llemma-* keep them, as the reference.
    include_additional_prm800k: bool = False
    # How a PRM800K problem is matched to a 12k-split row (its level, or "in neither file"): "whitespace" compares
    # texts with whitespace runs collapsed (e2h.data.rows.normalize_problem_text; copies of one problem differ in
    # spacing), "exact" compares them as they stand (the reference's set lookups), so a respaced copy of a hard
    # problem counts as "additional". Held-out problems (MATH500, validation) are always caught whitespace-collapsed.
    problem_match: Literal["exact", "whitespace"] = "whitespace"
    # The reference never draws validation from problems whose prompt ("# Question\n\n{problem}\n\n# Solution\n\n")
    # is over 496 tokens (512 - 16) of the Llemma-34B tokenizer, BOS included: they stay in train. None = no rule
    # (e2h's default: it needs a tokenizer at data preparation); long_prompt_tokenizer names the tokenizer.
    long_prompt_tokens: int | None = Field(default=None, ge=1)
    long_prompt_tokenizer: str | None = None  # hub id or folder; required with long_prompt_tokens
    max_prm_tokens: int = 736  # applied where a tokenizer is known (prm.dataset), not at data preparation
    # SFT demonstrations (math source): "prm800k" = +1-rated PRM800K steps (the paper); "math_solutions" = the MATH
    # reference solutions of the train levels, split into steps (for PRM800K files that cover few easy problems)
    # "metamath" = MetaMathQA's MATH-type rows whose original problem is a train-level MATH problem (data.metamath;
    # the paper's MetaMath SFT, e2h.data.extra)
    sft_source: Literal["prm800k", "math_solutions", "metamath"] = "prm800k"
    # PRM step data (math source): "prm800k" (the paper's PRM800K rows) or "math_shepherd" (data.math_shepherd: its
    # MATH task rows at the train levels, +/- step labels; the paper's MetaMath setting)
    prm_source: Literal["prm800k", "math_shepherd"] = "prm800k"
    metamath: str = "meta-math/MetaMathQA"  # local file or hub id (e2h.data.rows)
    metamath_include_gsm: bool = False  # the reference also keeps every GSM-type row (no MATH level); off by default
    math_shepherd: str = "peiyi9979/Math-Shepherd"  # local file or hub id
    # Math-Shepherd questions are MetaMath rephrasings: "exact" keeps a question whose whitespace-collapsed text is a
    # MATH train problem's; "prefix" also the reference's rule (spaces removed, a 5-49 character prefix shared with
    # train-level problems and no other-level one)
    shepherd_match: Literal["exact", "prefix"] = "exact"
    # ORM / OPRM (prm.kind orm | oprm): policy samples (e2h.records.Sample JSONL, or a folder of *.jsonl shards) on
    # the train-level training problems, labelled on the answer step by the grader's verdict (grading section)
    orm_samples: str | None = None
    # per problem, the larger class is cut (seeded) to at most this many times the smaller one (the paper keeps
    # positive:negative between 1:3 and 3:1), and a problem whose samples are all right or all wrong is left out;
    # None keeps every sample
    orm_max_ratio: float | None = Field(default=3.0, ge=1.0)
    # Only for PRM800K files that label MATH500 problems (the public phase-1 test sample): those problems leave the
    # test set and may be trained on, so the test set is MATH500 minus them. Never on for the paper's configs.
    test_excludes_prm800k_problems: bool = False


class WorldSection(Section):
    """The offline leveled world (e2h.world): sizes per level and split, subjects, PRM negatives."""

    seed: int = 0
    train_per_level: int = Field(default=400, ge=0)
    validation_per_level: int = Field(default=40, ge=0)
    test_per_level: int = Field(default=60, ge=0)
    flawed_per_problem: int = Field(default=2, ge=0)  # flawed solutions (PRM negatives) per training problem
    # flaw kind -> weight for those negatives (e2h.world.flaws.KINDS); None = e2h.world.flaws.KIND_WEIGHTS, which
    # leaves out "misstep" (right arithmetic on the wrong operands). The corpus's slips always use the defaults.
    flaw_weights: dict[str, float] | None = None
    # subjects drawn round-robin within each level; empty = all of e2h.world.generator.SUBJECTS
    subjects: list[str] = Field(default_factory=list)
    # labels of a flawed solution after its first wrong step: "label" = the step checker's verdict on every
    # step (a step building on a wrong value is wrong, an independent one right); "cut" = drop them (PRM800K
    # phase 2 style: the solution ends at its first error)
    after_error: Literal["label", "cut"] = "label"
    # number sizes per level, level 1 first (Arithmetic and Modular Arithmetic); None = the
    # generator's defaults, which grow with the level (e2h.world.generator.LEAF_MAX / VALUE_CAP)
    leaf_max: list[int] | None = None  # largest number written in a problem
    value_cap: list[int] | None = None  # largest intermediate value
    nest_p: list[float] | None = None  # chance an operand is itself a bracketed operation (0 = none)
    # The unlabeled pretraining corpus (`e2h pretrain`): the world's analogue of web math, solutions at all five
    # levels written by imperfect authors, never a validation or test problem (README "The base model").
    # corpus problems per level (at most: a level with fewer distinct problems gives what it has), drawn from
    # their own stream
    corpus_per_level: int = Field(default=2000, ge=0)
    # share of corpus solutions with one random slip (e2h.world.flaws kinds): real text is not all correct
    corpus_slip_share: float = Field(default=0.15, ge=0, le=1)
    # misconception rule -> share of corpus authors who hold it (e2h.world.misconceptions); an author applies the
    # rule wherever it applies, so many samples of one problem share its wrong answer. The same rules also make
    # PRM negatives on the easy training problems. None by default; configs/demo.yaml sets them.
    misconceptions: dict[str, float] = Field(default_factory=dict)


class TokenizerSection(Section):
    vocab_size: int = 512
    path: str | None = None  # an existing tokenizer folder; None = train one on the world's text
    # True: every digit its own token (a model that never saw a level's larger numbers still knows their
    # tokens); False: BPE merges frequent numbers into one token each, so a step's fact is one lookup (with a
    # base pretrained on every level, no number is unseen)
    split_digits: bool = True


class BackboneSection(Section):
    """A model: either a path / hub id, or a tiny Llama built from these sizes (head_dim >= 32 for vLLM CPU)."""

    path: str | None = None
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    num_key_value_heads: int = 1
    max_position_embeddings: int = 512


class TrainSection(Section):
    """What PRM, SFT and PPO training share: optimiser, schedule, DeepSpeed, checkpoints."""

    deepspeed_config: str = "configs/deepspeed/zero2.json"
    lr: float = 2e-5
    min_lr_ratio: float = 0.01
    warmup_ratio: float = 0.2
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    grad_clip: float = 1.0
    epochs: float = 2.0
    micro_batch_size: int = 4
    global_batch_size: int = 128
    max_length: int = 768
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # auto: bf16 on GPU, fp32 on CPU
    checkpoint_every: int = 0  # optimizer steps; 0 = only at the end
    eval_every: int = 0
    log_every: int = 10
    freeze_embeddings_and_norms: bool = True
    lora_rank: int = 0  # > 0 trains LoRA adapters through peft instead of full fine-tuning


class PRMSection(TrainSection):
    kind: Literal["prm", "orm", "oprm"] = "prm"  # same model and loss; only the data differs (reference §2)
    label_positions: Literal["every_token", "boundary"] = "every_token"
    output_dir: str | None = None  # default: <run.out_dir>/prm
    data: str | None = None  # StepExample JSONL; default: <run.out_dir>/data/prm_train.jsonl
    eval_size: int = 0  # StepExamples held out (seeded) for step accuracy during training
    processbench_eval_size: int = 0  # ProcessBench items (data.processbench) for first-error F1 at eval time
    preflight_limit: int | None = 256  # examples the step-tag preflight re-checks (None = all)
    # LoRA (lora_rank > 0): peft adapters on the backbone's linear projections, head fully trained, merged on save
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_target_modules: list[str] | str = "all-linear"  # peft's name for every attention + MLP projection


class SFTSection(TrainSection):
    """Policy SFT (reference: lr 2e-5 -> 2e-7, 3 epochs, batch 128, max length 768, EOS only on answer steps)."""

    epochs: float = 3.0
    output_dir: str | None = None  # default: <run.out_dir>/sft
    data: str | None = None  # SFTExample JSONL; default: <run.out_dir>/data/sft_train.jsonl
    init: str | None = None  # the model to fine-tune; default: policy.path


class PretrainSection(TrainSection):
    """`e2h pretrain`: causal-LM training of the world's base model on the unlabeled corpus (loss on every
    token), the analogue of Llemma's pretraining on web math; both the SFT policy and the PRM start from it."""

    epochs: float = 1.0
    lr: float = 1e-3
    warmup_ratio: float = 0.02
    global_batch_size: int = 64
    micro_batch_size: int = 32
    max_length: int = 384
    freeze_embeddings_and_norms: bool = False
    output_dir: str | None = None  # default: $E2H_CACHE/world-bases/<hash of what decides the base>


class SampleSection(Section):
    """Sampling with vLLM (reference: top-k 20, T 0.7 for reranking pools)."""

    n: int = 16
    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = 20
    max_tokens: int = 768
    seed: int = 0
    shard_size: int = 64  # problems per shard
    num_actors: int = 1  # Ray actors, one vLLM engine each; 1 = no Ray
    gpus_per_actor: float = 0
    tensor_parallel_size: int = 1
    max_model_len: int = 2048
    dtype: str = "auto"  # auto: float32 on CPU (vLLM CPU kernels), the checkpoint's dtype on GPU
    backend: Literal["vllm", "hf"] = "vllm"  # hf = transformers.generate (fallback, benchmark baseline)
    model: str | None = None  # default: <run.out_dir>/sft if it exists, else policy.path
    prompts: str | None = None  # default: <run.out_dir>/data/prompts_test.jsonl
    output_dir: str | None = None  # default: <run.out_dir>/samples
    limit: int | None = None  # sample only the first k problems
    stop: list[str] = Field(default_factory=list)  # extra stop strings; EOS always stops
    cut_after_answer: bool = True  # drop text after the answer line (policy/stopping.py)
    cpus_per_actor: float = 1.0  # Ray CPUs per actor (fractions let 2 actors share 1 core in tests)
    kv_cache_gib: float | None = None  # None: vLLM's default (VLLM_CPU_KVCACHE_SPACE on CPU, memory fraction on GPU)


class ScoreSection(Section):
    batch_tokens: int = 16384  # padded tokens per forward pass
    num_actors: int = 1  # Ray actors, one PRM each; 1 = in process
    shard_size: int = 256  # samples per shard (resumable unit)
    model: str | None = None  # PRM folder; default: <run.out_dir>/prm
    samples: str | None = None  # Sample JSONL file or folder of shards; default: <run.out_dir>/samples
    output_dir: str | None = None  # default: <run.out_dir>/scored
    share_prompt: bool = False  # reuse each problem's prompt KV cache for its N samples (slower on CPU, see bench)
    device: str = "auto"  # auto: cuda if available else cpu
    cpus_per_actor: float = 1.0
    # which step scores a solution's aggregates (min/prod/last/mean; eval and the service too) read, issue #19:
    # every reasoning step and the answer (e2h), the reasoning steps only (the reference's default), or the
    # reasoning steps but the last plus the answer (the reference's --process_reward_with_answer, the paper's App.
    # C.2). step_scores always keep every step. See e2h.rerank.select_steps.
    steps: Literal["reasoning_and_answer", "reasoning", "with_answer"] = "reasoning_and_answer"


class EvalSection(Section):
    """Reranking curves and the report (e2h.evaluate; reference §3.2: min for best-of-N, prod for voting)."""

    samples: str | None = None  # a samples JSONL or a folder of them; default: <run.out_dir>/scored, else samples
    output_dir: str | None = None  # default: <run.out_dir>/eval
    n_values: list[int] | None = None  # default: 1, 2, 4, ... up to the pool size
    resamples: int = 1000
    seed: int = 0
    interval: Literal["samples", "problems"] = "samples"  # what the report's bands show (both are saved)
    best_of_n_aggregation: Literal["min", "prod", "last", "mean"] = "min"
    weighted_vote_aggregation: Literal["min", "prod", "last", "mean"] = "prod"
    # aggregations computed for the ablation table (the two above are always included)
    aggregations: list[Literal["min", "prod", "last", "mean"]] = Field(
        default_factory=lambda: ["min", "prod", "last", "mean"])
    regrade: bool = True  # False: trust `correct` / `pred_answer` already in the samples file
    # how answers are grouped before voting (e2h.rerank): "samples" groups them without the gold, by the grader's
    # equivalence between the samples' own answers, as a deployed reranker must; "gold" merges every answer graded
    # correct into one class first, which only the gold can do (optimistic; kept to show the difference, issue #16)
    vote_grouping: Literal["samples", "gold"] = "samples"
    grader_timeout_s: float = 5.0
    grader_workers: int = 2


class GradingSection(Section):
    """How answers are compared (e2h.grading; README "The grader"): the numeric convention.

    exact   (default) numbers equal only exactly, decimals read as exact rationals (0.5 == 1/2, 0.0833 != 1/12):
            PRM800K's grader (exact after normalisation), so accuracies match the labels the PRM learnt from.
    rel_tol a decimal on either side matches within `rel_tol` relative (math-verify rounds instead)."""

    numeric: Literal["exact", "rel_tol"] = "exact"
    rel_tol: float = Field(default=1e-9, gt=0, lt=1)
    # which grader: "e2h" (the default) or "prm800k_strict", PRM800K's grader with its SymPy check off, which is how
    # the reference grades PPO rewards and accuracies (e2h.grading.prm800k; `numeric` does not apply to it)
    mode: Literal["e2h", "prm800k_strict"] = "e2h"

    def options(self) -> dict:
        """The keyword arguments every grader call takes from this section (grade, grade_many, GraderSameAnswer)."""
        return {"mode": self.mode, "numeric": self.numeric, "rel_tol": self.rel_tol}


class PPOSection(TrainSection):
    """PPO with process rewards (reference §4); defaults are the PRM800K run's."""

    lr: float = 2e-5
    adam_betas: tuple[float, float] = (0.9, 0.95)
    adam_eps: float = 1e-5
    rollout_batch_size: int = 512
    step_batch_size: int = 64
    ppo_epochs: int = 1
    temperature: float = 0.7
    max_new_tokens: int = 768
    kl_coef: float = 0.01
    clip_ratio: float = 0.2
    value_clip: float = 0.2
    vf_coef: float = 0.1
    gamma: float = 1.0
    lam: float = 1.0
    whiten_rewards: bool = True
    easy_only_answer_reward: bool = True
    unavailable_answer_reward: float = 0.25
    process_reward: Literal["min", "prod", "none"] = "min"
    process_reward_upper_bound: float = 0.5
    process_step_bonus: float = 0.25
    process_reward_scale: float = 1.0
    total_steps: int = 500
    validate_every: int = 10
    # --- reward details (reference §4.1; math_rl_utils) ---
    format_penalty_value: float = -1.0  # terminal = answer reward + penalty * this (penalty_reward_value)
    relative_format_penalty: bool = True  # False: any positive penalty sets the terminal reward to the value
    process_reward_placement: Literal["dense", "terminal"] = "dense"  # terminal: their sum on the last token
    prm_short_step_tokens: int = 2  # a first step shorter than this (tokens) gets prm_short_step_logit
    prm_short_step_logit: float = -4.44
    unwhitened_reward_scale: float = 50.0  # rewards are multiplied by this when whiten_rewards is off
    # --- models, rollouts, schedule ---
    policy_path: str | None = None  # default: <run.out_dir>/sft (the actor and the frozen reference)
    prm_path: str | None = None  # default: <run.out_dir>/prm (the frozen reward model and the critic's start)
    output_dir: str | None = None  # default: <run.out_dir>/ppo
    prompts: str | None = None  # Problem JSONL; default: <run.out_dir>/data/prompts_train.jsonl (all levels)
    validation_prompts: str | None = None  # default: <run.out_dir>/data/prompts_validation.jsonl
    value_lr: float | None = None  # default: lr
    warmup_steps: int = 5  # PPO steps of linear warmup, then cosine down to lr * min_lr_ratio
    max_prompt_tokens: int = 384  # longer prompts are dropped (also from validation), as the reference does
    rollout_backend: Literal["auto", "vllm", "hf"] = "auto"  # auto: vLLM when importable, else transformers
    # > 0: each training process's rollouts run on this many Ray actors (one engine each, placed by Ray across the
    # cluster's nodes; policy/ray_rollouts.py); 0: one engine colocated in the training process
    rollout_actors: int = 0
    rollout_cpus_per_actor: float = 1.0
    rollout_gpus_per_actor: float = 0.0
    max_model_len: int = 1536
    kv_cache_gib: float | None = None
    forward_batch_size: int = 16  # sequences per no-grad forward (logprobs, values, PRM scores)
    validation_size: int | None = None  # validation problems used for greedy validation (None = all)
    seed: int = 0


class GRPOSection(Section):
    """``e2h grpo``: TRL's GRPOTrainer with a colocated vLLM engine, rewarded by the PPO's reward function (its
    constants are read from the ``ppo`` section, so both optimise the same reward)."""

    lr: float = 1e-6
    num_generations: int = 8  # completions per prompt: the group whose mean reward is the baseline
    batch_size: int = 64  # completions per optimizer step per process (a multiple of num_generations)
    gradient_accumulation_steps: int = 1
    total_steps: int = 500
    temperature: float = 0.7
    max_new_tokens: int = 768
    max_model_len: int = 1536
    kl_coef: float = 0.01  # TRL's beta: KL to the reference policy (same coefficient as the PPO's)
    clip_ratio: float = 0.2
    warmup_steps: int = 0
    use_vllm: bool = True  # False: transformers.generate inside TRL (slow; where vLLM is missing)
    gpu_memory_utilization: float = 0.3  # GPU: vLLM's share; on CPU its KV cache is VLLM_CPU_KVCACHE_SPACE (GiB)
    deepspeed_config: str | None = None  # a DeepSpeed JSON for TRL's trainer (None: plain data parallel)
    checkpoint_every: int = 50  # optimizer steps; --resume continues from the newest
    log_every: int = 1
    policy_path: str | None = None  # default: <run.out_dir>/sft
    prm_path: str | None = None  # default: <run.out_dir>/prm
    prompts: str | None = None  # default: <run.out_dir>/data/prompts_train.jsonl
    output_dir: str | None = None  # default: <run.out_dir>/grpo
    max_prompt_tokens: int = 384
    forward_batch_size: int = 16  # sequences per PRM forward
    seed: int = 0


class ServeSection(Section):
    """The reranking service (e2h.serve): where it binds, which PRM it loads, batching and request limits."""

    host: str = "127.0.0.1"  # loopback by default; set 0.0.0.0 deliberately to expose it
    port: int = 8000
    prm_path: str | None = None  # default: <run.out_dir>/prm
    device: str = "auto"  # auto: cuda when present, else cpu
    max_batch_tokens: int = 8192  # one forward batch holds at most this many (prompt + solution) tokens
    max_batch_size: int = 256  # and at most this many solutions (1 = no batching; the benchmark baseline)
    max_wait_ms: float = 10.0  # how long the first queued solution waits for others to join its batch
    max_solutions: int = 64
    max_solution_chars: int = 20000
    max_problem_chars: int = 8000
    max_body_bytes: int = 4_000_000
    grader_timeout_s: float = 5.0
    grader_threads: int = 2  # grading runs in these threads (its timeouts are process-based), never on the event loop
    # Slow sockets: a request whose headers and body have not all arrived this long after its first byte (or after
    # the connection opened) has its connection closed; an idle keep-alive connection is closed after the other.
    request_timeout_s: float = Field(default=30.0, gt=0)
    keep_alive_timeout_s: float = Field(default=5.0, gt=0)
    replicas: int = 1  # Ray Serve replicas (e2h serve --ray)
    steps: Literal["reasoning_and_answer", "reasoning", "with_answer"] | None = None  # default: score.steps
    cpus_per_replica: float = 1.0


class DemoSection(Section):
    """What only `e2h demo` reads: the PRM data pool sampled from the SFT policy on easy problems."""

    prm_pool_problems: int = 600  # easy training problems the policy samples on for PRM data
    prm_pool_samples: int = 4  # samples per pool problem, each labelled by the world's step checker
    prm_pool_temperature: float = 1.0
    # where the PRM starts: "sft" = the SFT policy (the demo's stand-in for a pretrained LM: a random "base"
    # model knows nothing of the world's arithmetic), "init" = the untrained prm_backbone (the paper's choice
    # of the base model, which on real runs is a pretrained Llemma)
    prm_init: Literal["sft", "init", "base"] = "sft"
    # where the world's policy starts: "scratch" = an untrained tiny Llama, "base" = the base model `e2h pretrain`
    # builds once per world config on the unlabeled all-level corpus (the paper's Llemma); "base" also makes
    # --seeds keep the world (and so the base) and vary everything after it
    policy_init: Literal["scratch", "base"] = "scratch"
    # the split the demo samples, scores and evaluates: tune every knob on "validation", report "test" once
    eval_split: Literal["validation", "test"] = "test"
    # data.source=math: the pretrained model (e2h.models registry name) both the policy and the PRM start from,
    # and the RL stages run after eval (each sized by its own section)
    base_model: str = "smollm2-135m"
    rl_stages: list[Literal["grpo", "ppo"]] = Field(default_factory=list)


class RunConfig(Section):
    run: RunSection = Field(default_factory=RunSection)
    data: DataSection = Field(default_factory=DataSection)
    world: WorldSection = Field(default_factory=WorldSection)
    tokenizer: TokenizerSection = Field(default_factory=TokenizerSection)
    policy: BackboneSection = Field(default_factory=BackboneSection)
    prm_backbone: BackboneSection = Field(default_factory=BackboneSection)
    prm: PRMSection = Field(default_factory=PRMSection)
    sft: SFTSection = Field(default_factory=SFTSection)
    pretrain: PretrainSection = Field(default_factory=PretrainSection)
    sample: SampleSection = Field(default_factory=SampleSection)
    score: ScoreSection = Field(default_factory=ScoreSection)
    eval: EvalSection = Field(default_factory=EvalSection)
    grading: GradingSection = Field(default_factory=GradingSection)
    ppo: PPOSection = Field(default_factory=PPOSection)
    grpo: GRPOSection = Field(default_factory=GRPOSection)
    serve: ServeSection = Field(default_factory=ServeSection)
    demo: DemoSection = Field(default_factory=DemoSection)

    def out_path(self, *parts: str) -> Path:
        return Path(self.run.out_dir, *parts)


def _apply_override(tree: dict[str, Any], override: str) -> None:
    key, sep, raw = override.partition("=")
    if not sep or not key:
        raise ConfigError(f"override '{override}' is not of the form key.path=value")
    parts = key.split(".")
    node: Any = tree
    for depth, part in enumerate(parts[:-1]):
        if not isinstance(node.get(part, {}), dict):
            raise ConfigError(f"config key '{'.'.join(parts[:depth + 1])}' is not a section")
        node = node.setdefault(part, {})
    node[parts[-1]] = yaml.safe_load(raw) if raw != "" else ""


def _format_validation(err: ValidationError) -> str:
    lines = []
    for item in err.errors():
        key = ".".join(str(p) for p in item["loc"])
        if item["type"] == "extra_forbidden":
            lines.append(f"unknown config key '{key}'")
        else:
            lines.append(f"config key '{key}': {item['msg']} (got {item.get('input')!r})")
    return "; ".join(lines)


def load_config(path: str | os.PathLike | None = None, overrides: list[str] = ()) -> RunConfig:
    """Load YAML (or defaults when path is None), apply dotted overrides, validate."""
    tree: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: invalid YAML: {err}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
        tree = loaded or {}
    for override in overrides:
        _apply_override(tree, override)
    try:
        return RunConfig.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(_format_validation(err)) from None


def add_config_arguments(parser, required: bool = False) -> None:
    """Give an argparse (sub)parser the arguments every command shares: --config FILE and dotted overrides."""
    parser.add_argument("--config", "-c", required=required, help="YAML run config (see configs/)")
    parser.add_argument("overrides", nargs="*", metavar="key.path=value", help="dotted config overrides, e.g. prm.lr=1e-5")


def config_from_args(args) -> RunConfig:
    return load_config(args.config, args.overrides)


def save_config(config: RunConfig, directory: str | os.PathLike, name: str = "config.yaml") -> Path:
    """Write the resolved config next to a run's outputs."""
    path = Path(directory) / name
    with atomic_path(path) as tmp:
        Path(tmp).write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
    return path
