#!/usr/bin/env bash
# rebuild_ab.sh: read model rebuilds of two builds on the same store, for a
# change to the rebuild: BASE's and NEW's `shop projections rebuild`, each
# read model ROUNDS times (3) per build, alternating, on one store of
# ORDERS orders (10,000) loaded through NEW's shop. Prints each run's
# events/s, the medians, and NEW's ratio to BASE.
# Usage: rebuild_ab.sh BASE_BUILD NEW_BUILD
set -euo pipefail
base=$1
new=$2
orders=${ORDERS:-10000}
rounds=${ROUNDS:-3}
. "$(dirname "$0")/lib.sh"
serve "$new" "$dir/data"
"$new/shop" load --url "$url" --orders "$orders" --concurrency 16 --decline-rate 0.1 \
  --key-file "$key_file" | tail -1
for _ in $(seq 600); do # until every subscription has caught up
  lag=$(curl -sf -H "Authorization: Bearer $(cat "$key_file")" "$url/health" |
    jq '[.subscriptions[].lag_events] | add')
  [ "$lag" = 0 ] && break
  sleep 0.1
done
kill "$pid"
wait "$pid" || true
rate() { "$1/shop" projections rebuild "$2" --db "sqlite:$dir/data/tidings.db" |
  sed -n 's/.*(\([0-9]*\) events\/s).*/\1/p'; }
for rm in user_orders product_sales stock_levels; do
  for round in $(seq "$rounds"); do
    for which in base new; do
      r=$(rate "${!which}" "$rm")
      echo "$rm $which round $round: $r events/s"
      echo "$r" >>"$dir/$rm.$which"
    done
  done
  b=$(median <"$dir/$rm.base")
  n=$(median <"$dir/$rm.new")
  echo "$rm: base $b events/s, new $n events/s, new/base $(awk -v n="$n" -v b="$b" 'BEGIN {printf "%.3f", n / b}')"
done
