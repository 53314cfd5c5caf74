#!/usr/bin/env bash
# instances.sh SHOP TIDINGS: three shop instances on one PostgreSQL
# database share the work; one is SIGKILLed and one stopped with SIGTERM
# under load, and nothing is lost or done twice.
#
# Three `shop serve --partitions 4` on one store (a schema of its own on
# the test server) and one data folder (keys and the mail spool), each
# under its own `shop load` (tok_visa, 8 customers between them). Once
# all three have acknowledged orders and the handlers' partitions are
# spread (each instance runs some), the second is SIGKILLed, and
# its parts must run in the two others (figure: killed_moved_s); then the
# third gets SIGTERM and must exit 0, and the first, alone, must soon list
# every part as its own on /health (stopped_moved_s). Afterwards every
# acknowledged order is there and final, none cancelled (the moves take
# less than the payment timeout), each order has exactly one
# order_received and one order_confirmed e-mail, each product's stock plus
# the units of its paid orders is what it started with, and `tidings audit
# verify` passes.
shop=$1
tidings=$2
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../support/store_url.sh"
db=$(pg_schema_url instances) || skip "no PostgreSQL server for the tests"
data=$dir/data
opts=(--db "$db" --partitions 4 --auth-limit 100000 --payment-timeout 30000)
parts=16 # 4 handlers in 4 partitions, and 3 read models whole: 19 names

serve one "$data" "${opts[@]}" --instance one || fail "the first instance did not start"
pid_one=$pid url_one=$url
serve two "$data" "${opts[@]}" --instance two || fail "the second instance did not start"
pid_two=$pid url_two=$url
serve three "$data" "${opts[@]}" --instance three || fail "the third instance did not start"
pid_three=$pid url_three=$url

# runs_of URL: how many handlers (or partitions) that instance runs.
runs_of() {
  url=$1 health
  field '.instance.runs | length'
}

# every part runs once, and every instance runs about its share, before
# anything is killed (the first gives parts up, one a second per handler)
for _ in $(seq 600); do
  a=$(runs_of "$url_one") b=$(runs_of "$url_two") c=$(runs_of "$url_three")
  [ "${b:-0}" -ge 5 ] && [ "${c:-0}" -ge 5 ] && [ "$((a + b + c))" = $((parts + 3)) ] && break
  sleep 0.1
done
echo "spread: one runs $a, two $b, three $c of $((parts + 3))"
[ "$((a + b + c))" = $((parts + 3)) ] || fail "the parts run $a + $b + $c times, not $((parts + 3))"
[ "$b" -ge 5 ] && [ "$c" -ge 5 ] || fail "the parts did not spread: $a, $b, $c"
url=$url_one health
[ "$(field .instance.live_instances)" = 3 ] || fail "live instances: $(field .instance)"
"$tidings" --db "$db" instances >"$dir/instances" || fail "tidings instances failed"
for label in one two three; do
  grep -Eq " $label +[0-9]+ .* yes " "$dir/instances" || fail "tidings instances: $(cat "$dir/instances")"
done
# every partition held by one of them (a part moving between two shows as
# held by nobody for a moment: the first may still be giving some up)
for _ in $(seq 200); do
  "$tidings" --db "$db" subscriptions >"$dir/subscriptions" || fail "tidings subscriptions failed"
  held=$(grep -Ec '\.p[0-3]of4 .* (one|two|three) \([0-9]+@' "$dir/subscriptions")
  [ "$held" = "$parts" ] && break
  sleep 0.1
done
[ "$held" = "$parts" ] || fail "tidings subscriptions shows $held partitions held: $(cat "$dir/subscriptions")"

: >"$dir/ids"
loads=()
start_load() { # URL SEED ORDERS CONCURRENCY
  "$shop" load --url "$1" --orders "$3" --concurrency "$4" --decline-rate 0 --seed "$2" \
    --key-file "$data/admin.key" --ids "$dir/ids.$2" >"$dir/load.$2" 2>&1 &
  loads+=($!)
  pids+=($!)
}
start_load "$url_one" 1 400 4
start_load "$url_two" 2 100000 2
start_load "$url_three" 3 100000 2
acked() { cat "$dir"/ids.* 2>/dev/null | wc -l; }
for _ in $(seq 600); do
  [ -s "$dir/ids.2" ] && [ -s "$dir/ids.3" ] && [ "$(acked)" -ge 60 ] && break
  sleep 0.05
done
[ -s "$dir/ids.2" ] && [ -s "$dir/ids.3" ] || fail "the loads acknowledged nothing: $(tail -2 "$dir"/load.*)"
kill -KILL "$pid_two"
t0=$(now)
echo "SIGKILL to the second instance after $(acked) acknowledged orders"
# its parts move to the two others (the database dropped its leases' locks)
for _ in $(seq 600); do
  a=$(runs_of "$url_one") c=$(runs_of "$url_three")
  [ "$((a + c))" = $((parts + 3)) ] && break
  sleep 0.05
done
[ "$((a + c))" = $((parts + 3)) ] || fail "the killed instance's parts did not move: $a + $c"
figure killed_moved_s "$(since "$t0")"
kill -TERM "$pid_three"
t0=$(now)
wait "$pid_three" || fail "the third instance did not stop cleanly"
echo "SIGTERM: the third instance stopped after $(acked) acknowledged orders"
kill "${loads[1]}" "${loads[2]}" 2>/dev/null
wait "${loads[0]}" || fail "the load on the first instance failed: $(tail -3 "$dir/load.1")"
wait "${loads[1]}" "${loads[2]}" 2>/dev/null

url=$url_one
for _ in $(seq 600); do
  health
  [ "$(field '.instance.runs | length')" = $((parts + 3)) ] &&
    [ "$(field .instance.live_instances)" = 1 ] && break
  sleep 0.1
done
[ "$(field '.instance.runs | length')" = $((parts + 3)) ] ||
  fail "the first instance runs $(field '.instance.runs | length') parts, not all $((parts + 3))"
figure stopped_moved_s "$(since "$t0")"
echo "the first instance runs every part"
wait_caught_up 120

read_stock "$dir/stock"
stop
"$tidings" --db "$db" audit verify >"$dir/audit" 2>&1 || fail "audit verify: $(cat "$dir/audit")"
"$tidings" --db "$db" events --category order >"$dir/orders.jsonl" || fail "cannot read the orders"
cat "$dir"/ids.* >"$dir/ids"
cat "$data"/mail/spool.mbox* >"$dir/mail"
python3 "$(dirname "$0")/check_orders.py" "$dir/ids" "$dir/orders.jsonl" "$dir/mail" \
  "$dir/stock" || fail "see above"
echo "1 passed, 0 failed"
