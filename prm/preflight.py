"""Step-tag preflight: run before any PRM training or scoring. Each check raises PreflightError with the example
id and what is wrong; peers ship every one of these bugs silently (reference peers.md, "step-tag plumbing").

1. ``check_step_tags`` (e2h.tokenization): each step's scored token holds no character of the next step, and is
   the same token whatever follows the step (a byte-level BPE's ``'ĊĊ'`` at the end of a text but ``'Ċ' 'Ċ'``
   before more text made peers train the PRM at one token and read it at another).
2. ``check_positions``: one scored position per step, distinct and increasing, and the labelled positions are
   exactly the labelled steps' positions (every_token: the whole step; boundary: its boundary token).
3. ``check_truncation``: no labelled position (or its step's boundary) lies beyond the kept tokens.
4. ``check_batch``: a micro-batch has at least one labelled position (else the loss is a silent 0 or NaN).
"""

from __future__ import annotations

from e2h.records import StepExample
from e2h.tokenization import TokenRuleError, check_step_tags, encode

from prm.dataset import EncodedExample, layout, step_ends


class PreflightError(ValueError):
    pass


def check_positions(encoded: EncodedExample, label_positions: str) -> None:
    b = encoded.boundaries
    if len(b) != len(encoded.step_labels):
        raise PreflightError(f"{encoded.id}: {len(b)} scored positions for {len(encoded.step_labels)} steps")
    if any(x >= y for x, y in zip(b, b[1:])):
        raise PreflightError(f"{encoded.id}: scored positions are not strictly increasing: {b}")
    expected = set()
    for step, label in enumerate(encoded.step_labels):
        if label is None:
            continue
        if label_positions == "every_token":
            first, last = encoded.step_ranges[step]
            if not first <= b[step] <= last:
                raise PreflightError(f"{encoded.id}: step {step}'s boundary {b[step]} is outside its tokens "
                                     f"{first}-{last}")
            expected.update(range(first, last + 1))
        else:
            expected.add(b[step])
    expected = {p for p in expected if p < len(encoded)}
    labelled = {i for i, w in enumerate(encoded.weights) if w > 0}
    if labelled != expected:
        raise PreflightError(f"{encoded.id}: {len(labelled)} labelled positions but the labelled steps give "
                             f"{len(expected)} (differences at tokens {sorted(labelled ^ expected)[:8]})")
    n_labels = sum(label is not None for label in encoded.step_labels)
    scored = sum(1 for step, label in enumerate(encoded.step_labels)
                 if label is not None and b[step] < len(encoded) and encoded.weights[b[step]] > 0)
    if scored != n_labels:
        raise PreflightError(f"{encoded.id}: {n_labels} labels but {scored} labelled boundary positions")


def check_truncation(encoded: EncodedExample) -> None:
    n = len(encoded.input_ids)
    if len(encoded.boundaries) != len(encoded.step_labels):
        raise PreflightError(f"{encoded.id}: {len(encoded.boundaries)} scored positions for "
                             f"{len(encoded.step_labels)} steps")
    if not (len(encoded.labels) == len(encoded.weights) == n):
        raise PreflightError(f"{encoded.id}: {n} tokens but {len(encoded.labels)} labels / "
                             f"{len(encoded.weights)} weights")
    for step, label in enumerate(encoded.step_labels):
        if label is None:
            continue
        last = max(encoded.step_ranges[step][1], encoded.boundaries[step])
        if last >= n:
            raise PreflightError(f"{encoded.id}: truncation to {n} tokens cut labelled step {step} "
                                 f"(its tokens end at {last})")


def check_batch(batch_weights, where: str = "batch") -> None:
    if float(batch_weights.sum()) <= 0:
        raise PreflightError(f"{where}: no labelled position in the micro-batch")


def preflight_example(tokenizer, example: StepExample, encoded: EncodedExample, label_positions: str) -> None:
    """All per-example checks; re-tokenises the text to compare with what the encoder produced."""
    lay = layout(example.problem, example.steps)
    if encode(tokenizer, lay.text).ids[:len(encoded.input_ids)] != encoded.input_ids:
        raise PreflightError(f"{example.id}: encoded ids differ from the tokenised text")
    try:
        positions = check_step_tags(tokenizer, lay.text, lay.step_spans, step_ends(lay), where=example.id)
    except TokenRuleError as err:
        raise PreflightError(str(err)) from None
    if positions != encoded.boundaries:
        raise PreflightError(f"{example.id}: scored positions {encoded.boundaries} differ from the step-tag rule's "
                             f"{positions}")
    check_truncation(encoded)
    check_positions(encoded, label_positions)


def preflight_dataset(tokenizer, examples: list[StepExample], encoded: list[EncodedExample], label_positions: str,
                      limit: int | None = 256) -> int:
    """Check the first ``limit`` examples (all when None); returns how many were checked."""
    by_id = {e.id: e for e in examples}
    checked = 0
    for enc in encoded[: limit if limit is not None else len(encoded)]:
        preflight_example(tokenizer, by_id[enc.id], enc, label_positions)
        checked += 1
    if not any(any(w > 0 for w in e.weights) for e in encoded):
        raise PreflightError("no example carries a labelled position")
    return checked
