"""The generation interface every policy stage uses (sampling for reranking now, PPO rollouts later).

Two implementations sit behind it: :class:`policy.vllm_engine.VLLMGenerator` (the real one) and
:class:`policy.hf_generator.HFGenerator` (``transformers.generate``, a fallback and the benchmark baseline).

    gen = VLLMGenerator("runs/demo/sft")
    params = GenerationParams(n=4, temperature=0.7, top_k=20, max_tokens=256)
    out = gen.generate(["# Question\\n\\nWhat is 1+2?\\n\\n# Solution\\n\\n"], params, seeds=[request_seed(0, "p1")])
    out[0][2].text  # -> "We add.\\n\\n# Answer\\n\\n3"   (prompt 0, sample 2)

Reproducibility contract: the samples of one prompt depend only on (model, params, that prompt's seed), not on
which other prompts share the batch, so a shard gives the same rows whichever actor runs it. Per-prompt seeds
come from :func:`request_seed` (a stable hash of the run seed and the problem id). vLLM draws sample ``i`` of a
prompt with seed ``s + i`` (its rule for ``n > 1``); the HF fallback draws all ``n`` from one stream seeded ``s``.
The two backends give different text for the same seed; each is reproducible on its own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, runtime_checkable

SEED_MODULUS = 2**31 - 1


def request_seed(run_seed: int, problem_id: str) -> int:
    """A per-problem seed that does not depend on shard layout or actor count (Python's hash() is salted)."""
    digest = hashlib.sha256(f"{run_seed}\x00{problem_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % SEED_MODULUS


@dataclass(frozen=True)
class GenerationParams:
    """Sampling parameters shared by both backends. ``top_k=0`` / ``top_p=1`` disable those filters."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_tokens: int = 256
    stop: tuple[str, ...] = ()

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")

    def as_dict(self) -> dict[str, Any]:
        """What a Sample row records under ``sampling``."""
        out = dataclasses.asdict(self)
        out["stop"] = list(self.stop)
        return out


@dataclass
class Completion:
    """One sampled continuation. ``num_tokens`` counts generated tokens (EOS included when emitted)."""

    text: str
    num_tokens: int
    finish_reason: str | None = None  # "stop" (EOS or stop string), "length", "answer_end" (see policy.stopping)
    token_ids: list[int] = field(default_factory=list)


@runtime_checkable
class Generator(Protocol):
    """Anything that turns prompts into ``n`` completions each, reproducibly per seed."""

    model_name: str

    def generate(self, prompts: list[str], params: GenerationParams, seeds: list[int]) -> list[list[Completion]]:
        """Return, for each prompt, ``params.n`` completions that depend only on the model, params and ``seeds[p]``."""
        ...

    def load_weights(self, source: str | os.PathLike | Mapping[str, Any]) -> None:
        """Swap the policy's weights in place: a checkpoint folder or a ``state_dict`` (PPO's weight sync)."""
        ...

    def close(self) -> None:
        ...


def build_generator(backend: str, model: str | os.PathLike, section=None, *, actors: int = 0,
                    cpus_per_actor: float = 1.0, gpus_per_actor: float = 0.0, **engine_kwargs: Any) -> Generator:
    """The one place a Generator is made (sampling, its Ray actors, PPO rollouts and their Ray actors).

    ``backend``: ``"vllm"``, ``"hf"`` (transformers.generate) or ``"auto"`` (vLLM where it imports, else hf).
    ``section``: an ``e2h.config.SampleSection`` whose engine settings (dtype, max_model_len, seed, tensor
    parallelism, KV cache) configure the engine; ``engine_kwargs`` go to :class:`policy.vllm_engine.VLLMGenerator`
    on top of it (without a section, they are all of its settings; the hf engine takes only the section's dtype).
    ``actors > 0``: the same engine on that many Ray actors (:class:`policy.ray_rollouts.RayRolloutGenerator`)."""
    if backend == "auto":
        try:
            import vllm  # noqa: F401  (heavy: imported only to learn whether it is installed)

            backend = "vllm"
        except ImportError:
            backend = "hf"
    if actors > 0:
        from policy.ray_rollouts import RayRolloutGenerator  # local: ray_rollouts imports this module

        return RayRolloutGenerator(model, num_actors=actors, backend=backend, engine_kwargs=engine_kwargs,
                                   cpus_per_actor=cpus_per_actor, gpus_per_actor=gpus_per_actor)
    if backend == "vllm":
        from policy.vllm_engine import VLLMGenerator  # local: vllm_engine imports this module

        if section is not None:
            return VLLMGenerator.from_config(model, section, **engine_kwargs)
        return VLLMGenerator(model, **engine_kwargs)
    if backend == "hf":
        from policy.hf_generator import HFGenerator  # local: hf_generator imports this module

        return HFGenerator.from_config(model, section) if section is not None else HFGenerator(model)
    raise ValueError(f"unknown generation backend '{backend}' (expected 'vllm', 'hf' or 'auto')")
