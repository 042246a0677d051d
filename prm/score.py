"""Score solutions with a PRM (`e2h score`): ONE forward pass per solution reads every step score at once.

    scorer = PRMScorer("runs/demo/prm")
    scorer.score("# Question\\n\\nWhat is 2+3?\\n\\n# Solution\\n\\n", ["We add.\\n\\n# Answer\\n\\n5", ...])
    # -> [[0.91, 0.88], ...]   per-step probabilities; the answer step is included, last

A completion is split into steps with e2h.text_format.split_solution and re-joined with format_solution (the
text the PRM was trained on). Step k is scored at the token holding its last character (e2h.tokenization rule 4),
whatever follows it: a length-truncated sample without an answer step is scored on the steps it has. Completions are batched by length under a token budget. With ``share_prompt``
the N samples of one problem reuse the prompt's KV cache (computed once, repeated across the batch); measured
on the 2-core CPU with a tiny model and short prompts it is SLOWER (bench/bench_prm_score.py: 12.7x vs 20.5x
over per-prefix scoring), so it is off by default; turn it on for long prompts on a GPU.

Sample files (``e2h score``): a Sample JSONL file or a folder of ``shard-*.jsonl``; each output shard gets
``step_scores`` (every step, the answer step last) and ``aggregates`` {min, prod, last, mean} of the steps
``score.steps`` selects (e2h.rerank.select_steps: reasoning_and_answer, reasoning or with_answer) and is recorded in ``<out>/manifest.json`` only after
it is written, so a killed run resumes per shard. ``score.num_actors > 1`` spreads shards over Ray actors.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
from pathlib import Path

from e2h.config import add_config_arguments, config_from_args
from e2h.layout import RunLayout
from e2h.manifest import Manifest, file_checksum, model_identity
from e2h.ray_cluster import import_ray, start_ray
from e2h.records import Sample, iter_records, save_records
from e2h.rerank import AGGREGATIONS, aggregate_steps, select_steps
from e2h.text_format import STEP_SEPARATOR, ends_with_answer, format_solution, is_answer_step, split_solution
from e2h.tokenization import TokenRuleError, encode, first_token_from, step_end_positions, token_at_char
from prm.dataset import layout, step_ends
from prm.preflight import PreflightError



def aggregate(step_scores: list[float]) -> dict[str, float] | None:
    """min / prod / last / mean of step probabilities (reference §3.2), by e2h.rerank.aggregate_steps, the one
    definition reranking uses; no steps gives None (nothing to rank: reranking never chooses such a sample).

    >>> aggregate([0.5, 0.8])
    {'min': 0.5, 'prod': 0.4, 'last': 0.8, 'mean': 0.65}
    """
    if not step_scores:
        return None
    return {how: float(aggregate_steps([step_scores], how)[0]) for how in AGGREGATIONS}


def resolve_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def scoring_text(prompt: str, completion: str) -> str:
    """The exact text a completion is scored as: prompt + its steps re-joined by prm.dataset.layout, a trailing
    separator after a last reasoning step included. Count tokens on this, not on prompt + completion: the two
    differ by the separator's tokens (a context-length check on the raw text lets 513 tokens through as 510)."""
    return layout(prompt, split_solution(completion), is_prompt=True).text


