#!/usr/bin/env bash
# shop_overload.sh: the shop offered three times what it can do. For each of
# ROUNDS (3) rounds, on fresh stores: the shop's capacity (16 clients as
# fast as they can: orders/s to a final status), then, paced at three times
# that from 128 clients, the default shop (commands on 8 workers, new orders
# started only while the handlers are within 20 ms, refused once one has
# waited 50 ms for a worker: --admit-wait, or while the handlers are 100 ms
# behind: --admit-backlog) and the same shop accepting everything
# (--admit-wait 0 --admit-backlog 0). Prints, as medians: accepted orders'
# placement and order-to-final p95 (to the live feed, and to the final
# event's time in the store), the refusals' p99, and how many were refused.
# Usage: shop_overload.sh BUILD
set -euo pipefail
build=$1
orders=${ORDERS:-6000}
. "$(dirname "$0")/lib.sh"
# run NAME ORDERS CONCURRENCY RATE [SERVE ARGS...]: one shop, one load.
run() {
  local name=$1 n=$2 c=$3 rate=$4
  shift 4
  serve "$build" "$dir/$name" --auth-limit 100000 "$@" # 128 customers log in
  "$build/shop" load --url "$url" --key-file "$dir/$name/admin.key" --orders "$n" \
    --concurrency "$c" --decline-rate 0.1 --no-retry ${rate:+--rate "$rate"} >"$dir/$name.load" 2>&1 || true
  kill "$pid"
  wait "$pid" || true
}
p() { sed -n "s/^$2: .*$3 \([0-9.]*\).*/\1/p" "$dir/$1.load" | head -1; } # p RUN LINE KEY
rounds=${ROUNDS:-3}
for round in $(seq "$rounds"); do
  run "capacity-$round" 3000 16 ""
  capacity=$(awk '/^orders_per_s:/ {print $2}' "$dir/capacity-$round.load")
  [ -n "$capacity" ] || { echo "round $round: the capacity run failed: $(tail -3 "$dir/capacity-$round.load")"; continue; }
  offered=$(awk -v c="$capacity" 'BEGIN { printf "%d", 3 * c }')
  run "shed-$round" "$orders" 128 "$offered"
  run "all-$round" "$orders" 128 "$offered" --admit-wait 0 --admit-backlog 0
  for mode in shed all; do
    f="$dir/$mode-$round.load"
    read -r placed refused failed < <(sed -n 's/^orders: \([0-9]*\) placed, \([0-9]*\) refused, \([0-9]*\) failed.*/\1 \2 \3/p' "$f") || true
    printf '%-4s round %d: capacity %s/s, offered %s/s: %s accepted, %s refused, %s failed; accepted placement p95 %s ms, order-to-final p95 %s ms (in the store %s ms); refusal p99 %s ms\n' \
      "$mode" "$round" "$capacity" "$offered" "$placed" "$refused" "$failed" \
      "$(p "$mode-$round" placement_ms p95)" "$(p "$mode-$round" order_to_final_ms p95)" \
      "$(p "$mode-$round" order_to_final_store_ms p95)" \
      "$(p "$mode-$round" refusal_ms p99)"
    echo "$(p "$mode-$round" order_to_final_ms p95)" >>"$dir/$mode.final"
    echo "$(p "$mode-$round" order_to_final_store_ms p95)" >>"$dir/$mode.store"
    echo "$(p "$mode-$round" placement_ms p95)" >>"$dir/$mode.placement"
    echo "${placed:-0}" >>"$dir/$mode.placed"
    [ -n "$(p "$mode-$round" refusal_ms p99)" ] && echo "$(p "$mode-$round" refusal_ms p99)" >>"$dir/$mode.refusal"
  done
  echo "$capacity" >>"$dir/capacity"
done
echo "overload_capacity_orders_per_s: $(median <"$dir/capacity")"
for mode in shed all; do
  label=$([ "$mode" = shed ] && echo "bounded" || echo "accept_all")
  echo "overload_${label}_accepted: $(median <"$dir/$mode.placed") of $orders"
  echo "overload_${label}_order_to_final_p95_ms: $(median <"$dir/$mode.final")"
  echo "overload_${label}_order_to_final_store_p95_ms: $(median <"$dir/$mode.store")"
  echo "overload_${label}_placement_p95_ms: $(median <"$dir/$mode.placement")"
  [ -s "$dir/$mode.refusal" ] && echo "overload_${label}_refusal_p99_ms: $(median <"$dir/$mode.refusal")"
done
