#!/usr/bin/env bash
# test_services.sh: the shop as three services over a broker (a private
# RabbitMQ node that CTest starts; TD_TEST_RABBITMQ_DIR), laid out as the
# README shows: users,catalog,orders / inventory / payments,notifications,
# each process with a store and a data folder of its own and one master
# key. Orders complete across the processes, and so do the saga's
# compensations (out of stock, payment declined, payment timeout, a
# customer's cancel); stock on a product and the e-mails follow from the
# others' events; a route goes to the service that owns it (421 elsewhere);
# no store holds the customer's address or card token in the clear; a
# customer forgotten by users is forgotten by the other stores too; each
# effect happens once; shop load's orders go final and the stock settles.
# Usage: test_services.sh TIDINGS SHOP
tidings=$1
shop=$2
. "$(dirname "$0")/shop_lib.sh"
. "$(dirname "$0")/../support/store_url.sh"

rabbit=${TD_TEST_RABBITMQ_DIR:?run through ctest, which starts the broker}
install -m 600 "$rabbit/url" "$dir/broker.url"
exchange=shop-services-$$
JSON='Content-Type: application/json'

declare -A pids urls keys dbs
cleanup_services() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  cleanup
}
trap cleanup_services EXIT

# start NAME SERVICES [OPTION…]: one process of the shop; sets its pid, url,
# admin key and store in the arrays above.
start() {
  local name=$1 services=$2
  shift 2
  mkdir -p "$dir/$name"
  [ -n "${dbs[$name]:-}" ] || dbs[$name]=$(store_url "$dir/$name" tidings) || fail "no store for $name"
  "$shop" serve --listen 127.0.0.1:0 --data "$dir/$name" --db "${dbs[$name]}" \
    --services "$services" --broker-file "$dir/broker.url" --broker-exchange "$exchange" \
    --payment-timeout 1500 --log-level error "$@" >"$dir/$name.out" 2>>"$dir/$name.err" &
  pids[$name]=$!
  shop_wait_url "$dir/$name.out" "${pids[$name]}" 20 0.1 ||
    fail "$name did not start: $(tail -3 "$dir/$name.err")"
  urls[$name]=$url
  keys[$name]=$(cat "$dir/$name/admin.key")
}

# as NAME CURL_ARGS…: curl to process NAME with its admin key.
as() {
  local name=$1
  shift
  curl -s -H "Authorization: Bearer ${keys[$name]}" "$@"
}

# until_true SECONDS COMMAND…: runs COMMAND every 0.2 s until it succeeds.
until_true() {
  local tries=$(($1 * 5))
  shift
  for ((i = 0; i < tries; i++)); do
    "$@" && return 0
    sleep 0.2
  done
  return 1
}

# --- refusals ------------------------------------------------------------------
out=$("$shop" serve --data "$dir/x" --services orders --broker-file "$dir/broker.url" 2>&1)
[ $? = 2 ] && grep -q 'orders runs with users' <<<"$out" || fail "orders without users was taken: $out"
out=$("$shop" serve --data "$dir/x" --services inventory 2>&1)
[ $? = 2 ] && grep -q 'broker' <<<"$out" || fail "--services without a broker was taken: $out"
out=$("$shop" serve --data "$dir/x" --services inventory,stock --broker-file "$dir/broker.url" 2>&1)
[ $? = 2 ] && grep -q "no service 'stock'" <<<"$out" || fail "an unknown service was taken: $out"
out=$("$shop" serve --data "$dir/x" --services inventory,inventory --broker-file "$dir/broker.url" 2>&1)
[ $? = 2 ] && grep -q "repeated" <<<"$out" || fail "a repeated service was taken: $out"

# --- three processes, one master key -----------------------------------------------
start shop users,catalog,orders
key_file=$dir/shop/master.key
start inventory inventory --master-key-file "$key_file"
start payments payments,notifications --master-key-file "$key_file"
grep -q 'running the services users,catalog,orders' "$dir/shop/out" "$dir/shop.out" 2>/dev/null ||
  fail "no word of the services: $(cat "$dir/shop.out")"
