#!/usr/bin/env bash
# shop_load.sh: the shop benchmark run by `make bench`: a fresh `shop serve`
# on SQLite in a temporary folder, driven by `shop load`. Prints shop load's
# summary (its last lines: orders_per_s, order_to_final_p95_ms, consistency)
# for a baseline shop (--handlers deferred --commits each), one with eager
# handlers, and the default one (eager, pipelined commits), with the ratios;
# then rebuilds each read model and prints its events/s.
set -euo pipefail
build=$1
orders=${ORDERS:-2000}
concurrency=${CONCURRENCY:-16}
dir=$(mktemp -d)
pid=
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
# serve DATA_DIR [ARGS...]: starts `shop serve` in the background; sets pid, url.
serve() {
  local data=$1
  shift
  "$build/shop" serve --listen 127.0.0.1:0 --data "$data" --log-level error "$@" >"$data.out" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    grep -q 'listening on' "$data.out" 2>/dev/null && break
    sleep 0.05
  done
  url=$(grep -o 'http://127.0.0.1:[0-9]*' "$data.out" | head -1)
}
load() {
  "$build/shop" load --url "$url" --orders "$orders" --concurrency "$concurrency" \
    --decline-rate 0.1 ${RATE:+--rate "$RATE"}
}

# The baseline, in the same run: the saga, inventory and read models on
# their subscription lanes only, one commit's fsync at a time (--handlers
# deferred --commits each); then eager handlers alone; each on a store of
# its own. Then the default (eager, pipelined commits), which the rest of
# the benchmark uses.
run_load() { # NAME: serves, loads, stops; prints the summary, sets rate_NAME
  load >"$dir/$1.out"
  cat "$dir/$1.out"
  eval "rate_$1=\$(awk '/^orders_per_s:/ {print \$2}' \"\$dir/$1.out\")"
}
echo "shop load (baseline: --handlers deferred --commits each): $orders orders, $concurrency clients"
serve "$dir/baseline" --handlers deferred --commits each
run_load baseline
kill "$pid"
wait "$pid" || true
echo "shop load (--commits each): $orders orders, $concurrency clients"
serve "$dir/each" --commits each
run_load each
kill "$pid"
wait "$pid" || true

serve "$dir/data"
echo "shop load (default: eager, pipelined): $orders orders, $concurrency clients, against $url"
run_load default
echo "orders_per_s_baseline: $rate_baseline"
echo "orders_per_s_eager_each_commit: $rate_each"
echo "orders_per_s_eager_pipelined: $rate_default"
awk -v e="$rate_each" -v d="$rate_default" -v b="$rate_baseline" 'BEGIN {
  printf "ratio eager_vs_baseline_orders_per_s: %.2f\n", e / b
  printf "ratio eager_pipelined_vs_baseline_orders_per_s: %.2f\n", d / b
}'
# Idle live feeds must not slow other requests: the median time of 21
# GET /categories alone, then with 16 feeds open that match nothing.
get_ms() {
  for _ in $(seq 21); do curl -s -o /dev/null -w '%{time_total}\n' "$url/categories"; done |
    sort -n | awk '{t[NR] = $1} END {printf "%.2f", t[11] * 1000}'
}
alone=$(get_ms)
feeds=()
for _ in $(seq 16); do
  curl -sN "$url/events/stream?type=NothingAtAll" >/dev/null &
  feeds+=($!)
done
sleep 1
with=$(get_ms)
kill "${feeds[@]}" 2>/dev/null || true
wait "${feeds[@]}" 2>/dev/null || true
echo "get_ms_alone: $alone"
echo "get_ms_with_16_idle_feeds: $with"

# Rebuilds of each read model beside the running shop, from a log of at least
# REBUILD_ORDERS orders (10,000: about 80,000 events; a smaller log measures
# mostly start-up), three each; the command prints events/s.
more=$((${REBUILD_ORDERS:-10000} - orders))
if [ "$more" -gt 0 ]; then
  echo "shop load: $more more orders for the rebuilds"
  "$build/shop" load --url "$url" --orders "$more" --concurrency "$concurrency" \
    --decline-rate 0.1 | tail -1
fi
# Rebuild beside an idle shop: wait until every subscription has caught up
# (the e-mails and read models trail the last final status a little).
for _ in $(seq 600); do
  lag=$(curl -sf "$url/health" | jq '[.subscriptions[].lag_events] | add')
  [ "$lag" = 0 ] && break
  sleep 0.1
done
for rm in user_orders product_sales stock_levels; do
  for _ in 1 2 3; do
    "$build/shop" projections rebuild "$rm" --db "sqlite:$dir/data/tidings.db"
  done
done
