#!/usr/bin/env bash
# test_mail.sh: the e-mails the shop writes, read back with a standard mail
# parser (check_mail.py, Python's email package). A customer with a long
# name in several scripts orders a product with a non-ASCII name twice in
# the same minute, and once with a card that is declined: six messages,
# without a defect, headers encoded (RFC 2047) and folded, each order named
# by a reference of its own, bodies as text and HTML a person would write.
# Usage: test_mail.sh TIDINGS SHOP DIR_OF_THIS_SCRIPT
tidings=$1
shop=$2
here=$3
. "$here/shop_lib.sh"

name="Zoë Ångström-Łukasiewicz de la Fontaine-Müller, Σοφία 山田"
mkdir -p "$dir/data"
. "$(dirname "$0")/../support/store_url.sh"
db=$(store_url "$dir/data" tidings) || exit 1
serve "$dir/data" "$db"
json() { api -s -H 'Content-Type: application/json' "$@"; }
product=$(json "$url/products" \
  -d '{"name":"Crème brûlée pen «deluxe»","price":123456,"currency":"EUR","stock":10}' |
  jq -er .id) || fail "product"
jq -n --arg n "$name" '{email:"zoe@example.com",full_name:$n,password:"long enough pw"}' |
  json "$url/users" -d @- | jq -er .id >/dev/null || fail "register"
token=$(json "$url/sessions" -d '{"email":"zoe@example.com","password":"long enough pw"}' |
  jq -er .token) || fail "login"
place() {
  curl -s -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$url/orders" \
    -d "{\"items\":[{\"product_id\":\"$product\",\"quantity\":2}],\"shipping_address\":\
{\"line1\":\"1 Main St\",\"city\":\"X\",\"postal_code\":\"1\",\"country\":\"FR\"},\
\"payment\":{\"method\":\"card\",\"token\":\"$1\"}}" | jq -er .id || fail "place"
}
place tok_visa >/dev/null
place tok_visa >/dev/null
place tok_decline >/dev/null
spool="$dir/data/mail/spool.mbox"
for _ in $(seq 200); do
  [ "$(grep -c '^Message-ID:' "$spool" 2>/dev/null)" = 6 ] && break
  sleep 0.05
done
stop
python3 "$here/check_mail.py" "$spool" "$name" 6 || fail "the e-mails do not read as they should"
echo "1 passed, 0 failed"
