"""The PRM's likelihood feature (prm/model.py): the reward logit adds a * (the solution's weakest token
log-probability so far, read from the backbone's own LM head) + b. Checked against the causal LM it was built
from, through saving, loading, every scoring path, the value model, and `e2h train-prm`."""

from __future__ import annotations

import math

import pytest

from e2h.text_format import format_prompt

PROMPT = format_prompt("What is 3 + 4?")
COMPLETIONS = ["We add 3 and 4.\n\n3 + 4 = 7.\n\n# Answer\n\n7",
               "We add 3 and 4.\n\n3 + 4 = 17.\n\n# Answer\n\n17",
               "3 + 4 = 7."]


@pytest.fixture(scope="module")
def likelihood_prm_dir(tmp_path_factory, tiny_prm_backbone, tiny_tokenizer):
    """A saved likelihood PRM with a random reward head and a non-default scale, so every term counts."""
    import torch

    from prm.model import RewardModel

    model = RewardModel.from_backbone(tiny_prm_backbone, likelihood_feature=True)
    torch.manual_seed(1)
    with torch.no_grad():
        model.net.score.weight.normal_(0.0, 0.1)
        model.likelihood_scale.copy_(torch.tensor([0.7, 1.5]))
    folder = tmp_path_factory.mktemp("likelihood_prm") / "prm"
    model.save_pretrained(folder, tokenizer=tiny_tokenizer)
    return folder


def _expected_scores(backbone: str, prm_dir, tokenizer, completion: str) -> list[float]:
    """The step scores recomputed from the pieces: the causal LM's token log-probs, the saved head, the scale."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoModelForTokenClassification

    from e2h.text_format import split_solution
    from e2h.tokenization import encode, step_end_positions
    from prm.dataset import layout

    lay = layout(PROMPT, split_solution(completion), is_prompt=True)
    enc = encode(tokenizer, lay.text)
    boundaries = step_end_positions(enc.offsets, lay.step_spans)
    first = next(i for i, (s, e) in enumerate(enc.offsets) if e > s and s >= lay.step_spans[0][0])
    ids = torch.tensor([enc.ids])
    with torch.no_grad():
        lm_logits = AutoModelForCausalLM.from_pretrained(backbone)(ids).logits[0]
        head = AutoModelForTokenClassification.from_pretrained(prm_dir)(ids).logits[0]
    logprobs = torch.log_softmax(lm_logits, -1)
    a, b = load_file(prm_dir / "likelihood_head.safetensors")["likelihood_scale"].tolist()
    scores = []
    for end in boundaries:
        weakest = min(float(logprobs[t - 1, enc.ids[t]]) for t in range(first, end + 1))
        hidden_term = float(head[end, 1] - head[end, 0])
        scores.append(1 / (1 + math.exp(-(hidden_term + a * weakest + b))))
    return scores


def test_scores_are_the_head_plus_the_scaled_weakest_token_logprob(likelihood_prm_dir, tiny_prm_backbone,
                                                                   tiny_tokenizer):
    from prm.score import PRMScorer

    scorer = PRMScorer(likelihood_prm_dir, device="cpu")
    for completion, scores in zip(COMPLETIONS, scorer.score(PROMPT, COMPLETIONS)):
        expected = _expected_scores(tiny_prm_backbone, likelihood_prm_dir, tiny_tokenizer, completion)
        assert scores == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("share_prompt", [True, False])
def test_every_scoring_path_agrees(likelihood_prm_dir, share_prompt):
    from prm.score import PRMScorer

    scorer = PRMScorer(likelihood_prm_dir, device="cpu", batch_tokens=64, share_prompt=share_prompt)
    one_pass = scorer.score(PROMPT, COMPLETIONS)
    pairs = scorer.score_pairs([(PROMPT, c) for c in COMPLETIONS])
    for completion, scores, paired in zip(COMPLETIONS, one_pass, pairs):
        assert scores == pytest.approx(scorer.score_per_prefix(PROMPT, completion), abs=1e-5)
        assert scores == pytest.approx(paired, abs=1e-5)


def test_the_feature_needs_the_solution_start(likelihood_prm_dir):
    import torch

    from prm.model import load_reward_model

    model, tokenizer, info = load_reward_model(likelihood_prm_dir)
    assert info["likelihood_feature"] is True
    with pytest.raises(ValueError, match="solution_start"):
        model(torch.tensor([[5, 6, 7]]))


def test_freeze_backbone_trains_the_heads_only(tiny_prm_backbone):
    from prm.model import RewardModel

    model = RewardModel.from_backbone(tiny_prm_backbone, likelihood_feature=True)
    model.freeze_backbone()
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"net.score.weight", "net.score.bias", "likelihood_scale"} - (
        set() if model.net.score.bias is not None else {"net.score.bias"})


def test_the_value_model_keeps_the_hidden_head_only(likelihood_prm_dir):
    import torch

    from policy.value_model import load_value_model

    critic = load_value_model(likelihood_prm_dir)
    assert critic.lm_head is None and critic.likelihood_scale is None
    values, _ = critic(torch.tensor([[5, 6, 7, 8]]))  # no solution_start needed
    assert values.shape == (1, 4)


@pytest.mark.distributed
def test_train_prm_with_the_feature_saves_and_scores(tmp_path, tiny_prm_backbone, world_of_one):
    """`e2h train-prm` with prm.likelihood_feature and prm.freeze_backbone: the backbone is unchanged, the scale
    moved, and the saved folder scores."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForTokenClassification

    from conftest import prm_step_examples
    from e2h.config import RunConfig
    from e2h.records import save_records
    from prm.score import PRMScorer
    from prm.train import train_prm

    data = tmp_path / "prm.jsonl"
    save_records(data, prm_step_examples(64, seed=5))
    cfg = RunConfig.model_validate({
        "run": {"name": "likelihood", "out_dir": str(tmp_path), "seed": 0},
        "prm_backbone": {"path": tiny_prm_backbone},
        "prm": {"data": str(data), "deepspeed_config": "configs/deepspeed/zero2.json", "lr": 1e-2, "epochs": 1,
                "micro_batch_size": 8, "global_batch_size": 8, "max_length": 256, "report_to": "none",
                "likelihood_feature": True, "freeze_backbone": True},
    })
    train_prm(cfg)
    out = tmp_path / "prm"
    saved = load_file(out / "likelihood_head.safetensors")
    assert not torch.allclose(saved["likelihood_scale"], torch.tensor([1.0, 2.0]))
    trained = AutoModelForTokenClassification.from_pretrained(out).state_dict()
    original = AutoModelForTokenClassification.from_pretrained(tiny_prm_backbone).state_dict()
    for name, value in original.items():
        if not name.startswith("score."):
            assert torch.equal(value, trained[name]), name
    scores = PRMScorer(out, device="cpu").score(PROMPT, COMPLETIONS)
    assert [len(s) for s in scores] == [3, 3, 1]
    card = (out / "README.md").read_text()  # a reader of the card learns that plain transformers is not enough
    assert "likelihood feature" in card and "| `freeze_backbone` | True |" in card
