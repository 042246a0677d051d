"""e2h eval: grade every sample once, rerank, and write the easy-to-hard curves and report.

    e2h eval --config configs/demo.yaml [--samples runs/demo/scored] [--out runs/demo/eval]

Reads scored samples (``e2h.records.Sample``, one JSON object per line; a folder means all its *.jsonl)::

    {"problem_id": "test/algebra/1.json", "sample_index": 3, "completion": "...\\n\\n# Answer\\n\\n\\\\frac12",
     "gold_answer": "0.5", "level": 4, "subject": "Algebra", "step_scores": [0.93, 0.71, 0.88],
     "aggregates": {"orm_score": 0.64}, ...}

Steps: (1) extract each completion's answer and grade every distinct (answer, gold) pair once with the grader's
batch API (killable SymPy workers; an on-disk cache in the output folder keyed by the grader version);
(2) build each problem's pool: answer classes grouped without the gold, by the grader's equivalence between
the samples' own answers (``e2h.rerank.answer_classes``; ``eval.vote_grouping: gold`` instead merges every
answer graded correct, the old optimistic grouping), each class then scored against the gold; and solution
scores (step-score aggregations min / prod / last / mean, plus any ``aggregates`` such as an ORM score);
(3) bootstrap every method's accuracy at each N (``e2h.curves``); (4) summarise overall, easy (levels 1-3),
hard (4-5), per level and per subject; (5) write metrics.json, report.md and report.html.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from e2h import curves, rerank
from e2h.config import add_config_arguments, config_from_args
from e2h.grading import GRADER_VERSION, grade_many, normalize_answer
from e2h.grading.compare import DEFAULT_REL_TOL, NUMERIC_CONVENTIONS
from e2h.grading.extract import completion_answer
from e2h.jsonl import RecordError, read_jsonl, write_json
from e2h.layout import RunLayout
from e2h.records import EASY_LEVELS, HARD_LEVELS, Sample, jsonl_files
from e2h.report import write_report
from e2h.text_format import ends_with_answer, split_solution

METRICS_VERSION = 1
ORACLE = "oracle (pass@N)"


# --------------------------------------------------------------------------------------------------- input
def sample_files(path: str | Path) -> list[Path]:
    return jsonl_files(path, "eval samples")


def load_samples(paths: list[Path]) -> list[Sample]:
    """Validated samples; errors name file, line and field (bad scores, duplicates, conflicting gold answers)."""
    from pydantic import ValidationError

    samples: list[Sample] = []
    seen: dict[tuple[str, int], str] = {}
    gold: dict[str, tuple[str | None, str]] = {}
    for path in paths:
        for line, obj in read_jsonl(path):
            try:
                sample = Sample.model_validate(obj)
            except ValidationError as err:
                first = err.errors()[0]
                raise RecordError(path, line, f"field '{'.'.join(map(str, first['loc']))}': {first['msg']}") from None
            where = f"{path}:{line}"
            if sample.gold_answer is None:
                raise RecordError(path, line, "field 'gold_answer' is missing; eval needs the gold answer")
            for name, values in (("step_scores", sample.step_scores or []),):
                bad = [v for v in values if not (0.0 <= v <= 1.0)]
                if bad:
                    raise RecordError(path, line, f"field '{name}' holds {bad[0]!r}; step scores are "
                                                  "probabilities in [0, 1] (apply a sigmoid to logits)")
            key = (sample.problem_id, sample.sample_index)
            if key in seen:
                raise RecordError(path, line, f"duplicate sample {key} (first at {seen[key]})")
            seen[key] = where
            first_gold = gold.setdefault(sample.problem_id, (sample.gold_answer, where))
            if first_gold[0] != sample.gold_answer:
                raise RecordError(path, line, f"field 'gold_answer' is {sample.gold_answer!r} but {first_gold[1]} "
                                              f"gave {first_gold[0]!r} for problem {sample.problem_id}")
            samples.append(sample)
    if not samples:
        raise ValueError(f"no samples in {', '.join(map(str, paths))}")
    return samples


# ------------------------------------------------------------------------------------------------- grading
@dataclass
class Grades:
    """One grade per sample: the grader's grouping key (None = no answer), correctness and reason."""

    keys: list[str | None]
    correct: list[bool]
    reasons: list[str]
    grader_version: str
    source: str
    graded_pairs: int = 0
    cache_hits: int = 0
    numeric: str = "exact"  # the numeric convention (grading.numeric) and its tolerance, for the report
    rel_tol: float | None = None
    mode: str = "e2h"  # the grader (grading.mode): e2h or prm800k_strict
    answers: list[str | None] | None = None  # the extracted answer texts (what vote grouping compares)

    @property
    def counts(self) -> dict[str, int]:
        reasons = Counter(self.reasons)
        return {"samples": len(self.keys), "correct": int(sum(self.correct)),
                "unparseable": sum(k is None for k in self.keys), "timeouts": reasons.get("timeout", 0),
                "errors": reasons.get("error", 0), "graded_pairs": self.graded_pairs, "cache_hits": self.cache_hits,
                "reasons": dict(sorted(reasons.items()))}


