# Shared by every script in launch/ (sourced, not run): argument parsing, node lists, hostfiles, and printing
# each command before running it. `--dry-run` prints the commands and runs nothing.
#
#   source "$(dirname "$0")/common.sh"
#   e2h_parse_args "$@"          # sets DRY_RUN NODES_ARG GPUS_ARG PORT_ARG LAUNCHER E2H_COMMANDS CONFIG OVERRIDES EXTRA
#   e2h_run torchrun ... -m e2h train-prm --config "$CONFIG" "${OVERRIDES[@]}"
#
# Nothing here sources scripts/env.sh: that file pins MASTER_ADDR=127.0.0.1 and GLOO_SOCKET_IFNAME=lo for the
# single-machine tests, which would break a multi-node run. Put cluster settings in E2H_ENV_FILE instead.

set -euo pipefail

E2H_PYTHON=${E2H_PYTHON:-python}

e2h_die() {
  echo "error: $*" >&2
  exit 2
}

e2h_log() {
  echo "[e2h-launch] $*"
}

# Print a command as one copy-pasteable shell line ("+ cmd", SUFFIX appended), then run it unless --dry-run.
e2h_show() {
  local suffix=$1 line
  shift
  printf -v line '%q ' "$@"
  line=${line% }
  if [[ ${E2H_PLACEHOLDERS:-0} == 1 ]]; then  # <PLACEHOLDERS> are to be read, not pasted: no backslashes
    while [[ $line == *\\[\<\>]* ]]; do line=${line//\\</<} line=${line//\\>/>}; done
    line=${line//\\\*/*}
  fi
  echo "+ $line$suffix"
}

e2h_run() {
  e2h_show "" "$@"
  if [[ "${DRY_RUN:-0}" == 1 ]]; then return 0; fi
  "$@"
}

# Same, but in the background; the pid lands in E2H_BG_PIDS so the exit trap can end it.
E2H_BG_PIDS=()
e2h_run_bg() {
  e2h_show " &" "$@"
  if [[ "${DRY_RUN:-0}" == 1 ]]; then return 0; fi
  "$@" &
  E2H_BG_PIDS+=("$!")
}

# One shell-quoted string of a command, for `bash -c` (srun running something that must expand per node).
e2h_quote() {
  local line
  printf -v line '%q ' "$@"
  echo "${line% }"
}

# Expand a Slurm node list: "gpu[01-03,07],cpu5" -> one host a line (gpu01 gpu02 gpu03 gpu07 cpu5).
# Handles zero padding, several bracket groups in one name ("r[1-2]n[1-2]") and plain names. Used when
# scontrol is not on PATH (a login container, a test); scontrol is preferred when present.
e2h_expand_nodelist() {
  local list=$1 item="" depth=0 ch i
  for ((i = 0; i < ${#list}; i++)); do
    ch=${list:i:1}
    if [[ $ch == "[" ]]; then depth=$((depth + 1)); fi
    if [[ $ch == "]" ]]; then depth=$((depth - 1)); fi
    if [[ $ch == "," && $depth == 0 ]]; then
      _e2h_expand_one "$item"
      item=""
    else
      item+=$ch
    fi
  done
  if ((depth != 0)); then e2h_die "node list '$list' has unbalanced brackets"; fi
  if [[ -n $item ]]; then _e2h_expand_one "$item"; fi
}

_e2h_expand_one() {
  local name=$1
  if [[ $name != *"["* ]]; then
    echo "$name"
    return
  fi
  local prefix=${name%%\[*} rest=${name#*\[}
  local ranges=${rest%%\]*} suffix=${rest#*\]}
  local part lo hi width n
  IFS=',' read -ra parts <<<"$ranges"
  for part in "${parts[@]}"; do
    if [[ $part =~ ^([0-9]+)-([0-9]+)$ ]]; then
      lo=${BASH_REMATCH[1]} hi=${BASH_REMATCH[2]}
    elif [[ $part =~ ^[0-9]+$ ]]; then
      lo=$part hi=$part
    else
      e2h_die "cannot parse node range '$part' in '$name'"
    fi
    width=${#lo}
    for ((n = 10#$lo; n <= 10#$hi; n++)); do
      _e2h_expand_one "$(printf '%s%0*d%s' "$prefix" "$width" "$n" "$suffix")"
    done
  done
}

# The job's hosts, one a line: scontrol when available, the parser above otherwise.
e2h_slurm_hosts() {
  local list=$1
  if command -v scontrol >/dev/null 2>&1; then
    scontrol show hostnames "$list"
  else
    e2h_expand_nodelist "$list"
  fi
}

# The Slurm job's nodes: sets HOSTS, NODES, NNODES, MASTER_NODE, NODELIST (comma-separated), WORKER_NODELIST (all
# but the first) and E2H_PLACEHOLDERS. A --dry-run outside a job (the login node: no SLURM_JOB_NODELIST) still
# prints every command, with placeholders such as <MASTER_ADDR> and <NNODES> for what only the job knows
# (E2H_PLACEHOLDERS=1); without --dry-run that is an error.
E2H_PLACEHOLDERS=0
e2h_slurm_nodes() {
  local list=${SLURM_JOB_NODELIST:-${SLURM_NODELIST:-}} text
  if [[ -z $list ]]; then
    [[ ${DRY_RUN:-0} == 1 ]] || e2h_die "SLURM_JOB_NODELIST is not set: submit with sbatch, or use launch/multinode_ssh.sh"
    E2H_PLACEHOLDERS=1
    e2h_log "not inside a Slurm job: the commands below show <PLACEHOLDERS> for what the job will know"
    HOSTS=() NODES=() NNODES=${NODES_ARG:-${SLURM_NNODES:-<NNODES>}} MASTER_NODE="<MASTER_ADDR>"
    NODELIST="<NODELIST>" WORKER_NODELIST="<WORKER_NODELIST>"
    return 0
  fi
  text=$(e2h_slurm_hosts "$list") || exit 2  # the parser's own message is already on stderr
  mapfile -t HOSTS <<<"$text"
  e2h_select_nodes
  NODELIST=$(IFS=,; echo "${NODES[*]}")
  WORKER_NODELIST=$(IFS=,; echo "${NODES[*]:1}")
}

# The job id: SLURM_JOB_ID, <JOB_ID> on a dry run outside a job, else 0.
e2h_job_id() {
  if [[ -n ${SLURM_JOB_ID:-} ]]; then
    [[ $SLURM_JOB_ID =~ ^[0-9]+$ ]] || e2h_die "SLURM_JOB_ID must be a number, got '$SLURM_JOB_ID'"
    echo "$SLURM_JOB_ID"
  elif [[ $E2H_PLACEHOLDERS == 1 ]]; then
    echo "<JOB_ID>"
  else
    echo 0
  fi
}

# Ports. Jobs can share a node, so no port is fixed: each job owns a block of 10 ports derived from its id,
#   20000 + (SLURM_JOB_ID % 1200) * 10 + OFFSET,
# between Ray's worker ports (10002-19999) and Linux's ephemeral ports (32768 and up). Offsets: 0 torch
# rendezvous (c10d store / DeepSpeed master port); 1 Ray GCS; 2 Ray dashboard (the job server); 3 Ray client
# server; 4 Ray dashboard agent (Ray's other ports are left to the OS). Two jobs only share a block when their ids
# differ by a multiple of 1200; --port P overrides. NAME is the placeholder printed on a dry run outside a job.
e2h_job_port() {
  local offset=$1 name=$2 job
  job=$(e2h_job_id)
  if [[ $job =~ ^[0-9]+$ ]]; then echo $((20000 + (10#$job % 1200) * 10 + offset)); else echo "<$name>"; fi
}

# srun's --cpus-per-task: Slurm >= 22.05 no longer hands sbatch's --cpus-per-task on to srun, so every srun states it
# (SLURM_CPUS_PER_TASK, set by sbatch --cpus-per-task). Prints nothing when the job did not ask for a number.
e2h_cpus_per_task() {
  if [[ -n ${SLURM_CPUS_PER_TASK:-} ]]; then
    echo "$SLURM_CPUS_PER_TASK"
  elif [[ $E2H_PLACEHOLDERS == 1 ]]; then
    echo "<CPUS_PER_TASK>"
  else
    e2h_log "SLURM_CPUS_PER_TASK is not set: srun gives each node's launcher Slurm's default CPUs (sbatch --cpus-per-task=N to choose)" >&2
  fi
}

# $((EXPR)) when every variable in EXPR holds a number, else "<EXPR>" (a placeholder on a dry run outside a job).
e2h_calc() {
  local expr=$1 name
  for name in $(grep -oE '[A-Za-z_][A-Za-z0-9_]*' <<<"$expr"); do
    [[ ${!name:-} =~ ^[0-9]+$ ]] || { echo "<${expr// /}>"; return 0; }
  done
  echo $((expr))
}

# Hosts from an MPI-style hostfile ("host slots=8", comments and blank lines allowed).
e2h_hostfile_hosts() {
  local file=$1
  [[ -f $file ]] || e2h_die "hostfile not found: $file"
  awk '{sub(/#.*/, "")} NF {print $1}' "$file"
}

# Processes per node: --gpus-per-node, else Slurm's view of this node's GPUs, else the GPUs nvidia-smi sees.
e2h_gpus_per_node() {
  if [[ -n ${GPUS_ARG:-} ]]; then echo "$GPUS_ARG"; return; fi
  local g=${SLURM_GPUS_ON_NODE:-${SLURM_GPUS_PER_NODE:-}}
  g=${g##*:}  # "a100:4" -> "4"
  if [[ -n $g ]]; then echo "$g"; return; fi
  if [[ $E2H_PLACEHOLDERS == 1 ]]; then echo "<GPUS_PER_NODE>"; return; fi  # not the login node's GPUs
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi -L | grep -c '^GPU' && return
  fi
  e2h_die "cannot tell how many processes to start per node: pass --gpus-per-node N"
}

# This node's address as the other nodes reach it (Ray's --node-ip-address): never a loopback one picked up from a
# hostname that /etc/hosts maps to 127.0.1.1. In order:
#   1. the interface named by NCCL_SOCKET_IFNAME, else GLOO_SOCKET_IFNAME, as the torchrun path uses them ("ib0",
#      a prefix "ib", an exact "=ib0", a list "ib0,eth0"; "^docker" exclusions are skipped): its first IPv4 address;
#   2. the source address of the route to PEER (another node of the job), then of the route to 1.1.1.1 (a lookup
#      in the routing table, nothing is sent);
#   3. the first IPv4 address of `hostname -I` that is not loopback; 4. `getent` on the host name unless loopback;
#   5. the host name itself.
e2h_node_ip() {
  local peer=${1:-} ifname=${NCCL_SOCKET_IFNAME:-${GLOO_SOCKET_IFNAME:-}} ip="" peer_ip="" name
  if [[ -n $ifname && $ifname != ^* ]]; then
    ip=$(e2h_iface_ip "$ifname")
    [[ -n $ip ]] || e2h_log "no IPv4 address on interface(s) '$ifname' (NCCL/GLOO_SOCKET_IFNAME): using the route instead" >&2
  fi
  if [[ -z $ip && -n $peer ]]; then
    if [[ $peer =~ ^[0-9.]+$ ]]; then peer_ip=$peer; else peer_ip=$(getent ahostsv4 "$peer" 2>/dev/null | awk '{print $1; exit}') || true; fi
    [[ -z $peer_ip ]] || ip=$(_e2h_route_src "$peer_ip")
  fi
  [[ -n $ip ]] || ip=$(_e2h_route_src 1.1.1.1)
  if [[ -z $ip ]]; then
    ip=$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -E '^[0-9]+(\.[0-9]+){3}$' | grep -v '^127\.' | head -n 1) || true
  fi
  name=$(hostname 2>/dev/null) || true
  if [[ -z $ip && -n $name ]]; then
    ip=$(getent ahostsv4 "$name" 2>/dev/null | awk '$1 !~ /^127\./ {print $1; exit}') || true
  fi
  echo "${ip:-$name}"
}

# The first IPv4 address on the interfaces of an NCCL-style list ("ib0,eth", "=eth0": exact; otherwise a prefix).
e2h_iface_ip() {
  local want
  IFS=',' read -ra want <<<"$1"
  ip -o -4 addr show 2>/dev/null | awk -v want="${want[*]}" '
    BEGIN { n = split(want, w, " ") }
    { for (i = 1; i <= n; i++) {
        exact = substr(w[i], 1, 1) == "="; name = exact ? substr(w[i], 2) : w[i]
        if ((exact && $2 == name) || (!exact && index($2, name) == 1)) { sub(/\/.*/, "", $4); found[i] = found[i] ? found[i] : $4 }
    } }
    END { for (i = 1; i <= n; i++) if (found[i]) { print found[i]; exit } }'
}

# The source address of the route to an IPv4 address, unless it is loopback (or there is no route).
_e2h_route_src() {
  ip -o route get "$1" 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "src") {print $(i + 1); exit}}' |
    grep -vE '^127\.' || true
}

# Scripts that start torchrun only say so instead of ignoring --launcher deepspeed.
e2h_torchrun_only() {
  [[ $LAUNCHER == torchrun ]] || e2h_die "$1 does not support --launcher $LAUNCHER: $2"
}

e2h_is_positive_int() {
  [[ $1 =~ ^[1-9][0-9]*$ ]]
}

# Parse:  [options] CONFIG [key.path=value ...] [-- extra e2h arguments]
# Options: --dry-run --nodes N --gpus-per-node G --port P --launcher torchrun|deepspeed --hostfile F
#          --command NAME (repeatable; for scripts that run several e2h commands)
#          --no-doctor (skip the `e2h doctor` preflight that runs across all nodes first; or E2H_DOCTOR=0)
e2h_parse_args() {
  DRY_RUN=${DRY_RUN:-0} NODES_ARG="" GPUS_ARG="" PORT_ARG="" LAUNCHER="torchrun" HOSTFILE_ARG=""
  E2H_COMMANDS=() CONFIG="" OVERRIDES=() EXTRA=() RUN_DOCTOR=${E2H_DOCTOR:-1}
  while (($#)); do
    case $1 in
      --dry-run) DRY_RUN=1 ;;
      --nodes) NODES_ARG=${2:?--nodes needs a value}; shift ;;
      --gpus-per-node | --nproc) GPUS_ARG=${2:?$1 needs a value}; shift ;;
      --port) PORT_ARG=${2:?--port needs a value}; shift ;;
      --launcher) LAUNCHER=${2:?--launcher needs a value}; shift ;;
      --hostfile) HOSTFILE_ARG=${2:?--hostfile needs a value}; shift ;;
      --command) E2H_COMMANDS+=("${2:?--command needs a value}"); shift ;;
      --no-doctor) RUN_DOCTOR=0 ;;
      -h | --help) e2h_usage; exit 0 ;;
      --) shift; EXTRA=("$@"); break ;;
      -*) e2h_die "unknown option '$1' (see --help)" ;;
      *)
        if [[ -z $CONFIG ]]; then
          CONFIG=$1
        elif [[ $1 == *=* ]]; then
          OVERRIDES+=("$1")
        else
          e2h_die "'$1' is not a config override of the form key.path=value"
        fi
        ;;
    esac
    shift
  done
  [[ -n $CONFIG ]] || { e2h_usage >&2; e2h_die "no config file given"; }
  [[ -f $CONFIG ]] || e2h_die "config file not found: $CONFIG"
  [[ -z $NODES_ARG ]] || e2h_is_positive_int "$NODES_ARG" || e2h_die "--nodes must be a positive integer, got '$NODES_ARG'"
  [[ -z $GPUS_ARG ]] || e2h_is_positive_int "$GPUS_ARG" || e2h_die "--gpus-per-node must be a positive integer, got '$GPUS_ARG'"
  [[ -z $PORT_ARG ]] || [[ $PORT_ARG =~ ^[0-9]+$ && $PORT_ARG -ge 1024 && $PORT_ARG -le 65535 ]] ||
    e2h_die "--port must be a number in 1024-65535, got '$PORT_ARG'"
  [[ $LAUNCHER == torchrun || $LAUNCHER == deepspeed ]] || e2h_die "--launcher must be torchrun or deepspeed, got '$LAUNCHER'"
  if [[ -n ${E2H_ENV_FILE:-} ]]; then
    [[ -f $E2H_ENV_FILE ]] || e2h_die "E2H_ENV_FILE not found: $E2H_ENV_FILE"
    # shellcheck disable=SC1090
    source "$E2H_ENV_FILE"
  fi
}

# Parse:  [options] COMMAND CONFIG [key.path=value ...] [-- extra e2h arguments]  (scripts that run any e2h
# command). COMMAND is the first word that is not an option or an option's value; the rest is e2h_parse_args'.
e2h_parse_command_args() {
  local args=()
  COMMAND=""
  while (($#)); do
    case $1 in
      --nodes | --gpus-per-node | --nproc | --port | --launcher | --hostfile | --command) args+=("$1" "${2:-}"); shift ;;
      -h | --help) e2h_usage; exit 0 ;;
      --) args+=("$@"); break ;;
      -*) args+=("$1") ;;
      *) if [[ -z $COMMAND ]]; then COMMAND=$1; else args+=("$1"); fi ;;
    esac
    shift
  done
  [[ -n $COMMAND ]] || e2h_die "no e2h command given (train-prm, sft, ppo, doctor, ...)"
  [[ $COMMAND =~ ^[a-z][a-z0-9-]*$ ]] || e2h_die "'$COMMAND' is not an e2h command name"
  e2h_parse_args "${args[@]}"
}

