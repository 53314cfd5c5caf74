#!/usr/bin/env bash
# test_rebuild.sh: read model rebuilds beside a running shop. After a load of
# ORDERS orders (10,000 in the slow tier, 1,000 in the fast one), each rebuilt read model equals the live one document for
# document, and the old copy is gone. Rebuilds made while orders keep coming
# lose and double nothing: once all is handled, the copy that went live
# mid-load equals a copy rebuilt from scratch afterwards. A rebuild that may
# keep only a few documents and orders in memory builds the same copy.
# Queries read the live copy throughout. The read models are read through
# `tidings documents`, so the test runs on each backend (TD_TEST_STORE).
# Usage: test_rebuild.sh TIDINGS SHOP [ORDERS]
tidings=$1
shop=$2
orders=${3:-10000}
. "$(dirname "$0")/shop_lib.sh"

. "$(dirname "$0")/../support/store_url.sh"
db=$(store_url "$dir/data" tidings) || exit 1
# docs COLLECTION: its documents, one JSON line each ({"key", "document"}), by key.
docs() { "$tidings" --db "$db" documents "$1"; }
rebuild() { "$shop" projections rebuild "$@" --db "$db" >>"$dir/rebuilds" || fail "rebuild $1"; }
# settled: every read model has handled everything.
settled() {
  for _ in $(seq 300); do
    [ "$("$shop" projections list --db "$db" | grep -c ' 0  caught-up$')" = 3 ] && return 0
    sleep 0.1
  done
  fail "the read models did not catch up: $("$shop" projections list --db "$db")"
}

serve "$dir/data" "$db"
"$shop" load --url "$url" --key-file "$dir/data/admin.key" --orders "$orders" --concurrency 16 --decline-rate 0.1 >"$dir/load" 2>&1 ||
  fail "load: $(tail -3 "$dir/load")"
grep -q '^consistency: ok' "$dir/load" || fail "load: $(tail -3 "$dir/load")"
settled

# Idle: each rebuilt copy equals the live one, document for document.
for rm in user_orders product_sales stock_levels; do
  docs "$rm" >"$dir/$rm.live"
  [ -s "$dir/$rm.live" ] || fail "no $rm documents after the load"
  rebuild "$rm"
  docs "${rm}_g1" >"$dir/$rm.rebuilt"
  cmp -s "$dir/$rm.live" "$dir/$rm.rebuilt" || fail "rebuilt $rm differs: $(diff "$dir/$rm.live" "$dir/$rm.rebuilt" | head -5)"
  [ -z "$(docs "$rm")" ] || fail "the old copy of $rm is still there"
done
[ "$(docs user_orders_g1 | wc -l)" = "$orders" ] || fail "user_orders holds $(docs user_orders_g1 | wc -l) orders"

# A user's orders come from the live copy.
user=$(docs user_orders_g1 | head -1 | jq -r .key | cut -d'|' -f1)
want=$(docs user_orders_g1 | jq -r .key | grep -c "^$user|")
got=$(api -sf "$url/users/$user/orders" | jq '.orders | length')
[ "$got" = "$want" ] || fail "GET /users/$user/orders gives $got orders, the read model $want"

# Under load: rebuild while orders keep coming, then compare with a rebuild
# from scratch once everything is handled.
"$shop" load --url "$url" --key-file "$dir/data/admin.key" --orders 400 --concurrency 8 --decline-rate 0.2 >"$dir/load2" 2>&1 &
loader=$!
sleep 0.3
for rm in user_orders product_sales stock_levels; do rebuild "$rm"; done
wait "$loader" || fail "second load: $(tail -3 "$dir/load2")"
settled
for rm in user_orders product_sales stock_levels; do
  docs "${rm}_g2" >"$dir/$rm.live"
  rebuild "$rm"
  docs "${rm}_g3" >"$dir/$rm.rebuilt"
  cmp -s "$dir/$rm.live" "$dir/$rm.rebuilt" ||
    fail "$rm rebuilt under load differs: $(diff "$dir/$rm.live" "$dir/$rm.rebuilt" | head -5)"
done
[ "$(docs user_orders_g3 | wc -l)" = $((orders + 400)) ] || fail "user_orders holds $(docs user_orders_g3 | wc -l) orders"

# A small memory bound: documents are evicted and read back, orders learnt
# again from their snapshots; the copy is the same.
for rm in user_orders product_sales stock_levels; do
  rebuild "$rm" --cache 64
  docs "${rm}_g4" >"$dir/$rm.small"
  cmp -s "$dir/$rm.rebuilt" "$dir/$rm.small" ||
    fail "$rm rebuilt with --cache 64 differs: $(diff "$dir/$rm.rebuilt" "$dir/$rm.small" | head -5)"
done
"$shop" projections rebuild user_orders --cache 0 --db "$db" 2>/dev/null && fail "took --cache 0"

# A rebuild killed midway (a slow one, so the kill lands before its swap)
# leaves the live copy serving; the next rebuild clears what it left and
# builds the same copy.
live() { docs readmodel_generations | jq -r 'select(.key == "user_orders") | .document.generation'; }
"$shop" projections rebuild user_orders --cache 1 --db "$db" >/dev/null 2>&1 &
killed=$!
sleep 0.2
kill -9 "$killed" 2>/dev/null
wait "$killed" 2>/dev/null
g=$(live)
[ "$g" = 4 ] || [ "$g" = 5 ] || fail "after a killed rebuild generation $g is live"
[ "$(docs "user_orders_g$g")" = "$(cat "$dir/user_orders.small")" ] || fail "the live copy changed"
got=$(api -sf "$url/users/$user/orders" | jq '.orders | length')
[ "$got" -ge "$want" ] || fail "GET /users/$user/orders gives $got orders after a killed rebuild"
rebuild user_orders
g=$(live)
docs "user_orders_g$g" >"$dir/user_orders.again"
cmp -s "$dir/user_orders.small" "$dir/user_orders.again" || fail "the rebuild after a kill differs"
copies=$("$tidings" --db "$db" documents | grep '^user_orders') || fail "no copy of user_orders"
[ "$(wc -l <<<"$copies")" = 1 ] || fail "copies left behind: $copies"
"$shop" projections rebuild nothing --db "$db" 2>/dev/null && fail "rebuilt an unknown read model"
stop
echo ok
