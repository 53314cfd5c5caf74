#!/usr/bin/env bash
# services_faults.sh SHOP TIDINGS: the shop as three services over RabbitMQ
# (the private node CTest starts; TD_TEST_RABBITMQ_DIR), under a steady
# load of orders on the first, through three faults in turn:
#
#  1. the broker killed (SIGKILL) and started again FAULT_S (30) s later,
#     on the same folder: same node, ports and data (scripts/start-rabbitmq.sh);
#  2. the broker frozen (SIGSTOP) for FAULT_S s, then thawed (SIGCONT);
#  3. payments,notifications stopped (SIGTERM) for 10 s while orders keep
#     coming and its queue fills, then started again: it catches up.
#
# The layout is the README's: P1 users,catalog,orders (the saga; `shop
# load` places its orders here, paced at RATE a second), P2 inventory, P3
# payments,notifications, each with a store (SQLite) and a data folder of
# its own and P1's master key. Every process must notice each broker fault
# (/health: relay and consumer disconnected; a frozen node only by
# heartbeats) and reconnect on its own. The payment timeout (120 s) is
# well above an outage, so no paid order may be cancelled for it.
#
# Afterwards, once every relay's lag is 0, every consumer connected and
# every acknowledged order final, the processes stop cleanly and their
# stores are checked (check_orders.py on P1's orders and P3's mail spool,
# check_services.py across the three stores): nothing acknowledged lost,
# no order cancelled, one e-mail of each kind per order, stock conserved,
# one PaymentProcessed per order, at most one StockReserved per order line,
# every integration event of one service in the store of each service that
# reads it, each stream's events in the sender's order, and `tidings audit
# verify` on each store. Prints the reconnect and catch-up times as figures.
# About 3.5 minutes.
shop=$1
tidings=$2
fault_s=${FAULT_S:-30}
rate=${RATE:-6}
. "$(dirname "$0")/lib.sh"

rabbit=${TD_TEST_RABBITMQ_DIR:?run through ctest, which starts the broker}
scripts=$(cd "$(dirname "$0")/../../scripts" && pwd)
install -m 600 "$rabbit/url" "$dir/broker.url"
exchange=shop-faults-$$
# every process: the payment timeout far above an outage; shop load's
# customers register and log in on P1 at once
opts=(--broker-file "$dir/broker.url" --broker-exchange "$exchange" --payment-timeout 120000
  --auth-limit 100000)

declare -A spid surl sdata
broker_down= # "killed" or "frozen" while a fault is on
cleanup_services() {
  # the broker outlives this test (the next broker suites need it): thaw
  # or start it again if a failure left it frozen or dead
  case $broker_down in
    frozen) kill -CONT "$(cat "$rabbit/rabbit.pid")" 2>/dev/null ;;
    killed) bash "$scripts/start-rabbitmq.sh" "$rabbit" >/dev/null 2>&1 3>&- ;;
  esac
  cleanup
}
trap cleanup_services EXIT

# start NAME SERVICES [OPTION...]: one process of the shop on its data
# folder $dir/NAME; sets spid, surl and sdata for NAME.
start() {
  local name=$1 services=$2
  shift 2
  mkdir -p "$dir/$name"
  "$shop" serve --listen 127.0.0.1:0 --data "$dir/$name" --services "$services" \
    --log-level "${SHOP_LOG_LEVEL:-warn}" "${opts[@]}" "$@" \
    >"$dir/$name.out" 2>>"$dir/$name.err" &
  spid[$name]=$!
  pids+=("${spid[$name]}")
  shop_wait_url "$dir/$name.out" "${spid[$name]}" 30 0.1 || fail "$name did not start"
  surl[$name]=$url
  sdata[$name]=$dir/$name
}

# on NAME: lib.sh's api and health talk to process NAME from now on.
on() {
  url=${surl[$1]}
  data=${sdata[$1]}
}

# connected NAME: the relay and the consumer of NAME are connected.
connected() {
  on "$1"
  health
  [ "$(field '.broker.connection + "/" + .broker.consumer.connection')" = connected/connected ]
}

# wait_connected SECONDS: until every process is connected; sets
# connected_in (seconds).
wait_connected() {
  local t0 name
  t0=$(now)
  for name in p1 p2 p3; do
    for _ in $(seq $(($1 * 5))); do
      connected "$name" && break
      sleep 0.2
    done
    connected "$name" || fail "$name did not reconnect to the broker in $1 s: $(body)"
  done
  connected_in=$(since "$t0")
}

