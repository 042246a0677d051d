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
    name: str = Field("run", description="the run's name (reports and logs)")
    out_dir: str = Field("runs/run", description=(
        'folder every stage writes under (data/, sft/, prm/, samples/, scored/, eval/, ppo/)'))
    seed: int = Field(0, description='seed of data preparation and training order')


class DataSection(Section):
    """Where problems and labels come from (local paths or hub ids) and which levels count as training data."""

    source: Literal["world", "math"] = Field("world", description=(
        "'world' = the offline leveled world (e2h.world); 'math' = MATH / PRM800K files"))
    # The defaults name the public sources (only read with source: math): PRM800K's files are paths inside a clone of
    # openai/prm800k (its files are Git LFS); MATH500 and ProcessBench are hub ids (owner/name:split, `datasets`).
    math_train: str = Field("prm800k/prm800k/math_splits/train.jsonl", description=(
        "the 12k MATH training split (PRM800K's math_splits/train.jsonl): problems, answers, levels"))
    math500: str = Field("HuggingFaceH4/MATH-500:test", description=(
        'the test problems: MATH500 file or hub id (owner/name:split)'))
    prm800k: list[str] = Field(default_factory=lambda: ["prm800k/prm800k/data/phase1_train.jsonl",
                                                        "prm800k/prm800k/data/phase2_train.jsonl"], description=(
        'PRM800K label files (phase 1 + 2 training labels) in a clone of openai/prm800k'))
    processbench: list[str] = Field(default_factory=lambda: ["Qwen/ProcessBench:gsm8k", "Qwen/ProcessBench:math"], description=(
        'ProcessBench subsets (files or hub ids) for first-error evaluation'))
    train_levels: list[int] = Field(default_factory=lambda: [1, 2, 3], description=(
        'levels the PRM / SFT data may come from'))
    prompt_levels: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5], description=(
        'PPO prompts: all levels (§1.7)'))
    validation_size: int = Field(500, description='problems drawn from the train split for validation')
    validation_seed: int = Field(1234, description='seed of the validation draw')
    include_additional_prm800k: bool = Field(False, description=(
        'PRM800K problems in neither MATH file have no level; the reference keeps them, we leave them out by '
        'default (no level means no easy/hard claim can be made about them). configs/llemma-* keep them, as the '
        'reference.'))
    problem_match: Literal["exact", "whitespace"] = Field("whitespace", description=(
        'How a PRM800K problem is matched to a 12k-split row (its level, or "in neither file"): "whitespace" '
        'compares texts with whitespace runs collapsed (e2h.data.rows.normalize_problem_text; copies of one '
        'problem differ in spacing), "exact" compares them as they stand (the reference\'s set lookups), so a '
        'respaced copy of a hard problem counts as "additional". Held-out problems (MATH500, validation) are '
        'always caught whitespace-collapsed.'))
    long_prompt_tokens: int | None = Field(default=None, ge=1, description=(
        'The reference never draws validation from problems whose prompt ("# Question\\n\\n{problem}\\n\\n# '
        'Solution\\n\\n") is over 496 tokens (512 - 16) of the Llemma-34B tokenizer, BOS included: they stay in '
        "train. None = no rule (e2h's default: it needs a tokenizer at data preparation); long_prompt_tokenizer "
        'names the tokenizer.'))
    long_prompt_tokenizer: str | None = Field(default=None, description=(
        'hub id or folder; required with long_prompt_tokens'))
    sft_source: Literal["prm800k", "math_solutions", "metamath"] = Field("prm800k", description=(
        'SFT demonstrations (math source): "prm800k" = +1-rated PRM800K steps (the paper); "math_solutions" = the'
        ' MATH reference solutions of the train levels, split into steps (for PRM800K files that cover few easy '
        'problems) "metamath" = MetaMathQA\'s MATH-type rows whose original problem is a train-level MATH problem '
        "(data.metamath; the paper's MetaMath SFT, e2h.data.extra)"))
    prm_source: Literal["prm800k", "math_shepherd"] = Field("prm800k", description=(
        'PRM step data (math source): "prm800k" (the paper\'s PRM800K rows) or "math_shepherd" '
        "(data.math_shepherd: its MATH task rows at the train levels, +/- step labels; the paper's MetaMath "
        'setting)'))
    metamath: str = Field("meta-math/MetaMathQA", description='local file or hub id (e2h.data.rows)')
    metamath_include_gsm: bool = Field(False, description=(
        'the reference also keeps every GSM-type row (no MATH level); off by default'))
    math_shepherd: str = Field("peiyi9979/Math-Shepherd", description='local file or hub id')
    shepherd_match: Literal["exact", "prefix"] = Field("exact", description=(
        'Math-Shepherd questions are MetaMath rephrasings: "exact" keeps a question whose whitespace-collapsed '
        'text is a MATH train problem\'s; "prefix" also the reference\'s rule (spaces removed, a 5-49 character '
        'prefix shared with train-level problems and no other-level one)'))
    orm_samples: str | None = Field(default=None, description=(
        'ORM / OPRM (prm.kind orm | oprm): policy samples (e2h.records.Sample JSONL, or a folder of *.jsonl '
        "shards) on the train-level training problems, labelled on the answer step by the grader's verdict "
        '(grading section)'))
    orm_max_ratio: float | None = Field(default=3.0, ge=1.0, description=(
        'per problem, the larger class is cut (seeded) to at most this many times the smaller one (the paper '
        'keeps positive:negative between 1:3 and 3:1), and a problem whose samples are all right or all wrong is '
        'left out; None keeps every sample'))
    test_excludes_prm800k_problems: bool = Field(False, description=(
        'Only for PRM800K files that label MATH500 problems (the public phase-1 test sample): those problems '
        'leave the test set and may be trained on, so the test set is MATH500 minus them. Never on for the '
        "paper's configs."))


