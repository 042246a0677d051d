"""Sampling pieces that need no vLLM: seeds, shard layout, the answer-line cut, the shard store's resume rules,
and row building through the transformers.generate backend."""

from __future__ import annotations

import json

import pytest

from e2h.records import Problem, Sample
from policy.generator import GenerationParams, request_seed
from policy.shards import ShardStore, plan_shards, run_fingerprint, sample_shard, shard_fingerprint
from policy.stopping import cut_after_answer_line


def problems(k: int) -> list[Problem]:
    return [Problem(id=f"p{i}", problem=f"What is {i} + 1?", answer=str(i + 1), level=1 + i % 5) for i in range(k)]


def test_request_seed_is_stable_distinct_and_in_range():
    # a fixed value guards against someone switching to Python's salted hash()
    assert request_seed(0, "p1") == request_seed(0, "p1")
    seeds = {request_seed(s, f"p{i}") for s in range(3) for i in range(200)}
    assert len(seeds) == 600
    assert all(0 <= s < 2**31 - 1 for s in seeds)


@pytest.mark.parametrize("count,size,expected", [(0, 4, []), (3, 4, [3]), (8, 4, [4, 4]), (9, 4, [4, 4, 1]),
                                                 (5, 1, [1, 1, 1, 1, 1])])
def test_plan_shards_cuts_in_order(count, size, expected):
    shards = plan_shards(problems(count), size)
    assert [len(s.problems) for s in shards] == expected
    assert [p.id for s in shards for p in s.problems] == [f"p{i}" for i in range(count)]
    assert [s.name for s in shards] == [f"shard-{i:05d}" for i in range(len(expected))]


def test_plan_shards_rejects_duplicates_and_bad_size():
    with pytest.raises(ValueError, match="'p0' appears twice"):
        plan_shards(problems(2) + problems(1), 4)
    with pytest.raises(ValueError, match="shard_size"):
        plan_shards(problems(2), 0)


@pytest.mark.parametrize("text,expected,cut", [
    ("Add.\n\n# Answer\n\n7\n\nMore text", "Add.\n\n# Answer\n\n7", True),
    ("Add.\n\n# Answer\n\n7", "Add.\n\n# Answer\n\n7", False),
    ("Add.\n\nMore.", "Add.\n\nMore.", False),
    ("# Answer\n\n7\n\n# Answer\n\n8", "# Answer\n\n7", True),
    ("A.\n\n# Answer\n\n7\n\n# Answer\n\n9", "A.\n\n# Answer\n\n7", True),
    ("A.\n\n# Answer\n\n", "A.\n\n# Answer\n\n", False),
])
def test_cut_after_answer_line(text, expected, cut):
    assert cut_after_answer_line(text) == (expected, cut)


def fake_rows(shard, n=2):
    return [Sample(problem_id=p.id, sample_index=i, prompt="q", completion="a", num_tokens=3)
            for p in shard.problems for i in range(n)]


def test_shard_store_resume_rules(tmp_path):
    shards = plan_shards(problems(6), 2)
    run = run_fingerprint("m", GenerationParams(n=2), 0, True)
    fp = {s.index: shard_fingerprint(s, run) for s in shards}
    store = ShardStore(tmp_path / "samples")

    store.write(shards[0], fake_rows(shards[0]), fp[0])
    assert store.is_done(shards[0], fp[0])
    # a changed config (fingerprint) does not reuse the shard
    other = shard_fingerprint(shards[0], run_fingerprint("m", GenerationParams(n=3), 0, True))
    assert not store.is_done(shards[0], other)

    # a file renamed into place but never recorded (killed before mark_done) does not count
    store.path(shards[1]).write_text(json.dumps(fake_rows(shards[1])[0].model_dump()) + "\n")
    assert not store.is_done(shards[1], fp[1])

    # a recorded file that changed afterwards (truncated, edited) does not count
    store.write(shards[2], fake_rows(shards[2]), fp[2])
    lines = store.path(shards[2]).read_text().splitlines(keepends=True)
    store.path(shards[2]).write_text("".join(lines[:-1]))
    assert not store.is_done(shards[2], fp[2])

    # a fresh store (a restarted process) reads the same manifest
    again = ShardStore(tmp_path / "samples")
    assert again.is_done(shards[0], fp[0]) and not again.is_done(shards[2], fp[2])
    entry = again.manifest.entries["shard-00000"]
    assert entry["outputs"][str(store.path(shards[0]))]["rows"] == 4
    with pytest.raises(RuntimeError, match="shard-00001.jsonl is not finished"):
        list(again.iter_samples(shards))

    # temp files a killed atomic write left behind are removed
    (tmp_path / "samples" / ".shard-00003.jsonl.abc.tmp").write_text("partial")
    assert again.remove_partial_files() == 1
    assert not list((tmp_path / "samples").glob("*.tmp"))


