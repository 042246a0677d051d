"""Loading a released-format PRM (a LlamaForCausalLM whose lm_head rows repeat a 2-row reward head, issue #19
item 6): the loader reads the checkpoint once, in the requested dtype, and gives exactly the model the former
loader gave (a full fp32 causal LM, then a second fp32 model copied from it); its peak memory is about one copy
of the checkpoint where the former one held two."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# The loader before issue #19 item 6, kept here only to compare against: the whole causal LM in fp32, a second
# fp32 model built from the config, the backbone copied across, then the conversion to ``dtype``.
OLD_LOADER = textwrap.dedent('''
    def old_load_released(directory, dtype):
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForTokenClassification
        from prm.model import RewardModel, _prepare_config, default_prm_info, head_from_released_lm_head

        lm = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
        head = head_from_released_lm_head(lm.get_output_embeddings().weight.detach())
        config = AutoConfig.from_pretrained(directory)
        _prepare_config(config)
        config.token_classification_bias = False
        net = AutoModelForTokenClassification.from_config(config)
        getattr(net, net.base_model_prefix).load_state_dict(getattr(lm, lm.base_model_prefix).state_dict())
        with torch.no_grad():
            net.score.weight.copy_(head)
        del lm
        return RewardModel(net, default_prm_info(kind="released")).to(dtype=dtype).eval()
''')
_namespace: dict = {}
exec(OLD_LOADER, _namespace)
old_load_released = _namespace["old_load_released"]


def _released_folder(folder: Path, lm, tokenizer, **save) -> Path:
    """Save ``lm`` in the released format: its lm_head rows repeat a random 2-row head."""
    import torch

    torch.manual_seed(3)
    head2 = torch.randn(2, lm.config.hidden_size)
    with torch.no_grad():
        lm.lm_head.weight.copy_(head2.repeat(lm.config.vocab_size // 2 + 1, 1)[: lm.config.vocab_size])
    lm.save_pretrained(folder, **save)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("dtype_name", ["float32", "bfloat16"])
@pytest.mark.parametrize("shards", ["one_file", "sharded"])
def test_released_loader_gives_the_former_model_exactly(tmp_path, tiny_prm_backbone, tiny_tokenizer, dtype_name,
                                                        shards):
    import torch
    from transformers import LlamaForCausalLM

    from prm.model import load_reward_model

    dtype = getattr(torch, dtype_name)
    lm = LlamaForCausalLM.from_pretrained(tiny_prm_backbone)
    save = {"max_shard_size": "20KB"} if shards == "sharded" else {}
    folder = _released_folder(tmp_path / "released", lm, tiny_tokenizer, **save)
    if shards == "sharded":
        weight_map = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]
        assert len(set(weight_map.values())) > 2

    new, _, info = load_reward_model(folder, dtype=dtype)
    old = old_load_released(folder, dtype)
    assert info["kind"] == "released"
    new_state, old_state = new.state_dict(), old.state_dict()
    assert new_state.keys() == old_state.keys()
    assert not any("lm_head" in key for key in new_state)
    for key, value in old_state.items():
        assert new_state[key].dtype == dtype == value.dtype, key
        assert torch.equal(new_state[key], value), key
    ids = torch.tensor([tiny_tokenizer("What is 3 + 4?\n\nWe add 3 and 4.\n\n3 + 4 = 7.").input_ids])
    with torch.no_grad():
        assert torch.equal(new(ids)[0], old(ids)[0])


def test_released_head_checked_before_the_backbone_loads(tmp_path, tiny_prm_backbone, tiny_tokenizer,
                                                         monkeypatch):
    """A plain language model is refused from its lm_head alone; the backbone is never loaded."""
    import transformers
    from transformers import LlamaForCausalLM

    from prm.model import load_reward_model

    folder = tmp_path / "plain"
    LlamaForCausalLM.from_pretrained(tiny_prm_backbone).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)

    def no_backbone(*args, **kwargs):
        raise AssertionError("the backbone was loaded before the head was checked")

    monkeypatch.setattr(transformers.AutoModelForTokenClassification, "from_pretrained", no_backbone)
    with pytest.raises(ValueError, match="not a released reward checkpoint"):
        load_reward_model(folder)


# In a fresh process: peak RSS growth (VmHWM, reset once imports are done; not ru_maxrss, which a child
# inherits from the forked pytest process) while loading, every parameter read afterwards (a tensor left
# memory-mapped by the loader counts once it is read, as it would be when scoring).
CHILD = OLD_LOADER + textwrap.dedent('''
    import gc, json, sys
    import torch
    from transformers import AutoTokenizer
    from prm.model import load_reward_model

    def status_kib(field):
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])

    which, folder = sys.argv[1], sys.argv[2]
    AutoTokenizer.from_pretrained(folder)  # imports and tokenizer files warmed outside the measurement
    gc.collect()
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets this process's peak RSS (VmHWM) to its current RSS
    before = status_kib("VmRSS")
    if which == "new":
        model = load_reward_model(folder, dtype=torch.float32)[0]
    else:
        model = old_load_released(folder, torch.float32)
    total = sum(float(p.detach().sum()) for p in model.parameters())  # no temporary copy of a parameter
    peak = status_kib("VmHWM")
    print(json.dumps({"kib": peak - before, "total": total}))
''')


def _peak_kib(which: str, folder: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, which, str(folder)], capture_output=True, text=True,
                         timeout=120, env=os.environ.copy(), cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="peak RSS read from Linux's /proc")
def test_released_loader_peak_memory_is_one_copy(tmp_path, tiny_tokenizer):
    """A model whose weights dwarf the interpreter's noise (hidden 512, 8 layers, vocab 8000: ~140 MB in fp32,
    the lm_head 16 MB of it, two safetensors shards): the former loader held the backbone twice (>= 1.7
    checkpoints at its peak), the new one once (< 1.35: one copy, plus the lm_head read alone)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=512, intermediate_size=1536, num_hidden_layers=8, num_attention_heads=8,
                         num_key_value_heads=8, vocab_size=8000, max_position_embeddings=256,
                         tie_word_embeddings=False)
    with torch.device("meta"):
        lm = LlamaForCausalLM(config)
    generator = torch.Generator().manual_seed(0)
    lm.load_state_dict({name: torch.randn(p.shape, generator=generator) * 0.02 if p.dim() > 1 else torch.ones(p.shape)
                        for name, p in lm.named_parameters()}, assign=True)
    folder = _released_folder(tmp_path / "released", lm, tiny_tokenizer, max_shard_size="80MB")
    del lm
    files = sorted(folder.glob("*.safetensors"))
    assert len(files) == 2
    size_kib = sum(f.stat().st_size for f in files) / 1024

    new, old = _peak_kib("new", folder), _peak_kib("old", folder)
    assert new["total"] == pytest.approx(old["total"], rel=1e-6)  # the same weights (lm_head aside) were read
    print(f"peak RSS growth / checkpoint size: old {old['kib'] / size_kib:.2f}, new {new['kib'] / size_kib:.2f}")
    assert old["kib"] >= 1.7 * size_kib, (old, size_kib)
    assert new["kib"] < 1.35 * size_kib, (new, size_kib)
    assert old["kib"] - new["kib"] > 0.6 * size_kib, (old, new, size_kib)
