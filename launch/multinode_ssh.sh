#!/usr/bin/env bash
# Several machines without Slurm: a hostfile and ssh. One torchrun per host (started over ssh, in the same
# directory on shared disk), static rendezvous on the first host. Every host must reach the first one on --port,
# and this machine must ssh to every host without a password.
#
#   launch/multinode_ssh.sh --hostfile hosts.txt COMMAND CONFIG [key.path=value ...] [-- extra arguments]
#   launch/multinode_ssh.sh --hostfile hosts.txt --gpus-per-node 8 train-prm configs/llemma-7b-prm800k-level1-3.yaml
#   launch/multinode_ssh.sh --hostfile hosts.txt --dry-run doctor configs/demo.yaml    # print the commands
#
# hostfile: one host a line, "host" or "host slots=8" (DeepSpeed/MPI style), # comments. --gpus-per-node
# defaults to the first host's slots. Options: --dry-run, --nodes N (the first N hosts), --port P (29500),
# --no-doctor (skip the preflight `e2h doctor` all-reduce across all hosts).
# E2H_ENV_FILE (a file on shared disk that activates the venv and sets NCCL_SOCKET_IFNAME, ...) is sourced on
# every host before torchrun. With the DeepSpeed launcher instead: `deepspeed --hostfile hosts.txt
# --no_local_rank --module e2h.cli train-prm --config CONFIG` from the first host (it uses pdsh/ssh itself).
e2h_usage() { sed -n '2,/^$/{/^#[^!]/s/^# \{0,1\}//p}' "$0"; }
E2H_ROOT=${E2H_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
source "$E2H_ROOT/launch/common.sh"
e2h_parse_command_args "$@"
[[ -n $HOSTFILE_ARG ]] || e2h_die "--hostfile is required"
mapfile -t HOSTS < <(e2h_hostfile_hosts "$HOSTFILE_ARG")
e2h_select_nodes
e2h_multi_node_env
if [[ -z $GPUS_ARG ]]; then
  GPUS_ARG=$(awk '{sub(/#.*/, "")} NF {for (i = 2; i <= NF; i++) if ($i ~ /^slots=/) {sub(/slots=/, "", $i); print $i}; exit}' "$HOSTFILE_ARG")
  [[ -n $GPUS_ARG ]] || e2h_die "the hostfile has no slots=N: pass --gpus-per-node"
fi
e2h_is_positive_int "$GPUS_ARG" || e2h_die "slots / --gpus-per-node must be a positive integer, got '$GPUS_ARG'"
PORT=${PORT_ARG:-29500}
e2h_log "e2h $COMMAND on $NNODES host(s) x $GPUS_ARG process(es), master $MASTER_NODE:$PORT"

# One line per host: cd here, optional env file, torchrun with this host's node rank.
remote_line() {
  local rank=$1
  shift
  local line="cd $(printf %q "$PWD")"
  [[ -z ${E2H_ENV_FILE:-} ]] || line+=" && source $(printf %q "$E2H_ENV_FILE")"
  line+=" && exec torchrun --nnodes=$NNODES --node_rank=$rank --nproc_per_node=$GPUS_ARG"
  line+=" --master_addr=$MASTER_NODE --master_port=$PORT --max_restarts=0 $(e2h_quote "$@")"
  echo "$line"
}

# Start one torchrun per host, wait for all; if one fails the others are ended (by pid) instead of waiting
# for a rendezvous that cannot complete.
run_on_all_hosts() {
  E2H_BG_PIDS=()
  local rank
  for rank in "${!NODES[@]}"; do
    e2h_run_bg ssh -o BatchMode=yes "${NODES[rank]}" "$(remote_line "$rank" "$@")"
  done
  [[ $DRY_RUN == 1 ]] && return 0
  local failed=0 pid
  while ((${#E2H_BG_PIDS[@]})); do
    if ! wait -n "${E2H_BG_PIDS[@]}"; then failed=1; break; fi
    local alive=()
    for pid in "${E2H_BG_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
    E2H_BG_PIDS=("${alive[@]}")
  done
  if ((failed)); then
    e2h_log "a host failed: ending the others"
    for pid in "${E2H_BG_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait || true
    return 1
  fi
}

if [[ $RUN_DOCTOR == 1 && $COMMAND != doctor ]]; then
  run_on_all_hosts -m e2h.cli doctor --config "$CONFIG" "${OVERRIDES[@]}" --timeout "${E2H_DOCTOR_TIMEOUT:-120}"
fi
e2h_cli_args "$COMMAND"
run_on_all_hosts "${E2H_CLI[@]}"
