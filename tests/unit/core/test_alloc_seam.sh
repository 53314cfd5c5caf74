#!/usr/bin/env bash
# Every allocation in src/ goes through the allocation seam (src/core/alloc.h:
# td_malloc, td_calloc, td_realloc, td_strdup, td_strndup), so that a test
# can fail any of them. This fails, naming the lines, if a file in src/
# other than alloc.c itself calls the C library's allocators directly.
# Usage: test_alloc_seam.sh SRC_DIR
set -euo pipefail
src="$1"
banned='malloc|calloc|realloc|reallocarray|strdup|strndup|asprintf|vasprintf|aligned_alloc|posix_memalign'
# A call: the name not preceded by an identifier character, '.', '>' or '_'
# (so td_malloc, s->malloc, json_malloc pass), then '('.
hits=$(grep -rnP --include='*.c' --include='*.h' "(?<![\\w.>])($banned)\\s*\\(" "$src" |
  grep -v "^$src/core/alloc.c:" || true)
if [ -n "$hits" ]; then
  echo "direct allocations in src/ (use td_malloc & co., src/core/alloc.h):" >&2
  echo "$hits" >&2
  exit 1
fi
# The check itself must be able to fail: it finds the seam's own calls.
grep -qP "(?<![\\w.>])malloc\\s*\\(" "$src/core/alloc.c" || {
  echo "test_alloc_seam: the pattern no longer matches alloc.c's own malloc call" >&2
  exit 1
}
echo "no direct allocations in $src outside core/alloc.c"
