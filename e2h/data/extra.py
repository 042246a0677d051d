"""The paper's MetaMath setting: MetaMathQA SFT data and Math-Shepherd PRM data (reference §1.6), from local files or
hub ids (e2h.data.rows source syntax), filtered to MATH problems of the train levels and written in e2h's format.

MetaMathQA row -> SFTExample::

    {"query": "What is $2+3$?", "response": "We add.\\n2+3=5.\\nThe answer is: 5",
     "type": "MATH_AnsAug", "original_question": "What is $2+3$?"}
    -> prompt "# Question\\n\\nWhat is $2+3$?\\n\\n# Solution\\n\\n",
       completion "We add.\\n\\n2+3=5.\\n\\n# Answer\\n\\n5"

Math-Shepherd row -> StepExample (labels 1.0 for "+", 0.0 for "-")::

    {"input": "What is $2+3$? Step 1: We add. ки\\nStep 2: The answer is: 5 ки",
     "label": "What is $2+3$? Step 1: We add. +\\nStep 2: The answer is: 5 +", "task": "MATH"}
    -> steps ["We add.", "# Answer\\n\\n5"], labels [1.0, 1.0]

Levels: MetaMathQA's ``original_question`` and Math-Shepherd's question are matched to the MATH training split by
whitespace-collapsed text (e2h.data.rows.normalize_problem_text) to find the level. Math-Shepherd questions are
often MetaMath rephrasings, so ``match="prefix"`` adds the reference's fuzzy rule (spaces removed: a 5-49
character prefix shared with a train-level problem and with no other one). Held-out problems (MATH500,
validation) never pass.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable

from e2h.data.rows import field, iter_rows, normalize_problem_text
from e2h.data.splits import HeldOut
from e2h.jsonl import RecordError
from e2h.records import Problem, SFTExample, StepExample
from e2h.text_format import answer_step, format_prompt, format_solution

STEP_TAG = "ки"  # Math-Shepherd's step tag; the label copy has "+" or "-" in its place
ANSWER_RE = re.compile(r"The answer is:?\s*")
_STEP_PREFIX = re.compile(r"^\s*Step \d+:\s*")
_FIRST_STEP = re.compile(r"\s*Step 1:\s*")
_HONORIFICS = ("Mr.", "Mrs.", "Ms.", "Dr.", "St.", "Prof.")
PREFIX_LENGTHS = range(5, 50)


# ------------------------------------------------------------------------------------------------ levels
@dataclass
class Match:
    status: str  # "kept", "held_out", "other_level", "unmatched"
    problem: Problem | None = None
    level: int | None = None


class LevelIndex:
    """Finds a question's MATH training problem (and level) by text; decides whether it is at a train level."""

    def __init__(self, train: list[Problem], held: HeldOut, train_levels: Iterable[int], prefix: bool = False):
        self.held, self.wanted, self.prefix = held, set(train_levels), prefix
        self.by_text: dict[str, list[Problem]] = {}
        for problem in train:
            self.by_text.setdefault(normalize_problem_text(problem.problem), []).append(problem)
        self.prefixes: dict[str, set[str]] = {}  # spaces-removed prefix -> classes ("wanted", "other")
        self.whole: dict[str, str] = {}
        if prefix:
            for problem in train:
                cls = "wanted" if problem.level in self.wanted and problem not in held else "other"
                key = _nospace(problem.problem)
                self.whole[key] = cls if self.whole.get(key, cls) == cls else "other"
                for k in PREFIX_LENGTHS:
                    if len(key) >= k:
                        self.prefixes.setdefault(key[:k], set()).add(cls)

    def match(self, text: str) -> Match:
        if self.held.has_text(text):
            return Match("held_out")
        found = self.by_text.get(normalize_problem_text(text))
        if found:
            levels = {p.level for p in found}
            if None in levels or not levels <= self.wanted or any(p in self.held for p in found):
                return Match("other_level")
            return Match("kept", found[0], max(levels))
        if self.prefix:
            key = _nospace(text)
            if key in self.whole:
                return Match("kept") if self.whole[key] == "wanted" else Match("other_level")
            for k in PREFIX_LENGTHS:
                if len(key) >= k and self.prefixes.get(key[:k]) == {"wanted"}:
                    return Match("kept")
        return Match("unmatched")


def _nospace(text: str) -> str:
    return "".join(text.split())


# ------------------------------------------------------------------------------------------------ MetaMathQA
def _split_sentences(line: str) -> list[str]:
    """Split a prose line after ". " before a capital letter, outside $...$, never after an honorific."""
    parts, start = [], 0
    for m in re.finditer(r"\.\s+(?=[A-Z])", line):
        head = line[start:m.start() + 1]
        if line[:m.start()].count("$") % 2 or head.rstrip().endswith(_HONORIFICS):
            continue
        parts.append(head.strip())
        start = m.end()
    parts.append(line[start:].strip())
    return [p for p in parts if p]


