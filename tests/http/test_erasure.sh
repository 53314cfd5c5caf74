#!/usr/bin/env bash
# test_erasure.sh: forgetting a customer (crypto-shredding). A customer
# with a paid and a cancelled order is forgotten through the API; from then
# on their e-mail address, name and shipping address read as erased through
# every read path (their user, orders, /events, /streams, the live feed, a
# replay, a read model rebuild, a `shop migrate` copy served again), they
# cannot log in, get no more e-mail, and no new order can be placed for
# them; orders, totals and stock stay; another customer is untouched; the
# store's bytes never held the data in the clear; the audit chain verifies.
# A user from a store written before passwords and sealing (kept by
# address, in the clear) gets a password with `shop users passwd` and is
# forgotten with `shop users forget`; `shop migrate` then erases their
# plaintext events in the copy. Runs on each backend (TD_TEST_STORE): on
# PostgreSQL the store's bytes searched are its schema's rows.
# Usage: test_erasure.sh TIDINGS SHOP
tidings=$1
shop=$2
. "$(dirname "$0")/shop_lib.sh"

. "$(dirname "$0")/../support/store_url.sh"
db=$(store_url "$dir/data" tidings) || exit 1
mkdir -p "$dir/data"
serve "$dir/data" "$db"
json() { api -s -H 'Content-Type: application/json' "$@"; }
as() { curl -s -H "Authorization: Bearer $1" -H 'Content-Type: application/json' "${@:2}"; }
register() {
  json "$url/users" -d "{\"email\":\"$1\",\"full_name\":\"$2\",\"password\":\"long enough pw\"}" |
    jq -er .id || fail "register $1"
}
login() {
  json "$url/sessions" -d "{\"email\":\"$1\",\"password\":\"long enough pw\"}" | jq -er .token
}
place() { # place TOKEN CARD LINE CITY: an order of two pens
  as "$1" "$url/orders" -d "{\"items\":[{\"product_id\":\"$product\",\"quantity\":2}],\
\"shipping_address\":{\"line1\":\"$3\",\"city\":\"$4\",\"postal_code\":\"99\",\
\"country\":\"US\"},\"payment\":{\"method\":\"card\",\"token\":\"$2\"}}" | jq -er .id || fail "place"
}
final() { # final ORDER: waits until it leaves Pending; prints its status
  local s
  for _ in $(seq 200); do
    s=$(api -s "$url/orders/$1" | jq -r .status)
    [ "$s" != Pending ] && echo "$s" && return 0
    sleep 0.05
  done
  fail "order $1 stayed Pending"
}
mails() { grep -c "^To: .*$1" "$dir/data/mail/spool.mbox"; }

product=$(json "$url/products" -d '{"name":"Pen","price":150,"currency":"USD","stock":100}' |
  jq -er .id) || fail "product"
grace=$(register grace@example.com "Grace Forgettable")
bob=$(register bob@example.com "Bob Keeper")
tg=$(login grace@example.com)
tb=$(login bob@example.com)
paid=$(place "$tg" tok_visa "12 Erasure Lane" Forgetton)
declined=$(place "$tg" tok_decline "12 Erasure Lane" Forgetton)
kept=$(place "$tb" tok_visa "1 Keep St" Keepsake)
[ "$(final "$paid")" = Processing ] && [ "$(final "$declined")" = Cancelled ] &&
  [ "$(final "$kept")" = Processing ] || fail "the orders did not end as they should"
for _ in $(seq 100); do [ "$(mails grace@example.com)" -ge 4 ] && break; sleep 0.05; done
[ "$(mails grace@example.com)" = 4 ] || fail "grace got $(mails grace@example.com) e-mails, not 4"
stock=$(api -s "$url/products/$product" | jq .stock)
[ "$stock" = 96 ] || fail "stock $stock"
api -s "$url/events?limit=1000" | grep -q "Grace Forgettable" || fail "/events does not open sealed data"

# Forget her.
forgotten=$(api -s -X POST "$url/users/$grace/forget")
[ "$(jq -c '[.email, .full_name, ._erased]' <<<"$forgotten")" = '[null,null,true]' ] ||
  fail "forget answers $forgotten"
check_erased() { # check_erased WHAT TEXT: no trace of her personal data in TEXT (her
  # address may be someone else's later: registered again below)
  grep -Eq 'Grace Forgettable|Erasure Lane|Forgetton' <<<"$2" && fail "$1 still shows her: $2"
  [ -n "$fresh" ] || ! grep -q grace@example.com <<<"$2" || fail "$1 still shows her address: $2"
}
fresh=
check_erased "her user" "$(api -s "$url/users/$grace")"
order=$(api -s "$url/orders/$paid")
check_erased "her order" "$order"
[ "$(jq -c '[.status, .total_amount, .shipping_address, ._erased]' <<<"$order")" = '["Processing",300,null,true]' ] ||
  fail "her order lost more than her data: $order"
events=$(api -s "$url/events?limit=1000")
check_erased /events "$events"
grep -q "Bob Keeper" <<<"$events" || fail "/events lost Bob"
[ "$(jq '[.events[] | select(.data._erased)] | length' <<<"$events")" -ge 4 ] || fail "erased events unmarked"
check_erased /streams "$(api -s "$url/streams/user-$grace")$(api -s "$url/streams/order-$paid")"
feed=$(api -s -N --max-time 2 "$url/events/stream?after=0")
check_erased "the live feed" "$feed"
grep -q "Bob Keeper" <<<"$feed" || fail "the live feed lost Bob"
[ "$(api -s "$url/users/$grace/orders" | jq '.orders | length')" = 2 ] || fail "her orders are gone"
[ "$(api -s "$url/products/$product" | jq .stock)" = "$stock" ] || fail "stock changed"
[ "$(api -s "$url/orders/$kept" | jq -r .shipping_address.city)" = Keepsake ] || fail "Bob's order changed"

