#!/usr/bin/env bash
# The broker benchmarks (bench/bench_broker.c) against a private RabbitMQ
# node, started here in a temporary folder and stopped on the way out, also
# on failure. Usage: bench/broker.sh BUILD_DIR
set -euo pipefail
build="${1:-build}"
here="$(cd "$(dirname "$0")/.." && pwd)"
dir="$(mktemp -d "${TMPDIR:-/tmp}/tidings-bench-rabbitmq.XXXXXX")"
trap 'bash "$here/scripts/stop-rabbitmq.sh" --remove "$dir"' EXIT
bash "$here/scripts/start-rabbitmq.sh" "$dir" >/dev/null
TIDINGS_BENCH_RABBITMQ_URL_FILE="$dir/url" "$build/bench/tidings-bench" broker
