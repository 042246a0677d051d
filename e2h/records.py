"""The records that flow between stages. One JSON object per line on disk; ``datasets`` loads them as is.

Examples (one line each)::

    Problem     {"id": "test/algebra/1.json", "problem": "What is $1+2$?", "answer": "3", "level": 1,
                 "subject": "Algebra", "solution": "We add.\\n\\n# Answer\\n\\n3", "source": "math500"}
    StepExample {"id": "prm800k-17-3", "problem_id": "train/algebra/5.json", "problem": "...",
                 "steps": ["First step.", "A wrong step.", "# Answer\\n\\n4"], "labels": [null, 0.0, null],
                 "level": 2, "source": "prm800k"}
    SFTExample  {"id": "...", "problem_id": "...", "prompt": "# Question\\n\\n...\\n\\n# Solution\\n\\n",
                 "completion": "Step one.\\n\\n# Answer\\n\\n3", "eos": true, "level": 1}
    Sample      {"problem_id": "...", "sample_index": 0, "prompt": "...", "completion": "...",
                 "gold_answer": "3", "level": 4, "subject": "Algebra", "model": "runs/demo/sft",
                 "sampling": {"temperature": 0.7, "top_k": 20, "max_tokens": 256}, "seed": 0,
                 "step_scores": [0.91, 0.42, 0.88], "pred_answer": "3", "correct": true}

StepExample carries a label per step: 1 = correct, 0 = wrong, a float in between for soft labels, null for
steps that are context only. PRM800K's pointwise examples (prefix -> one rated step) and whole-solution
examples (a label on every step) are both this one shape; an outcome (ORM) example labels only its answer step.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Iterator, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from e2h.jsonl import RecordError, read_jsonl, write_jsonl

EASY_LEVELS = (1, 2, 3)
HARD_LEVELS = (4, 5)


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(Record):
    id: str
    problem: str
    answer: str
    level: int | None = Field(default=None, ge=1, le=5)
    subject: str = ""
    solution: str | None = None
    source: str = ""


class StepExample(Record):
    id: str
    problem_id: str
    problem: str
    steps: list[str]
    labels: list[float | None]
    level: int | None = None
    source: str = ""

    @model_validator(mode="after")
    def _labels_match_steps(self):
        if len(self.labels) != len(self.steps):
            raise ValueError(f"labels has {len(self.labels)} entries but steps has {len(self.steps)}")
        if not any(label is not None for label in self.labels):
            raise ValueError("no step carries a label")
        for label in self.labels:
            if label is not None and not 0.0 <= label <= 1.0:
                raise ValueError(f"label {label} is outside [0, 1]")
        return self


class SFTExample(Record):
    id: str
    problem_id: str
    prompt: str
    completion: str
    eos: bool = True
    level: int | None = None


class Sample(Record):
    problem_id: str
    sample_index: int = Field(ge=0)
    prompt: str
    completion: str
    gold_answer: str | None = None
    level: int | None = None
    subject: str = ""
    model: str = ""
    sampling: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = None
    finish_reason: str | None = None
    num_tokens: int | None = None
    # filled by later stages
    step_scores: list[float] | None = None
    aggregates: dict[str, float] | None = None
    pred_answer: str | None = None
    correct: bool | None = None
    grade_reason: str | None = None


R = TypeVar("R", bound=Record)


def _describe(err: ValidationError) -> str:
    first = err.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "record"
    return f"field '{field}': {first['msg']}"


def iter_records(path: str | os.PathLike, cls: type[R]) -> Iterator[R]:
    """Parse each line of a JSONL file as ``cls``; errors name the file, the line and the field."""
    for line_no, obj in read_jsonl(path):
        try:
            yield cls.model_validate(obj)
        except ValidationError as err:
            raise RecordError(path, line_no, _describe(err)) from None


def jsonl_files(path: str | os.PathLike, what: str = "samples") -> list[Path]:
    """A JSONL file, or every ``*.jsonl`` of a folder (e.g. sample shards) in name order; ``what`` names the input
    in the error when there is none."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.jsonl"))
        if not files:
            raise FileNotFoundError(f"{what}: no *.jsonl files in {path}")
        return files
    if not path.is_file():
        raise FileNotFoundError(f"{what}: file not found: {path}")
    return [path]


def load_records(path: str | os.PathLike, cls: type[R]) -> list[R]:
    return list(iter_records(path, cls))


def save_records(path: str | os.PathLike, records: Iterable[Record]) -> int:
    """Write records atomically (temp file, then rename); returns the count."""
    return write_jsonl(path, (r.model_dump(mode="json", exclude_none=False) for r in records))
