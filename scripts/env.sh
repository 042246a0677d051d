# Sourced by `make` targets and .ci/run: keeps every cache inside the work tree, the network offline,
# and the venv's tools first on PATH (ninja in particular: the system's and the venv's ninja read each
# other's build logs as stale, and DeepSpeed's JIT-built CPU ops would be rebuilt every run).
E2H_ROOT=${E2H_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
export E2H_CACHE=${E2H_CACHE:-$E2H_ROOT/.cache}
mkdir -p "$E2H_CACHE/tmp" "$E2H_CACHE/ray"
export PATH="$E2H_ROOT/.venv/bin:$PATH"
export XDG_CACHE_HOME="$E2H_CACHE/xdg" HF_HOME="$E2H_CACHE/hf" VLLM_CACHE_ROOT="$E2H_CACHE/vllm"
export TRITON_CACHE_DIR="$E2H_CACHE/triton" TORCH_EXTENSIONS_DIR="$E2H_CACHE/torch_extensions"
export RAY_TMPDIR="$E2H_CACHE/ray" TMPDIR="$E2H_CACHE/tmp" MPLCONFIGDIR="$E2H_CACHE/mpl"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1} VLLM_HOST_IP=127.0.0.1
export MASTER_ADDR=127.0.0.1 GLOO_SOCKET_IFNAME=lo TOKENIZERS_PARALLELISM=false
