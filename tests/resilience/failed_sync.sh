#!/usr/bin/env bash
# failed_sync.sh SHOP TIDINGS: a failed sync of the store's log (EIO) stays
# fail-stop, and the shop then exits non-zero, for a supervisor to restart
# it, once the requests in flight have been answered.
#
# `shop serve` runs under strace, which makes the kernel's fdatasync of the
# store's -wal fail with EIO from the Nth call on (real fault injection,
# nothing mocked). Eight clients place orders meanwhile. Every request gets
# an answer until the shop stops, the shop exits 1 by itself, and started
# again (without strace) it has every acknowledged order, and its store
# checks whole. The one exception, at most one per client: the request in
# the way of the stop itself (libmicrohttpd closes the connections it holds
# unanswered when it stops; see docs/internals/shop.md), after which that
# client finds the socket closed. Prints how long the shop took to exit.
shop=$1
tidings=$2
. "$(dirname "$0")/lib.sh"
command -v strace >/dev/null || skip "no strace"

data=$dir/data
serve setup "$data" || fail "the shop did not start"
make_catalog 100000
stop

# LeakSanitizer cannot run under ptrace; the other sanitizers still do.
t0=$(now)
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 strace -f -qq -o /dev/null -P "$data/tidings.db-wal" -e trace=fdatasync \
  -e inject=fdatasync:error=EIO:when=60+ \
  "$shop" serve --listen 127.0.0.1:0 --data "$data" --log-level warn \
  >"$dir/eio.out" 2>"$dir/eio.err" &
pid=$!
pids+=("$pid")
for _ in $(seq 600); do
  url=$(grep -o 'http://[0-9.:]*' "$dir/eio.out" 2>/dev/null | head -1)
  [ -n "$url" ] && break
  sleep 0.05
done
[ -n "$url" ] || fail "the shop did not start under strace"

# clients: each line "HTTP-status curl-exit-code order-id"
client() {
  local out rc
  for _ in $(seq 400); do
    out=$(curl -s -o "$dir/c$1.body" -w '%{http_code}' -X POST -H "$(auth_header)" \
      -H 'Content-Type: application/json' --data-binary "$(order_body)" "$url/orders")
    rc=$?
    echo "$out $rc $(jq -r '.id // "-"' "$dir/c$1.body" 2>/dev/null || echo -)"
    [ "$rc" = 7 ] && break # the shop has closed its socket
  done >"$dir/client.$1"
}
clients=()
for c in $(seq 8); do
  client "$c" &
  clients+=($!)
done
wait "$pid"
rc=$?
exited=$(since "$t0")
wait "${clients[@]}"
[ "$rc" = 1 ] || fail "the shop exited $rc after its sync failed, not 1"
grep -q 'store stopped writes' "$dir/eio.err" || fail "the shop did not say why it stopped"

cat "$dir"/client.* >"$dir/answers"
acked=$(awk '$1 == 202 && $3 != "-" {print $3}' "$dir/answers")
# unanswered requests that are not a client's last before the socket closed
cut_off=0
for f in "$dir"/client.*; do
  n=$(awk '$2 != 0 && $2 != 7 {bad = NR} END {print bad + 0}' "$f")
  last=$(awk '$2 == 0 {ok = NR} END {print ok + 0}' "$f")
  [ "$n" -gt 0 ] && [ "$n" -lt "$last" ] && cut_off=$((cut_off + 1))
done
refused=$(awk '$1 >= 500' "$dir/answers" | wc -l)
echo "$(wc -l <<<"$acked") orders acknowledged, $refused refused (5xx) after the failed sync"
echo "answers (status, curl exit code):" $(awk '{print $1 "/" $2}' "$dir/answers" | sort | uniq -c)
echo "the shop said: $(grep 'store stopped writes' "$dir/eio.err" | head -1)"
[ "$cut_off" = 0 ] || fail "$cut_off clients had a request unanswered while the shop still answered"
figure requests_cut_off_by_the_stop "$(awk '$2 != 0 && $2 != 7' "$dir/answers" | wc -l)"
[ "$refused" -ge 1 ] || fail "no request saw the failure"
figure exit_after_start_s "$exited"

serve again "$data" || fail "the shop does not start again"
created=$("$tidings" --db "sqlite:$data/tidings.db" events --type OrderCreated | jq -r .data.order_id)
for id in $acked; do
  grep -qx "$id" <<<"$created" || fail "acknowledged order $id is lost"
done
stop
out=$("$tidings" --db "sqlite:$data/tidings.db" check 2>&1) || fail "the store does not check: $out"
echo "1 passed, 0 failed"
