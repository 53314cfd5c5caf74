#!/usr/bin/env bash
# with_postgres.sh COMMAND [ARG...]: runs COMMAND with TIDINGS_BENCH_PG_URL
# set to a private PostgreSQL server (scripts/start-postgres.sh: a free
# loopback port, a temporary data folder, fsync on), stopped again when the
# command ends, whatever its outcome. A URL already set is used as it is.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${TIDINGS_BENCH_PG_URL:-}" ]; then
  exec "$@"
fi
state=$(mktemp "${TMPDIR:-/tmp}/tidings-bench-pg.XXXXXX")
rm -f "$state"
trap 'bash "$here/scripts/stop-postgres.sh" "$state"' EXIT
if url=$(bash "$here/scripts/start-postgres.sh" "$state"); then
  export TIDINGS_BENCH_PG_URL=$url
else
  echo "with_postgres: no PostgreSQL server; its figures are skipped" >&2
fi
"$@"