class WorldSection(Section):
    """The offline leveled world (e2h.world): sizes per level and split, subjects, PRM negatives."""

    seed: int = Field(0, description="seed of the world's problems, solutions and flaws")
    train_per_level: int = Field(default=400, ge=0, description='training problems per level')
    validation_per_level: int = Field(default=40, ge=0, description='validation problems per level')
    test_per_level: int = Field(default=60, ge=0, description='test problems per level')
    flawed_per_problem: int = Field(default=2, ge=0, description=(
        'flawed solutions (PRM negatives) per training problem'))
    flaw_weights: dict[str, float] | None = Field(default=None, description=(
        'flaw kind -> weight for those negatives (e2h.world.flaws.KINDS); None = e2h.world.flaws.KIND_WEIGHTS, '
        'which leaves out "misstep" (right arithmetic on the wrong operands). The corpus\'s slips always use the '
        'defaults.'))
    subjects: list[str] = Field(default_factory=list, description=(
        'subjects drawn round-robin within each level; empty = all of e2h.world.generator.SUBJECTS'))
    after_error: Literal["label", "cut"] = Field("label", description=(
        'labels of a flawed solution after its first wrong step: "label" = the step checker\'s verdict on every '
        'step (a step building on a wrong value is wrong, an independent one right); "cut" = drop them (PRM800K '
        'phase 2 style: the solution ends at its first error)'))
    leaf_max: list[int] | None = Field(default=None, description=(
        "number sizes per level, level 1 first (Arithmetic and Modular Arithmetic); None = the generator's "
        'defaults, which grow with the level (e2h.world.generator.LEAF_MAX / VALUE_CAP) largest number written in'
        ' a problem'))
    value_cap: list[int] | None = Field(default=None, description='largest intermediate value')
    nest_p: list[float] | None = Field(default=None, description=(
        'chance an operand is itself a bracketed operation (0 = none)'))
    step_format: Literal["fact", "restated"] = Field("fact", description=(
        'how a solution step is written: "fact" = one operation and its value ("4 * 5 = 20"); "restated" = the '
        'operation, then the whole remaining expression on a second line ("4 * 5 = 20\\n3 + 20 - 6"), so a step '
        'is judged against the step before it (e2h.world.restated; Arithmetic and Modular Arithmetic only; '
        'experimental, README "The base model")'))
    corpus_per_level: int = Field(default=2000, ge=0, description=(
        "The unlabeled pretraining corpus (`e2h pretrain`): the world's analogue of web math, solutions at all "
        'five levels written by imperfect authors, never a validation or test problem (README "The base model"). '
        'corpus problems per level (at most: a level with fewer distinct problems gives what it has), drawn from '
        'their own stream'))
    corpus_slip_share: float = Field(default=0.15, ge=0, le=1, description=(
        'share of corpus solutions with one random slip (e2h.world.flaws kinds): real text is not all correct'))
    misconceptions: dict[str, float] = Field(default_factory=dict, description=(
        'misconception rule -> share of corpus authors who hold it (e2h.world.misconceptions); an author applies '
        'the rule wherever it applies, so many samples of one problem share its wrong answer. The same rules also'
        ' make PRM negatives on the easy training problems. None by default; configs/demo.yaml sets them.'))


