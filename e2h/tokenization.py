"""The one rule that turns text into tokens, for every stage and every tokenizer (SFT, PRM data, PRM scoring,
PPO/GRPO rewards, the service).

1. **Special tokens as the tokenizer adds them**: ``tokenizer(text)`` with its default ``add_special_tokens``,
   which is what vLLM and ``transformers.generate`` callers do with a prompt. No stage prepends a BOS of its own
   (a PRM that read ``<|im_start|>`` in front of every text its policy never saw was a bug with SmolLM2).
2. **Character offsets decide what a token belongs to**, never hard-coded ids: a text is tokenized once as a
   whole, and masks and positions are placed by each token's character span.
3. **A policy's training sequence is what a sampler sees**: the prompt tokenized on its own (as vLLM tokenizes
   it), then the completion's tokens *as they are in the joined text*. Tokenizing the completion on its own is
   wrong for SentencePiece tokenizers (a leading "▁" the model then learns to write); taking the prompt's tokens
   from the joined text is wrong for byte-level BPE (GPT-2, SmolLM2, Llama-3: a trailing ``"\\n\\n"`` is one
   token ``'ĊĊ'`` at the end of a text and two ``'Ċ' 'Ċ'`` before more text).
4. **A step is scored at the token holding its last character** (:func:`step_end_positions`). That token is the
   same whatever follows the step (another step, the answer, the end of a truncated sample), for SentencePiece
   and byte-level tokenizers alike; the first separator token is not (see 3). :func:`check_step_tags` verifies
   it on real texts before training and scoring.

    enc = encode(tokenizer, "# Question\\n\\n1+2?\\n\\n# Solution\\n\\nWe add.\\n\\n")
    enc.ids, enc.offsets        # token ids and (start, end) character spans; (0, 0) for special tokens
    ids, mask = encode_prompt_completion(tokenizer, prompt, "We add.\\n\\n# Answer\\n\\n3", eos=True)
    # ids = prompt tokens + completion tokens (+ EOS); mask[i] is True on the completion tokens and EOS
"""

from __future__ import annotations

from dataclasses import dataclass


class TokenRuleError(ValueError):
    """A text that the token rule cannot place: a token crossing a boundary, a missing EOS, an empty span."""


@dataclass(frozen=True)
class Encoding:
    ids: list[int]
    offsets: list[tuple[int, int]]  # character span of each token in the text; (0, 0) for special tokens

    def __len__(self) -> int:
        return len(self.ids)


def encode(tokenizer, text: str) -> Encoding:
    """Token ids and character offsets of ``text`` with the tokenizer's own special tokens (rule 1)."""
    enc = tokenizer(text, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    special = set(tokenizer.all_special_ids)
    offsets = [(0, 0) if token in special else (int(start), int(end))
               for token, (start, end) in zip(ids, enc["offset_mapping"])]
    return Encoding(ids, offsets)


def token_at_char(offsets: list[tuple[int, int]], char: int) -> int:
    """Index of the (non-special) token whose span holds character ``char``."""
    for index, (start, end) in enumerate(offsets):
        if start <= char < end:
            return index
    raise TokenRuleError(f"no token covers character {char}")


def tokens_from_char(offsets: list[tuple[int, int]], char: int) -> int:
    """Index of the first token that starts at or after ``char``; a token that starts before ``char`` and ends
    after it (a merge across the boundary) is an error, since it belongs to both sides."""
    for index, (start, end) in enumerate(offsets):
        if end <= start:
            continue  # special token
        if start < char < end:
            raise TokenRuleError(f"token {index} spans characters {start}-{end} across the boundary at {char}")
        if start >= char:
            return index
    return len(offsets)


def encode_prompt_completion(tokenizer, prompt: str, completion: str, eos: bool) -> tuple[list[int], list[bool]]:
    """Rule 3: the prompt's tokens as a sampler makes them, then the completion's tokens from the joined text (and
    EOS if ``eos``). Returns (ids, mask) with mask True on the completion's tokens (the SFT loss positions)."""
    prompt_ids = encode(tokenizer, prompt).ids
    joined = encode(tokenizer, prompt + completion)
    first = tokens_from_char(joined.offsets, len(prompt))
    completion_ids = [t for t, (s, e) in zip(joined.ids[first:], joined.offsets[first:]) if e > s]
    if eos:
        if tokenizer.eos_token_id is None:
            raise TokenRuleError(f"the tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has no EOS token, "
                                 "but the example asks for one")
        completion_ids.append(tokenizer.eos_token_id)
    return prompt_ids + completion_ids, [False] * len(prompt_ids) + [True] * len(completion_ids)


def step_end_positions(offsets: list[tuple[int, int]], step_spans: list[tuple[int, int]]) -> list[int]:
    """Rule 4: the token index where each step is scored, the token holding the step's last character."""
    positions = []
    for start, end in step_spans:
        if end <= start:
            raise TokenRuleError(f"the step at characters {start}-{end} is empty: it has no token to score")
        positions.append(token_at_char(offsets, end - 1))
    return positions


def check_step_tags(tokenizer, text: str, step_spans: list[tuple[int, int]], step_ends: list[int],
                    where: str = "") -> list[int]:
    """The step-tag preflight for one text: each step's scored token (1) holds no character of the next step and
    (2) is the same token, at the same place, when the text is cut right after the step and its separator
    (what a truncated sample or a cut training example looks like). Returns the scored positions.

    ``step_ends`` is, for each step, where its text plus separator ends (the next step's start, or the text end).
    """
    full = encode(tokenizer, text)
    positions = step_end_positions(full.offsets, step_spans)
    for step, ((start, end), stop, pos) in enumerate(zip(step_spans, step_ends, positions)):
        token_start, token_end = full.offsets[pos]
        if token_end > stop:
            raise TokenRuleError(
                f"{where}: step {step}'s scored token {text[token_start:token_end]!r} runs into the next step "
                f"(characters {token_start}-{token_end}, the step and its separator end at {stop}); this tokenizer "
                "merges across the step separator")
        cut = encode(tokenizer, text[:stop])
        cut_pos = token_at_char(cut.offsets, end - 1)
        if cut.ids[cut_pos] != full.ids[pos] or cut.offsets[cut_pos] != full.offsets[pos] or cut_pos != pos:
            pieces = tokenizer.convert_ids_to_tokens([full.ids[pos], cut.ids[cut_pos]])
            raise TokenRuleError(
                f"{where}: step {step} is scored at token {pieces[0]!r} (index {pos}) in the whole text but at "
                f"{pieces[1]!r} (index {cut_pos}) when the text ends after it: the step tag depends on what follows")
    return positions


def first_token_from(offsets: list[tuple[int, int]], char: int) -> int:
    """Index of the first token that starts at or after character ``char`` (len(offsets) if none)."""
    return next((i for i, (start, end) in enumerate(offsets) if end > start and start >= char), len(offsets))
