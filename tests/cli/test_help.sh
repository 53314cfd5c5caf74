#!/usr/bin/env bash
# test_help.sh: the command-line conventions of `tidings` and every `shop`
# command, which share one parser (tools/cmdline.c):
#   -h and --help print the same help, exit 0, every option described, no
#   line wider than 80 columns; --version prints "<program> <version>";
#   an unknown option, an abbreviated one and a missing value each say
#   which option and why, exit 2, with a hint at --help.
# Every option that takes a value is tried without one.
#
# usage: test_help.sh TIDINGS SHOP
set -u
tidings=$(realpath "$1")
shop=$(realpath "$2")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
export TIDINGS_DB="sqlite:$work/none.db"
passed=0
failed=0
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
pass() { passed=$((passed + 1)); }

# check_command PROGRAM [WORDS…]: the conventions for one command.
check_command() {
  local name="$*" out err code
  "$@" --help >"$work/help" 2>"$work/err"
  code=$?
  [ "$code" = 0 ] || { fail "$name --help exits $code"; return; }
  [ -s "$work/err" ] && fail "$name --help writes to stderr: $(head -1 "$work/err")"
  head -1 "$work/help" | grep -q '^usage: ' || fail "$name --help does not start with usage"
  awk -v n="$name" 'length($0) > 80 { print "FAIL: " n " --help line over 80 columns: " $0; bad=1 }
    END { exit bad }' "$work/help" || failed=$((failed + 1))
  "$@" -h >"$work/h" 2>&1
  cmp -s "$work/help" "$work/h" || fail "$name -h differs from --help"
  # each option line: "  --name [ARG]  description" (the description may start on the next line)
  local -a with_value=()
  while IFS= read -r line; do
    local opt=${line#  }
    opt=${opt#-h, }
    local word=${opt%% *} rest=${opt#* }
    [ "$word" = "$opt" ] && rest=""
    case "$rest" in
      [A-Z]* | [a-z]*\|*) with_value+=("$word") ;;
    esac
  done < <(grep -E '^  (-h, )?--[a-z]' "$work/help")
  # an option alone on its line has its description on the next, indented
  awk '/^  (-h, )?--[a-z]/ { if (pending) { print "no description: " opt; bad=1 }
         opt=$0; pending=length($0) < 27; next }
       pending && !(substr($0, 1, 26) ~ /^ *$/ && substr($0, 27, 1) != " ") {
         print "no description: " opt; bad=1 }
       { pending=0 }
       END { if (pending) { print "no description: " opt; bad=1 } exit bad }' "$work/help" >"$work/undescribed" ||
    fail "$name --help: $(cat "$work/undescribed")"
  out=$("$@" --version 2>&1)
  [[ "$out" =~ ^(tidings|shop)\ [0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "$name --version prints '$out'"
  "$@" --no-such-option >/dev/null 2>"$work/err"
  code=$?
  [ "$code" = 2 ] || fail "$name --no-such-option exits $code"
  grep -q "unknown option '--no-such-option'" "$work/err" || fail "$name: unknown option not named: $(cat "$work/err")"
  grep -q -- "--help" "$work/err" || fail "$name: no hint at --help"
  for opt in "${with_value[@]}"; do
    [ "$opt" = --db ] && [ "$1" = "$tidings" ] && [ $# -gt 1 ] && continue # tried once
    "$@" "$opt" >/dev/null 2>"$work/err"
    code=$?
    [ "$code" = 2 ] || { fail "$name $opt (no value) exits $code"; continue; }
    grep -q "option '$opt' needs a value" "$work/err" || fail "$name $opt: $(head -1 "$work/err")"
  done
  pass
}

check_command "$tidings"
for c in init append events tail export import subscriptions dlq replay audit relay consume stats check; do
  check_command "$tidings" "$c"
done
check_command "$shop"
for c in serve load migrate projections keys users; do
  check_command "$shop" "$c"
done

# an abbreviation is refused, not taken for the option it starts
"$shop" serve --list 127.0.0.1:0 >/dev/null 2>"$work/err"
[ $? = 2 ] && grep -q "unknown option '--list'" "$work/err" && pass || fail "shop serve --list: $(cat "$work/err")"
# a switch given a value
"$tidings" replay --force-effects=yes >/dev/null 2>"$work/err"
[ $? = 2 ] && grep -q "option '--force-effects' takes no value" "$work/err" && pass ||
  fail "--force-effects=yes: $(cat "$work/err")"
# unknown commands
"$shop" frobnicate >/dev/null 2>"$work/err"
[ $? = 2 ] && grep -q "unknown command 'frobnicate'" "$work/err" && pass || fail "shop frobnicate"
# shop serve on a port that is taken says so, and starts nothing
python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True); time.sleep(30)' >"$work/port" &
holder=$!
for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")
"$shop" serve --listen "127.0.0.1:$port" --data "$work/data" >/dev/null 2>"$work/err"
code=$?
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null
rm -f "$work/port"
[ "$code" = 1 ] && grep -q "cannot listen on 127.0.0.1:$port: Address already in use" "$work/err" &&
  [ ! -e "$work/data" ] && pass || fail "shop serve on a taken port: exit $code, $(cat "$work/err")"
# nothing was made
[ -z "$(ls -A "$work" | grep -v -e '^help$' -e '^h$' -e '^err$' -e '^undescribed$')" ] && pass ||
  fail "the checks left files: $(ls -A "$work")"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
