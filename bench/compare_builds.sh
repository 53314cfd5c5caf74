#!/usr/bin/env bash
# compare_builds.sh: two builds of the shop side by side on this machine,
# for judging what a change costs: ROUNDS (default 5) alternating runs of
# each build's default `shop serve` (fresh store each) under the same
# `shop load` (the build's own; with the admin key where the build makes
# one), then each build's median orders/s and p95 order-to-final, and the
# ratio of the second to the first. Extra arguments after the two build
# folders go to both servers.
# Usage: bench/compare_builds.sh BEFORE_BUILD AFTER_BUILD [SERVE_ARGS...]
set -euo pipefail
before=$1
after=$2
shift 2
orders=${ORDERS:-2000}
concurrency=${CONCURRENCY:-16}
rounds=${ROUNDS:-5}
. "$(dirname "$0")/lib.sh"
run() { # run NAME BUILD ROUND [SERVE_ARGS...]
  local name=$1 build=$2 round=$3 data=$dir/$1-$3 key=()
  shift 3
  serve "$build" "$data" "$@"
  [ -f "$key_file" ] && key=(--key-file "$key_file")
  "$build/shop" load --url "$url" \
    --orders "$orders" --concurrency "$concurrency" --decline-rate 0.1 "${key[@]}" >"$data.load"
  kill "$pid"
  wait "$pid" || true
  grep -q '^consistency: ok' "$data.load" || { cat "$data.load"; exit 1; }
  printf '%-6s round %d: %s, %s\n' "$name" "$round" "$(grep '^orders_per_s:' "$data.load")" \
    "$(grep '^order_to_final_p95_ms:' "$data.load")"
}
for round in $(seq "$rounds"); do
  run before "$before" "$round" "$@"
  run after "$after" "$round" "$@"
done
for name in before after; do
  r=$(cat "$dir/$name"-*.load | awk '/^orders_per_s:/ {print $2}' | median)
  p=$(cat "$dir/$name"-*.load | awk '/^order_to_final_p95_ms:/ {print $2}' | median)
  eval "rate_$name=$r"
  echo "$name: median orders_per_s $r, p95 order-to-final $p ms"
done
awk -v a="$rate_after" -v b="$rate_before" 'BEGIN {printf "ratio after/before orders_per_s: %.3f\n", a / b}'
