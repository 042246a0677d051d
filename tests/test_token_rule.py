"""One token rule for every tokenizer family (e2h.tokenization): SFT targets decode to exactly the target text,
prompts are tokenized as vLLM tokenizes them, and a step is trained and scored at the same token whatever
follows it. Run over a zoo of locally built tokenizers (tests/tokenizer_zoo.py) and the real SmolLM2 one."""

from __future__ import annotations

import pytest
import torch

import tokenizer_zoo
from e2h.records import SFTExample, StepExample
from e2h.text_format import STEP_SEPARATOR, answer_step, format_prompt, format_solution
from e2h.tokenization import TokenRuleError, check_step_tags, encode, encode_prompt_completion
from policy.sft_data import IGNORE_INDEX, tokenize_example
from prm.dataset import encode_step_example, layout, step_ends
from prm.preflight import PreflightError, preflight_example


@pytest.fixture(scope="module", params=sorted(tokenizer_zoo.ZOO))
def zoo_tokenizer(request):
    return tokenizer_zoo.ZOO[request.param]()


def _sft_examples():
    """Whole solutions (EOS) and the PRM800K-style per-step examples (prefix -> one step and its separator)."""
    examples = []
    for index, (problem, steps, answer) in enumerate(tokenizer_zoo.PROBLEMS):
        examples.append(SFTExample(id=f"{index}/whole", problem_id=str(index), prompt=format_prompt(problem),
                                   completion=format_solution(steps, answer), eos=True))
        for k, step in enumerate(steps):
            prompt = format_prompt(problem) + "".join(s + STEP_SEPARATOR for s in steps[:k])
            examples.append(SFTExample(id=f"{index}/step{k}", problem_id=str(index), prompt=prompt,
                                       completion=step + STEP_SEPARATOR, eos=False))
        prompt = format_prompt(problem) + "".join(s + STEP_SEPARATOR for s in steps)
        examples.append(SFTExample(id=f"{index}/answer", problem_id=str(index), prompt=prompt,
                                   completion=answer_step(answer), eos=True))
    return examples


def _decode(tokenizer, ids):
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def test_sft_targets_are_exactly_the_target_text(zoo_tokenizer):
    for example in _sft_examples():
        item = tokenize_example(example, zoo_tokenizer)
        targets = [t for t in item["labels"] if t != IGNORE_INDEX]
        if example.eos:
            assert targets[-1] == zoo_tokenizer.eos_token_id, example.id
            targets = targets[:-1]
        assert _decode(zoo_tokenizer, targets) == example.completion, example.id
        # the prompt part is what vLLM feeds the model: the prompt tokenized alone, special tokens included
        prompt_ids = zoo_tokenizer(example.prompt)["input_ids"]
        assert item["input_ids"][:len(prompt_ids)] == prompt_ids, example.id
        assert all(label == IGNORE_INDEX for label in item["labels"][:len(prompt_ids)]), example.id


def test_the_tokenizers_own_bos_only_once(zoo_tokenizer):
    ids = encode(zoo_tokenizer, format_prompt("What is 3 + 4?")).ids
    if zoo_tokenizer.bos_token_id is not None and zoo_tokenizer(".")["input_ids"][0] == zoo_tokenizer.bos_token_id:
        assert ids.count(zoo_tokenizer.bos_token_id) == 1 and ids[0] == zoo_tokenizer.bos_token_id
    else:  # a tokenizer that adds no BOS (GPT-2, SmolLM2, the world's) gets none from us either
        assert zoo_tokenizer.bos_token_id not in ids[:1] or zoo_tokenizer.bos_token_id == zoo_tokenizer.eos_token_id


def _step_examples():
    out = []
    for index, (problem, steps, answer) in enumerate(tokenizer_zoo.PROBLEMS):
        whole = [*steps, answer_step(answer)]
        out.append(StepExample(id=f"{index}/whole", problem_id=str(index), problem=problem, steps=whole,
                               labels=[1.0] * len(whole)))
        # cut after a step, as PRM800K examples and length-truncated samples are: no answer step
        out.append(StepExample(id=f"{index}/cut", problem_id=str(index), problem=problem, steps=list(steps),
                               labels=[None] * (len(steps) - 1) + [0.0]))
    return out


