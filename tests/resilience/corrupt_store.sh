#!/usr/bin/env bash
# corrupt_store.sh SHOP TIDINGS: corrupt stores are refused at start, and
# corruption met while running stops writes.
#
# A real shop's store, closed, is copied and damaged the way a disk or a
# careless hand would: an empty file, the last page of the event log
# overwritten, a recent event's bytes changed in place. `shop serve` and
# `tidings` refuse each (exit 1, naming what is wrong, the file untouched);
# `shop serve --skip-check` starts on the last one and works. Then a running shop has a page in
# the middle of its log overwritten (what the bounded check at start does
# not read): the first read that meets it turns /health to 503 and stops
# writes at once, reads elsewhere go on, the shop stays up, and
# `tidings check` names the damage.
shop=$1
tidings=$2
. "$(dirname "$0")/lib.sh"
command -v sqlite3 >/dev/null || skip "no sqlite3"

# A store with some history; the last thing in it is a product whose name
# is a marker (a customer's e-mail would be sealed, not readable bytes).
serve origin "$dir/origin" || fail "the shop did not start"
make_catalog 1000
ids=()
for _ in $(seq 30); do
  place_order
  ids+=("$order")
done
wait_final "${ids[@]}"
wait_caught_up
api POST /products '{"name":"tail-marker-0123456789","price":100,"currency":"USD"}'
[ "$code" = 201 ] || fail "cannot create the last product"
stop
good=$dir/origin/tidings.db

# page_of QUERY: the page number a dbstat query on the good store finds.
page_of() { sqlite3 -readonly "$good" "$1"; }
page_size=$(sqlite3 -readonly "$good" 'PRAGMA page_size')

# smash FILE PAGE: overwrites the b-tree header of that page.
smash() {
  printf '\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f' |
    dd of="$1" bs=1 seek=$((($2 - 1) * page_size)) conv=notrunc status=none
}

# copy_of NAME: a data folder NAME holding a copy of the good store, with
# its keys (the master key that seals personal data, the admin key).
copy_of() {
  mkdir -p "$dir/$1"
  cp "$good" "$dir/$1/tidings.db"
  cp -p "$dir/origin/master.key" "$dir/origin/admin.key" "$dir/$1/"
}

# refused NAME WHY: neither shop serve nor tidings opens it; both say WHY;
# the file is as it was.
refused() {
  local name=$1 why=$2 before rc
  before=$(sha256sum <"$dir/$name/tidings.db")
  serve "$name" "$dir/$name" && fail "the shop started on $name"
  wait "$pid"
  rc=$?
  [ "$rc" = 1 ] || fail "shop serve exited $rc on $name, not 1"
  grep -q "$why" "$dir/$name.err" || fail "shop serve on $name does not say '$why': $(cat "$dir/$name.err")"
  out=$("$tidings" --db "sqlite:$dir/$name/tidings.db" stats 2>&1)
  rc=$?
  [ "$rc" = 1 ] || fail "tidings stats exited $rc on $name, not 1"
  grep -q "$why" <<<"$out" || fail "tidings on $name does not say '$why': $out"
  [ "$(sha256sum <"$dir/$name/tidings.db")" = "$before" ] || fail "$name was changed"
  echo "$name: $(tail -1 "$dir/$name.err")"
}

# an empty file is not a store; a missing one is made
mkdir -p "$dir/empty"
: >"$dir/empty/tidings.db"
refused empty 'empty file, not a tidings store'
serve missing "$dir/missing" || fail "the shop did not make a new store"
stop

# the last page of the event log
copy_of tail
smash "$dir/tail/tidings.db" "$(page_of "SELECT pageno FROM dbstat WHERE name = 'events'
  ORDER BY path DESC LIMIT 1")"
refused tail 'fails its check at open'

# a recent event's bytes, changed in place (SQLite sees nothing wrong)
copy_of edited
python3 - "$dir/edited/tidings.db" "$page_size" $(page_of "SELECT pageno FROM dbstat
  WHERE name = 'events'") <<'EOF' || fail "no marker in the event log"
import sys
path, size, pages = sys.argv[1], int(sys.argv[2]), [int(p) for p in sys.argv[3:]]
data = bytearray(open(path, 'rb').read())
for page in pages:  # the event's own bytes, not a document's copy of them
    start = (page - 1) * size
    at = data.find(b'tail-marker-0123456789', start, start + size)
    if at >= 0:
        data[at:at + 4] = b'TAIL'
        open(path, 'r+b').write(data)
        sys.exit(0)
sys.exit(1)
EOF
refused edited 'audit chain breaks at position'
# an operator who knows (the edit was theirs, say) starts it all the same
serve edited-skipped "$dir/edited" --skip-check || fail "--skip-check did not start the shop"
place_order
[ -n "$order" ] || fail "a placement on the skipped store failed ($code)"
wait_final "$order"
stop

# a page in the middle, overwritten under a running shop
copy_of running
serve running "$dir/running" || fail "the shop did not start on a good copy"
health
[ "$code" = 200 ] || fail "/health before the damage: $(body)"
smash "$dir/running/tidings.db" "$(page_of "SELECT pageno FROM dbstat WHERE name = 'events'
  AND pagetype = 'leaf' ORDER BY path LIMIT 1")"
api GET '/events?after=0&limit=1000'
[ "$code" = 500 ] || fail "a read through the damaged page got $code"
health
[ "$code" = 503 ] || fail "/health after corruption was met: $code $(body)"
[ "$(field .store)" = failed ] || fail "/health does not say the store failed: $(body)"
field .store_error | grep -q malformed || fail "/health does not say why: $(body)"
place_order
[ "$code" = 503 ] || fail "a write after corruption was met got $code"
status_of "${ids[0]}" # documents are elsewhere: reads there go on
[ "$status" = Processing ] || fail "reading an order after corruption was met: $code"
sleep 1
kill -0 "$pid" || fail "the shop died"
stop
out=$("$tidings" --db "sqlite:$dir/running/tidings.db" check 2>&1) && fail "tidings check passes"
echo "tidings check: $out"
echo "1 passed, 0 failed"
