# shop.sh: how the shell tests know that a `shop serve` they started is up,
# or gone. tests/http/shop_lib.sh and tests/resilience/lib.sh source it (each
# starts its shops its own way: options, logs, how many); the python tests
# have the same in tests/support/shop_server.py.
#
# A shop started on --listen 127.0.0.1:0 prints "listening on http://ADDR"
# once it serves; that line, not a fixed sleep, says it is up.

# process_state PID: R, S, D, Z... (the third field of /proc/PID/stat);
# nothing once the process is reaped.
process_state() {
  sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1
}

# shop_alive PID: the process runs (it exists and is not a zombie).
shop_alive() {
  local state
  state=$(process_state "$1")
  [ -n "$state" ] && [ "$state" != Z ]
}

# shop_wait_url OUT PID [SECONDS] [STEP]: waits until the shop PID has
# written its address to OUT (its stdout), looking every STEP seconds (0.05)
# for at most SECONDS (30); sets url. Returns 1 if the shop ended first, 2
# if the time ran out.
shop_wait_url() {
  local out=$1 pid=$2 seconds=${3:-30} step=${4:-0.05} tries i
  tries=$(awk -v s="$seconds" -v d="$step" 'BEGIN { printf "%d", s / d }')
  url=
  for ((i = 0; i < tries; i++)); do
    url=$(grep -o 'http://[0-9.:]*' "$out" 2>/dev/null | head -1)
    [ -n "$url" ] && return 0
    shop_alive "$pid" || return 1
    sleep "$step"
  done
  return 2
}
