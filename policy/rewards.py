"""PPO rewards with process supervision, exactly as the reference defines them (reference §4.1, ``math_rl_utils``).

One rollout's reward, piece by piece (each a small pure function, unit-tested on hand-computed examples)::

    response = "Add 3 and 4.\\n\\n3 + 4 = 7.\\n\\n# Answer\\n\\n7"     (gold "7", level 2)

    final_answer_reward  grade("7", "7") -> 1.0   (0.25 if the level's answers may not be used: easy-to-hard)
    format_penalty       "7" is in the last step but not as $7$ / \\boxed{7}      -> 0.75
    terminal_reward      1.0 + 0.75 * (-1)                                     -> 0.25
    step probabilities   PRM: sigmoid(min logit over [last step token, separator tokens]) per step -> [0.9, 0.3]
    shape_step_rewards   min-drop vs upper bound 0.5: [0, 0.3 - 0.5] + 0.25 / 2 -> [0.125, -0.075]
    place_step_rewards   each step reward split evenly over its separator's tokens
    token_rewards        scale * placed + terminal on the last response token, - 0.01 * max(logp - logp_ref, 0)

Step boundaries: every ``"\\n\\n"`` of the response except the last one (in a well-formed response the last one is
inside the answer marker ``"\\n\\n# Answer\\n\\n"``; the reference drops the last separator whatever it is, and so do
we). Token positions come from tokenizer offsets, not from a hard-coded newline id, so any tokenizer works: the
reference's "two newline tokens" become "the tokens of the separator", and its "separator ends within 4 tokens of
the prompt" (a first step of at most one token with Llama's two-token separator) becomes "the first step has fewer
than ``short_step_tokens`` (2) tokens".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from e2h.grading.extract import completion_answer
from e2h.text_format import ANSWER_MARKER, STEP_SEPARATOR

Scheme = Literal["min", "prod"]


# --- the terminal (final-answer) reward ------------------------------------------------------------------------

def predicted_answer(response: str, eos_token: str | None = None) -> str | None:
    """The answer the reward grades: e2h.grading.completion_answer, the one rule eval and the service use too
    (the reference takes everything after the first marker; e2h stops at the answer line's end, as the PRM does).

    >>> predicted_answer("Add.\\n\\n# Answer\\n\\n7</s>", "</s>")
    '7'
    """
    return completion_answer(response, eos_token)


def answer_is_usable(level: int | None, answer_levels: Sequence[int] | None) -> bool:
    """Whether the final answer of a problem at ``level`` may be used as a reward (easy-to-hard: easy levels only).

    ``answer_levels=None`` means every answer is usable (the reference's ``outcome_reward``).
    """
    return answer_levels is None or (level is not None and level in answer_levels)


def final_answer_reward(correct: bool, *, usable: bool, unavailable_reward: float = 0.25) -> float:
    """1.0 if the grader accepted the prediction, else 0.0; ``unavailable_reward`` when the problem's answer may not
    be used (a hard problem in the easy-to-hard setting: the reference's "Unavailable" answer, a 0.25 constant)."""
    if not usable:
        return unavailable_reward
    return 1.0 if correct else 0.0


def format_penalty(response: str, eos_token: str | None = None) -> float:
    """The reference's stop-token penalty for a missing or unclear answer line, in [0, 1]:

    ===============================================================  =======
    answer marker missing, or nothing after it                         1.0
    ``\\boxed{answer}`` appears in the solution before the marker     0.0
    ``$answer$`` or ``$answer.$`` appears in the last step             0.5
    the answer string appears in the last step                        0.75
    otherwise                                                          1.0
    ===============================================================  =======

    As in the reference, ``answer`` is the raw text after the first marker (up to EOS), not stripped.
    """
    if ANSWER_MARKER not in response:
        return 1.0
    body, rest = response.split(ANSWER_MARKER, 1)
    body = body.strip()
    if eos_token:
        rest = rest.split(eos_token)[0]
    if rest.strip() == "":
        return 1.0
    last_step = body.split(STEP_SEPARATOR)[-1]
    if "\\boxed{" + rest + "}" in body:
        return 0.0
    if f"${rest}$" in last_step or f"${rest}.$" in last_step:
        return 0.5
    if rest in last_step:
        return 0.75
    return 1.0


def terminal_reward(answer_reward: float, penalty: float, *, penalty_value: float = -1.0,
                    relative: bool = True) -> float:
    """Answer reward plus ``penalty * penalty_value`` (relative, the README's setting); otherwise any positive
    penalty replaces the reward by ``penalty_value``."""
    if relative:
        return answer_reward + penalty * penalty_value
    return penalty_value if penalty > 0 else answer_reward


# --- where the steps are ---------------------------------------------------------------------------------------

def separator_char_spans(response: str) -> list[tuple[int, int]]:
    """Character spans of the step separators that end scored steps: every "\\n\\n" except the last one.

    >>> separator_char_spans("A.\\n\\nB.\\n\\n# Answer\\n\\n7")
    [(2, 4), (6, 8)]
    """
    spans, start = [], response.find(STEP_SEPARATOR)
    while start >= 0:
        spans.append((start, start + len(STEP_SEPARATOR)))
        start = response.find(STEP_SEPARATOR, start + len(STEP_SEPARATOR))
    return spans[:-1]


def char_to_token_spans(offsets: Sequence[tuple[int, int]], char_spans: Sequence[tuple[int, int]],
                        ) -> list[tuple[int, int]]:
    """Token index spans ``[first, last + 1)`` of the tokens overlapping each character span.

    ``offsets`` are per-token ``(start, end)`` character offsets into the same text (a fast tokenizer's
    ``offset_mapping``). Raises if a span touches no token (the offsets do not cover the text).
    """
    starts = np.array([s for s, _ in offsets], dtype=np.int64)
    ends = np.array([e for _, e in offsets], dtype=np.int64)
    out = []
    for lo, hi in char_spans:
        hit = np.nonzero((starts < hi) & (ends > lo))[0]
        if hit.size == 0:
            raise ValueError(f"no token overlaps characters [{lo}, {hi}); offsets do not cover the text")
        out.append((int(hit[0]), int(hit[-1]) + 1))
    return out


def step_logits(token_logits: Sequence[float], separator_tokens: Sequence[tuple[int, int]], *,
                short_step_tokens: int = 2, short_step_logit: float = -4.44) -> list[float]:
    """One PRM logit per step: the min over the step's last token and its separator's tokens.

    ``token_logits[t]`` is the PRM's logit at response token ``t``; ``separator_tokens`` are the token spans of
    the scored separators (response coordinates). A first step shorter than ``short_step_tokens`` tokens (empty
    or near-empty) gets ``short_step_logit`` (the reference's -4.44, p = 0.012).
    """
    logits = []
    for lo, hi in separator_tokens:
        if lo < short_step_tokens:
            logits.append(short_step_logit)
        else:
            logits.append(float(min(token_logits[t] for t in range(lo - 1, hi))))
    return logits


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


# --- shaping ---------------------------------------------------------------------------------------------------

def shape_step_rewards(step_probs: Sequence[float], *, scheme: Scheme = "min", upper_bound: float = 0.5,
                       bonus: float = 0.25) -> list[float]:
    """Per-step process rewards from PRM step probabilities.

    ``min``: a running minimum starts at ``upper_bound``; a step whose probability falls below it gets the drop
    (negative), others 0; the rewards sum to ``min(upper_bound, min p) - upper_bound``. ``prod``: the same with the
    running product of probabilities. Then ``bonus / K`` is added to each of the K steps.

    >>> [round(r, 4) for r in shape_step_rewards([0.9, 0.3, 0.4, 0.1])]   # drops at steps 2 and 4; bonus 1/16
    [0.0625, -0.1375, 0.0625, -0.1375]
    """
    if scheme not in ("min", "prod"):
        raise ValueError(f"unknown process reward scheme {scheme!r} (min or prod)")
    running_min, product, rewards = upper_bound, 1.0, []
    for p in step_probs:
        product *= p
        score = p if scheme == "min" else product
        if score < running_min:
            rewards.append(score - running_min)
            running_min = score
        else:
            rewards.append(0.0)
    if not rewards:
        return []
    per_step = bonus / len(rewards)
    return [r + per_step for r in rewards]


def place_step_rewards(step_rewards: Sequence[float], separator_tokens: Sequence[tuple[int, int]],
                       length: int) -> np.ndarray:
    """A dense ``[length]`` array with each step reward split evenly over its separator's tokens."""
    if len(step_rewards) != len(separator_tokens):
        raise ValueError(f"{len(step_rewards)} step rewards for {len(separator_tokens)} separators")
    dense = np.zeros(length, dtype=np.float64)
    for reward, (lo, hi) in zip(step_rewards, separator_tokens):
        if not 0 <= lo < hi <= length:
            raise ValueError(f"separator tokens [{lo}, {hi}) outside a response of {length} tokens")
        dense[lo:hi] += reward / (hi - lo)
    return dense


# --- one rollout, all parts ------------------------------------------------------------------------------------

@dataclass
class RolloutReward:
    """Every part of one rollout's reward (the parts are logged to TensorBoard)."""

    answer: float  # grader reward (or the unavailable constant)
    penalty: float  # format penalty in [0, 1]
    terminal: float  # answer + penalty * penalty_value
    step_probs: list[float]
    step_rewards: list[float]  # shaped, bonus included, before scale
    process: np.ndarray  # [length] placed step rewards, scale applied
    correct: bool  # grader verdict against the gold answer (accuracy)

    @property
    def process_sum(self) -> float:
        return float(self.process.sum())

    @property
    def total(self) -> float:
        """The whole score as one number (GRPO's sequence reward): terminal plus every process reward."""
        return self.terminal + self.process_sum

    def dense(self) -> np.ndarray:
        """Process rewards plus the terminal reward on the last response token (score part, before KL)."""
        out = self.process.copy()
        if len(out):
            out[-1] += self.terminal
        return out


@dataclass(frozen=True)
class RewardSettings:
    """The reward's constants (``e2h.config.PPOSection`` holds them, with the paper's defaults)."""

    answer_levels: tuple[int, ...] | None = (1, 2, 3)  # None: every final answer is usable
    unavailable_answer_reward: float = 0.25
    format_penalty_value: float = -1.0
    relative_format_penalty: bool = True
    process_reward: Literal["min", "prod", "none"] = "min"
    upper_bound: float = 0.5
    step_bonus: float = 0.25
    scale: float = 1.0
    short_step_tokens: int = 2
    short_step_logit: float = -4.44

    @classmethod
    def from_config(cls, ppo, train_levels: Sequence[int]) -> "RewardSettings":
        return cls(
            answer_levels=tuple(train_levels) if ppo.easy_only_answer_reward else None,
            unavailable_answer_reward=ppo.unavailable_answer_reward,
            format_penalty_value=ppo.format_penalty_value,
            relative_format_penalty=ppo.relative_format_penalty,
            process_reward=ppo.process_reward,
            upper_bound=ppo.process_reward_upper_bound,
            step_bonus=ppo.process_step_bonus,
            scale=ppo.process_reward_scale,
            short_step_tokens=ppo.prm_short_step_tokens,
            short_step_logit=ppo.prm_short_step_logit,
        )


def rollout_reward(
    response: str,
    *,
    correct: bool,
    level: int | None,
    step_logit_values: Sequence[float],
    separator_tokens: Sequence[tuple[int, int]],
    length: int,
    settings: RewardSettings,
) -> RolloutReward:
    """All reward parts of one rollout of ``length`` response tokens.

    ``correct`` is the grader's verdict on :func:`predicted_answer` against the gold answer (graded in batches by
    the caller; used for accuracy always, and as the reward only where the answer is usable).

    ``step_logit_values`` are the PRM's step logits (:func:`step_logits`) and ``separator_tokens`` the scored
    separators' token spans in the *policy's* response tokens (where the rewards go); both come from
    :func:`separator_char_spans`, so they have one entry per step.
    """
    usable = answer_is_usable(level, settings.answer_levels)
    answer = final_answer_reward(correct, usable=usable, unavailable_reward=settings.unavailable_answer_reward)
    penalty = format_penalty(response)
    terminal = terminal_reward(answer, penalty, penalty_value=settings.format_penalty_value,
                               relative=settings.relative_format_penalty)
    probs = [sigmoid(x) for x in step_logit_values]
    if settings.process_reward == "none":
        shaped: list[float] = []
        process = np.zeros(length)
    else:
        shaped = shape_step_rewards(probs, scheme=settings.process_reward, upper_bound=settings.upper_bound,
                                    bonus=settings.step_bonus)
        process = place_step_rewards(shaped, separator_tokens, length) * settings.scale
    return RolloutReward(answer=answer, penalty=penalty, terminal=terminal, step_probs=probs, step_rewards=shaped,
                         process=process, correct=correct)
