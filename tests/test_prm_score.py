"""PRM model + scoring: one-pass scores equal per-prefix scores, the released format loads and scores, loss falls,
`e2h score` writes step scores + aggregates and resumes per shard."""

from __future__ import annotations

import json

import pytest

from conftest import prm_step_examples
from e2h.records import Sample, load_records, save_records
from e2h.text_format import format_prompt, format_solution

COMPLETIONS = [
    "We add 3 and 4.\n\n3 + 4 = 7.\n\n# Answer\n\n7",
    "We add 3 and 4.\n\n3 + 4 = 17.\n\n# Answer\n\n17",
    "3 + 4 = 7.",  # one step, no answer line
    "We add 3 and 4.\n\n\n\n3 + 4 = 7.\n\n# Answer\n\n7\n\ntrailing text",  # extra blank lines, text after answer
    "",
]
PROMPT = format_prompt("What is 3 + 4?")


@pytest.mark.parametrize("share_prompt", [True, False])
def test_one_pass_scores_equal_per_prefix_scores(tiny_prm_dir, share_prompt):
    from prm.score import PRMScorer

    scorer = PRMScorer(tiny_prm_dir, batch_tokens=64, share_prompt=share_prompt)  # small budget: several batches
    one_pass = scorer.score(PROMPT, COMPLETIONS)
    assert [len(s) for s in one_pass] == [3, 3, 1, 3, 0]
    for completion, scores in zip(COMPLETIONS, one_pass):
        per_prefix = scorer.score_per_prefix(PROMPT, completion)
        assert len(per_prefix) == len(scores)
        assert max((abs(a - b) for a, b in zip(scores, per_prefix)), default=0.0) < 1e-5
    assert len({round(s, 6) for s in one_pass[0] + one_pass[1]}) > 3  # a random head: scores really differ


