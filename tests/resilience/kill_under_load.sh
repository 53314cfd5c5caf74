#!/usr/bin/env bash
# kill_under_load.sh SHOP TIDINGS: SIGKILLed under load, again and again,
# the shop comes back at once and loses nothing.
#
# KILLS times (20): `shop load` places orders with an always-approving card
# (tok_visa) as fast as 8 clients can; once its orders are being
# acknowledged (it makes products and logs its customers in first), after
# a random 0.8..1.8 s more, the shop is
# SIGKILLed, and started again at once, while the dead process is still a
# zombie nobody has reaped (its parent is a `sleep` that never waits). Each
# restart must listen (its figure: start_s) and have every subscription
# caught up (caught_up_s, from the restart) without help; the saga gives up
# on a payment after PAYMENT_TIMEOUT_MS (5,000: the time a restart has to
# be back to its usual lag). Afterwards: every acknowledged order is there and final,
# none is cancelled (so none for payment_timeout), every order has exactly
# one order_received and one order_confirmed e-mail, and each product's
# stock plus the units of its paid orders is what it started with. Prints
# each restart's figures, and their medians and maxima. The store is on
# the backend under test (TD_TEST_STORE).
shop=$1
tidings=$2
kills=${KILLS:-20}
timeout_ms=${PAYMENT_TIMEOUT_MS:-5000}
# every run of shop load registers and logs in 8 customers: above the
# default 60 a minute from one address
opts=(--payment-timeout "$timeout_ms" --auth-limit 100000)
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../support/store_url.sh"

data=$dir/data
db=$(store_url "$data" tidings) || fail "no store URL"
opts+=(--db "$db")
serve_unreaped first "$data" "${opts[@]}" || fail "the shop did not start"
: >"$dir/ids"
: >"$dir/figures"
seed=$$
for k in $(seq "$kills"); do
  mapfile -t auth < <(load_auth)
  "$shop" load --url "$url" --orders 100000 --concurrency 8 --decline-rate 0 --seed "$k" \
    --ids "$dir/ids" "${auth[@]+"${auth[@]}"}" >"$dir/load.$k" 2>&1 &
  load_pid=$!
  pids+=("$load_pid")
  before=$(wc -l <"$dir/ids")
  for _ in $(seq 6000); do
    [ "$(wc -l <"$dir/ids")" -gt "$before" ] && break
    kill -0 "$load_pid" 2>/dev/null || fail "shop load stopped: $(tail -3 "$dir/load.$k")"
    sleep 0.01
  done
  sleep "$(awk -v s="$seed" -v k="$k" 'BEGIN { srand(s + k); printf "%.2f", 0.8 + rand() }')"
  dead=$pid
  dead_parent=$sleeper
  kill -KILL "$dead"
  kill "$load_pid" 2>/dev/null
  { wait "$load_pid"; } 2>/dev/null
  for _ in $(seq 200); do
    [ "$(process_state "$dead")" = Z ] && break
    sleep 0.005
  done
  [ "$(process_state "$dead")" = Z ] || fail "the killed shop is not a zombie"
  serve_unreaped "run$k" "$data" "${opts[@]}" || fail "restart $k did not start"
  [ "$(process_state "$dead")" = Z ] || fail "the killed shop was reaped meanwhile"
  kill "$dead_parent" # now init reaps it
  { wait "$dead_parent"; } 2>/dev/null
  t_started=$started_in
  wait_caught_up 60
  caught=$(awk -v a="$t_started" -v b="$caught_up_in" 'BEGIN { printf "%.3f", a + b }')
  placed=$(wc -l <"$dir/ids")
  echo "kill $k: start_s $t_started caught_up_s $caught ($placed orders acknowledged so far)"
  echo "$t_started $caught" >>"$dir/figures"
done

# every acknowledged order final, and the state to check, with a shop this
# script waits for
kill "$pid"
for _ in $(seq 600); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
kill "$sleeper"
{ wait "$sleeper"; } 2>/dev/null
serve last "$data" "${opts[@]}" || fail "the last start failed"
wait_caught_up 120
read_stock "$dir/stock"
stop
"$tidings" --db "$db" events --category order >"$dir/orders.jsonl" ||
  fail "cannot read the orders"
cat "$data"/mail/spool.mbox* >"$dir/mail"
python3 "$(dirname "$0")/check_orders.py" "$dir/ids" "$dir/orders.jsonl" "$dir/mail" \
  "$dir/stock" || fail "see above"
stats() { sort -n | awk '{v[NR] = $1} END {printf "%s %s", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2, v[NR]}'; }
read -r start_median start_max < <(awk '{print $1}' "$dir/figures" | stats)
read -r caught_median caught_max < <(awk '{print $2}' "$dir/figures" | stats)
figure restart_start_s_median "$start_median"
figure restart_start_s_max "$start_max"
figure restart_caught_up_s_median "$caught_median"
figure restart_caught_up_s_max "$caught_max"
echo "1 passed, 0 failed"
