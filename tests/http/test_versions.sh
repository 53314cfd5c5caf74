#!/usr/bin/env bash
# test_versions.sh: a store holding OrderCreated events written at schema 1
# (by `tidings append --schema-version 1`) and one at a schema from the
# future is served by the shop: the old ones read as schema 3 through the
# API as schema 3 (order, events, the live feed), the saga ends the order, the store keeps their
# bytes as written, and the unreadable one is parked in each subscription's
# dead-letter queue with its type and version named, not lost (and a
# migration refuses the store, naming it; a rebuild of a read model goes on
# past it and reports it). Runs on each backend (TD_TEST_STORE); the read
# models are read through `tidings documents`.
# Usage: test_versions.sh TIDINGS SHOP
tidings=$1
shop=$2
. "$(dirname "$0")/shop_lib.sh"

old=018f0000-0000-7000-8000-000000000001
future=018f0000-0000-7000-8000-000000000002
user=018f0000-0000-7000-8000-0000000000aa
. "$(dirname "$0")/../support/store_url.sh"
db=$(store_url "$dir/data" tidings) || exit 1
mkdir -p "$dir/data"
"$tidings" --db "$db" init >/dev/null || fail init
"$tidings" --db "$db" append "order-$old" OrderCreated \
  "{\"order_id\":\"$old\",\"user_id\":\"$user\",\"total_amount\":1999}" --schema-version 1 >/dev/null ||
  fail "append schema 1"
"$tidings" --db "$db" append "order-$future" OrderCreated "{\"order_id\":\"$future\"}" \
  --schema-version 9 >/dev/null || fail "append schema 9"

serve "$dir/data" "$db"

# The order, folded from its schema-1 event upcast to schema 3.
order=$(api -sf "$url/orders/$old") || fail "GET the old order"
[ "$(jq -r .currency <<<"$order")" = USD ] || fail "no default currency: $order"
[ "$(jq -c .shipping_address <<<"$order")" = '{"line1":"","city":"","postal_code":"","country":""}' ] ||
  fail "no empty shipping address: $order"
[ "$(jq -r '.total_amount, .user_id' <<<"$order" | paste -sd,)" = "1999,$user" ] ||
  fail "the schema-1 fields changed: $order"

# The saga ends it (schema 1 recorded no lines), through the command path,
# which folds the stream (it has no snapshot) before it appends.
for _ in $(seq 100); do
  status=$(api -sf "$url/orders/$old" | jq -r '.status + "," + (.cancel_reason // "")')
  [ "$status" = "Cancelled,no_items" ] && break
  sleep 0.1
done
[ "$status" = "Cancelled,no_items" ] || fail "the old order did not end: $status"

# The events, through both reading routes, at schema 3.
for route in "streams/order-$old" "events?stream=order-$old"; do
  ev=$(api -sf "$url/$route" | jq -c '.events[0]') || fail "GET /$route"
  [ "$(jq -r '.schema_version, .data.currency' <<<"$ev" | paste -sd,)" = "3,USD" ] ||
    fail "/$route is not at schema 3: $ev"
done

# The store keeps the bytes as written.
stored=$("$tidings" --db "$db" events --stream "order-$old" | head -1) || fail "tidings events"
[ "$(jq -r .schema_version <<<"$stored")" = 1 ] || fail "stored schema changed: $stored"
[ "$(jq -r '.data | has("currency")' <<<"$stored")" = false ] || fail "stored data changed: $stored"

# The unreadable event: parked by every subscription that wants it, named.
for _ in $(seq 100); do
  parked=$(api -sf "$url/dead-letters" | jq -c "[.dead_letters[] | select(.position == 2)]")
  [ "$(jq 'map(.subscription) | index("saga.order_processing") != null' <<<"$parked")" = true ] && break
  sleep 0.1
