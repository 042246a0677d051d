"""A saved PRM is usable outside e2h: `e2h train-prm` writes a model card (README.md), and plain transformers
(``AutoModelForTokenClassification`` and ``pipeline("token-classification")``, which apply softmax) read the
PRM's own step probabilities from the two-label head, equal to e2h's scores; e2h loads the new folders bit for
bit and still loads the one-label folders saved before."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import prm_step_examples
from e2h.loopback import free_port

PROMPT = "# Question\n\nWhat is 2 + 3?\n\n# Solution\n\n"
GOOD = "We add 2 and 3.\n\n2 + 3 = 5.\n\n# Answer\n\n5"
BAD = "We add 2 and 3.\n\n2 + 3 = 25.\n\n# Answer\n\n25"
ROOT = Path(__file__).resolve().parents[1]


def _random_head_prm(backbone: str):
    import torch

    from prm.model import RewardModel

    model = RewardModel.from_backbone(backbone)
    torch.manual_seed(3)
    with torch.no_grad():
        model.net.score.weight.normal_(0.0, 0.5)
        model.net.score.bias.fill_(0.25)
    return model.eval()


def test_saved_head_has_two_labels_and_e2h_loads_it_bit_for_bit(tmp_path, tiny_prm_backbone, tiny_tokenizer):
    import torch
    from safetensors.torch import load_file

    from prm.model import load_reward_model

    model = _random_head_prm(tiny_prm_backbone)
    model.save_pretrained(tmp_path / "prm", tokenizer=tiny_tokenizer)
    config = json.loads((tmp_path / "prm" / "config.json").read_text())
    assert config["id2label"] == {"0": "incorrect", "1": "correct"} and config["label2id"]["correct"] == 1
    weights = load_file(str(tmp_path / "prm" / "model.safetensors"))
    assert weights["score.weight"].shape[0] == 2 and not weights["score.weight"][0].any()
    assert json.loads((tmp_path / "prm" / "prm_config.json").read_text())["head"] == "two_label_softmax"
    assert model.net.config.num_labels == 1  # the model in memory keeps its one-row head

    loaded, _, _ = load_reward_model(tmp_path / "prm")
    assert loaded.net.score.weight.shape == (1, model.net.score.weight.shape[1])
    ids = torch.randint(3, 300, (2, 23))
    with torch.no_grad():
        assert torch.equal(model(ids)[0], loaded(ids)[0])  # e2h's scores do not move
    loaded.save_pretrained(tmp_path / "again", tokenizer=tiny_tokenizer)  # a loaded PRM saves the same folder
    again = load_file(str(tmp_path / "again" / "model.safetensors"))
    assert all(torch.equal(weights[k], again[k]) for k in weights)


def test_one_label_folders_saved_before_still_load_with_the_same_scores(tmp_path, tiny_prm_backbone,
                                                                         tiny_tokenizer):
    from prm.model import PRM_CONFIG_NAME, default_prm_info
    from prm.score import PRMScorer

    model = _random_head_prm(tiny_prm_backbone)
    old = tmp_path / "old"
    model.net.save_pretrained(old)  # the version-2 layout: num_labels=1, the reward row as it is
    tiny_tokenizer.save_pretrained(old)
    (old / PRM_CONFIG_NAME).write_text(json.dumps(default_prm_info(version=2)))
    assert json.loads((old / "config.json").read_text())["id2label"] == {"0": "reward"}
    model.save_pretrained(tmp_path / "new", tokenizer=tiny_tokenizer)
    old_scores = PRMScorer(old, device="cpu").score(PROMPT, [GOOD, BAD])
    new_scores = PRMScorer(tmp_path / "new", device="cpu").score(PROMPT, [GOOD, BAD])
    # equal up to float32 rounding: the two folders are separate loads, and CPU kernels may round differently
    assert [len(s) for s in old_scores] == [len(s) for s in new_scores]
    for old_steps, new_steps in zip(old_scores, new_scores):
        assert old_steps == pytest.approx(new_steps, rel=1e-5, abs=1e-7)


@pytest.fixture
def world_of_one(monkeypatch):
    """The env training.init_distributed reads, for DeepSpeed in this process (the group is left up, as in
    tests/test_prm_lora.py)."""
    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(free_port())}.items():
        monkeypatch.setenv(key, value)
    yield


@pytest.fixture
def trained_prm(tmp_path, tiny_prm_backbone, world_of_one):
    """A tiny PRM trained by prm.train.train_prm (what `e2h train-prm` runs): 56 examples, 28 steps, 8 held out."""
    from e2h.config import RunConfig
    from e2h.records import save_records
    from prm.train import train_prm

    data = tmp_path / "prm.jsonl"
    save_records(data, prm_step_examples(64, seed=5))
    cfg = RunConfig.model_validate({
        "run": {"name": "card", "out_dir": str(tmp_path / "card"), "seed": 0},
        "prm_backbone": {"path": tiny_prm_backbone},
        "prm": {"data": str(data), "deepspeed_config": "configs/deepspeed/zero2.json", "lr": 1e-2,
                "warmup_ratio": 0.1, "epochs": 4, "micro_batch_size": 8, "global_batch_size": 8,
                "max_length": 96, "eval_size": 8},
    })
    final = train_prm(cfg)
    return {"out": tmp_path / "card" / "prm", "data": data, "final": final, "backbone": tiny_prm_backbone}


def _positive(token: dict) -> float:
    """p("correct") from a pipeline entry (the likelier label and its probability)."""
    return float(token["score"]) if token["entity"] == "correct" else 1.0 - float(token["score"])


@pytest.mark.distributed
def test_trained_prm_scores_the_same_through_plain_transformers(trained_prm):
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

    from e2h.text_format import split_solution
    from prm.score import PRMScorer, scoring_text

    out = trained_prm["out"]
    scorer = PRMScorer(out, device="cpu")
    e2h_scores = scorer.score(PROMPT, [GOOD, BAD])

    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForTokenClassification.from_pretrained(out).eval()
    assert model.config.num_labels == 2 and model.config.id2label[1] == "correct"
    tagger = pipeline("token-classification", model=model, tokenizer=tokenizer, ignore_labels=[], device="cpu")
    plain = []
    for completion, expected in zip((GOOD, BAD), e2h_scores):
        text = scoring_text(PROMPT, completion)
        ids, positions, _ = scorer.encode(PROMPT, split_solution(completion))
        enc = tokenizer(text, return_tensors="pt")
        assert enc["input_ids"][0].tolist() == ids
        with torch.no_grad():
            probs = model(**enc).logits[0].softmax(-1)[:, 1]
        # (a) probabilities, not softmax over one label (1.0 everywhere)
        assert ((probs > 0) & (probs < 1)).all() and probs.min() < 0.99 and probs.std() > 1e-4
        # (b) e2h's step scores at the step-end tokens
        assert probs[positions].tolist() == pytest.approx(expected, abs=1e-5)
        tokens = {t["index"]: t for t in tagger(text)}
        assert len(tokens) == len(ids) - sum(i in tokenizer.all_special_ids for i in ids)
        assert [_positive(tokens[i]) for i in positions] == pytest.approx(expected, abs=1e-5)
        plain.append([_positive(tokens[i]) for i in positions])
    # (c) through plain transformers, the good and the bad solution's steps get different scores where their
    # text differs (a tiny PRM trained for seconds does not learn sums, so no direction is asserted) and the
    # same score where it does not (the first step)
    good, bad = plain
    assert good[0] == pytest.approx(bad[0], abs=1e-6), plain
    assert max(abs(g - b) for g, b in zip(good[1:], bad[1:])) > 1e-3, plain


@pytest.mark.distributed
def test_train_prm_writes_a_model_card_whose_snippet_runs(trained_prm, capsys):
    import training

    out = trained_prm["out"]
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers\npipeline_tag: token-classification\n")
    for needle in (f"`{trained_prm['backbone']}`", f"`{trained_prm['data']}`", "| examples read | 64 |",
                   "| trained on | 56 |", "| held out for evaluation | 8 |", "levels of the examples | 1: 64",
                   "`step_last_token`", '"\\n\\n"', "`every_token`", "PRMScorer(", "AutoModelForTokenClassification",
                   'pipeline("token-classification"', "| `lr` | 0.01 |", "| `global_batch_size` | 8 |",
                   "| `optimizer steps` | 28 |"):
        assert needle in card, needle
    log = training.read_train_log(out)
    last_loss = [row["loss"] for row in log if "loss" in row][-1]
    assert f"| `loss` | {last_loss:.4g} |" in card and "| `eval/step_accuracy` |" in card

    # the card's plain-transformers snippet runs as written and prints e2h's scores
    from prm.score import PRMScorer

    snippet = re.search(r"## Scoring with plain transformers\n\n```python\n(.*?)```", card, re.S).group(1)
    capsys.readouterr()
    exec(compile(snippet, "README.md", "exec"), {})
    printed = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    expected = PRMScorer(out, device="cpu").score(PROMPT, [GOOD])[0]
    assert len(printed) == 2 and all(p == pytest.approx(expected, abs=1e-5) for p in printed)

    # so does the repository README's pipeline snippet (with this run's folder)
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### The saved PRM, and using it with transformers"):]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1).replace('"runs/demo/prm"', repr(str(out)))
    exec(compile(snippet, "README.md", "exec"), {})
    printed = json.loads(capsys.readouterr().out.strip())
    assert printed == pytest.approx(expected, abs=1e-5)
