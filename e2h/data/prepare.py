"""``e2h data prepare``: build a run's training and evaluation sets from the config, once.

Writes into ``<run.out_dir>/data/``::

    prm_train.jsonl          StepExample   pointwise PRM examples from train-level problems
    sft_train.jsonl          SFTExample    +1-rated steps as SFT targets
    prompts_train.jsonl      Problem       PPO / sampling prompts (data.prompt_levels), no held-out problem
    prompts_validation.jsonl Problem       validation split (MATH: 500 test-origin problems, MATH500's mix)
    prompts_test.jsonl       Problem       test set (MATH: MATH500)
    config.yaml                            the resolved config
    summary.json                           counts per level and per label

and marks the stage ``data`` done in ``<run.out_dir>/manifest.json`` after the files, with a fingerprint of
the config sections it read: re-running with the same config skips, a changed config rebuilds.

``data.source: math`` reads MATH / MATH500 / PRM800K (local files or hub ids); ``data.source: world`` takes
problems and labelled solutions from the offline leveled world (``e2h.world``). On the math source,
``data.sft_source: metamath`` and ``data.prm_source: math_shepherd`` take the SFT / PRM step data from MetaMathQA /
Math-Shepherd instead (e2h.data.extra).

``prm.kind`` picks what ``prm_train.jsonl`` holds: ``prm`` the step-labelled rows, ``orm`` outcome rows built from
the policy samples ``data.orm_samples`` (labelled by the grader on the answer step, e2h.data.orm), ``oprm`` both.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Iterable

from e2h.config import ConfigError, RunConfig, save_config
from e2h.data.extra import LevelIndex, metamath_sft_examples, shepherd_step_examples
from e2h.data.math import demonstration, load_math500, load_math_train
from e2h.data.orm import iter_samples, oprm_examples, orm_examples, sample_files
from e2h.data.prm800k import RatedStep, iter_rated_steps, prm_examples, sft_examples
from e2h.data.rows import normalize_problem_text
from e2h.data.splits import HeldOut, select_levels, split_validation
from e2h.jsonl import write_json
from e2h.layout import RunLayout
from e2h.manifest import Manifest
from e2h.records import Problem, SFTExample, StepExample, save_records

STAGE = "data"
OUTPUTS = ("prm_train", "sft_train", "prompts_train", "prompts_validation", "prompts_test")


def data_dir(cfg: RunConfig) -> Path:
    return RunLayout(cfg).data_dir


def output_paths(cfg: RunConfig) -> dict[str, Path]:
    return {name: data_dir(cfg) / f"{name}.jsonl" for name in OUTPUTS}


def fingerprint(cfg: RunConfig) -> str:
    """What the prepared data depends on; a different value means the data must be rebuilt."""
    parts = {"data": cfg.data.model_dump(mode="json")}
    if cfg.data.source == "world":
        parts["world"] = cfg.world.model_dump(mode="json")
    if cfg.prm.kind != "prm":  # outcome rows depend on the samples' files and on the grader too
        parts["prm_kind"] = cfg.prm.kind
        parts["grading"] = cfg.grading.options()
        parts["seed"] = cfg.run.seed
        if cfg.data.orm_samples:
            try:
                files = sample_files(cfg.data.orm_samples)
            except FileNotFoundError:
                files = []
            parts["orm_files"] = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------------ MATH + PRM800K
MATCH_KEYS = {"whitespace": normalize_problem_text, "exact": lambda text: text}


def prm800k_problem_filter(rated: Iterable[RatedStep], train: list[Problem], held: HeldOut,
                           train_levels: list[int], include_additional: bool, skipped: Counter,
                           match: str = "whitespace"):
    """Keep rated steps whose problem may be trained on; fills ``ids`` / ``levels`` for the examples.

    A PRM800K problem (matched to the 12k split by text, PRM800K rows carry no MATH id: ``match`` "whitespace"
    compares whitespace-collapsed texts, "exact" the texts as they stand) is kept when it is not held out (always
    whitespace-collapsed) and every 12k row with its text is at a train level; a problem in neither MATH file
    ("additional", no level) only when ``include_additional``. ``skipped`` counts dropped solutions by reason.
    ``ids`` / ``levels`` are keyed by :attr:`RatedStep.problem_key`, as the example builders read them.
    """
    key_of = MATCH_KEYS[match]
    by_text: dict[str, list[Problem]] = {}
    for problem in train:
        by_text.setdefault(key_of(problem.problem), []).append(problem)
    wanted = set(train_levels)
    ids: dict[str, str] = {}
    levels: dict[str, int | None] = {}
    kept: list[RatedStep] = []
    decided: dict[str, str | None] = {}  # problem key -> reason it is skipped, None if kept
    counted: set[tuple[str, int]] = set()
    for step in rated:
        key, example_key = key_of(step.problem), step.problem_key
        if key not in decided:
            matches = by_text.get(key)
            if held.has_text(step.problem):
                decided[key] = "held_out"
            elif matches:
                found = {p.level for p in matches}
                if None in found or not found <= wanted:
                    decided[key] = "other_level"
                else:
                    decided[key] = None
                    ids[example_key], levels[example_key] = matches[0].id, max(found)
            else:
                decided[key] = None if include_additional else "additional"
                levels.setdefault(example_key, None)  # a respaced copy matched exactly elsewhere keeps its level
        reason = decided[key]
        solution = (step.where, step.line)
        if solution not in counted:
            counted.add(solution)
            skipped[reason or "kept"] += 1
        if reason is None:
            kept.append(step)
    return kept, ids, levels


def prm800k_problem_texts(sources: list[str]) -> set[str]:
    """Normalised texts of the problems the PRM800K files label."""
    return {rated.problem_key for source in sources for rated in iter_rated_steps(source)}


def prompt_token_counter(tokenizer: str | None):
    """Tokens of a prompt as the reference counts them (``len(tokenizer(prompt)["input_ids"])``: special tokens as
    the tokenizer adds them, BOS for Llemma)."""
    if not tokenizer:
        raise ConfigError("config key 'data.long_prompt_tokenizer': data.long_prompt_tokens needs the tokenizer "
                          "that counts prompt tokens (the reference: EleutherAI/llemma_34b)")
    from transformers import AutoTokenizer

    loaded = AutoTokenizer.from_pretrained(tokenizer)
    return lambda prompt: len(loaded(prompt)["input_ids"])


def build_math(cfg: RunConfig, context: dict | None = None) -> tuple[dict[str, list], Counter]:
    """The sets of the math source; ``context`` (if given) receives the training problems and the held-out set."""
    data = cfg.data
    train_all = load_math_train(data.math_train)
    math500 = load_math500(data.math500)
    counter = prompt_token_counter(data.long_prompt_tokenizer) if data.long_prompt_tokens is not None else None
    train_rest, validation = split_validation(train_all, math500, data.validation_size, data.validation_seed,
                                              data.long_prompt_tokens, counter)
    if data.test_excludes_prm800k_problems:  # see DataSection: the labelled MATH500 problems move to train
        labelled = prm800k_problem_texts(data.prm800k)
        moved = [p for p in math500 if normalize_problem_text(p.problem) in labelled]
        math500 = [p for p in math500 if normalize_problem_text(p.problem) not in labelled]
        train_rest = train_rest + moved
    held = HeldOut.of(math500, validation)
    prompts_train = held.filter(select_levels(train_rest, data.prompt_levels))
    if context is not None:
        context.update(train=train_rest, held=held)

    solutions = Counter()
    rated: list[RatedStep] = []
    ids: dict[str, str] = {}
    levels: dict[str, int | None] = {}
    needs_prm800k = data.prm_source == "prm800k" or data.sft_source == "prm800k"
    for source in data.prm800k if needs_prm800k else []:
        kept, source_ids, source_levels = prm800k_problem_filter(
            iter_rated_steps(source), train_rest, held, data.train_levels, data.include_additional_prm800k,
            solutions, data.problem_match)
        rated.extend(kept)
        ids.update(source_ids)
        levels.update({k: v for k, v in source_levels.items() if v is not None or k not in levels})
    if data.sft_source == "math_solutions":
        demos = [demonstration(p) for p in held.filter(select_levels(train_rest, data.train_levels))]
        sft = [d for d in demos if d is not None]
    elif data.sft_source == "metamath":
        metamath_rows = Counter()
        exact = LevelIndex(train_rest, held, data.train_levels)  # original_question is the MATH text itself
        sft = metamath_sft_examples(data.metamath, exact, data.metamath_include_gsm, metamath_rows)
        solutions.update({f"metamath_{k}": v for k, v in metamath_rows.items()})
    else:
        sft = sft_examples(rated, ids, levels)
    if data.prm_source == "math_shepherd":
        shepherd_rows = Counter()
        index = LevelIndex(train_rest, held, data.train_levels, prefix=data.shepherd_match == "prefix")
        prm = shepherd_step_examples(data.math_shepherd, index, shepherd_rows)
        solutions.update({f"math_shepherd_{k}": v for k, v in shepherd_rows.items()})
    else:
        prm = prm_examples(rated, ids, levels)
    sets = {"prm_train": prm, "sft_train": sft,
            "prompts_train": prompts_train, "prompts_validation": validation, "prompts_test": math500}
    return sets, solutions


# ------------------------------------------------------------------------------------------------ leveled world
def build_world(cfg: RunConfig, context: dict | None = None) -> tuple[dict[str, list], Counter]:
    try:
        from e2h.world import generate_world, world_sft_examples, world_step_examples  # local: loads SymPy
    except ImportError as err:
        raise ImportError(f"data.source=world needs the leveled world package e2h.world ({err})") from err
    splits = generate_world(cfg.world)
    held = HeldOut.of(splits["validation"], splits["test"])
    train = held.filter(splits["train"])
    if context is not None:
        context.update(train=train, held=held)
    wanted = set(cfg.data.train_levels)
    train_level = [p for p in train if p.level in wanted]
    prm = [ex for ex in world_step_examples(train_level, cfg.world, cfg.run.seed) if ex.level in wanted]
    sft = [ex for ex in world_sft_examples(train_level) if ex.level in wanted]
    sets = {"prm_train": prm, "sft_train": sft, "prompts_train": select_levels(train, cfg.data.prompt_levels),
            "prompts_validation": list(splits["validation"]), "prompts_test": list(splits["test"])}
    return sets, Counter()


# ------------------------------------------------------------------------------------------------ ORM / OPRM
def with_outcome_rows(cfg: RunConfig, step_rows: list[StepExample], context: dict,
                      counts: Counter) -> list[StepExample]:
    """prm_train for ``prm.kind`` orm (outcome rows only) or oprm (step rows + outcome rows); ``counts`` gets the
    samples' outcomes as ``orm_<reason>``."""
    if not cfg.data.orm_samples:
        raise ConfigError(f"config key 'data.orm_samples': prm.kind={cfg.prm.kind} needs policy samples to label "
                          "(a Sample JSONL file or a folder of sample shards, e.g. `e2h sample` on prompts_train)")
    outcomes = Counter()
    orm = orm_examples(iter_samples(cfg.data.orm_samples), context["train"], context["held"], cfg.data.train_levels,
                       cfg.grading.options(), cfg.data.orm_max_ratio, cfg.run.seed, outcomes)
    counts.update({f"orm_{k}": v for k, v in outcomes.items()})
    if not orm:
        raise ConfigError(f"data prepare: 0 ORM rows from data.orm_samples={cfg.data.orm_samples} (samples by "
                          f"outcome: {dict(sorted(outcomes.items()))}; data.orm_max_ratio={cfg.data.orm_max_ratio} "
                          "leaves out problems whose samples are all right or all wrong)")
    return orm if cfg.prm.kind == "orm" else oprm_examples(step_rows, orm)


