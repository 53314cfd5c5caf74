#!/usr/bin/env bash
# No function in src/ answers with a bare -1: a result that means something
# (ready / timed out / failed, backpressure / error) gets a named enum, and
# errors are TD_E codes (include/tidings/error.h), so that no caller can take
# one meaning for another. This fails, naming the lines, if a file in src/
# has `return -1;`. System calls' own -1 (compared where they are called)
# are not ours and are not matched.
# Usage: test_no_bare_minus_one.sh SRC_DIR
set -euo pipefail
src="$1"
pattern='\breturn\s*\(?\s*-\s*1\s*\)?\s*;'
hits=$(grep -rnP --include='*.c' --include='*.h' "$pattern" "$src" || true)
if [ -n "$hits" ]; then
  echo "bare 'return -1' in src/ (name the result: an enum, or a TD_E code):" >&2
  echo "$hits" >&2
  exit 1
fi
# The check itself must be able to fail: the pattern finds the forms it bans.
for sample in 'return -1;' '    return -1 ;' 'return (-1);' 'if (x) return -1;'; do
  printf '%s\n' "$sample" | grep -qP "$pattern" || {
    echo "test_no_bare_minus_one: the pattern misses '$sample'" >&2
    exit 1
  }
done
printf '%s\n' 'return -10;' 'return TD_EIO;' 'x = -1;' | grep -qP "$pattern" && {
  echo "test_no_bare_minus_one: the pattern matches what it must not" >&2
  exit 1
}
echo "no bare 'return -1' in $src"