def grade_samples(samples: list[Sample], timeout_s: float, workers: int, cache_path: Path | None = None,
                  regrade: bool = True, numeric: str = "exact", rel_tol: float = 1e-9, mode: str = "e2h") -> Grades:
    """Grade every sample once: distinct (answer, gold) pairs go to ``grade_many`` (cached on disk)."""
    if not regrade and all(s.correct is not None for s in samples):
        keys = [normalize_answer(s.pred_answer) or None if s.pred_answer is not None else None for s in samples]
        return Grades(keys, [bool(s.correct) and k is not None for s, k in zip(samples, keys)],
                      [s.grade_reason or ("no_answer" if k is None else "from_samples") for s, k in zip(samples, keys)],
                      grader_version="from the samples file", source="samples file", numeric="from the samples file",
                      answers=[s.pred_answer if k is not None else None for s, k in zip(samples, keys)])
    convention = f"{GRADER_VERSION} numeric={numeric}" + (f" rel_tol={rel_tol:g}" if numeric == "rel_tol" else "")
    if mode != "e2h":
        convention = f"{GRADER_VERSION} mode={mode}"  # numeric does not apply to the reference's grader
    cache: dict[str, list] = {}
    if cache_path is not None and cache_path.exists():
        stored = json.loads(cache_path.read_text(encoding="utf-8"))
        if stored.get("grader_version") == convention:  # another grader or convention: grade again
            cache = stored.get("entries", {})
    answers = [completion_answer(s.completion) for s in samples]
    pair_key = [json.dumps([a, s.gold_answer]) if a is not None else None for a, s in zip(answers, samples)]
    todo = sorted({k for k in pair_key if k is not None and k not in cache})
    hits = sum(1 for k in set(pair_key) if k is not None and k in cache)
    if todo:
        verdicts = grade_many([tuple(json.loads(k)) for k in todo], timeout_s=timeout_s, workers=workers,
                              numeric=numeric, rel_tol=rel_tol, mode=mode)
        for k, v in zip(todo, verdicts):
            cache[k] = [bool(v.correct), v.reason, v.pred_normalized or None]
        if cache_path is not None:
            keep = {k: v for k, v in cache.items() if v[1] != "timeout"}  # a timeout may be a busy machine
            write_json(cache_path, {"grader_version": convention, "entries": keep})
    keys, correct, reasons = [], [], []
    for a, k in zip(answers, pair_key):
        if k is None:
            keys.append(None), correct.append(False), reasons.append("no_answer")
            continue
        ok, reason, norm = cache[k]
        keys.append(norm if norm is not None else normalize_answer(a))
        correct.append(bool(ok))
        reasons.append(reason)
    return Grades(keys, correct, reasons, GRADER_VERSION, "grader", graded_pairs=len(todo), cache_hits=hits,
                  numeric=numeric, rel_tol=rel_tol if numeric == "rel_tol" else None, mode=mode, answers=answers)


