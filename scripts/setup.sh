#!/usr/bin/env bash
# Installs the Debian packages lilcache needs (only the missing ones), then
# configures and builds it with meson + ninja.
#
#   scripts/setup.sh
#
# Environment:
#   BUILD_DIR    build directory (default: build)
#   MESON_ARGS   extra arguments for `meson setup`, e.g. "-Dbench=disabled"
#   NINJA_TARGETS  build only these targets (e.g. "test/cache_test"); default: all
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
build_dir=${BUILD_DIR:-build}

packages=(
  g++ meson ninja-build pkg-config
  libxxhash-dev libroaring-dev libspdlog-dev libfmt-dev
  doctest-dev libcli11-dev nlohmann-json3-dev
  libboost1.81-dev libboost-url1.81-dev
  liblmdb-dev libsqlite3-dev libhiredis-dev libmemcached-dev redis-server memcached
  curl wrk redis-tools
  clang-14 libclang-rt-14-dev  # ./build.sh test-tsan, test/fuzz/run.sh (libFuzzer)
  clang-format-14  # scripts/check_format.sh (CI)
  # The Python package (python/, docs/python.md): the extension, its tests,
  # `pip install .` in a venv, and bench/python's peers.
  pybind11-dev python3-dev python3-mesonpy python3-pytest python3-hypothesis
  python3-venv python3-pip python3-diskcache python3-lmdb python3-redis
)
# libboost1.81-dev: Beast, Asio and Boost.URL for the HTTP server (Debian's
# default libboost-dev, 1.74, predates Boost.URL; installing 1.81 replaces a
# 1.74 -dev package if one is present). wrk and redis-tools (redis-benchmark):
# bench/rest_bench.sh.

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "setup.sh: dpkg-query not found; this script supports Debian/Ubuntu only." >&2
  echo "setup.sh: install these packages by hand: ${packages[*]}" >&2
  exit 1
fi

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ $status == *"ok installed"* ]] || missing+=("$pkg")
done

if ((${#missing[@]} > 0)); then
  echo "setup.sh: installing missing packages: ${missing[*]}"
  if ((EUID == 0)); then
    as_root=()
  elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    echo "setup.sh: not root and no sudo; install as root: ${missing[*]}" >&2
    exit 1
  fi
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"
fi

meson_args=()
if [[ -n ${MESON_ARGS:-} ]]; then
  read -r -a meson_args <<<"$MESON_ARGS"
fi

if [[ -f $build_dir/meson-private/coredata.dat ]]; then
  meson setup --reconfigure "${meson_args[@]}" "$build_dir"
else
  meson setup "${meson_args[@]}" "$build_dir"
fi
ninja_targets=()
if [[ -n ${NINJA_TARGETS:-} ]]; then
  read -r -a ninja_targets <<<"$NINJA_TARGETS"
fi
ninja -C "$build_dir" "${ninja_targets[@]}"