# ------------------------------------------------------------------------------------------------ the stage
def summarize(sets: dict[str, list], solutions: Counter) -> dict:
    """Rows per level of every set, labelled steps per label for PRM sets, answer-step (eos) targets for SFT."""
    summary: dict = {}
    for name, rows in sets.items():
        entry = {"rows": len(rows), "by_level": _by_level(rows)}
        if rows and isinstance(rows[0], StepExample):
            labels = Counter(label for ex in rows for label in ex.labels if label is not None)
            entry["by_label"] = {_label_name(k): v for k, v in sorted(labels.items())}
            entry["by_source"] = dict(sorted(Counter(ex.source for ex in rows).items()))
        if rows and isinstance(rows[0], SFTExample):
            entry["eos"] = sum(ex.eos for ex in rows)
        summary[name] = entry
    if solutions:
        prm800k_rows = {k: v for k, v in sorted(solutions.items()) if not k.startswith(_OTHER_COUNTS)}
        if prm800k_rows:
            summary["prm800k_rows"] = prm800k_rows
        for prefix in _OTHER_COUNTS:  # MetaMath / Math-Shepherd rows and ORM samples by outcome
            found = {k[len(prefix):]: v for k, v in sorted(solutions.items()) if k.startswith(prefix)}
            if found:
                summary[f"{prefix}rows" if prefix != "orm_" else "orm_samples"] = found
    return summary