def metamath_steps(response: str) -> tuple[list[str], str] | None:
    """(reasoning steps, answer) of a MetaMathQA response ending "The answer is: X"; None without that line."""
    found = list(ANSWER_RE.finditer(response))
    if not found:
        return None
    last = found[-1]
    answer = response[last.end():].strip()
    if not answer:
        return None
    body = response[:last.start()]
    steps = [s for line in body.split("\n") if line.strip() for s in _split_sentences(line.strip())]
    return steps, answer


def metamath_sft_examples(source: str, index: LevelIndex, include_gsm: bool = False,
                          skipped: Counter | None = None) -> list[SFTExample]:
    """SFTExamples from MetaMathQA rows: MATH-type rows whose original question is a train-level problem (plus every
    GSM-type row when ``include_gsm``, as the reference). ``skipped`` counts rows by outcome."""
    skipped = Counter() if skipped is None else skipped
    examples = []
    for where, line, row in iter_rows(source):
        query = field(row, "query", str, where, line)
        response = field(row, "response", str, where, line)
        kind = field(row, "type", str, where, line)
        original = field(row, "original_question", str, where, line)
        if kind.startswith("GSM"):
            if not include_gsm:
                skipped["gsm"] += 1
                continue
            match = Match("kept")
        elif kind.startswith("MATH"):
            match = index.match(original)
        else:
            raise RecordError(where, line, f"field 'type' is {kind!r}: expected MATH_* or GSM_*")
        if match.status != "kept":
            skipped[match.status] += 1
            continue
        parsed = metamath_steps(response)
        if parsed is None:
            skipped["no_answer"] += 1
            continue
        steps, answer = parsed
        problem_id = match.problem.id if match.problem else f"metamath/{kind}/{line}"
        examples.append(SFTExample(id=f"metamath/{line}", problem_id=problem_id, prompt=format_prompt(query),
                                   completion=format_solution(steps, answer), eos=True, level=match.level))
        skipped["kept"] += 1
    return examples


# ------------------------------------------------------------------------------------------------ Math-Shepherd
def shepherd_steps(text: str, labelled: str, where: str, line: int) -> tuple[str, list[str], list[float]]:
    """(question, steps, labels) of one Math-Shepherd row; the label copy must match the input tag for tag."""
    tags = [m.start() for m in re.finditer(STEP_TAG, text)]
    if not tags:
        raise RecordError(where, line, f"field 'input' has no step tag '{STEP_TAG}'")
    if len(labelled) != len(text) - (len(STEP_TAG) - 1) * len(tags):
        raise RecordError(where, line, "field 'label' does not match field 'input' (lengths differ)")
    labels = []
    for i, pos in enumerate(tags):
        mark = labelled[pos - (len(STEP_TAG) - 1) * i]
        if mark not in "+-":
            raise RecordError(where, line, f"field 'label': step {i + 1} is marked {mark!r}, expected '+' or '-'")
        labels.append(1.0 if mark == "+" else 0.0)
    first = _FIRST_STEP.search(text)
    if first is None or first.start() >= tags[0]:
        raise RecordError(where, line, "field 'input' has no 'Step 1:' before its first step tag")
    question = text[:first.start()].strip()
    pieces = text[first.start():].split(STEP_TAG)[:len(tags)]  # a trailing piece with no tag is dropped
    steps, step_labels = [], []
    for piece, label in zip(pieces, labels):
        body = re.sub(r"\n\s*\n+", "\n", _STEP_PREFIX.sub("", piece).strip())
        found = list(ANSWER_RE.finditer(body))
        if found and body[found[-1].end():].strip():
            head = body[:found[-1].start()].strip()
            if head:
                steps.append(head)
                step_labels.append(label)
            steps.append(answer_step(body[found[-1].end():]))
            step_labels.append(label)
        elif body:
            steps.append(body)
            step_labels.append(label)
    return question, steps, step_labels


def shepherd_step_examples(source: str, index: LevelIndex, skipped: Counter | None = None) -> list[StepExample]:
    """StepExamples from Math-Shepherd rows of task MATH whose question is a train-level problem (``index``)."""
    skipped = Counter() if skipped is None else skipped
    examples = []
    for where, line, row in iter_rows(source):
        text = field(row, "input", str, where, line)
        labelled = field(row, "label", str, where, line)
        task = field(row, "task", str, where, line, optional=True, default="MATH")
        if task != "MATH":
            skipped["gsm8k" if task == "GSM8K" else "other_task"] += 1
            continue
        question, steps, labels = shepherd_steps(text, labelled, where, line)
        if not steps:
            skipped["no_steps"] += 1
            continue
        match = index.match(question)
        if match.status != "kept":
            skipped[match.status] += 1
            continue
        problem_id = match.problem.id if match.problem else f"math_shepherd/{line}"
        examples.append(StepExample(id=f"math_shepherd/{line}", problem_id=problem_id, problem=question,
                                    steps=steps, labels=labels, level=match.level, source="math_shepherd"))
        skipped["kept"] += 1
    return examples
