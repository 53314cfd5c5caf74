#!/usr/bin/env bash
# test_tail.sh: `tidings tail` prints events committed after it started, by
# another process, with filters, and exits 0 on SIGINT.
set -u
tidings=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
. "$(dirname "$0")/../support/store_url.sh"
TIDINGS_DB=$(store_url "$dir" store) || exit 1
export TIDINGS_DB
fail() { echo "FAIL: $*"; echo "0 passed, 1 failed"; exit 1; }

"$tidings" init >/dev/null || fail "init"
"$tidings" append order-1 Before '{}' >/dev/null || fail "append before"
"$tidings" tail --category order >"$dir/out" 2>"$dir/err" &
pid=$!
sleep 0.5
"$tidings" append order-1 After '{"n":1}' >/dev/null || fail "append after"
"$tidings" append user-1 Ignored '{}' >/dev/null || fail "append other"
"$tidings" append order-2 After '{"n":2}' >/dev/null || fail "append after 2"
for _ in $(seq 1 100); do
  [ "$(wc -l <"$dir/out")" -ge 2 ] && break
  sleep 0.05
done
kill -INT "$pid"
wait "$pid"
code=$?
[ "$code" = 0 ] || fail "tail exited $code: $(cat "$dir/err")"
[ "$(wc -l <"$dir/out")" = 2 ] || fail "expected 2 lines, got: $(cat "$dir/out")"
grep -q '"type":"Before"' "$dir/out" && fail "printed an event from before it started"
grep -q '"type":"Ignored"' "$dir/out" && fail "printed a filtered-out event"
grep -q '"stream":"order-2"' "$dir/out" || fail "missed the second event"
echo "1 passed, 0 failed"
