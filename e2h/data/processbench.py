"""ProcessBench (Zheng et al. 2024): find the earliest wrong step of a solution.

One row (``processbench_math.jsonl``; hub ``Qwen/ProcessBench:math`` has the same fields)::

    {"id": "math-0", "generator": "Meta-Llama-3-8B-Instruct", "problem": "Determine the remainder of 194 (mod 11).",
     "steps": ["... 194 = 11 × 17 + 9.", "... is: \\boxed{9}."], "final_answer_correct": false, "label": 0}

``label`` is the index of the earliest erroneous step, or -1 when every step is correct. As a StepExample the
steps before the error are labelled 1, the erroneous step 0, and the steps after it None (ProcessBench does not
judge them).
"""

from __future__ import annotations

from pydantic import Field

from e2h.data.rows import field, iter_rows
from e2h.jsonl import RecordError
from e2h.records import Record, StepExample


class ProcessBenchItem(Record):
    id: str
    generator: str = ""
    problem: str
    steps: list[str]
    final_answer_correct: bool
    label: int = Field(ge=-1)
    split: str = ""  # gsm8k, math, olympiadbench, omnimath

    def to_step_example(self) -> StepExample:
        error = self.label if self.label >= 0 else len(self.steps)
        labels = [1.0 if i < error else 0.0 if i == error else None for i in range(len(self.steps))]
        return StepExample(id=f"processbench/{self.id}", problem_id=self.id, problem=self.problem,
                           steps=self.steps, labels=labels, source=f"processbench-{self.split}".rstrip("-"))


def _split_name(source: str) -> str:
    """processbench_math.jsonl -> "math"; Qwen/ProcessBench:gsm8k -> "gsm8k"."""
    name = source.rsplit(":", 1)[-1] if ":" in source else source.rsplit("/", 1)[-1].split(".")[0]
    return name.removeprefix("processbench_").removeprefix("processbench-")


def load_processbench(source: str) -> list[ProcessBenchItem]:
    split = _split_name(source)
    items = []
    for where, line, row in iter_rows(source):
        item_id = field(row, "id", str, where, line)
        generator = field(row, "generator", str, where, line, optional=True, default="")
        problem = field(row, "problem", str, where, line)
        steps = field(row, "steps", list, where, line)
        for i, step in enumerate(steps):
            if not isinstance(step, str):
                raise RecordError(where, line, f"field 'steps[{i}]' should be a string, got {type(step).__name__}")
        if not steps:
            raise RecordError(where, line, "field 'steps' is empty")
        correct = field(row, "final_answer_correct", bool, where, line)
        label = field(row, "label", int, where, line)
        if not -1 <= label < len(steps):
            raise RecordError(where, line, f"field 'label' is {label} but the solution has {len(steps)} steps "
                                           "(expected -1 or a step index)")
        items.append(ProcessBenchItem(id=item_id, generator=generator, problem=problem, steps=steps,
                                      final_answer_correct=correct, label=label, split=split))
    return items