@pytest.fixture(scope="module")
def hf_generator(tiny_policy):
    from policy.hf_generator import HFGenerator

    return HFGenerator(tiny_policy["path"])


def test_sample_shard_rows_and_seed_contract_with_transformers_backend(hf_generator, tiny_policy):
    shard = plan_shards(tiny_policy["test"][:3], 3)[0]
    params = GenerationParams(n=3, temperature=1.0, top_k=20, max_tokens=8)
    rows = sample_shard(hf_generator, shard, params, run_seed=7)
    assert [(r.problem_id, r.sample_index) for r in rows] == [(p.id, i) for p in shard.problems for i in range(3)]
    first = rows[0]
    problem = shard.problems[0]
    assert first.prompt == f"# Question\n\n{problem.problem}\n\n# Solution\n\n"
    assert first.gold_answer == problem.answer and first.level == problem.level and first.subject == "Arithmetic"
    assert first.sampling == params.as_dict() and first.model == tiny_policy["path"]
    assert [r.seed for r in rows[:4]] == [request_seed(7, problem.id)] * 3 + [request_seed(7, shard.problems[1].id)]
    assert all(1 <= r.num_tokens <= 8 and r.finish_reason in ("stop", "length", "answer_end") for r in rows)
    # samples of a problem do not depend on which other problems share the shard
    alone = sample_shard(hf_generator, plan_shards([shard.problems[1]], 1)[0], params, run_seed=7)
    assert [r.completion for r in alone] == [r.completion for r in rows[3:6]]
    # and a different run seed gives different samples
    other = sample_shard(hf_generator, shard, params, run_seed=8)
    assert [r.completion for r in other] != [r.completion for r in rows]


def test_recipe_with_transformers_backend_writes_shards_and_skips_them_on_rerun(tiny_policy, tmp_path):
    from e2h.config import load_config
    from e2h.manifest import Manifest
    from e2h.records import load_records, save_records
    from policy.sample import run_sampling

    save_records(tmp_path / "prompts.jsonl", tiny_policy["test"][:5])
    overrides = [f"run.out_dir={tmp_path / 'run'}", f"sample.prompts={tmp_path / 'prompts.jsonl'}",
                 f"sample.model={tiny_policy['path']}", "sample.backend=hf", "sample.n=2", "sample.max_tokens=6",
                 "sample.shard_size=2"]
    first = run_sampling(load_config(None, overrides))
    assert (first.problems, first.samples, first.shards, first.shards_skipped) == (5, 10, 3, 0)
    assert first.tokens_generated > 0 and "10 samples in 3 shards" in first.line()
    samples = tmp_path / "run" / "samples"
    rows = [r for i in range(3) for r in load_records(samples / f"shard-{i:05d}.jsonl", Sample)]
    assert [(r.problem_id, r.sample_index) for r in rows] == [(p.id, i) for p in tiny_policy["test"][:5]
                                                              for i in range(2)]
    assert Manifest(tmp_path / "run" / "manifest.json").is_done("sample")
    again = run_sampling(load_config(None, overrides))
    assert (again.shards_skipped, again.tokens_generated, again.samples) == (3, 0, 10)
    # a changed sampling parameter invalidates every shard
    changed = run_sampling(load_config(None, overrides + ["sample.temperature=0.5"]))
    assert changed.shards_skipped == 0 and changed.samples == 10


def test_a_model_retrained_in_place_does_not_reuse_its_samples(tmp_path):
    model = tmp_path / "sft"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"old weights")
    shard = plan_shards(problems(2), 2)[0]
    before = shard_fingerprint(shard, run_fingerprint(str(model), GenerationParams(n=2), 0, True))
    assert before == shard_fingerprint(shard, run_fingerprint(str(model), GenerationParams(n=2), 0, True))
    (model / "model.safetensors").write_bytes(b"new weights, same path")
    after = shard_fingerprint(shard, run_fingerprint(str(model), GenerationParams(n=2), 0, True))
    assert after != before
