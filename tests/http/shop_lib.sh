# shop_lib.sh: what the shell tests of the shop share; source it after
# setting `tidings` and `shop` (the binaries). Gives a temporary folder
# ($dir, removed at exit with any shop still running), fail, and serve/stop.
set -u
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

# serve DATA_DIR DB_URL: starts `shop serve` on a free loopback port; sets
# pid and url.
serve() {
  "$shop" serve --listen 127.0.0.1:0 --data "$1" --db "$2" --payment-timeout 400 \
    --log-level error >"$dir/out" 2>>"$dir/err" &
  pid=$!
  url=
  for _ in $(seq 100); do
    url=$(grep -o 'http://[0-9.:]*' "$dir/out" 2>/dev/null | head -1)
    [ -n "$url" ] && return 0
    sleep 0.1
  done
  fail "the shop did not start"
}

# stop: SIGTERM, and the shop must exit 0.
stop() {
  kill "$pid"
  wait "$pid" || fail "the shop did not stop cleanly"
  pid=
}
