"""The offline leveled world: seeded math problems in five levels with step-by-step solutions, a step checker,
and flawed solutions, so the whole easy-to-hard pipeline runs on a laptop CPU with tiny models.

    splits = generate_world(cfg.world)                 # {"train": [...], "validation": [...], "test": [...]}
    prm = world_step_examples(splits["train"], cfg.world, seed=0)   # correct + flawed, a label on every step
    sft = world_sft_examples(splits["train"])          # prompt -> full reference solution, eos
    ex = label_with_checker(problem, sampled_text)     # label a policy sample step by step

PRM labels of a flawed solution (``world.after_error``): by default ("label") every step carries the step
checker's verdict. Steps before the first error are 1, the first error 0, and after it a step is 0 when it builds
on a wrong value (the checker's grounding rule) or 1 when it is an independent correct step; the answer step of
a wrong solution is always 0. We prefer this to cutting at the first error ("cut", PRM800K phase 2) because
every label is then a true statement about its step (no correct step is ever called wrong, no wrong step goes
unlabelled), the answer step of every wrong solution is a negative (what ``last``/``prod`` aggregation and
weighted voting read), and an example carries more labelled steps. Policy samples labelled with
:func:`label_with_checker` get the same rule, so PRM data from the world and from sampling agree.
"""

from __future__ import annotations

import hashlib
import random

from e2h.config import ConfigError, WorldSection
from e2h.records import Problem, SFTExample, StepExample
from e2h.text_format import format_prompt, split_solution
from e2h.world.checker import check_steps, first_error, parse_answer, parse_step
from e2h.world.flaws import FlawedSolution, flawed_solutions
from e2h.world.generator import LEVELS, SLUGS, SUBJECTS, Scale, make_problem, unique_problems
from e2h.world.misconceptions import misconceived_steps
from e2h.world.restated import SUBJECTS as RESTATED_SUBJECTS

__all__ = [
    "LEVELS", "SUBJECTS", "FlawedSolution", "check_steps", "first_error", "flawed_solutions", "generate_world",
    "label_with_checker", "labels_for", "parse_answer", "parse_step", "world_sft_examples", "world_step_examples",
]

SPLIT_ORDER = ("test", "validation", "train")  # drawn in this order: the test set never depends on train sizes


def world_subjects(cfg: WorldSection) -> list[str]:
    subjects = list(cfg.subjects) or list(SUBJECTS)
    unknown = [s for s in subjects if s not in SUBJECTS]
    if unknown:
        raise ConfigError(f"config key 'world.subjects': unknown subject(s) {unknown}; choose from {list(SUBJECTS)}")
    if cfg.step_format == "restated" and not set(subjects) <= set(RESTATED_SUBJECTS):
        raise ConfigError(f"config key 'world.step_format': restated steps are written for "
                          f"{list(RESTATED_SUBJECTS)} only; world.subjects is {subjects}")
    return subjects


def world_scale(cfg: WorldSection) -> Scale:
    """The per-level number sizes and nesting of ``cfg`` (the generator's defaults where unset), checked."""
    default = Scale()
    sizes = {"leaf_max": default.leaf_max if cfg.leaf_max is None else cfg.leaf_max,
             "value_cap": default.value_cap if cfg.value_cap is None else cfg.value_cap}
    for key, values in sizes.items():
        if len(values) != len(LEVELS) or min(values, default=0) < 2:
            raise ConfigError(f"config key 'world.{key}': one number >= 2 per level ({len(LEVELS)}), got {values}")
    nest_p = default.nest_p if cfg.nest_p is None else cfg.nest_p
    if len(nest_p) != len(LEVELS) or not all(0 <= p <= 1 for p in nest_p):
        raise ConfigError(f"config key 'world.nest_p': one probability per level ({len(LEVELS)}), got {nest_p}")
    if any(cap < 2 * leaf for cap, leaf in zip(sizes["value_cap"], sizes["leaf_max"])):
        raise ConfigError("config keys 'world.value_cap' / 'world.leaf_max': a level's value cap must be at least "
                          "twice its largest leaf, or most draws are rejected")
    return Scale(leaf_max=tuple(sizes["leaf_max"]), value_cap=tuple(sizes["value_cap"]), nest_p=tuple(nest_p))


