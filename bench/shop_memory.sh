#!/usr/bin/env bash
# shop_memory.sh BUILD: the shop's memory as orders pile up. One `shop
# serve` on a fresh store takes ORDERS (200,000) orders from `shop load`
# (16 clients, paced at RATE, 1,000 orders/s; its customers log in with
# passwords, so logins are not throttled here), in chunks; after each chunk,
# once every subscription has caught up, it prints the server's resident
# set (VmRSS) and its high-water mark (VmHWM). The last lines are the RSS
# after FIRST (20,000) and after all the orders, and their ratio, which
# docs/benchmarks.md says must stay at most 1.5: what the shop keeps per
# order is bounded (see docs/internals/shop.md, "Memory").
set -euo pipefail
build=$1
orders=${ORDERS:-200000}
first=${FIRST:-20000}
chunk=${CHUNK:-20000}
rate=${RATE:-1000}
dir=$(mktemp -d)
pid=
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
"$build/shop" serve --listen 127.0.0.1:0 --data "$dir/data" --log-level error \
  --auth-limit 100000 >"$dir/out" 2>&1 &
pid=$!
for _ in $(seq 200); do
  grep -q 'listening on' "$dir/out" 2>/dev/null && break
  sleep 0.05
done
url=$(grep -o 'http://127.0.0.1:[0-9]*' "$dir/out" | head -1)
[ -n "$url" ] || { cat "$dir/out"; exit 1; }

kib() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$pid/status"; }
kill -0 "$pid" # the shop is up
caught_up() {
  for _ in $(seq 1200); do
    lag=$(curl -s -H "Authorization: Bearer $(cat "$dir/data/admin.key")" "$url/health" |
      jq '[.subscriptions[].lag_events] | add' 2>/dev/null || true)
    [ "$lag" = 0 ] && return 0
    sleep 0.1
  done
  echo "the shop did not catch up" >&2
  exit 1
}
done_orders=0
rss_first=
while [ "$done_orders" -lt "$orders" ]; do
  n=$chunk
  [ "$done_orders" -lt "$first" ] && [ $((done_orders + n)) -gt "$first" ] && n=$((first - done_orders))
  [ $((done_orders + n)) -gt "$orders" ] && n=$((orders - done_orders))
  "$build/shop" load --url "$url" --orders "$n" --concurrency 16 --decline-rate 0.1 \
    --rate "$rate" --seed "$done_orders" --key-file "$dir/data/admin.key" >"$dir/load" ||
    { tail -3 "$dir/load"; exit 1; }
  done_orders=$((done_orders + n))
  caught_up
  kill -0 "$pid" || { echo "the shop died" >&2; exit 1; }
  rss=$(kib VmRSS)
  echo "orders $done_orders: rss_kib $rss hwm_kib $(kib VmHWM) ($(grep '^orders_per_s' "$dir/load"))"
  [ "$done_orders" = "$first" ] && rss_first=$rss
done
echo "rss_kib_after_${first}_orders: $rss_first"
echo "rss_kib_after_${orders}_orders: $rss"
awk -v a="$rss_first" -v b="$rss" 'BEGIN { printf "ratio rss_%d_vs_%d: %.2f\n", '"$orders"', '"$first"', b / a }'
