#!/usr/bin/env bash
# The whole test suite: set up .venv if needed, then pytest inside a loopback-only network namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
bash scripts/setup_system.sh
source scripts/env.sh
# the session stamp: debris cleaning at exit removes only what was created after it
stamp=$(mktemp "$E2H_CACHE/tmp/session-stamp.XXXXXX")
trap 'bash scripts/clean_debris.sh "$stamp"; rm -f "$stamp"' EXIT
bash scripts/loopback.sh python -m pytest "$@"
