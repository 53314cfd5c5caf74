#!/usr/bin/env bash
# shop_services.sh: the shop as three services over RabbitMQ next to the
# single-process shop, in the same run (issue 16's last benchmark). One
# private RabbitMQ node (scripts/start-rabbitmq.sh in a temporary folder,
# stopped on the way out, also on failure); ROUNDS (3) alternating rounds,
# every run on fresh data folders and SQLite stores: (a) `shop serve` alone,
# no broker; (b) the three-process layout of the README (users,catalog,orders
# / inventory / payments,notifications, one master key), on an exchange of
# its own per run. Each is driven by `shop load` against the process that
# takes orders, ORDERS (2,000) orders from CONCURRENCY (16) clients as fast as
# they go (open loop), then the same paced at RATE (100) orders/s. Prints the
# medians of orders/s to a final status and p95 order-to-final for both, and
# the three-to-one ratios; and where an order's time goes in each
# (bench/order_steps.jq: the saga's steps, timed by the events' occurred_at
# in the orders process's store, which in the three-process layout holds
# the others' events with their senders' times).
#
# Stock on the orders process is eventually consistent in the three-process
# layout (inventory's StockReserved and InventoryReleased reach its catalog
# through the broker; a declined order's release is decided after the order
# is final), so the loads there check stock with --settle: the same check,
# passed once the figures agree within that many seconds. Before a
# three-process run ends, every process must have published all it wrote
# and handled all it took (relay and subscription lags 0); what each
# consumer took, dropped as a duplicate or was given again is printed
# per run, with its last error.
# Usage: shop_services.sh BUILD
set -euo pipefail
build=$1
orders=${ORDERS:-2000}
concurrency=${CONCURRENCY:-16}
rate=${RATE:-100}
rounds=${ROUNDS:-3}
here="$(cd "$(dirname "$0")/.." && pwd)"
. "$here/bench/lib.sh"
rabbit=$(mktemp -d "${TMPDIR:-/tmp}/tidings-bench-rabbitmq.XXXXXX")
procs=()
trap 'kill "$pid" "${procs[@]}" 2>/dev/null || true; wait 2>/dev/null || true
  bash "$here/scripts/stop-rabbitmq.sh" --remove "$rabbit"; rm -rf "$dir"' EXIT
bash "$here/scripts/start-rabbitmq.sh" "$rabbit" >/dev/null
install -m 600 "$rabbit/url" "$dir/broker.url"

# health URL KEY_FILE: the process's /health, as the administrator.
health() { curl -s -H "Authorization: Bearer $(cat "$2")" "$1/health"; }

# load NAME URL KEY_FILE MODE [ARGS...]: shop load into DIR/NAME.load.
load() {
  local name=$1 url=$2 key=$3 mode=$4 pace=()
  shift 4
  [ "$mode" = paced ] && pace=(--rate "$rate")
  "$build/shop" load --url "$url" --key-file "$key" --orders "$orders" \
    --concurrency "$concurrency" --decline-rate 0.1 "${pace[@]}" "$@" >"$dir/$name.load" 2>&1 ||
    true
  grep -q '^consistency: ok' "$dir/$name.load" || {
    echo "shop_services: $name:" >&2
    cat "$dir/$name.load" >&2
    exit 1
  }
}

# steps NAME STORE_DIR: where the run's orders spent their time
# (bench/order_steps.jq), from the store in STORE_DIR, into DIR/NAME.steps.
steps() {
  "$build/tidings" --log-level error --db "sqlite:$2/tidings.db" events |
    jq -s -c -f "$here/bench/order_steps.jq" >"$dir/$1.steps"
}

# one NAME MODE: the single-process shop.
one() {
  serve "$build" "$dir/$1"
  load "$1" "$url" "$key_file" "$2"
  kill "$pid"
  wait "$pid" || true
  pid=
  steps "$1" "$dir/$1"
}

# drained URL KEY_FILE: the process has published all it wrote and its
# handlers have caught up with all it took.
drained() {
  health "$1" "$2" | jq -e '.broker.lag_events == 0 and
    ([.subscriptions[].lag_events] | add) == 0' >/dev/null
}

