#!/usr/bin/env bash
# run_cases.sh: the `tidings` command's behaviour, as data.
#
# Each file in the cases folder is one case, lines of "key: value":
#   setup: <args>     run before (any number; each must exit 0)
#   run: <args>       the command under test (shell words, quoted as in bash)
#   stdin: <text>     fed to the command (optional)
#   stdin_from: <sh>  or: the output of this shell command is fed to it
#   exit: <code>      expected exit code
#   stdout: <text>    must appear in stdout (any number)
#   stderr: <text>    must appear in stderr (any number)
#   lines: <n>        stdout has exactly n lines
#   events: <n>       events in the store afterwards (counts what was written)
# Every case gets a fresh store, created with `tidings init`, in its own
# folder ($CASE_DIR, also the working directory). With TD_TEST_STORE=postgres
# that store is a schema of its own on the test server (TD_TEST_PG_URL, or
# the url= line of the state file TD_TEST_PG_STATE): every case runs against
# PostgreSQL, and those naming sqlite: stores go across the two backends.
set -u
tidings=$1
cases=$2
passed=0
failed=0
pg_url=
if [ "${TD_TEST_STORE:-sqlite}" = postgres ]; then
  pg_url=${TD_TEST_PG_URL:-$(sed -n 's/^url=//p' "${TD_TEST_PG_STATE:-/nonexistent}" 2>/dev/null)}
  [ -n "$pg_url" ] || { echo "no PostgreSQL server: set TD_TEST_PG_URL or TD_TEST_PG_STATE" >&2; exit 1; }
fi
case_number=0

run_case() {
  local file=$1 dir out err code want_exit="" want_lines="" want_events="" input=""
  local -a outs=() errs=() setups=()
  dir=$(mktemp -d)
  export CASE_DIR=$dir TIDINGS_DB="sqlite:$dir/store.db"
  case_number=$((case_number + 1))
  [ -z "$pg_url" ] || TIDINGS_DB="$pg_url?options=-csearch_path%3Dcli_$$_$case_number"
  local run=""
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in
      setup:*) setups+=("${line#setup: }") ;;
      run:*) run=${line#run: } ;;
      stdin:*) input=${line#stdin: } ;;
      stdin_from:*) input=$(bash -c "${line#stdin_from: }") ;;
      exit:*) want_exit=${line#exit: } ;;
      stdout:*) outs+=("${line#stdout: }") ;;
      stderr:*) errs+=("${line#stderr: }") ;;
      lines:*) want_lines=${line#lines: } ;;
      events:*) want_events=${line#events: } ;;
    esac
  done <"$file"
  local problems=""
  (cd "$dir" && "$tidings" init >/dev/null) || problems+=" init failed;"
  for s in "${setups[@]+"${setups[@]}"}"; do
    eval "local -a words=($s)"
    (cd "$dir" && "$tidings" "${words[@]}" >/dev/null 2>"$dir/setup.err") ||
      problems+=" setup '$s' failed: $(cat "$dir/setup.err");"
  done
  eval "local -a words=($run)"
  (cd "$dir" && printf '%s' "$input" | "$tidings" "${words[@]}" >"$dir/out" 2>"$dir/err")
  code=$?
  [ "$code" = "$want_exit" ] || problems+=" exit $code, expected $want_exit;"
  for o in "${outs[@]+"${outs[@]}"}"; do
    grep -qF -- "$o" "$dir/out" || problems+=" stdout lacks '$o';"
  done
  for e in "${errs[@]+"${errs[@]}"}"; do
    grep -qF -- "$e" "$dir/err" || problems+=" stderr lacks '$e';"
  done
  if [ -n "$want_lines" ]; then
    local n; n=$(wc -l <"$dir/out")
    [ "$n" = "$want_lines" ] || problems+=" $n stdout lines, expected $want_lines;"
  fi
  if [ -n "$want_events" ]; then
    local n; n=$("$tidings" events | wc -l)
    [ "$n" = "$want_events" ] || problems+=" $n events stored, expected $want_events;"
  fi
  if [ -z "$problems" ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL $(basename "$file"):$problems"
    sed 's/^/  stdout: /' "$dir/out" | head -5
    sed 's/^/  stderr: /' "$dir/err" | head -5
  fi
  rm -rf "$dir"
}

for f in "$cases"/*.case; do
  run_case "$f"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