class PRMScorer:
    """A loaded PRM that scores solutions. ``path``: a PRM folder (our format or the released one)."""

    def __init__(self, path: str | os.PathLike, device: str = "auto", dtype=None, batch_tokens: int = 16384,
                 share_prompt: bool = False):
        import torch

        from prm.model import load_reward_model  # local: imports torch

        self.device = resolve_device(device)
        if dtype is None:
            dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        self.model, self.tokenizer, self.info = load_reward_model(path, device=self.device, dtype=dtype)
        self.batch_tokens = batch_tokens
        self.share_prompt = share_prompt
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        if self.info.get("step_separator", STEP_SEPARATOR) != STEP_SEPARATOR:
            raise ValueError(f"{path}: the PRM was trained with step separator "
                             f"{self.info['step_separator']!r}, e2h's format uses {STEP_SEPARATOR!r}")

    # --- encoding ----------------------------------------------------------------------------------------------

    def encode(self, prompt: str, steps: list[str]) -> tuple[list[int], list[int], int]:
        """(token ids, scored position per step, the first solution token) of prompt + format_solution(steps).
        The scored token must hold no character of the next step (a cheap per-text part of the preflight; the
        full check, that the token does not depend on what follows, runs at training time and in tests)."""
        if not steps:
            ids = encode(self.tokenizer, prompt).ids
            return ids, [], len(ids)
        lay = layout(prompt, steps, is_prompt=True)
        enc = encode(self.tokenizer, lay.text)
        try:
            positions = step_end_positions(enc.offsets, lay.step_spans)
        except TokenRuleError as err:
            raise PreflightError(f"scoring: {err}") from None
        for step, (pos, stop) in enumerate(zip(positions, step_ends(lay))):
            if enc.offsets[pos][1] > stop:
                raise PreflightError(f"scoring: step {step}'s scored token runs into the next step; this tokenizer "
                                     "merges across the step separator")
        return enc.ids, positions, first_token_from(enc.offsets, lay.step_spans[0][0])

    # --- forward passes ----------------------------------------------------------------------------------------

    def _chunks(self, order: list[int], lengths: list[int]) -> list[list[int]]:
        """Cut (length-sorted) rows into batches whose padded size stays under the token budget."""
        chunks, current, width = [], [], 0
        for i in order:
            new_width = max(width, lengths[i])
            if current and new_width * (len(current) + 1) > self.batch_tokens:
                chunks.append(current)
                current, new_width = [], lengths[i]
            current.append(i)
            width = new_width
        if current:
            chunks.append(current)
        return chunks

    def _forward_rows(self, rows: list[list[int]], starts: list[int], prefix_cache=None, prefix_len: int = 0):
        """Reward logits [n, width] for right-padded ``rows`` (continuing ``prefix_cache`` if given); ``starts``:
        each row's first solution token."""
        import torch

        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), prefix_len + width), dtype=torch.long)
        mask[:, :prefix_len] = 1
        for i, row in enumerate(rows):
            ids[i, :len(row)] = torch.tensor(row)
            mask[i, prefix_len:prefix_len + len(row)] = 1
        past = None
        position_ids = None
        if prefix_cache is not None:
            past = copy.deepcopy(prefix_cache)
            past.batch_repeat_interleave(len(rows))
            position_ids = (torch.arange(width) + prefix_len).unsqueeze(0).expand(len(rows), -1).to(self.device)
        logits, _ = self.model(ids.to(self.device), attention_mask=mask.to(self.device), position_ids=position_ids,
                               past_key_values=past, use_cache=past is not None,
                               solution_start=torch.tensor(starts, device=self.device))
        return logits.float().cpu()

    def score(self, prompt: str, completions: list[str]) -> list[list[float]]:
        """Per-step probabilities of each completion (answer step included, last); [] for a completion without
        steps. One forward pass per completion; the prompt's KV cache is shared when ``share_prompt``."""
        return self.score_steps(prompt, [split_solution(c) for c in completions])

    def score_steps(self, prompt: str, solutions: list[list[str]]) -> list[list[float]]:
        """Like :meth:`score` for solutions already split into steps (e.g. ProcessBench)."""
        import torch

        encoded = [self.encode(prompt, steps) for steps in solutions]
        results: list[list[float]] = [[] for _ in solutions]
        todo = [i for i, (_, bounds, _) in enumerate(encoded) if bounds]
        if not todo:
            return results
        prefix_len = 0
        if self.share_prompt and len(todo) > 1 and self.model.lm_head is None:  # the likelihood reads whole rows
            prefix_len = self._shared_prefix([encoded[i][0] for i in todo], min(min(encoded[i][1]) for i in todo))
        with torch.inference_mode():
            cache = None
            if prefix_len > 0:
                prefix = torch.tensor([encoded[todo[0]][0][:prefix_len]], device=self.device)
                _, cache = self.model(prefix, attention_mask=torch.ones_like(prefix), use_cache=True)
            rows = {i: encoded[i][0][prefix_len:] for i in todo}
            lengths = {i: len(r) for i, r in rows.items()}
            order = sorted(todo, key=lambda i: -lengths[i])
            for chunk in self._chunks(order, lengths):
                logits = self._forward_rows([rows[i] for i in chunk], [encoded[i][2] - prefix_len for i in chunk],
                                            cache, prefix_len)
                for row, i in enumerate(chunk):
                    positions = torch.tensor(encoded[i][1]) - prefix_len
                    results[i] = torch.sigmoid(logits[row, positions]).tolist()
        return results

    @staticmethod
    def _shared_prefix(id_lists: list[list[int]], first_boundary: int) -> int:
        """Longest common token prefix, kept short of every boundary and of every sequence's last token."""
        n = min(min(len(ids) for ids in id_lists) - 1, first_boundary)
        head = id_lists[0]
        for ids in id_lists[1:]:
            k = 0
            while k < n and ids[k] == head[k]:
                k += 1
            n = k
        return max(n, 0)

    def score_many(self, groups: list[tuple[str, list[str]]]) -> list[list[list[float]]]:
        return [self.score(prompt, completions) for prompt, completions in groups]

    def score_pairs(self, pairs: list[tuple[str, str]]) -> list[list[float]]:
        """Per-step probabilities for (prompt, completion) pairs of DIFFERENT prompts in shared forward passes
        (rows batched by length under the token budget, no prompt KV sharing). The service's dynamic batcher
        mixes many requests' pairs into one call; equal to ``score`` pair by pair.

        >>> scorer.score_pairs([(format_prompt("1+2?"), "3.\\n\\n# Answer\\n\\n3"), (format_prompt("2+2?"), "4")])
        [[0.71, 0.66], [0.52]]
        """
        return self.score_encoded([self.encode(prompt, split_solution(completion)) for prompt, completion in pairs])

    def score_encoded(self, encoded: list[tuple[list[int], list[int], int]]) -> list[list[float]]:
        """:meth:`score_pairs` for rows :meth:`encode` already made (the service encodes each solution once, for
        its context check and batch budget, and scores those very ids)."""
        import torch

        results: list[list[float]] = [[] for _ in encoded]
        todo = [i for i, (_, bounds, _) in enumerate(encoded) if bounds]
        lengths = {i: len(encoded[i][0]) for i in todo}
        with torch.inference_mode():
            for chunk in self._chunks(sorted(todo, key=lambda i: -lengths[i]), lengths):
                logits = self._forward_rows([encoded[i][0] for i in chunk], [encoded[i][2] for i in chunk])
                for row, i in enumerate(chunk):
                    results[i] = torch.sigmoid(logits[row, torch.tensor(encoded[i][1])]).tolist()
        return results

    # --- the baseline: one forward per step prefix (TRL docs) ------------------------------------------------

    def score_per_prefix(self, prompt: str, completion: str) -> list[float]:
        """Score each step by its own forward pass over prompt + steps[:k+1] (+ separator): O(steps) passes.
        Slow; kept as the reference our one-pass scores must equal (tests, bench/bench_prm_score.py)."""
        import torch

        steps = split_solution(completion)
        scores = []
        with torch.inference_mode():
            for k in range(len(steps)):
                text = prompt + format_solution(steps[:k + 1])
                end = len(text)
                if not is_answer_step(steps[k]):  # every reasoning step is followed by the separator, the last too
                    text += STEP_SEPARATOR
                enc = encode(self.tokenizer, text)
                ids, position = enc.ids, token_at_char(enc.offsets, end - 1)
                start = torch.tensor([first_token_from(enc.offsets, len(prompt))], device=self.device)
                logits, _ = self.model(torch.tensor([ids], device=self.device), solution_start=start)
                scores.append(float(torch.sigmoid(logits[0, position].float())))
        return scores


