"""Shards: the unit of sampling work, of output and of resume.

The prompt set is cut, in input order, into shards of ``shard_size`` problems. Each shard becomes one file
``<samples>/shard-00000.jsonl`` holding ``n`` Sample rows per problem, written atomically (temp name, rename),
and only then recorded in ``<samples>/manifest.json`` with its row count, sha256 and a fingerprint of what
produced it (model, sampling params, seed, problem ids). A restarted run skips a shard only when the entry
exists, the file still has its checksum and the fingerprint matches; anything else (a file renamed into place
just before a kill, a temp file, a changed config) is redone.

    store = ShardStore("runs/demo/samples")
    for shard in plan_shards(problems, shard_size=64):
        if not store.is_done(shard, fingerprint):
            store.write(shard, sample_shard(generator, shard, params, run_seed=0), fingerprint)
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from e2h.manifest import Manifest, model_identity
from e2h.records import Problem, Sample, iter_records, save_records
from e2h.text_format import format_prompt
from policy.generator import Generator, GenerationParams, request_seed
from policy.stopping import cut_after_answer_line


@dataclass(frozen=True)
class Shard:
    index: int
    problems: tuple[Problem, ...]

    @property
    def name(self) -> str:
        return f"shard-{self.index:05d}"


def plan_shards(problems: list[Problem], shard_size: int) -> list[Shard]:
    """Cut problems into consecutive shards; the layout depends only on the input order and shard_size."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    seen: set[str] = set()
    for problem in problems:
        if problem.id in seen:
            raise ValueError(f"problem id '{problem.id}' appears twice in the prompt set")
        seen.add(problem.id)
    return [Shard(i // shard_size, tuple(problems[i:i + shard_size])) for i in range(0, len(problems), shard_size)]


def run_fingerprint(model: str, params: GenerationParams, run_seed: int, cut_after_answer: bool) -> dict[str, Any]:
    """What, besides the problems, decides a shard's rows; a finished shard is reused only if this matches."""
    return {"model": model_identity(model), "sampling": params.as_dict(), "seed": run_seed,
            "cut_after_answer": cut_after_answer}


def shard_fingerprint(shard: Shard, run: dict[str, Any]) -> str:
    payload = json.dumps({"run": run, "problems": [p.id for p in shard.problems]}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def sample_shard(generator: Generator, shard: Shard, params: GenerationParams, run_seed: int,
                 cut_after_answer: bool = True) -> list[Sample]:
    """Generate ``params.n`` samples for every problem in the shard, as Sample rows (problem order, then index)."""
    prompts = [format_prompt(p.problem) for p in shard.problems]
    seeds = [request_seed(run_seed, p.id) for p in shard.problems]
    outputs = generator.generate(prompts, params, seeds)
    rows = []
    for problem, prompt, seed, completions in zip(shard.problems, prompts, seeds, outputs):
        if len(completions) != params.n:
            raise RuntimeError(f"generator returned {len(completions)} completions for '{problem.id}', "
                               f"expected {params.n}")
        for index, completion in enumerate(completions):
            text, reason = completion.text, completion.finish_reason
            if cut_after_answer:
                text, was_cut = cut_after_answer_line(text)
                reason = "answer_end" if was_cut else reason
            rows.append(Sample(
                problem_id=problem.id, sample_index=index, prompt=prompt, completion=text,
                gold_answer=problem.answer, level=problem.level, subject=problem.subject,
                model=generator.model_name, sampling=params.as_dict(), seed=seed,
                finish_reason=reason, num_tokens=completion.num_tokens,
            ))
    return rows


class ShardStore:
    """The samples folder: shard files plus the manifest that says which of them are finished."""

    MANIFEST = "manifest.json"

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.manifest = Manifest(self.directory / self.MANIFEST)

    def path(self, shard: Shard) -> Path:
        return self.directory / f"{shard.name}.jsonl"

    def is_done(self, shard: Shard, fingerprint: str) -> bool:
        entry = self.manifest.entries.get(shard.name)
        return entry is not None and entry.get("fingerprint") == fingerprint and self.manifest.is_done(shard.name)

    def write(self, shard: Shard, rows: list[Sample], fingerprint: str) -> int:
        """Write the shard file atomically, then record it as done (in that order)."""
        self.manifest.forget(shard.name)  # a stale entry must not vouch for the new file while it is written
        count = save_records(self.path(shard), rows)
        self.manifest.mark_done(shard.name, [self.path(shard)], fingerprint=fingerprint, problems=len(shard.problems),
                                num_tokens=sum(r.num_tokens or 0 for r in rows))
        return count

    def remove_partial_files(self) -> int:
        """Delete temp files a killed writer left behind (e2h.jsonl.atomic_path names them .<name>.*.tmp)."""
        removed = 0
        for tmp in self.directory.glob(".shard-*.tmp"):
            tmp.unlink(missing_ok=True)
            removed += 1
        return removed

    def iter_samples(self, shards: list[Shard]) -> Iterator[Sample]:
        """Every row of the given shards, in shard order; all of them must be done."""
        for shard in shards:
            if not self.manifest.is_done(shard.name):
                raise RuntimeError(f"{self.path(shard)} is not finished; run `e2h sample` again to complete it")
            yield from iter_records(self.path(shard), Sample)
