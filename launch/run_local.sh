#!/usr/bin/env bash
# One machine, N processes: torchrun on 127.0.0.1 with a free port. The same path the Slurm scripts take on each
# node (python -m e2h COMMAND under torchrun), so a 2-process CPU run here exercises the multi-node code.
#
#   launch/run_local.sh [--nproc N] [--dry-run] COMMAND CONFIG [key.path=value ...] [-- extra arguments]
#   launch/run_local.sh --nproc 2 train-prm configs/demo.yaml prm.epochs=1
#   launch/run_local.sh --nproc 2 doctor configs/demo.yaml -- --timeout 30
#
# --nproc defaults to the GPUs nvidia-smi sees, else 1. torchrun only (--launcher deepspeed is refused). Run it
# inside scripts/loopback.sh on shared machines.
e2h_usage() { sed -n '2,/^$/{/^#[^!]/s/^# \{0,1\}//p}' "$0"; }
E2H_ROOT=${E2H_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
source "$E2H_ROOT/launch/common.sh"
e2h_parse_command_args "$@"
e2h_torchrun_only run_local.sh "it starts torchrun on this machine; for DeepSpeed's launcher run deepspeed --num_gpus N --module e2h ..."
if [[ -z $GPUS_ARG ]]; then
  GPUS_ARG=1
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then GPUS_ARG=$(nvidia-smi -L | grep -c '^GPU'); fi
fi
PORT=${PORT_ARG:-$("$E2H_PYTHON" -m e2h.loopback)}
export MASTER_ADDR=127.0.0.1 MASTER_PORT=$PORT
e2h_cli_args "$COMMAND"
e2h_log "e2h $COMMAND: $GPUS_ARG process(es) on 127.0.0.1:$PORT"
e2h_run torchrun --nnodes=1 --nproc_per_node="$GPUS_ARG" --master_addr=127.0.0.1 --master_port="$PORT" \
  --max_restarts=0 "${E2H_CLI[@]}"