_OTHER_COUNTS = ("metamath_", "math_shepherd_", "orm_")


def _why_empty(cfg: RunConfig, solutions: Counter) -> str:
    if cfg.data.source != "math":
        return f"no world problem at data.train_levels={cfg.data.train_levels}"
    counts = ", ".join(f"{reason}: {n}" for reason, n in sorted(solutions.items())) or "none read"
    hint = (" Every labelled problem is held out (MATH500 or validation): PRM800K's public phase-1 test files "
            "label MATH500 problems; see data.test_excludes_prm800k_problems.") if solutions.get("held_out") else ""
    sources = f"data.prm800k={cfg.data.prm800k}"
    if cfg.data.sft_source == "metamath":
        sources += f", data.metamath={cfg.data.metamath}"
    if cfg.data.prm_source == "math_shepherd":
        sources += f", data.math_shepherd={cfg.data.math_shepherd} (data.shepherd_match={cfg.data.shepherd_match})"
    return (f"rows by outcome ({counts}; unprefixed: PRM800K solutions) with data.train_levels="
            f"{cfg.data.train_levels}, {sources}.{hint}")


def _by_level(rows: list) -> dict[str, int]:
    counts = Counter(getattr(row, "level", None) for row in rows)
    return {("none" if k is None else str(k)): counts[k] for k in sorted(counts, key=lambda k: (k is None, k or 0))}