@pytest.mark.parametrize("label_positions", ["every_token", "boundary"])
def test_step_tags_pass_the_preflight_and_sit_on_each_steps_last_character(zoo_tokenizer, label_positions):
    for example in _step_examples():
        encoded = encode_step_example(zoo_tokenizer, example, label_positions)
        preflight_example(zoo_tokenizer, example, encoded, label_positions)
        lay = layout(example.problem, example.steps)
        offsets = encode(zoo_tokenizer, lay.text).offsets
        for (start, end), position in zip(lay.step_spans, encoded.boundaries):
            token_start, token_end = offsets[position]
            assert token_start < end <= token_end, (example.id, lay.text[token_start:token_end])


def test_a_step_is_scored_at_the_same_token_in_a_whole_and_a_cut_solution(zoo_tokenizer):
    """The bug users hit: the PRM trained on the cut example's step tag and read the whole solution's."""
    for example in _step_examples():
        if not example.id.endswith("/cut"):
            continue
        cut = encode_step_example(zoo_tokenizer, example, "boundary")
        whole = encode_step_example(zoo_tokenizer, _step_examples()[_step_examples().index(example) - 1], "boundary")
        for k in range(len(example.steps)):
            assert cut.input_ids[cut.boundaries[k]] == whole.input_ids[whole.boundaries[k]], (example.id, k)
            assert cut.boundaries[k] == whole.boundaries[k]


def test_a_tokenizer_that_merges_across_the_separator_is_refused():
    """No pre-tokenizer: BPE merges run over the step boundary ('.\\n\\nT'), so a step tag would hold text of the
    next step or change with what follows; the preflight must say so."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator(tokenizer_zoo.corpus(), trainers.BpeTrainer(
        vocab_size=900, special_tokens=["<unk>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>", eos_token="</s>")
    refused = 0
    for example in _step_examples():
        lay = layout(example.problem, example.steps)
        try:
            check_step_tags(tokenizer, lay.text, lay.step_spans, step_ends(lay), where=example.id)
        except TokenRuleError:
            refused += 1
            encoded = encode_step_example(tokenizer, example, "boundary")
            with pytest.raises(PreflightError):
                preflight_example(tokenizer, example, encoded, "boundary")
    assert refused > 0


def test_a_prompt_that_ends_inside_a_token_is_an_error(zoo_tokenizer):
    """A prompt cut in the middle of a token cannot be continued token-exactly: say so rather than train on it."""
    text = "# Question\n\nWhat is the solution?"
    start, end = next((s, e) for s, e in encode(zoo_tokenizer, text).offsets if e - s >= 2)
    with pytest.raises(TokenRuleError, match="across the boundary"):
        encode_prompt_completion(zoo_tokenizer, text[:start + 1], text[start + 1:], eos=False)


# --- the scorer reads where training wrote ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def zoo_prm(tmp_path_factory, zoo_tokenizer):
    """A tiny PRM with a random head on the zoo tokenizer (scores differ from token to token)."""
    from e2h.config import BackboneSection
    from e2h.world.tiny_models import save_tiny_model
    from prm.model import RewardModel

    root = tmp_path_factory.mktemp("zoo_prm")
    zoo_tokenizer.pad_token = zoo_tokenizer.eos_token
    save_tiny_model(root / "backbone", zoo_tokenizer, BackboneSection(
        hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
        max_position_embeddings=512), seed=0)
    model = RewardModel.from_backbone(root / "backbone")
    torch.manual_seed(1)
    with torch.no_grad():
        model.net.score.weight.normal_(0.0, 0.5)
    model.save_pretrained(root / "prm", tokenizer=zoo_tokenizer)
    return str(root / "prm")


def test_one_pass_scores_equal_per_prefix_scores_with_or_without_an_answer(zoo_prm):
    """score() reads every step in one pass over the whole text; score_per_prefix() cuts the text after each step,
    as training examples are cut. Equal scores = the step tag does not depend on what follows."""
    from prm.score import PRMScorer

    scorer = PRMScorer(zoo_prm, device="cpu")
    for problem, steps, answer in tokenizer_zoo.PROBLEMS:
        prompt = format_prompt(problem)
        for completion in (format_solution(steps, answer), format_solution(steps)):  # the second has no answer
            one_pass = scorer.score(prompt, [completion])[0]
            per_prefix = scorer.score_per_prefix(prompt, completion)
            assert len(one_pass) == len(per_prefix) > 0
            assert one_pass == pytest.approx(per_prefix, abs=1e-5), (problem, completion)
