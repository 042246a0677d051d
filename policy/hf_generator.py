"""``transformers.generate`` behind the Generator interface: the fallback where vLLM is missing, and the
benchmark's baseline.

    gen = HFGenerator("runs/demo/sft")
    gen.generate(prompts, GenerationParams(n=4, temperature=0.7, top_k=20, max_tokens=64), seeds)

It keeps the seed contract of :mod:`policy.generator`: the ``n`` samples of a prompt come from one
``generate(num_return_sequences=n)`` call right after ``torch.manual_seed(seed)``, so they do not depend on the
other prompts. That costs batching across prompts: one call per prompt. The benchmark also times plain batched
``generate`` (no per-request seeds) so vLLM is compared against the strongest transformers baseline.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from policy.generator import Completion, GenerationParams


class HFGenerator:
    def __init__(self, model: str | os.PathLike, *, dtype: str = "auto", device: str | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_name = str(model)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        torch_dtype = {"auto": torch.bfloat16 if self.device == "cuda" else torch.float32,
                       "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype).to(self.device).eval()

    @classmethod
    def from_config(cls, model: str | os.PathLike, section) -> "HFGenerator":
        return cls(model, dtype=section.dtype)

    def _generate_kwargs(self, params: GenerationParams) -> dict[str, Any]:
        kwargs: dict[str, Any] = dict(max_new_tokens=params.max_tokens,
                                      pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                                      eos_token_id=self.tokenizer.eos_token_id)
        if params.temperature == 0:
            kwargs["do_sample"] = False
        else:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=params.top_k)
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        return kwargs

    def _completion(self, new_ids: list[int], params: GenerationParams) -> Completion:
        eos, pad = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        if eos in new_ids:
            new_ids = new_ids[: new_ids.index(eos) + 1]
        else:  # drop the padding generate() adds after a sequence that a stop string ended early
            while new_ids and pad is not None and new_ids[-1] == pad:
                new_ids = new_ids[:-1]
        if new_ids and new_ids[-1] == eos:
            reason = "stop"
        elif len(new_ids) >= params.max_tokens:
            reason = "length"
        else:
            reason = "stop"  # a stop string ended it
        text = self.tokenizer.decode([t for t in new_ids if t != eos], skip_special_tokens=True)
        return Completion(text=text, num_tokens=len(new_ids), finish_reason=reason, token_ids=new_ids)

    def generate(self, prompts: list[str], params: GenerationParams, seeds: list[int]) -> list[list[Completion]]:
        import torch

        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        kwargs = self._generate_kwargs(params)
        results = []
        with torch.inference_mode():
            for prompt, seed in zip(prompts, seeds):
                ids = self.tokenizer(prompt, return_tensors="pt").input_ids.to(self.device)
                torch.manual_seed(seed)
                out = self.model.generate(ids, attention_mask=torch.ones_like(ids), num_return_sequences=params.n,
                                          **kwargs)
                completions = [self._completion(row[ids.shape[1]:].tolist(), params) for row in out]
                results.append(completions)
        return results

    def load_weights(self, source: str | os.PathLike | Mapping[str, Any]) -> None:
        if isinstance(source, (str, os.PathLike)):
            from transformers import AutoModelForCausalLM

            source = AutoModelForCausalLM.from_pretrained(source).state_dict()
        self.model.load_state_dict(source)

    def close(self) -> None:
        self.model = None