# --------------------------------------------------------------------------------------------------- pools
@dataclass
class Pools:
    """Per problem: its samples' answer classes (correct classes 0 .. n_gold-1 first, ``rerank.vote_classes``)
    and solution scores (name -> array), plus labels and what the grouping found."""

    problem_ids: list[str]
    levels: list[int | None]
    subjects: list[str]
    classes: list[np.ndarray]
    n_gold: list[int] = field(default_factory=list)
    scores: dict[str, list[np.ndarray]] = field(default_factory=dict)
    score_transforms: dict[str, str] = field(default_factory=dict)
    grouping: dict = field(default_factory=dict)


def build_pools(samples: list[Sample], grades: Grades, aggregations: list[str], grouping: str = "samples",
                same_answer: rerank.SameAnswer | None = None, steps: str = "reasoning_and_answer") -> Pools:
    """Pools per problem; answers grouped by ``grouping`` (``samples``: gold-blind, with ``same_answer``); PRM
    aggregates read the step scores ``steps`` (score.steps) selects, as `e2h score` and the service do."""
    by_problem: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        by_problem[s.problem_id].append(i)
    for members in by_problem.values():
        members.sort(key=lambda i: samples[i].sample_index)
    pools = Pools([], [], [], [])
    pools.grouping = group_answers(list(by_problem.values()), grades, grouping, same_answer, pools)
    has_steps = any(s.step_scores for s in samples)
    # prm.score also stores min / prod / last / mean in `aggregates`; those are recomputed from step_scores
    # (or read from aggregates when a file has no step scores). Any other aggregate (orm_score, ...) is its
    # own solution score with its own best-of-N and weighted-vote methods.
    all_aggregates = {name for s in samples for name in (s.aggregates or {})}
    prm_aggs = [a for a in aggregations if has_steps or a in all_aggregates]
    aggregate_names = sorted(all_aggregates - set(rerank.AGGREGATIONS))
    for name in [f"prm_{a}" for a in prm_aggs] + aggregate_names:
        pools.scores[name] = []

    def column(members: list[int], name: str) -> np.ndarray:
        return np.array([(samples[i].aggregates or {}).get(name, np.nan) for i in members], dtype=np.float64)

    def chosen(members: list[int]) -> list[list[float]]:
        return [rerank.select_steps(samples[i].step_scores, ends_with_answer(split_solution(samples[i].completion)),
                                    steps) for i in members]

    for pid, members in by_problem.items():
        first = samples[members[0]]
        pools.problem_ids.append(pid)
        pools.levels.append(first.level)
        pools.subjects.append(first.subject or "(none)")
        for agg in prm_aggs:
            values = (rerank.aggregate_steps(chosen(members), agg) if has_steps
                      else column(members, agg))
            pools.scores[f"prm_{agg}"].append(values)
        for name in aggregate_names:
            pools.scores[name].append(column(members, name))
    for name in aggregate_names:  # aggregates outside [0, 1] are logits: voting needs probabilities
        values = np.concatenate(pools.scores[name])
        finite = values[np.isfinite(values)]
        if finite.size and (finite.min() < 0 or finite.max() > 1):
            pools.scores[name] = [1.0 / (1.0 + np.exp(-v)) for v in pools.scores[name]]
            pools.score_transforms[name] = "sigmoid (values outside [0, 1] were read as logits)"
    return pools