class TokenizerSection(Section):
    vocab_size: int = Field(512, description="vocabulary size of the tokenizer trained on the world's text")
    path: str | None = Field(default=None, description=(
        "an existing tokenizer folder; None = train one on the world's text"))
    split_digits: bool = Field(True, description=(
        "True: every digit its own token (a model that never saw a level's larger numbers still knows their "
        "tokens); False: BPE merges frequent numbers into one token each, so a step's fact is one lookup (with a "
        'base pretrained on every level, no number is unseen)'))


class BackboneSection(Section):
    """A model: either a path / hub id, or a tiny Llama built from these sizes (head_dim >= 32 for vLLM CPU)."""

    path: str | None = Field(default=None, description=(
        'model folder or hub id; None = a tiny Llama built from the sizes below'))
    hidden_size: int = Field(64, description='tiny Llama: hidden size')
    intermediate_size: int = Field(128, description='tiny Llama: MLP size')
    num_hidden_layers: int = Field(2, description='tiny Llama: layers')
    num_attention_heads: int = Field(2, description='tiny Llama: attention heads')
    num_key_value_heads: int = Field(1, description='tiny Llama: key/value heads (GQA)')
    max_position_embeddings: int = Field(512, description='tiny Llama: longest sequence')


class OptimSection(Section):
    """What every section trained through the training package's DeepSpeed engine reads (PRM, SFT, pretrain, PPO)."""

    deepspeed_config: str = Field("configs/deepspeed/zero2.json", description=(
        'DeepSpeed JSON (ZeRO settings); batch sizes, optimiser and clipping are filled in from this section'))
    lr: float = Field(2e-5, description='peak learning rate (AdamW)')
    min_lr_ratio: float = Field(0.01, description='cosine decay ends at lr * min_lr_ratio')
    weight_decay: float = Field(0.0, description='AdamW weight decay')
    adam_betas: tuple[float, float] = Field((0.9, 0.999), description='AdamW betas')
    adam_eps: float = Field(1e-8, description='AdamW epsilon')
    grad_clip: float = Field(1.0, description='gradient norm clipping')
    micro_batch_size: int = Field(4, description=(
        'sequences per forward/backward per process (gradient accumulation makes up the rest)'))
    precision: Literal["auto", "bf16", "fp32"] = Field("auto", description='auto: bf16 on GPU, fp32 on CPU')
    checkpoint_every: int = Field(0, description='optimizer steps; 0 = only at the end')
    freeze_embeddings_and_norms: bool = Field(True, description=(
        "keep embeddings and norm weights frozen (the reference's default)"))
    report_to: Literal["none", "tensorboard", "wandb"] = Field("tensorboard", description=(
        'experiment tracking of the per-step scalars (loss, lr; PPO: reward, KL, validation): tensorboard writes'
        ' <output_dir>/tensorboard, wandb a wandb run (WANDB_MODE respected; offline without WANDB_API_KEY), none'
        ' only train_log.jsonl'))


class TrainSection(OptimSection):
    """Epoch-based training over a fixed data file (PRM, SFT, pretrain): training.schedule and batch_plan."""

    warmup_ratio: float = Field(0.2, description=(
        "linear warmup length as a fraction of ONE epoch's optimizer steps, then cosine"))
    epochs: float = Field(2.0, description='passes over the data (fractions allowed)')
    global_batch_size: int = Field(128, description='sequences per optimizer step over all processes')
    max_length: int = Field(768, description='longest training sequence in tokens (longer examples are dropped)')


