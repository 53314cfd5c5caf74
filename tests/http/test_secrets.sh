#!/usr/bin/env bash
# test_secrets.sh: secrets stay out of the store, the mail and the logs.
# After a `shop load` run and orders with card tokens of their own, every
# byte of the store (database, WAL, shared memory), the mail spool and the
# shop's logs (at debug level) is searched for the card tokens used, a
# customer's password, session token and e-mail address, and the API keys.
# Tokens, passwords and keys are found nowhere; e-mail addresses and
# shipping addresses only in the mail (where they must be) and never in
# the store's bytes. The store's files are the owner's alone. Runs on each
# backend (TD_TEST_STORE): on PostgreSQL the store's bytes searched are its
# schema's rows (the server's own files hold every test's data, and are
# the server's).
# Usage: test_secrets.sh TIDINGS SHOP
tidings=$1
shop=$2
. "$(dirname "$0")/shop_lib.sh"

. "$(dirname "$0")/../support/store_url.sh"
db=$(store_url "$dir/data" tidings) || exit 1
mkdir -p "$dir/data"
"$shop" serve --listen 127.0.0.1:0 --data "$dir/data" --db "$db" --log-level debug >"$dir/log.out" \
  2>"$dir/log.err" &
pid=$!
for _ in $(seq 100); do
  url=$(grep -o 'http://[0-9.:]*' "$dir/log.out" 2>/dev/null | head -1)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || fail "the shop did not start"
key=$(cat "$dir/data/admin.key")
staff=$("$shop" keys create --role staff --name staff --db "$db") || fail "staff key"

"$shop" load --url "$url" --orders 300 --concurrency 8 --decline-rate 0.3 \
  --key-file "$dir/data/admin.key" >"$dir/load" 2>&1 || fail "load: $(tail -3 "$dir/load")"
grep -q '^consistency: ok' "$dir/load" || fail "load: $(tail -3 "$dir/load")"

password="correct-horse-$$-staple"
email="secret-keeper-$$@example.com"
json() { curl -s -H 'Content-Type: application/json' "$@"; }
json "$url/users" -d "{\"email\":\"$email\",\"full_name\":\"Keeper Of Secrets\",\"password\":\"$password\"}" |
  jq -e .id >/dev/null || fail "register"
session=$(json "$url/sessions" -d "{\"email\":\"$email\",\"password\":\"$password\"}" | jq -er .token) ||
  fail "login"
product=$(json -H "Authorization: Bearer $staff" "$url/products" \
  -d '{"name":"Pen","price":150,"currency":"USD","stock":100}' | jq -er .id) || fail "product"
cards=()
for i in 1 2 3; do
  card="tok_private_${$}_$i"
  cards+=("$card")
  json -H "Authorization: Bearer $session" "$url/orders" -d "{\"items\":[{\"product_id\":\
\"$product\",\"quantity\":1}],\"shipping_address\":{\"line1\":\"7 Hidden Way\",\"city\":\"Vault\",\
\"postal_code\":\"7\",\"country\":\"US\"},\"payment\":{\"method\":\"card\",\"token\":\"$card\"}}" |
    jq -e .id >/dev/null || fail "order $i"
done
json -H "Authorization: Bearer $session" "$url/orders" -d "{\"items\":[{\"product_id\":\"$product\",\
\"quantity\":1}],\"shipping_address\":{\"line1\":\"7 Hidden Way\",\"city\":\"Vault\",\"postal_code\":\
\"7\",\"country\":\"US\"},\"payment\":{\"method\":\"card\",\"token\":\"tok_timeout\"}}" >/dev/null
sleep 1 # the payments are made

secrets=(tok_visa tok_decline tok_timeout "${cards[@]}" "$password" "$session" "$key" "$staff")
personal=("$email" "Keeper Of Secrets" "7 Hidden Way" "Benchville")
# search WHAT FILE…: fails if any secret stands in the files.
search() {
  local what=$1 f s
  shift
  for f in "$@"; do
    [ -f "$f" ] || continue
    for s in "${secrets[@]}"; do
      grep -aqF -- "$s" "$f" && fail "$what: $f holds the secret '${s:0:12}…'"
    done
  done
  return 0
}
# store_files: the store's files (SQLite), or a file of its rows (PostgreSQL).
store_files() {
  if [ "$td_test_store" = postgres ]; then
    store_rows "$db" >"$dir/store.rows" && [ -s "$dir/store.rows" ] && echo "$dir/store.rows"
  else
    find "$dir/data" -maxdepth 2 -type f -path "$dir/data/tidings.db*"
  fi
}
[ -n "$(store_files)" ] || fail "no store files to search"
# While it runs: the database and its write-ahead log as they are.
search "the running store" $(store_files)
for f in $(store_files); do
  for p in "${personal[@]}"; do
    grep -aqF -- "$p" "$f" && fail "$f holds personal data in the clear: $p"
  done
done
stop
search "the stopped store" $(store_files)
search "the mail" "$dir"/data/mail/*
search "the logs" "$dir/log.out" "$dir/log.err" "$dir/load"
grep -qF "$email" "$dir"/data/mail/spool.mbox || fail "the mail does not reach the customer"
[ -s "$dir/log.err" ] || fail "no logs were written to search"
owned=() # the store's files (SQLite; a PostgreSQL store's are the server's)
[ "$td_test_store" = postgres ] || owned=($(store_files))
for f in "${owned[@]+"${owned[@]}"}" "$dir"/data/*.key "$dir"/data/mail/*; do
  [ "$(stat -c %a "$f")" = 600 ] || fail "$f has mode $(stat -c %a "$f")"
done
# tidings, the generic tool, shows events as stored: sealed, no tokens.
out=$("$tidings" --db "$db" events)
for s in "${secrets[@]}" "$email"; do
  grep -qF -- "$s" <<<"$out" && fail "tidings events shows '${s:0:12}…'"
done
echo ok