def group_answers(problems: list[list[int]], grades: Grades, grouping: str,
                  same_answer: rerank.SameAnswer | None, pools: Pools) -> dict:
    """Fill pools.classes / pools.n_gold for every problem at once (the grader's comparisons are batched over
    problems); returns what the grouping did, for metrics.json."""
    keys = [[grades.keys[i] for i in members] for members in problems]
    correct = [[grades.correct[i] for i in members] for members in problems]
    texts = [[grades.answers[i] for i in members] for members in problems] if grades.answers is not None else None
    started = time.perf_counter()
    grouped = rerank.vote_classes_many(keys, correct, grouping, same_answer, texts)
    pools.classes = [g.ids for g in grouped]
    pools.n_gold = [g.n_gold for g in grouped]
    distinct_keys = sum(len({k for k in pool if k is not None}) for pool in keys)
    classes = sum(len(set(g.ids[g.ids >= 0].tolist())) for g in grouped)
    info = {"vote_grouping": grouping, "seconds": round(time.perf_counter() - started, 3),
            "distinct_keys": distinct_keys, "classes": classes,
            # samples grouping: distinct keys the grader joined to another; gold grouping: keys merged into gold
            "keys_merged": distinct_keys - classes,
            "mixed_classes": sum(rerank.mixed_classes(g.ids, ok) for g, ok in zip(grouped, correct)),
            "problems_with_several_correct_classes": sum(g.n_gold > 1 for g in grouped)}
    if isinstance(same_answer, rerank.GraderSameAnswer) and grouping == "samples":
        info.update(same_answer.stats())
    return info


def grouping_comparer(cfg, grades: Grades, numeric: str | None = None,
                      rel_tol: float | None = None, mode: str | None = None) -> rerank.GraderSameAnswer:
    """The grader equivalence that groups answers, under the grader and numeric convention the grades used."""
    numeric = numeric or (grades.numeric if grades.numeric in NUMERIC_CONVENTIONS else "exact")
    rel_tol = rel_tol or grades.rel_tol or DEFAULT_REL_TOL
    return rerank.GraderSameAnswer(cfg.grader_timeout_s, cfg.grader_workers, numeric, rel_tol,
                                   mode=mode or grades.mode)


_GROUPING_MEANING = {
    "samples": "answers grouped without the gold, as a deployed reranker would: equal keys vote together, and "
               "distinct keys vote together when the grader calls them equal to each other (either as the gold); "
               "then a class is correct when at least half of its samples were graded correct; several correct "
               "classes vote apart; samples without an answer never win",
    "gold": "answers grouped by the grader's normalised key, and every answer graded correct joins the gold class "
            "(uses the gold: can only raise voting accuracy; eval.vote_grouping=gold, for comparison only); "
            "samples without an answer never win",
}


def build_methods(cfg, pools: Pools) -> tuple[list[curves.Method], list[str]]:
    """All methods, and the headline ones (majority, configured best-of-N and weighted vote, ORM-style, oracle)."""
    methods = [curves.Method("majority", "majority")]
    headline = ["majority"]
    prm_aggs = [n.removeprefix("prm_") for n in pools.scores if n.startswith("prm_")]
    for kind, chosen in (("weighted_vote", cfg.weighted_vote_aggregation), ("best_of_n", cfg.best_of_n_aggregation)):
        for agg in prm_aggs:
            methods.append(curves.Method(f"{kind}/{agg}", kind, f"prm_{agg}"))
        if chosen in prm_aggs:
            headline.append(f"{kind}/{chosen}")
    for name in (n for n in pools.scores if not n.startswith("prm_")):
        for kind in ("weighted_vote", "best_of_n"):
            methods.append(curves.Method(f"{kind}/{name}", kind, name))
            headline.append(f"{kind}/{name}")
    methods.append(curves.Method(ORACLE, "pass"))
    headline.append(ORACLE)
    return methods, headline


def problem_groups(pools: Pools) -> dict[str, dict[str, np.ndarray]]:
    """Problem indices per split: all, easy (levels 1-3), hard (4-5), each level, each subject."""
    levels = np.array([lv if lv is not None else 0 for lv in pools.levels])
    idx = np.arange(len(levels))
    groups = {"split": {"all": idx, "easy": idx[np.isin(levels, EASY_LEVELS)], "hard": idx[np.isin(levels, HARD_LEVELS)]},
              "level": {}, "subject": {}}
    for lv in sorted(set(levels.tolist())):
        groups["level"][str(lv) if lv else "none"] = idx[levels == lv]
    subjects = np.array(pools.subjects, dtype=object)
    for subject in sorted(set(pools.subjects)):
        groups["subject"][subject] = idx[subjects == subject]
    return groups