done
[ "$(jq 'map(.subscription) | sort | join(",")' <<<"$parked")" = \
  '"notifications,readmodel.product_sales,readmodel.user_orders,saga.order_processing"' ] ||
  fail "not parked by each subscription: $parked"
[ "$(jq 'all(.last_error | contains("OrderCreated schema 9 cannot be read"))' <<<"$parked")" = true ] ||
  fail "the dead letters do not name the type and version: $parked"
projections=$("$shop" projections list --db "$db") || fail "projections list"
grep -Eq '^user_orders +[0-9]+ +[0-9]+  stalled$' <<<"$projections" &&
  grep -Eq '^product_sales +[0-9]+ +[0-9]+  stalled$' <<<"$projections" ||
  fail "the read models that parked it are not shown stalled: $projections"
body=$(api -s -o /dev/stdout -w ' %{http_code}' "$url/streams/order-$future")
[ "${body##* }" = 500 ] || fail "reading the unreadable stream: $body"
[ "$(jq -r .code <<<"${body% *}")" = unsupported_event_version ] || fail "wrong problem: $body"
# The live feed announces it and goes on past it.
feed=$(api -sN --max-time 1 "$url/events/stream?after=0")
grep -q '^event: unreadable$' <<<"$feed" || fail "the feed does not announce the unreadable event: $feed"
grep '^data: ' <<<"$feed" | sed 's/^data: //' | jq -se 'map(select(.position == 2))[0].error |
  contains("OrderCreated schema 9")' >/dev/null || fail "the feed does not name it: $feed"
[ "$(grep '^data: ' <<<"$feed" | sed 's/^data: //' | jq -r 'select(.position == 1) | .schema_version')" = 3 ] ||
  fail "the feed does not upcast: $feed"
grep -q '^event: OrderStatusChanged$' <<<"$feed" || fail "the feed stopped at the unreadable event"
"$tidings" --db "$db" events --stream "order-$future" | grep -q '"schema_version":9' ||
  fail "the unreadable event is gone"

stop
"$tidings" --db "$db" audit verify >/dev/null || fail "the audit chain broke"

# A migration stops before it creates anything when an event cannot be read.
"$shop" migrate --db "$db" --data "$dir/data" --to "sqlite:$dir/new.db" 2>"$dir/migrate.err" &&
  fail "migrated a store with an unreadable event"
grep -q "OrderCreated schema 9 cannot be read" "$dir/migrate.err" || fail "$(cat "$dir/migrate.err")"
[ ! -e "$dir/new.db" ] || fail "the failed migration created its target"

# A rebuild of a read model that wants it goes on past it, as the live one
# did, and names it: the new copy is live, and holds the readable order.
generations() { "$tidings" --db "$db" documents readmodel_generations | jq -c .document; }
"$shop" projections rebuild user_orders --db "$db" >"$dir/rebuild.out" 2>"$dir/rebuild.err" ||
  fail "the rebuild stopped at the unreadable event: $(cat "$dir/rebuild.err")"
grep -q '^skipped 1 unreadable event:$' "$dir/rebuild.out" || fail "no skip reported: $(cat "$dir/rebuild.out")"
future_id=$("$tidings" --db "$db" events --stream "order-$future" | jq -r .id) || fail "the unreadable event's id"
grep -q "^  position 2  id $future_id\$" "$dir/rebuild.out" || fail "the skip is not named: $(cat "$dir/rebuild.out")"
grep -q '"generation":1' <<<"$(generations)" || fail "the rebuilt copy is not live: $(generations)"
[ "$("$tidings" --db "$db" documents user_orders_g1 | jq -r .key | grep -cxF "$user|$old")" = 1 ] ||
  fail "the rebuilt copy lacks the readable order"
"$shop" projections rebuild stock_levels --db "$db" >"$dir/stock.out" || fail "a read model that does not want it"
grep -q skipped "$dir/stock.out" && fail "stock_levels skipped an event it does not read"
echo "ok"
