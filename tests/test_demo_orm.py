"""`e2h demo prm.kind=orm | oprm` on the world (issue #19 item 1): the PRM data the prm_pool stage builds from the
pool's samples, on hand-written samples (no model), and the config plumbing; the demo itself is not run."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import world_sample as sample, wrong_answer as wrong

from e2h.config import WorldSection
from e2h.grading import grade
from e2h.commands.pipeline import data_stage_config, demo_config, demo_stages, prm_pool_rows, stage_fingerprint
from e2h.records import Sample
from e2h.text_format import is_answer_step
from e2h.world import generate_world, world_step_examples

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "demo.yaml")


@pytest.fixture(scope="module")
def pool():
    splits = generate_world(WorldSection(train_per_level=4, validation_per_level=2, test_per_level=2))
    return [p for p in splits["train"] if p.level in (1, 2, 3)][:3]


def pool_samples(pool) -> list[Sample]:
    """Per problem: two right samples, one wrong answer, one cut before its answer (wrong); the last problem's
    samples are all right (a one-sided problem, left out of the ORM rows by data.orm_max_ratio)."""
    rows = []
    for problem in pool[:2]:
        rows += [sample(problem, 0, problem.solution), sample(problem, 1, problem.solution),
                 sample(problem, 2, wrong(problem)), sample(problem, 3, problem.solution.split("\n\n")[0])]
    rows += [sample(pool[2], i, pool[2].solution) for i in range(3)]
    return rows


def config(kind: str, *extra: str):
    return demo_config(CONFIG, [f"prm.kind={kind}", *extra], "runs/unused", None)


def test_prm_kind_keeps_the_checker_labelled_rows_and_the_flawed_solutions(pool):
    flawed = world_step_examples(pool, config("prm").world, 0)
    rows = prm_pool_rows(config("prm"), pool, pool_samples(pool), flawed)
    assert {r.source for r in rows} >= {r.source for r in flawed} and not any(r.id.startswith("orm/") for r in rows)
    assert all(None not in r.labels for r in rows)  # every step labelled (the checker)


@pytest.mark.parametrize("ratio", [None, 3.0])
def test_orm_rows_carry_the_graders_verdict_on_the_answer_step(pool, ratio):
    samples = pool_samples(pool)
    cfg = config("orm", f"data.orm_max_ratio={'null' if ratio is None else ratio}")
    rows = prm_pool_rows(cfg, pool, samples, world_step_examples(pool, cfg.world, 0))
    assert all(r.source == "orm" and r.id.startswith("orm/") for r in rows)  # outcome rows only
    by_key = {(s.problem_id, s.sample_index): s for s in samples}
    gold = {p.id: p.answer for p in pool}
    for row in rows:
        source = by_key[(row.problem_id, int(row.id.rsplit("/", 1)[1]))]
        assert row.labels[:-1] == [None] * (len(row.steps) - 1)
        answer = row.steps[-1].split("# Answer", 1)[1].strip() if is_answer_step(row.steps[-1]) else None
        verdict = answer is not None and grade(answer, gold[row.problem_id]).correct
        assert row.labels[-1] == (1.0 if verdict else 0.0), source.completion
    kept = {(r.problem_id, r.labels[-1]) for r in rows}
    assert {(p.id, label) for p in pool[:2] for label in (0.0, 1.0)} <= kept
    assert any(r.problem_id == pool[2].id for r in rows) == (ratio is None)  # one-sided: balanced out
    assert len(rows) == (11 if ratio is None else 8)


def test_oprm_is_the_union_of_the_prm_rows_and_the_orm_rows(pool):
    samples = pool_samples(pool)
    flawed = world_step_examples(pool, config("prm").world, 0)
    step_rows = prm_pool_rows(config("prm"), pool, samples, flawed)
    outcome = prm_pool_rows(config("orm"), pool, samples, flawed)
    union = prm_pool_rows(config("oprm"), pool, samples, flawed)
    assert [r.id for r in union] == [r.id for r in step_rows] + [r.id for r in outcome]
    assert len({r.id for r in union}) == len(union)


def test_orm_without_a_two_sided_problem_says_why(pool):
    samples = [sample(pool[2], i, pool[2].solution) for i in range(3)]
    with pytest.raises(RuntimeError, match="0 ORM rows.*orm_max_ratio"):
        prm_pool_rows(config("orm"), pool, samples, [])


def test_the_data_stage_prepares_step_rows_and_the_kind_reaches_the_prm_stages():
    prm, orm = config("prm"), config("oprm")
    assert data_stage_config(prm) is prm  # the default is untouched
    assert data_stage_config(orm).prm.kind == "prm" and orm.prm.kind == "oprm"
    math = demo_config(CONFIG, ["data.source=math", "prm.kind=orm"], "runs/unused", None)
    assert data_stage_config(math).prm.kind == "orm"  # e2h data prepare reads data.orm_samples there
    assert [s.name for s in demo_stages(orm, with_ppo=False)] == [s.name for s in demo_stages(prm, with_ppo=False)]
    # the kind reruns the pool and every stage after it, and nothing before it
    changed = differing_stages(prm, orm)
    assert changed[0] == "prm_pool" and "sft" not in changed and changed[-1] == "ppo", changed


def fingerprints(cfg) -> dict[str, str]:
    chain, before = {}, ""
    for stage in demo_stages(cfg, with_ppo=True, with_upper_bound=True):
        chain[stage.name] = before = stage_fingerprint(stage, cfg, before)
    return chain


def differing_stages(one, two) -> list[str]:
    first, second = fingerprints(one), fingerprints(two)
    return [name for name in first if first[name] != second[name]]


@pytest.mark.parametrize("override, first_changed", [
    ("sft.lr=1e-4", "sft"),
    ("prm.lr=1e-4", "prm"),
    ("demo.eval_split=validation", "sample"),
    ("score.steps=reasoning", "score"),
    ("eval.resamples=7", "eval"),
    ("world.train_per_level=7", "world"),  # not in the corpus: the base stays
    ("world.test_per_level=7", "base"),  # the corpus leaves out the test problems: a new base
])
def test_a_changed_key_reruns_its_stage_and_every_later_one(override, first_changed):
    base = config("prm")
    changed = differing_stages(base, demo_config(CONFIG, ["prm.kind=prm", override], "runs/unused", None))
    names = list(fingerprints(base))
    assert changed == names[names.index(first_changed):], (override, changed)


def test_the_run_folder_is_not_a_setting_but_a_given_model_is():
    base = config("prm")
    moved = base.model_copy(deep=True)
    moved.run.out_dir = "elsewhere"
    assert fingerprints(base) == fingerprints(moved)
    given = base.model_copy(deep=True)
    given.prm_backbone.path = "some/pretrained/model"
    assert differing_stages(base, given)[0] == "world"
