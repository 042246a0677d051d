"""PPO reward pieces on hand-computed examples (reference §4.1): format penalty (every row of the table),
easy-only answer reward, terminal reward, min-drop and product shaping with the upper bound and the step bonus,
PRM step logits, placement on separator tokens, whitening, GAE and the clipped losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from policy.advantages import gae, masked_whiten
from policy.ppo_losses import policy_loss, value_loss
from policy.rewards import (
    RewardSettings,
    answer_is_usable,
    char_to_token_spans,
    final_answer_reward,
    format_penalty,
    place_step_rewards,
    predicted_answer,
    rollout_reward,
    separator_char_spans,
    shape_step_rewards,
    sigmoid,
    step_logits,
    terminal_reward,
)
from policy.rollouts import response_offsets

# --- format penalty: each row of the reference table -----------------------------------------------------------

FORMAT_CASES = [
    ("no answer marker", "We add 3 and 4.\n\nThe sum is 7.", 1.0),
    ("empty answer", "We add 3 and 4.\n\nThe sum is 7.\n\n# Answer\n\n", 1.0),
    ("blank answer", "We add 3 and 4.\n\nThe sum is 7.\n\n# Answer\n\n  ", 1.0),
    ("boxed anywhere in the body", "So \\boxed{7} it is.\n\nWe are done.\n\n# Answer\n\n7", 0.0),
    ("boxed beats math mode", "The sum is $7$ = \\boxed{7}.\n\n# Answer\n\n7", 0.0),
    ("$answer$ in the last step", "We add 3 and 4.\n\nThe sum is $7$.\n\n# Answer\n\n7", 0.5),
    ("$answer.$ in the last step", "We add 3 and 4.\n\nThe sum is $7.$\n\n# Answer\n\n7", 0.5),
    ("answer string in the last step", "We add 3 and 4.\n\nThe sum is 7.\n\n# Answer\n\n7", 0.75),
    ("answer only in an earlier step", "The sum is 7.\n\nWe are done.\n\n# Answer\n\n7", 1.0),
    ("$answer$ only in an earlier step", "The sum is $7$.\n\nWe are done.\n\n# Answer\n\n7", 1.0),
    # the reference compares the raw (unstripped) answer text: a trailing space defeats the last-step match
    ("unstripped answer", "We add.\n\nThe sum is 7.\n\n# Answer\n\n7 ", 1.0),
]


@pytest.mark.parametrize("response, expected", [c[1:] for c in FORMAT_CASES], ids=[c[0] for c in FORMAT_CASES])
def test_format_penalty_table(response, expected):
    assert format_penalty(response) == expected


def test_format_penalty_and_prediction_stop_at_eos():
    response = "We add.\n\nThe sum is $7$.\n\n# Answer\n\n7</s>"
    assert format_penalty(response, eos_token="</s>") == 0.5
    assert format_penalty(response) == 1.0  # without EOS handling the answer is "7</s>"
    assert predicted_answer(response, "</s>") == "7"
    assert predicted_answer("We add.\n\nThe sum is 7.") is None
    assert predicted_answer("A.\n\n# Answer\n\n 12 \n") == "12"


# --- final-answer reward -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("level, answer_levels, usable", [
    (1, (1, 2, 3), True), (3, (1, 2, 3), True), (4, (1, 2, 3), False), (5, (1, 2, 3), False),
    (None, (1, 2, 3), False), (5, None, True), (None, None, True),
])
def test_answer_is_usable_only_on_train_levels(level, answer_levels, usable):
    assert answer_is_usable(level, answer_levels) is usable


@pytest.mark.parametrize("correct, usable, expected", [
    (True, True, 1.0), (False, True, 0.0), (True, False, 0.25), (False, False, 0.25),
])
def test_final_answer_reward(correct, usable, expected):
    assert final_answer_reward(correct, usable=usable, unavailable_reward=0.25) == expected


@pytest.mark.parametrize("answer, penalty, relative, expected", [
    (1.0, 0.75, True, 0.25), (0.25, 0.0, True, 0.25), (0.0, 1.0, True, -1.0), (1.0, 0.5, True, 0.5),
    (1.0, 0.5, False, -1.0), (1.0, 0.0, False, 1.0), (0.25, 1.0, False, -1.0),
])
def test_terminal_reward(answer, penalty, relative, expected):
    assert terminal_reward(answer, penalty, penalty_value=-1.0, relative=relative) == pytest.approx(expected)


# --- process shaping ----------------------------------------------------------------------------------------------

SHAPING_CASES = [
    # (probabilities, scheme, upper bound, expected rewards incl. bonus 0.25 / K)
    ("min: drops at steps 2 and 4", [0.9, 0.3, 0.4, 0.1], "min", 0.5, [0.0625, -0.1375, 0.0625, -0.1375]),
    ("min: all above the bound", [0.8, 0.6], "min", 0.5, [0.125, 0.125]),
    ("min: first step below the bound", [0.2, 0.9, 0.2], "min", 0.5, [-0.3 + 0.25 / 3, 0.25 / 3, 0.25 / 3]),
    ("min: bound 1.0 penalises everything", [0.6, 0.55], "min", 1.0, [-0.4 + 0.125, -0.05 + 0.125]),
    ("prod: running product 0.9 .72 .36 .324", [0.9, 0.8, 0.5, 0.9], "prod", 0.5, [0.0625, 0.0625, -0.0775, 0.0265]),
    ("one step", [0.1], "min", 0.5, [-0.4 + 0.25]),
    ("no steps", [], "min", 0.5, []),
]


@pytest.mark.parametrize("probs, scheme, bound, expected", [c[1:] for c in SHAPING_CASES],
                         ids=[c[0] for c in SHAPING_CASES])
def test_shape_step_rewards(probs, scheme, bound, expected):
    assert shape_step_rewards(probs, scheme=scheme, upper_bound=bound, bonus=0.25) == pytest.approx(expected)


def test_min_shaping_sums_to_min_drop_plus_bonus():
    rng = np.random.default_rng(0)
    for _ in range(50):
        probs = rng.uniform(0, 1, size=rng.integers(1, 9)).tolist()
        total = sum(shape_step_rewards(probs, scheme="min", upper_bound=0.5, bonus=0.25))
        assert total == pytest.approx(min(0.5, min(probs)) - 0.5 + 0.25)


def test_unknown_scheme_is_an_error():
    with pytest.raises(ValueError, match="scheme"):
        shape_step_rewards([0.5], scheme="mean")


# --- where the steps are and where the rewards go -------------------------------------------------------------------

@pytest.mark.parametrize("response, spans", [
    ("A.\n\nB.\n\n# Answer\n\n7", [(2, 4), (6, 8)]),  # the separator inside the answer marker is not a step
    ("A.\n\nB.\n\nC", [(2, 4)]),  # no answer: the last separator is still dropped (as the reference does)
    ("A.\n\n# Answer\n\n7", [(2, 4)]),
    ("# Answer\n\n7", []),
    ("Just text", []),
])
def test_separator_char_spans(response, spans):
    assert separator_char_spans(response) == spans


@pytest.mark.parametrize("offsets, char_spans, expected", [
    ([(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)], [(2, 4)], [(2, 4)]),  # one token per newline
    ([(0, 2), (2, 4), (4, 6)], [(2, 4)], [(1, 2)]),  # "\n\n" is one token
    ([(0, 3), (3, 6)], [(2, 4)], [(0, 2)]),  # tokens straddling the separator
])
def test_char_to_token_spans(offsets, char_spans, expected):
    assert char_to_token_spans(offsets, char_spans) == expected


def test_char_to_token_spans_rejects_uncovered_text():
    with pytest.raises(ValueError, match="no token"):
        char_to_token_spans([(0, 2)], [(5, 7)])


def test_step_logits_min_over_last_token_and_separator():
    logits = [-1.0, 2.0, 3.0, 0.5, 4.0, 5.0, -2.0, 6.0, 7.0]
    # step 1 = tokens 0-1, separator 2-3; step 2 = tokens 4-5, separator 6
    assert step_logits(logits, [(2, 4), (6, 7)]) == [0.5, -2.0]
    # a first step of one token (or none) gets the reference's -4.44
    assert step_logits(logits, [(1, 3), (6, 7)]) == [-4.44, -2.0]
    assert step_logits(logits, [(0, 2)], short_step_logit=-9.0) == [-9.0]


def test_place_step_rewards_splits_over_separator_tokens():
    dense = place_step_rewards([0.2, -0.4], [(2, 4), (6, 7)], length=9)
    np.testing.assert_allclose(dense, [0, 0, 0.1, 0.1, 0, 0, -0.4, 0, 0])
    with pytest.raises(ValueError):
        place_step_rewards([0.2], [(2, 4), (6, 7)], length=9)
    with pytest.raises(ValueError, match="outside"):
        place_step_rewards([0.2], [(8, 10)], length=9)


def test_real_tokenizer_offsets_put_rewards_on_newline_tokens(tiny_policy):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_policy["path"])
    response = "We add 3 and 4.\n\n3 + 4 = 7.\n\n# Answer\n\n7"
    enc = tokenizer(response, add_special_tokens=False, return_offsets_mapping=True)
    spans = char_to_token_spans(enc["offset_mapping"], separator_char_spans(response))
    assert len(spans) == 2
    for lo, hi in spans:
        assert tokenizer.decode(enc["input_ids"][lo:hi]) == "\n\n"
    dense = place_step_rewards([0.5, -0.3], spans, len(enc["input_ids"]))
    assert dense.sum() == pytest.approx(0.2)
    assert np.count_nonzero(dense) == sum(hi - lo for lo, hi in spans)


# --- one rollout, all parts ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("level, answer", [(2, 1.0), (5, 0.25)])
def test_rollout_reward_combines_every_part(level, answer):
    response = "Add 3 and 4.\n\n3 + 4 = 7.\n\n# Answer\n\n7"
    out = rollout_reward(response, correct=True, level=level, step_logit_values=[2.0, -1.0],
                         separator_tokens=[(3, 4), (8, 10)], length=14, settings=RewardSettings())
    assert out.correct is True
    assert out.answer == answer and out.penalty == 0.75
    assert out.terminal == pytest.approx(answer - 0.75)
    p1, p2 = sigmoid(2.0), sigmoid(-1.0)  # 0.881 (above 0.5: no drop), 0.269 (drop of 0.231)
    assert out.step_probs == pytest.approx([p1, p2])
    assert out.step_rewards == pytest.approx([0.125, p2 - 0.5 + 0.125])
    expected = np.zeros(14)
    expected[3] = 0.125
    expected[8:10] = (p2 - 0.5 + 0.125) / 2
    np.testing.assert_allclose(out.process, expected)
    dense = out.dense()
    assert dense[-1] == pytest.approx(answer - 0.75) and dense.sum() == pytest.approx(expected.sum() + answer - 0.75)
    assert out.total == pytest.approx(answer - 0.75 + 0.125 + (p2 - 0.5 + 0.125))  # GRPO's one number


def test_rollout_reward_scale_and_no_process_reward():
    response = "Add.\n\nSum $7$.\n\n# Answer\n\n8"
    scaled = rollout_reward(response, correct=False, level=1, step_logit_values=[0.0, 0.0],
                            separator_tokens=[(2, 3), (5, 6)], length=9,
                            settings=RewardSettings(scale=2.0))
    assert scaled.correct is False and scaled.answer == 0.0 and scaled.penalty == 1.0 and scaled.terminal == -1.0
    np.testing.assert_allclose(scaled.process[[2, 5]], [2 * 0.125, 2 * 0.125])  # p = 0.5 = bound: bonus only
    none = rollout_reward(response, correct=False, level=1, step_logit_values=[0.0, 0.0],
                          separator_tokens=[(2, 3), (5, 6)], length=9,
                          settings=RewardSettings(process_reward="none"))
    assert none.process.sum() == 0.0 and none.step_rewards == []


def test_reward_settings_from_config():
    from e2h.config import PPOSection

    s = RewardSettings.from_config(PPOSection(), train_levels=[1, 2, 3])
    assert (s.answer_levels, s.unavailable_answer_reward, s.upper_bound, s.step_bonus, s.format_penalty_value) == (
        (1, 2, 3), 0.25, 0.5, 0.25, -1.0)
    assert RewardSettings.from_config(PPOSection(easy_only_answer_reward=False), [1]).answer_levels is None


# --- whitening, GAE, losses -------------------------------------------------------------------------------------------

def test_whitening_keeps_the_mean_when_asked():
    values = torch.tensor([[0.0, 4.0, 99.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    # mean 2, std 2 over the real tokens: whitened [-1, 1]; keeping the mean gives [1, 3]; padding stays 0
    assert torch.allclose(masked_whiten(values, mask, shift_mean=True), torch.tensor([[-1.0, 1.0, 0.0]]), atol=1e-6)
    assert torch.allclose(masked_whiten(values, mask, shift_mean=False), torch.tensor([[1.0, 3.0, 0.0]]), atol=1e-6)
    rng = torch.Generator().manual_seed(0)
    values = torch.randn(4, 7, generator=rng) * 3 + 1.5
    mask = (torch.rand(4, 7, generator=rng) > 0.3).float()
    kept = masked_whiten(values, mask, shift_mean=False)
    real = kept[mask.bool()]
    assert real.mean() == pytest.approx(values[mask.bool()].mean().item(), abs=1e-5)
    assert real.std(unbiased=False) == pytest.approx(1.0, abs=1e-4)


def test_gae_with_gamma_lambda_one_is_reward_to_go_minus_value():
    rng = torch.Generator().manual_seed(1)
    rewards, values = torch.randn(3, 6, generator=rng), torch.randn(3, 6, generator=rng)
    lengths = [6, 4, 1]
    mask = torch.tensor([[1.0] * n + [0.0] * (6 - n) for n in lengths])
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    for b, n in enumerate(lengths):
        to_go = torch.flip(torch.cumsum(torch.flip(rewards[b, :n], [0]), 0), [0])
        assert torch.allclose(ret[b, :n], to_go, atol=1e-6)
        assert torch.allclose(adv[b, :n], to_go - values[b, :n], atol=1e-6)
        assert torch.all(adv[b, n:] == 0) and torch.all(ret[b, n:] == 0)


def test_gae_hand_computed_with_discount():
    rewards = torch.tensor([[1.0, 2.0, 99.0]])
    values = torch.tensor([[0.5, 1.0, 77.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    adv, ret = gae(rewards, values, mask, gamma=0.5, lam=0.5)
    # t=1: delta = 2 - 1 = 1 -> A = 1;  t=0: delta = 1 + 0.5*1 - 0.5 = 1 -> A = 1 + 0.25*1 = 1.25
    assert torch.allclose(adv, torch.tensor([[1.25, 1.0, 0.0]]))
    assert torch.allclose(ret, torch.tensor([[1.75, 2.0, 0.0]]))


def test_clipped_policy_loss_hand_computed():
    old = torch.zeros(1, 4)
    logp = torch.log(torch.tensor([[1.5, 0.5, 0.5, 9.0]])).requires_grad_(True)
    adv = torch.tensor([[1.0, 1.0, -1.0, 5.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    loss, stats = policy_loss(logp, old, adv, mask, clip=0.2)
    # token 1: max(-1.5, -1.2) = -1.2 (clipped); token 2: max(-0.5, -0.8) = -0.5; token 3: max(0.5, 0.8) = 0.8
    # (clipped); token 4 is padding
    assert loss.item() == pytest.approx((-1.2 - 0.5 + 0.8) / 3)
    assert stats["clipfrac"] == pytest.approx(2 / 3)
    loss.backward()
    # only the unclipped token carries a gradient: d(-A * ratio)/dlogp = -A * ratio / 3
    assert torch.allclose(logp.grad, torch.tensor([[0.0, -0.5 / 3, 0.0, 0.0]]))


def test_clipped_value_loss_hand_computed():
    old = torch.zeros(1, 3)
    values = torch.tensor([[0.5, 0.1, 5.0]])
    returns = torch.tensor([[1.0, -1.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    loss, stats = value_loss(values, old, returns, mask, clip=0.2)
    # token 1: max((0.5-1)^2, (0.2-1)^2) = 0.64 (clipped); token 2: (0.1+1)^2 = 1.21 both ways
    assert loss.item() == pytest.approx(0.5 * (0.64 + 1.21) / 2)
    assert stats["clipfrac"] == pytest.approx(0.5)


# --- the batch scorer PPO and GRPO share, with a real PRM and grader ----------------------------------------------

def test_rollout_scorer_and_grpo_reward_function(tiny_policy, tiny_prm_dir):
    from transformers import AutoTokenizer

    from e2h.text_format import format_prompt
    from policy.grpo import ProcessRewardFunction
    from policy.process_reward import PRMStepScorer, RolloutScorer

    tokenizer = AutoTokenizer.from_pretrained(tiny_policy["path"])
    settings = RewardSettings(format_penalty_value=0.0)
    scorer = RolloutScorer(PRMStepScorer(tiny_prm_dir, "cpu", settings, batch_size=2), settings, 5.0)
    problems = tiny_policy["problems"][:3]
    responses = [problems[0].solution, problems[1].solution.replace(f"# Answer\n\n{problems[1].answer}",
                                                                    "# Answer\n\n-1"), "no answer line"]
    completion_ids = [tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
                      for text in responses]
    logged = {}
    rewards = ProcessRewardFunction(scorer, tokenizer)(
        prompts=[format_prompt(q.problem) for q in problems], completions=responses, completion_ids=completion_ids,
        answer=[q.answer for q in problems], level=[q.level for q in problems], log_metric=logged.__setitem__)
    offsets = [offs for _, offs in (response_offsets(tokenizer, ids) for ids in completion_ids)]
    parts = scorer.score([format_prompt(q.problem) for q in problems], responses, offsets,
                         [len(ids) for ids in completion_ids], [q.answer for q in problems], [1, 1, 1])
    assert [part.correct for part in parts] == [True, False, False]
    assert [part.answer for part in parts] == [1.0, 0.0, 0.0]
    assert [len(part.step_rewards) for part in parts] == [2, 2, 0]  # two steps, then the answer; no step at all
    # one number per completion: the terminal reward plus every shaped step reward (scale 1), i.e. the PPO's
    # per-token score summed
    for reward, part in zip(rewards, parts):
        assert reward == pytest.approx(part.terminal + sum(part.step_rewards))
        assert reward == pytest.approx(part.dense().sum())
    assert logged["accuracy/train"] == pytest.approx(1 / 3)
    assert logged["reward/answer"] == pytest.approx(1 / 3)
