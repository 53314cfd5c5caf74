#!/usr/bin/env bash
# shop_postgres.sh: the shop on PostgreSQL next to the shop on SQLite, in
# the same run. ROUNDS (3) rounds, alternating, each on a fresh store (a
# new database on one private server: scripts/start-postgres.sh, fsync
# on): ORDERS (3,000) orders from 16 clients as fast as they go (open
# loop: orders/s to a final status, p95 order-to-final), then the same
# paced at RATE (100) orders/s (p95 order-to-final at a pace both keep).
# Prints medians and the PostgreSQL/SQLite ratios. One instance; two
# instances on one database wait for partitioned subscriptions (issue 15).
# Usage: shop_postgres.sh BUILD (run through bench/with_postgres.sh)
set -euo pipefail
build=$1
orders=${ORDERS:-3000}
rate=${RATE:-100}
rounds=${ROUNDS:-3}
. "$(dirname "$0")/lib.sh"
if [ -z "${TIDINGS_BENCH_PG_URL:-}" ]; then
  echo "shop_postgres: no PostgreSQL server (run it through bench/with_postgres.sh); skipped"
  exit 0
fi
base=${TIDINGS_BENCH_PG_URL%/*} # postgres://tidings@127.0.0.1:PORT
psql_bin=
for v in /usr/lib/postgresql/*/bin; do psql_bin=$v/psql; done
# run NAME DB ORDERS CONCURRENCY RATE: one shop on DB ("" = SQLite), one load.
run() {
  local name=$1 db=$2 n=$3 c=$4 r=$5
  serve "$build" "$dir/$name" --auth-limit 100000 ${db:+--db "$db"}
  "$build/shop" load --url "$url" --key-file "$dir/$name/admin.key" --orders "$n" \
    --concurrency "$c" --decline-rate 0.1 ${r:+--rate "$r"} >"$dir/$name.load" 2>&1 || true
  kill "$pid"
  wait "$pid" || true
}
figure() { sed -n "s/^$2: \([0-9.]*\).*/\1/p" "$dir/$1.load" | head -1; } # figure RUN KEY
p95() { sed -n "s/^$2: .*p95 \([0-9.]*\).*/\1/p" "$dir/$1.load" | head -1; }
for round in $(seq "$rounds"); do
  db=shop_bench_$round
  "$psql_bin" -q -d "$TIDINGS_BENCH_PG_URL" -c "CREATE DATABASE $db" >/dev/null
  for backend in sqlite postgres; do
    target=$([ "$backend" = postgres ] && echo "$base/$db" || echo "")
    run "$backend-open-$round" "$target" "$orders" 16 ""
    [ "$backend" = postgres ] && { "$psql_bin" -q -d "$TIDINGS_BENCH_PG_URL" -c "DROP DATABASE $db" >/dev/null;
      "$psql_bin" -q -d "$TIDINGS_BENCH_PG_URL" -c "CREATE DATABASE $db" >/dev/null; }
    run "$backend-paced-$round" "$target" "$orders" 16 "$rate"
    printf '%-8s round %d: open loop %s orders/s, p95 order-to-final %s ms; paced at %s/s: p95 %s ms\n' \
      "$backend" "$round" "$(figure "$backend-open-$round" orders_per_s)" \
      "$(p95 "$backend-open-$round" order_to_final_ms)" "$rate" \
      "$(p95 "$backend-paced-$round" order_to_final_ms)"
    figure "$backend-open-$round" orders_per_s >>"$dir/$backend.rate"
    p95 "$backend-open-$round" order_to_final_ms >>"$dir/$backend.open_p95"
    p95 "$backend-paced-$round" order_to_final_ms >>"$dir/$backend.paced_p95"
  done
  "$psql_bin" -q -d "$TIDINGS_BENCH_PG_URL" -c "DROP DATABASE $db" >/dev/null
done
for backend in sqlite postgres; do
  echo "shop_${backend}_orders_per_s: $(median <"$dir/$backend.rate")"
  echo "shop_${backend}_open_p95_ms: $(median <"$dir/$backend.open_p95")"
  echo "shop_${backend}_paced_${rate}_p95_ms: $(median <"$dir/$backend.paced_p95")"
done
awk -v p="$(median <"$dir/postgres.rate")" -v s="$(median <"$dir/sqlite.rate")" \
  'BEGIN { printf "shop_postgres_vs_sqlite_orders_per_s: %.2f\n", p / s }'
