"""The shared DeepSpeed helper used by PRM, SFT and PPO training. Not a trainer: the recipe owns its loop.

API (everything a recipe needs, in the order it calls it)::

    import training

    dist = training.init_distributed()                 # torchrun / deepspeed launcher env, or a lone process
    micro, accum = training.batch_plan(cfg, dist.world_size)   # global = micro * accum * world_size
    sched = training.schedule(cfg, steps_per_epoch)    # total_steps, warmup_steps (reference convention)
    engine = training.create_engine(model, cfg, dist, sched)   # deepspeed.initialize, trainable params only
    key = training.config_hash({...training-relevant config...})   # stored with every checkpoint
    if training.resume_plan(out_dir, key, fresh=args.fresh, require=args.resume) == "resume":  # the default
        start = training.resume(engine, out_dir)                 # client_state dict (with "step")
    with training.GracefulStop() as stop:                         # SIGTERM / SIGUSR1 / $E2H_STOP_FILE
    logger = training.TrainLogger(dist, out_dir, sched.total_steps, initial_step=step)
    for step in range(first, sched.total_steps):
        for indices in training.micro_batches(order_for_step, dist, micro, accum):
            loss = compute_loss(engine, batch(indices))
            engine.backward(loss); engine.step()          # DeepSpeed steps the optimizer every `accum` calls
        logger.log(step + 1, {"loss": training.mean_across_ranks(...)})
        if due: training.save_checkpoint(engine, out_dir, step + 1, {..., "config_hash": key}, save_hf)
        if stop.requested(): save_checkpoint(...); raise training.Stopped(step + 1, stop.reason)  # collective
    training.save_final(engine, out_dir, save_hf); logger.close()

- ``cfg`` is an :class:`e2h.config.OptimSection`: a TrainSection (PRMSection, SFTSection, PretrainSection: epochs,
  warmup_ratio of one epoch, global_batch_size) or the PPOSection, which has no global_batch_size (its step batch
  is passed as ``global_batch_size=`` to :func:`batch_plan` / :func:`create_engine`) and builds its own
  :class:`Schedule` (policy.ppo.ppo_schedule).
- The DeepSpeed JSON (``cfg.deepspeed_config``, e.g. ``configs/deepspeed/zero2.json``) holds ZeRO settings; every
  ``"auto"`` in it is filled from the typed config (batch sizes, clip, AdamW, bf16) by
  :func:`build_deepspeed_config`. A leftover ``"auto"`` is an error.
- Optimiser: AdamW; ``torch_adam`` on CPU (no JIT build), DeepSpeed's fused Adam on GPU.
- Precision ``auto``: bf16 on GPU, fp32 on CPU.
- LR: linear warmup then cosine down to ``lr * min_lr_ratio``, as a torch LambdaLR handed to DeepSpeed (its own
  WarmupCosineLR starts at lr 0 and forces >= 2 warmup steps). Warmup = ``warmup_ratio`` x steps of ONE epoch,
  as the reference does (reference §2).
- Data order: :func:`epoch_order` is a seeded permutation per epoch, so a resumed run that skips the first
  ``step`` global batches sees exactly the batches the uninterrupted run would have seen.
- Checkpoints: ``<out>/checkpoints/step-XXXXXXXX/`` holds the DeepSpeed state (optimizer, scheduler, client
  state) plus ``hf/`` weights; ``<out>/checkpoints/latest`` names the newest; the final HF model goes to ``<out>``.
- Resume is the default: :func:`resume_plan` resumes when ``<out>/checkpoints/latest`` names a checkpoint of the
  same :func:`config_hash` (written next to it as ``e2h_checkpoint.json``), refuses one of another config (naming
  both hashes), and starts over with ``fresh`` (the CLI's ``--fresh``: the old checkpoints are deleted).
- Stopping: :class:`GracefulStop` turns SIGTERM and SIGUSR1 (Slurm's ``--signal``, preemption) or the appearance
  of the file named by ``$E2H_STOP_FILE`` (the sbatch scripts' relay of ``--signal=B:USR1@120``) into a flag the
  loop checks after each optimizer step, collectively; the recipe then saves a checkpoint on every rank and
  raises :class:`Stopped`, which the CLI turns into exit code :data:`EXIT_STOPPED` (75, EX_TEMPFAIL: "saved,
  run me again"). The next run with the same config resumes at the saved step.
- Logs: the ``report_to`` tracker (training.tracking: TensorBoard scalars under ``<out>/tensorboard`` by default,
  wandb, none) and ``<out>/train_log.jsonl`` (rank 0), tqdm on rank 0.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import shutil
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from e2h.config import OptimSection, TrainSection, resolve_shipped_file
from e2h.loopback import LOOPBACK, free_port
from training.tracking import make_tracker


def freeze_embeddings_and_norms(model) -> int:
    """Freeze the input embeddings and every normalisation layer (the paper's setting); returns #frozen tensors.

    An input embedding that is also the output layer (tied embeddings: SmolLM2 and many small models) stays
    trainable: freezing it would freeze a causal LM's whole output head, which the paper never does."""
    embeddings = model.get_input_embeddings()
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    tied = output is not None and output.weight is embeddings.weight
    modules = ([] if tied else [embeddings]) + [m for m in model.modules() if "norm" in type(m).__name__.lower()]
    frozen = 0
    for module in modules:
        for param in module.parameters():
            if param.requires_grad:
                param.requires_grad_(False)
                frozen += 1
    return frozen


# --- processes -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: Any  # torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _import_deepspeed():
    try:
        import deepspeed
    except ImportError as err:  # pragma: no cover - depends on the install
        raise RuntimeError("training needs DeepSpeed: pip install deepspeed (scripts/setup_venv.sh does)") from err
    return deepspeed


def init_distributed(backend: str | None = None) -> DistContext:
    """Join (or start) the process group. Under torchrun / the deepspeed launcher the env vars are set; a plain
    ``python`` process becomes a world of one on a free loopback port (DeepSpeed would otherwise try MPI).

    backend: None = nccl on GPU, gloo on CPU.
    """
    import torch

    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")
        os.environ.setdefault("MASTER_ADDR", LOOPBACK)
        os.environ.setdefault("MASTER_PORT", str(free_port()))
    deepspeed = _import_deepspeed()
    use_cuda = torch.cuda.is_available()
    deepspeed.init_distributed(dist_backend=backend or ("nccl" if use_cuda else "gloo"))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, device=device)