# ------------------------------------------------------------------------------------------------- metrics
def compute_metrics(samples: list[Sample], grades: Grades, cfg, config_dump: dict | None = None,
                    inputs: list[str] = (), same_answer: rerank.SameAnswer | None = None,
                    steps: str = "reasoning_and_answer") -> dict:
    """Everything the report shows, as plain JSON: counts, methods, and curves per split / level / subject.

    Answers are grouped by ``cfg.vote_grouping`` (default ``samples``: without the gold), compared by
    ``same_answer`` (default: the grader, under the grades' numeric convention)."""
    started = time.perf_counter()
    aggregations = list(dict.fromkeys([cfg.best_of_n_aggregation, cfg.weighted_vote_aggregation, *cfg.aggregations]))
    grouping = getattr(cfg, "vote_grouping", "samples")
    if same_answer is None and grouping == "samples":
        same_answer = grouping_comparer(cfg, grades)
    pools = build_pools(samples, grades, aggregations, grouping, same_answer, steps)
    methods, headline = build_methods(cfg, pools)
    sizes = np.array([len(c) for c in pools.classes])
    n_values = sorted(set(cfg.n_values)) if cfg.n_values else curves.default_n_values(int(sizes.max()))
    acc = curves.resample_accuracy(pools.classes, pools.scores, methods, n_values, cfg.resamples, cfg.seed,
                                   pools.n_gold)
    groups = problem_groups(pools)
    curves_out: dict[str, dict] = {}
    for family, members in groups.items():
        curves_out[family] = {}
        for name, rows in members.items():
            if not len(rows):
                curves_out[family][name] = {"n_problems": 0, "curves": {}}
                continue
            counts = curves.problem_bootstrap_counts(len(rows), cfg.resamples, cfg.seed + 1)
            curves_out[family][name] = {
                "n_problems": int(len(rows)),
                "curves": {m.name: curves.summarize(acc[m.name][rows], problem_counts=counts) for m in methods},
            }
    short = {str(n): int((sizes < n).sum()) for n in n_values if (sizes < n).any()}
    per_level = Counter(str(lv) if lv else "none" for lv in pools.levels)
    per_problem = []
    for p, pid in enumerate(pools.problem_ids):
        classes = pools.classes[p]
        per_problem.append({"problem_id": pid, "level": pools.levels[p], "subject": pools.subjects[p],
                            "pool": int(len(classes)), "correct": int(rerank.is_gold(classes, pools.n_gold[p]).sum()),
                            "correct_classes": len(set(classes[rerank.is_gold(classes, pools.n_gold[p])].tolist())),
                            "unparseable": int((classes < 0).sum()), "distinct_answers": int(len(set(classes[classes >= 0].tolist()))),
                            f"mean_at_n{n_values[-1]}": {m.name: round(float(acc[m.name][p, :, -1].mean()), 6)
                                                          for m in methods}})
    return {
        "metrics_version": METRICS_VERSION,
        "grader_version": grades.grader_version,
        "grades_source": grades.source,
        "numeric_convention": _numeric_convention(grades),
        "inputs": list(inputs),
        "config": config_dump or {},
        "eval": cfg.model_dump(mode="json"),
        "counts": {
            "problems": len(pools.problem_ids),
            **grades.counts,
            "samples_without_step_scores": sum(1 for s in samples if not s.step_scores),
            "pool_size": {"min": int(sizes.min()), "median": float(np.median(sizes)), "max": int(sizes.max())},
            "problems_with_pool_smaller_than_n": short,
            "problems_per_level": dict(sorted(per_level.items())),
            "problems_per_subject": dict(sorted(Counter(pools.subjects).items())),
            "grouping": pools.grouping,
        },
        "n_values": n_values,
        "resamples": cfg.resamples,
        "seed": cfg.seed,
        "interval": {"level": 0.95, "shown": cfg.interval,
                     "samples": "percentiles over resamples of the mean over problems (which N samples were drawn)",
                     "problems": "bootstrap over problems of each problem's expected accuracy: a confidence "
                                         "interval for the mean (test-set uncertainty)"},
        "tie_rule": "expected accuracy under a uniformly random tie-break: k answers tied at the top with the gold "
                    "among them score 1/k; best-of-N ties score the correct fraction of the tied samples",
        "vote_grouping": grouping,
        "grouping": _GROUPING_MEANING[grouping],
        "methods": {m.name: {"kind": m.kind, "score": m.score,
                             "transform": pools.score_transforms.get(m.score or "")} for m in methods},
        "headline_methods": headline,
        "groups": curves_out,
        "per_problem": per_problem,
        "seconds": round(time.perf_counter() - started, 3),
    }


