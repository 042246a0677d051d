"""One answer rule: the same completion gives the same answer to `e2h eval`, PPO's / GRPO's reward, the service
and the PRM's answer step (e2h.grading.completion_answer)."""

from __future__ import annotations

import pytest

from e2h.commands.eval_command import grade_samples
from e2h.records import Sample
from e2h.serve.app import _extract_answers
from e2h.text_format import is_answer_step, split_solution
from policy.rewards import predicted_answer

CASES = [  # (completion, the answer every consumer must read)
    ("2 + 3 = 5\n\n# Answer\n\n5", "5"),
    ("2 + 3 = 5\n\n# Answer\n\n5\n\nI hope this helps.", "5"),  # text after the answer line is not the answer
    ("a\n\n# Answer\n\n1\n\n# Answer\n\n2", "1"),  # the first answer line: the solution ends there
    ("# Answer\n\n\\frac{1}{2}", "\\frac{1}{2}"),
    ("We get $\\boxed{12}$ in the end.", "12"),  # no answer line: the grader's extraction
    ("First \\boxed{3}, then\n\n# Answer\n\n4", "4"),  # the answer line wins over an earlier box
    ("So the answer is 12.", "12"),
    ("We worked hard.", None),
    ("", None),
]


def eval_answers(texts: list[str]) -> list[str | None]:
    samples = [Sample(problem_id=f"p{i}", sample_index=0, prompt="q", completion=t, gold_answer="5")
               for i, t in enumerate(texts)]
    return grade_samples(samples, timeout_s=5.0, workers=1, regrade=True).answers


def answer_step_text(text: str) -> str | None:
    steps = split_solution(text)
    return steps[-1].split("\n\n", 1)[1].strip() or None if steps and is_answer_step(steps[-1]) else None


def test_every_consumer_reads_the_same_answer():
    texts = [text for text, _ in CASES]
    expected = [answer for _, answer in CASES]
    assert eval_answers(texts) == expected
    assert [predicted_answer(t) for t in texts] == expected
    assert _extract_answers(texts)[0] == expected


@pytest.mark.parametrize("text,answer", [(t, a) for t, a in CASES if "# Answer" in t])
def test_the_prms_answer_step_holds_the_same_answer(text, answer):
    assert answer_step_text(text) == answer


def test_the_reward_stops_at_eos():
    assert predicted_answer("x\n\n# Answer\n\n7</s>\n\n# Answer\n\n8", "</s>") == "7"
