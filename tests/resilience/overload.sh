#!/usr/bin/env bash
# overload.sh: offered more orders than it can take to their end, the shop
# refuses the rest at once and loses nothing. Each of its bounds in turn,
# tight enough that 32 clients placing orders as fast as they can are
# certainly more than it takes, on any machine:
#   wait     2 command workers and --admit-wait 1: new orders refused
#            while one has waited more than 1 ms for a worker;
#   backlog  32 command workers, --admit-wait 0 (no gate, no wait bound)
#            and --admit-backlog 1: new orders refused while the saga,
#            inventory or payments hold an event older than 1 ms.
# For each:
#   - some placements were refused, each with 503 overloaded, none failed;
#   - every accepted order reached a final status and stock adds up
#     (`shop load` checks both and exits non-zero otherwise);
#   - a refusal (one of our own, placed meanwhile) is a problem+json with
#     code overloaded, Retry-After, and a detail naming the bound;
#   - /metrics counts them all and shows the command queue; the log's
#     audit chain verifies.
# The figures at three times capacity with the default bounds are measured
# by bench/shop_overload.sh, not here. The stores are on the backend under
# test (TD_TEST_STORE).
# Usage: overload.sh SHOP TIDINGS
shop=$1
tidings=$2
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../support/store_url.sh"

# bound NAME DETAIL ORDERS SERVE-ARGS...: one shop, 32 clients placing
# ORDERS, one bound. Refusals take microseconds, so a bound that refuses
# nearly everything gets more orders (and rate limits out of its way):
# shop load must still be running while this script places its own.
bound() {
  local name=$1 detail=$2 orders=$3 seen= placed refused failed refusals db
  shift 3
  db=$(store_url "$dir/$name" tidings) || fail "no store URL"
  serve "$name" "$dir/$name" --db "$db" "$@" || fail "$name: the shop did not start"
  make_catalog 1000000
  mapfile -t auth < <(load_auth)
  "$shop" load --url "$url" "${auth[@]}" --orders "$orders" --concurrency 32 --decline-rate 0.1 \
    --no-retry >"$dir/$name.load" 2>&1 &
  load_pid=$!
  pids+=("$load_pid")
  # Meanwhile, one refusal seen whole: problem+json, its code, Retry-After.
  for _ in $(seq 2000); do
    kill -0 "$load_pid" 2>/dev/null || break
    place_order tok_visa
    [ "$code" = 503 ] && { seen=1; break; }
  done
  [ -n "$seen" ] || fail "$name: no placement of ours was refused while shop load ran"
  [ "$(field .code)" = overloaded ] || fail "$name: a refusal's code is $(field .code)"
  field .detail | grep -q "$detail" || fail "$name: a refusal says '$(field .detail)'"
  grep -qi '^retry-after: 1' "$dir/headers" || fail "$name: a refusal has no Retry-After"
  grep -qi '^content-type: application/problem+json' "$dir/headers" ||
    fail "$name: a refusal is not problem+json"
  wait "$load_pid" || fail "$name: shop load: $(cat "$dir/$name.load")"
  cat "$dir/$name.load"
  read -r placed refused failed < <(sed -n 's/^orders: \([0-9]*\) placed, \([0-9]*\) refused, \([0-9]*\) failed.*/\1 \2 \3/p' "$dir/$name.load")
  figure "${name}_placed" "$placed"
  figure "${name}_refused" "$refused"
  [ "${failed:-x}" = 0 ] || fail "$name: $failed placements failed"
  [ "${placed:-0}" -gt 0 ] || fail "$name: no order was accepted"
  [ "${refused:-0}" -gt 0 ] || fail "$name: nothing was refused at 32 clients"
  api GET /metrics
  refusals=$(grep -o 'http_requests_total{route="/orders",method="POST",status="503"} [0-9]*' "$dir/body" | awk '{ print $2 }')
  grep -q '^http_commands_waiting [0-9]' "$dir/body" || fail "$name: /metrics has no command queue"
  grep -q '^http_command_wait_seconds [0-9]' "$dir/body" || fail "$name: /metrics has no queue wait"
  [ "${refusals:-0}" -gt "$refused" ] ||
    fail "$name: /metrics counts ${refusals:-0} refusals, shop load alone $refused"
  stop
  "$tidings" --db "$db" audit verify >"$dir/audit" 2>&1 ||
    fail "$name: audit verify: $(cat "$dir/audit")"
}

bound wait "wait" 8000 --command-workers 2 --admit-wait 1 --admit-backlog 0 \
  --rate-limit 1000000 --credential-rate-limit 1000000
bound backlog "catching up" 1000 --command-workers 32 --admit-wait 0 --admit-backlog 1
echo ok
