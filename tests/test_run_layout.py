"""One owner of the run directory (e2h.layout.RunLayout): an output directory set for one stage is where it writes
and where every later stage reads, through the layout and through the real commands."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from e2h.config import load_config
from e2h.layout import RunLayout
from e2h.records import Sample, iter_records, save_records

ROOT = Path(__file__).resolve().parents[1]

# stage output key -> the layout's writer property and every reader that must follow it
FOLLOWERS = {
    "sft.output_dir": ["sft_model", "ppo_policy", "grpo_policy"],
    "prm.output_dir": ["prm_model", "score_model", "ppo_prm", "grpo_prm", "serve_prm"],
    "sample.output_dir": ["samples", "score_samples"],
    "score.output_dir": ["scored"],
    "eval.output_dir": ["eval_dir"],
    "ppo.output_dir": ["ppo"],
    "grpo.output_dir": ["grpo"],
}


def test_defaults_sit_in_the_run_directory(tmp_path):
    layout = RunLayout(load_config(None, [f"run.out_dir={tmp_path}"]))
    assert layout.prm_model == tmp_path / "prm" == layout.score_model == layout.ppo_prm == layout.serve_prm
    assert layout.sft_model == tmp_path / "sft" == layout.ppo_policy
    assert layout.samples == tmp_path / "samples" == layout.score_samples
    assert layout.eval_candidates == [tmp_path / "scored", tmp_path / "samples"]
    assert layout.prm_data == tmp_path / "data" / "prm_train.jsonl" and layout.manifest == tmp_path / "manifest.json"
    assert layout.ppo_prompts == tmp_path / "data" / "prompts_train.jsonl" == layout.grpo_prompts
    assert layout.sample_prompts == tmp_path / "data" / "prompts_test.jsonl"


@pytest.mark.parametrize("key,followers", FOLLOWERS.items())
def test_an_output_override_moves_the_writer_and_every_reader(tmp_path, key, followers):
    moved = tmp_path / "elsewhere" / key.split(".")[0]
    layout = RunLayout(load_config(None, [f"run.out_dir={tmp_path / 'run'}", f"{key}={moved}"]))
    for name in followers:
        assert getattr(layout, name) == moved, name
    if key == "score.output_dir":
        assert layout.eval_candidates[0] == moved


def test_explicit_inputs_win_over_the_layout(tmp_path):
    layout = RunLayout(load_config(None, [f"run.out_dir={tmp_path}", "prm.output_dir=/a/prm", "score.model=/b/prm",
                                          "ppo.prm_path=/c/prm", "serve.prm_path=/d/prm"]))
    assert (layout.prm_model, layout.score_model, layout.ppo_prm, layout.serve_prm) == (
        Path("/a/prm"), Path("/b/prm"), Path("/c/prm"), Path("/d/prm"))


def e2h(config: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "e2h", *args, "--config", str(config)], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result


def test_the_commands_find_moved_outputs(tmp_path, tiny_prm_dir):
    """prm, samples, scored and eval each moved out of the run directory: `e2h score` finds the PRM and the
    samples, `e2h eval` the scored samples, the service the PRM, with no input path given."""
    from e2h.serve.commands import serve_settings

    moved = {"prm.output_dir": tmp_path / "models" / "my-prm", "sample.output_dir": tmp_path / "pools" / "n4",
             "score.output_dir": tmp_path / "pools" / "n4-scored", "eval.output_dir": tmp_path / "reports" / "e"}
    config = tmp_path / "config.yaml"
    tree: dict = {"run": {"out_dir": str(tmp_path / "run")}}
    for key, path in moved.items():
        section, name = key.split(".")
        tree.setdefault(section, {})[name] = str(path)
    config.write_text(yaml.safe_dump(tree))
    shutil.copytree(tiny_prm_dir, moved["prm.output_dir"])  # where train-prm writes under this config
    samples = [Sample(problem_id=f"p{i}", sample_index=k, prompt=f"# Question\n\nWhat is {i} + 1?\n\n# Solution\n\n",
                      completion=f"{i} + 1 = {i + 1 + (k % 2)}.\n\n# Answer\n\n{i + 1 + (k % 2)}",
                      gold_answer=str(i + 1), level=1 + i % 5) for i in range(5) for k in range(4)]
    moved["sample.output_dir"].mkdir(parents=True)
    save_records(moved["sample.output_dir"] / "shard-00000.jsonl", samples)

    e2h(config, "score")
    scored = [s for f in sorted(moved["score.output_dir"].glob("shard-*.jsonl")) for s in iter_records(f, Sample)]
    assert len(scored) == len(samples) and all(s.step_scores for s in scored)
    e2h(config, "eval")
    metrics = json.loads((moved["eval.output_dir"] / "metrics.json").read_text())
    assert metrics["counts"]["samples"] == len(samples)
    assert not (tmp_path / "run" / "scored").exists() and not (tmp_path / "run" / "eval").exists()
    assert serve_settings(load_config(config)).prm_path == str(moved["prm.output_dir"])
