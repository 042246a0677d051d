"""The demo's checked@1: a sample counts only when the world's checker passes every step and the answer."""

from __future__ import annotations

from e2h.config import load_config
from e2h.commands.pipeline import checked_chain_rate
from e2h.records import Problem, Sample, save_records

PROBLEM = Problem(id="world/test/modular/L4-0000", problem="Find the remainder when 9 * 8 + 11 is divided by 7.",
                  answer="6", level=4, subject="Modular Arithmetic", source="world",
                  solution="9 * 8 = 72\n\n72 + 11 = 83\n\n83 mod 7 = 6\n\n# Answer\n\n6")
COMPLETIONS = {
    "right chain": ("9 * 8 = 72\n\n72 + 11 = 83\n\n83 mod 7 = 6\n\n# Answer\n\n6", 4),
    "lucky answer": ("9 * 8 = 72\n\n72 + 11 = 90\n\n90 mod 7 = 6\n\n# Answer\n\n6", 4),  # 72 + 11 is not 90
    "no answer line": ("9 * 8 = 72\n\n72 + 11 = 83\n\n83 mod 7 = 6", 4),
    "wrong answer": ("9 * 8 = 72\n\n72 + 11 = 83\n\n83 mod 7 = 6\n\n# Answer\n\n5", 4),
    "easy, right": ("9 * 8 = 72\n\n72 + 11 = 83\n\n83 mod 7 = 6\n\n# Answer\n\n6", 2),
}


def test_checked_counts_only_fully_checked_chains_on_the_asked_levels(tmp_path):
    cfg = load_config(None, [f"run.out_dir={tmp_path}"])
    save_records(tmp_path / "world/test.jsonl", [PROBLEM])
    samples = [Sample(problem_id=PROBLEM.id, sample_index=i, prompt="", completion=text, gold_answer="6",
                      level=level) for i, (text, level) in enumerate(COMPLETIONS.values())]
    save_records(tmp_path / "scored/shard-00000.jsonl", samples)
    assert checked_chain_rate(cfg) == 100 * 1 / 4  # 4 level-4 samples, only the right chain counts
    assert checked_chain_rate(cfg, levels=(2,)) == 100.0
