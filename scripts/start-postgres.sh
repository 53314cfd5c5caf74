#!/usr/bin/env bash
# start-postgres.sh: starts a private PostgreSQL server for tests and
# benchmarks and prints its URL (postgres://tidings@127.0.0.1:PORT/tidings).
#
#   scripts/start-postgres.sh [STATE_FILE]
#
# The server listens on 127.0.0.1 only, on a port picked free at run time,
# with its data, its socket and its log in a new temporary folder, and
# fsync on (tests of durability must be honest). PostgreSQL refuses to run
# as root, so as root it runs as the user `postgres` (Debian's package makes
# it). STATE_FILE (default: the folder's `state`) records the folder, the
# server's pid and its URL for scripts/stop-postgres.sh; a server still
# recorded there is stopped first. Nothing else is touched: not the
# cluster Debian's package may have made on port 5432, nor any process this
# script did not start.
set -euo pipefail

bin=${PG_BIN:-}
if [ -z "$bin" ]; then
  for v in /usr/lib/postgresql/*/bin; do bin=$v; done
fi
if [ ! -x "$bin/initdb" ]; then
  echo "start-postgres: no PostgreSQL server found (scripts/install-deps.sh installs it)" >&2
  exit 1
fi

here=$(cd "$(dirname "$0")" && pwd)
state=${1:-}
if [ -n "$state" ] && [ -f "$state" ]; then
  bash "$here/stop-postgres.sh" "$state" || true
fi

as_owner=()
owner=$(id -un)
if [ "$(id -u)" -eq 0 ]; then
  owner=postgres
  as_owner=(runuser -u postgres --)
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/tidings-pg-XXXXXX")
chmod 0755 "$dir"
chown "$owner" "$dir"
[ -n "$state" ] || state=$dir/state

"${as_owner[@]}" "$bin/initdb" -D "$dir/data" -U tidings --auth=trust -E UTF8 --no-locale \
  --no-sync >"$dir/initdb.log" 2>&1 || {
  cat "$dir/initdb.log" >&2
  rm -rf "$dir"
  exit 1
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A port found free may be taken before the server binds it: then another.
started=
for attempt in 1 2 3 4 5; do
  port=$(free_port)
  cat >"$dir/data/postgresql.auto.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = on
synchronous_commit = on
max_connections = ${PG_MAX_CONNECTIONS:-400}
shared_buffers = 128MB
max_wal_size = 1GB
log_min_messages = warning
log_min_error_statement = panic
EOF
  if "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
    >/dev/null 2>&1; then
    started=1
    break
  fi
  grep -q "could not bind\|already in use" "$dir/server.log" 2>/dev/null || break
done
if [ -z "$started" ]; then
  echo "start-postgres: the server did not start:" >&2
  tail -20 "$dir/server.log" >&2 || true
  rm -rf "$dir"
  exit 1
fi

pid=$(head -1 "$dir/data/postmaster.pid")
url="postgres://tidings@127.0.0.1:$port/tidings"
"${as_owner[@]}" "$bin/psql" -qX -h "$dir" -p "$port" -U tidings -d postgres \
  -c "CREATE DATABASE tidings" >/dev/null
{
  echo "dir=$dir"
  echo "pid=$pid"
  echo "port=$port"
  echo "bin=$bin"
  echo "url=$url"
} >"$state"
echo "$url"
