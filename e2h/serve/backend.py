"""The model behind the service: a PRM scorer (prm/score.py) seen as encode-once, score-in-batches.

A request's solutions are split into steps once (by the app) and encoded once (:meth:`Backend.encode`): the
encoding's token count serves the context-length check and the batch budget, and the very same ids are scored.
The batcher mixes encoded solutions of many requests (many problems) into one ``score_encoded`` call::

    backend = PRMBackend.load("runs/demo/prm", device="auto")
    backend.warm_up()
    items = backend.encode(format_prompt("1+2?"), [["3.", "# Answer\\n\\n3"]])
    backend.score_encoded(items)   # -> [[0.71, 0.66]]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

from e2h.text_format import format_prompt, split_solution

Pair = tuple[str, str]
WARM_UP_PAIR: Pair = (format_prompt("What is 1+1?"), "We add 1 and 1.\n\n# Answer\n\n2")


@dataclass(frozen=True)
class Encoded:
    """One solution as the model reads it: its steps, its length in tokens (prompt included) and whatever the
    backend scores it from (PRMBackend: the token ids and each step's scored position)."""

    steps: list[str]
    tokens: int
    data: Any = None


class Backend(Protocol):
    """What the app needs from a model (a test can pass any object of this shape)."""

    name: str

    def encode(self, prompt: str, solutions: Sequence[list[str]]) -> list[Encoded]: ...

    def score_encoded(self, items: list[Encoded]) -> list[list[float] | Exception]: ...

    def warm_up(self) -> None: ...


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when a GPU is present, else 'cpu'."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def model_display_name(path: str) -> str:
    """What the service reports as its model: "<run>/prm", or "<run>/prm@step-4" for a training checkpoint (whose
    own folder is the uninformative "hf")."""
    folder = Path(path).resolve()
    if folder.name == "hf" and folder.parent.parent.name == "checkpoints":
        return f"{folder.parents[3].name}/{folder.parents[2].name}@{folder.parent.name}"
    return f"{folder.parent.name}/{folder.name}"


class PRMBackend:
    def __init__(self, scorer, name: str) -> None:
        self.scorer = scorer
        self.name = name

    @classmethod
    def load(cls, path: str, device: str = "auto") -> "PRMBackend":
        if not Path(path).exists():
            raise FileNotFoundError(f"PRM checkpoint not found: {path} (set serve.prm_path)")
        try:
            from prm.score import PRMScorer  # local: imports torch; prm/ may be missing
        except ImportError as err:  # prm/ is the stage-one package; the service sits on top of it
            raise RuntimeError(f"cannot import prm.score.PRMScorer ({err}); is the prm package installed?") from err
        return cls(PRMScorer(path, device=resolve_device(device)), name=model_display_name(path))

    @property
    def max_tokens(self) -> int | None:
        """The model's context length (longer inputs are refused, not silently scored past it)."""
        config = getattr(getattr(getattr(self.scorer, "model", None), "net", None), "config", None)
        return getattr(config, "max_position_embeddings", None)

    def encode(self, prompt: str, solutions: Sequence[list[str]]) -> list[Encoded]:
        """Each solution's token ids and scored positions, as prm.score.PRMScorer.encode makes them."""
        out = []
        for steps in solutions:
            ids, positions, start = self.scorer.encode(prompt, steps)
            out.append(Encoded(steps, len(ids), (ids, positions, start)))
        return out

    def score_encoded(self, items: list[Encoded]) -> list[list[float] | Exception]:
        """One batch; if it fails, each solution alone, so one unscorable text fails only its own request."""
        try:
            return self._score(items)
        except Exception:
            if len(items) == 1:
                raise
        out: list[list[float] | Exception] = []
        for item in items:
            try:
                out.append(self._score([item])[0])
            except Exception as err:  # noqa: BLE001 (handed to the waiting request)
                out.append(err)
        return out

    def _score(self, items: list[Encoded]) -> list[list[float]]:
        return [list(map(float, s)) for s in self.scorer.score_encoded([item.data for item in items])]

    def warm_up(self) -> None:
        """One real forward pass, so the first request does not pay for lazy initialisation."""
        prompt, solution = WARM_UP_PAIR
        out = self.score_encoded(self.encode(prompt, [split_solution(solution)]))
        if len(out) != 1 or not out[0]:
            raise RuntimeError(f"warm-up forward returned no step scores: {out!r}")
