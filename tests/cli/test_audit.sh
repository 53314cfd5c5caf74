#!/usr/bin/env bash
# test_audit.sh: the audit chain end to end. A clean store verifies; its
# export verifies with the stand-alone script; editing an event in SQLite
# (around the append-only trigger) is caught at its position, and editing an
# exported line is caught by the script.
set -u
tidings=$1
script=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
. "$(dirname "$0")/../support/store_url.sh"
TIDINGS_DB=$(store_url "$dir" store) || exit 1
export TIDINGS_DB
fail() { echo "FAIL: $*"; echo "0 passed, 1 failed"; exit 1; }

"$tidings" init >/dev/null || fail init
for i in 1 2 3 4 5; do
  "$tidings" append order-$((i % 2)) Placed "{\"n\":$i,\"text\":\"caf\\u00e9 $i\"}" --correlation-id "c-$i" >/dev/null || fail "append $i"
done
out=$("$tidings" audit verify) || fail "verify of a clean store: $out"
[ "$out" = "ok: 5 events verified" ] || fail "unexpected: $out"
"$tidings" audit export --output "$dir/export.jsonl" || fail export
[ "$(wc -l <"$dir/export.jsonl")" = 5 ] || fail "export has $(wc -l <"$dir/export.jsonl") lines"
"$tidings" audit export --since 2999-01-01 >"$dir/none.jsonl" || fail "export since the future"
[ ! -s "$dir/none.jsonl" ] || fail "an export since the future is not empty"
# The standalone checker (python3 is installed by scripts/install-deps.sh).
python3 "$script" "$dir/export.jsonl" >/dev/null || fail "the export does not verify on its own"
sed '3s/"n":3/"n":33/' "$dir/export.jsonl" >"$dir/edited.jsonl" # the readable data
python3 "$script" "$dir/edited.jsonl" >/dev/null && fail "an export with edited data verifies"
sed '3s/\\"n\\":3/\\"n\\":33/' "$dir/export.jsonl" >"$dir/raw.jsonl" # the hashed bytes
cmp -s "$dir/raw.jsonl" "$dir/export.jsonl" && fail "the raw edit did not apply"
python3 "$script" "$dir/raw.jsonl" >/dev/null && fail "an export with edited raw bytes verifies"
if [ "$td_test_store" = postgres ]; then
  psql_store "$TIDINGS_DB" "ALTER TABLE events DISABLE TRIGGER events_append_only;
    UPDATE events SET data = '{\"n\":30}' WHERE position = 3;" || fail "tampering"
else
  sqlite3 "$dir/store.db" "DROP TRIGGER events_no_update;
    UPDATE events SET data = '{\"n\":30}' WHERE position = 3;" || fail "tampering"
fi
out=$("$tidings" audit verify)
[ $? = 1 ] || fail "verify of a tampered store did not fail"
case "$out" in *"position 3"*) ;; *) fail "wrong report: $out" ;; esac
out=$("$tidings" audit verify --from 4) || fail "the range after the edit should verify: $out"
"$tidings" audit verify --from x >/dev/null 2>&1
[ $? = 2 ] || fail "a bad --from is not a usage error"
echo "1 passed, 0 failed"