_NUMERIC_MEANING = {
    "exact": "numbers equal only exactly; decimals are exact rationals (PRM800K's grader: exact after normalisation)",
    "rel_tol": "a decimal matches within a relative tolerance (math-verify rounds to 6 decimal places instead)",
}


def _numeric_convention(grades: Grades) -> str:
    """The numeric convention the grades used, in words (the report prints it)."""
    if grades.mode == "prm800k_strict":
        return "prm800k_strict: PRM800K's grader with its SymPy check off (the reference's); strings only"
    if grades.numeric not in _NUMERIC_MEANING:
        return grades.numeric
    tol = f" {grades.rel_tol:g}" if grades.rel_tol is not None else ""
    return f"{grades.numeric}{tol}: {_NUMERIC_MEANING[grades.numeric]}"


def evaluate(config, samples_path: str | Path, out_dir: str | Path) -> dict:
    """Grade, rerank, write metrics.json + report.md + report.html into out_dir; returns the metrics."""
    out_dir = Path(out_dir)
    paths = sample_files(samples_path)
    samples = load_samples(paths)
    cfg = config.eval
    grades = grade_samples(samples, cfg.grader_timeout_s, cfg.grader_workers, out_dir / "grades_cache.json",
                           regrade=cfg.regrade, **config.grading.options())
    same_answer = grouping_comparer(cfg, grades, **config.grading.options())
    metrics = compute_metrics(samples, grades, cfg, config.model_dump(mode="json"), [str(p) for p in paths],
                              same_answer, config.score.steps)
    metrics["run_name"] = config.run.name
    write_json(out_dir / "metrics.json", _finite(metrics))
    write_report([metrics], [config.run.name], out_dir)
    return metrics


def _finite(obj):
    """JSON has no NaN: write None for it (an empty split's numbers)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


# ------------------------------------------------------------------------------------------------- command
def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--samples", help="samples JSONL or folder (default: eval.samples, else <run>/scored "
                                          "or <run>/samples)")
    parser.add_argument("--out", help="output folder (default: eval.output_dir, else <run>/eval)")


def default_samples_path(config) -> Path:
    candidates = RunLayout(config).eval_candidates
    if config.eval.samples:
        return candidates[0]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"no samples: pass --samples, set eval.samples, or run sampling and scoring into "
                            f"{candidates[0]}")


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    samples = Path(args.samples) if args.samples else default_samples_path(config)
    out_dir = Path(args.out) if args.out else RunLayout(config).eval_dir
    metrics = evaluate(config, samples, out_dir)
    counts = metrics["counts"]
    top = metrics["groups"]["split"]
    n = metrics["n_values"][-1]
    print(f"graded {counts['samples']} samples of {counts['problems']} problems "
          f"({counts['unparseable']} unparseable, {counts['timeouts']} timeouts); votes grouped "
          f"{'without the gold' if metrics['vote_grouping'] == 'samples' else 'WITH the gold (optimistic)'} "
          f"(eval.vote_grouping={metrics['vote_grouping']}); accuracy at N={n}:")
    for name in metrics["headline_methods"]:
        row = [f"{split} {top[split]['curves'][name]['mean'][-1] * 100:5.1f}" for split in ("all", "easy", "hard")
               if top[split]["n_problems"]]
        print(f"  {name:28s} " + "  ".join(row))
    print(f"wrote {out_dir / 'metrics.json'}, {out_dir / 'report.md'}, {out_dir / 'report.html'}")
    return 0
