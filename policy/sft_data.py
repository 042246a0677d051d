"""SFT examples as token ids with the loss only on the completion (and its EOS).

    ex = SFTExample(id="a", problem_id="p", prompt="# Question\\n\\nWhat is 1 + 2?\\n\\n# Solution\\n\\n",
                    completion="We add.\\n\\n# Answer\\n\\n3", eos=True)
    item = tokenize_example(ex, tokenizer)
    item["labels"]   # [-100] * len(prompt ids) + completion ids + [eos_id]

The prompt is tokenised on its own, with the tokenizer's default special tokens (BOS for Llama tokenizers),
exactly as vLLM tokenises a prompt at sampling time; the completion is tokenised without special tokens and
appended, so training sees the token boundary that generation will see. EOS is appended only when the example
says so (the reference puts EOS after answer steps only: the model learns to stop after the answer line).
"""

from __future__ import annotations

from typing import Any

IGNORE_INDEX = -100


def tokenize_example(example, tokenizer) -> dict[str, list[int]]:
    prompt_ids = tokenizer(example.prompt)["input_ids"]
    completion_ids = tokenizer(example.completion, add_special_tokens=False)["input_ids"]
    if example.eos:
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no EOS token but the SFT example asks for one")
        completion_ids = completion_ids + [tokenizer.eos_token_id]
    return {"input_ids": prompt_ids + completion_ids,
            "labels": [IGNORE_INDEX] * len(prompt_ids) + completion_ids}


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
