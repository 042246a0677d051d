"""Tiny models for the offline world: a byte-level BPE tokenizer trained locally and Llama backbones built
from config, saved with ``save_pretrained`` so every stage loads them exactly like real checkpoints.

vLLM's CPU attention needs head_dim in {32, 64, 80, 96, ...}: hidden_size / num_attention_heads is checked here.
"""

from __future__ import annotations

import os
from typing import Iterable

from e2h.config import BackboneSection

SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}
VLLM_CPU_HEAD_DIMS = (32, 64, 80, 96, 112, 128, 160, 192, 256)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 512):
    """Train a byte-level BPE tokenizer on ``texts`` and wrap it as a PreTrainedTokenizerFast."""
    # local, here and below: importing this module (e2h world, e2h pretrain) must not pay for transformers/torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, **SPECIAL_TOKENS)
    wrapped.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    return wrapped


def llama_config(tokenizer, sizes: BackboneSection, **extra):
    from transformers import LlamaConfig

    head_dim = sizes.hidden_size // sizes.num_attention_heads
    if head_dim not in VLLM_CPU_HEAD_DIMS:
        raise ValueError(
            f"hidden_size/num_attention_heads = {head_dim}; vLLM's CPU attention needs one of {VLLM_CPU_HEAD_DIMS}"
        )
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=sizes.hidden_size,
        intermediate_size=sizes.intermediate_size,
        num_hidden_layers=sizes.num_hidden_layers,
        num_attention_heads=sizes.num_attention_heads,
        num_key_value_heads=sizes.num_key_value_heads,
        max_position_embeddings=sizes.max_position_embeddings,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )


def build_causal_lm(tokenizer, sizes: BackboneSection, seed: int = 0):
    """A randomly initialised LlamaForCausalLM of the given sizes (seeded)."""
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(llama_config(tokenizer, sizes))


def save_tiny_model(directory: str | os.PathLike, tokenizer, sizes: BackboneSection, seed: int = 0) -> str:
    """Build a tiny causal LM and save model + tokenizer to ``directory``; returns the path."""
    model = build_causal_lm(tokenizer, sizes, seed=seed)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)
