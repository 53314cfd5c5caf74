#!/usr/bin/env bash
# test_migrate.sh: `shop migrate` copies a store the shop has worked on into
# a new one: every event at its current schema (schema-1 OrderCreated become
# schema 3, schema-2 ones keep their values but lose the card token that
# events held before tokens left the log), positions, ids and envelopes
# kept, every document copied; the source stays byte for byte as it was;
# the target's audit chain verifies and the shop serves it (and carries out
# a `tidings replay`); a non-empty target is refused and left alone; a copy
# that fails half way (a full disk) removes the target it created.
# Usage: test_migrate.sh TIDINGS SHOP
tidings=$1
shop=$2
. "$(dirname "$0")/shop_lib.sh"
. "$(dirname "$0")/../support/store_url.sh"

# until_cancelled ORDER: waits for the saga to end a schema-1 order.
until_cancelled() {
  for _ in $(seq 100); do
    [ "$(api -sf "$url/orders/$1" | jq -r .status)" = Cancelled ] && return 0
    sleep 0.1
  done
  fail "order $1 did not end"
}
envelopes() { "$tidings" --db "$1" events | jq -c '{position, id, stream, version, type, occurred_at, correlation_id}'; }

src="sqlite:$dir/data/tidings.db"
dst=$(store_url "$dir" new) || exit 1 # TD_TEST_STORE=postgres: SQLite into PostgreSQL
mkdir -p "$dir/data" "$dir/new"
o1=018f0000-0000-7000-8000-000000000001
o2=018f0000-0000-7000-8000-000000000002
o3=018f0000-0000-7000-8000-000000000003
u=018f0000-0000-7000-8000-0000000000aa
"$tidings" --db "$src" init >/dev/null || fail init
for o in $o1 $o2; do
  "$tidings" --db "$src" append "order-$o" OrderCreated \
    "{\"order_id\":\"$o\",\"user_id\":\"$u\",\"total_amount\":100}" --schema-version 1 \
    --correlation-id "$o" >/dev/null || fail "append $o"
done
"$tidings" --db "$src" append "audit-x" Noted '{"n":1}' >/dev/null || fail "append other"

projections=$("$shop" projections list --db "$src") || fail "projections list"
[ "$(grep -c ' 0 \+3  not-started$' <<<"$projections")" = 3 ] ||
  fail "a store no shop has served has no read model started: $projections"
serve "$dir/data" "$src" # the shop works on it: snapshots, saga instances, checkpoints
until_cancelled $o1
until_cancelled $o2
stop
# A schema-2 event written after the shop stopped: it must keep its values.
"$tidings" --db "$src" append "order-$o3" OrderCreated "{\"order_id\":\"$o3\",\"user_id\":\"$u\",\
\"total_amount\":5,\"currency\":\"EUR\",\"items\":[],\"shipping_address\":{\"line1\":\"1 Rue\",\
\"city\":\"Paris\",\"postal_code\":\"75001\",\"country\":\"FR\"},\"payment_method\":\"card\",\
\"order_date\":\"2026-01-01T00:00:00.000000Z\",\"payment_token\":\"tok_legacy_secret\"}" \
  --schema-version 2 >/dev/null || fail "append schema 2"

before=$(cat "$dir"/data/tidings.db "$dir"/data/tidings.db-wal 2>/dev/null | sha256sum)
out=$("$shop" migrate --data "$dir/data" --to "$dst") || fail "migrate: $out"
after=$(cat "$dir"/data/tidings.db "$dir"/data/tidings.db-wal 2>/dev/null | sha256sum)
[ "$before" = "$after" ] || fail "the source changed"
grep -q "upcast OrderCreated schema 1 -> 3: 2 events" <<<"$out" || fail "no report of the change: $out"
grep -q "upcast OrderCreated schema 2 -> 3: 1 events" <<<"$out" || fail "no report of the change: $out"

[ "$(envelopes "$src")" = "$(envelopes "$dst")" ] || fail "positions, ids or envelopes changed"
[ "$("$tidings" --db "$dst" events --type OrderCreated | jq -r .schema_version | sort -u)" = 3 ] ||
  fail "not every OrderCreated is at schema 3"
"$tidings" --db "$src" events | grep -q tok_legacy_secret || fail "the source lost its bytes"
"$tidings" --db "$dst" events | grep -q tok_legacy_secret && fail "the copy still holds a card token"
[ "$("$tidings" --db "$dst" events --stream "order-$o1" | head -1 | jq -r .data.currency)" = USD ] ||
  fail "no default currency"
[ "$("$tidings" --db "$dst" events --stream "order-$o3" | jq -r '.data.currency + ._sealed')" = EUR ] ||
  fail "a schema-2 event changed"
# Its shipping address, written in the clear before sealing, is sealed in the copy.
grep -q "sealed the personal data of 3 events" <<<"$out" || fail "no report of sealing: $out"
"$tidings" --db "$dst" events --stream "order-$o3" | grep -q Paris && fail "the copy holds an address"
[ "$("$tidings" --db "$dst" events --stream "order-$o3" | jq -r .data._sealed.subject)" = "user-$u" ] ||
  fail "not sealed under the customer's key"
