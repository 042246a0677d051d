"""The process reward model: any Hugging Face causal-LM backbone + a zero-initialised scalar reward head that
gives a logit at every token (reference §2). A step's score is sigmoid(logit at the step's boundary token).

On disk (our format) a PRM folder is a standard ``*ForTokenClassification`` checkpoint with two labels,
``id2label = {0: "incorrect", 1: "correct"}``, plus the tokenizer, ``prm_config.json`` and a model card
(README.md, written by ``e2h train-prm``)::

    {"format": "e2h-prm", "version": 3, "step_separator": "\\n\\n", "step_tag": "step_last_token",
     "kind": "prm", "label_positions": "every_token", "head": "two_label_softmax"}

In memory the head has ONE row w (reward logit z = w . h, step score sigmoid(z)); it is saved as the rows
[0, w], so softmax over the two labels gives p("correct") = e^z / (1 + e^z) = sigmoid(z): transformers'
``AutoModelForTokenClassification`` and ``pipeline("token-classification")``, which always apply softmax, read
the PRM's own probability. Loading takes the difference of the two rows back (w - 0 = w, bit for bit), so e2h
scores a saved PRM exactly as before. Folders saved before version 3 (one label, ``num_labels=1``) load as they
are; under plain transformers their softmax over one label is 1.0 everywhere (apply sigmoid to the logit).

The authors' released reward checkpoints (ScalableMath/llemma-7b-prm-...) are instead a ``LlamaForCausalLM``
whose lm_head rows repeat the 2-row reward head; the reward logit is the mean of the lm_head logits over the
vocabulary. Since mean_v(W_v . h) = (mean_v W_v) . h, :func:`load_reward_model` turns that into our head
exactly (a 1-row head = the mean lm_head row), after checking the rows really repeat a 2-row pattern. It reads
the lm_head tensor alone and loads the backbone once, in the requested dtype: one copy of the model in memory.

ORM, PRM and OPRM are this same model trained on different data (``prm.kind`` in the config).

The likelihood feature (``prm.likelihood_feature: true``; info ``"likelihood_feature": true``): the backbone keeps
its LM head, and the reward logit at token t adds the weakest token of the solution so far,

    z_t = w . h_t + a * min_{s <= u <= t} log p(x_u | x_<u) + b        (s: the solution's first token)

with a and b learned (``likelihood_scale``, starting at 1 and 2). Why: measured on the world demo (README "Where
the chain broke"), a head on h_t trained on easy step labels learns the step index, not the step: at the same index it
tells a wrong first step from a right one at chance, while the base model's own likelihood of the step's tokens
tells them apart (AUC 0.85-0.92 on levels 4-5). The running minimum makes every step after a surprising one
score low too, as the labels say (a step built on a wrong value is wrong). The LM head and the scale are saved
beside the checkpoint (``likelihood_head.safetensors``); plain transformers reads only the w . h part of such
a PRM, so score it with e2h. Forward passes need ``solution_start`` (no KV-cache continuation).

LoRA (``prm.lora_rank > 0``, for large backbones): :meth:`RewardModel.apply_lora` injects peft adapters into the
backbone's linear projections; the head stays fully trainable. Saving merges the adapters into the backbone
weights (:func:`merge_lora`), so a LoRA-trained PRM folder is an ordinary PRM folder for scoring.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from e2h.text_format import STEP_SEPARATOR
from training import freeze_embeddings_and_norms

log = logging.getLogger(__name__)

PRM_CONFIG_NAME = "prm_config.json"
LIKELIHOOD_FILE = "likelihood_head.safetensors"
LIKELIHOOD_KEYS = ("lm_head.weight", "likelihood_scale")
FORMAT = "e2h-prm"
# The labels of the saved head: softmax(logits)[..., 1] is the step's probability of being correct.
HEAD_LABELS = {0: "incorrect", 1: "correct"}
POSITIVE_LABEL = "correct"


def default_prm_info(**overrides: Any) -> dict:
    info = {
        "format": FORMAT,
        "version": 3,  # 3: the saved head has two labels (module docstring); 2: one label
        "step_separator": STEP_SEPARATOR,
        "step_tag": "step_last_token",  # e2h.tokenization rule 4; version 1 read the first separator token
        "score": "sigmoid",
        "kind": "prm",
        "label_positions": "every_token",
    }
    info.update(overrides)
    return info


class RewardModel(nn.Module):
    """Backbone + scalar head. ``forward`` returns reward logits of shape [batch, seq] (and the KV cache).

    >>> model = RewardModel.from_backbone("runs/demo/prm_backbone")   # any causal LM folder
    >>> logits, _ = model(input_ids)          # logits[b, t] = reward logit after reading tokens[: t + 1]
    """

    def __init__(self, net: nn.Module, info: dict | None = None, lm_head: nn.Linear | None = None):
        super().__init__()
        self.net = net  # a *ForTokenClassification with num_labels == 1 (in memory) and no dropout
        self.info = info or default_prm_info()
        self.lm_head = lm_head  # the likelihood feature's (module docstring); None without it
        self.likelihood_scale = nn.Parameter(torch.tensor([1.0, 2.0])) if lm_head is not None else None
        self.info["likelihood_feature"] = lm_head is not None
        self.lora_scaling: dict[str, float] = {}  # adapted module name (wrapper keys) -> alpha / r; {} = no LoRA

    # --- construction ------------------------------------------------------------------------------------------

    @classmethod
    def from_backbone(cls, backbone: str | os.PathLike, dtype: torch.dtype = torch.float32, **info: Any):
        """A fresh PRM on a causal-LM checkpoint: the LM head is dropped, the reward head starts at zero (p = 0.5)."""
        from transformers import AutoConfig, AutoModelForTokenClassification

        config = AutoConfig.from_pretrained(backbone)
        _prepare_config(config)
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the "lm_head unexpected / score missing" report is expected here
        try:
            net = AutoModelForTokenClassification.from_pretrained(backbone, config=config, dtype=dtype)
        finally:
            hf_logging.set_verbosity(verbosity)
        head = net.score
        nn.init.zeros_(head.weight)
        if head.bias is not None:
            nn.init.zeros_(head.bias)
        lm_head = None
        if info.pop("likelihood_feature", False):
            lm_head = lm_head_from(output_embedding(Path(backbone), config).to(dtype))
        return cls(net, default_prm_info(**info), lm_head)

    @classmethod
    def from_config(cls, config, **info: Any):
        from transformers import AutoModelForTokenClassification

        _prepare_config(config)
        net = AutoModelForTokenClassification.from_config(config)
        nn.init.zeros_(net.score.weight)
        if net.score.bias is not None:
            nn.init.zeros_(net.score.bias)
        return cls(net, default_prm_info(**info))

    # --- the forward pass --------------------------------------------------------------------------------------

    @property
    def backbone(self) -> nn.Module:
        return getattr(self.net, self.net.base_model_prefix)

    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None, use_cache=False,
                solution_start=None):
        """``solution_start`` ([batch] token index of each row's first solution token) is read only by a PRM with
        the likelihood feature, which needs it."""
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                            past_key_values=past_key_values, use_cache=use_cache)
        logits = self.net.score(out.last_hidden_state).squeeze(-1).float()
        if self.lm_head is not None:
            if solution_start is None or past_key_values is not None:
                raise ValueError("this PRM reads the likelihood of the solution's tokens: pass solution_start, "
                                 "and the whole sequence (no KV-cache continuation)")
            weakest = self.weakest_token_logprob(input_ids, out.last_hidden_state, attention_mask, solution_start)
            scale = self.likelihood_scale.float()
            logits = logits + scale[0] * weakest + scale[1]
        return logits, (out.past_key_values if use_cache else None)

    def weakest_token_logprob(self, input_ids, hidden, attention_mask, solution_start):
        """[batch, seq]: min over the solution's tokens u <= t of log p(x_u | x_<u); 0 before the solution."""
        logprob = torch.log_softmax(self.lm_head(hidden[:, :-1]).float(), dim=-1)
        logprob = logprob.gather(-1, input_ids[:, 1:, None]).squeeze(-1)
        logprob = nn.functional.pad(logprob, (1, 0))  # token 0 has no prediction
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None]
        counted = positions >= solution_start.to(input_ids.device)[:, None]
        if attention_mask is not None:
            counted = counted & attention_mask.bool()
        logprob = torch.where(counted, logprob, torch.zeros_like(logprob))
        return torch.cummin(logprob, dim=1).values

    # --- training set-up ---------------------------------------------------------------------------------------

    def freeze_embeddings_and_norms(self) -> int:
        """Freeze the backbone's input embeddings and norms (the paper's setting); returns #frozen tensors."""
        return freeze_embeddings_and_norms(self.net)

    def freeze_backbone(self) -> int:
        """Train the heads only (the reward head, the likelihood scale); the backbone and LM head stay as loaded.
        Returns #frozen tensors."""
        frozen = 0
        for name, param in self.named_parameters():
            if not (name.startswith("net.score.") or name == "likelihood_scale"):
                param.requires_grad_(False)
                frozen += 1
        return frozen

    def apply_lora(self, rank: int, alpha: float, dropout: float = 0.0,
                   target_modules: list[str] | str = "all-linear") -> int:
        """Inject peft LoRA adapters into the backbone (``"all-linear"``: every attention and MLP projection) and
        freeze the rest of the backbone; the reward head stays fully trainable. Returns #trainable parameters.

        >>> model.apply_lora(rank=8, alpha=16)   # q/k/v/o/gate/up/down_proj -> lora.Linear (base_layer + A, B)
        """
        try:
            from peft import LoraConfig, inject_adapter_in_model
            from peft.tuners.lora import LoraLayer
        except ImportError as err:  # pragma: no cover - depends on the install
            raise RuntimeError("prm.lora_rank > 0 needs peft: pip install peft") from err

        config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules,
                            bias="none")
        inject_adapter_in_model(config, self.backbone)  # in place; peft freezes every non-adapter backbone tensor
        prefix = f"net.{self.net.base_model_prefix}."
        self.lora_scaling = {prefix + name: float(module.scaling["default"])
                             for name, module in self.backbone.named_modules() if isinstance(module, LoraLayer)}
        if not self.lora_scaling:
            raise ValueError(f"LoRA target_modules {target_modules!r} matched no layer of the backbone")
        for param in self.net.score.parameters():
            param.requires_grad_(True)
        self.info = {**self.info, "lora": {"rank": rank, "alpha": alpha, "merged_on_save": True}}
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    # --- saving ------------------------------------------------------------------------------------------------

    def save_pretrained(self, directory: str | os.PathLike, tokenizer=None, state_dict: dict | None = None) -> None:
        """Write the HF checkpoint + prm_config.json (+ tokenizer). ``state_dict`` is the wrapper's (keys 'net.*'),
        e.g. gathered from a ZeRO-3 engine; default: this module's own."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.lora_scaling:  # a folder anyone can load: adapters merged, no peft key left
            state_dict = merge_lora(self.state_dict() if state_dict is None else state_dict, self.lora_scaling)
        if state_dict is None:
            state_dict = self.state_dict()
        likelihood = {k: state_dict[k] for k in LIKELIHOOD_KEYS if k in state_dict}
        net_state = two_label_head({k.removeprefix("net."): v for k, v in state_dict.items()
                                    if k not in LIKELIHOOD_KEYS})
        in_memory = self.net.config
        self.net.config = copy.deepcopy(in_memory)  # the saved config names two labels; training keeps one
        self.net.config.id2label = dict(HEAD_LABELS)
        self.net.config.label2id = {name: index for index, name in HEAD_LABELS.items()}
        try:
            self.net.save_pretrained(directory, state_dict=net_state)
        finally:
            self.net.config = in_memory
        if tokenizer is not None:
            tokenizer.save_pretrained(directory)
        if likelihood:
            from safetensors.torch import save_file

            save_file({k: v.detach().contiguous().cpu() for k, v in likelihood.items()}, directory / LIKELIHOOD_FILE)
        info = {**self.info, "head": "two_label_softmax"}
        (directory / PRM_CONFIG_NAME).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def two_label_head(net_state: dict) -> dict:
    """The in-memory 1-row reward head -> the saved 2-label head: rows [0, w] (and biases [0, b]), so that
    softmax over the labels is (1 - sigmoid(z), sigmoid(z)). Other tensors are passed through."""
    out = dict(net_state)
    for name in ("score.weight", "score.bias"):
        value = out.get(name)
        if value is not None:
            if value.shape[0] != 1:
                raise ValueError(f"{name} has {value.shape[0]} rows; the in-memory reward head has one")
            out[name] = torch.cat([torch.zeros_like(value), value])
    return out


def one_label_head(net) -> None:
    """In place: a loaded 2-label ``*ForTokenClassification`` -> the 1-row reward head e2h computes with,
    z = logit("correct") - logit("incorrect") (softmax's p("correct") = sigmoid(z)). For a head saved by
    :func:`two_label_head` the "incorrect" row is 0 and the row is recovered exactly."""
    label2id = {str(k): int(v) for k, v in (net.config.label2id or {}).items()}
    positive = label2id.get(POSITIVE_LABEL, 1)
    negative = 1 - positive
    old = net.score
    head = nn.Linear(old.in_features, 1, bias=old.bias is not None, device=old.weight.device,
                     dtype=old.weight.dtype)
    with torch.no_grad():
        head.weight.copy_(old.weight[positive:positive + 1] - old.weight[negative:negative + 1])
        if old.bias is not None:
            head.bias.copy_(old.bias[positive:positive + 1] - old.bias[negative:negative + 1])
    net.score = head
    net.num_labels = 1
    _prepare_config(net.config)


def merge_lora(state: dict, scaling: dict[str, float], adapter: str = "default") -> dict:
    """A state dict with peft LoRA layers -> the plain model's keys with W' = W + scaling * B @ A (what peft's
    merge_and_unload computes), one tensor at a time so a gathered 34B state is not copied whole.

    >>> merge_lora({"m.q.base_layer.weight": W, "m.q.lora_A.default.weight": A, "m.q.lora_B.default.weight": B},
    ...            {"m.q": 2.0})
    {'m.q.weight': W + 2.0 * B @ A}
    """
    merged = {}
    for key, value in state.items():
        if f".lora_A.{adapter}." in key or f".lora_B.{adapter}." in key:
            continue
        module, sep, leaf = key.partition(".base_layer.")
        if sep:
            if leaf == "weight" and module in scaling:
                a = state[f"{module}.lora_A.{adapter}.weight"].float()
                b = state[f"{module}.lora_B.{adapter}.weight"].float()
                value = (value.float() + scaling[module] * (b @ a)).to(value.dtype)
            key = f"{module}.{leaf}"
        merged[key] = value
    return merged


def _prepare_config(config) -> None:
    config.num_labels = 1
    config.classifier_dropout = 0.0  # deterministic training; the reference head has no dropout
    config.id2label = {0: "reward"}
    config.label2id = {"reward": 0}


def is_released_format(directory: str | os.PathLike) -> bool:
    """A folder without prm_config.json whose architecture is a *ForCausalLM (the authors' released RMs)."""
    directory = Path(directory)
    if (directory / PRM_CONFIG_NAME).exists():
        return False
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    return any(arch.endswith("ForCausalLM") for arch in config.get("architectures") or [])


def head_from_released_lm_head(weight: torch.Tensor) -> torch.Tensor:
    """[vocab, hidden] lm_head of a released RM -> [1, hidden] head with the same reward logit.

    Raises if the rows do not repeat a 2-row pattern: a plain language model loaded by mistake would otherwise
    give meaningless but plausible-looking scores.
    """
    pattern, block_rows = weight[:2], 4096  # compared a block of rows at a time: no lm_head-sized temporary
    if not all(torch.equal(block, pattern.repeat((len(block) + 1) // 2, 1)[: len(block)])
               for block in weight.split(block_rows)):
        raise ValueError("not a released reward checkpoint: its lm_head rows do not repeat a 2-row reward head "
                         "(is this a plain language model? train a PRM with `e2h train-prm` first)")
    return weight.float().mean(dim=0, keepdim=True)


def _checkpoint_tensor(directory: Path, names: list[str]) -> torch.Tensor:
    """One tensor of a HF checkpoint folder, read alone (the first of ``names`` it holds), in its stored dtype:
    from the one safetensors shard that has it (``*.index.json`` says which), else from a torch ``.bin`` shard
    memory-mapped (nothing else of that shard is read)."""
    for suffix, single in (("safetensors", "model.safetensors"), ("bin", "pytorch_model.bin")):
        index = directory / f"{single}.index.json"
        if index.exists():
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            found = [(name, directory / weight_map[name]) for name in names if name in weight_map]
        elif (directory / single).exists():
            found = [(name, directory / single) for name in names]
        else:
            continue
        for name, file in found:
            if suffix == "safetensors":
                from safetensors import safe_open

                with safe_open(file, framework="pt", device="cpu") as shard:
                    if name in shard.keys():
                        return shard.get_tensor(name)
            else:
                try:
                    state = torch.load(file, map_location="cpu", mmap=True, weights_only=True)
                except RuntimeError:  # a .bin in torch's legacy (non-zip) format cannot be memory-mapped
                    state = torch.load(file, map_location="cpu", weights_only=True)
                if name in state:
                    return state[name].clone()  # a copy of this tensor only; the mapping is closed with `state`
        raise KeyError(f"{directory}: the checkpoint holds none of {names}")
    raise FileNotFoundError(f"{directory}: no model.safetensors / pytorch_model.bin (or their .index.json)")


def output_embedding(directory: str | os.PathLike, config=None) -> torch.Tensor:
    """A causal-LM folder's [vocab, hidden] lm_head tensor alone, as stored (no model is built: the causal LM's
    skeleton on the meta device only names the tensor; a tied head reads the input embeddings)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    directory = Path(directory)
    config = config if config is not None else AutoConfig.from_pretrained(directory)
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    out = skeleton.get_output_embeddings().weight
    names = [name for name, param in skeleton.named_parameters(remove_duplicate=False) if param is out]
    return _checkpoint_tensor(directory, names)


def lm_head_from(weight: torch.Tensor) -> nn.Linear:
    """A bias-free [vocab, hidden] LM head holding ``weight`` (in its dtype), for the likelihood feature."""
    lm_head = nn.Linear(weight.shape[1], weight.shape[0], bias=False, dtype=weight.dtype)
    with torch.no_grad():
        lm_head.weight.copy_(weight)
    return lm_head


def released_head(directory: str | os.PathLike, config=None) -> torch.Tensor:
    """The [1, hidden] fp32 head of a released-format folder, from its lm_head tensor alone."""
    return head_from_released_lm_head(output_embedding(directory, config))


def load_reward_model(directory: str | os.PathLike, device: str | torch.device = "cpu",
                      dtype: torch.dtype | None = None):
    """Load a PRM folder (our format or the released LlamaForCausalLM format). Returns (model, tokenizer, info).

    A released folder is read once, in ``dtype`` (default fp32), each tensor converted as it is read: the head
    comes from the lm_head tensor alone (:func:`released_head`, checked before anything else is loaded), and the
    backbone is loaded straight into a ``*ForTokenClassification`` (transformers builds it on the meta device and
    fills it shard by shard; the lm_head is never loaded into it). Peak memory is about one copy of the model in
    ``dtype`` plus one lm_head, not two fp32 copies (~270 GB for a 34B model)."""
    from transformers import AutoConfig, AutoModelForTokenClassification, AutoTokenizer

    directory = Path(directory)
    if not (directory / "config.json").exists():
        raise FileNotFoundError(f"{directory} is not a model folder (no config.json)")
    dtype = dtype or torch.float32
    tokenizer = AutoTokenizer.from_pretrained(directory)
    if is_released_format(directory):
        config = AutoConfig.from_pretrained(directory)
        head = released_head(directory, config)  # raises for a plain language model before the backbone loads
        _prepare_config(config)
        config.token_classification_bias = False
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # "lm_head unexpected / score missing" is expected here
        try:
            net = AutoModelForTokenClassification.from_pretrained(directory, config=config, dtype=dtype)
        finally:
            hf_logging.set_verbosity(verbosity)
        with torch.no_grad():
            net.score.weight.copy_(head)  # the fp32 mean row, rounded once to dtype
        info = default_prm_info(kind="released")
        log.info("loaded %s as a released reward checkpoint (reward = mean lm_head logit)", directory)
    else:
        info = json.loads((directory / PRM_CONFIG_NAME).read_text(encoding="utf-8"))
        if info.get("format") != FORMAT:
            raise ValueError(f"{directory / PRM_CONFIG_NAME}: format is {info.get('format')!r}, expected {FORMAT!r}")
        net = AutoModelForTokenClassification.from_pretrained(directory, dtype=torch.float32)
        if net.config.num_labels == 2:  # version 3: the two-label head plain transformers reads (docstring)
            one_label_head(net)
        elif net.config.num_labels != 1:
            raise ValueError(f"{directory}: a PRM head has one or two labels, this config has "
                             f"{net.config.num_labels}")
    lm_head = None
    if info.get("likelihood_feature"):
        from safetensors.torch import load_file

        tensors = load_file(directory / LIKELIHOOD_FILE)
        lm_head = lm_head_from(tensors["lm_head.weight"])
    model = RewardModel(net, info, lm_head)
    if lm_head is not None:
        with torch.no_grad():
            model.likelihood_scale.copy_(tensors["likelihood_scale"])
    model = model.to(device=device, dtype=dtype).eval()
    return model, tokenizer, info