class PRMSection(TrainSection):
    kind: Literal["prm", "orm", "oprm"] = Field("prm", description=(
        'same model and loss; only the data differs (reference §2)'))
    label_positions: Literal["every_token", "boundary"] = Field("every_token", description=(
        "which tokens carry a step's label: every token of the step, or only its boundary"))
    likelihood_feature: bool = Field(False, description=(
        "add the backbone's own log-probability of the solution's weakest token so far to the reward logit "
        "(prm/model.py; README 'Where the chain broke, and what moved it')"))
    freeze_backbone: bool = Field(False, description=(
        'train the reward head and the likelihood scale only; the backbone stays as loaded'))
    output_dir: str | None = Field(default=None, description='default: <run.out_dir>/prm')
    data: str | None = Field(default=None, description='StepExample JSONL; default: <run.out_dir>/data/prm_train.jsonl')
    eval_size: int = Field(0, description='StepExamples held out (seeded) for step accuracy during training')
    processbench_eval_size: int = Field(0, description=(
        'ProcessBench items (data.processbench) for first-error F1 at eval time'))
    preflight_limit: int | None = Field(256, description='examples the step-tag preflight re-checks (None = all)')
    eval_every: int = Field(0, description=(
        'optimizer steps between held-out evaluations (eval_size, processbench_eval_size); 0 = only at the end'))
    lora_rank: int = Field(0, description='> 0 trains LoRA adapters through peft instead of full fine-tuning')
    lora_alpha: float = Field(16.0, description=(
        "LoRA (lora_rank > 0): peft adapters on the backbone's linear projections, head fully trained, merged on "
        'save'))
    lora_dropout: float = Field(0.0, description='LoRA dropout (lora_rank > 0)')
    lora_target_modules: list[str] | str = Field("all-linear", description=(
        "peft's name for every attention + MLP projection"))


class SFTSection(TrainSection):
    """Policy SFT (reference: lr 2e-5 -> 2e-7, 3 epochs, batch 128, max length 768, EOS only on answer steps)."""

    epochs: float = Field(3.0, description='passes over the demonstrations (reference: 3)')
    output_dir: str | None = Field(default=None, description='default: <run.out_dir>/sft')
    data: str | None = Field(default=None, description='SFTExample JSONL; default: <run.out_dir>/data/sft_train.jsonl')
    init: str | None = Field(default=None, description='the model to fine-tune; default: policy.path')
    lora_rank: int = Field(0, description='> 0 is refused: SFT is full fine-tuning only')


class PretrainSection(TrainSection):
    """`e2h pretrain`: causal-LM training of the world's base model on the unlabeled corpus (loss on every
    token), the analogue of Llemma's pretraining on web math; both the SFT policy and the PRM start from it."""

    epochs: float = Field(1.0, description='passes over the unlabeled corpus')
    lr: float = Field(1e-3, description='peak learning rate')
    warmup_ratio: float = Field(0.02, description="linear warmup as a fraction of one epoch's steps")
    global_batch_size: int = Field(64, description='sequences per optimizer step')
    micro_batch_size: int = Field(32, description='sequences per forward/backward per process')
    max_length: int = Field(384, description='longest corpus sequence in tokens')
    freeze_embeddings_and_norms: bool = Field(False, description='False: a base model trains its embeddings')
    output_dir: str | None = Field(default=None, description=(
        'default: $E2H_CACHE/world-bases/<hash of what decides the base>'))


class SampleSection(Section):
    """Sampling with vLLM (reference: top-k 20, T 0.7 for reranking pools)."""

    n: int = Field(16, description='samples per problem')
    temperature: float = Field(0.7, description='sampling temperature')
    top_p: float = Field(1.0, description='nucleus sampling p')
    top_k: int = Field(20, description='top-k sampling (-1 = off)')
    max_tokens: int = Field(768, description='longest sampled solution in tokens')
    seed: int = Field(0, description='sampling seed (per-problem seeds derive from it)')
    shard_size: int = Field(64, description='problems per shard')
    num_actors: int = Field(1, description='Ray actors, one vLLM engine each; 1 = no Ray')
    gpus_per_actor: float = Field(0, description='Ray GPUs per sampling actor')
    tensor_parallel_size: int = Field(1, description='vLLM tensor parallelism per engine')
    max_model_len: int = Field(2048, description="vLLM's context length (prompt + solution)")
    dtype: str = Field("auto", description="auto: float32 on CPU (vLLM CPU kernels), the checkpoint's dtype on GPU")
    backend: Literal["vllm", "hf"] = Field("vllm", description=(
        'hf = transformers.generate (fallback, benchmark baseline)'))
    model: str | None = Field(default=None, description='default: <run.out_dir>/sft if it exists, else policy.path')
    prompts: str | None = Field(default=None, description='default: <run.out_dir>/data/prompts_test.jsonl')
    output_dir: str | None = Field(default=None, description='default: <run.out_dir>/samples')
    limit: int | None = Field(default=None, description='sample only the first k problems')
    stop: list[str] = Field(default_factory=list, description='extra stop strings; EOS always stops')
    cut_after_answer: bool = Field(True, description='drop text after the answer line (policy/stopping.py)')
    cpus_per_actor: float = Field(1.0, description='Ray CPUs per actor (fractions let 2 actors share 1 core in tests)')
    kv_cache_gib: float | None = Field(default=None, description=(
        "None: vLLM's default (VLLM_CPU_KVCACHE_SPACE on CPU, memory fraction on GPU)"))


