#!/usr/bin/env bash
# test_traces.sh: `shop serve --otlp-endpoint` against a real collector on
# loopback (otlp_collector.py), with --trace-file beside it. An order goes
# through the shop; once it stops, the collector holds whole traces (every
# span's parent exported, roots included, times in nanoseconds), the same
# spans as the trace file. Then a collector that takes 2 s per request and
# a queue of 16 spans: requests are not slowed (each answered in well under
# the collector's time), spans are dropped and counted in /metrics, and the
# shop still stops promptly. Runs on each backend (TD_TEST_STORE).
# Usage: test_traces.sh TIDINGS SHOP DIR_OF_THIS_SCRIPT
tidings=$1
shop=$2
here=$3
. "$here/shop_lib.sh"
. "$here/../support/store_url.sh" # the stores: on each backend (TD_TEST_STORE)

collector_pid=
trap 'stop_collector; cleanup' EXIT
start_collector() { # start_collector NAME DELAY: sets collector (its URL)
  rm -f "$dir/$1.port"
  python3 "$here/otlp_collector.py" "$dir/$1.port" "$dir/$1.jsonl" "$2" &
  collector_pid=$!
  for _ in $(seq 100); do [ -s "$dir/$1.port" ] && break; sleep 0.05; done
  [ -s "$dir/$1.port" ] || fail "the collector did not start"
  collector="http://127.0.0.1:$(cat "$dir/$1.port")"
}
stop_collector() {
  [ -n "$collector_pid" ] && kill "$collector_pid" 2>/dev/null && wait "$collector_pid" 2>/dev/null
  collector_pid=
}
json() { api -s -H 'Content-Type: application/json' "$@"; }
order_once() { # order_once EMAIL: registers, logs in, orders; prints the order id
  json "$url/users" -d "{\"email\":\"$1\",\"full_name\":\"Ada\",\"password\":\"long enough pw\"}" \
    >/dev/null || fail "register"
  local token
  token=$(json "$url/sessions" -d "{\"email\":\"$1\",\"password\":\"long enough pw\"}" | jq -r .token)
  curl -s -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$url/orders" \
    -w '\n%{time_total}\n' -d "{\"items\":[{\"product_id\":\"$product\",\"quantity\":1}],\
\"shipping_address\":{\"line1\":\"1 Main St\",\"city\":\"X\",\"postal_code\":\"1\",\"country\":\"US\"},\
\"payment\":{\"method\":\"card\",\"token\":\"tok_visa\"}}"
}

# 1. A collector that answers at once: whole traces.
start_collector fast 0
mkdir -p "$dir/a"
serve "$dir/a" "$(store_url "$dir/a" tidings)" --otlp-endpoint "$collector" --trace-file "$dir/spans.jsonl"
product=$(json "$url/products" -d '{"name":"Pen","price":150,"currency":"USD","stock":10}' |
  jq -er .id) || fail "product"
order=$(order_once ada@example.com | head -1 | jq -er .id) || fail "order"
for _ in $(seq 200); do
  [ "$(api -s "$url/orders/$order" | jq -r .status)" = Processing ] && break
  sleep 0.05
done
api -s "$url/metrics" | grep -q '^otlp_spans_dropped_total 0' || fail "spans dropped with a fast collector"
stop
stop_collector
python3 "$here/check_spans.py" "$dir/fast.jsonl" "$dir/spans.jsonl" || fail "the traces are not whole"

# 2. A slow collector: nothing waits for it; spans are dropped and counted.
start_collector slow 2
mkdir -p "$dir/b"
serve "$dir/b" "$(store_url "$dir/b" tidings)" --otlp-endpoint "$collector" --otlp-queue 16
product=$(json "$url/products" -d '{"name":"Pen","price":150,"currency":"USD","stock":10}' |
  jq -er .id) || fail "product"
for i in 1 2 3 4; do
  took=$(order_once "u$i@example.com" | tail -1)
  awk -v t="$took" 'BEGIN { exit !(t < 1.0) }' || fail "an order took $took s with a slow collector"
done
dropped=$(api -s "$url/metrics" | sed -n 's/^otlp_spans_dropped_total //p')
awk -v d="${dropped:-0}" 'BEGIN { exit !(d > 0) }' || fail "no spans counted as dropped ($dropped)"
started=$(date +%s)
stop
[ $(($(date +%s) - started)) -le 15 ] || fail "the shop took more than 15 s to stop"
stop_collector
[ -s "$dir/slow.jsonl" ] || fail "the slow collector got nothing"
echo "traces whole with a fast collector; $dropped spans dropped, requests not slowed, with a slow one"
echo "2 passed, 0 failed"
