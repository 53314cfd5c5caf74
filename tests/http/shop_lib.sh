# shop_lib.sh: what the shell tests of the shop share; source it after
# setting `tidings` and `shop` (the binaries). Gives a temporary folder
# ($dir, removed at exit with any shop still running), fail, serve/stop,
# and api: curl with the shop's admin key.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/../support/shop.sh"
dir=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT

# fail MESSAGE: says why (with the shop's last log lines) and ends the test.
fail() {
  echo "FAIL: $*" >&2
  [ -f "$dir/err" ] && tail -5 "$dir/err" >&2
  exit 1
}

# serve DATA_DIR DB_URL [OPTION…]: starts `shop serve` on a free loopback
# port; sets pid, url and key (the admin key it made in DATA_DIR on its
# first start; a store served before keeps the key it had).
key=
serve() {
  local data=$1 db=$2
  shift 2
  "$shop" serve --listen 127.0.0.1:0 --data "$data" --db "$db" --payment-timeout 400 \
    --log-level error "$@" >"$dir/out" 2>>"$dir/err" &
  pid=$!
  shop_wait_url "$dir/out" "$pid" 10 0.1 || fail "the shop did not start: $(tail -3 "$dir/err")"
  [ -f "$data/admin.key" ] && key=$(cat "$data/admin.key")
  return 0
}

# api CURL_ARGS…: curl with the admin key.
api() {
  curl -H "Authorization: Bearer $key" "$@"
}

# stop: SIGTERM, and the shop must exit 0.
stop() {
  kill "$pid"
  wait "$pid" || fail "the shop did not stop cleanly"
  pid=
}
