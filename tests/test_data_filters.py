"""The reference's data filters as options (DataSection): additional PRM800K problems, exact vs
whitespace-collapsed problem matching, and the long-prompt rule that keeps over-long prompts out of validation."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from e2h.config import ConfigError, load_config
from e2h.data.math import load_math500, load_math_train
from e2h.data.prepare import prepare
from e2h.data.splits import reference_prompt, split_validation, stratum
from e2h.records import Problem, StepExample, load_records

DATA = Path(__file__).resolve().parent / "data"
ADDITIONAL = "What is the smallest positive integer such that the product of its digits is $2016$?"
VALIDATION = 10


def prm_record(problem: str, answer: int = 1) -> dict:
    """One labelled answer step; a distinct ``answer`` per record, so no example is a duplicate of another."""
    step = {"completions": [{"text": f"We work it out.\n\n# Answer\n\n{answer}", "rating": 1, "flagged": False}],
            "human_completion": None, "chosen_completion": 0}
    return {"question": {"problem": problem}, "label": {"steps": [step]}}


def respaced(text: str) -> str:
    return text.replace(" ", "  ") + " "


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("filters")
    train = load_math_train(str(DATA / "math_train_sample.jsonl"))
    easy = next(p for p in train if p.source == "math12k:train" and p.level == 2)
    hard = next(p for p in train if p.source == "math12k:train" and p.level == 5)
    picks = {"easy": easy.problem, "easy_respaced": respaced(easy.problem), "hard_respaced": respaced(hard.problem),
             "additional": ADDITIONAL}
    prm = tmp / "prm.jsonl"
    prm.write_text("".join(json.dumps(prm_record(text, i)) + "\n" for i, text in enumerate(picks.values())))
    return tmp, prm, easy, picks


def _prepare(tmp: Path, prm: Path, name: str, **data) -> tuple[dict, list[StepExample]]:
    overrides = [f"run.out_dir={tmp / name}", "data.source=math", f"data.math_train={DATA / 'math_train_sample.jsonl'}",
                 f"data.math500={DATA / 'math500.jsonl'}", f"data.prm800k=[{prm}]",
                 f"data.validation_size={VALIDATION}"]
    summary = prepare(load_config(None, overrides + [f"data.{k}={v}" for k, v in data.items()]))
    return summary, load_records(tmp / name / "data" / "prm_train.jsonl", StepExample)


def test_whitespace_matching_finds_respaced_copies_and_their_levels(files):
    tmp, prm, easy, picks = files
    summary, examples = _prepare(tmp, prm, "ws")  # the defaults: whitespace, no additional problems
    assert {ex.problem for ex in examples} == {picks["easy"], picks["easy_respaced"]}
    assert {ex.level for ex in examples} == {2} and {ex.problem_id for ex in examples} == {easy.id}
    assert summary["prm800k_rows"] == {"additional": 1, "kept": 2, "other_level": 1}


def test_exact_matching_makes_respaced_copies_additional(files):
    tmp, prm, easy, picks = files
    summary, examples = _prepare(tmp, prm, "exact", problem_match="exact")
    assert {ex.problem for ex in examples} == {picks["easy"]}  # the respaced copies are in neither file: dropped
    assert summary["prm800k_rows"] == {"additional": 3, "kept": 1}

    summary, examples = _prepare(tmp, prm, "exact_all", problem_match="exact", include_additional_prm800k="true")
    # as the reference: the respaced hard problem is trained on, as "additional"
    assert {ex.problem for ex in examples} == set(picks.values())
    assert summary["prm800k_rows"] == {"kept": 4}
    levels = {ex.problem: ex.level for ex in examples}
    assert levels[picks["hard_respaced"]] is None and levels[ADDITIONAL] is None
    assert levels[picks["easy_respaced"]] == 2  # same problem key as an exactly matched row: keeps its level


def test_whitespace_matching_keeps_additional_problems_when_asked(files):
    tmp, prm, _, picks = files
    summary, examples = _prepare(tmp, prm, "ws_all", include_additional_prm800k="true")
    assert {ex.problem for ex in examples} == {picks["easy"], picks["easy_respaced"], ADDITIONAL}
    assert summary["prm800k_rows"] == {"kept": 3, "other_level": 1}


def test_exact_matching_never_lets_a_respaced_held_out_problem_in(tmp_path):
    math500 = load_math500(str(DATA / "math500.jsonl"))
    prm = tmp_path / "prm.jsonl"
    prm.write_text(json.dumps(prm_record(respaced(math500[0].problem))) + "\n"
                   + json.dumps(prm_record(ADDITIONAL)) + "\n")
    summary, examples = _prepare(tmp_path, prm, "run", problem_match="exact", include_additional_prm800k="true")
    assert {ex.problem for ex in examples} == {ADDITIONAL}
    assert summary["prm800k_rows"] == {"held_out": 1, "kept": 1}


# ------------------------------------------------------------------------------------------------ long prompts
def words(prompt: str) -> int:
    return len(prompt.split())


def test_over_long_prompts_stay_in_train():
    train = load_math_train(str(DATA / "math_train_sample.jsonl"))
    math500 = load_math500(str(DATA / "math500.jsonl"))
    _, plain = split_validation(train, math500, VALIDATION, seed=1234)
    limit = max(words(reference_prompt(p)) for p in plain) - 1  # the longest validation prompt is now over-long
    rest, validation = split_validation(train, math500, VALIDATION, 1234, limit, words)
    assert all(words(reference_prompt(p)) <= limit for p in validation)
    moved = [p for p in plain if words(reference_prompt(p)) > limit]
    assert moved and all(p in rest for p in moved)
    assert Counter(map(stratum, validation)) == Counter(map(stratum, plain))  # the cells are refilled
    assert len(rest) + len(validation) == len(train)
    # a limit no prompt reaches changes nothing
    assert split_validation(train, math500, VALIDATION, 1234, 10_000, words)[1] == plain
    with pytest.raises(ValueError, match="prompt_tokens"):
        split_validation(train, math500, VALIDATION, 1234, limit)


def test_prompt_length_rule_end_to_end_with_a_tokenizer_folder(files, tmp_path):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    backend.pre_tokenizer = WhitespaceSplit()  # one token per whitespace-separated word: words() above
    PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]").save_pretrained(tmp_path / "tok")

    _, prm, _, _ = files
    _prepare(tmp_path, prm, "plain")
    plain = load_records(tmp_path / "plain" / "data" / "prompts_validation.jsonl", Problem)
    limit = max(words(reference_prompt(p)) for p in plain) - 1
    _prepare(tmp_path, prm, "long", long_prompt_tokens=limit, long_prompt_tokenizer=tmp_path / "tok")
    validation = load_records(tmp_path / "long" / "data" / "prompts_validation.jsonl", Problem)
    train = {p.id for p in load_records(tmp_path / "long" / "data" / "prompts_train.jsonl", Problem)}
    assert len(validation) == VALIDATION and all(words(reference_prompt(p)) <= limit for p in validation)
    assert {p.id for p in plain if words(reference_prompt(p)) > limit} <= train
    with pytest.raises(ConfigError, match="data.long_prompt_tokenizer"):
        _prepare(tmp_path, prm, "none", long_prompt_tokens=limit)


@pytest.mark.parametrize("name", ["7b-prm800k-level1-3", "7b-prm800k-level1-5", "34b-prm800k-level1-3",
                                  "34b-prm800k-level1-5"])
def test_paper_configs_set_the_reference_filters(name):
    data = load_config(Path(__file__).resolve().parents[1] / "configs" / f"llemma-{name}.yaml").data
    assert (data.include_additional_prm800k, data.problem_match, data.long_prompt_tokens,
            data.long_prompt_tokenizer) == (True, "exact", 496, "EleutherAI/llemma_34b")
