"""Level sets, the validation split, and keeping evaluation problems out of every training set (reference §1.1).

* Easy = levels 1-3, hard = 4-5 (``e2h.records.EASY_LEVELS`` / ``HARD_LEVELS``); any level set can be chosen.
* Validation: ``size`` problems drawn from the 12k split's **test-origin** rows, stratified so each
  (subject, level) count equals MATH500's (scaled by largest remainders when ``size`` != 500). As the reference
  ``prepare_ppo_train_valid.py``: shuffle all 12k rows with ``random.Random(seed)``, walk them in that order and
  take a test-origin row while its cell still has room. With ``long_prompt_tokens`` (``data.long_prompt_tokens``;
  the reference: 496 Llemma-34B tokens) a row whose prompt is longer is never taken: it stays in train, and the
  walk goes on to the next row for that cell. Off by default (it needs the reference's tokenizer).
* :class:`HeldOut` holds MATH500 + validation by problem text (whitespace-normalised) and by id; every training
  set (PRM, SFT, prompts) is filtered through it. The reference does not remove validation problems from its
  PRM/SFT data; we do.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from e2h.data.math import is_test_origin
from e2h.data.rows import normalize_problem_text
from e2h.records import EASY_LEVELS, HARD_LEVELS, Problem
from e2h.text_format import PROMPT_TEMPLATE

LEVEL_SETS = {"easy": EASY_LEVELS, "hard": HARD_LEVELS, "all": (1, 2, 3, 4, 5)}


def select_levels(problems: Iterable[Problem], levels: Sequence[int]) -> list[Problem]:
    """Problems whose level is in ``levels`` (problems without a level are never selected)."""
    wanted = set(levels)
    return [p for p in problems if p.level is not None and p.level in wanted]


def stratum(problem: Problem) -> tuple[str, int | None]:
    return problem.subject, problem.level


def validation_quotas(reference: Sequence[Problem], size: int) -> Counter:
    """How many validation problems each (subject, level) cell gets: MATH500's counts, scaled to ``size``.

    >>> validation_quotas([Problem(id="a", problem="p", answer="1", subject="Algebra", level=1)] * 3, 2)
    Counter({('Algebra', 1): 2})
    """
    counts = Counter(stratum(p) for p in reference)
    total = sum(counts.values())
    if size < 0 or (size > 0 and total == 0):
        raise ValueError(f"cannot draw {size} validation problems from a reference of {total}")
    if size == total:
        return counts
    exact = {cell: n * size / total for cell, n in counts.items()}
    quotas = Counter({cell: int(share) for cell, share in exact.items()})
    leftover = size - sum(quotas.values())
    # largest remainders first; ties broken by the cell itself so the result never depends on dict order
    for cell in sorted(exact, key=lambda c: (-(exact[c] - int(exact[c])), str(c)))[:leftover]:
        quotas[cell] += 1
    return +quotas


def split_validation(train: Sequence[Problem], reference: Sequence[Problem], size: int,
                     seed: int = 1234, long_prompt_tokens: int | None = None,
                     prompt_tokens: Callable[[str], int] | None = None) -> tuple[list[Problem], list[Problem]]:
    """(train without validation, validation). Raises if some cell lacks test-origin problems.

    ``prompt_tokens`` counts a prompt's tokens; with ``long_prompt_tokens`` set, a problem whose prompt
    (:func:`reference_prompt`) counts more is kept out of validation, as the reference does.
    """
    if long_prompt_tokens is not None and prompt_tokens is None:
        raise ValueError("long_prompt_tokens needs prompt_tokens, a function counting a prompt's tokens")
    quotas = validation_quotas(reference, size)
    in_reference = HeldOut.of(reference)  # a 12k row repeating a MATH500 problem is never validation
    order = list(train)
    random.Random(seed).shuffle(order)
    chosen: set[str] = set()
    validation = []
    for problem in order:
        cell = stratum(problem)
        if quotas[cell] > 0 and is_test_origin(problem) and problem not in in_reference and not (
                long_prompt_tokens is not None and prompt_tokens(reference_prompt(problem)) > long_prompt_tokens):
            quotas[cell] -= 1
            validation.append(problem)
            chosen.add(problem.id)
    short = {cell: n for cell, n in quotas.items() if n > 0}
    if short:
        raise ValueError(f"not enough test-origin problems for the validation split; missing {short}")
    return [p for p in train if p.id not in chosen], validation


def reference_prompt(problem: Problem) -> str:
    """The prompt whose length the reference measures: its template around the problem text as it stands."""
    return PROMPT_TEMPLATE.format(problem=problem.problem)


@dataclass
class HeldOut:
    """Problems no training set may contain, matched by normalised text and by id."""

    texts: set[str] = field(default_factory=set)
    ids: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, *groups: Iterable[Problem]) -> "HeldOut":
        held = cls()
        for group in groups:
            for problem in group:
                held.texts.add(normalize_problem_text(problem.problem))
                held.ids.add(problem.id)
        return held

    def __contains__(self, problem: Problem) -> bool:
        return problem.id in self.ids or normalize_problem_text(problem.problem) in self.texts

    def has_text(self, text: str) -> bool:
        return normalize_problem_text(text) in self.texts

    def filter(self, problems: Iterable[Problem]) -> list[Problem]:
        return [p for p in problems if p not in self]
