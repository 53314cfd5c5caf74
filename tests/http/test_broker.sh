#!/usr/bin/env bash
# test_broker.sh: `shop serve` with a broker (a private RabbitMQ node that
# CTest starts; TD_TEST_RABBITMQ_DIR). The shop's integration events reach a
# queue that `tidings consume` appends into a store of its own, each once
# and with its id; /health shows the broker connection and /metrics the
# relay's counters. A broker that is not there is reported, not fatal; a
# password on the command line is refused without being repeated. Both
# stores are on the backend under test (TD_TEST_STORE).
# Usage: test_broker.sh TIDINGS SHOP
tidings=$1
shop=$2
. "$(dirname "$0")/shop_lib.sh"

rabbit=${TD_TEST_RABBITMQ_DIR:?run through ctest, which starts the broker}
. "$(dirname "$0")/../support/store_url.sh"
receiver=$(store_url "$dir" receiver) || exit 1
db=$(store_url "$dir/data" tidings) || exit 1
consumer=
cleanup_consumer() {
  [ -n "$consumer" ] && kill "$consumer" 2>/dev/null && wait "$consumer" 2>/dev/null
  cleanup
}
trap cleanup_consumer EXIT

# A password in argv: refused (usage), and not echoed.
out=$("$shop" serve --data "$dir/x" --broker amqp://tidings:hunter2@127.0.0.1:1 2>&1)
[ $? = 2 ] || fail "a password on the command line was not refused"
grep -q hunter2 <<<"$out" && fail "the refusal repeats the password: $out"
grep -q 'broker-file' <<<"$out" || fail "the refusal does not say what to do: $out"

# The receiver first: its queue must exist before the shop publishes.
exchange=shop-$$
queue=receiver-$$
TIDINGS_BROKER=$(cat "$rabbit/url") "$tidings" --db "$receiver" consume \
  --exchange "$exchange" --queue "$queue" --types ReserveInventory,ProcessPayment:1 \
  2>"$dir/consume.err" &
consumer=$!
for _ in $(seq 100); do grep -q 'appending queue' "$dir/consume.err" && break; sleep 0.1; done
sleep 1 # bound

# The shop, with the URL from a private file (a file others can read is
# refused), on the receiver's exchange.
install -m 644 "$rabbit/url" "$dir/broker.url"
out=$("$shop" serve --data "$dir/x" --broker-file "$dir/broker.url" 2>&1)
[ $? = 2 ] && grep -q 'readable by others' <<<"$out" || fail "a broker file open to others was taken: $out"
chmod 600 "$dir/broker.url"
serve "$dir/data" "$db" --broker-file "$dir/broker.url" --broker-exchange "$exchange"
grep -q 'publishing integration events' "$dir/out" || fail "no word of the broker: $(cat "$dir/out")"

JSON='Content-Type: application/json'
P=$(api -sf "$url/products" -H "$JSON" -d '{"name":"Pen","price":150,"currency":"USD","stock":10}' | jq -r .id)
[ -n "$P" ] && [ "$P" != null ] || fail "no product"
curl -sf "$url/users" -H "$JSON" \
  -d '{"email":"ada@example.com","full_name":"Ada Lovelace","password":"correct horse battery"}' >/dev/null ||
  fail "no user"
T=$(curl -sf "$url/sessions" -H "$JSON" -d '{"email":"ada@example.com","password":"correct horse battery"}' | jq -r .token)
O=$(curl -sf "$url/orders" -H "Authorization: Bearer $T" -H "$JSON" -d '{
      "items":[{"product_id":"'"$P"'","quantity":2}],
      "shipping_address":{"line1":"1 Main St","city":"Springfield","postal_code":"12345","country":"US"},
      "payment":{"method":"card","token":"tok_visa"}}' | jq -r .id)
[ -n "$O" ] && [ "$O" != null ] || fail "no order"

# Both commands of the saga reach the receiver, once, with their ids.
for type in ReserveInventory ProcessPayment; do
  for _ in $(seq 100); do
    [ "$("$tidings" --db "$receiver" events --type "$type" | wc -l)" -ge 1 ] && break
    sleep 0.1
  done
  sent=$("$tidings" --db "$db" events --type "$type" | jq -r .id | sort)
  got=$("$tidings" --db "$receiver" events --type "$type" | jq -r .id | sort)
  [ -n "$sent" ] || fail "the shop wrote no $type"
  [ "$sent" = "$got" ] || fail "$type: sent $sent, received $got"
done
"$tidings" --db "$receiver" events --type ProcessPayment | jq -e '.kind == "integration" and .source == "orders"' >/dev/null ||
  fail "the received event lost its envelope"

health=$(api -s "$url/health")
jq -e '.status == "ok" and .broker.connection == "connected" and .broker.confirmed >= 2 and .broker.lag_events == 0' <<<"$health" >/dev/null ||
  fail "/health: $health"
metrics=$(api -s "$url/metrics")
grep -q '^broker_confirmed_total{relay="shop"} [1-9]' <<<"$metrics" || fail "no broker_confirmed_total in /metrics"
grep -q '^broker_relay_connected{relay="shop"} 1' <<<"$metrics" || fail "no broker_relay_connected in /metrics"
grep -q hunter2 "$dir/out" "$dir/err" && fail "a password in the shop's output"
grep -qF "$(sed 's/.*tidings:\([^@]*\)@.*/\1/' "$rabbit/url")" "$dir/out" "$dir/err" && fail "the broker password in the shop's output"
stop

# A broker that is not there: the shop serves, and /health says so.
printf 'amqp://tidings:nothere@127.0.0.1:1\n' >"$dir/broker.url"
serve "$dir/data" "$db" --broker-file "$dir/broker.url"
sleep 1
health=$(api -s "$url/health")
jq -e '.status == "ok" and .broker.connection == "disconnected" and (.broker.last_error | test("127.0.0.1:1")) and (.broker.last_error | test("nothere") | not)' <<<"$health" >/dev/null ||
  fail "/health without a broker: $health"
stop

kill "$consumer"
wait "$consumer" || fail "tidings consume did not stop cleanly: $(cat "$dir/consume.err")"
consumer=
grep -q 'consumed' "$dir/consume.err" || fail "tidings consume printed no counters"
echo "ok"
