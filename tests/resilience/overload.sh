#!/usr/bin/env bash
# overload.sh: offered more orders than it can take to their end, the shop
# refuses the rest at once and loses nothing. The shop runs with
# --admit-backlog 1 and --command-workers 32 (so that 32 placements can be
# in flight at once; new orders refused while the saga, inventory or
# payments hold an event older than 1 ms), so that 32 clients placing
# orders as fast as they can are certainly more than it takes, on any
# machine. Then:
#   - some placements were refused, each with 503 overloaded, none failed;
#   - every accepted order reached a final status and stock adds up
#     (`shop load` checks both and exits non-zero otherwise);
#   - a refusal (one of our own, placed meanwhile) is a problem+json with
#     code overloaded and Retry-After; /metrics counts them all;
#   - the log's audit chain verifies.
# The figures at three times capacity with the default bound are measured
# by bench/shop_overload.sh, not here.
# Usage: overload.sh SHOP TIDINGS
shop=$1
tidings=$2
. "$(dirname "$0")/lib.sh"

serve a "$dir/a" --admit-backlog 1 --command-workers 32 || fail "the shop did not start"
make_catalog 1000000
mapfile -t auth < <(load_auth)
"$shop" load --url "$url" "${auth[@]}" --orders 1000 --concurrency 32 --decline-rate 0.1 --no-retry \
  >"$dir/load.out" 2>&1 &
load_pid=$!
pids+=("$load_pid")
# Meanwhile, one refusal seen whole: problem+json, its code, Retry-After.
seen=
for _ in $(seq 2000); do
  kill -0 "$load_pid" 2>/dev/null || break
  place_order tok_visa
  [ "$code" = 503 ] && { seen=1; break; }
done
[ -n "$seen" ] || fail "no placement of ours was refused while shop load ran"
[ "$(field .code)" = overloaded ] || fail "a refusal's code is $(field .code)"
grep -qi '^retry-after: 1' "$dir/headers" || fail "a refusal has no Retry-After"
grep -qi '^content-type: application/problem+json' "$dir/headers" ||
  fail "a refusal is not problem+json"
wait "$load_pid" || fail "shop load: $(cat "$dir/load.out")"
cat "$dir/load.out"
read -r placed refused failed < <(sed -n 's/^orders: \([0-9]*\) placed, \([0-9]*\) refused, \([0-9]*\) failed.*/\1 \2 \3/p' "$dir/load.out")
figure placed "$placed"
figure refused "$refused"
[ "${failed:-x}" = 0 ] || fail "$failed placements failed"
[ "${placed:-0}" -gt 0 ] || fail "no order was accepted"
[ "${refused:-0}" -gt 0 ] || fail "nothing was refused at 32 clients with --admit-backlog 1"
api GET /metrics
refusals=$(grep -o 'http_requests_total{route="/orders",method="POST",status="503"} [0-9]*' "$dir/body" | awk '{ print $2 }')
[ "${refusals:-0}" -gt "$refused" ] || fail "/metrics counts ${refusals:-0} refusals, shop load alone $refused"
stop
"$tidings" --db "sqlite:$dir/a/tidings.db" audit verify >"$dir/audit" 2>&1 ||
  fail "audit verify: $(cat "$dir/audit")"
echo ok
