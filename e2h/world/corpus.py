"""The world's unlabeled pretraining corpus: the analogue of the web math a base model like Llemma reads.

Problems of all five levels, each with ONE solution written by an imperfect author, as plain text with no label
of any kind (no level, no verdict, no marker of which solutions are wrong)::

    # Question\\n\\nCompute 3 + 4 * 5 - 6.\\n\\n# Solution\\n\\n4 * 5 = 20\\n\\n3 + 20 = 23\\n\\n23 - 6 = 17\\n\\n# Answer\\n\\n17

An author is, by the shares in ``world.corpus_slip_share`` and ``world.misconceptions``: careful (the reference
solution), careless (one random slip, e2h.world.flaws), or holds a misconception (e2h.world.misconceptions,
applied wherever it applies; where it does not, the author gets the problem right). Corpus problems come from
their own seeded stream and never include a validation or test problem (texts compared with whitespace
collapsed, e2h.data.rows.normalize_problem_text, as the generator compares them); training
problems may appear, as MATH's training problems appear on the web.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from e2h.config import ConfigError, WorldSection
from e2h.data.rows import normalize_problem_text
from e2h.records import Problem, SFTExample
from e2h.text_format import format_prompt, format_solution, split_solution
from e2h.world import world_scale, world_subjects
from e2h.world.flaws import flawed_solutions
from e2h.world.generator import LEVELS, SLUGS, TooFewProblems, make_problem, unique_problems
from e2h.world.misconceptions import MISCONCEPTIONS, misconceived_steps


@dataclass(frozen=True)
class CorpusDocument:
    problem: Problem
    text: str  # prompt + solution, exactly as a model reads it
    author: str  # "careful", "slip", or a misconception's name: for the corpus statistics only, never trained on


def check_author_shares(cfg: WorldSection) -> dict[str, float]:
    unknown = sorted(set(cfg.misconceptions) - set(MISCONCEPTIONS))
    if unknown:
        raise ConfigError(f"config key 'world.misconceptions': unknown rule(s) {unknown}; choose from "
                          f"{list(MISCONCEPTIONS)}")
    shares = {"slip": cfg.corpus_slip_share, **cfg.misconceptions}
    if any(share < 0 for share in shares.values()) or sum(shares.values()) > 1:
        raise ConfigError(f"config keys 'world.corpus_slip_share' + 'world.misconceptions': shares must be >= 0 "
                          f"and sum to at most 1, got {shares}")
    return {"careful": 1 - sum(shares.values()), **shares}


def corpus_problems(cfg: WorldSection, held_out: list[Problem]) -> list[Problem]:
    """``cfg.corpus_per_level`` problems per level from the corpus's own stream, none of ``held_out``."""
    subjects, scale = world_subjects(cfg), world_scale(cfg)
    excluded = {normalize_problem_text(p.problem) for p in held_out}
    problems = []
    for level in LEVELS:
        seen = set(excluded)  # unique_problems adds what it draws; the held-out texts are never drawn
        drawn = unique_problems(f"corpus-{cfg.seed}", level, subjects, cfg.corpus_per_level, seen, scale=scale,
                                max_misses=5000)
        try:
            for index, (subject, problem) in enumerate(drawn):
                problems.append(make_problem(problem, f"world/corpus/{SLUGS[subject]}/L{level}-{index:05d}",
                                             level, subject, cfg.step_format))
        except TooFewProblems:
            pass  # small numbers leave level 1 with fewer distinct problems than asked: the corpus keeps them all
    return problems


def author_solution(problem: Problem, author: str, rng: random.Random) -> list[str]:
    """The steps (answer step last) an author of this kind writes for ``problem``."""
    if author == "slip":
        flaws = flawed_solutions(problem, rng, 1)
        if flaws:
            return flaws[0].steps
    elif author != "careful":
        steps = misconceived_steps(problem, author)
        if steps is not None:
            return steps
    return split_solution(problem.solution or "")


def build_corpus(cfg: WorldSection, held_out: list[Problem]) -> list[CorpusDocument]:
    """The corpus: one solution per corpus problem, its author drawn by the configured shares (seeded per
    problem, so the corpus of one problem never depends on the others)."""
    shares = check_author_shares(cfg)
    authors, weights = list(shares), list(shares.values())
    documents = []
    for problem in corpus_problems(cfg, held_out):
        rng = random.Random(f"e2h-world-corpus/{cfg.seed}/{problem.id}")
        author = rng.choices(authors, weights=weights)[0]
        steps = author_solution(problem, author, rng)
        text = format_prompt(problem.problem) + format_solution(steps)
        documents.append(CorpusDocument(problem, text, author))
    return documents


def corpus_examples(documents: list[CorpusDocument]) -> list[SFTExample]:
    """Causal-LM rows for `e2h pretrain`: an empty prompt, so the loss covers every token of the text."""
    return [SFTExample(id=f"{d.problem.id}/text", problem_id=d.problem.id, prompt="", completion=d.text, eos=True)
            for d in documents]


def corpus_statistics(documents: list[CorpusDocument]) -> dict:
    """Per level: documents, and how many carry a wrong answer by each author kind (what the corpus teaches)."""
    stats: dict[str, dict[str, int]] = {}
    for level in LEVELS:
        docs = [d for d in documents if d.problem.level == level]
        wrong = Counter(d.author for d in docs if not d.text.endswith(f"# Answer\n\n{d.problem.answer}"))
        stats[f"L{level}"] = {"documents": len(docs), **{f"wrong_{k}": v for k, v in sorted(wrong.items())}}
    return stats