class ScoreSection(Section):
    batch_tokens: int = Field(16384, description='padded tokens per forward pass')
    num_actors: int = Field(1, description='Ray actors, one PRM each; 1 = in process')
    shard_size: int = Field(256, description='samples per shard (resumable unit)')
    model: str | None = Field(default=None, description='PRM folder; default: <run.out_dir>/prm')
    samples: str | None = Field(default=None, description=(
        'Sample JSONL file or folder of shards; default: <run.out_dir>/samples'))
    output_dir: str | None = Field(default=None, description='default: <run.out_dir>/scored')
    share_prompt: bool = Field(False, description=(
        "reuse each problem's prompt KV cache for its N samples (slower on CPU, see bench)"))
    device: str = Field("auto", description='auto: cuda if available else cpu')
    cpus_per_actor: float = Field(1.0, description='Ray CPUs per scoring actor')
    steps: Literal["reasoning_and_answer", "reasoning", "with_answer"] = Field("reasoning_and_answer", description=(
        "which step scores a solution's aggregates (min/prod/last/mean; eval and the service too) read, issue "
        "#19: every reasoning step and the answer (e2h), the reasoning steps only (the reference's default), or "
        "the reasoning steps but the last plus the answer (the reference's --process_reward_with_answer, the "
        "paper's App. C.2). step_scores always keep every step. See e2h.rerank.select_steps."))


class EvalSection(Section):
    """Reranking curves and the report (``e2h eval``; reference §3.2: min for best-of-N, prod for voting)."""

    samples: str | None = Field(default=None, description=(
        'a samples JSONL or a folder of them; default: <run.out_dir>/scored, else samples'))
    output_dir: str | None = Field(default=None, description='default: <run.out_dir>/eval')
    n_values: list[int] | None = Field(default=None, description='default: 1, 2, 4, ... up to the pool size')
    resamples: int = Field(1000, description="bootstrap resamples for the curves' bands")
    seed: int = Field(0, description='bootstrap seed')
    interval: Literal["samples", "problems"] = Field("samples", description=(
        "what the report's bands show (both are saved)"))
    best_of_n_aggregation: Literal["min", "prod", "last", "mean"] = Field("min", description=(
        'step-score aggregation best-of-N ranks by (reference: min)'))
    weighted_vote_aggregation: Literal["min", "prod", "last", "mean"] = Field("prod", description=(
        'step-score aggregation weighted voting weighs by (reference: prod)'))
    aggregations: list[Literal["min", "prod", "last", "mean"]] = Field(
        default_factory=lambda: ["min", "prod", "last", "mean"], description=(
        'aggregations computed for the ablation table (the two above are always included)'))
    regrade: bool = Field(True, description='False: trust `correct` / `pred_answer` already in the samples file')
    vote_grouping: Literal["samples", "gold"] = Field("samples", description=(
        'how answers are grouped before voting (e2h.rerank): "samples" groups them without the gold, by the '
        'grader\'s equivalence between the samples\' own answers, as a deployed reranker must; "gold" merges every '
        'answer graded correct into one class first, which only the gold can do (optimistic; kept to show the '
        'difference, issue #16)'))
    grader_timeout_s: float = Field(5.0, description=(
        'seconds one answer comparison may take (also PPO/GRPO reward grading)'))
    grader_workers: int = Field(2, description='grader worker processes')


