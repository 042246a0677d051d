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
# --launcher torchrun|deepspeed (default torchrun; deepspeed: DeepSpeed's launcher on every host, --no_ssh, with
# a hostfile written under runs/launch/), --no-doctor (skip the preflight `e2h doctor` all-reduce across all hosts).
# E2H_ENV_FILE (a file on shared disk that activates the venv and sets NCCL_SOCKET_IFNAME, ...) is sourced on
# every host first. E2H_SSH is the remote shell (default: ssh; e.g. "ssh -p 2222").
# On each host the command runs under launch/remote_group.sh, in a process group of its own: when this script
# ends in any way (Ctrl-C, kill, even kill -9) or a connection closes, every host ends its whole group.
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
read -ra SSH <<<"${E2H_SSH:-ssh}"
SSH+=(-o BatchMode=yes)
e2h_log "e2h $COMMAND on $NNODES host(s) x $GPUS_ARG process(es), master $MASTER_NODE:$PORT, launcher $LAUNCHER"

# One line per host: cd here, optional env file, then the command (torchrun, or DeepSpeed's launcher) with this
# host's node rank, under remote_group.sh.
remote_line() {
  local launcher=$1 rank=$2
  shift 2
  local line="cd $(printf %q "$PWD")"
  [[ -z ${E2H_ENV_FILE:-} ]] || line+=" && source $(printf %q "$E2H_ENV_FILE")"
  line+=" && exec bash $(printf %q "$E2H_ROOT/launch/remote_group.sh")"
  if [[ $launcher == torchrun ]]; then
    line+=" torchrun --nnodes=$NNODES --node_rank=$rank --nproc_per_node=$GPUS_ARG"
    line+=" --master_addr=$MASTER_NODE --master_port=$PORT --max_restarts=0 $(e2h_quote "$@")"
  else
    line+=" $(e2h_deepspeed_args "$HOSTFILE" "$rank" "$MASTER_NODE" "$PORT")"
  fi
  echo "$line"
}

# Every ssh reads its standard input from a pipe that only this script holds open for writing, and nothing is
# ever written to it: when this script ends, however it ends, the pipe closes, each ssh passes the end-of-file on
# and remote_group.sh on each host ends its command.
open_lifeline() {
  local fifo rw
  fifo=$(mktemp -u "${TMPDIR:-/tmp}/e2h-ssh.XXXXXX")
  mkfifo -m 600 "$fifo"
  exec {rw}<>"$fifo" {LIFELINE_R}<"$fifo" {LIFELINE_W}>"$fifo" {rw}>&-
  rm -f "$fifo"
}

# End the ssh processes still running (each host then ends its command) and wait for them.
stop_hosts() {
  local pid
  for pid in "${E2H_BG_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${E2H_BG_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  E2H_BG_PIDS=()
}

# Start the command on every host (LAUNCHER, then the e2h arguments), wait for all; if one fails the others are
# ended instead of waiting for a rendezvous that cannot complete.
run_on_all_hosts() {
  local launcher=$1 rank line
  shift
  E2H_BG_PIDS=()
  for rank in "${!NODES[@]}"; do
    line=$(remote_line "$launcher" "$rank" "$@")
    e2h_show " &" "${SSH[@]}" "${NODES[rank]}" "$line"
    [[ $DRY_RUN == 1 ]] && continue
    "${SSH[@]}" "${NODES[rank]}" "$line" <&"$LIFELINE_R" {LIFELINE_W}>&- &
    E2H_BG_PIDS+=("$!")
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
    stop_hosts
    return 1
  fi
}

if [[ $DRY_RUN != 1 ]]; then
  open_lifeline
  trap 'e2h_log "interrupted: ending the command on every host"; stop_hosts; exit 130' INT
  trap 'e2h_log "terminated: ending the command on every host"; stop_hosts; exit 143' TERM HUP
fi
HOSTFILE=""
if [[ $LAUNCHER == deepspeed ]]; then
  HOSTFILE=$(e2h_launch_dir)/hostfile
  e2h_write_hostfile "$HOSTFILE" "$GPUS_ARG"
fi
if [[ $RUN_DOCTOR == 1 && $COMMAND != doctor ]]; then
  run_on_all_hosts torchrun -m e2h doctor --config "$CONFIG" "${OVERRIDES[@]}" --timeout "${E2H_DOCTOR_TIMEOUT:-120}"
fi
e2h_cli_args "$COMMAND"
run_on_all_hosts "$LAUNCHER" "${E2H_CLI[@]}"
