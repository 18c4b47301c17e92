#!/usr/bin/env bash
# `meson install` into a temporary directory, then, from outside the project,
# build and run test/consumer/main.cc against what was installed:
#   1. g++ with `pkg-config --cflags --libs lilcache` (liblilcache.so);
#   2. g++ with `pkg-config --static --libs lilcache` and liblilcache.a, which
#      checks that lilcache.pc lists the private dependencies;
#   3. a CMake project (test/consumer/CMakeLists.txt, pkg_check_modules);
#   4. examples/06_rest.cc with `pkg-config --cflags --libs lilcache-server`;
#   5. g++ from the build tree with lilcache-uninstalled.pc and an rpath.
# Also checks that the shared libraries export only the public API (nm -D), the
# installed headers, the three tools (`--version` reports the
# project version, and `lilcache` reads what the consumer wrote) and their man
# pages.
#
#   test/install_test.sh BUILD_DIR VERSION [CXX [SANITIZE]]   (meson test runs it:
#                                                             suite install)
# CXX (default g++) builds the outside programs; SANITIZE (meson's b_sanitize,
# default none) adds -fsanitize=SANITIZE to them: a library built with a
# sanitizer links only into programs built with the same one.
set -euo pipefail

build=$(cd "$1" && pwd)
version=$2
cxx=${3:-g++}
sanitize=${4:-none}
san_flags=()
[[ $sanitize == none ]] || san_flags=("-fsanitize=$sanitize")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lilcache-install-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

fail() {
  echo "install_test: FAILED: $*" >&2
  exit 1
}
step() { echo "install_test: $*"; }

# ---- install ----------------------------------------------------------------
dest=$tmp/dest
meson install -C "$build" --no-rebuild --destdir "$dest" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log" >&2; fail "meson install"; }
pc=$(find "$dest" -name lilcache.pc)
[[ -n $pc ]] || fail "no lilcache.pc installed"
[[ -f $(dirname "$pc")/lilcache-server.pc ]] || fail "no lilcache-server.pc installed"
libdir=$(dirname "$(dirname "$pc")")
prefix_in_dest=$(dirname "$(find "$dest" -type d -path '*/include/lilcache')")
prefix_in_dest=$(dirname "$prefix_in_dest")
bindir=$prefix_in_dest/bin
mandir=$prefix_in_dest/share/man/man1
step "installed under $prefix_in_dest (libdir $libdir)"

for f in "$prefix_in_dest/include/lilcache/lilcache.h" "$prefix_in_dest/include/lilcache/env.h" \
  "$prefix_in_dest/include/lilcache/export.h" "$prefix_in_dest/include/lilcache/server.h" \
  "$libdir/liblilcache.a" "$libdir/liblilcache.so" "$libdir/liblilcache_server.so"; do
  [[ -e $f ]] || fail "$f was not installed"
done
[[ ! -e $bindir/lilcache-demo ]] || fail "lilcache-demo is installed (it is not a tool)"

