"""`e2h score` on Ray actors (score.num_actors > 1): one PRM per actor, shards of the sample file, resumable per
shard; the scored rows must equal the in-process scorer's, each row exactly once."""

from __future__ import annotations

import json

import pytest

from conftest import prm_step_examples

pytestmark = pytest.mark.distributed


@pytest.fixture
def local_ray():
    """A Ray of our own on loopback (never `ray stop`: that would kill other people's Ray processes)."""
    import ray
    assert not ray.is_initialized()
    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_actors_score_every_row_once_like_in_process(tmp_path, tiny_prm_dir, local_ray):
    from e2h.records import Sample, load_records, save_records
    from e2h.text_format import format_prompt, format_solution
    from prm.score import PRMScorer, score_samples, score_file

    examples = prm_step_examples(22, seed=8)
    samples = [Sample(problem_id=e.problem_id, sample_index=i, prompt=format_prompt(e.problem),
                      completion=format_solution(e.steps)) for i, e in enumerate(examples)]
    path = tmp_path / "samples.jsonl"
    save_records(path, samples)
    out = tmp_path / "scored"

    summary = score_file(tiny_prm_dir, path, out, shard_size=4, num_actors=2, cpus_per_actor=0.5)
    assert (summary["units"], summary["skipped"], summary["scored_rows"]) == (6, 0, 22)
    shards = sorted(out.glob("shard-*.jsonl"))
    assert [p.stem for p in shards] == [f"shard-{i:05d}" for i in range(6)]
    rows = [row for shard in shards for row in load_records(shard, Sample)]
    assert [(r.problem_id, r.sample_index) for r in rows] == [(s.problem_id, s.sample_index) for s in samples]

    expected = score_samples(PRMScorer(tiny_prm_dir), samples)
    for got, want in zip(rows, expected):
        assert len(got.step_scores) == 3
        assert got.step_scores == pytest.approx(want.step_scores, abs=1e-6)
        assert got.aggregates == pytest.approx(want.aggregates, abs=1e-6)

    manifest = json.loads((out / "manifest.json").read_text())["entries"]
    assert sorted(manifest) == [p.stem for p in shards]
    (out / "shard-00002.jsonl").unlink()  # a lost shard is redone by the actors, the others are kept
    again = score_file(tiny_prm_dir, path, out, shard_size=4, num_actors=2, cpus_per_actor=0.5)
    assert (again["skipped"], again["scored_rows"]) == (5, 4)
    redone = load_records(out / "shard-00002.jsonl", Sample)
    assert [r.step_scores for r in redone] == [r.step_scores for r in rows[8:12]]