def mean_across_ranks(value: float) -> float:
    """Average a Python float over all ranks (identity when not distributed)."""
    import torch
    import torch.distributed as tdist

    if not (tdist.is_available() and tdist.is_initialized()) or tdist.get_world_size() == 1:
        return float(value)
    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else "cpu"
    tensor = torch.tensor([float(value)], dtype=torch.float64, device=device)
    tdist.all_reduce(tensor)
    return float(tensor.item()) / tdist.get_world_size()


def sum_across_ranks(values: list[float]) -> list[float]:
    import torch
    import torch.distributed as tdist

    if not (tdist.is_available() and tdist.is_initialized()) or tdist.get_world_size() == 1:
        return [float(v) for v in values]
    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else "cpu"
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    tdist.all_reduce(tensor)
    return tensor.tolist()


def barrier() -> None:
    import torch.distributed as tdist

    if tdist.is_available() and tdist.is_initialized():
        tdist.barrier()


# --- batch sizes, schedule, data order -------------------------------------------------------------------------


def batch_plan(cfg: OptimSection, world_size: int, global_batch_size: int | None = None) -> tuple[int, int]:
    """(micro batch per rank, gradient accumulation steps) so that global = micro * accum * world_size.
    ``global_batch_size``: the sequences per optimizer step; default ``cfg.global_batch_size`` (a TrainSection's).

    >>> batch_plan(TrainSection(micro_batch_size=4, global_batch_size=128), 8)
    (4, 4)
    """
    if global_batch_size is None:
        global_batch_size = cfg.global_batch_size
    per_step = cfg.micro_batch_size * world_size
    if global_batch_size % per_step:
        raise ValueError(
            f"global_batch_size {global_batch_size} is not a multiple of micro_batch_size "
            f"{cfg.micro_batch_size} x {world_size} processes"
        )
    return cfg.micro_batch_size, global_batch_size // per_step


@dataclass(frozen=True)
class Schedule:
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int


def schedule(cfg: TrainSection, steps_per_epoch: int) -> Schedule:
    """Optimizer-step counts: total = ceil(epochs x steps_per_epoch); warmup = warmup_ratio x ONE epoch (§2)."""
    if steps_per_epoch < 1:
        raise ValueError("the training set is smaller than one global batch")
    total = max(1, math.ceil(cfg.epochs * steps_per_epoch))
    warmup = min(total, round(cfg.warmup_ratio * steps_per_epoch))
    return Schedule(steps_per_epoch, total, warmup)