# The installed .pc files say prefix=/usr/local (or the configured prefix):
# where the files will be after a real install. Everything else in them is
# relative to ${prefix}, so copies whose prefix is the staging directory
# describe the staged files exactly as the originals will the installed ones.
mkdir "$tmp/pkgconfig"
for f in "$(dirname "$pc")"/*.pc; do
  grep -q '^prefix=' "$f" || fail "$f has no prefix= line"
  sed "s|^prefix=.*|prefix=$prefix_in_dest|" "$f" >"$tmp/pkgconfig/$(basename "$f")"
done
export PKG_CONFIG_PATH=$tmp/pkgconfig
[[ $(pkg-config --modversion lilcache) == "$version" ]] ||
  fail "pkg-config --modversion lilcache: $(pkg-config --modversion lilcache), not $version"
static_libs=$(pkg-config --static --libs lilcache)
for lib in -lspdlog -lfmt -lxxhash -lroaring -lhiredis -pthread; do
  [[ " $static_libs " == *" $lib "* ]] || fail "pkg-config --static --libs lilcache lacks $lib: $static_libs"
done

# ---- the exported symbols: the public API, nothing else ----------------------
# Built with -fvisibility=hidden and lib/lilcache.map, each shared library
# exports lilcache:: names only (no spdlog, fmt or std instantiation: those
# would be a de-facto ABI), and only names the installed headers declare (no
# internal function such as lilcache::ResolveRoot).
for lib in liblilcache.so liblilcache_server.so; do
  syms=$(nm -D --defined-only -C "$libdir/$lib" | cut -d' ' -f3-)
  [[ -n $syms ]] || fail "$lib exports nothing"
  outside=$(grep -v -E '^((typeinfo|typeinfo name|vtable) for )?lilcache::' <<<"$syms" || true)
  [[ -z $outside ]] || fail "$lib exports symbols outside lilcache::: $(head -5 <<<"$outside")"
  while read -r sym; do
    name=${sym%%(*}
    name=${name%%\[abi:*}
    name=${name##*::}
    name=${name#\~}
    grep -qw -e "$name" "$prefix_in_dest"/include/lilcache/*.h ||
      fail "$lib exports $sym, which no installed header declares"
  done < <(grep -v -E '^(typeinfo|typeinfo name|vtable) for ' <<<"$syms")
done
exported=$(nm -D --defined-only "$libdir/liblilcache.so" | wc -l)
step "exported symbols: only the public API ($exported in liblilcache.so)"

# ---- 1. g++ and pkg-config, shared library ------------------------------------
mkdir "$tmp/app"
cd "$tmp/app"
# shellcheck disable=SC2046  # pkg-config output is a list of flags
"$cxx" "${san_flags[@]}" -std=c++20 -o consumer_shared "$here/consumer/main.cc" $(pkg-config --cflags --libs lilcache)
loaded=$(LD_LIBRARY_PATH=$libdir ldd ./consumer_shared)
[[ $loaded == *"$libdir/liblilcache.so"* ]] ||
  fail "consumer_shared does not load the installed liblilcache.so: $loaded"
LD_LIBRARY_PATH=$libdir ./consumer_shared "$tmp/root1" "$version" || fail "consumer_shared"
step "g++ + pkg-config (shared): ok"

# ---- 2. g++ and pkg-config --static, static library --------------------------
# -l:liblilcache.a picks the archive although the .so is next to it.
# shellcheck disable=SC2046
"$cxx" "${san_flags[@]}" -std=c++20 -o consumer_static "$here/consumer/main.cc" $(pkg-config --cflags lilcache) \
  ${static_libs/-llilcache/-l:liblilcache.a}
[[ $(readelf -d ./consumer_static) != *liblilcache* ]] || fail "consumer_static needs liblilcache.so"
./consumer_static "$tmp/root2" "$version" || fail "consumer_static"
step "g++ + pkg-config --static (liblilcache.a): ok"

# ---- 3. CMake -----------------------------------------------------------------
cmake -S "$here/consumer" -B "$tmp/cmake" -DCMAKE_CXX_COMPILER="$(command -v "$cxx")" \
  -DCMAKE_CXX_FLAGS="${san_flags[*]}" -DCMAKE_EXE_LINKER_FLAGS="${san_flags[*]}" \
  >"$tmp/cmake.log" 2>&1 ||
  { cat "$tmp/cmake.log" >&2; fail "cmake configure"; }
cmake --build "$tmp/cmake" >>"$tmp/cmake.log" 2>&1 ||
  { cat "$tmp/cmake.log" >&2; fail "cmake --build"; }
LD_LIBRARY_PATH=$libdir "$tmp/cmake/consumer" "$tmp/root3" "$version" || fail "CMake consumer"
step "CMake + pkg_check_modules: ok"

# ---- 4. the REST server library -------------------------------------------------
cd "$tmp/app"
# shellcheck disable=SC2046
"$cxx" "${san_flags[@]}" -std=c++20 -pthread -I"$here/../../examples" -o rest_example "$here/../../examples/06_rest.cc" \
  $(pkg-config --cflags --libs lilcache-server)
LD_LIBRARY_PATH=$libdir ./rest_example "$tmp/root4" >/dev/null || fail "examples/06_rest.cc"
step "g++ + pkg-config lilcache-server (examples/06_rest.cc): ok"

# ---- 5. from the build tree, without installing (README "From your program") ---
# pkg-config prefers NAME-uninstalled.pc, which meson writes to
# BUILD/meson-uninstalled; the rpath finds liblilcache.so.0 in BUILD/lib.
cd "$tmp/app"
# shellcheck disable=SC2046
"$cxx" "${san_flags[@]}" -std=c++20 -o consumer_uninstalled "$here/consumer/main.cc" \
  $(PKG_CONFIG_PATH="$build/meson-uninstalled" pkg-config --cflags --libs lilcache) \
  -Wl,-rpath,"$build/lib"
[[ $(ldd ./consumer_uninstalled) == *"$build/lib/liblilcache.so"* ]] ||
  fail "consumer_uninstalled does not load $build/lib/liblilcache.so"
./consumer_uninstalled "$tmp/root5" "$version" || fail "consumer_uninstalled"
step "g++ + lilcache-uninstalled.pc (build tree, rpath): ok"

# ---- the tools and their man pages ---------------------------------------------
for tool in lilcache lilcache-dump lilcache-compact; do
  [[ -x $bindir/$tool ]] || fail "$bindir/$tool was not installed"
  out=$(LD_LIBRARY_PATH=$libdir "$bindir/$tool" --version)
  [[ $out == "$tool $version" ]] || fail "$tool --version printed '$out', not '$tool $version'"
  page=$mandir/$tool.1
  [[ -f $page ]] || fail "$page was not installed"
  th=$(head -1 "$page")
  [[ $th == *"\"lilcache $version\""* ]] || fail "$page: $th"
  # The source page is the installed one: readable with man -l as it is.
  cmp -s "$page" "$here/../../docs/$tool.1" || fail "$page differs from docs/$tool.1"
done
value=$("$bindir/lilcache" --root "$tmp/root3" --name consumer get from-consumer) ||
  fail "installed lilcache cannot get what the consumer set"
[[ $value == hello ]] || fail "installed lilcache get from-consumer: '$value'"
step "tools and man pages: ok (lilcache $version)"