# --- sample files ----------------------------------------------------------------------------------------------


def group_by_prompt(samples: list[Sample]) -> list[tuple[str, list[int]]]:
    """(prompt, indices) in first-seen order: the unit that shares a prompt KV cache."""
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault(s.prompt, []).append(i)
    return list(groups.items())


def solution_aggregates(completion: str, step_scores: list[float], steps: str = "reasoning_and_answer") -> dict:
    """min / prod / last / mean of the step scores ``steps`` (score.steps) selects from a completion's scores."""
    return aggregate(select_steps(step_scores, ends_with_answer(split_solution(completion)), steps))


def score_samples(scorer: PRMScorer, samples: list[Sample], steps: str = "reasoning_and_answer") -> list[Sample]:
    """Copies of ``samples`` with step_scores (every step) and aggregates (of the steps ``steps`` selects)."""
    out = list(samples)
    for prompt, indices in group_by_prompt(samples):
        scores = scorer.score(prompt, [samples[i].completion for i in indices])
        for i, s in zip(indices, scores):
            out[i] = samples[i].model_copy(
                update={"step_scores": s, "aggregates": solution_aggregates(samples[i].completion, s, steps)})
    return out


def plan_units(samples_path: Path, shard_size: int) -> list[tuple[str, Path, int, int]]:
    """Work units (name, input file, first row, end row); a folder's shard files map one to one."""
    if samples_path.is_dir():
        files = sorted(samples_path.glob("shard-*.jsonl"))
        if not files:
            raise FileNotFoundError(f"no shard-*.jsonl files in {samples_path}")
        return [(f.stem, f, 0, -1) for f in files]
    if not samples_path.exists():
        raise FileNotFoundError(f"samples not found: {samples_path}")
    with open(samples_path, "rb") as handle:
        rows = sum(1 for line in handle if line.strip())
    return [(f"shard-{i // shard_size:05d}", samples_path, i, min(i + shard_size, rows))
            for i in range(0, rows, shard_size)]