def lr_multiplier(step: int, total_steps: int, warmup_steps: int, min_lr_ratio: float) -> float:
    """LR factor for the optimizer step with 0-based index ``step``: linear warmup (first step already > 0),
    then cosine from 1 to ``min_lr_ratio`` over the remaining steps.

    >>> [round(lr_multiplier(s, 5, 2, 0.1), 3) for s in range(5)]
    [0.5, 1.0, 1.0, 0.55, 0.1]
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = total_steps - warmup_steps
    if decay_steps <= 1:
        return 1.0 if step == warmup_steps else min_lr_ratio
    progress = min(1.0, (step - warmup_steps) / (decay_steps - 1))
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def epoch_order(num_examples: int, epoch: int, seed: int) -> list[int]:
    """The example order of an epoch: a permutation seeded by (seed, epoch), identical on every rank and run."""
    import torch

    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(num_examples, generator=generator).tolist()


def global_batch(step: int, num_examples: int, steps_per_epoch: int, global_batch_size: int, seed: int) -> list[int]:
    """Example indices of optimizer step ``step`` (0-based; the tail of each epoch is dropped)."""
    epoch, within = divmod(step, steps_per_epoch)
    order = epoch_order(num_examples, epoch, seed)
    return order[within * global_batch_size:(within + 1) * global_batch_size]


def micro_batches(indices: list[int], dist: DistContext, micro: int, accum: int,
                  lengths: list[int] | None = None) -> Iterator[list[int]]:
    """This rank's ``accum`` micro-batches of a global batch.

    With ``lengths`` the global batch is first sorted by length (length-grouped batching: less padding) and then
    cut into micro-batches; slice ``a * world_size + rank`` goes to accumulation step ``a`` of ``rank``. The cut
    depends only on the global batch, so 1 process x 2 accumulation steps and 2 processes x 1 step see the same
    micro-batches and compute the same gradient.
    """
    if len(indices) != micro * accum * dist.world_size:
        raise ValueError(f"global batch of {len(indices)} != {micro} x {accum} x {dist.world_size}")
    if lengths is not None:
        indices = sorted(indices, key=lambda i: (-lengths[i], i))
    for a in range(accum):
        slot = a * dist.world_size + dist.rank
        yield indices[slot * micro:(slot + 1) * micro]


# --- DeepSpeed config and engine -------------------------------------------------------------------------------


def resolve_precision(cfg: OptimSection, device) -> str:
    if cfg.precision != "auto":
        return cfg.precision
    return "bf16" if getattr(device, "type", str(device)) == "cuda" else "fp32"


def fill_auto(config: dict, values: dict[str, Any]) -> dict:
    """Replace every ``"auto"`` in ``config`` by ``values[dotted.path]``; a missing value is an error."""
    out = copy.deepcopy(config)

    def visit(node: dict, prefix: str) -> None:
        for key, value in node.items():
            path = f"{prefix}{key}"
            if isinstance(value, dict):
                visit(value, path + ".")
            elif value == "auto":
                if path not in values:
                    raise ValueError(f"DeepSpeed config: no value for '{path}' = \"auto\"")
                node[key] = values[path]

    visit(out, "")
    return out


def build_deepspeed_config(cfg: OptimSection, world_size: int, device, json_path: str | None = None,
                           global_batch_size: int | None = None) -> dict:
    """The DeepSpeed config dict: the JSON file's ZeRO settings + values from the typed config
    (``global_batch_size`` as in :func:`batch_plan`)."""
    path = resolve_shipped_file(json_path or cfg.deepspeed_config)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"DeepSpeed config not found: {path}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: invalid JSON ({err.msg} at line {err.lineno})") from None
    micro, accum = batch_plan(cfg, world_size, global_batch_size)
    on_gpu = getattr(device, "type", str(device)) == "cuda"
    values = {
        "train_batch_size": micro * accum * world_size,
        "train_micro_batch_size_per_gpu": micro,
        "gradient_accumulation_steps": accum,
        "gradient_clipping": cfg.grad_clip,
        "optimizer.params.lr": cfg.lr,
        "optimizer.params.betas": list(cfg.adam_betas),
        "optimizer.params.eps": cfg.adam_eps,
        "optimizer.params.weight_decay": cfg.weight_decay,
        "optimizer.params.torch_adam": not on_gpu,  # CPU: torch AdamW, no JIT build of DeepSpeed's Adam
        "bf16.enabled": resolve_precision(cfg, device) == "bf16",
    }
    return fill_auto(raw, values)


def create_engine(model, cfg: OptimSection, dist: DistContext, sched: Schedule, json_path: str | None = None,
                  global_batch_size: int | None = None):
    """``deepspeed.initialize`` over the trainable parameters, with the warmup-cosine LambdaLR
    (``global_batch_size`` as in :func:`batch_plan`)."""
    import torch

    deepspeed = _import_deepspeed()
    config = build_deepspeed_config(cfg, dist.world_size, dist.device, json_path, global_batch_size)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")

    def make_scheduler(optimizer):
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_multiplier(s, sched.total_steps, sched.warmup_steps, cfg.min_lr_ratio)
        )

    engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=params, config=config,
                                           lr_scheduler=make_scheduler)
    return engine


def current_lr(engine) -> float:
    return float(engine.optimizer.param_groups[0]["lr"])


# --- checkpoints -----------------------------------------------------------------------------------------------

SaveHF = Callable[[dict, Path], None]  # (full state dict of engine.module, folder) -> writes HF weights


def consolidated_state_dict(engine) -> dict | None:
    """The full state dict of ``engine.module`` on rank 0 (ZeRO-3 gathers shards; every rank must call)."""
    if engine.zero_optimization_stage() == 3:
        state = engine._zero3_consolidated_16bit_state_dict()
        return state if engine.global_rank == 0 else None
    return engine.module.state_dict() if engine.global_rank == 0 else None


def checkpoint_root(out_dir: str | os.PathLike) -> Path:
    return Path(out_dir) / "checkpoints"


def save_checkpoint(engine, out_dir: str | os.PathLike, step: int, client_state: dict,
                    save_hf: SaveHF | None = None, trainable_only: bool = False) -> Path:
    """DeepSpeed state (optimizer, scheduler, ``client_state`` + step) and HF weights under
    ``<out>/checkpoints/step-XXXXXXXX``; 'latest' is written by DeepSpeed after the state is complete.

    ``trainable_only`` (LoRA): the DeepSpeed module state keeps only trainable tensors (adapters + head), not
    the frozen backbone the run rebuilds from its backbone folder anyway; resume with the same flag."""
    root = checkpoint_root(out_dir)
    tag = f"step-{step:08d}"
    state = consolidated_state_dict(engine) if save_hf else None
    if save_hf and engine.global_rank == 0:
        save_hf(state, root / tag / "hf")
    if engine.global_rank == 0 and "config_hash" in client_state:  # before DeepSpeed's 'latest' names the tag
        (root / tag).mkdir(parents=True, exist_ok=True)
        (root / tag / CHECKPOINT_META).write_text(json.dumps({"config_hash": client_state["config_hash"],
                                                               "step": step}) + "\n", encoding="utf-8")
    barrier()
    engine.save_checkpoint(str(root), tag=tag, client_state={**client_state, "step": step},
                           exclude_frozen_parameters=trainable_only)
    return root / tag


def _load_trainable_only(src: dict, dst) -> None:
    """Load a module state saved with ``trainable_only``: every trainable tensor must be there, nothing extra."""
    result = dst.load_state_dict(src, strict=False)
    trainable = {name for name, p in dst.named_parameters() if p.requires_grad}
    missing = sorted(trainable & set(result.missing_keys))
    if missing or result.unexpected_keys:
        raise RuntimeError(f"--resume: checkpoint does not match the model (missing trainable {missing[:3]}, "
                           f"unexpected {sorted(result.unexpected_keys)[:3]}); was it trained with other LoRA "
                           f"settings?")


def resume(engine, out_dir: str | os.PathLike, trainable_only: bool = False) -> dict | None:
    """Load the newest checkpoint under ``<out>/checkpoints``; returns its client state (with "step"), or None."""
    root = checkpoint_root(out_dir)
    if not (root / "latest").exists():
        return None
    load_path, client_state = engine.load_checkpoint(
        str(root), custom_load_fn=_load_trainable_only if trainable_only else None)
    if load_path is None:
        raise RuntimeError(f"could not load the DeepSpeed checkpoint named in {root / 'latest'}")
    return client_state


def save_for_generation(model, folder: str | os.PathLike, state_dict: dict | None = None, tokenizer=None) -> None:
    """``save_pretrained`` of a causal LM with the model's normal generation settings: ``use_cache`` on in
    config.json and generation_config.json, whatever training set (training runs with the KV cache off; a
    checkpoint saved that way makes every user's ``generate`` recompute the whole prefix at each new token).
    The model in memory keeps its training settings."""
    config, generation = model.config, getattr(model, "generation_config", None)
    before = (config.use_cache, generation.use_cache if generation is not None else None)
    config.use_cache = True
    if generation is not None:
        generation.use_cache = True
    try:
        model.save_pretrained(folder, state_dict=state_dict)
    finally:
        config.use_cache = before[0]
        if generation is not None:
            generation.use_cache = before[1]
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)


def save_final(engine, out_dir: str | os.PathLike, save_hf: SaveHF) -> None:
    """The trained model's HF weights into ``out_dir`` (rank 0 writes; all ranks must call)."""
    state = consolidated_state_dict(engine)
    if engine.global_rank == 0:
        save_hf(state, Path(out_dir))
    barrier()


# --- logging ---------------------------------------------------------------------------------------------------


class TrainLogger:
    """Scalars to the ``report_to`` tracker (training.tracking: TensorBoard by default, wandb, none) +
    ``train_log.jsonl`` + a tqdm bar, all on rank 0 only."""

    def __init__(self, dist: DistContext, out_dir: str | os.PathLike, total_steps: int, initial_step: int = 0,
                 desc: str = "train", report_to: str = "tensorboard", config: dict | None = None):
        self.enabled = dist.is_main
        self.tracker = self.bar = None
        self.log_path = Path(out_dir) / "train_log.jsonl"
        if not self.enabled:
            return
        from tqdm.auto import tqdm

        Path(out_dir).mkdir(parents=True, exist_ok=True)
        self.tracker = make_tracker(report_to, out_dir, run_name=f"{desc}-{Path(out_dir).resolve().name}",
                                    config_dict=config)
        self.bar = tqdm(total=total_steps, initial=initial_step, desc=desc, dynamic_ncols=True)

    def log(self, step: int, scalars: dict[str, float], advance: bool = True) -> None:
        if not self.enabled:
            return
        if scalars:
            self.tracker.log(scalars, step)
        with open(self.log_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"step": step, **scalars}) + "\n")
        if advance:
            self.bar.update(1)
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in scalars.items() if k in ("loss", "lr")})

    def close(self) -> None:
        if self.tracker is not None:
            self.tracker.close()
            self.tracker = None
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def read_train_log(out_dir: str | os.PathLike) -> list[dict]:
    path = Path(out_dir) / "train_log.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --- resume by default, config hashes, stopping on a signal ----------------------------------------------------

