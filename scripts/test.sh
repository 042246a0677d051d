#!/usr/bin/env bash
# The whole test suite: set up .venv if needed, then pytest inside a loopback-only network namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
bash scripts/setup_system.sh
source scripts/env.sh
trap 'bash scripts/clean_debris.sh' EXIT
bash scripts/loopback.sh python -m pytest "$@"
