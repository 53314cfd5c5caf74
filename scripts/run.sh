#!/usr/bin/env bash
# run.sh: what `make run` does: serve the shop on http://127.0.0.1:8080 with
# its SQLite store and mail under ./data (override with LISTEN and DATA).
set -euo pipefail
build=$1
data=$2
listen=${LISTEN:-127.0.0.1:8080}
exec "$build/shop" serve --listen "$listen" --data "$data"
