#!/usr/bin/env bash
# stop-postgres.sh: stops a server scripts/start-postgres.sh started and
# removes its folder.
#
#   scripts/stop-postgres.sh STATE_FILE
#
# Only the server recorded in STATE_FILE, by its pid: a fast shutdown
# (pg_ctl stop -m fast), then SIGKILL if it has not gone after 30 s, or if
# it is stopped (SIGSTOP, as a test of a hung server leaves it) and cannot
# shut down.
set -euo pipefail

state=${1:?usage: stop-postgres.sh STATE_FILE}
[ -f "$state" ] || exit 0
dir=$(sed -n 's/^dir=//p' "$state")
pid=$(sed -n 's/^pid=//p' "$state")
bin=$(sed -n 's/^bin=//p' "$state")

as_owner=()
[ "$(id -u)" -ne 0 ] || as_owner=(runuser -u postgres --)

alive() {
  [ -n "$pid" ] && [ -f "$dir/data/postmaster.pid" ] &&
    [ "$(head -1 "$dir/data/postmaster.pid" 2>/dev/null)" = "$pid" ] && kill -0 "$pid" 2>/dev/null
}

if alive; then
  kill -CONT "$pid" 2>/dev/null || true
  "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
  if alive; then
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 100); do alive || break; sleep 0.1; done
  fi
fi
case "$dir" in
*/tidings-pg-*) rm -rf "$dir" ;;
esac
rm -f "$state"
