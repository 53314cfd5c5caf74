#!/usr/bin/env bash
# `make fuzz`: runs each fuzz target of tests/fuzz/ with libFuzzer for
# FUZZ_SECONDS (default 60), one after another, and prints for each its
# executions per second, the coverage it reached (cov: edges, ft: features)
# and the size of its corpus. Usage: fuzz.sh BUILD_DIR [TARGET...]
#
# Each target starts from its seed corpus (tests/fuzz/corpus/NAME/, read
# only) and adds what it finds to BUILD_DIR/fuzz-corpus/NAME/; a crash, a
# leak or a timeout is written into the seed corpus itself (crash-…,
# leak-…, timeout-…), so that `make test` replays it from then on: fix
# the code, keep the input. The run's log is BUILD_DIR/fuzz-NAME.log.
set -uo pipefail
build="$1"
shift
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${FUZZ_SECONDS:-60}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=($(cd "$root/tests/fuzz/corpus" && ls))
fi
failed=0
printf '%-14s %10s %10s %8s %8s %8s  %s\n' target execs exec/s cov ft corpus result
for t in "${targets[@]}"; do
  seeds="$root/tests/fuzz/corpus/$t"
  work="$build/fuzz-corpus/$t"
  log="$build/fuzz-$t.log"
  mkdir -p "$work"
  "$build/fuzz_$t" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$seeds/" "$work" "$seeds" >"$log" 2>&1
  rc=$?
  # The last status line: "#N  DONE|pulse|NEW  cov: C ft: F corp: K/Sb … exec/s: E …"
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  execs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$last")
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
  corp=$(sed -nE 's/.* corp: ([0-9]+)\/.*/\1/p' <<<"$last")
  rate=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+).*/\1/p' "$log")
  result=ok
  if [ $rc -ne 0 ]; then
    result="FOUND SOMETHING (exit $rc): see $log; the input is in $seeds/"
    failed=1
  fi
  printf '%-14s %10s %10s %8s %8s %8s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" \
    "${ft:-?}" "${corp:-?}" "$result"
done
exit $failed
