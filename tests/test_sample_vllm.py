"""vLLM sampling end to end on the CPU: reproducible N samples, weight reload, 2 Ray actors vs 1 engine, and a
really killed run that resumes. One vLLM engine is shared by the module; the kill test starts one more (in a
subprocess) and the Ray test two (one per actor, concurrently): four engine starts in all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import kill_process_group
from e2h.config import load_config
from e2h.manifest import Manifest, file_checksum
from e2h.records import Sample, load_records, save_records
from policy.generator import GenerationParams
from policy.sample import run_sampling
from policy.shards import ShardStore, plan_shards, sample_shard

pytestmark = pytest.mark.distributed
ROOT = Path(__file__).resolve().parents[1]
KV_GIB = "0.0625"  # 64 MiB of KV cache is plenty for 256-token tiny-model sequences


@pytest.fixture(scope="module")
def engine(tiny_policy):
    from policy.vllm_engine import VLLMGenerator

    gen = VLLMGenerator(tiny_policy["path"], max_model_len=256, seed=0, kv_cache_gib=float(KV_GIB))
    yield gen
    gen.close()


def sampling_overrides(tmp_path: Path, tiny_policy, **extra) -> list[str]:
    prompts = tmp_path / "prompts.jsonl"
    if not prompts.exists():
        save_records(prompts, tiny_policy["test"])  # 6 problems
    settings = {"run.out_dir": tmp_path / "run", "sample.prompts": prompts, "sample.model": tiny_policy["path"],
                "sample.n": 3, "sample.max_tokens": 12, "sample.temperature": 1.0, "sample.top_k": 20,
                "sample.shard_size": 2, "sample.seed": 5, "sample.max_model_len": 256,
                "sample.kv_cache_gib": KV_GIB, **extra}
    return [f"{key}={value}" for key, value in settings.items()]


def read_rows(folder: Path) -> list[Sample]:
    return [row for path in sorted(folder.glob("shard-*.jsonl")) for row in load_records(path, Sample)]


PROMPTS = [f"# Question\n\nWhat is {a} + {b}?\n\n# Solution\n\n" for a, b in [(3, 4), (10, 2), (8, 8)]]


def texts(outputs):
    return [[c.text for c in per_prompt] for per_prompt in outputs]


def test_vllm_generates_n_samples_reproducibly(engine):
    params = GenerationParams(n=4, temperature=1.0, top_k=20, max_tokens=12)
    first = engine.generate(PROMPTS, params, seeds=[11, 22, 33])
    assert [len(per_prompt) for per_prompt in first] == [4, 4, 4]
    assert all(1 <= c.num_tokens <= 12 and c.finish_reason in ("stop", "length") for p in first for c in p)
    # same seeds -> same text, even in another order and batched with another prompt
    again = engine.generate([PROMPTS[2], "# Question\n\nWhat is 1 + 1?\n\n# Solution\n\n", PROMPTS[0], PROMPTS[1]],
                            params, seeds=[33, 99, 11, 22])
    assert texts(again)[2:] + texts(again)[:1] == texts(first)[0:2] + texts(first)[2:3]
    # the 4 samples of a prompt differ from each other, and other seeds give other samples
    assert len(set(texts(first)[0])) > 1
    assert texts(engine.generate(PROMPTS, params, seeds=[12, 23, 34])) != texts(first)


def test_vllm_reloads_weights_from_state_dict_and_folder(engine, tiny_policy):
    from transformers import AutoTokenizer

    from e2h.world.tiny_models import build_causal_lm

    greedy = GenerationParams(n=1, temperature=0.0, max_tokens=12)
    before = texts(engine.generate(PROMPTS, greedy, seeds=[0, 0, 0]))
    other = build_causal_lm(AutoTokenizer.from_pretrained(tiny_policy["path"]), tiny_policy["sizes"], seed=1)
    try:
        engine.load_weights(other.state_dict())
        swapped = texts(engine.generate(PROMPTS, greedy, seeds=[0, 0, 0]))
        assert swapped != before
    finally:
        engine.load_weights(tiny_policy["path"])
    assert texts(engine.generate(PROMPTS, greedy, seeds=[0, 0, 0])) == before
    with pytest.raises(FileNotFoundError):
        engine.load_weights(Path(tiny_policy["path"]) / "missing")


def test_two_ray_actors_give_the_same_rows_as_one_engine(engine, tiny_policy, tmp_path):
    local = run_sampling(load_config(None, sampling_overrides(tmp_path, tiny_policy,
                                                              **{"sample.output_dir": tmp_path / "one"})),
                         generator=engine)
    # two actors on 2 cores: one logical CPU each (each engine binds its threads to the core vLLM leaves it)
    ray_cfg = load_config(None, sampling_overrides(tmp_path, tiny_policy, **{
        "sample.output_dir": tmp_path / "two", "sample.num_actors": 2, "sample.cpus_per_actor": 1}))
    distributed = run_sampling(ray_cfg)
    assert (local.samples, distributed.samples, distributed.shards) == (18, 18, 3)
    one, two = read_rows(tmp_path / "one"), read_rows(tmp_path / "two")
    keys = Counter((r.problem_id, r.sample_index) for r in two)
    assert keys == Counter((r.problem_id, r.sample_index) for r in one)
    assert set(keys.values()) == {1} and len(keys) == 18
    # the seed contract goes further than the key set: the very same text whichever engine ran a shard
    by_key = {(r.problem_id, r.sample_index): r.completion for r in one}
    assert all(by_key[(r.problem_id, r.sample_index)] == r.completion for r in two)
    assert Manifest(tmp_path / "run" / "manifest.json").is_done("sample/two")


def test_killed_run_resumes_and_writes_every_row_once(engine, tiny_policy, tmp_path):
    overrides = sampling_overrides(tmp_path, tiny_policy)
    samples = tmp_path / "run" / "samples"
    log = open(tmp_path / "sample.log", "w")
    # a fresh process, not a rank of whatever process group an earlier test left in this environment
    clean_env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_PORT")}
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "run_paused.py"), "60", "policy.sample", *overrides],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=clean_env, start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            manifest = samples / "manifest.json"
            if manifest.exists() and "shard-00000" in json.loads(manifest.read_text())["entries"]:
                break
            time.sleep(0.5)
        assert proc.poll() is None, (tmp_path / "sample.log").read_text()[-3000:]
    finally:
        kill_process_group(proc)  # the run and its vLLM engine processes, mid-run (and the shm they held)
        log.close()
    assert list(Manifest(samples / "manifest.json").entries) == ["shard-00000"]
    assert not Manifest(tmp_path / "run" / "manifest.json").is_done("sample")
    first_shard = samples / "shard-00000.jsonl"
    checksum = file_checksum(first_shard)
    # debris of a kill at a worse moment: a renamed-but-unrecorded shard and a temp file
    (samples / "shard-00001.jsonl").write_text(first_shard.read_text().splitlines()[0] + "\n")
    (samples / ".shard-00002.jsonl.x.tmp").write_text('{"problem_id": "half')

    summary = run_sampling(load_config(None, overrides), generator=engine)
    assert (summary.shards, summary.shards_skipped, summary.samples) == (3, 1, 18)
    assert file_checksum(first_shard) == checksum  # the finished shard was not redone
    assert not list(samples.glob("*.tmp"))
    rows = read_rows(samples)
    keys = Counter((r.problem_id, r.sample_index) for r in rows)
    assert len(rows) == 18 and set(keys.values()) == {1}
    assert set(keys) == {(p.id, i) for p in tiny_policy["test"] for i in range(3)}
    # the shard the killed process wrote holds what this engine would have sampled for it
    cfg = load_config(None, overrides)
    shard0 = plan_shards(tiny_policy["test"], 2)[0]
    params = GenerationParams(n=3, temperature=1.0, top_k=20, max_tokens=12)
    expected = sample_shard(engine, shard0, params, cfg.sample.seed)
    assert [r.completion for r in load_records(first_shard, Sample)] == [r.completion for r in expected]
    assert Manifest(tmp_path / "run" / "manifest.json").is_done("sample")
    assert ShardStore(samples).manifest.entries.keys() == {"shard-00000", "shard-00001", "shard-00002"}
