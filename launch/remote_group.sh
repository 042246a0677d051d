#!/usr/bin/env bash
# Run on each host by launch/multinode_ssh.sh, over ssh: runs COMMAND in a process group of its own and ends that
# whole group (torchrun and every worker it started) when the launching side goes away, that is when this
# script's standard input reaches end-of-file. The launcher never writes to it; ssh closes it when the launcher
# or its ssh ends, however that happens (Ctrl-C, kill, kill -9, a closed connection). Also ends the group on
# SIGHUP / SIGINT / SIGTERM, and ends what COMMAND leaves in the group when it exits by itself. Exits with
# COMMAND's status, or 143 when it had to end it.
#
#   bash launch/remote_group.sh COMMAND [ARGS...]
#
# The group gets SIGTERM, then SIGKILL after E2H_STOP_GRACE seconds (10).
set -uo pipefail

setsid "$@" </dev/null &  # a background child is no group leader: setsid execs COMMAND in place, pid = group id
pid=$!

stop() {
  local i
  # before setsid has run the group does not exist yet: then COMMAND has not started and ending $pid is enough
  kill -TERM -- "-$pid" 2>/dev/null || { kill -TERM "$pid" 2>/dev/null; return 0; }
  for ((i = 0; i < ${E2H_STOP_GRACE:-10} * 2; i++)); do
    kill -0 -- "-$pid" 2>/dev/null || return 0
    sleep 0.5
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
}
trap 'stop; exit 143' HUP INT TERM

while kill -0 "$pid" 2>/dev/null; do
  read -r -t 1 _
  if (($? == 1)); then  # end-of-file (a timeout is > 128): the launcher is gone
    echo "remote_group: the launcher went away: ending $1 on $(hostname)" >&2
    stop
    exit 143
  fi
done
wait "$pid"
rc=$?
stop  # what COMMAND left behind in its group (workers of a torchrun that died) goes too
exit "$rc"
