"""Rollouts as padded tensors, and the per-response-token quantities PPO needs from each model.

A batch holds B sequences ``prompt ids + response ids`` right-padded to one width; response token ``t`` of row
``b`` sits at ``prompt_len[b] + t``. Everything PPO computes is a ``[B, R]`` tensor over response tokens with
``mask`` marking real ones::

    batch = pad_rollouts([([1, 5, 6], [7, 8, 2]), ([1, 5], [9])], pad_id=0)
    batch.input_ids      # [[1, 5, 6, 7, 8, 2], [1, 5, 9, 0, 0, 0]]
    batch.mask           # [[1, 1, 1], [1, 0, 0]]
    response_logprobs(policy, batch, temperature=0.7)   # log pi(token t | before t), logits / temperature
    response_values(critic, batch)                      # V at the state before token t (reads up to t - 1)

Token ids are the ones the generator sampled (vLLM's own ids, EOS included when emitted); the text and its
character offsets come from decoding them (:func:`response_offsets`), so rewards land on the very tokens the
policy produced, whatever the tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class RolloutBatch:
    input_ids: torch.Tensor  # [B, L]
    attention_mask: torch.Tensor  # [B, L]
    prompt_lens: torch.Tensor  # [B]
    response_lens: torch.Tensor  # [B]
    mask: torch.Tensor  # [B, R] float, 1 on real response tokens

    def __len__(self) -> int:
        return self.input_ids.size(0)

    @property
    def response_width(self) -> int:
        return self.mask.size(1)

    def response_positions(self, shift: int = 0) -> torch.Tensor:
        """[B, R] indices into the sequence of response token t (+ shift), clamped inside the sequence."""
        offsets = torch.arange(self.response_width).unsqueeze(0)
        return (self.prompt_lens.unsqueeze(1) + offsets + shift).clamp(0, self.input_ids.size(1) - 1)

    def select(self, rows: list[int] | torch.Tensor) -> "RolloutBatch":
        rows = torch.as_tensor(rows, dtype=torch.long)
        width = int((self.prompt_lens[rows] + self.response_lens[rows]).max())
        resp = int(self.response_lens[rows].max())
        return RolloutBatch(self.input_ids[rows, :width], self.attention_mask[rows, :width], self.prompt_lens[rows],
                            self.response_lens[rows], self.mask[rows, :resp])

    def to(self, device) -> "RolloutBatch":
        return RolloutBatch(*(t.to(device) for t in (self.input_ids, self.attention_mask, self.prompt_lens,
                                                       self.response_lens, self.mask)))


def pad_rollouts(pairs: list[tuple[list[int], list[int]]], pad_id: int) -> RolloutBatch:
    """(prompt ids, response ids) pairs -> a right-padded batch. Responses must be non-empty."""
    if any(len(r) == 0 for _, r in pairs):
        raise ValueError("empty response: the generator returned no token")
    width = max(len(p) + len(r) for p, r in pairs)
    resp_width = max(len(r) for _, r in pairs)
    input_ids = torch.full((len(pairs), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(pairs), width), dtype=torch.long)
    mask = torch.zeros((len(pairs), resp_width), dtype=torch.float32)
    for row, (prompt, response) in enumerate(pairs):
        seq = list(prompt) + list(response)
        input_ids[row, :len(seq)] = torch.tensor(seq)
        attention[row, :len(seq)] = 1
        mask[row, :len(response)] = 1
    return RolloutBatch(input_ids, attention, torch.tensor([len(p) for p, _ in pairs]),
                        torch.tensor([len(r) for _, r in pairs]), mask)


def gather_logprobs(logits: torch.Tensor, batch: RolloutBatch, temperature: float = 1.0) -> torch.Tensor:
    """[B, R] log-probabilities of the response tokens from full-sequence logits [B, L, V]."""
    pred_pos = batch.response_positions(shift=-1)  # the position whose logits predict response token t
    token_pos = batch.response_positions()
    picked = torch.gather(logits, 1, pred_pos.unsqueeze(-1).expand(-1, -1, logits.size(-1)))
    logp = torch.log_softmax(picked.float() / temperature, dim=-1)
    tokens = torch.gather(batch.input_ids, 1, token_pos)
    return torch.gather(logp, 2, tokens.unsqueeze(-1)).squeeze(-1) * batch.mask


def response_logprobs(model, batch: RolloutBatch, temperature: float = 1.0) -> torch.Tensor:
    """Forward a causal LM (a module or a DeepSpeed engine) and return [B, R] response log-probabilities."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    return gather_logprobs(logits, batch, temperature)


def response_values(critic, batch: RolloutBatch) -> torch.Tensor:
    """[B, R] values from a per-token scalar model (prm.model.RewardModel): V_t is read at position
    prompt_len + t - 1, the state from which response token t is chosen."""
    values, _ = critic(batch.input_ids, attention_mask=batch.attention_mask)
    return torch.gather(values.float(), 1, batch.response_positions(shift=-1)) * batch.mask


@torch.no_grad()
def batched(fn, batch: RolloutBatch, size: int) -> torch.Tensor:
    """Apply ``fn(sub_batch) -> [b, r]`` in chunks of ``size`` rows and reassemble [B, R] (no gradients)."""
    out = torch.zeros(len(batch), batch.response_width)
    for start in range(0, len(batch), size):
        rows = list(range(start, min(start + size, len(batch))))
        part = fn(batch.select(rows)).float().cpu()
        out[start:start + len(rows), :part.size(1)] = part
    return out


def response_offsets(tokenizer, token_ids: list[int]) -> tuple[str, list[tuple[int, int]]]:
    """Decode sampled response ids (special tokens dropped) and give each id its character span in that text.

    Fast path: re-tokenising the text gives the same ids (the usual case) and the tokenizer's offsets are used.
    Otherwise (a non-canonical split was sampled) offsets come from decoding growing prefixes. Special tokens
    (EOS) get an empty span at the end of the text.
    """
    special = set(tokenizer.all_special_ids)
    text = tokenizer.decode(token_ids, skip_special_tokens=True)
    plain = [t for t in token_ids if t not in special]
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    if list(enc["input_ids"]) == plain:
        plain_offsets = iter([tuple(o) for o in enc["offset_mapping"]])
    else:
        spans, prev = [], 0
        for i in range(1, len(plain) + 1):
            end = len(tokenizer.decode(plain[:i], skip_special_tokens=True))
            spans.append((prev, end))
            prev = end
        plain_offsets = iter(spans)
    offsets = [(len(text), len(text)) if t in special else next(plain_offsets) for t in token_ids]
    return text, offsets
