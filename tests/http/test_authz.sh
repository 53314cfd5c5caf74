#!/usr/bin/env bash
# test_authz.sh: who may do what. Reads authz/matrix.txt (every route × every
# identity: anonymous, customer A, customer B, staff, admin, metrics) and
# asks a real `shop serve` each cell's request, checking the status and,
# for refusals, the problem's code and the WWW-Authenticate challenge. Then
# what a table cannot say: bad or revoked tokens, /health's detail for
# admins only, a customer's live feed holding only their own orders, the
# login and registration throttles, the Host check, and CORS.
# Usage: test_authz.sh TIDINGS SHOP MATRIX
tidings=$1
shop=$2
matrix=$3
. "$(dirname "$0")/shop_lib.sh"

. "$(dirname "$0")/../support/store_url.sh"
db=$(store_url "$dir/data" tidings) || exit 1
mkdir -p "$dir/data"
serve "$dir/data" "$db" --auth-limit 1000
[ -n "$key" ] || fail "no admin key in DATA/admin.key"
[ "$(stat -c %a "$dir/data/admin.key")" = 600 ] || fail "admin.key is not 0600"
[ "$(stat -c %a "$dir/data")" = 700 ] || fail "the data folder is not 0700"
staff=$("$shop" keys create --role staff --name staff1 --db "$db") || fail "staff key"
metrics=$("$shop" keys create --role metrics --name scraper --db "$db") || fail "metrics key"
[ "$(wc -l <<<"$staff")" = 1 ] && [[ $staff == shop_k_* ]] || fail "a key is not alone on its line: $staff"

as() { # as TOKEN CURL_ARGS…: a request with TOKEN's credentials (none for "")
  local token=$1
  shift
  if [ -n "$token" ]; then curl -s -H "Authorization: Bearer $token" "$@"; else curl -s "$@"; fi
}
json() { as "$1" -H 'Content-Type: application/json' "${@:2}"; }

register() { # register EMAIL: prints the new user's id
  json "" "$url/users" -d "{\"email\":\"$1\",\"full_name\":\"Test $1\",\"password\":\"long-enough-pw\"}" |
    jq -er .id || fail "register $1"
}
login() { # login EMAIL: prints a session token
  json "" "$url/sessions" -d "{\"email\":\"$1\",\"password\":\"long-enough-pw\"}" | jq -er .token ||
    fail "login $1"
}
emailA=a@example.com
userA=$(register $emailA)
userB=$(register b@example.com)
register c@example.com >/dev/null # logs in in the table, apart from A's own throttle
tokenA=$(login $emailA)
tokenB=$(login b@example.com)
product=$(json "$key" "$url/products" -d '{"name":"Pen","price":150,"currency":"USD","stock":100000}' |
  jq -er .id) || fail "product"
order_body() {
  echo "{\"user_id\":\"$1\",\"items\":[{\"product_id\":\"$product\",\"quantity\":1}],\
\"shipping_address\":{\"line1\":\"1 Main St\",\"city\":\"Springfield\",\"postal_code\":\"1\",\
\"country\":\"US\"},\"payment\":{\"method\":\"card\",\"token\":\"tok_visa\"}}"
}
place() { json "$2" "$url/orders" -d "$(order_body "$1")" | jq -er .id || fail "place an order"; }
until_status() { # until_status ORDER STATUS
  for _ in $(seq 200); do
    [ "$(as "$key" "$url/orders/$1" | jq -r .status)" = "$2" ] && return 0
    sleep 0.05
  done
  fail "order $1 did not become $2"
}
orderA=$(place "$userA" "$tokenA")
orderB=$(place "$userB" "$tokenB")
until_status "$orderA" Processing