# She cannot log in, her session is over, no order can be placed for her.
[ "$(json -o /dev/null -w '%{http_code}' "$url/sessions" \
  -d '{"email":"grace@example.com","password":"long enough pw"}')" = 401 ] || fail "she can log in"
[ "$(as "$tg" -o /dev/null -w '%{http_code}' "$url/orders/$paid")" = 401 ] || fail "her session works"
got=$(json -o /dev/null -w '%{http_code}' "$url/orders" -d "{\"user_id\":\"$grace\",\"items\":\
[{\"product_id\":\"$product\",\"quantity\":1}],\"shipping_address\":{\"line1\":\"x\",\"city\":\"x\",\
\"postal_code\":\"1\",\"country\":\"US\"},\"payment\":{\"method\":\"card\",\"token\":\"tok_visa\"}}")
[ "$got" = 422 ] || fail "an order for her: $got"
# Her address may be registered again, by someone new.
register grace@example.com "Someone New" >/dev/null
fresh=yes

# No more e-mail: cancelling her paid order, and a replay of every order
# event to the mailer, send nothing to her.
api -s -X POST "$url/orders/$paid/cancel" >/dev/null
"$tidings" --db "$db" replay --subscription notifications --from 1 --force-effects --by test \
  >/dev/null || fail "replay"
for _ in $(seq 100); do
  [ "$("$tidings" --db "$db" replay list)" = "no replays pending" ] && break
  sleep 0.1
done
sleep 0.5
[ "$(mails grace@example.com)" = 4 ] || fail "she got more e-mail: $(mails grace@example.com)"

# A rebuild of her orders' read model keeps them, and nothing of her.
"$shop" projections rebuild user_orders --db "$db" >/dev/null || fail "rebuild"
[ "$(api -s "$url/users/$grace/orders" | jq '.orders | length')" = 2 ] || fail "rebuild lost her orders"
stop

# The bytes: her data never stood in the clear; the chain holds.
if [ "$td_test_store" = postgres ]; then
  store_rows "$db" >"$dir/rows" || fail "the store's rows"
  [ -s "$dir/rows" ] || fail "no rows to search"
  grep -aEq 'grace@example.com|Grace Forgettable|Erasure Lane' "$dir/rows" &&
    fail "the store's rows hold her data in the clear"
else
  for f in "$dir"/data/tidings.db*; do
    [ -f "$f" ] || continue # the lock folder
    grep -aEq 'grace@example.com|Grace Forgettable|Erasure Lane' "$f" && fail "$f holds her data in the clear"
  done
fi
"$tidings" --db "$db" audit verify >/dev/null || fail "the audit chain does not verify after forget"

# A copy made after forgetting reads her as erased too.
copy=$(store_url "$dir" copy) || exit 1
"$shop" migrate --db "$db" --data "$dir/data" --to "$copy" >/dev/null || fail "migrate"
serve "$dir/copy" "$copy" --master-key-file "$dir/data/master.key"
check_erased "the copy" "$(api -s "$url/events?limit=1000")"
stop

# A user from before sealing: kept in the clear, by address.
old=018f0000-0000-7000-8000-0000000000bb
mkdir -p "$dir/old"
odb=$(store_url "$dir/old" tidings) || exit 1
"$tidings" --db "$odb" init >/dev/null || fail "init"
"$tidings" --db "$odb" append "user-$old" UserRegistered "{\"user_id\":\"$old\",\
\"email\":\"old@example.com\",\"full_name\":\"Old Timer\",\"registered_at\":\"2026-01-01T00:00:00Z\"}" \
  --source users >/dev/null || fail "append"
store_sql "$odb" "INSERT INTO documents VALUES ('user_emails', 'old@example.com', \
'{\"user_id\":\"$old\"}', 0)" || fail "the old index"
serve "$dir/old" "$odb"
[ "$(json -o /dev/null -w '%{http_code}' "$url/sessions" \
  -d '{"email":"old@example.com","password":"long enough pw"}')" = 401 ] || fail "no password yet"
echo "short" | "$shop" users passwd "$old" --db "$odb" 2>/dev/null
[ $? = 4 ] || fail "a short password was taken"
echo "long enough pw" | "$shop" users passwd "$old" --db "$odb" >/dev/null || fail "passwd"
t=$(login OLD@example.com) && [ -n "$t" ] || fail "the old user cannot log in after passwd"
[ "$(as "$t" "$url/users/$old" | jq -r .full_name)" = "Old Timer" ] || fail "the old user's data"
"$shop" users forget "$old" --db "$odb" --data "$dir/old" >/dev/null || fail "users forget"
[ "$(api -s "$url/users/$old" | jq -c '[.email, ._erased]')" = '[null,true]' ] || fail "not forgotten"
stop
"$tidings" --db "$odb" events | grep -q old@example.com || fail "the old event's bytes changed"
oldcopy=$(store_url "$dir" oldcopy) || exit 1
"$shop" migrate --db "$odb" --data "$dir/old" --to "$oldcopy" >/dev/null || fail "migrate the old"
"$tidings" --db "$oldcopy" events | grep -q 'old@example.com\|Old Timer' &&
  fail "the copy holds a forgotten user's plaintext events"
echo ok