class GradingSection(Section):
    """How answers are compared (e2h.grading; README "The grader"): the numeric convention.

    exact   (default) numbers equal only exactly, decimals read as exact rationals (0.5 == 1/2, 0.0833 != 1/12):
            PRM800K's grader (exact after normalisation), so accuracies match the labels the PRM learnt from.
    rel_tol a decimal on either side matches within `rel_tol` relative (math-verify rounds instead)."""

    numeric: Literal["exact", "rel_tol"] = Field("exact", description=(
        "numeric convention: exact (PRM800K's) or rel_tol"))
    rel_tol: float = Field(default=1e-9, gt=0, lt=1, description='relative tolerance for numeric: rel_tol')
    mode: Literal["e2h", "prm800k_strict"] = Field("e2h", description=(
        'which grader: "e2h" (the default) or "prm800k_strict", PRM800K\'s grader with its SymPy check off, which '
        'is how the reference grades PPO rewards and accuracies (e2h.grading.prm800k; `numeric` does not apply to'
        ' it)'))

    def options(self) -> dict:
        """The keyword arguments every grader call takes from this section (grade, grade_many, GraderSameAnswer)."""
        return {"mode": self.mode, "numeric": self.numeric, "rel_tol": self.rel_tol}


class PPOSection(OptimSection):
    """PPO with process rewards (reference §4); defaults are the PRM800K run's."""

    lr: float = Field(2e-5, description='actor peak learning rate (critic: value_lr)')
    adam_betas: tuple[float, float] = Field((0.9, 0.95), description='AdamW betas (reference: 0.9, 0.95)')
    adam_eps: float = Field(1e-5, description='AdamW epsilon (reference: 1e-5)')
    rollout_batch_size: int = Field(512, description='rollouts (one per prompt) per PPO step, over all processes')
    step_batch_size: int = Field(64, description="rollouts per optimizer step (the actor's and critic's global batch)")
    ppo_epochs: int = Field(1, description="passes over each step's rollouts")
    temperature: float = Field(0.7, description='rollout sampling temperature')
    top_k: int = Field(50, description='rollout top-k sampling (reference: 50; 0 = off)')
    max_new_tokens: int = Field(768, description=(
        'longest rollout in tokens (also capped by max_model_len - max_prompt_tokens)'))
    kl_coef: float = Field(0.01, description='per-token KL penalty to the frozen reference policy')
    clip_ratio: float = Field(0.2, description='policy-loss clip range')
    value_clip: float = Field(0.2, description='value-loss clip range')
    vf_coef: float = Field(0.1, description='value-loss weight')
    gamma: float = Field(1.0, description='discount')
    lam: float = Field(1.0, description='GAE lambda')
    whiten_rewards: bool = Field(True, description=(
        'whiten rewards per batch (off: multiply by unwhitened_reward_scale)'))
    whiten_padding: Literal["masked", "reference"] = Field("masked", description=(
        'masked: whitening statistics over real response tokens and GAE ending at the last one; reference: every'
        ' position of the padded batch counts and GAE runs through the padding, as the reference does'))
    easy_only_answer_reward: bool = Field(True, description=(
        'final-answer reward only on data.train_levels problems (others get unavailable_answer_reward)'))
    unavailable_answer_reward: float = Field(0.25, description='answer reward where the answer may not be used')
    process_reward: Literal["min", "prod", "none"] = Field("min", description=(
        "how the PRM's step scores shape the reward (none = answer reward only)"))
    process_reward_upper_bound: float = Field(0.5, description='process reward is capped at this')
    process_step_bonus: float = Field(0.25, description='bonus per scored step')
    process_reward_scale: float = Field(1.0, description='multiplier on the process reward')
    total_epochs: float = Field(50.0, description=(
        'passes over the prompts: PPO steps = floor(total_epochs x prompts / rollout_batch_size), the length of'
        ' the run and of the LR schedule (reference: 50, about 1,100 steps on PRM800K)'))
    total_steps: int | None = Field(default=None, description=(
        'PPO steps (each: rollouts, scoring, ppo_epochs of updates); set: overrides total_epochs'))
    validate_every: int = Field(10, description='PPO steps between greedy validations (best checkpoint kept)')
    format_penalty_value: float = Field(-1.0, description=(
        'terminal = answer reward + penalty * this '
        '(penalty_reward_value)'))
    relative_format_penalty: bool = Field(True, description=(
        'False: any positive penalty sets the terminal reward to the value'))
    process_reward_placement: Literal["dense", "terminal"] = Field("dense", description=(
        'terminal: their sum on the last token'))
    prm_short_step_tokens: int = Field(2, description=(
        'a first step shorter than this (tokens) gets prm_short_step_logit'))
    prm_short_step_logit: float = Field(-4.44, description='PRM logit given to a too-short first step')
    unwhitened_reward_scale: float = Field(50.0, description=(
        'rewards are multiplied by this when whiten_rewards is off'))
    policy_path: str | None = Field(default=None, description=(
        'default: <run.out_dir>/sft (the actor and the frozen reference)'))
    prm_path: str | None = Field(default=None, description=(
        "default: <run.out_dir>/prm (the frozen reward model and the critic's start)"))
    output_dir: str | None = Field(default=None, description='default: <run.out_dir>/ppo')
    prompts: str | None = Field(default=None, description=(
        'Problem JSONL; default: <run.out_dir>/data/prompts_train.jsonl (all levels)'))
    validation_prompts: str | None = Field(default=None, description=(
        'default: <run.out_dir>/data/prompts_validation.jsonl'))
    value_lr: float | None = Field(default=None, description='default: lr')
    warmup_ratio: float = Field(0.01, description=(
        "linear warmup as a share of all PPO steps, rounded up (reference: 0.01), then cosine down to"
        " lr * min_lr_ratio; ignored when warmup_steps is set"))
    warmup_steps: int | None = Field(default=None, description=(
        'PPO steps of linear warmup; set: overrides warmup_ratio'))
    max_prompt_tokens: int = Field(384, description=(
        'longer prompts are dropped (also from validation), as the reference does'))
    rollout_backend: Literal["auto", "vllm", "hf"] = Field("auto", description=(
        'auto: vLLM when importable, else transformers'))
    rollout_actors: int = Field(0, description=(
        "> 0: each training process's rollouts run on this many Ray actors (one engine each, placed by Ray across"
        " the cluster's nodes; policy/ray_rollouts.py); 0: one engine colocated in the training process"))
    rollout_cpus_per_actor: float = Field(1.0, description='Ray CPUs per rollout actor')
    rollout_gpus_per_actor: float = Field(0.0, description='Ray GPUs per rollout actor')
    max_model_len: int = Field(1536, description="rollout engine's context length")
    kv_cache_gib: float | None = Field(default=None, description="rollout engine's KV cache (None: vLLM's default)")
    forward_batch_size: int = Field(16, description='sequences per no-grad forward (logprobs, values, PRM scores)')
    validation_size: int | None = Field(default=None, description=(
        'validation problems used for greedy validation: a fixed random subset of this many (None = all)'))
    seed: int = Field(0, description='seed of prompt order, rollouts and model init')