unique=0
# fill TEMPLATE: the template with its placeholders made for this cell.
fill() {
  local t=$1 o
  t=${t//\{unique\}/$unique-$$}
  t=${t//\{userA\}/$userA}
  t=${t//\{userB\}/$userB}
  t=${t//\{orderA\}/$orderA}
  t=${t//\{orderB\}/$orderB}
  t=${t//\{emailC\}/c@example.com}
  t=${t//\{product\}/$product}
  if [[ $t == *'{fresh_user}'* ]]; then t=${t//\{fresh_user\}/$(register "f$unique-$$@example.com")}; fi
  if [[ $t == *'{fresh_orderA}'* ]]; then t=${t//\{fresh_orderA\}/$(place "$userA" "$tokenA")}; fi
  if [[ $t == *'{paid_orderA}'* ]]; then
    o=$(place "$userA" "$tokenA")
    until_status "$o" Processing
    t=${t//\{paid_orderA\}/$o}
  fi
  if [[ $t == *'{shipped_orderA}'* ]]; then
    o=$(place "$userA" "$tokenA")
    until_status "$o" Processing
    as "$key" -X POST "$url/orders/$o/ship" >/dev/null
    t=${t//\{shipped_orderA\}/$o}
  fi
  printf '%s' "$t"
}

names=(anonymous customerA customerB staff admin metrics)
cells=0
while read -r method path body e1 e2 e3 e4 e5 e6 flag; do
  [ -z "$method" ] || [[ $method == \#* ]] && continue
  expected=("$e1" "$e2" "$e3" "$e4" "$e5" "$e6")
  tokens=("" "$tokenA" "$tokenB" "$staff" "$key" "$metrics")
  for i in 0 1 2 3 4 5; do
    token=${tokens[$i]}
    unique=$((unique + 1)) # fill runs in a subshell: counted here
    if [ "$flag" = @fresh-session ]; then
      [ "$i" = 1 ] && token=$(login $emailA)
      [ "$i" = 2 ] && token=$(login b@example.com)
    fi
    p=$(fill "$path")
    args=(-X "$method" -D "$dir/headers" -o "$dir/body" -w '%{http_code}' --max-time 2)
    [ "$body" != - ] && args+=(-H 'Content-Type: application/json' -d "$(fill "$body")")
    got=$(as "$token" "${args[@]}" "$url$p")
    want=${expected[$i]}
    [ "$got" = "$want" ] ||
      fail "$method $p as ${names[$i]}: $got, expected $want: $(head -c 300 "$dir/body")"
    code=
    [ "$got" -ge 400 ] && code=$(jq -r .code <"$dir/body")
    case $got in
    401)
      [ "$code" = unauthenticated ] || fail "$method $p as ${names[$i]}: code $code"
      grep -qi '^WWW-Authenticate: Bearer' "$dir/headers" || fail "$method $p: 401 without a challenge"
      ;;
    403) [ "$code" = forbidden ] || fail "$method $p as ${names[$i]}: code $code" ;;
    404) [ "$code" = not_found ] || fail "$method $p as ${names[$i]}: code $code" ;;
    esac
    [ "$got" -lt 400 ] || grep -qi '^Content-Type: application/problem+json' "$dir/headers" ||
      fail "$method $p as ${names[$i]}: a refusal that is not problem+json"
    cells=$((cells + 1))
  done
done <"$matrix"
[ "$cells" -ge 150 ] || fail "only $cells cells were checked"

# Another customer's order reads exactly as a missing one, body and all.
other=$(as "$tokenB" "$url/orders/$orderA" | jq -c 'del(.detail)')
missing=$(as "$tokenB" "$url/orders/01a00000-0000-7000-8000-000000000000" | jq -c 'del(.detail)')
[ "$other" = "$missing" ] || fail "another's order differs from a missing one: $other / $missing"
as "$tokenB" "$url/orders/$orderA" | jq -r .detail | grep -q "no order $orderA" || fail "detail"

# Bad credentials: 401 invalid_token, on public routes too.
for bad in "shop_s_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" "nonsense" "$key-x"; do
  got=$(as "$bad" -D "$dir/headers" -o "$dir/body" -w '%{http_code}' "$url/products")
  [ "$got" = 401 ] && [ "$(jq -r .code <"$dir/body")" = invalid_token ] ||
    fail "a bad token on a public route: $got $(cat "$dir/body")"
  grep -qi 'error="invalid_token"' "$dir/headers" || fail "no invalid_token challenge"
done
got=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Basic $key" "$url/events")
[ "$got" = 401 ] || fail "Basic credentials: $got"
# A wrong password and an unknown e-mail look the same.
w1=$(json "" -w ' %{http_code}' "$url/sessions" -d "{\"email\":\"$emailA\",\"password\":\"wrong password!\"}")
w2=$(json "" -w ' %{http_code}' "$url/sessions" -d '{"email":"nobody@example.com","password":"long-enough-pw"}')
[ "$w1" = "$w2" ] && [[ $w1 == *invalid_credentials*401 ]] || fail "logins differ: $w1 / $w2"
# A revoked key and an ended session stop working at once.
"$shop" keys revoke staff1 --db "$db" >/dev/null || fail "revoke"
[ "$(as "$staff" -o /dev/null -w '%{http_code}' "$url/orders/$orderA")" = 401 ] || fail "a revoked key works"
"$shop" keys list --db "$db" | grep -q staff1 && fail "a revoked key is listed"
"$shop" keys list --db "$db" | grep -q '^admin  *admin' || fail "keys list: $("$shop" keys list --db "$db")"
"$shop" keys create --role root --name x --db "$db" 2>/dev/null
[ $? = 2 ] || fail "an unknown role is not a usage error"
"$shop" keys create --role staff --name 'bad name' --db "$db" 2>/dev/null
[ $? = 4 ] || fail "a bad key name is not invalid input"
t=$(login $emailA)
[ "$(as "$t" -X DELETE -o /dev/null -w '%{http_code}' "$url/sessions/current")" = 204 ] || fail "logout"
[ "$(as "$t" -o /dev/null -w '%{http_code}' "$url/orders/$orderA")" = 401 ] || fail "an ended session works"

# /health: the status to anyone, the details to administrators.
[ "$(curl -s "$url/health" | jq -c 'keys')" = '["status"]' ] || fail "/health says more than its status"
as "$key" "$url/health" | jq -e '.subscriptions | length > 0' >/dev/null || fail "/health for admins"

# A customer's live feed: their own orders' events, nothing else.
feed=$(as "$tokenB" -N --max-time 2 "$url/events/stream?after=0")
grep '^data: ' <<<"$feed" | sed 's/^data: //' | jq -e -s "length > 0 and all(.data.user_id == \"$userB\")" \
  >/dev/null || fail "B's feed: $(head -c 500 <<<"$feed")"
grep -q "$orderA" <<<"$feed" && fail "B's feed shows A's order"
feed=$(as "$tokenA" -N --max-time 2 "$url/events/stream?after=0&category=product")
grep -q '^event: ProductCreated' <<<"$feed" && fail "a customer's feed shows other categories"

# Host: a name the shop does not serve is refused (DNS rebinding); CORS
# headers only for an allowed origin.
got=$(curl -s -o "$dir/body" -w '%{http_code}' -H 'Host: evil.example' "$url/products")
[ "$got" = 421 ] && [ "$(jq -r .code <"$dir/body")" = misdirected_request ] || fail "Host check: $got"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: localhost:1' "$url/products")" = 200 ] ||
  fail "localhost refused"
curl -s -D "$dir/headers" -o /dev/null -H 'Origin: https://evil.example' "$url/products"
grep -qi '^Access-Control' "$dir/headers" && fail "CORS headers without --cors-origin"
stop

serve "$dir/data" "$db" --auth-limit 3 --cors-origin https://shop.example --allowed-host shop.example
codes=
for i in 1 2 3 4; do
  codes="$codes $(json "" -D "$dir/headers" -o /dev/null -w '%{http_code}' "$url/sessions" \
    -d "{\"email\":\"x$i@example.com\",\"password\":\"long-enough-pw\"}")"
done
[ "$codes" = " 401 401 401 429" ] || fail "logins per client are not throttled: $codes"
grep -qi '^Retry-After: [0-9]' "$dir/headers" || fail "429 without Retry-After"
got=$(json "" -o "$dir/body" -w '%{http_code}' "$url/users" \
  -d '{"email":"late@example.com","full_name":"L","password":"long-enough-pw"}')
[ "$got" = 429 ] && [ "$(jq -r .code <"$dir/body")" = too_many_requests ] ||
  fail "registrations are not throttled with logins: $got"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: shop.example' "$url/products")" = 200 ] ||
  fail "--allowed-host not served"
curl -s -D "$dir/headers" -o /dev/null -H 'Origin: https://shop.example' "$url/products"
grep -qi '^Access-Control-Allow-Origin: https://shop.example' "$dir/headers" || fail "no CORS header"
pre=$(curl -s -X OPTIONS -D - -o /dev/null -H 'Origin: https://shop.example' \
  -H 'Access-Control-Request-Method: POST' "$url/orders")
grep -q '^HTTP/1.1 204' <<<"$pre" && grep -qi '^Access-Control-Allow-Headers: .*Authorization' <<<"$pre" ||
  fail "no preflight answer: $pre"
stop
echo "ok: $cells cells"
