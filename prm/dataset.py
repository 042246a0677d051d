"""StepExample -> token ids, per-token labels and weights, step positions; batching; the loss.

The text is exactly what scoring reads: ``format_prompt(problem) + format_solution(steps)`` (e2h.text_format),
tokenized once by e2h.tokenization's rule (the tokenizer's own special tokens, positions from character
offsets, never hard-coded ids)::

    text:    "# Question\\n\\nWhat is 2+3?\\n\\n# Solution\\n\\n" "We add." "\\n\\n" "# Answer\\n\\n5"
    steps:                                                   [ step 0 ][ sep ][ step 1 (answer) ]
    position(step k) = the token holding step k's last character ("." for step 0, "5" for the answer): the same
    token whatever follows the step, for every tokenizer (the preflight in prm/preflight.py checks it)

Labels (``StepExample.labels``; None = context only), hard (0/1) or soft (in [0, 1]):
- ``label_positions="every_token"``: every token of a labelled step, its separator included, carries the label;
- ``label_positions="boundary"``: only the step's scored token does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from e2h.records import StepExample
from e2h.text_format import STEP_SEPARATOR, format_prompt, format_solution, is_answer_step
from e2h.tokenization import TokenRuleError, encode, step_end_positions


class TruncatedLabelError(ValueError):
    """A labelled step would not fit in max_length."""


@dataclass
class StepLayout:
    """Character layout of a prompt + solution: spans of each step and of the separator after it."""

    text: str
    prompt_chars: int
    step_spans: list[tuple[int, int]]  # [start, end) of each step's text
    sep_spans: list[tuple[int, int] | None]  # the separator following each step; None only for an answer step


def layout(problem_or_prompt: str, steps: list[str], is_prompt: bool = False) -> StepLayout:
    """Build the text and its character spans (steps are stripped exactly as format_solution does).

    Every reasoning step is followed by the separator, the last one too (as the reference writes a PRM800K
    step: its text plus "\n\n"), so a step reads the same in a cut training example as in a whole solution.
    Without it, a tokenizer that merges punctuation with the newlines after it (Llama-3, Qwen: ".\n\n" is one
    token) would score a solution cut after its first wrong step at a different token exactly when it is wrong:
    a cue the PRM learns instead of the step, and never sees when scoring complete solutions.
    """
    prompt = problem_or_prompt if is_prompt else format_prompt(problem_or_prompt)
    parts = [s.strip() for s in steps]
    solution = format_solution(steps)
    if parts and not is_answer_step(parts[-1]):
        solution += STEP_SEPARATOR
    spans, seps = [], []
    pos = len(prompt)
    for part in parts:
        spans.append((pos, pos + len(part)))
        pos += len(part)
        if is_answer_step(part) and pos == len(prompt) + len(solution):
            seps.append(None)
        else:
            seps.append((pos, pos + len(STEP_SEPARATOR)))
            pos += len(STEP_SEPARATOR)
    assert pos == len(prompt) + len(solution)
    return StepLayout(prompt + solution, len(prompt), spans, seps)


def step_ends(lay: StepLayout) -> list[int]:
    """Where each step's text plus its separator ends (the next step's start, or the end of the text)."""
    return [sep[1] if sep is not None else end for (_, end), sep in zip(lay.step_spans, lay.sep_spans)]


def step_token_ranges(lay: StepLayout, offsets: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """[first, last] token index of each step including its separator: the tokens overlapping its characters."""
    ranges = []
    for (start, _), stop in zip(lay.step_spans, step_ends(lay)):
        inside = [i for i, (s, e) in enumerate(offsets) if e > s and s < stop and e > start]
        if not inside:
            raise TokenRuleError(f"step at characters {start}-{stop} has no token")
        ranges.append((inside[0], inside[-1]))
    return ranges


@dataclass
class EncodedExample:
    id: str
    input_ids: list[int]
    labels: list[float]  # per token; only read where weights == 1
    weights: list[float]  # 1.0 = this position is trained
    boundaries: list[int]  # the scored token of each step (labelled or not), e2h.tokenization rule 4
    step_labels: list[float | None]
    step_ranges: list[tuple[int, int]] = field(default_factory=list)
    solution_start: int = 0  # the first step's first token (the likelihood feature starts there, prm/model.py)

    def __len__(self) -> int:
        return len(self.input_ids)


def encode_step_example(tokenizer, example: StepExample, label_positions: str = "every_token",
                        max_length: int | None = None) -> EncodedExample:
    """Tokenise one StepExample. Unlabelled steps after the last labelled one are cut if the text is too long;
    a labelled step that does not fit raises TruncationError (the caller drops and counts the example)."""
    if label_positions not in ("every_token", "boundary"):
        raise ValueError(f"label_positions must be 'every_token' or 'boundary', got {label_positions!r}")
    if any(not step.strip() for step in example.steps):
        raise ValueError(f"{example.id}: an empty step has no token to score")
    lay = layout(example.problem, example.steps)
    enc = encode(tokenizer, lay.text)
    ids = enc.ids
    try:
        bounds = step_end_positions(enc.offsets, lay.step_spans)
        ranges = step_token_ranges(lay, enc.offsets)
    except TokenRuleError as err:
        raise ValueError(f"{example.id}: {err}") from None
    labels = [0.0] * len(ids)
    weights = [0.0] * len(ids)
    last_needed = 0
    for step, label in enumerate(example.labels):
        if label is None:
            continue
        first, last = ranges[step]
        positions = range(first, last + 1) if label_positions == "every_token" else [bounds[step]]
        for pos in positions:
            labels[pos], weights[pos] = float(label), 1.0
        last_needed = max(last_needed, max(positions))
    if max_length is not None and len(ids) > max_length:
        if last_needed >= max_length:
            raise TruncatedLabelError(f"{example.id}: a labelled step ends at token {last_needed}, "
                                      f"beyond max_length {max_length}")
        ids, labels, weights = ids[:max_length], labels[:max_length], weights[:max_length]
    return EncodedExample(example.id, ids, labels, weights, bounds, list(example.labels), ranges, ranges[0][0])


def encode_all(tokenizer, examples: list[StepExample], label_positions: str,
               max_length: int | None) -> tuple[list[EncodedExample], int]:
    """Encode a list; returns (encoded, number dropped because a labelled step did not fit)."""
    encoded, dropped = [], 0
    for example in examples:
        try:
            encoded.append(encode_step_example(tokenizer, example, label_positions, max_length))
        except TruncatedLabelError:
            dropped += 1
    return encoded, dropped


# --- batching --------------------------------------------------------------------------------------------------


class EmptyBatchError(ValueError):
    """A batch without a single labelled position: its loss would be a silent 0 / NaN."""


def collate(examples: list[EncodedExample], pad_id: int):
    """Right-pad a micro-batch (examples are length-grouped upstream, see training.micro_batches).

    Padding-free packing (position ids restarting per example, block-diagonal mask) is exact but measured
    slower on CPU with SDPA: the dense mask makes every row pay attention over its whole packed length
    (bench/bench_prm_packing.py: 0.83-0.90x of length-grouped, whose padding is ~10%)."""
    import torch

    width = max(len(e) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.zeros((len(examples), width), dtype=torch.float32)
    weights = torch.zeros((len(examples), width), dtype=torch.float32)
    for row, e in enumerate(examples):
        n = len(e)
        ids[row, :n] = torch.tensor(e.input_ids)
        mask[row, :n] = 1
        labels[row, :n] = torch.tensor(e.labels)
        weights[row, :n] = torch.tensor(e.weights)
    if not weights.any():
        raise EmptyBatchError(f"micro-batch of {len(examples)} examples ({', '.join(e.id for e in examples[:3])}"
                              f"...) has no labelled position")
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, "weights": weights,
            "solution_start": torch.tensor([e.solution_start for e in examples])}


def pointwise_loss(logits, labels, weights):
    """BCE-with-logits on labelled positions, averaged over the labelled tokens of the micro-batch (§2):
    L = sum_t w_t * BCE(s_t, y_t) / sum_t w_t. Soft labels welcome."""
    import torch.nn.functional as F

    total = weights.sum()
    if total <= 0:
        raise EmptyBatchError("no labelled position in the batch")
    per_token = F.binary_cross_entropy_with_logits(logits.float(), labels, reduction="none")
    return (per_token * weights).sum() / total


def step_accuracy_counts(logits, labels, weights, boundary_only_mask=None) -> tuple[int, int]:
    """(correct, total) of thresholded predictions (p > 0.5 vs label > 0.5) on labelled positions."""
    mask = (weights > 0) if boundary_only_mask is None else boundary_only_mask
    pred = logits > 0
    gold = labels > 0.5
    return int(((pred == gold) & mask).sum()), int(mask.sum())
