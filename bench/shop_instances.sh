#!/usr/bin/env bash
# shop_instances.sh: the shop on PostgreSQL as one instance and as two
# instances on one database (--partitions PARTITIONS, 4, both), in the same run. ROUNDS
# (3) rounds, alternating, each on a fresh database of one private server
# (scripts/start-postgres.sh, fsync on): ORDERS (2,000) orders from 16
# clients as fast as they go (open loop), then the same paced at RATE (100)
# orders/s. With two instances, each serves half the clients and half the
# orders (two `shop load` at once), once they have shared the handlers out:
# orders/s is their sum, p95 the worse of the two. Prints medians and the
# two-to-one ratios.
# Usage: shop_instances.sh BUILD (run through bench/with_postgres.sh)
set -euo pipefail
build=$1
orders=${ORDERS:-2000}
rate=${RATE:-100}
rounds=${ROUNDS:-3}
. "$(dirname "$0")/lib.sh"
if [ -z "${TIDINGS_BENCH_PG_URL:-}" ]; then
  echo "shop_instances: no PostgreSQL server (run it through bench/with_postgres.sh); skipped"
  exit 0
fi
base=${TIDINGS_BENCH_PG_URL%/*} # postgres://tidings@127.0.0.1:PORT
psql_bin=
for v in /usr/lib/postgresql/*/bin; do psql_bin=$v/psql; done
parts=$((4 * ${PARTITIONS:-4} + 3)) # inventory, payments, notifications, the saga; 3 read models
second=
trap 'kill "$pid" $second 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
psql_admin() { "$psql_bin" -q -d "$TIDINGS_BENCH_PG_URL" -c "$1" >/dev/null; }

# settle URL1 URL2 KEY: waits (up to 30 s) until the two instances have
# shared the handlers out, every part running in one of them twice in a
# row: the figures are those of a steady state, not of the hand-over that
# follows a second instance's start.
settle() {
  local steady=0 a b
  for _ in $(seq 300); do
    a=$(curl -s -H "Authorization: Bearer $(cat "$3")" "$1/health" | jq '.instance.runs | length')
    b=$(curl -s -H "Authorization: Bearer $(cat "$3")" "$2/health" | jq '.instance.runs | length')
    if [ "$((a + b))" = "$parts" ] && [ "$a" -gt 0 ] && [ "$b" -gt 0 ]; then
      steady=$((steady + 1))
      [ "$steady" -ge 2 ] && return 0
    else
      steady=0
    fi
    sleep 0.5
  done
  echo "shop_instances: the instances did not share the handlers out" >&2
}

# run NAME INSTANCES OPEN|PACED: fresh database, 1 or 2 shops, the load.
run() {
  local name=$1 n=$2 mode=$3 db=shop_instances_bench
  psql_admin "DROP DATABASE IF EXISTS $db"
  psql_admin "CREATE DATABASE $db"
  local common=(--auth-limit 100000 --db "$base/$db" --partitions "${PARTITIONS:-4}")
  serve "$build" "$dir/$name" "${common[@]}" --instance one
  local url_one=$url
  local loads=() pace=() clients=16 each=$orders
  [ "$mode" = paced ] && pace=(--rate "$rate")
  if [ "$n" = 2 ]; then
    local first=$pid
    mkdir -p "$dir/$name.two"
    cp "$dir/$name"/*.key "$dir/$name.two/" # the same keys: one shop
    serve "$build" "$dir/$name.two" "${common[@]}" --instance two
    second=$pid
    pid=$first
    settle "$url_one" "$url" "$dir/$name/admin.key"
    clients=8 each=$((orders / 2))
    [ "$mode" = paced ] && pace=(--rate "$((rate / 2))")
    "$build/shop" load --url "$url" --key-file "$dir/$name/admin.key" --orders "$each" \
      --concurrency "$clients" --decline-rate 0.1 --seed 2 "${pace[@]}" >"$dir/$name.load2" 2>&1 &
    loads+=($!)
  fi
  "$build/shop" load --url "$url_one" --key-file "$dir/$name/admin.key" --orders "$each" \
    --concurrency "$clients" --decline-rate 0.1 --seed 1 "${pace[@]}" >"$dir/$name.load1" 2>&1 || true
  for l in "${loads[@]+"${loads[@]}"}"; do wait "$l" || true; done
  kill "$pid" $second 2>/dev/null || true
  wait "$pid" $second 2>/dev/null || true
  second=
}
rate_of() { sed -n 's/^orders_per_s: \([0-9.]*\).*/\1/p' "$1" | head -1; }
p95_of() { sed -n 's/^order_to_final_ms: .*p95 \([0-9.]*\).*/\1/p' "$1" | head -1; }
# figures NAME: orders/s (summed over the loads) and the worse p95
figures() {
  local r=0 p=0 f
  for f in "$dir/$1".load*; do
    r=$(awk -v a="$r" -v b="$(rate_of "$f")" 'BEGIN { print a + b }')
    p=$(awk -v a="$p" -v b="$(p95_of "$f")" 'BEGIN { print (b > a) ? b : a }')
  done
  echo "$r $p"
}
for round in $(seq "$rounds"); do
  for n in 1 2; do
    run "i$n-open-$round" "$n" open
    run "i$n-paced-$round" "$n" paced
    read -r r p < <(figures "i$n-open-$round")
    read -r _ pp < <(figures "i$n-paced-$round")
    printf 'instances %d round %d: open loop %s orders/s, p95 %s ms; paced at %s/s: p95 %s ms\n' \
      "$n" "$round" "$r" "$p" "$rate" "$pp"
    echo "$r" >>"$dir/i$n.rate"
    echo "$p" >>"$dir/i$n.open_p95"
    echo "$pp" >>"$dir/i$n.paced_p95"
  done
done
psql_admin "DROP DATABASE IF EXISTS shop_instances_bench"
for n in 1 2; do
  echo "shop_pg_${n}_instances_orders_per_s: $(median <"$dir/i$n.rate")"
  echo "shop_pg_${n}_instances_open_p95_ms: $(median <"$dir/i$n.open_p95")"
  echo "shop_pg_${n}_instances_paced_${rate}_p95_ms: $(median <"$dir/i$n.paced_p95")"
done
awk -v two="$(median <"$dir/i2.rate")" -v one="$(median <"$dir/i1.rate")" \
  'BEGIN { printf "shop_pg_2_vs_1_instances_orders_per_s: %.2f\n", two / one }'
