#!/usr/bin/env bash
# The main job on the embedded offline world: set up .venv if needed, then `e2h demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
source scripts/env.sh
# the session stamp: debris cleaning at exit removes only what was created after it
stamp=$(mktemp "$E2H_CACHE/tmp/session-stamp.XXXXXX")
trap 'bash scripts/clean_debris.sh "$stamp"; rm -f "$stamp"' EXIT
bash scripts/loopback.sh e2h demo "$@"
