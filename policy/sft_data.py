"""SFT examples as token ids with the loss only on the completion (and its EOS).

    ex = SFTExample(id="a", problem_id="p", prompt="# Question\\n\\nWhat is 1 + 2?\\n\\n# Solution\\n\\n",
                    completion="We add.\\n\\n# Answer\\n\\n3", eos=True)
    item = tokenize_example(ex, tokenizer)
    item["labels"]   # [-100] * len(prompt ids) + completion ids + [eos_id]

Tokens follow e2h.tokenization's rule 3: the prompt's tokens as vLLM makes them (the tokenizer's own special
tokens), then the completion's tokens as they stand in the joined text, so the decoded targets are exactly the
completion text for SentencePiece and byte-level tokenizers alike. EOS is appended only when the example says so
(the reference puts EOS after answer steps only: the model learns to stop after the answer line).
"""

from __future__ import annotations

from typing import Any

from e2h.tokenization import encode_prompt_completion

IGNORE_INDEX = -100


def tokenize_example(example, tokenizer) -> dict[str, list[int]]:
    ids, mask = encode_prompt_completion(tokenizer, example.prompt, example.completion, eos=example.eos)
    return {"input_ids": ids, "labels": [token if trained else IGNORE_INDEX for token, trained in zip(ids, mask)]}


def tokenize_examples(examples: list, tokenizer, max_length: int) -> tuple[list[dict[str, list[int]]], int]:
    """Tokenise every example; ones longer than ``max_length`` are dropped (a cut completion would teach the
    model to stop mid-solution without EOS). Returns (items, number dropped)."""
    items, dropped = [], 0
    for example in examples:
        item = tokenize_example(example, tokenizer)
        if len(item["input_ids"]) > max_length:
            dropped += 1
            continue
        if all(label == IGNORE_INDEX for label in item["labels"]):
            dropped += 1  # an empty completion without EOS has nothing to learn
            continue
        items.append(item)
    return items, dropped


def collate(items: list[dict[str, list[int]]], pad_id: int) -> dict[str, Any]:
    """Right-pad to the longest item; padding is masked out of attention and loss."""
    import torch

    width = max(len(item["input_ids"]) for item in items)
    input_ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, item in enumerate(items):
        size = len(item["input_ids"])
        input_ids[row, :size] = torch.tensor(item["input_ids"])
        labels[row, :size] = torch.tensor(item["labels"])
        attention_mask[row, :size] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}