# three NAME MODE: the three-process layout, as tests/http/test_services.sh
# starts it; the load against the orders process.
three() {
  local name=$1 mode=$2 exchange=shop-bench-$1 urls=() keys=() p
  local common=(--broker-file "$dir/broker.url" --broker-exchange "$exchange")
  serve "$build" "$dir/$name.p1" --services users,catalog,orders "${common[@]}"
  procs+=("$pid") urls+=("$url") keys+=("$key_file")
  local master=$dir/$name.p1/master.key
  serve "$build" "$dir/$name.p2" --services inventory --master-key-file "$master" "${common[@]}"
  procs+=("$pid") urls+=("$url") keys+=("$key_file")
  serve "$build" "$dir/$name.p3" --services payments,notifications --master-key-file "$master" \
    "${common[@]}"
  procs+=("$pid") urls+=("$url") keys+=("$key_file")
  pid=
  # each connected to the broker, publishing and consuming, within 20 s
  connected() {
    health "$1" "$2" |
      jq -e '.broker.connection == "connected" and .broker.consumer.connection == "connected"' \
        >/dev/null
  }
  for p in 0 1 2; do
    for _ in $(seq 200); do
      connected "${urls[$p]}" "${keys[$p]}" && break
      sleep 0.1
    done
    connected "${urls[$p]}" "${keys[$p]}" || {
      echo "shop_services: $name: process $((p + 1)) did not connect: $(health "${urls[$p]}" "${keys[$p]}")" >&2
      exit 1
    }
  done
  load "$name" "${urls[0]}" "${keys[0]}" "$mode" --settle 30
  # drained: all three at once, twice in a row (a message may be on its way
  # through the broker while each looks idle), within 30 s; so the next
  # run's processes, which take the same queues, find them empty.
  local steady=0
  for _ in $(seq 300); do
    if drained "${urls[0]}" "${keys[0]}" && drained "${urls[1]}" "${keys[1]}" &&
      drained "${urls[2]}" "${keys[2]}"; then
      steady=$((steady + 1))
      [ "$steady" -ge 2 ] && break
    else
      steady=0
    fi
    sleep 0.1
  done
  [ "$steady" -ge 2 ] || {
    echo "shop_services: $name: the processes did not drain:" >&2
    for p in 0 1 2; do health "${urls[$p]}" "${keys[$p]}" >&2; done
    exit 1
  }
  for p in 0 1 2; do
    health "${urls[$p]}" "${keys[$p]}" |
      jq -r '"p'$((p + 1))' consumed \(.broker.consumer.consumed) duplicates \(.broker.consumer.duplicates) redelivered \(.broker.consumer.redelivered) rejected \(.broker.consumer.rejected)\(.broker.consumer.last_error // "" | if . == "" then "" else " (last error: \(.))" end)"' >>"$dir/$name.consumers"
  done
  kill "${procs[@]}"
  wait "${procs[@]}" || true
  procs=()
  steps "$name" "$dir/$name.p1"
  printf '  %s: stock on the orders process agreed after %s; %s\n' "$name" \
    "$(sed -n 's/^stock_settled_ms: \([0-9]*\) (\(.*\))/\1 ms, \2/p' "$dir/$name.load")" \
    "$(paste -sd';' "$dir/$name.consumers")"
}

rate_of() { awk '/^orders_per_s:/ {print $2}' "$1"; }
p95_of() { awk '/^order_to_final_p95_ms:/ {print $2}' "$1"; }
for round in $(seq "$rounds"); do
  for layout in one three; do
    for mode in open paced; do
      "$layout" "$layout-$mode-$round" "$mode"
      rate_of "$dir/$layout-$mode-$round.load" >>"$dir/$layout-$mode.rate"
      p95_of "$dir/$layout-$mode-$round.load" >>"$dir/$layout-$mode.p95"
    done
    printf '%-5s round %d: open loop %s orders/s, p95 %s ms; paced at %s/s: %s orders/s, p95 %s ms\n' \
      "$layout" "$round" "$(rate_of "$dir/$layout-open-$round.load")" \
      "$(p95_of "$dir/$layout-open-$round.load")" "$rate" \
      "$(rate_of "$dir/$layout-paced-$round.load")" "$(p95_of "$dir/$layout-paced-$round.load")"
  done
done
for layout in one three; do
  for mode in open paced; do
    eval "rate_${layout}_$mode=$(median <"$dir/$layout-$mode.rate")"
    eval "p95_${layout}_$mode=$(median <"$dir/$layout-$mode.p95")"
  done
done
echo "shop_1_process_orders_per_s: $rate_one_open (p95 order-to-final $p95_one_open ms)"
echo "shop_3_services_orders_per_s: $rate_three_open (p95 order-to-final $p95_three_open ms)"
echo "shop_1_process_paced_${rate}_p95_ms: $p95_one_paced ($rate_one_paced orders/s)"
echo "shop_3_services_paced_${rate}_p95_ms: $p95_three_paced ($rate_three_paced orders/s)"
# Messages the consumers took twice (stored already) or again (the broker
# delivered them again after a batch was refused or a connection lost),
# over all three-process runs.
echo "shop_3_services_consumer_duplicates: $(cat "$dir"/three-*.consumers | awk '{s += $5} END {print s + 0}')"
echo "shop_3_services_consumer_redelivered: $(cat "$dir"/three-*.consumers | awk '{s += $7} END {print s + 0}')"
# Where the time goes: the median over the rounds of each step's median.
for layout in one three; do
  for mode in open paced; do
    printf 'steps %-5s %-5s (ms):' "$layout" "$mode"
    for step in reserve_ms to_payment_ms charge_ms to_final_ms created_to_final_ms; do
      printf ' %s %s' "$step" "$(cat "$dir/$layout-$mode"-*.steps | jq ".$step" | median)"
    done
    echo
  done
done
awk -v r3="$rate_three_open" -v r1="$rate_one_open" -v o3="$p95_three_open" -v o1="$p95_one_open" \
  -v q3="$p95_three_paced" -v q1="$p95_one_paced" 'BEGIN {
  printf "ratio shop_3_vs_1_orders_per_s: %.2f\n", r3 / r1
  printf "ratio shop_3_vs_1_open_p95: %.2f\n", o3 / o1
  printf "ratio shop_3_vs_1_paced_p95: %.2f\n", q3 / q1
}'