def test_released_format_checkpoint_loads_and_scores(tmp_path, tiny_prm_backbone, tiny_tokenizer):
    """LlamaForCausalLM whose lm_head rows repeat a 2-row head; reward = mean of lm_head logits over the vocab."""
    import torch
    from transformers import LlamaForCausalLM

    from e2h.tokenization import encode, step_end_positions
    from prm.dataset import layout
    from prm.score import PRMScorer

    lm = LlamaForCausalLM.from_pretrained(tiny_prm_backbone)
    torch.manual_seed(3)
    head2 = torch.randn(2, lm.config.hidden_size)
    with torch.no_grad():
        lm.lm_head.weight.copy_(head2.repeat(lm.config.vocab_size // 2 + 1, 1)[: lm.config.vocab_size])
    folder = tmp_path / "released"
    lm.save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)

    scores = PRMScorer(folder).score(PROMPT, COMPLETIONS[:2])
    steps = ["We add 3 and 4.", "3 + 4 = 7.", "# Answer\n\n7"]
    lay = layout(PROMPT, steps, is_prompt=True)
    enc = encode(tiny_tokenizer, lay.text)
    with torch.no_grad():
        reward = lm(torch.tensor([enc.ids])).logits[0].mean(dim=-1)  # the released convention, computed directly
    expected = torch.sigmoid(reward[step_end_positions(enc.offsets, lay.step_spans)]).tolist()
    assert scores[0] == pytest.approx(expected, abs=1e-5)

    plain = tmp_path / "plain"  # a language model that is no reward model must be refused
    LlamaForCausalLM.from_pretrained(tiny_prm_backbone).save_pretrained(plain)
    tiny_tokenizer.save_pretrained(plain)
    with pytest.raises(ValueError, match="not a released reward checkpoint"):
        PRMScorer(plain)


def test_fresh_prm_has_zero_head_frozen_embeddings_and_loss_falls(tiny_prm_backbone, tiny_tokenizer):
    """Plain torch loop over the real model, encoding and loss (DeepSpeed runs are in test_training_distributed)."""
    import math

    import torch

    from prm.dataset import collate, encode_all, pointwise_loss
    from prm.model import RewardModel

    model = RewardModel.from_backbone(tiny_prm_backbone)
    assert model.freeze_embeddings_and_norms() == 6  # embeddings + 2 x 2 layer norms + final norm
    assert not model.net.get_input_embeddings().weight.requires_grad
    encoded, dropped = encode_all(tiny_tokenizer, prm_step_examples(64, seed=11), "every_token", 96)
    assert dropped == 0
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    torch.manual_seed(0)
    losses = []
    for step in range(40):
        batch = collate([encoded[(step * 16 + i) % 64] for i in range(16)], tiny_tokenizer.pad_token_id)
        logits, _ = model(batch["input_ids"], attention_mask=batch["attention_mask"])
        loss = pointwise_loss(logits, batch["labels"], batch["weights"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(math.log(2), abs=1e-6)  # zero-initialised head: p = 0.5 everywhere
    assert sum(losses[-8:]) / 8 < 0.85 * losses[0]


def test_score_command_writes_scores_and_resumes_per_shard(tmp_path, tiny_prm_dir):
    from prm.score import aggregate, score_file

    examples = prm_step_examples(6, seed=4)
    samples = [Sample(problem_id=e.problem_id, sample_index=i % 3, prompt=format_prompt(e.problem),
                      completion=format_solution(e.steps)) for i, e in enumerate(examples)]
    path = tmp_path / "samples.jsonl"
    save_records(path, samples)
    out = tmp_path / "scored"
    summary = score_file(tiny_prm_dir, path, out, shard_size=4)
    assert (summary["units"], summary["skipped"], summary["scored_rows"]) == (2, 0, 6)
    rows = load_records(out / "shard-00000.jsonl", Sample) + load_records(out / "shard-00001.jsonl", Sample)
    assert [r.completion for r in rows] == [s.completion for s in samples]
    for row in rows:
        assert len(row.step_scores) == 3 and row.aggregates == pytest.approx(aggregate(row.step_scores))
    assert rows[0].aggregates["prod"] == pytest.approx(rows[0].step_scores[0] * rows[0].step_scores[1]
                                                       * rows[0].step_scores[2])
    again = score_file(tiny_prm_dir, path, out, shard_size=4)
    assert (again["skipped"], again["scored_rows"]) == (2, 0)
    (out / "shard-00001.jsonl").write_text("")  # a damaged output is redone, the intact one kept
    third = score_file(tiny_prm_dir, path, out, shard_size=4)
    assert (third["skipped"], third["scored_rows"]) == (1, 2)
    assert json.loads((out / "manifest.json").read_text())["entries"].keys() == {"shard-00000", "shard-00001"}


def test_aggregates():
    from prm.score import aggregate

    assert aggregate([0.5, 0.8]) == pytest.approx({"min": 0.5, "prod": 0.4, "last": 0.8, "mean": 0.65})
    assert aggregate([]) is None  # no steps: nothing to rank (e2h.rerank gives such a sample NaN)


@pytest.mark.parametrize("steps", ["reasoning_and_answer", "reasoning", "with_answer"])
def test_score_steps_convention_selects_what_the_aggregates_read(tmp_path, tiny_prm_dir, steps):
    """Through the real scoring path: step_scores keep every step whatever score.steps says; the aggregates of
    `e2h score` read the selected ones, and `e2h eval`'s pools recompute the same numbers from step_scores."""
    from e2h.commands.eval_command import Grades, build_pools
    from e2h.rerank import select_steps
    from e2h.text_format import ends_with_answer, split_solution
    from prm.score import PRMScorer, aggregate, score_file, score_samples

    samples = [Sample(problem_id="p", sample_index=i, prompt=PROMPT, completion=c)
               for i, c in enumerate(COMPLETIONS[:3])]
    plain = score_samples(PRMScorer(tiny_prm_dir), samples)
    path = tmp_path / "samples.jsonl"
    save_records(path, samples)
    score_file(tiny_prm_dir, path, tmp_path / "scored", shard_size=8, steps=steps)
    rows = load_records(tmp_path / "scored" / "shard-00000.jsonl", Sample)
    for row, ref in zip(rows, plain):
        assert row.step_scores == pytest.approx(ref.step_scores)
    full, cut = rows[0].step_scores, rows[2].step_scores
    kept = {"reasoning_and_answer": full, "reasoning": full[:2], "with_answer": [full[0], full[2]]}[steps]
    assert rows[0].aggregates == pytest.approx(aggregate(kept))
    assert rows[2].aggregates == pytest.approx(aggregate(cut))  # no answer step: every convention keeps it all

    grades = Grades(keys=["7", "17", None], correct=[True, False, False], reasons=["", "", ""],
                    grader_version="test", source="test")
    pools = build_pools(rows, grades, ["min", "prod", "last", "mean"], grouping="gold", steps=steps)
    for agg in ("min", "prod", "last", "mean"):
        assert pools.scores[f"prm_{agg}"][0] == pytest.approx([r.aggregates[agg] for r in rows])
    assert select_steps(full, ends_with_answer(split_solution(rows[0].completion)), steps) == kept
