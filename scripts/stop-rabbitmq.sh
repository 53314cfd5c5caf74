#!/usr/bin/env bash
# Stops the private RabbitMQ node start-rabbitmq.sh started in DIR, and its
# epmd: only those processes, by the pids recorded in DIR. The node is asked
# to stop (SIGTERM, after a SIGCONT in case a test froze it) and killed if it
# has not stopped within 30 s. With --remove, DIR goes too.
#
#   scripts/stop-rabbitmq.sh [--remove] DIR
#
# Succeeds when nothing runs there any more, also when nothing ran.
set -uo pipefail

remove=0
if [ "${1:-}" = "--remove" ]; then
  remove=1
  shift
fi
dir="${1:?usage: stop-rabbitmq.sh [--remove] DIR}"
[ -d "$dir" ] || exit 0

stop_pid() { # pidfile grace_seconds
  local file="$1" grace="$2" pid
  [ -f "$file" ] || return 0
  pid="$(cat "$file")"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -CONT "$pid" 2>/dev/null
    kill -TERM "$pid" 2>/dev/null
    local waited=0
    while kill -0 "$pid" 2>/dev/null && [ $waited -lt $((grace * 10)) ]; do
      sleep 0.1
      waited=$((waited + 1))
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$file"
}

stop_pid "$dir/rabbit.pid" 30
stop_pid "$dir/epmd.pid" 5
[ $remove -eq 1 ] && rm -rf "$dir"
exit 0
