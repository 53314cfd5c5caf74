#!/usr/bin/env bash
# Starts a private RabbitMQ node for tests and benchmarks, in DIR (made if
# missing), and prints its amqp:// URL once it accepts connections.
#
#   scripts/start-rabbitmq.sh DIR     # prints amqp://tidings:…@127.0.0.1:PORT
#   scripts/stop-rabbitmq.sh DIR      # stops it and its epmd; DIR stays
#
# The node is nobody else's: its own name (tidings-<random>@localhost), its
# own epmd, AMQP and distribution ports, each picked free on 127.0.0.1 at the
# first start (below the ephemeral range), its data, logs and Erlang cookie under DIR, no plugins, and a
# user with a random password. Nothing listens beyond loopback. DIR/url
# (mode 0600) holds the URL with the password, for clients that read it
# from a file; DIR/env the settings, so that starting again in the same
# DIR (after a stop or a kill, as fault tests do) brings back the same node,
# ports and data. DIR/rabbit.pid and DIR/epmd.pid name the processes
# started here, for stop-rabbitmq.sh and for tests that freeze the broker.
#
# Exit status: 0 once the node takes connections, 1 when it does not within
# RABBITMQ_START_TIMEOUT seconds (default 60; its log is printed then).
set -euo pipefail

dir="${1:?usage: start-rabbitmq.sh DIR}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
umask 077

# A free port below the kernel's ephemeral range: a port picked inside it
# (bind to port 0) may be taken, while the node is down after a kill, as the
# local port of any outgoing connection on the machine, and the node could
# then not start again on its own ports ("dist_port_already_used").
free_port() {
  python3 - <<'PY'
import random, socket
low, _ = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
top = max(low - 1, 10001)
for _ in range(1000):
    port = random.randint(10000, top)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
else:
    raise SystemExit("start-rabbitmq: no free port below the ephemeral range")
PY
}

if [ ! -f "$dir/env" ]; then
  suffix="$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
  password="$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')"
  cat >"$dir/env" <<EOF
node=tidings-$suffix@localhost
amqp_port=$(free_port)
dist_port=$(free_port)
epmd_port=$(free_port)
password=$password
EOF
fi
# shellcheck disable=SC1091
. "$dir/env"

if [ -f "$dir/rabbit.pid" ] && kill -0 "$(cat "$dir/rabbit.pid")" 2>/dev/null; then
  echo "start-rabbitmq: a node runs in $dir already (pid $(cat "$dir/rabbit.pid"))" >&2
  exit 1
fi

mkdir -p "$dir/mnesia" "$dir/log"
echo '[].' >"$dir/enabled_plugins"
: >"$dir/rabbitmq-env.conf"
cat >"$dir/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$amqp_port
default_user = tidings
default_pass = $password
loopback_users = none
log.console = false
log.file.level = warning
disk_free_limit.absolute = 20MB
EOF
printf 'amqp://tidings:%s@127.0.0.1:%s\n' "$password" "$amqp_port" >"$dir/url"

export HOME="$dir" # the Erlang cookie
export ERL_EPMD_PORT="$epmd_port" ERL_EPMD_ADDRESS=127.0.0.1
export RABBITMQ_NODENAME="$node" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT="$amqp_port" RABBITMQ_DIST_PORT="$dist_port"
export RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf"
export RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf"
export RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config"
export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
export RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log"
export RABBITMQ_PID_FILE="$dir/rabbit.pid.erl"
# One scheduler that sleeps when idle: the machine is shared.
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none \
-kernel inet_dist_use_interface {127,0,0,1}"
# exec's erl directly (no signal-forwarding shell), so the pid is the VM's
export RUNNING_UNDER_SYSTEMD=1

if ! { [ -f "$dir/epmd.pid" ] && kill -0 "$(cat "$dir/epmd.pid")" 2>/dev/null; }; then
  epmd -port "$epmd_port" -address 127.0.0.1 >>"$dir/log/epmd.log" 2>&1 &
  echo $! >"$dir/epmd.pid"
fi

/usr/lib/rabbitmq/bin/rabbitmq-server >>"$dir/log/server.out" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$dir/rabbit.pid"

# Ready when the AMQP port answers the protocol header with connection.start
# (RabbitMQ opens its listener last, once booted).
deadline=$((SECONDS + ${RABBITMQ_START_TIMEOUT:-60}))
while :; do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "start-rabbitmq: the node exited while starting; its output:" >&2
    tail -n 40 "$dir/log/server.out" >&2 || true
    exit 1
  fi
  if python3 - "$amqp_port" <<'EOF' 2>/dev/null; then
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
s.sendall(b"AMQP\x00\x00\x09\x01")
frame = s.recv(7)
sys.exit(0 if len(frame) == 7 and frame[0] == 1 else 1)
EOF
    break
  fi
  if [ $SECONDS -ge $deadline ]; then
    echo "start-rabbitmq: no answer on 127.0.0.1:$amqp_port; the node's output:" >&2
    tail -n 40 "$dir/log/server.out" >&2 || true
    exit 1
  fi
  sleep 0.3
done
cat "$dir/url"