docs() { "$tidings" --db "$1" stats | awk '/^documents:/ {print $2}'; }
# every document, and the key made for the one customer whose events were sealed
[ "$(($(docs "$src") + 1))" = "$(docs "$dst")" ] && [ "$(docs "$dst")" -gt 1 ] ||
  fail "documents: $(docs "$src") in the source, $(docs "$dst") in the target"
"$tidings" --db "$dst" audit verify >/dev/null || fail "the target's chain does not verify"

serve "$dir/new" "$dst" --master-key-file "$dir/data/master.key" # the copy serves
[ "$(api -sf "$url/orders/$o1" | jq -r '.status + "," + .cancel_reason')" = "Cancelled,no_items" ] ||
  fail "the migrated order is not as it was"
[ "$(api -sf "$url/streams/order-$o3" | jq -r '.events[0].data.shipping_address.city')" = Paris ] ||
  fail "the sealed address does not open"

# A replay through the running shop: requested, carried out, nothing changed.
"$tidings" --db "$dst" replay --subscription nobody --from 1 2>/dev/null
[ $? = 1 ] || fail "a replay for an unknown subscription was not refused"
"$tidings" --db "$dst" replay --subscription readmodel.user_orders --from 1 --by test >/dev/null ||
  fail "replay request"
for _ in $(seq 100); do
  [ "$("$tidings" --db "$dst" replay list)" = "no replays pending" ] && break
  sleep 0.1
done
[ "$("$tidings" --db "$dst" replay list)" = "no replays pending" ] || fail "the replay was not carried out"
[ "$(api -sf "$url/orders/$o1" | jq -r .status)" = Cancelled ] || fail "the replay changed the order"
stop

kept=$(envelopes "$dst")
"$shop" migrate --data "$dir/data" --to "$dst" >/dev/null 2>&1
[ $? = 3 ] || fail "a non-empty target was not refused with exit 3"
[ "$(envelopes "$dst")" = "$kept" ] || fail "the refused target changed"

if [ "$td_test_store" = postgres ]; then
  # And back: the PostgreSQL copy into a new SQLite store, everything kept.
  back="sqlite:$dir/back.db"
  mkdir -p "$dir/back"
  cp "$dir/data/master.key" "$dir/back/master.key"
  out=$("$shop" migrate --db "$dst" --data "$dir/back" --to "$back") || fail "migrate back: $out"
  [ "$(envelopes "$dst")" = "$(envelopes "$back")" ] || fail "the way back changed envelopes"
  [ "$("$tidings" --db "$dst" export | jq -c 'del(.occurred_at)' | sha256sum)" = \
    "$("$tidings" --db "$back" export | jq -c 'del(.occurred_at)' | sha256sum)" ] ||
    fail "the way back changed events"
  [ "$(docs "$dst")" = "$(docs "$back")" ] || fail "the way back lost documents"
  "$tidings" --db "$back" audit verify >/dev/null || fail "the way back's chain does not verify"
  # tidings export/import across the backends: SQLite into PostgreSQL.
  imported=$(store_url "$dir" imported)
  "$tidings" --db "$src" export --output "$dir/src.jsonl" || fail "export"
  "$tidings" --db "$imported" init >/dev/null || fail "init the import target"
  "$tidings" --db "$imported" import "$dir/src.jsonl" >/dev/null || fail "import into PostgreSQL"
  [ "$("$tidings" --db "$imported" export)" = "$(cat "$dir/src.jsonl")" ] ||
    fail "the import into PostgreSQL differs from its export"
  "$tidings" --db "$imported" audit verify >/dev/null || fail "the import's chain does not verify"
  echo ok
  exit 0
fi

# A disk that fills half way through the copy (strace makes every write
# after the 120th fail with ENOSPC): exit 1, and the target it had created
# is gone, not left half copied. (LeakSanitizer cannot run under ptrace.)
# Bulk first, so that the copy writes far more than creating the target
# (about 60 writes: a new store is made whole under a name of its own, then
# linked in place; the copy, about 200).
pad=$(printf '%03000d' 0)
for i in $(seq 60); do
  "$tidings" --db "$src" append "bulk-$i" Noted "{\"pad\":\"$pad\"}" >/dev/null || fail "bulk $i"
done
half="sqlite:$dir/half.db"
out=$(ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
  strace -f -qq -o /dev/null -e inject=pwrite64:error=ENOSPC:when=120+ \
  "$shop" migrate --data "$dir/data" --to "$half" 2>&1)
[ $? = 1 ] || fail "a failed copy did not exit 1: $out"
grep -q 'was removed' <<<"$out" || fail "a failed copy did not say it removed the target: $out"
[ -z "$(ls "$dir" | grep '^half\.db')" ] || fail "a failed copy left files: $(ls "$dir")"
echo ok