for name in shop inventory payments; do
  until_true 20 eval "as $name '${urls[$name]}/health' | jq -e '.broker.connection == \"connected\" and .broker.consumer.connection == \"connected\"' >/dev/null" ||
    fail "$name is not connected to the broker: $(as "$name" "${urls[$name]}/health")"
done
health=$(as payments "${urls[payments]}/health")
jq -e '.services == ["payments","notifications"] and .broker.consumer.connection == "connected"' <<<"$health" >/dev/null ||
  fail "/health of payments,notifications: $health"
jq -e '.subscriptions | map(.name) | (index("payments") != null and index("notifications") != null and index("inventory") == null)' \
  <<<"$health" >/dev/null || fail "payments,notifications runs the wrong handlers: $health"

# --- routes go to their owners ------------------------------------------------------
body=$(curl -s -w '\n%{http_code}' "${urls[inventory]}/orders" -H "$JSON" -d '{}')
[ "$(tail -1 <<<"$body")" = 421 ] || fail "POST /orders on inventory: $body"
head -1 <<<"$body" | jq -e '.code == "wrong_service" and .service == "orders" and (.detail | test("orders service"))' >/dev/null ||
  fail "the 421 does not name the orders service: $body"
code=$(curl -s -o /dev/null -w '%{http_code}' "${urls[shop]}/products/x/stock" -H "$JSON" -d '{}')
[ "$code" = 421 ] || fail "POST /products/{id}/stock on users,catalog,orders answered $code"

# --- the catalog, a customer --------------------------------------------------------
P=$(as shop "${urls[shop]}/products" -H "$JSON" -d '{"name":"Pen","price":150,"currency":"USD","stock":5}' | jq -r .id)
[ -n "$P" ] && [ "$P" != null ] || fail "no product"
# inventory learns of the product (ProductCreated, and its initial stock)
restock() {
  [ "$(as inventory -o /dev/null -w '%{http_code}' "${urls[inventory]}/products/$P/stock" -H "$JSON" \
    -d '{"quantity_change":5,"reason":"restock"}')" = 200 ]
}
until_true 20 restock || fail "inventory never learned of product $P"
stock() { curl -s "${urls[shop]}/products/$P" | jq -r .stock; }
stock_is() { [ "$(stock)" = "$1" ]; }
until_true 20 stock_is 10 || fail "the catalog's stock is $(stock), not 10 (5 + a restock of 5)"

email=ada.services@example.com
curl -sf "${urls[shop]}/users" -H "$JSON" \
  -d '{"email":"'$email'","full_name":"Ada Lovelace","password":"correct horse battery"}' >/dev/null ||
  fail "no user"
T=$(curl -sf "${urls[shop]}/sessions" -H "$JSON" -d '{"email":"'$email'","password":"correct horse battery"}' | jq -r .token)
U=$(curl -sf "${urls[shop]}/sessions/current" -H "Authorization: Bearer $T" | jq -r .user_id)
[ -n "$U" ] && [ "$U" != null ] || fail "no session"

# order QUANTITY TOKEN: places an order as the customer; prints its id.
order() {
  curl -s "${urls[shop]}/orders" -H "Authorization: Bearer $T" -H "$JSON" -d '{
      "items":[{"product_id":"'"$P"'","quantity":'"$1"'}],
      "shipping_address":{"line1":"1 Secret Lane","city":"Springfield","postal_code":"12345","country":"US"},
      "payment":{"method":"card","token":"'"$2"'"}}' | jq -r .id
}
order_field() { curl -s "${urls[shop]}/orders/$1" -H "Authorization: Bearer $T" | jq -r ".$2"; }
status_is() { [ "$(order_field "$1" status)" = "$2" ]; }
# settles ORDER STATUS [REASON]
settles() {
  until_true 30 status_is "$1" "$2" ||
    fail "order $1 is $(order_field "$1" status) ($(order_field "$1" cancel_reason)), not $2"
  [ -z "${3:-}" ] || [ "$(order_field "$1" cancel_reason)" = "$3" ] ||
    fail "order $1 was cancelled for $(order_field "$1" cancel_reason), not $3"
}

# --- the saga across the processes, and its compensations -----------------------------
paid=$(order 2 tok_visa)
settles "$paid" Processing
until_true 20 stock_is 8 || fail "stock after a paid order of 2: $(stock), not 8"

