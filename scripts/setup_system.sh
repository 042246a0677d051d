#!/usr/bin/env bash
# System packages the tests need: Chromium renders report.html headless (tests/test_report*.py).
# Installs only what is missing, and only where we can (root with apt-get).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
else
  echo "setup_system.sh: chromium is missing; install it (Debian: apt-get install chromium) to run the report tests" >&2
fi