def load_unit(path: Path, start: int, end: int) -> list[Sample]:
    rows = list(iter_records(path, Sample))
    return rows if end < 0 else rows[start:end]


def unit_fingerprint(model_path: str, path: Path, start: int, end: int, steps: str = "reasoning_and_answer") -> str:
    key = [model_identity(model_path), file_checksum(path), start, end]
    key = json.dumps(key if steps == "reasoning_and_answer" else key + [steps])  # default: earlier runs still match
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def score_file(model_path: str, samples_path: str | os.PathLike, output_dir: str | os.PathLike,
               shard_size: int = 256, device: str = "auto", batch_tokens: int = 16384, share_prompt: bool = False,
               num_actors: int = 1, cpus_per_actor: float = 1.0, steps: str = "reasoning_and_answer") -> dict:
    """Score every unit not already done; returns counts. Output: <output_dir>/shard-XXXXX.jsonl + manifest."""
    from tqdm.auto import tqdm

    output_dir = Path(output_dir)
    manifest = Manifest(output_dir / "manifest.json")
    units = plan_units(Path(samples_path), shard_size)
    todo = []
    for name, path, start, end in units:
        fingerprint = unit_fingerprint(model_path, path, start, end, steps)
        entry = manifest.entries.get(name, {})
        if manifest.is_done(name) and entry.get("fingerprint") == fingerprint:
            continue
        todo.append((name, path, start, end, fingerprint))
    scored_rows = 0
    if todo and num_actors > 1:
        scored_rows = _score_with_ray(model_path, todo, output_dir, manifest, device, batch_tokens, share_prompt,
                                      num_actors, cpus_per_actor, steps)
    elif todo:
        scorer = PRMScorer(model_path, device=device, batch_tokens=batch_tokens, share_prompt=share_prompt)
        for name, path, start, end, fingerprint in tqdm(todo, desc="score", unit="shard"):
            rows = score_samples(scorer, load_unit(path, start, end), steps)
            out = output_dir / f"{name}.jsonl"
            save_records(out, rows)
            manifest.mark_done(name, [out], fingerprint=fingerprint, rows=len(rows))
            scored_rows += len(rows)
    return {"units": len(units), "skipped": len(units) - len(todo), "scored_rows": scored_rows,
            "output_dir": str(output_dir)}


def _score_with_ray(model_path, todo, output_dir, manifest, device, batch_tokens, share_prompt, num_actors,
                    cpus_per_actor, steps="reasoning_and_answer") -> int:
    """One PRM per Ray actor; actors score units and write their files, the driver records the manifest."""
    ray = import_ray("score.num_actors > 1")
    from ray.util import ActorPool  # ray is an extra

    started = start_ray(num_cpus=max(2, math.ceil(num_actors * cpus_per_actor)), need="score.num_actors > 1")

    @ray.remote(num_cpus=cpus_per_actor)
    class ScoreActor:
        def __init__(self):
            self.scorer = PRMScorer(model_path, device=device, batch_tokens=batch_tokens, share_prompt=share_prompt)

        def run(self, name, path, start, end):
            rows = score_samples(self.scorer, load_unit(Path(path), start, end), steps)
            out = Path(output_dir) / f"{name}.jsonl"
            save_records(out, rows)
            return name, str(out), len(rows)

    try:
        pool = ActorPool([ScoreActor.remote() for _ in range(num_actors)])
        fingerprints = {name: fp for name, _, _, _, fp in todo}
        total = 0
        for name, out, rows in pool.map_unordered(lambda a, u: a.run.remote(u[0], str(u[1]), u[2], u[3]), todo):
            manifest.mark_done(name, [out], fingerprint=fingerprints[name], rows=rows)
            total += rows
        return total
    finally:
        if started:
            ray.shutdown()


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--model", help="PRM folder (default score.model or <run>/prm)")
    parser.add_argument("--samples", help="Sample JSONL or folder of shards (default score.samples or <run>/samples)")
    parser.add_argument("--output-dir", help="default score.output_dir or <run>/scored")


def run(args) -> int:
    cfg = config_from_args(args)
    s, paths = cfg.score, RunLayout(cfg)
    summary = score_file(
        model_path=args.model or str(paths.score_model),
        samples_path=args.samples or paths.score_samples,
        output_dir=args.output_dir or paths.scored,
        shard_size=s.shard_size, device=s.device, batch_tokens=s.batch_tokens, share_prompt=s.share_prompt,
        num_actors=s.num_actors, cpus_per_actor=s.cpus_per_actor, steps=s.steps,
    )
    print(" ".join(f"{k}={v}" for k, v in summary.items()))
    return 0
