#!/usr/bin/env bash
# Run a command in a fresh network namespace that has only the loopback interface, so that nothing a test
# starts (torch.distributed's TCPStore listens on *:PORT, Ray, vLLM, uvicorn) can be reached from outside.
# Needs root (CI runs as root); elsewhere it says so and runs the command as is.
if [[ "${E2H_IN_LOOPBACK:-}" == 1 ]]; then exec "$@"; fi
if [[ $(id -u) == 0 ]] && command -v unshare >/dev/null; then
  exec unshare -n -- env E2H_IN_LOOPBACK=1 bash -c 'ip link set lo up && exec "$@"' _ "$@"
fi
echo "loopback.sh: not root, running without a private network namespace" >&2
exec "$@"
