#!/usr/bin/env bash
# test_install.sh: libtidings as a package. Installs the build into a
# temporary prefix (cmake --install --prefix), then builds the README's
# example program against it twice, with pkg-config and with a CMake
# project using find_package(tidings CONFIG), and runs both. Also checks
# the shared library's SONAME, that tidings.pc names the prefix, and that
# the commands and manual pages are installed.
#
# usage: test_install.sh BUILD_DIR SOURCE_DIR [CFLAGS]
#   CFLAGS: the sanitizer flags the build was made with (an instrumented
#   library needs an instrumented program)
set -euo pipefail
build=$1
src=$2
cflags=${3:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >"$work/install.log" || fail "cmake --install failed"
libdir=$(cd "$prefix" && ls -d lib*/ | head -1)
libdir=$prefix/${libdir%/}
[ -f "$libdir/libtidings.a" ] || fail "no static library in $libdir"
so=$(readlink -f "$libdir/libtidings.so")
[ -f "$so" ] || fail "no shared library"
soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = "libtidings.so.0" ] || fail "SONAME is '$soname', not libtidings.so.0"
[ -e "$libdir/$soname" ] || fail "no $soname link"
case "$so" in *libtidings.so.0.*.*) ;; *) fail "the library file $so has no version" ;; esac
[ -f "$prefix/include/tidings/tidings.h" ] || fail "headers not installed"
for cmd in tidings shop; do
  [ -x "$prefix/bin/$cmd" ] || fail "$cmd not installed"
done
for page in man1/tidings.1 man1/shop.1 man3/libtidings.3; do
  [ -f "$prefix/share/man/$page" ] || fail "manual page $page not installed"
done

export PKG_CONFIG_PATH=$libdir/pkgconfig
[ "$(pkg-config --variable=prefix tidings)" = "$prefix" ] ||
  fail "tidings.pc's prefix is $(pkg-config --variable=prefix tidings), not $prefix"
[ "$(pkg-config --modversion tidings)" = "$(sed -n 's/^project(tidings VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")" ] ||
  fail "tidings.pc's version differs from the project's"

# The README's first C block under "Using libtidings" is the program, its
# cmake block the project.
block() { # LANG: the first fenced block of that language after the heading
  awk -v lang="$1" '/^## Using libtidings/ {on=1} on && $0 == "```" lang {inb=1; next}
    inb && /^```/ {exit} inb {print}' "$src/README.md"
}
mkdir -p "$work/cc" "$work/cm"
block c >"$work/cc/app.c"
grep -q 'int main' "$work/cc/app.c" || fail "the README's example has no main"
cp "$work/cc/app.c" "$work/cm/app.c"
block cmake >"$work/cm/CMakeLists.txt"
grep -q 'find_package(tidings CONFIG REQUIRED)' "$work/cm/CMakeLists.txt" ||
  fail "the README's CMake project does not use find_package"

# 1. cc with pkg-config (the shared library)
# shellcheck disable=SC2046,SC2086
(cd "$work/cc" && cc -std=c11 -Wall -Werror $cflags app.c $(pkg-config --cflags --libs tidings) -o app) ||
  fail "cc with pkg-config failed"
readelf -d "$work/cc/app" | grep -q 'NEEDED.*libtidings.so.0' || fail "app does not use the shared library"
(cd "$work/cc" && LD_LIBRARY_PATH=$libdir ./app) >"$work/cc.out" || fail "the pkg-config build did not run: $(cat "$work/cc.out")"
grep -q 'order-42 is at version 1' "$work/cc.out" || fail "unexpected output: $(cat "$work/cc.out")"

# 2. CMake with find_package(tidings CONFIG REQUIRED)
(cd "$work/cm" && cmake -S . -B b -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_FLAGS="$cflags" \
  -DCMAKE_EXE_LINKER_FLAGS="$cflags" >"$work/cmake.log" 2>&1 && cmake --build b >>"$work/cmake.log" 2>&1) ||
  fail "the CMake build failed: $(cat "$work/cmake.log")"
(cd "$work/cm" && LD_LIBRARY_PATH=$libdir ./b/app) >"$work/cm.out" || fail "the CMake build did not run"
grep -q 'order-42 is at version 1' "$work/cm.out" || fail "unexpected output: $(cat "$work/cm.out")"
echo "installed into a prefix; the README's example built with pkg-config and with CMake, and ran"
