"""PPO plumbing without processes: padded rollout batches, response log-probabilities and values at the right
positions, and character offsets of sampled token ids (canonical and non-canonical splits)."""

from __future__ import annotations

import pytest
import torch

from policy.rollouts import batched, gather_logprobs, pad_rollouts, response_offsets, response_values
from policy.rewards import char_to_token_spans, separator_char_spans


def test_pad_rollouts_layout():
    batch = pad_rollouts([([1, 5, 6], [7, 8, 2]), ([1, 5], [9])], pad_id=0)
    assert batch.input_ids.tolist() == [[1, 5, 6, 7, 8, 2], [1, 5, 9, 0, 0, 0]]
    assert batch.attention_mask.tolist() == [[1] * 6, [1, 1, 1, 0, 0, 0]]
    assert batch.mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch.response_positions().tolist() == [[3, 4, 5], [2, 3, 4]]
    sub = batch.select([1])
    assert sub.input_ids.tolist() == [[1, 5, 9]] and sub.mask.tolist() == [[1]]
    with pytest.raises(ValueError, match="empty response"):
        pad_rollouts([([1], [])], pad_id=0)


def test_gather_logprobs_reads_the_predicting_position():
    batch = pad_rollouts([([1, 2], [3, 4]), ([1], [2])], pad_id=0)
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 6)
    out = gather_logprobs(logits, batch, temperature=0.5)
    logp = torch.log_softmax(logits / 0.5, dim=-1)
    # row 0: token 3 at position 2 is predicted by position 1, token 4 by position 2
    expected0 = [logp[0, 1, 3].item(), logp[0, 2, 4].item()]
    expected1 = [logp[1, 0, 2].item(), 0.0]
    assert out[0].tolist() == pytest.approx(expected0, abs=1e-6)
    assert out[1].tolist() == pytest.approx(expected1, abs=1e-6)


def test_response_values_and_batched_forward():
    class Position(torch.nn.Module):  # value = position index, so the gathered positions are visible
        def forward(self, input_ids, attention_mask=None):
            return torch.arange(input_ids.size(1)).float().expand(input_ids.size(0), -1), None

    batch = pad_rollouts([([1, 2, 3], [4, 5]), ([1], [2, 3, 4])], pad_id=0)
    values = response_values(Position(), batch)
    assert values.tolist() == [[2, 3, 0], [0, 1, 2]]  # V_t read at prompt_len + t - 1
    assert batched(lambda b: response_values(Position(), b), batch, size=1).tolist() == values.tolist()


@pytest.fixture(scope="module")
def tokenizer(tiny_policy):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_policy["path"])


def test_response_offsets_canonical_ids(tokenizer):
    text = "We add 3 and 4.\n\n3 + 4 = 7.\n\n# Answer\n\n7"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    decoded, offsets = response_offsets(tokenizer, ids)
    assert decoded == text and len(offsets) == len(ids)
    assert offsets[-1] == (len(text), len(text))  # EOS: empty span at the end
    for (lo, hi), tid in zip(offsets[:-1], ids[:-1]):
        assert text[lo:hi] == tokenizer.decode([tid])
    spans = char_to_token_spans(offsets, separator_char_spans(text))
    assert [tokenizer.decode(ids[lo:hi]) for lo, hi in spans] == ["\n\n", "\n\n"]


def test_response_offsets_non_canonical_split(tokenizer):
    text = "3 + 4 = 7.\n\n# Answer\n\n7"
    canonical = tokenizer(text, add_special_tokens=False)["input_ids"]
    # split the first multi-character token into single characters: same text, other ids
    first = next(i for i, t in enumerate(canonical) if len(tokenizer.decode([t])) > 1)
    pieces = [tokenizer.convert_tokens_to_ids(c) for c in tokenizer.convert_ids_to_tokens(canonical[first])]
    ids = canonical[:first] + pieces + canonical[first + 1:]
    assert ids != canonical and tokenizer.decode(ids) == text
    decoded, offsets = response_offsets(tokenizer, ids)
    assert decoded == text
    assert "".join(text[lo:hi] for lo, hi in offsets) == text
    spans = char_to_token_spans(offsets, separator_char_spans(text))
    assert [tokenizer.decode(ids[lo:hi]) for lo, hi in spans] == ["\n\n"]


def test_the_validation_subset_spans_every_level(tmp_path):
    from e2h.records import Problem, save_records
    from policy.ppo import load_prompt_set

    path = tmp_path / "prompts_validation.jsonl"
    rows = [Problem(id=f"p{level}-{i}", problem=f"Compute {level} + {i}.", answer="0", level=level)
            for level in range(1, 6) for i in range(20)]  # sorted by level, as the prompt files are
    save_records(path, rows)
    words = lambda text: {"input_ids": text.split()}  # noqa: E731 (a tokenizer stand-in: only lengths are read)
    subset = load_prompt_set(path, words, max_prompt_tokens=100, limit=40)
    assert len(subset) == 40 and len({p.id for p in subset}) == 40
    assert {p.level for p in subset} == {1, 2, 3, 4, 5}  # the first 40 rows would be levels 1-2 only
    order = [p.id for p in rows]
    assert [order.index(p.id) for p in subset] == sorted(order.index(p.id) for p in subset)  # file order
    assert [p.id for p in load_prompt_set(path, words, 100, limit=40)] == [p.id for p in subset]  # fixed
    assert len(load_prompt_set(path, words, 100)) == 100
