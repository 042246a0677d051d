"""The model behind the service: a PRM scorer (prm/score.py) seen as one batched call over (prompt, solution) pairs.

The batcher mixes pairs of many requests (many problems) into one batch. When the scorer offers
``score_pairs(pairs)`` that is one call; otherwise the batch is split into one ``score(prompt, completions)`` call
per problem, which still batches the N solutions of each problem::

    backend = PRMBackend.load("runs/demo/prm", device="auto")
    backend.warm_up()
    backend.score_pairs([(format_prompt("1+2?"), "3.\\n\\n# Answer\\n\\n3")])   # -> [[0.71, 0.66]]
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence

from e2h.text_format import format_prompt

Pair = tuple[str, str]
WARM_UP_PAIR: Pair = (format_prompt("What is 1+1?"), "We add 1 and 1.\n\n# Answer\n\n2")


class Backend(Protocol):
    """What the app needs from a model (a test can pass any object of this shape)."""

    name: str

    def score_pairs(self, pairs: list[Pair]) -> list[list[float] | Exception]: ...

    def count_tokens(self, pairs: Sequence[Pair]) -> list[int]: ...

    def warm_up(self) -> None: ...


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when a GPU is present, else 'cpu'."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def group_by_prompt(pairs: Sequence[Pair]) -> dict[str, list[int]]:
    """Positions of the pairs that share a prompt, in first-seen order: {prompt: [i, j, ...]}."""
    groups: dict[str, list[int]] = {}
    for i, (prompt, _) in enumerate(pairs):
        groups.setdefault(prompt, []).append(i)
    return groups


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
        self.tokenizer = getattr(scorer, "tokenizer", None)

    @classmethod
    def load(cls, path: str, device: str = "auto") -> "PRMBackend":
        if not Path(path).exists():
            raise FileNotFoundError(f"PRM checkpoint not found: {path} (set serve.prm_path)")
        try:
            from prm.score import PRMScorer
        except ImportError as err:  # prm/ is the stage-one package; the service sits on top of it
            raise RuntimeError(f"cannot import prm.score.PRMScorer ({err}); is the prm package installed?") from err
        return cls(PRMScorer(path, device=resolve_device(device)), name=model_display_name(path))

    @property
    def max_tokens(self) -> int | None:
        """The model's context length (longer inputs are refused, not silently scored past it)."""
        config = getattr(getattr(getattr(self.scorer, "model", None), "net", None), "config", None)
        return getattr(config, "max_position_embeddings", None)

    def score_pairs(self, pairs: list[Pair]) -> list[list[float] | Exception]:
        """One batch; if it fails, each pair alone, so one unscorable text fails only its own request."""
        try:
            return self._score_pairs(pairs)
        except Exception:
            if len(pairs) == 1:
                raise
        out: list[list[float] | Exception] = []
        for pair in pairs:
            try:
                out.append(self._score_pairs([pair])[0])
            except Exception as err:  # noqa: BLE001 (handed to the waiting request)
                out.append(err)
        return out

    def _score_pairs(self, pairs: list[Pair]) -> list[list[float]]:
        if hasattr(self.scorer, "score_pairs"):
            return [list(map(float, s)) for s in self.scorer.score_pairs(list(pairs))]
        results: list[list[float] | None] = [None] * len(pairs)
        for prompt, positions in group_by_prompt(pairs).items():
            scores = self.scorer.score(prompt, [pairs[i][1] for i in positions])
            for i, step_scores in zip(positions, scores):
                results[i] = list(map(float, step_scores))
        return results  # type: ignore[return-value]

    def count_tokens(self, pairs: Sequence[Pair]) -> list[int]:
        """Tokens per pair as the scorer will encode it (prm.score.scoring_text: the steps re-joined, a trailing
        separator included), for the context-length check and the batch budget; characters when the scorer
        exposes no tokenizer."""
        if self.tokenizer is None:
            return [len(p) + len(s) for p, s in pairs]
        from prm.score import scoring_text

        # the tokenizer's own special tokens, as the scorer's e2h.tokenization.encode adds them
        ids = self.tokenizer([scoring_text(p, s) for p, s in pairs], add_special_tokens=True)["input_ids"]
        return [len(x) for x in ids]

    def warm_up(self) -> None:
        """One real forward pass, so the first request does not pay for lazy initialisation."""
        out = self.score_pairs([WARM_UP_PAIR])
        if len(out) != 1 or not out[0]:
            raise RuntimeError(f"warm-up forward returned no step scores: {out!r}")
