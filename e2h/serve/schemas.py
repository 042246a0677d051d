"""Versioned (``/v1/``) request and response bodies of the reranking service, with the examples shown at /docs.

A request carries one problem and N candidate solutions written in the project's text format
(``e2h.text_format``: steps separated by a blank line, last step ``# Answer\\n\\n<answer>``)::

    POST /v1/score  {"problem": "What is 1+2?",
                     "solutions": ["We add 1 and 2.\\n\\nThat gives 3.\\n\\n# Answer\\n\\n3"]}
    -> {"api_version": "v1", "model": "prm", "solutions": [{"index": 0,
           "steps": ["We add 1 and 2.", "That gives 3.", "# Answer\\n\\n3"],
           "step_scores": [0.91, 0.88, 0.95], "answer": "3", "answer_key": "3",
           "aggregates": {"min": 0.88, "prod": 0.76, "last": 0.95, "mean": 0.913}}]}

Limits that depend on the config (number of solutions, characters) are checked by the app, not here, so that
they answer 413 with the limit's name; the shape checks here answer 422 naming the field.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

API_VERSION = "v1"
Aggregation = Literal["min", "prod", "last", "mean"]
Method = Literal["best_of_n", "weighted_vote", "majority"]
# The paper's choices (App. L): min for best-of-N, prod for weighted voting.
DEFAULT_AGGREGATION: dict[str, str] = {"best_of_n": "min", "weighted_vote": "prod", "majority": "prod"}

_EXAMPLE_SOLUTIONS = [
    "We add 1 and 2.\n\nThat gives 3.\n\n# Answer\n\n3",
    "1 plus 2 is 4.\n\n# Answer\n\n4",
    "Counting up from 1 by 2 we reach 3.\n\n# Answer\n\n3",
]


def _unicode_text(text: str) -> str:
    """Refuse a lone UTF-16 surrogate (JSON ``"\\ud800"`` decodes to one): it is not Unicode text, and the
    tokenizer would fail on it with a 500. Pydantic refuses one in a plain ``str`` field, but not in the items
    of a ``list[str]``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        code = ord(text[err.start])
        raise ValueError(f"lone surrogate U+{code:04X} at character {err.start}: not valid Unicode text") from None
    return text


# A str item whose validation error names its position (``solutions.2: ...``).
UnicodeText = Annotated[str, AfterValidator(_unicode_text)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScoreRequest(_Body):
    """One problem and its candidate solutions."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"problem": "What is 1+2?", "solutions": _EXAMPLE_SOLUTIONS}]},
    )
    problem: str = Field(min_length=1, description="problem statement (the prompt is built by e2h.text_format)")
    solutions: list[UnicodeText] = Field(min_length=1,
                                         description="candidate solutions, steps separated by blank lines")

    @field_validator("problem")
    @classmethod
    def _problem_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("problem is blank")
        return value

    @field_validator("solutions")
    @classmethod
    def _solutions_not_blank(cls, value: list[str]) -> list[str]:
        blank = [i for i, text in enumerate(value) if not text.strip()]
        if blank:
            raise ValueError(f"solutions {blank} are blank")
        return value


class RerankRequest(ScoreRequest):
    """Score, then choose one answer. ``gold`` (optional) adds grader verdicts to the response."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "problem": "What is 1+2?",
                    "solutions": _EXAMPLE_SOLUTIONS,
                    "method": "weighted_vote",
                    "aggregation": "prod",
                    "gold": "3",
                }
            ]
        },
    )
    method: Method = "weighted_vote"
    aggregation: Aggregation | None = Field(
        default=None, description="step-score aggregation; default min for best_of_n, prod for weighted_vote"
    )
    gold: str | None = Field(default=None, max_length=1000, description="reference answer to grade against")


class Aggregates(_Body):
    min: float
    prod: float
    last: float
    mean: float


class ScoredSolution(_Body):
    index: int = Field(description="position in the request's solutions")
    steps: list[str]
    step_scores: list[float] = Field(description="P(step is correct) per step; the answer step is last")
    aggregates: Aggregates
    answer: str | None = Field(description="extracted final answer (None when the solution has none)")
    answer_key: str | None = Field(description="the answer's grader-normalised form; equal keys vote together")


class ScoreResponse(_Body):
    api_version: Literal["v1"] = API_VERSION
    model: str
    solutions: list[ScoredSolution]


class Verdict(_Body):
    correct: bool
    reason: str
    pred_answer: str | None = None


class RankedSolution(_Body):
    rank: int = Field(description="0 = best by the chosen aggregation")
    index: int
    score: float = Field(description="the solution's aggregated step score")
    answer: str | None
    step_scores: list[float]
    verdict: Verdict | None = None


class AnswerVotes(_Body):
    answer: str = Field(description="a representative spelling of the answer group (its first solution's)")
    key: str = Field(description="the group's grader-normalised form")
    count: int = Field(description="solutions giving this answer (grader-equivalent spellings grouped)")
    mass: float = Field(description="vote mass: count for majority, sum of solution scores for weighted_vote")
    solutions: list[int]


class RerankResponse(_Body):
    api_version: Literal["v1"] = API_VERSION
    model: str
    method: Method
    aggregation: Aggregation
    chosen_index: int | None = Field(description="the solution whose answer is chosen (best scored in its group)")
    chosen_answer: str | None
    ranked: list[RankedSolution]
    answers: list[AnswerVotes] = Field(description="answer groups, highest vote mass first")
    chosen_correct: bool | None = Field(default=None, description="grader verdict of chosen_answer (needs gold)")


class ErrorResponse(_Body):
    error: str = Field(description="machine-readable kind: limit_exceeded, validation_error, not_ready, ...")
    message: str = Field(description="what was wrong, naming the field or the limit")
    limit: str | None = None
