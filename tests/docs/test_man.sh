#!/usr/bin/env bash
# test_man.sh: the manual pages (docs/man/) render without a warning, and
# each page names every option its command's --help lists, so the two do
# not drift apart.
#
# usage: test_man.sh MAN_DIR TIDINGS SHOP
set -u
man_dir=$1
tidings=$2
shop=$3
failed=0
passed=0
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }

for page in "$man_dir"/tidings.1 "$man_dir"/shop.1 "$man_dir"/libtidings.3; do
  out=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
  [ -z "$out" ] || { fail "$page: $out"; continue; }
  lines=$(MANWIDTH=80 man -l "$page" 2>/dev/null | wc -l)
  [ "$lines" -gt 40 ] || { fail "$page renders to $lines lines"; continue; }
  passed=$((passed + 1))
done

# options_of PROGRAM WORDS…: the long options its --help lists
options_of() { "$@" --help | grep -oE '^  (-h, )?--[a-z-]+' | sed 's/^  \(-h, \)\?//'; }
# in_page PAGE OPTION: the rendered page mentions the option
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for page in tidings.1 shop.1; do
  MANWIDTH=200 man -l "$man_dir/$page" >"$work/$page" 2>/dev/null
done
in_page() { grep -qF -- "$2" "$work/$(basename "$1")"; }

for c in "" init append events tail export import subscriptions dlq replay audit relay consume stats check; do
  # shellcheck disable=SC2086
  for opt in $(options_of "$tidings" $c); do
    in_page "$man_dir/tidings.1" "$opt" || fail "tidings.1 does not mention '$opt' (tidings $c)"
  done
done
for c in "" serve load migrate projections keys users; do
  # shellcheck disable=SC2086
  for opt in $(options_of "$shop" $c); do
    in_page "$man_dir/shop.1" "$opt" || fail "shop.1 does not mention '$opt' (shop $c)"
  done
done
[ "$failed" = 0 ] && passed=$((passed + 1))
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