# wait_noticed SECONDS: until the relay and the consumer of every process
# have each reported the broker gone at least once; sets noticed_in.
wait_noticed() {
  local t0 name part
  declare -A seen=()
  t0=$(now)
  for _ in $(seq $(($1 * 4))); do
    for name in p1 p2 p3; do
      on "$name"
      health
      [ "$(field .broker.connection)" = disconnected ] && seen[$name.relay]=1
      [ "$(field .broker.consumer.connection)" = disconnected ] && seen[$name.consumer]=1
    done
    [ ${#seen[@]} = 6 ] && break
    sleep 0.25
  done
  for name in p1 p2 p3; do
    for part in relay consumer; do
      [ -n "${seen[$name.$part]:-}" ] || fail "the $part of $name never noticed the broker was gone"
    done
  done
  noticed_in=$(since "$t0")
}

# sleep_rest T0: sleeps until FAULT_S seconds after T0 (a `now`).
sleep_rest() {
  sleep "$(awk -v f="$fault_s" -v t="$(since "$1")" 'BEGIN { d = f - t; printf "%.2f", (d > 0 ? d : 0) }')"
}

# acked: how many orders P1 has acknowledged so far.
acked() { wc -l <"$dir/ids"; }

# taking_orders WHAT: P1 acknowledged orders since the last call (it keeps
# taking them whatever the broker does).
last_acked=0
taking_orders() {
  local n
  n=$(acked)
  [ "$n" -gt "$last_acked" ] || fail "no order acknowledged $1 ($n in all)"
  last_acked=$n
}

# --- three processes, one master key ------------------------------------------
start p1 users,catalog,orders
start p2 inventory --master-key-file "$dir/p1/master.key"
start p3 payments,notifications --master-key-file "$dir/p1/master.key"
wait_connected 30

# --- the load: paced, for the whole run --------------------------------------------
: >"$dir/ids"
on p1
"$shop" load --url "$url" --orders 100000 --concurrency 4 --rate "$rate" --decline-rate 0 \
  --products 4 --seed $$ --ids "$dir/ids" --key-file "$dir/p1/admin.key" >"$dir/load.out" 2>&1 &
load_pid=$!
pids+=("$load_pid")
for _ in $(seq 600); do
  [ "$(acked)" -gt 0 ] && break
  kill -0 "$load_pid" 2>/dev/null || fail "shop load stopped: $(tail -3 "$dir/load.out")"
  sleep 0.1
done
[ "$(acked)" -gt 0 ] || fail "shop load placed no order in 60 s: $(tail -3 "$dir/load.out")"
sleep 8
taking_orders "before the faults"
broker_pid=$(cat "$rabbit/rabbit.pid")

# --- 1. the broker killed, and started again FAULT_S s later ------------------------
t_fault=$(now)
broker_down=killed
kill -KILL "$broker_pid" || fail "cannot kill the broker ($broker_pid)"
wait_noticed 20
echo "killed: every relay and consumer noticed in $noticed_in s"
sleep_rest "$t_fault"
taking_orders "while the broker was dead"
for _ in $(seq 100); do # reaped by now: start-rabbitmq.sh refuses while its pid lives
  kill -0 "$broker_pid" 2>/dev/null || break
  sleep 0.1
done
# (3>&-: the node must not hold the test's stderr, which lib.sh keeps on fd 3)
bash "$scripts/start-rabbitmq.sh" "$rabbit" >/dev/null 3>&- || fail "the broker did not start again"
broker_down=
broker_pid=$(cat "$rabbit/rabbit.pid")
wait_connected 60
echo "killed: all connected again $connected_in s after the broker was back ($(acked) orders acknowledged)"
figure killed_reconnect_s "$connected_in"
sleep 8

# --- 2. the broker frozen for FAULT_S s ---------------------------------------------
t_fault=$(now)
broker_down=frozen
kill -STOP "$broker_pid" || fail "cannot freeze the broker ($broker_pid)"
wait_noticed $((fault_s - 2))
echo "frozen: every relay and consumer noticed in $noticed_in s (heartbeats)"
figure frozen_noticed_s "$noticed_in"
sleep_rest "$t_fault"
taking_orders "while the broker was frozen"
kill -CONT "$broker_pid" || fail "cannot thaw the broker"
broker_down=
wait_connected 60
echo "frozen: all connected again $connected_in s after the thaw ($(acked) orders acknowledged)"
figure frozen_reconnect_s "$connected_in"
sleep 8

# --- 3. payments,notifications away for 10 s while its queue fills --------------------
kill "${spid[p3]}"
wait "${spid[p3]}" || fail "p3 did not stop cleanly"
on p1
health
published_before=$(field .broker.published)
sleep 10
taking_orders "while p3 was away"
health
[ "$(field .broker.published)" -gt "$published_before" ] ||
  fail "p1 published nothing for p3's queue while p3 was away"
t0=$(now)
start p3 payments,notifications --master-key-file "$dir/p1/master.key"
wait_connected 30
# caught up: it took in what its queue held (consumed counts this run's
# messages) and its handlers have no lag
for _ in $(seq 300); do
  on p3
  health
  [ "$(field '(.broker.consumer.consumed > 0) and ([.subscriptions[].lag_events] | add) == 0')" = true ] &&
    break
  sleep 0.2
done
[ "$(field '([.subscriptions[].lag_events] | add)')" = 0 ] || fail "p3 did not catch up in 60 s: $(body)"
p3_caught_up_s=$(since "$t0")
echo "p3: back and caught up $p3_caught_up_s s after its restart ($(field .broker.consumer.consumed) messages taken)"
figure p3_restart_caught_up_s "$p3_caught_up_s"
sleep 5
taking_orders "after p3 came back"
kill "$load_pid"
{ wait "$load_pid"; } 2>/dev/null
echo "load stopped: $(acked) orders acknowledged"

# --- everything caught up, then the stores checked ------------------------------------
# caught_up: every relay's lag 0, every consumer connected, every
# subscription's lag 0 on the three; and (read from P1 while it runs) each
# acknowledged order final, with its e-mails, and the stock it sold.
caught_up() {
  local name
  for name in p1 p2 p3; do
    on "$name"
    health
    [ "$(field '[.broker.lag_events, ([.subscriptions[].lag_events] | add)] | add')" = 0 ] &&
      [ "$(field .broker.consumer.connection)" = connected ] || return 1
  done
  "$tidings" --db "sqlite:$dir/p1/tidings.db" events --category order >"$dir/orders.jsonl" 2>/dev/null ||
    return 1
  cat "$dir/p3/mail/spool.mbox"* >"$dir/mail" 2>/dev/null
  on p1
  read_stock "$dir/stock"
  python3 "$(dirname "$0")/check_orders.py" "$dir/ids" "$dir/orders.jsonl" "$dir/mail" \
    "$dir/stock" >"$dir/check.out" 2>&1
}
t0=$(now)
for _ in $(seq 60); do
  caught_up && break
  sleep 2
done
caught_up || { cat "$dir/check.out"; fail "not caught up 120 s after the load stopped"; }
caught_up_s=$(since "$t0")
echo "caught up $caught_up_s s after the load stopped"
figure caught_up_s "$caught_up_s"

for name in p1 p2 p3; do
  kill "${spid[$name]}"
  wait "${spid[$name]}" || fail "$name did not stop cleanly"
  grep -qiE 'AddressSanitizer|runtime error' "$dir/$name.err" && fail "$name: sanitizer report"
done
# the same checks on the stopped stores: nothing came late
"$tidings" --db "sqlite:$dir/p1/tidings.db" events --category order >"$dir/orders.jsonl" ||
  fail "cannot read p1's orders"
cat "$dir/p3/mail/spool.mbox"* >"$dir/mail"
python3 "$(dirname "$0")/check_orders.py" "$dir/ids" "$dir/orders.jsonl" "$dir/mail" \
  "$dir/stock" || fail "see above"
for name in p1 p2 p3; do
  "$tidings" --db "sqlite:$dir/$name/tidings.db" events >"$dir/$name.jsonl" ||
    fail "cannot read $name's events"
  "$tidings" --db "sqlite:$dir/$name/tidings.db" audit verify >"$dir/$name.audit" 2>&1 ||
    fail "$name's audit chain: $(cat "$dir/$name.audit")"
done
python3 "$(dirname "$0")/check_services.py" "$dir/ids" "$dir/p1.jsonl" "$dir/p2.jsonl" \
  "$dir/p3.jsonl" || fail "see above"
echo "1 passed, 0 failed"
