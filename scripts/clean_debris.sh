#!/usr/bin/env bash
# What DeepSpeed, Ray, torchrun, vLLM and killed process trees leave behind outside the work tree.
#   bash scripts/clean_debris.sh STAMP
# removes only what is ours (this uid) and was created since the file STAMP was made (test.sh and demo.sh touch it
# when they start): another user's files, and files of ours from before this session, stay. Without STAMP it
# removes nothing. /dev/shm files still mapped or open by a live process (a concurrent job's) stay too (e2h.shm).
stamp=${1:-}
if [[ -z $stamp || ! -e $stamp ]]; then
  echo "clean_debris.sh: no session stamp file; nothing removed" >&2
  exit 0
fi
cd "$(dirname "$0")/.."
python -m e2h.shm --newer "$stamp" || true
# Ray's default temp dir and torch's per-run folders, when this session made them (env.sh points Ray elsewhere)
find /tmp -maxdepth 1 -user "$(id -u)" -newer "$stamp" \
  \( -name ray -o -name 'torchelastic_*' -o -name "torchinductor_$(id -un)" \) -exec rm -rf {} + 2>/dev/null
true