def generate_world(cfg: WorldSection) -> dict[str, list[Problem]]:
    """All five levels in every split, ``cfg.<split>_per_level`` problems per level, subjects round-robin.

    No two problems anywhere share a (whitespace-normalised) text, so the splits are disjoint. Ids read
    ``world/test/fractions/L4-0007``.
    """
    subjects = world_subjects(cfg)
    sizes = {"test": cfg.test_per_level, "validation": cfg.validation_per_level, "train": cfg.train_per_level}
    splits: dict[str, list[Problem]] = {name: [] for name in ("train", "validation", "test")}
    scale = world_scale(cfg)
    for level in LEVELS:
        seen: set[str] = set()
        drawn = unique_problems(cfg.seed, level, subjects, sum(sizes.values()), seen, scale=scale)
        for split in SPLIT_ORDER:
            counters = {s: 0 for s in subjects}
            for _ in range(sizes[split]):
                subject, problem = next(drawn)
                pid = f"world/{split}/{SLUGS[subject]}/L{level}-{counters[subject]:04d}"
                counters[subject] += 1
                splits[split].append(make_problem(problem, pid, level, subject, cfg.step_format))
    return splits


def labels_for(verdicts: list[bool | None], after_error: str = "label") -> tuple[int, list[float | None]]:
    """Step labels from checker verdicts; returns (how many steps to keep, labels for them)."""
    labels = [None if v is None else float(v) for v in verdicts]
    if after_error == "cut":
        cut = next((i + 1 for i, v in enumerate(verdicts) if v is False), len(verdicts))
        return cut, labels[:cut]
    if after_error != "label":
        raise ValueError(f"after_error must be 'label' or 'cut', got {after_error!r}")
    return len(labels), labels


def _step_example(problem: Problem, steps: list[str], suffix: str, after_error: str) -> StepExample:
    keep, labels = labels_for(check_steps(problem, steps), after_error)
    return StepExample(id=f"{problem.id}/{suffix}", problem_id=problem.id, problem=problem.problem,
                       steps=steps[:keep], labels=labels, level=problem.level, source="world")


def world_step_examples(problems: list[Problem], cfg: WorldSection | None = None,
                        seed: int | None = None) -> list[StepExample]:
    """Whole-solution PRM examples: per problem its reference solution (every label 1),
    ``cfg.flawed_per_problem`` flawed ones and the solution of each configured misconception that changes it
    (e2h.world.misconceptions), labelled by the step checker (see the module docstring).

    Flaws are seeded per (seed, problem id), so adding problems never changes another problem's flaws.
    """
    cfg = cfg or WorldSection()
    seed = cfg.seed if seed is None else seed
    examples: list[StepExample] = []
    for problem in problems:
        examples.append(_step_example(problem, split_solution(problem.solution or ""), "reference", "label"))
        rng = random.Random(f"e2h-world-flaws/{seed}/{problem.id}")
        for index, flaw in enumerate(flawed_solutions(problem, rng, cfg.flawed_per_problem, cfg.flaw_weights)):
            examples.append(_step_example(problem, flaw.steps, f"flaw-{index}-{flaw.kind}", cfg.after_error))
        for rule in (r for r, share in cfg.misconceptions.items() if share > 0):
            steps = misconceived_steps(problem, rule)
            example = None if steps is None else _step_example(problem, steps, f"misconception-{rule}",
                                                                cfg.after_error)
            if example is not None and 0.0 in example.labels:  # a chain right by coincidence is no negative
                examples.append(example)
    return examples


def world_sft_examples(problems: list[Problem]) -> list[SFTExample]:
    """SFT pairs: the prompt in e2h's format and the full reference solution, ending in EOS."""
    return [SFTExample(id=f"{p.id}/sft", problem_id=p.id, prompt=format_prompt(p.problem),
                       completion=p.solution or "", eos=True, level=p.level) for p in problems]


def label_with_checker(problem: Problem, completion_text: str, after_error: str = "label") -> StepExample:
    """Label a sampled solution step by step (for PRM data from policy samples).

    The completion is split with e2h's text format (text after the answer line is ignored). An empty
    completion becomes one empty step labelled 0, so a caller can label every sample without special cases.
    The id is the problem id plus a hash of the text, so labelling the same sample twice gives the same id.
    """
    steps = split_solution(completion_text) or [""]
    digest = hashlib.sha1(completion_text.encode("utf-8")).hexdigest()[:12]
    return _step_example(problem, steps, f"checked-{digest}", after_error)
