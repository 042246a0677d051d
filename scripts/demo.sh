#!/usr/bin/env bash
# The main job on the embedded offline world: set up .venv if needed, then `e2h demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
source scripts/env.sh
trap 'bash scripts/clean_debris.sh' EXIT
bash scripts/loopback.sh e2h demo "$@"
