#!/usr/bin/env bash
# The GPU check, one prepared script (< 8 minutes on one H100/H200): bf16 PRM training throughput of e2h's step
# against a plain-torch loop, and PRMScorer throughput with and without prompt (prefix) sharing, on a 1B-class
# Llama built from config (bench/gpu_check.py explains what is measured). Results: $OUT/gpu_check.json when OUT
# is set. Nothing is downloaded. Without a GPU it says so and exits 0, so it can sit in any CI.
#
#   bash bench/gpu_check.sh                    # extra arguments go to bench/gpu_check.py (e.g. --engine torch)
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${PYTHON:-}" ]]; then
  PYTHON=python3
  [[ -x .venv/bin/python ]] && PYTHON=.venv/bin/python
fi
# a checkout without `pip install -e .` (a bare GPU machine) still imports e2h and prm
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if ! cuda=$("$PYTHON" -c 'import torch; print(torch.cuda.is_available())' 2>/dev/null); then
  echo "gpu_check: $PYTHON cannot import torch" >&2
  exit 1
fi
if [[ "$cuda" != "True" ]]; then
  echo "gpu_check: no GPU present (torch.cuda.is_available() is False); nothing to measure"
  exit 0
fi

# What the script needs beyond torch; DeepSpeed is optional (without it e2h's step runs on torch AdamW).
missing=$("$PYTHON" - <<'EOF'
import importlib.util
print(" ".join(m for m in ("transformers", "tokenizers", "pydantic", "yaml", "numpy")
               if importlib.util.find_spec(m) is None))
EOF
)
if [[ -n "$missing" ]]; then
  echo "gpu_check: missing python packages: $missing (pip install them, or put their wheels on PYTHONPATH)" >&2
  exit 1
fi
# Some GPU images set TORCH_CUDA_ARCH_LIST=9.0a; DeepSpeed's JIT build of FusedAdam parses each arch as a number
# and fails on the "a".
if [[ -n "${TORCH_CUDA_ARCH_LIST:-}" ]]; then
  export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST//a/}
fi
export TOKENIZERS_PARALLELISM=false
"$PYTHON" -c 'import torch; p = torch.cuda.get_device_properties(0); print(f"gpu_check: {p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}")'
# 450 s leaves the whole script under 8 minutes even if a step hangs
exec timeout 450 "$PYTHON" bench/gpu_check.py --device cuda "$@"
