"""A batch of rollouts' rewards with the models behind them: the grader's verdicts, the frozen PRM's step logits
and policy/rewards.py's pure pieces, put together once so that PPO and GRPO score with the same function::

    scorer = RolloutScorer(PRMStepScorer("runs/demo/prm", "cpu", settings, batch_size=16), settings, 5.0)
    parts = scorer.score(prompts, texts, offsets, lengths, answers, levels)   # one RolloutReward per rollout
    parts[0].total        # answer reward + format penalty + process rewards: one number (GRPO's reward)
    parts[0].dense()      # the same, placed on the response tokens (PPO's per-token score)

``texts`` and ``offsets`` are the decoded responses and each response token's character span
(policy.rollouts.response_offsets), ``lengths`` their token counts: the process rewards land on the policy's own
separator tokens.
"""

from __future__ import annotations

from typing import Sequence

from e2h.grading import grade_many
from e2h.tokenization import encode, first_token_from
from policy.rewards import (
    RewardSettings, RolloutReward, char_to_token_spans, predicted_answer, rollout_reward, separator_char_spans,
    step_logits)


def grade_predictions(predictions: list[str | None], golds: list[str], timeout_s: float,
                      grading: dict | None = None) -> list[bool]:
    """The grader's verdicts; ``grading`` is the run's ``config.grading.options()`` (mode, numeric convention)."""
    todo = [i for i, pred in enumerate(predictions) if pred is not None]
    verdicts = (grade_many([(predictions[i], golds[i]) for i in todo], timeout_s=timeout_s, **(grading or {}))
                if todo else [])
    correct = [False] * len(predictions)
    for i, verdict in zip(todo, verdicts):
        correct[i] = bool(verdict.correct)
    return correct


class PRMStepScorer:
    """The frozen PRM reading prompt + raw response in one forward pass; the reference's PPO step logit is the min
    over the step's last token and its separator tokens (policy.rewards.step_logits)."""

    def __init__(self, path: str, device, settings: RewardSettings, batch_size: int):
        import torch

        from prm.model import load_reward_model  # local: imports torch

        self.model, self.tokenizer, _ = load_reward_model(path, device=device, dtype=torch.float32)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.device, self.settings, self.batch_size = device, settings, batch_size

    def step_logits(self, prompts: list[str], responses: list[str]) -> list[list[float]]:
        import torch

        encoded = [encode(self.tokenizer, prompt + response) for prompt, response in zip(prompts, responses)]
        out = []
        for start in range(0, len(encoded), self.batch_size):
            chunk = encoded[start:start + self.batch_size]
            width = max(len(enc) for enc in chunk)
            ids = torch.full((len(chunk), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, enc in enumerate(chunk):
                seq = enc.ids
                ids[row, :len(seq)] = torch.tensor(seq)
                mask[row, :len(seq)] = 1
            firsts = [first_token_from(enc.offsets, len(prompts[start + row])) for row, enc in enumerate(chunk)]
            with torch.no_grad():
                logits, _ = self.model(ids.to(self.device), attention_mask=mask.to(self.device),
                                       solution_start=torch.tensor(firsts, device=self.device))
            for row, enc in enumerate(chunk):
                seq, offsets = enc.ids, enc.offsets
                prompt_chars = len(prompts[start + row])
                response = responses[start + row]
                first = firsts[row]
                spans = [(lo + prompt_chars, hi + prompt_chars) for lo, hi in separator_char_spans(response)]
                token_spans = [(lo - first, hi - first) for lo, hi in char_to_token_spans(offsets, spans)]
                out.append(step_logits(logits[row, first:len(seq)].tolist(), token_spans,
                                       short_step_tokens=self.settings.short_step_tokens,
                                       short_step_logit=self.settings.short_step_logit))
        return out


class RolloutScorer:
    """Grades, PRM-scores and shapes a batch of responses (see the module docstring)."""

    def __init__(self, prm: PRMStepScorer, settings: RewardSettings, grader_timeout_s: float,
                 grading: dict | None = None):
        self.prm, self.settings, self.grader_timeout_s = prm, settings, grader_timeout_s
        self.grading = grading  # config.grading.options(): which grader decides the answer reward

    def score(self, prompts: list[str], texts: list[str], offsets: list[list[tuple[int, int]]],
              lengths: list[int], answers: list[str], levels: Sequence[int | None]) -> list[RolloutReward]:
        correct = grade_predictions([predicted_answer(t) for t in texts], answers, self.grader_timeout_s,
                                    self.grading)
        logits = self.prm.step_logits(prompts, texts)
        return [rollout_reward(text, correct=ok, level=level, step_logit_values=step_values,
                               separator_tokens=char_to_token_spans(offs, separator_char_spans(text)),
                               length=length, settings=self.settings)
                for text, ok, level, step_values, offs, length in zip(texts, correct, levels, logits, offsets,
                                                                      lengths)]
