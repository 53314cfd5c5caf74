#!/usr/bin/env bash
# full_disk.sh SHOP TIDINGS: a full disk is recoverable.
#
# A real `shop serve` keeps its store and its mail on a small tmpfs of its
# own; a file fills what is left. Writes then get 503 storage_full with
# Retry-After, reads of what is durable keep working, /health says why.
# When the file goes, writes resume by themselves, and nothing acknowledged
# is lost: every order placed before or after is there, final, mailed
# once, and the store checks whole. Starting on the full disk names the
# full disk. Prints the seconds until writes resumed.
shop=$1
tidings=$2
. "$(dirname "$0")/lib.sh"

mnt=$dir/mnt
mount_tmpfs "$mnt" 24m
serve full "$mnt/data" || fail "the shop did not start"
make_catalog 100000

acked=()
for _ in $(seq 10); do
  place_order
  [ -n "$order" ] || fail "a placement failed before the disk was full ($code)"
  acked+=("$order")
done
wait_final "${acked[@]}"

fill_disk "$mnt/filler"
refused=
for i in $(seq 300); do
  place_order
  if [ -n "$order" ]; then
    acked+=("$order")
    continue
  fi
  refused=$code
  break
done
echo "$((${#acked[@]} - 10)) orders acknowledged on the full disk before the first refusal"
[ "$refused" = 503 ] || fail "a write on the full disk got $refused, not 503"
[ "$(field .code)" = storage_full ] || fail "not storage_full: $(body)"
grep -qi '^Retry-After: [0-9]' "$dir/headers" || fail "no Retry-After with the 503"

# no fail-stop: the next writes are refused the same way, not with a 500
for _ in 1 2 3; do
  place_order
  [ "$code" = 503 ] || fail "a later write got $code"
done
# reads of what is durable keep working
status_of "${acked[0]}"
[ "$status" = Processing ] || fail "cannot read an order ($code)"
api GET "/products/$product"
[ "$code" = 200 ] || fail "cannot read the product ($code)"
api GET '/events?limit=5'
[ "$code" = 200 ] || fail "cannot read the event log ($code)"
health
[ "$code" = 503 ] || fail "/health is $code on a full disk"
[ "$(field .store)" = storage_full ] || fail "/health does not say why: $(body)"
field .store_error | grep -q full || fail "/health has no reason: $(body)"
kill -0 "$pid" || fail "the shop died"

# space returns: writes resume by themselves
free_disk "$mnt/filler"
t0=$(now)
for _ in $(seq 300); do
  place_order
  [ -n "$order" ] && break
  sleep 0.1
done
[ -n "$order" ] || fail "writes did not resume once there was space ($code)"
resumed=$(since "$t0")
acked+=("$order")
for _ in $(seq 100); do
  health
  [ "$code" = 200 ] && break
  sleep 0.1
done
[ "$code" = 200 ] || fail "/health stays $code once there is space: $(body)"
healthy=$(since "$t0")
figure writes_resume_after_space_s "$resumed"
figure health_ok_after_space_s "$healthy"
for _ in $(seq 10); do
  place_order
  [ -n "$order" ] || fail "a placement failed after space returned ($code)"
  acked+=("$order")
done
wait_final "${acked[@]}"
for id in "${acked[@]}"; do
  status_of "$id"
  [ "$status" = Processing ] || fail "order $id is $status"
done
# every paid order has its two e-mails, once each (the mail spool is on the
# same disk, and was full too)
wait_caught_up
for id in "${acked[@]}"; do
  n=$(grep -c "^X-Order-Id: $id" "$mnt/data/mail/spool.mbox" || true)
  [ "$n" = 2 ] || fail "order $id has $n e-mails, not 2"
done
stop

out=$("$tidings" --db "sqlite:$mnt/data/tidings.db" check 2>&1) || fail "the store does not check: $out"
created=$("$tidings" --db "sqlite:$mnt/data/tidings.db" events --type OrderCreated |
  jq -r .data.order_id | sort)
for id in "${acked[@]}"; do
  grep -qx "$id" <<<"$created" || fail "acknowledged order $id is lost"
done
echo "${#acked[@]} acknowledged orders, all there and final"

# starting on a full disk names the full disk
fill_disk "$mnt/filler"
if serve full-start "$mnt/data"; then
  place_order
  [ "$code" = 503 ] || fail "started on a full disk, a write got $code"
  stop
else
  wait "$pid"
  rc=$?
  [ "$rc" = 1 ] || fail "starting on a full disk exited $rc"
  grep -qi 'full' "$dir/full-start.err" || fail "starting on a full disk does not say so"
  grep -q 'not a tidings store' "$dir/full-start.err" && fail "a full disk called not a store"
  echo "starting on the full disk: $(tail -1 "$dir/full-start.err")"
fi
free_disk "$mnt/filler"
serve full-again "$mnt/data" || fail "the shop does not start once there is space"
stop
echo "1 passed, 0 failed"