short=$(order 100 tok_visa)
settles "$short" Cancelled out_of_stock

declined=$(order 1 tok_decline)
settles "$declined" Cancelled payment_declined

late=$(order 1 tok_timeout)
settles "$late" Cancelled payment_timeout

cancelled=$(order 3 tok_visa)
settles "$cancelled" Processing
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "${urls[shop]}/orders/$cancelled/cancel" -H "Authorization: Bearer $T")
[ "$code" = 200 ] || fail "the customer's cancel answered $code"
settles "$cancelled" Cancelled cancelled_by_customer
refunds() { [ "$("$tidings" --db "${dbs[payments]}" events --type PaymentRefunded 2>/dev/null | grep -c "$cancelled")" = 1 ]; }
until_true 20 refunds || fail "the cancelled order was not refunded once in the payments store"
# every reservation but the paid order's is given back: 10 - 2
until_true 20 stock_is 8 || fail "stock after the compensations: $(stock), not 8"
reserved=$("$tidings" --db "${dbs[inventory]}" events --type StockReserved | grep -c .)
released=$("$tidings" --db "${dbs[inventory]}" events --type InventoryReleased | grep -c .)
[ "$reserved" = 4 ] && [ "$released" = 3 ] ||
  fail "inventory reserved $reserved times and released $released (want 4 and 3)"

# --- each effect once ------------------------------------------------------------------
for type in ProcessPayment PaymentProcessed ReserveInventory; do
  for name in shop payments; do
    ids=$("$tidings" --db "${dbs[$name]}" events --type "$type" | jq -r .id)
    [ "$(sort <<<"$ids" | uniq -d)" = "" ] || fail "$type twice in $name's store"
  done
done
charged=$("$tidings" --db "${dbs[payments]}" events --type PaymentProcessed | jq -s 'map(select(.data.is_successful)) | length')
[ "$charged" = 2 ] || fail "$charged successful charges, not 2 (the paid order and the cancelled one)"
spool=$dir/payments/mail/spool.mbox
confirmed() { [ "$(grep -c '^X-Email-Kind: order_confirmed' "$spool" 2>/dev/null)" = 2 ]; }
until_true 20 confirmed || fail "not 2 confirmations in the notifications' spool"
received=$(grep -c '^X-Email-Kind: order_received' "$spool")
[ "$received" = 5 ] || fail "$received order_received e-mails, not 5"
# what no other service reads stays home (it would pile up unrouted)
sent=$(as payments "${urls[payments]}/health" | jq .broker.published)
confirmations=$("$tidings" --db "${dbs[payments]}" events --type OrderConfirmationEmail | grep -c .)
[ "$confirmations" = 2 ] || fail "$confirmations OrderConfirmationEmail events, not 2"
[ "$sent" = 4 ] || fail "payments published $sent messages, not 4 (3 PaymentProcessed, 1 PaymentRefunded: no OrderConfirmationEmail)"
grep -q "^To: .*$email" "$spool" || fail "the e-mails are not addressed to the customer"

metrics=$(as payments "${urls[payments]}/metrics")
for series in 'broker_consumed_total{queue="shop.payments-notifications"} [1-9]' \
  'broker_confirmed_total{relay="shop"} [1-9]' 'broker_relay_lag_events{relay="shop"} ' \
  'broker_redelivered_total{queue="shop.payments-notifications"} ' 'broker_nacked_total{relay="shop"} '; do
  grep -q "^$series" <<<"$metrics" || fail "no $series in the payments' /metrics"
done

# --- personal data and card tokens, never in the clear in a store ------------------------
for name in shop inventory payments; do
  db=${dbs[$name]}
  if [ "$td_test_store" = postgres ]; then
    rows=$(store_rows "$db")
  else
    rows=$(cat "$dir/$name"/tidings.db "$dir/$name"/tidings.db-wal 2>/dev/null | tr -d '\000')
  fi
  for secret in "$email" "Secret Lane" tok_visa tok_decline; do
    grep -aqF "$secret" <<<"$rows" && fail "$name's store holds '$secret' in the clear"
  done