def _label_name(value: float) -> str:
    return str(int(value)) if value in (0.0, 1.0) else f"{value:g}"


def prepare(cfg: RunConfig, force: bool = False) -> dict:
    """Build and write every set; returns the summary. Skips when the manifest says the same data is done."""
    for levels_name in ("train_levels", "prompt_levels"):
        bad = [lv for lv in getattr(cfg.data, levels_name) if lv not in (1, 2, 3, 4, 5)]
        if bad:
            raise ConfigError(f"config key 'data.{levels_name}': levels must be 1-5, got {bad}")
    manifest = Manifest(RunLayout(cfg).manifest)
    key = fingerprint(cfg)
    out = data_dir(cfg)
    if not force and manifest.is_done(STAGE) and manifest.entries[STAGE].get("fingerprint") == key:
        summary = manifest.entries[STAGE].get("summary", {})
        return {**summary, "skipped": True}
    manifest.forget(STAGE)  # from here on the old outputs no longer count

    context: dict = {}
    sets, solutions = (build_math if cfg.data.source == "math" else build_world)(cfg, context)
    if cfg.prm.kind != "prm":
        sets["prm_train"] = with_outcome_rows(cfg, sets["prm_train"], context, solutions)
    for name in ("prm_train", "sft_train"):
        if not sets[name]:
            raise ConfigError(f"data prepare: 0 {name} rows: {_why_empty(cfg, solutions)}")
    paths = output_paths(cfg)
    for name, rows in sets.items():
        save_records(paths[name], rows)
    summary = summarize(sets, solutions)
    save_config(cfg, out)
    write_json(out / "summary.json", summary)
    manifest.mark_done(STAGE, [*paths.values(), out / "config.yaml", out / "summary.json"],
                       fingerprint=key, source=cfg.data.source, summary=summary)
    return summary
