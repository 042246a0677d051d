"""Step-tag preflight catches each failure mode; encoding puts labels where the convention says."""

from __future__ import annotations

import pytest

from conftest import prm_step_examples
from e2h.records import StepExample
from prm.dataset import (EmptyBatchError, EncodedExample, TruncatedLabelError, collate, encode_step_example,
                         pointwise_loss)
from prm.preflight import PreflightError, check_batch, check_truncation, preflight_example


def _example(labels=(1.0, 0.0, 0.0)):
    return StepExample(id="ex", problem_id="p", problem="What is 3 + 4?",
                       steps=["We add 3 and 4.", "3 + 4 = 17.", "# Answer\n\n17"], labels=list(labels))


@pytest.mark.parametrize("mode", ["every_token", "boundary"])
def test_clean_example_passes_and_labels_sit_on_the_right_tokens(tiny_tokenizer, mode):
    example = _example(labels=(None, 0.0, 1.0))
    enc = encode_step_example(tiny_tokenizer, example, mode)
    preflight_example(tiny_tokenizer, example, enc, mode)
    tokens = tiny_tokenizer.convert_ids_to_tokens(enc.input_ids)
    # every step is scored at the token holding its last character (e2h.tokenization rule 4)
    assert [tokens[b] for b in enc.boundaries] == [".", ".", tokens[-1]] and tokens[-1].endswith("17")
    labelled = [i for i, w in enumerate(enc.weights) if w]
    if mode == "boundary":
        assert labelled == enc.boundaries[1:]
    else:  # every token of step 1 (incl. its separator) and of the answer step; step 0 is context only
        first = enc.step_ranges[1][0]
        assert labelled == list(range(first, len(tokens)))
        assert "".join(tokens[first:enc.boundaries[1] + 3]).replace("Ġ", " ") == "3 + 4 = 17.ĊĊ"
    assert [enc.labels[b] for b in enc.boundaries[1:]] == [0.0, 1.0]


def test_separator_merged_into_step_text_is_caught():
    """A tokenizer without a byte-level pre-tokenizer learns '.\\n'-style merges across the separator."""
    from tokenizers import Tokenizer, models, trainers
    from transformers import PreTrainedTokenizerFast

    from e2h.text_format import format_prompt, format_solution

    texts = [format_prompt(e.problem) + format_solution(e.steps) for e in prm_step_examples(200, seed=7)]
    raw = Tokenizer(models.BPE(unk_token="<unk>"))
    raw.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>"],
                                                       initial_alphabet=sorted(set("".join(texts)))))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>", bos_token="<s>")
    example = _example()
    enc = encode_step_example(tokenizer, example, "every_token")
    with pytest.raises(PreflightError, match="merges across the step separator|depends on what follows"):
        preflight_example(tokenizer, example, enc, "every_token")


def test_scored_positions_differing_from_labels_are_caught(tiny_tokenizer):
    example = _example()
    enc = encode_step_example(tiny_tokenizer, example, "boundary")
    enc.boundaries = enc.boundaries[:-1]  # a lost step boundary
    with pytest.raises(PreflightError, match="differ from the step-tag rule"):
        preflight_example(tiny_tokenizer, example, enc, "boundary")
    enc = encode_step_example(tiny_tokenizer, example, "boundary")
    enc.weights[enc.boundaries[0] - 1] = 1.0  # a label on a token that is no step boundary
    with pytest.raises(PreflightError, match="labelled positions"):
        preflight_example(tiny_tokenizer, example, enc, "boundary")


def test_truncation_that_cuts_a_labelled_step_is_caught(tiny_tokenizer):
    example = _example()
    full = encode_step_example(tiny_tokenizer, example, "every_token")
    with pytest.raises(TruncatedLabelError):
        encode_step_example(tiny_tokenizer, example, "every_token", max_length=len(full) - 2)
    naive = EncodedExample(full.id, full.input_ids[:-2], full.labels[:-2], full.weights[:-2], full.boundaries,
                           full.step_labels, full.step_ranges)  # what a plain right-truncation would leave
    with pytest.raises(PreflightError, match="cut labelled step 2"):
        check_truncation(naive)
    # unlabelled trailing context may be cut: the labelled steps still fit
    context_tail = _example(labels=(1.0, None, None))
    cut = encode_step_example(tiny_tokenizer, context_tail, "every_token", max_length=full.boundaries[0] + 3)
    preflight_example(tiny_tokenizer, context_tail, cut, "every_token")


def test_batch_without_labelled_position_is_an_error(tiny_tokenizer):
    enc = encode_step_example(tiny_tokenizer, _example(), "boundary")
    empty = EncodedExample("e", enc.input_ids, [0.0] * len(enc), [0.0] * len(enc), enc.boundaries,
                           [None, None, None], enc.step_ranges)
    with pytest.raises(EmptyBatchError):
        collate([empty, empty], pad_id=0)
    import torch

    with pytest.raises(EmptyBatchError):
        pointwise_loss(torch.zeros(1, 3), torch.zeros(1, 3), torch.zeros(1, 3))
    with pytest.raises(PreflightError):
        check_batch(torch.zeros(2, 5))


def test_loss_is_token_mean_over_labelled_positions_with_soft_labels():
    import torch
    import torch.nn.functional as F

    logits = torch.tensor([[0.3, -1.0, 2.0], [0.5, 0.0, 0.0]])
    labels = torch.tensor([[0.7, 0.0, 1.0], [0.2, 0.0, 0.0]])
    weights = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    expected = sum(F.binary_cross_entropy_with_logits(logits[r, c], labels[r, c]) for r, c in [(0, 0), (0, 2), (1, 0)]) / 3
    assert pointwise_loss(logits, labels, weights).item() == pytest.approx(expected.item(), rel=1e-6)