EXIT_STOPPED = 75  # EX_TEMPFAIL: stopped by a signal after saving a checkpoint; the same command resumes
STOP_SIGNALS = ("SIGTERM", "SIGUSR1")
STOP_FILE_ENV = "E2H_STOP_FILE"  # a path: when it exists, stop as on a signal (launch/common.sh relays USR1)
CHECKPOINT_META = "e2h_checkpoint.json"
# TrainSection keys that do not change the trained weights: a resubmit may change them and still resume
NOT_TRAINING_KEYS = frozenset({"checkpoint_every", "eval_every", "log_every", "output_dir", "data", "report_to",
                               "processbench_eval_size", "preflight_limit", "validate_every"})


def config_hash(payload: dict) -> str:
    """A short, stable hash of what decides a run's weights (config values, data checksums, start models)."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def training_keys(section) -> dict:
    """A config section as JSON, without :data:`NOT_TRAINING_KEYS` (paths, logging and checkpoint cadence)."""
    return {k: v for k, v in section.model_dump(mode="json").items() if k not in NOT_TRAINING_KEYS}


class CheckpointMismatch(RuntimeError):
    """The run directory holds a checkpoint of another config."""


def checkpoint_meta(out_dir: str | os.PathLike) -> tuple[str, dict] | None:
    """(tag, {"config_hash", "step"}) of the checkpoint 'latest' names, or None when there is none."""
    root = checkpoint_root(out_dir)
    if not (root / "latest").exists():
        return None
    tag = (root / "latest").read_text(encoding="utf-8").strip()
    path = root / tag / CHECKPOINT_META
    meta = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    return tag, meta


def resume_plan(out_dir: str | os.PathLike, key: str, fresh: bool = False, require: bool = False) -> str:
    """"resume" or "fresh": resume when the newest checkpoint has config hash ``key``; a checkpoint of another
    config is an error naming both hashes (``fresh`` starts over instead); ``require`` (--resume) makes a missing
    checkpoint an error. Reads only; :func:`start_fresh` deletes."""
    if fresh and require:
        raise ValueError("--resume and --fresh contradict each other")
    if fresh:
        return "fresh"
    found = checkpoint_meta(out_dir)
    if found is None:
        if require:
            raise FileNotFoundError(f"--resume: no checkpoint in {checkpoint_root(out_dir)} to resume from")
        return "fresh"
    tag, meta = found
    saved = meta.get("config_hash")
    if saved != key:
        raise CheckpointMismatch(
            f"{checkpoint_root(out_dir)}/{tag} was written by a run of config hash "
            f"{saved or 'unknown (saved before e2h recorded config hashes)'}, this run's config hash is {key}: "
            f"rerun with the config that wrote it to resume, pass --fresh to delete its checkpoints and start "
            f"over, or choose another output directory")
    return "resume"


def start_fresh(out_dir: str | os.PathLike, dist: DistContext) -> None:
    """Delete ``<out>/checkpoints`` and the train log (rank 0; every rank waits)."""
    if dist.is_main:
        shutil.rmtree(checkpoint_root(out_dir), ignore_errors=True)
        (Path(out_dir) / "train_log.jsonl").unlink(missing_ok=True)
    barrier()


def truncate_train_log(out_dir: str | os.PathLike, step: int) -> None:
    """Drop log rows after ``step`` (written after the checkpoint a killed run resumes from), so the resumed run
    does not log those steps twice. Rank 0 only."""
    path = Path(out_dir) / "train_log.jsonl"
    if not path.exists():
        return
    rows = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step]
    path.write_text("".join(line + "\n" for line in rows), encoding="utf-8")


class Stopped(Exception):
    """Raised by a recipe after it saved a checkpoint because :class:`GracefulStop` fired."""

    def __init__(self, step: int, reason: str, out_dir: str | os.PathLike):
        super().__init__(f"stopped by {reason} after step {step}: checkpoint saved in {checkpoint_root(out_dir)}; "
                         f"the same command resumes from it")
        self.step, self.reason, self.out_dir = step, reason, Path(out_dir)


class GracefulStop:
    """A flag set by SIGTERM / SIGUSR1 (or by the file ``$E2H_STOP_FILE`` appearing). Use as a context manager
    around the training loop (handlers installed in the main thread, the previous ones restored on exit) and
    call :meth:`requested` after each optimizer step on every rank: it is collective (any rank's flag stops all),
    so every rank reaches the checkpoint save together."""

    def __init__(self):
        self.reason: str | None = None
        self._previous: dict = {}

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is threading.main_thread():
            for name in STOP_SIGNALS:
                sig = getattr(signal, name)
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        if self.reason is None:
            self.reason = signal.Signals(signum).name
            print(f"e2h: {self.reason} received: saving a checkpoint after this optimizer step, then exiting "
                  f"(exit code {EXIT_STOPPED}; the same command resumes)", file=sys.stderr, flush=True)

    def local(self) -> bool:
        """This process's flag (no communication)."""
        if self.reason is None:
            path = os.environ.get(STOP_FILE_ENV)
            if path and os.path.exists(path):
                self.reason = f"stop file {path}"
        return self.reason is not None

    def requested(self) -> bool:
        """True on every rank when any rank was asked to stop (an all-reduce when distributed)."""
        flagged = sum_across_ranks([1.0 if self.local() else 0.0])[0] > 0
        if flagged and self.reason is None:
            self.reason = "another rank's signal"
        return flagged


def add_resume_arguments(parser) -> None:
    """--fresh and --resume, the same for every trainer (resume is the default)."""
    parser.add_argument("--fresh", action="store_true",
                        help="delete the output's checkpoints and train from step 0 (default: resume from the "
                             "newest checkpoint of the same config hash; one of another config is an error)")
    parser.add_argument("--resume", action="store_true",
                        help="require a checkpoint to resume from (an error when there is none); resuming is the "
                             "default anyway")


def report_stopped(err: Stopped) -> int:
    """The CLI's answer to :class:`Stopped`: a message on rank 0 and :data:`EXIT_STOPPED`."""
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"e2h: {err}", file=sys.stderr, flush=True)
    return EXIT_STOPPED
