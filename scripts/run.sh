#!/usr/bin/env bash
# run.sh: what `make run` does until the shop's HTTP server exists (issue 5):
# create the store under the data folder and show how to use it.
set -euo pipefail
build=$1
data=$2
mkdir -p "$data"
export TIDINGS_DB="sqlite:$data/tidings.db"
"$build/tidings" init
cat <<MSG

The shop's HTTP server is not built yet; the event store is ready. Try:
  $build/tidings append order-1 OrderCreated '{"total_amount":1999,"currency":"USD"}'
  $build/tidings events
  $build/tidings stats
(store: $TIDINGS_DB; set TIDINGS_DB or pass --db URL to use another)
MSG
