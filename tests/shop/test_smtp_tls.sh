#!/usr/bin/env bash
# test_smtp_tls.sh: `shop serve` mails through SMTP over TLS with a login,
# against a real TLS SMTP server (smtp_tls_server.py, certificate made here
# with openssl): smtps:// with the login in a netrc file, and smtp:// with
# STARTTLS and the login from the environment. The server's certificate is
# checked, the login never travels in the clear nor sits on the command
# line, and a URL holding a login, a login over plain smtp:// and a netrc
# file others may read are refused at start. Runs on each backend
# (TD_TEST_STORE).
# Usage: test_smtp_tls.sh SHOP SERVER_PY
shop=$1
server_py=$2
tidings=unused
. "$(dirname "$0")/../http/shop_lib.sh"
. "$(dirname "$0")/../support/store_url.sh" # the store: on each backend (TD_TEST_STORE)

servers=()
trap 'for p in "${servers[@]}"; do kill "$p" 2>/dev/null; done; cleanup' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$dir/key.pem" -out "$dir/cert.pem" \
  >/dev/null 2>&1 || fail "openssl cannot make a certificate"
secret="s3cret-smtp-pass-$$"
start_server() { # start_server MODE: sets port
  python3 "$server_py" "$1" "$dir/cert.pem" "$dir/key.pem" mailer "$secret" "$dir/mail.$1" \
    >"$dir/port.$1" &
  servers+=($!)
  for _ in $(seq 50); do
    port=$(head -1 "$dir/port.$1" 2>/dev/null)
    [ -n "$port" ] && return 0
    sleep 0.1
  done
  fail "the $1 server did not start"
}
start_server smtps
smtps=$port
start_server starttls
starttls=$port

# order_mail: registers a customer, places an order and waits for its
# mail in FILE.
order_mail() {
  local file=$1 u t p
  json() { curl -s -H 'Content-Type: application/json' "$@"; }
  p=$(json -H "Authorization: Bearer $key" "$url/products" \
    -d '{"name":"Pen","price":150,"currency":"USD","stock":5}' | jq -er .id) || fail "product"
  json "$url/users" -d '{"email":"tls@example.com","full_name":"T L S","password":"long enough pw"}' \
    >/dev/null
  t=$(json "$url/sessions" -d '{"email":"tls@example.com","password":"long enough pw"}' | jq -er .token) ||
    fail "login"
  json -H "Authorization: Bearer $t" "$url/orders" -d "{\"items\":[{\"product_id\":\"$p\",\"quantity\":1}],\
\"shipping_address\":{\"line1\":\"1\",\"city\":\"C\",\"postal_code\":\"1\",\"country\":\"US\"},\
\"payment\":{\"method\":\"card\",\"token\":\"tok_visa\"}}" | jq -e .id >/dev/null || fail "order"
  for _ in $(seq 100); do
    [ "$(wc -l <"$file" 2>/dev/null || echo 0)" -ge 2 ] && return 0
    sleep 0.1
  done
  fail "no mail reached the server: $(tail -3 "$dir/err")"
}

# smtps:// with the login in a netrc file.
printf 'machine 127.0.0.1\nlogin mailer\npassword %s\n' "$secret" >"$dir/netrc"
chmod 600 "$dir/netrc"
serve "$dir/a" "$(store_url "$dir" a)" --smtp "smtps://127.0.0.1:$smtps" \
  --smtp-credentials-file "$dir/netrc" --smtp-ca-file "$dir/cert.pem"
ps -o args= -p "$pid" | grep -q "$secret" && fail "the password is on the command line"
order_mail "$dir/mail.smtps"
jq -e -s 'all(.tls and .user == "mailer") and (.[0].rcpt[0] | contains("tls@example.com"))' \
  "$dir/mail.smtps" >/dev/null || fail "smtps: $(cat "$dir/mail.smtps")"
stop

# smtp:// with STARTTLS, the login from the environment.
SHOP_SMTP_USER=mailer SHOP_SMTP_PASSWORD=$secret serve "$dir/b" "$(store_url "$dir" b)" \
  --smtp "smtp://127.0.0.1:$starttls" --smtp-starttls --smtp-ca-file "$dir/cert.pem"
order_mail "$dir/mail.starttls"
jq -e -s 'all(.tls and .user == "mailer")' "$dir/mail.starttls" >/dev/null ||
  fail "starttls: $(cat "$dir/mail.starttls")"
stop

# The certificate is checked: without the CA file nothing is sent.
serve "$dir/c" "$(store_url "$dir" c)" --smtp "smtps://127.0.0.1:$smtps" \
  --smtp-credentials-file "$dir/netrc"
before=$(wc -l <"$dir/mail.smtps")
json() { curl -s -H 'Content-Type: application/json' "$@"; }
p=$(json -H "Authorization: Bearer $key" "$url/products" \
  -d '{"name":"Pen","price":150,"currency":"USD","stock":5}' | jq -er .id) || fail "product"
json "$url/users" -d '{"email":"x@example.com","full_name":"X","password":"long enough pw"}' >/dev/null
t=$(json "$url/sessions" -d '{"email":"x@example.com","password":"long enough pw"}' | jq -er .token)
json -H "Authorization: Bearer $t" "$url/orders" -d "{\"items\":[{\"product_id\":\"$p\",\"quantity\":1}],\
\"shipping_address\":{\"line1\":\"1\",\"city\":\"C\",\"postal_code\":\"1\",\"country\":\"US\"},\
\"payment\":{\"method\":\"card\",\"token\":\"tok_visa\"}}" >/dev/null
sleep 2
[ "$(wc -l <"$dir/mail.smtps")" = "$before" ] || fail "mail went to a server whose certificate was not checked"
stop

# Refused at start, saying why.
refused() { # refused WHY ARGS…
  local why=$1
  shift
  "$shop" serve --listen 127.0.0.1:0 --data "$dir/r" "$@" >/dev/null 2>"$dir/refused"
  [ $? = 1 ] || fail "not refused: $*"
  grep -q "$why" "$dir/refused" || fail "refused without saying '$why': $(cat "$dir/refused")"
}
refused "must not hold a login" --smtp "smtp://mailer:$secret@127.0.0.1:$starttls"
refused "in the clear" --smtp "smtp://127.0.0.1:$starttls" --smtp-credentials-file "$dir/netrc"
chmod 644 "$dir/netrc"
refused "make it 0600" --smtp "smtps://127.0.0.1:$smtps" --smtp-credentials-file "$dir/netrc"
echo ok