# Pick the first NODES hosts of HOSTS (an array), checking there are enough; sets NODES, NNODES, MASTER_NODE.
e2h_select_nodes() {
  local available=${#HOSTS[@]}
  ((available > 0)) || e2h_die "the node list is empty"
  NNODES=${NODES_ARG:-${SLURM_NNODES:-$available}}
  e2h_is_positive_int "$NNODES" || e2h_die "number of nodes must be a positive integer, got '$NNODES'"
  ((NNODES <= available)) || e2h_die "asked for $NNODES nodes but the job has $available (${HOSTS[*]})"
  NODES=("${HOSTS[@]:0:NNODES}")
  MASTER_NODE=${NODES[0]}
}

# Write (or, on --dry-run, show) a DeepSpeed/MPI hostfile: "host slots=G" per node.
e2h_write_hostfile() {
  local path=$1 slots=$2 host
  local text=""
  for host in "${NODES[@]}"; do text+="$host slots=$slots"$'\n'; done
  [[ $E2H_PLACEHOLDERS == 0 ]] || text="<one line per node> slots=$slots"$'\n'
  if [[ "${DRY_RUN:-0}" == 1 ]]; then
    e2h_log "hostfile $path (not written: dry run):"
  else
    mkdir -p "$(dirname "$path")"
    printf '%s' "$text" >"$path.tmp" && mv "$path.tmp" "$path"
    e2h_log "hostfile $path:"
  fi
  printf '%s' "$text" | sed 's/^/    /'
}

# A single node gets loopback; several nodes must not inherit the test-only loopback pinning of scripts/env.sh.
e2h_multi_node_env() {
  if [[ ${GLOO_SOCKET_IFNAME:-} == lo ]] && ! [[ $NNODES == 1 ]]; then
    e2h_log "unsetting GLOO_SOCKET_IFNAME=lo (set by scripts/env.sh for single-machine tests) for a $NNODES-node run"
    unset GLOO_SOCKET_IFNAME
  fi
}

# Where launch files (hostfiles) go: shared disk, next to the repo, one folder per job.
e2h_launch_dir() {
  local job=${SLURM_JOB_ID:-local-$$}
  [[ $E2H_PLACEHOLDERS == 0 ]] || job=$(e2h_job_id)
  echo "${E2H_LAUNCH_DIR:-${E2H_ROOT}/runs/launch/$job}"
}

# The e2h command line a rank runs: python -m e2h CMD --config CONFIG OVERRIDES EXTRA.
e2h_cli_args() {
  local cmd=$1
  E2H_CLI=(-m e2h "$cmd" --config "$CONFIG" "${OVERRIDES[@]}" "${EXTRA[@]}")
}

# A DeepSpeed training command (train-prm, sft, ppo) over the Slurm job's nodes. Runs on the first node (the
# batch step); srun starts one launcher per node. First `e2h doctor` across the same processes: a missing node
# or a blocked port then fails in --timeout seconds with a message naming the missing ranks, instead of
# hanging for the 30-minute NCCL default after minutes of model loading.
e2h_slurm_deepspeed_job() {
  local cmd=$1
  e2h_slurm_nodes
  e2h_multi_node_env
  local gpus port job cpus
  gpus=$(e2h_gpus_per_node)
  port=${PORT_ARG:-$(e2h_job_port 0 RDZV_PORT)}
  job=$(e2h_job_id)
  cpus=$(e2h_cpus_per_task)
  export MASTER_ADDR=$MASTER_NODE MASTER_PORT=$port
  e2h_log "job $job: e2h $cmd on $NNODES node(s) x $gpus process(es), master $MASTER_NODE:$port, launcher $LAUNCHER"
  e2h_log "nodes: ${NODES[*]:-$NODELIST}"
  local srun_cmd=(srun --nodes="$NNODES" --ntasks="$NNODES" --ntasks-per-node=1)
  [[ -z $cpus ]] || srun_cmd+=(--cpus-per-task="$cpus")
  srun_cmd+=(--kill-on-bad-exit=1 --nodelist="$NODELIST")
  local torchrun_cmd=(torchrun --nnodes="$NNODES" --nproc_per_node="$gpus" --rdzv_backend=c10d
    --rdzv_endpoint="$MASTER_NODE:$port" --rdzv_id="e2h-$job" --rdzv_conf="join_timeout=${E2H_JOIN_TIMEOUT:-600}"
    --max_restarts=0)
  if [[ $RUN_DOCTOR == 1 ]]; then
    e2h_run "${srun_cmd[@]}" "${torchrun_cmd[@]}" -m e2h doctor --config "$CONFIG" "${OVERRIDES[@]}" \
      --timeout "${E2H_DOCTOR_TIMEOUT:-120}"
  fi
  e2h_cli_args "$cmd"
  e2h_stop_relay
  if [[ $LAUNCHER == torchrun ]]; then
    e2h_run_relayed "${srun_cmd[@]}" "${torchrun_cmd[@]}" "${E2H_CLI[@]}"
  else
    # deepspeed's own launcher reads the hostfile; --no_ssh starts it once per node (srun does the spreading, no
    # pdsh or ssh keys needed) and each copy learns its node rank from Slurm.
    local hostfile
    hostfile=$(e2h_launch_dir)/hostfile
    e2h_write_hostfile "$hostfile" "$gpus"
    local ds_cmd
    ds_cmd="exec $(e2h_deepspeed_args "$hostfile" "\$SLURM_NODEID" "$MASTER_NODE" "$port")"
    e2h_run_relayed "${srun_cmd[@]}" bash -c "$ds_cmd"
  fi
}

# Resume on requeue (issue #21 item 1). `#SBATCH --signal=B:USR1@120` sends USR1 to this batch shell only: sent
# to the job step it would reach torchrun / the deepspeed launcher, which die on USR1 (torchrun handles only
# TERM/INT/HUP/QUIT) and take the ranks with them before they save. So the shell relays it: its trap creates
# $E2H_STOP_FILE (on the shared disk, inherited by every rank through srun and the launcher), every rank checks
# it after each optimizer step (training.GracefulStop), all save a checkpoint and exit 75; the shell then
# runs `scontrol requeue`, and the requeued job (same id) resumes from that checkpoint: resume is the default.
# Preemption's SIGTERM reaches the ranks directly and they save the same way (torchrun waits 30 s for them).
E2H_STOP_REQUESTED=0
e2h_stop_relay() {
  local dir
  dir=$(e2h_launch_dir)
  export E2H_STOP_FILE=$dir/stop
  [[ "${DRY_RUN:-0}" != 1 ]] || return 0
  mkdir -p "$dir" && rm -f "$E2H_STOP_FILE"  # a requeued job starts without the last run's request
  trap e2h_request_stop USR1
}

e2h_request_stop() {
  E2H_STOP_REQUESTED=1 E2H_WAIT_INTERRUPTED=1
  e2h_log "USR1: asking the trainers to save a checkpoint and stop ($E2H_STOP_FILE)"
  : > "$E2H_STOP_FILE"
}

# e2h_run for the trainer: in the background with a wait loop, so the USR1 trap runs while it trains; after a
# relayed stop the job requeues itself.
e2h_run_relayed() {
  e2h_show "" "$@"
  if [[ "${DRY_RUN:-0}" == 1 ]]; then return 0; fi
  "$@" &
  local pid=$! rc
  while :; do
    E2H_WAIT_INTERRUPTED=0
    rc=0
    wait "$pid" || rc=$?  # (set -e: a failing wait must not end the script here)
    (( rc > 128 && E2H_WAIT_INTERRUPTED == 1 )) || break  # else the trap cut the wait short: wait again
  done
  if [[ $E2H_STOP_REQUESTED == 1 && -n ${SLURM_JOB_ID:-} ]]; then
    e2h_log "trainer stopped (exit $rc) after saving a checkpoint: requeueing job $SLURM_JOB_ID to resume"
    scontrol requeue "$SLURM_JOB_ID"
  fi
  return "$rc"
}

# DeepSpeed's launcher on one node of several (a shell string; RANK may be "$SLURM_NODEID", expanded by that node's
# shell): the hostfile lists every node, --no_ssh starts only this node's processes.
e2h_deepspeed_args() {
  local hostfile=$1 rank=$2 master=$3 port=$4
  echo "deepspeed --hostfile=$(printf %q "$hostfile") --no_ssh --node_rank=$rank --master_addr=$master" \
    "--master_port=$port --no_local_rank $(e2h_quote --module "${E2H_CLI[@]:1}")"
}