class GRPOSection(Section):
    """``e2h grpo``: TRL's GRPOTrainer with a colocated vLLM engine, rewarded by the PPO's reward function (its
    constants are read from the ``ppo`` section, so both optimise the same reward)."""

    lr: float = Field(1e-6, description='peak learning rate')
    num_generations: int = Field(8, description='completions per prompt: the group whose mean reward is the baseline')
    batch_size: int = Field(64, description=(
        'completions per optimizer step per process (a multiple of num_generations)'))
    gradient_accumulation_steps: int = Field(1, description='TRL gradient accumulation')
    total_steps: int = Field(500, description='optimizer steps')
    temperature: float = Field(0.7, description='sampling temperature')
    max_new_tokens: int = Field(768, description='longest completion in tokens')
    max_model_len: int = Field(1536, description='vLLM context length')
    kl_coef: float = Field(0.01, description="TRL's beta: KL to the reference policy (same coefficient as the PPO's)")
    clip_ratio: float = Field(0.2, description='policy-loss clip range (TRL epsilon)')
    warmup_steps: int = Field(0, description='linear warmup steps')
    use_vllm: bool = Field(True, description='False: transformers.generate inside TRL (slow; where vLLM is missing)')
    gpu_memory_utilization: float = Field(0.3, description=(
        "GPU: vLLM's share; on CPU its KV cache is VLLM_CPU_KVCACHE_SPACE (GiB)"))
    deepspeed_config: str | None = Field(default=None, description=(
        "a DeepSpeed JSON for TRL's trainer (None: plain data parallel)"))
    checkpoint_every: int = Field(50, description='optimizer steps; --resume continues from the newest')
    log_every: int = Field(1, description='TRL logging_steps')
    report_to: Literal["none", "tensorboard", "wandb"] = Field("tensorboard", description=(
        "TRL's report_to: tensorboard (<output_dir>/runs), wandb (WANDB_MODE respected) or none"))
    policy_path: str | None = Field(default=None, description='default: <run.out_dir>/sft')
    prm_path: str | None = Field(default=None, description='default: <run.out_dir>/prm')
    prompts: str | None = Field(default=None, description='default: <run.out_dir>/data/prompts_train.jsonl')
    output_dir: str | None = Field(default=None, description='default: <run.out_dir>/grpo')
    max_prompt_tokens: int = Field(384, description='longer prompts are dropped')
    forward_batch_size: int = Field(16, description='sequences per PRM forward')
    seed: int = Field(0, description='seed')


