"""`e2h demo` end to end on a reduced world: every stage produces its outputs, a re-run skips them all, and the
numbers in metrics.json agree with a recomputation from the scored samples."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import yaml

from e2h.grading import grade, normalize_answer, extract_answer
from e2h.records import Sample, iter_records

REDUCED = [
    "world.train_per_level=60", "world.validation_per_level=4", "world.test_per_level=6",
    "world.corpus_per_level=40", "pretrain.epochs=1", "pretrain.global_batch_size=16",
    "pretrain.micro_batch_size=16", "policy.hidden_size=64", "policy.intermediate_size=128",
    "policy.num_hidden_layers=2", "policy.num_attention_heads=2", "policy.num_key_value_heads=1",
    "demo.prm_pool_problems=30", "demo.prm_pool_samples=2", "sample.n=4",
    "sft.epochs=1", "prm.epochs=1", "eval.resamples=50",
]
STAGE_OUTPUTS = {
    "base": [],  # in the base cache ($E2H_CACHE/world-bases), checked below
    "world": ["world/train.jsonl", "world/test.jsonl", "models/tokenizer"],
    "data": ["data/sft_train.jsonl", "data/prm_train.jsonl", "data/prompts_test.jsonl"],
    "sft": ["sft/config.json", "sft/model.safetensors"],
    "prm_pool": ["data/prm_demo.jsonl", "samples_prm_pool"],
    "prm": ["prm/config.json", "prm/prm_config.json"],
    "sample": ["samples"],
    "score": ["scored"],
    "eval": ["eval/metrics.json", "eval/report.md", "eval/report.html"],
}


def run_demo(out: Path, cache: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "e2h", "demo", "--out", str(out), *REDUCED]
    return subprocess.run(command, capture_output=True, text=True, timeout=1500,
                          env={**os.environ, "E2H_CACHE": str(cache)})


def majority_expected(samples: list[Sample]) -> float:
    """Expected majority-vote accuracy of one full pool, ties broken uniformly (the documented rule)."""
    votes: Counter = Counter()
    correct_keys = set()
    for s in samples:
        answer = extract_answer(s.completion)
        if answer is None:
            continue
        verdict = grade(s.completion, s.gold_answer)
        key = "GOLD" if verdict.correct else normalize_answer(answer)
        votes[key] += 1
        if verdict.correct:
            correct_keys.add(key)
    if not votes:
        return 0.0
    top = max(votes.values())
    tied = [k for k, v in votes.items() if v == top]
    return sum(k in correct_keys for k in tied) / len(tied)


@pytest.mark.slow
@pytest.mark.distributed
def test_reduced_demo_end_to_end(tmp_path):
    out, cache = tmp_path / "demo", tmp_path / "cache"
    first = run_demo(out, cache)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    for stage, paths in STAGE_OUTPUTS.items():
        for path in paths:
            assert (out / path).exists(), f"stage {stage} did not produce {path}"
    assert "easy-to-hard effect on levels 4-5" in first.stdout
    (base,) = (cache / "world-bases").iterdir()  # the policy and the PRM both start from the pretrained base
    run_config = yaml.safe_load((out / "config.yaml").read_text())
    assert run_config["policy"]["path"] == run_config["prm_backbone"]["path"] == str(base / "model")
    prm_config = yaml.safe_load((out / "prm" / "train_config.yaml").read_text())
    assert prm_config["prm_backbone"]["path"] == str(base / "model")
    assert "step ROC-AUC vs the checker" in first.stdout and (out / "eval" / "step_auc.json").is_file()
    auc = json.loads((out / "eval" / "step_auc.json").read_text())
    assert f"| levels 1-3 | hard | {100 * auc['hard']['auc']:.1f} |" in (out / "eval" / "report.md").read_text()

    manifest = json.loads((out / "manifest.json").read_text())["entries"]
    assert all(f"demo/{stage}" in manifest for stage in STAGE_OUTPUTS)

    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    scored = [s for f in sorted((out / "scored").rglob("*.jsonl")) for s in iter_records(f, Sample)]
    assert len(scored) == metrics["counts"]["samples"] == 5 * 6 * 4  # levels x problems per level x n
    assert all(s.step_scores is not None for s in scored if s.completion.strip())

    by_problem = defaultdict(list)
    for s in scored:
        by_problem[s.problem_id].append(s)
    correct = [grade(s.completion, s.gold_answer).correct for s in scored]
    hard = [s.level in (4, 5) for s in scored]
    curves = metrics["groups"]["split"]
    n_max = metrics["n_values"][-1]
    assert n_max == 4
    # pass@1 = mean sample accuracy, overall and on the hard split
    assert curves["all"]["curves"]["majority"]["mean"][0] == pytest.approx(sum(correct) / len(correct), abs=0.06)
    hard_correct = [c for c, h in zip(correct, hard) if h]
    assert curves["hard"]["curves"]["majority"]["mean"][0] == pytest.approx(
        sum(hard_correct) / len(hard_correct), abs=0.08)
    # at N = pool size every resample is the whole pool: the value is exact
    expected_majority = sum(majority_expected(pool) for pool in by_problem.values()) / len(by_problem)
    assert curves["all"]["curves"]["majority"]["mean"][-1] == pytest.approx(expected_majority, abs=1e-6)
    oracle = sum(any(grade(s.completion, s.gold_answer).correct for s in pool) for pool in by_problem.values())
    assert curves["all"]["curves"]["oracle (pass@N)"]["mean"][-1] == pytest.approx(oracle / len(by_problem), abs=1e-6)

    second = run_demo(out, cache)  # everything is done: every stage is skipped
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.count("done already") == len(STAGE_OUTPUTS)
