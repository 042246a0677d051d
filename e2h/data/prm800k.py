"""PRM800K step labels -> pointwise PRM examples and SFT examples (reference §1.2-1.4).

Two layouts are read, detected per row:

* the **original** phase1/phase2 schema, one labelled solution per line::

    {"question": {"problem": "Three pencils ..."}, "label": {"steps": [
        {"completions": [{"text": "Let's call ...", "rating": 1, "flagged": false}],
         "human_completion": null, "chosen_completion": 0}, ...], "finish_reason": "solution"}, ...}

* the **stepwise** ("stepwise-critic") conversion, one rated candidate step per line::

    {"instruction": "Three pencils ...", "responses": ["Let's call ..."], "next_response": "So ...",
     "answer": "29", "rating": 1, "is_human_response": false, "is_preferred_response": true, "is_solution": true}

Both become :class:`RatedStep` (problem, chosen prefix, one rated candidate), from which
:func:`prm_examples` builds StepExamples (label 1 if rating >= 0 else 0) and :func:`sft_examples` builds
SFTExamples (rating strictly +1; eos only on answer steps).

The walk over an original record (reference ``prepare_prm800k_rm.py``):
  1. a step whose ``completions`` is null ends the walk;
  2. every completion with a non-null rating is one candidate; an empty non-answer text ends that step's
     candidates (the reference's ``break``);
  3. the prefix grows by the chosen completion, else the human completion, else the only completion, else the walk
     ends.
"# Answer" in any spacing becomes the answer step ``"# Answer\\n\\n{answer}"``. A candidate that holds several
paragraphs ("step\\n\\n# Answer\\n\\n29") is several steps, all carrying its label, as the reference trains every
token of the candidate on its rating.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Iterable, Iterator

from e2h.data.rows import field, iter_rows, normalize_problem_text
from e2h.jsonl import RecordError
from e2h.records import SFTExample, StepExample
from e2h.text_format import (ANSWER_HEADER, ANSWER_MARKER, STEP_SEPARATOR, format_prompt, is_answer_step,
                             normalize_answer_marker, split_solution)

_NONE = type(None)


@dataclass(frozen=True)
class RatedStep:
    """One rated candidate step after a chosen prefix. ``steps`` is the candidate split into format steps."""

    problem: str
    prefix: tuple[str, ...]
    steps: tuple[str, ...]
    rating: int  # -1, 0 or +1
    where: str
    line: int
    tag: str  # position inside the source row, for ids: "s3c1" = step 3, completion 1

    @property
    def is_answer(self) -> bool:
        return any(is_answer_step(step) for step in self.steps)

    @property
    def problem_key(self) -> str:
        return normalize_problem_text(self.problem)


def to_steps(text: str) -> list[str]:
    """Candidate text -> format steps: answer marker normalised, paragraphs split, blanks dropped."""
    if ANSWER_HEADER in text:
        text = normalize_answer_marker(text)
    return split_solution(text)


# ----------------------------------------------------------------------------------------------- original layout
def _rating(value, where: str, line: int, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value not in (-1, 0, 1):
        raise RecordError(where, line, f"field '{name}' should be -1, 0, 1 or null, got {value!r}")
    return value


def walk_original(row: dict, where: str, line: int) -> Iterator[RatedStep]:
    """The reference walk over one original-schema record; validates as it goes."""
    question = field(row, "question", dict, where, line)
    problem = field(question, "problem", str, where, line, name="question.problem")
    label = field(row, "label", dict, where, line)
    steps = field(label, "steps", list, where, line, name="label.steps")
    prefix: list[str] = []
    for s, step in enumerate(steps):
        at = f"label.steps[{s}]"
        if not isinstance(step, dict):
            raise RecordError(where, line, f"field '{at}' should be an object, got {type(step).__name__}")
        completions = field(step, "completions", (list, _NONE), where, line, name=f"{at}.completions")
        if completions is None:
            return
        texts: list[str] = []
        for c, completion in enumerate(completions):
            cat = f"{at}.completions[{c}]"
            if not isinstance(completion, dict):
                raise RecordError(where, line, f"field '{cat}' should be an object")
            texts.append(field(completion, "text", str, where, line, name=f"{cat}.text"))
        ratings = [_rating(field(completion, "rating", (int, _NONE), where, line,
                                 name=f"{at}.completions[{c}].rating"), where, line,
                           f"{at}.completions[{c}].rating")
                   for c, completion in enumerate(completions)]
        chosen = field(step, "chosen_completion", (int, _NONE), where, line, name=f"{at}.chosen_completion",
                       optional=True)
        if chosen is not None and not 0 <= chosen < len(completions):
            raise RecordError(where, line, f"field '{at}.chosen_completion' is {chosen} but the step has "
                                           f"{len(completions)} completions")
        human = field(step, "human_completion", (dict, str, _NONE), where, line, name=f"{at}.human_completion",
                      optional=True)
        if isinstance(human, dict):
            human = field(human, "text", str, where, line, name=f"{at}.human_completion.text")

        for c, (text, rating) in enumerate(zip(texts, ratings)):
            if rating is None:
                continue
            candidate = to_steps(text)
            if not candidate:  # empty non-answer text: the reference stops this step's candidates
                break
            yield RatedStep(problem, tuple(prefix), tuple(candidate), rating, where, line, f"s{s}c{c}")

        if chosen is not None:
            next_text = texts[chosen]
        elif human is not None:
            next_text = human
        elif len(texts) == 1:
            next_text = texts[0]
        else:
            return
        next_steps = to_steps(next_text)
        if not next_steps:  # an empty chosen step cannot extend a step list
            return
        prefix.extend(next_steps)


# ----------------------------------------------------------------------------------------------- stepwise layout
def rated_step_from_stepwise(row: dict, where: str, line: int) -> RatedStep | None:
    """One stepwise-critic row; None for unrated rows (human-written steps)."""
    problem = field(row, "instruction", str, where, line)
    responses = field(row, "responses", list, where, line)
    for i, response in enumerate(responses):
        if not isinstance(response, str):
            raise RecordError(where, line, f"field 'responses[{i}]' should be a string")
    text = field(row, "next_response", str, where, line)
    answer = field(row, "answer", (str, _NONE), where, line, optional=True)
    rating = _rating(field(row, "rating", (int, _NONE), where, line), where, line, "rating")
    if rating is None:
        return None
    if answer is not None:  # the conversion moved "# Answer\n\n{answer}" out of the step text
        text = text + ANSWER_MARKER + answer
    candidate = to_steps(text)
    if not candidate:
        return None
    prefix = [step for response in responses for step in to_steps(response)]
    return RatedStep(problem, tuple(prefix), tuple(candidate), rating, where, line, "r")


# ----------------------------------------------------------------------------------------------- both
def iter_rated_steps(source: str) -> Iterator[RatedStep]:
    """Every rated candidate step of a PRM800K file or hub dataset, in file order."""
    for where, line, row in iter_rows(source):
        if "instruction" in row and "next_response" in row:
            rated = rated_step_from_stepwise(row, where, line)
            if rated is not None:
                yield rated
        elif "question" in row or "label" in row:
            yield from walk_original(row, where, line)
        else:
            raise RecordError(where, line, "missing field 'question' (original PRM800K) or 'instruction' "
                                           "(stepwise layout)")


def _example_id(rated: RatedStep) -> str:
    stem = os.path.basename(rated.where).split(".")[0] or rated.where
    return f"prm800k/{stem}/{rated.line}/{rated.tag}"


def prm_examples(rated_steps: Iterable[RatedStep], problem_ids: dict[str, str] | None = None,
                 levels: dict[str, int | None] | None = None) -> list[StepExample]:
    """Pointwise PRM examples: context steps labelled None, the candidate's steps labelled 1 (rating >= 0) or 0.

    The first example for a (problem, prefix, candidate) wins; later exact duplicates are dropped (reference:
    quality-control copies and identical openings across labellers). ``problem_ids`` / ``levels`` map a
    normalised problem text to the MATH id and level.

    >>> prm_examples([RatedStep("1+1?", ("We add.",), ("# Answer\\n\\n2",), 0, "f.jsonl", 1, "s1c0")])[0].labels
    [None, 1.0]
    """
    problem_ids, levels = problem_ids or {}, levels or {}
    seen: set[tuple] = set()
    out = []
    for rated in rated_steps:
        key = (rated.problem_key, rated.prefix, rated.steps)
        if key in seen:
            continue
        seen.add(key)
        label = 1.0 if rated.rating >= 0 else 0.0
        out.append(StepExample(
            id=_example_id(rated), problem_id=problem_ids.get(rated.problem_key, _fallback_id(rated.problem_key)),
            problem=rated.problem, steps=[*rated.prefix, *rated.steps],
            labels=[None] * len(rated.prefix) + [label] * len(rated.steps),
            level=levels.get(rated.problem_key), source="prm800k"))
    return out


def sft_examples(rated_steps: Iterable[RatedStep], problem_ids: dict[str, str] | None = None,
                 levels: dict[str, int | None] | None = None) -> list[SFTExample]:
    """SFT examples from +1 candidates only: prompt = question + chosen prefix, completion = the candidate (with
    its separator after a reasoning step, EOS after the answer step).

    >>> ex = sft_examples([RatedStep("1+1?", ("We add.",), ("# Answer\\n\\n2",), 1, "f.jsonl", 1, "s1c0")])[0]
    >>> ex.prompt, ex.completion, ex.eos
    ('# Question\\n\\n1+1?\\n\\n# Solution\\n\\nWe add.\\n\\n', '# Answer\\n\\n2', True)
    """
    problem_ids, levels = problem_ids or {}, levels or {}
    seen: set[tuple] = set()
    out = []
    for rated in rated_steps:
        if rated.rating != 1:
            continue
        key = (rated.problem_key, rated.prefix, rated.steps)
        if key in seen:
            continue
        seen.add(key)
        prompt = format_prompt(rated.problem) + "".join(step + STEP_SEPARATOR for step in rated.prefix)
        out.append(SFTExample(
            id=_example_id(rated), problem_id=problem_ids.get(rated.problem_key, _fallback_id(rated.problem_key)),
            prompt=prompt, completion=_sft_target(rated), eos=rated.is_answer,
            level=levels.get(rated.problem_key)))
    return out


def _sft_target(rated: RatedStep) -> str:
    """The candidate, and after a reasoning step its separator: the model must learn to end a step with a blank
    line (the reference gets there by starting each target with "\\n\\n"); the answer step ends with EOS."""
    text = STEP_SEPARATOR.join(rated.steps)
    return text if rated.is_answer else text + STEP_SEPARATOR


def _fallback_id(problem_key: str) -> str:
    """A stable id for a PRM800K problem that is not in the MATH files ("additional" problems)."""
    return "prm800k/" + hashlib.sha1(problem_key.encode("utf-8")).hexdigest()[:12]
