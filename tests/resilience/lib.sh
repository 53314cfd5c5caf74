# lib.sh: what the resilience scripts share. Source it after setting
# `shop` and `tidings` (the binaries). Gives a temporary folder ($dir,
# removed at exit with every shop this script started, and a tmpfs it
# mounted), fail, skip, figure, serve/stop, and api: the one place that
# knows how to talk to a shop, authentication included.
#
# Every process here is started by the script and ended by its pid; every
# shop listens on 127.0.0.1 on a port the kernel picks.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/../support/shop.sh" # shop_wait_url, process_state
exec 3>&2 # fail writes here, also from inside a group whose stderr is silenced
dir=$(mktemp -d)
pids=()
mounted=
cleanup() {
  for p in "${pids[@]+"${pids[@]}"}"; do
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  [ -n "$mounted" ] && umount "$mounted" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT

# fail MESSAGE: says why, with the last lines of the shops' logs, and ends
# the test.
fail() {
  echo "FAIL: $*" >&3
  for log in "$dir"/*.err; do
    [ -s "$log" ] && { echo "--- $log" >&3; tail -8 "$log" >&3; }
  done
  exit 1
}

# skip WHY: CTest's SKIP_RETURN_CODE.
skip() {
  echo "skipped: $*"
  exit 77
}

# figure NAME VALUE: a measured figure, on a line of its own.
figure() {
  echo "figure: $1 $2"
}

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }

# mount_tmpfs DIR SIZE: a small file system of its own, or skip the test.
mount_tmpfs() {
  mkdir -p "$1"
  mount -t tmpfs -o "size=$2" tidings-resilience "$1" 2>/dev/null ||
    skip "cannot mount a tmpfs (needs root)"
  mounted=$1
}

# fill_disk FILE: fills the file system holding FILE to its last block.
fill_disk() {
  dd if=/dev/zero of="$1" bs=1M 2>/dev/null
  dd if=/dev/zero of="$1.2" bs=4k 2>/dev/null
  dd if=/dev/zero of="$1.3" bs=512 2>/dev/null
  true
}
free_disk() { rm -f "$1" "$1.2" "$1.3"; }

# serve NAME DATA [ARGS...]: starts `shop serve` on a free loopback port
# (its log level: SHOP_LOG_LEVEL, default warn),
# logs in $dir/NAME.out and NAME.err; sets pid, url, data, and
# started_in (seconds until it listened). Returns 1 if it exits first.
serve() {
  local name=$1 t0
  data=$2
  shift 2
  t0=$(now)
  "$shop" serve --listen 127.0.0.1:0 --data "$data" --log-level "${SHOP_LOG_LEVEL:-warn}" "$@" \
    >"$dir/$name.out" 2>>"$dir/$name.err" &
  pid=$!
  pids+=("$pid")
  shop_wait_url "$dir/$name.out" "$pid" 6 0.01
  case $? in
    0) ;;
    1) return 1 ;;
    *) fail "the shop did not start" ;;
  esac
  started_in=$(since "$t0")
}

# serve_unreaped NAME DATA [ARGS...]: as serve, but the shop's parent is a
# `sleep` that never waits for it: once killed, it stays a zombie until
# that sleep ($sleeper) is killed. Sets pid, sleeper, url, started_in.
serve_unreaped() {
  local name=$1 t0
  data=$2
  shift 2
  t0=$(now)
  rm -f "$dir/$name.pid"
  sh -c '"$@" >"$0.out" 2>>"$0.err" & echo $! >"$0.pid"; exec sleep 100000' \
    "$dir/$name" "$shop" serve --listen 127.0.0.1:0 --data "$data" --log-level "${SHOP_LOG_LEVEL:-warn}" "$@" &
  sleeper=$!
  pids+=("$sleeper")
  for _ in $(seq 600); do
    [ -s "$dir/$name.pid" ] && break
    sleep 0.01
  done
  pid=$(cat "$dir/$name.pid")
  pids+=("$pid")
  shop_wait_url "$dir/$name.out" "$pid" 6 0.01 # a zombie has ended: 1
  case $? in
    0) ;;
    1) return 1 ;;
    *) fail "the shop did not start" ;;
  esac
  started_in=$(since "$t0")
}

# stop: SIGTERM, and the shop must exit 0.
stop() {
  kill "$pid"
  wait "$pid" || fail "the shop did not stop cleanly"
}

# The header that authenticates a request: the admin key `shop serve` made
# in DATA/admin.key on its first start (every request here is an
# administrator's); nothing before there is one.
auth_header() {
  if [ -s "$data/admin.key" ]; then
    printf 'Authorization: Bearer %s' "$(tr -d '\n' <"$data/admin.key")"
  else
    printf 'X-No-Auth: 1'
  fi
}

# api METHOD PATH [BODY]: sets code (the HTTP status, 000 if none came);
# the response body is in $dir/body (`body` prints it, `field F` prints
# one field of it), its headers in $dir/headers. Call it in the script's
# own shell, not in $( ): code would stay in the subshell.
api() {
  local out
  out=$(curl -s -D "$dir/headers" -o "$dir/body" -w '%{http_code}' -X "$1" \
    -H "$(auth_header)" -H 'Content-Type: application/json' \
    ${3:+--data-binary "$3"} "$url$2")
  code=${out:-000}
}
body() { cat "$dir/body"; }
field() { jq -r "$1" "$dir/body" 2>/dev/null; }

# load_auth: the arguments `shop load` needs to authenticate, a word a
# line: the admin key's file (it makes products and follows every order;
# its customers register and log in on their own).
load_auth() {
  [ -s "$data/admin.key" ] && printf -- '--key-file\n%s\n' "$data/admin.key"
  return 0
}

# make_catalog STOCK: a product with STOCK units and a user; sets product
# and user.
make_catalog() {
  api POST /products '{"name":"Pen","price":150,"currency":"USD","stock":'"$1"'}'
  [ "$code" = 201 ] || fail "cannot create a product ($code)"
  product=$(field .id)
  api POST /users '{"email":"res-'"$RANDOM$RANDOM"'@example.com","full_name":"Res Test",
    "password":"resilience-test-pw"}'
  [ "$code" = 201 ] || fail "cannot create a user ($code)"
  user=$(field .id)
}

order_body() {
  printf '{"user_id":"%s","items":[{"product_id":"%s","quantity":1}],' "$user" "$product"
  printf '"shipping_address":{"line1":"1 Main St","city":"Springfield","postal_code":"12345",'
  printf '"country":"US"},"payment":{"method":"card","token":"%s"}}' "${1:-tok_visa}"
}

# place_order [TOKEN]: sets order to the new order's id when acknowledged
# (202), else to "" (and code says why).
place_order() {
  api POST /orders "$(order_body "${1:-tok_visa}")"
  order=
  [ "$code" = 202 ] && order=$(field .id)
  return 0
}

# status_of ID: sets status to the order's status.
status_of() {
  api GET "/orders/$1"
  status=$(field .status)
}

# health: GET /health (sets code; the body as for api).
health() { api GET /health; }

# wait_final ID...: every order reaches Processing or Cancelled (60 s).
wait_final() {
  local id
  for id in "$@"; do
    for _ in $(seq 600); do
      status_of "$id"
      [ "$status" = Processing ] || [ "$status" = Cancelled ] && break
      sleep 0.1
    done
    [ "$status" = Processing ] || [ "$status" = Cancelled ] || fail "order $id is still $status"
  done
}

# read_stock FILE: every product's stock, a "PRODUCT STOCK" line each (for
# check_orders.py), read page by page from the shop.
read_stock() {
  local after= products product
  : >"$1"
  while :; do
    api GET "/products?limit=100${after:+&after=$after}"
    [ "$code" = 200 ] || fail "cannot list the products ($code)"
    products=$(field '.products[].id')
    after=$(field '.next // empty')
    for product in $products; do
      api GET "/products/$product"
      [ "$code" = 200 ] || fail "cannot read product $product"
      echo "$product $(field .stock)" >>"$1"
    done
    [ -n "$after" ] || break
  done
}

# wait_caught_up [SECONDS]: until every subscription's lag is 0; sets
# caught_up_in (seconds), or fails after SECONDS (60).
wait_caught_up() {
  local t0 lag
  t0=$(now)
  for _ in $(seq $((${1:-60} * 20))); do
    health
    lag=$(field '[.subscriptions[].lag_events] | add')
    [ "$lag" = 0 ] && { caught_up_in=$(since "$t0"); return 0; }
    sleep 0.05
  done
  fail "the subscriptions did not catch up: $(body)"
}