done
"$tidings" --db "${dbs[payments]}" events --type OrderCreated | jq -e -s 'all(.data._sealed != null and .data._transit == null)' >/dev/null ||
  fail "OrderCreated is not sealed in the payments store"

# --- a second instance of a service on the same store takes over when the first dies ----------
# (it stands by: the queue has one active consumer, the handlers one runner)
dbs[inventory2]=${dbs[inventory]}
mkdir -p "$dir/inventory2" && cp "$dir/inventory/admin.key" "$dir/inventory2/"
start inventory2 inventory --master-key-file "$key_file"
kill -KILL "${pids[inventory]}"
wait "${pids[inventory]}" 2>/dev/null
unset "pids[inventory]"
after_kill=$(order 1 tok_visa)
settles "$after_kill" Processing
until_true 20 stock_is 7 || fail "stock after an order taken by the second inventory: $(stock), not 7"

# --- a service started with another master key cannot open what is sent -------------------
start stranger notifications
until_true 20 eval "as stranger '${urls[stranger]}/health' | jq -e '.broker.consumer.connection == \"connected\"' >/dev/null" ||
  fail "the stranger did not connect"
sleep 1 # its queue is bound
order 1 tok_visa >/dev/null
parked() { "$tidings" --db "${dbs[stranger]}" dlq list --subscription shop.notifications.intake 2>/dev/null | grep -q 'different master keys'; }
until_true 20 parked ||
  fail "a message sealed under another master key was not parked: $("$tidings" --db "${dbs[stranger]}" dlq list)"
kill "${pids[stranger]}"
wait "${pids[stranger]}" || fail "the stranger did not stop cleanly"
unset "pids[stranger]"

# --- forgetting crosses the services ---------------------------------------------------
as shop -f -X POST "${urls[shop]}/users/$U/forget" >/dev/null || fail "cannot forget the customer"
forgotten() { [ "$("$tidings" --db "${dbs[payments]}" events --type UserForgotten 2>/dev/null | grep -c "$U")" = 1 ]; }
until_true 20 forgotten || fail "the payments store did not hear that the customer was forgotten"
# the notifications' key for the customer is destroyed: their copies read as erased
tomb() { "$tidings" --db "${dbs[payments]}" documents tidings_subject_keys | grep "user-$U" | grep -q forgotten_at; }
until_true 10 tomb || fail "the payments store keeps a key for the forgotten customer"
"$tidings" --db "${dbs[payments]}" events --type UserRegistered | jq -e -s 'length == 1 and .[0].data._sealed != null' >/dev/null ||
  fail "UserRegistered did not reach notifications sealed"

# --- shop load against the orders process ------------------------------------------------
# Orders from several customers at once go final across the processes, and
# the catalog's stock, fed by inventory's events through the broker (a
# declined order's stock comes back after the order is final), agrees with
# them once it has settled: shop load --settle waits for that, up to 30 s.
out=$("$shop" load --url "${urls[shop]}" --orders 1 --concurrency 1 --settle 601 2>&1)
[ $? = 2 ] && grep -q -- '--settle must be' <<<"$out" || fail "--settle 601 was taken: $out"
"$shop" load --url "${urls[shop]}" --key-file "$dir/shop/admin.key" --orders 40 --concurrency 4 \
  --decline-rate 0.25 --settle 30 >"$dir/load.out" 2>&1 || fail "shop load: $(tail -5 "$dir/load.out")"
grep -qE '^orders: 40 placed, [0-9]+ refused, 0 failed, 40 final' "$dir/load.out" &&
  grep -q '^stock_settled_ms: [0-9]' "$dir/load.out" && grep -q '^consistency: ok' "$dir/load.out" ||
  fail "shop load against the services: $(cat "$dir/load.out")"

# --- the processes stop cleanly ---------------------------------------------------------
for name in shop inventory2 payments; do
  kill "${pids[$name]}"
  wait "${pids[$name]}" || fail "$name did not stop cleanly: $(tail -3 "$dir/$name.err")"
  unset "pids[$name]"
done
for name in shop inventory inventory2 payments; do
  grep -qiE 'AddressSanitizer|runtime error' "$dir/$name.err" && fail "$name: $(cat "$dir/$name.err")"
done
echo "ok"