class ServeSection(Section):
    """The reranking service (e2h.serve): where it binds, which PRM it loads, batching and request limits."""

    host: str = Field("127.0.0.1", description='loopback by default; set 0.0.0.0 deliberately to expose it')
    port: int = Field(8000, description='TCP port')
    prm_path: str | None = Field(default=None, description='default: <run.out_dir>/prm')
    device: str = Field("auto", description='auto: cuda when present, else cpu')
    max_batch_tokens: int = Field(8192, description=(
        'one forward batch holds at most this many padded tokens (longest pair x pairs)'))
    max_batch_size: int = Field(256, description=(
        'and at most this many solutions (1 = no batching; the benchmark baseline)'))
    max_wait_ms: float = Field(0.0, description=(
        'how long a batch waits for company; 0 = continuous batching, never a wait (e2h.serve.batcher)'))
    max_solutions: int = Field(64, description='most solutions in one request')
    max_solution_chars: int = Field(20000, description='longest solution accepted (characters)')
    max_problem_chars: int = Field(8000, description='longest problem accepted (characters)')
    max_body_bytes: int = Field(4_000_000, description='largest request body')
    grader_timeout_s: float = Field(5.0, description='seconds one answer comparison may take')
    grader_threads: int = Field(2, description=(
        'grading runs in these threads (its timeouts are process-based), never on the event loop'))
    request_timeout_s: float = Field(default=30.0, gt=0, description=(
        'Slow sockets: a request whose headers and body have not all arrived this long after its first byte (or '
        'after the connection opened) has its connection closed; an idle keep-alive connection is closed after '
        'the other.'))
    keep_alive_timeout_s: float = Field(default=5.0, gt=0, description='idle keep-alive connections close after this')
    replicas: int = Field(1, description='Ray Serve replicas (e2h serve --ray)')
    steps: Literal["reasoning_and_answer", "reasoning", "with_answer"] | None = Field(default=None, description=(
        'default: score.steps'))
    cpus_per_replica: float = Field(1.0, description='Ray CPUs per Serve replica')


class DemoSection(Section):
    """What only `e2h demo` reads: the PRM data pool sampled from the SFT policy on easy problems."""

    prm_pool_problems: int = Field(600, description='easy training problems the policy samples on for PRM data')
    prm_pool_samples: int = Field(4, description="samples per pool problem, each labelled by the world's step checker")
    prm_pool_temperature: float = Field(1.0, description='sampling temperature of the PRM data pool')
    prm_init: Literal["sft", "init", "base"] = Field("sft", description=(
        'where the PRM starts: "sft" = the SFT policy (the demo\'s stand-in for a pretrained LM: a random "base" '
        'model knows nothing of the world\'s arithmetic), "init" = the untrained prm_backbone (the paper\'s choice '
        'of the base model, which on real runs is a pretrained Llemma)'))
    policy_init: Literal["scratch", "base"] = Field("scratch", description=(
        'where the world\'s policy starts: "scratch" = an untrained tiny Llama, "base" = the base model `e2h '
        'pretrain` builds once per world config on the unlabeled all-level corpus (the paper\'s Llemma); "base" '
        'also makes --seeds keep the world (and so the base) and vary everything after it'))
    eval_split: Literal["validation", "test"] = Field("test", description=(
        'the split the demo samples, scores and evaluates: tune every knob on "validation", report "test" once'))
    base_model: str = Field("smollm2-135m", description=(
        'data.source=math: the pretrained model (e2h.models registry name) both the policy and the PRM start '
        'from, and the RL stages run after eval (each sized by its own section)'))
    rl_stages: list[Literal["grpo", "ppo"]] = Field(default_factory=list, description=(
        'RL stages e2h demo runs after eval on data.source: math'))


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
