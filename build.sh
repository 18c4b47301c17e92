#!/usr/bin/env bash
# lilcache build entry point.
#
#   ./build.sh demo  [ARGS]   set up, build, run examples/lilcache-demo (seed requirement 1)
#   ./build.sh test  [ARGS]   set up, build, run every test (ARGS go to `meson test`);
#                             the last line is "N passed, N failed"
#   ./build.sh bench [ARGS]   set up, build, run bench/lilcache-bench
#   ./build.sh bench-python [ARGS]  set up, build only the Python binding, run
#                             bench/python/bench.py ARGS with /usr/bin/python3
#                             (lilcache vs diskcache, py-lmdb, redis-py, dict;
#                             --quick, --peers, --json OUT; bench/README.md)
#   ./build.sh serve [ARGS]   set up, build, serve the default cache over HTTP on
#                             127.0.0.1:5001 until Ctrl-C (`lilcache serve ARGS`,
#                             docs/rest.md); prints curl lines to try first
#   ./build.sh test-release [ARGS]  every test, built as users build it:
#                             --buildtype=release (-O3, NDEBUG; build-release/)
#   ./build.sh test-asan [ARGS]  every test under AddressSanitizer + UBSan (build-asan/)
#   ./build.sh test-tsan [ARGS]  the threaded and multi-process suites under
#                             ThreadSanitizer (build-tsan/); ARGS = test names
#   ./build.sh fuzz [SECONDS]    exploratory fuzzing: every libFuzzer target for
#                             SECONDS (default 30) each, random seeds
#                             (test/fuzz/run.sh, clang, build-fuzz/)
#   ./build.sh fuzz-gate      CI's deterministic fuzzing: fixed seed and
#                             executions (test/fuzz/run.sh --gate all)
#
# "Set up" is scripts/setup.sh: install missing Debian packages, meson setup,
# ninja (demo, serve and bench build only their program; test builds all).
# Environment: BUILD_DIR (default: build), RELEASE_BUILD_DIR (build-release),
# ASAN_BUILD_DIR (build-asan), TSAN_BUILD_DIR (build-tsan), MESON_ARGS (extra
# `meson setup` arguments; CI adds -Dwerror=true).
# Sanitizer runs: any report fails the run (docs/testing.md).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
export BUILD_DIR=${BUILD_DIR:-build}

usage() {
  sed -n '2,31s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
  exit 2
}

setup() { bash scripts/setup.sh; }

# Prints "N passed, N failed" for the test run logged in $1 (meson's
# testlog.json), judging sanitizer reports in the directory $2 if given:
# scripts/summarize_tests.py says how. Exits 1 if anything failed.
summarize() {
  python3 scripts/summarize_tests.py "$@"
}

# run_tests [REPORT_DIR] -- [meson test ARGS]
run_tests() {
  local reports=$1
  shift 2
  if ! setup; then
    echo "build.sh: setup/build failed; no test ran" >&2
    echo "0 passed, 1 failed"
    return 1
  fi
  local log=$BUILD_DIR/meson-logs/testlog.json
  rm -f "$log"
  local rc=0
  meson test -C "$BUILD_DIR" --print-errorlogs "$@" || rc=$?
  if [[ ! -s $log ]]; then
    echo "build.sh: meson test (exit $rc) wrote no $log" >&2
    echo "0 passed, 1 failed"
    return 1
  fi
  summarize "$log" $reports || rc=1
  return "$rc"
}

# Sanitizer runs. ASan, LSan and TSan write the report of every process
# (test, forked child, exec'd worker) to its own file $reports/<tool>.<pid>
# instead of stderr, so that no report is lost in a child whose output nobody
# reads; gcc's UBSan ignores log_path and reports on stderr, which every test
# child inherits and summarize scans. Each report fails the run.
# halt_on_error: the first report ends the process.
sanitizer_env() {
  local reports=$1
  rm -rf "$reports"
  mkdir -p "$reports"
  export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:abort_on_error=0:log_path=$reports/asan${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports/ubsan${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
  # die_after_fork=0: the process suites fork children of threaded parents;
  # history_size: longer histories for the reports' second stack.
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:history_size=4:die_after_fork=0:log_path=$reports/tsan${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
}

# The suites with threads or processes, run under ThreadSanitizer.
tsan_tests=(cache_test update_test fault_test multiprocess_test fork_test crash_test snapshot_test
            compaction_test update_race_test server_test example_01_multiprocess example_09_atomic
            conformance_local_test conformance_cluster_test cluster_client_test)

cmd=${1:-}
(($# > 0)) && shift
case $cmd in
  demo)
    NINJA_TARGETS=examples/lilcache-demo setup
    exec "$BUILD_DIR/examples/lilcache-demo" "$@"
    ;;
  test)
    run_tests "" -- "$@"
    ;;
  test-release)
    export BUILD_DIR=${RELEASE_BUILD_DIR:-build-release}
    # The Python suites run in ./build.sh test (the gcc build users get;
    # test_install builds the package as pip does) and, the in-process ones,
    # under ASan (python/tests/meson.build).
    export MESON_ARGS="--buildtype=release -Dbench=disabled -Dpython=disabled ${MESON_ARGS:-}"
    export LILCACHE_TORTURE_SECONDS=${LILCACHE_TORTURE_SECONDS:-20}
    run_tests "" -- "$@"
    ;;
  test-asan)
    export BUILD_DIR=${ASAN_BUILD_DIR:-build-asan}
    # clang, -O1, line tables only: the usual level for ASan, and quick to
    # build (gcc 12 took 2.3x as long with UBSan on this code, and its
    # -Wmaybe-uninitialized misfires in Boost.Beast under the sanitizers).
    # werror off as for TSan: the gcc build enforces the warnings.
    export CXX=${ASAN_CXX:-clang++-14}
    export MESON_ARGS="-Db_sanitize=address,undefined -Db_lundef=false -Dbench=disabled -Dwerror=false -Doptimization=1 -Ddebug=false -Dcpp_args=-gline-tables-only ${MESON_ARGS:-}"
    sanitizer_env "$PWD/$BUILD_DIR/sanitizer-reports"
    # Sanitized code runs several times slower (test_util.h, slowdown()).
    export LILCACHE_SLOWDOWN=${LILCACHE_SLOWDOWN:-2}
    # The torture runs 60 s in ./build.sh test; 20 s here keeps CI's budget.
    export LILCACHE_TORTURE_SECONDS=${LILCACHE_TORTURE_SECONDS:-20}
    run_tests "$PWD/$BUILD_DIR/sanitizer-reports" -- --timeout-multiplier=3 "$@"
    ;;
  test-tsan)
    export BUILD_DIR=${TSAN_BUILD_DIR:-build-tsan}
    # clang's TSan: gcc 12's aborts a forked child that starts a thread when
    # its parent had threads ("dup thread with used id"), which the process
    # suites do. werror off: clang warns where gcc does not (the gcc build
    # enforces it).
    export CXX=${TSAN_CXX:-clang++-14}
    export MESON_ARGS="-Db_sanitize=thread -Db_lundef=false -Dbench=disabled -Dpython=disabled -Dwerror=false -Doptimization=1 -Ddebug=false -Dcpp_args=-gline-tables-only ${MESON_ARGS:-}"
    (($# > 0)) || set -- "${tsan_tests[@]}"
    # Build only what those tests need.
    targets=()
    for t in "$@"; do
      case $t in
        example_*) targets+=("examples/$t") ;;
        conformance_*) targets+=("test/conformance_test") ;;  # one program, run per backend
        -*) ;;
        *) targets+=("test/$t") ;;
      esac
    done
    export NINJA_TARGETS="${targets[*]} test/lilcache-test-worker"
    sanitizer_env "$PWD/$BUILD_DIR/sanitizer-reports"
    export LILCACHE_SLOWDOWN=${LILCACHE_SLOWDOWN:-4}
    run_tests "$PWD/$BUILD_DIR/sanitizer-reports" -- --no-rebuild --timeout-multiplier=4 "$@"
    ;;
  fuzz)
    exec bash test/fuzz/run.sh all "${1:-30}"
    ;;
  fuzz-gate)
    exec bash test/fuzz/run.sh --gate all "$@"
    ;;
  bench)
    NINJA_TARGETS=bench/lilcache-bench setup
    bench=$BUILD_DIR/bench/lilcache-bench
    if [[ ! -x $bench ]]; then
      echo "build.sh: $bench was not built (meson option 'bench'; see scripts/setup.sh)" >&2
      exit 1
    fi
    exec "$bench" "$@"
    ;;
  bench-python)
    # Configure (build.ninja: nothing else), then build only the binding
    # (every target under python/), not the tests.
    NINJA_TARGETS=build.ninja setup
    mapfile -t targets < <(ninja -C "$BUILD_DIR" -t targets all | sed -n 's#^\(python/[^:]*\): .*#\1#p')
    if ((${#targets[@]} == 0)); then
      echo "build.sh: $BUILD_DIR has no python/ targets (the binding is not built by this tree)" >&2
      exit 1
    fi
    ninja -C "$BUILD_DIR" "${targets[@]}"
    export PYTHONPATH=$PWD/$BUILD_DIR/python${PYTHONPATH:+:$PYTHONPATH}
    export LILCACHE_BUILD_ROOT=$PWD/$BUILD_DIR
    exec /usr/bin/python3 bench/python/bench.py "$@"
    ;;
  serve)
    # Only the lilcache tool and the libraries it links (not the tests).
    NINJA_TARGETS=tools/lilcache setup
    cat <<'EOF'
Serving the default cache on http://127.0.0.1:5001 (Ctrl-C stops it; see docs/rest.md).
Try, from another terminal:
  curl 'http://127.0.0.1:5001/set?key=a&value=b'        # OK
  curl 'http://127.0.0.1:5001/get?key=a'                # b
  curl -X PUT --data-binary @README.md http://127.0.0.1:5001/keys/readme
  curl 'http://127.0.0.1:5001/keys?prefix=re'           # ["readme"]
  curl http://127.0.0.1:5001/stats
  curl -X POST http://127.0.0.1:5001/purge
EOF
    exec "$BUILD_DIR/tools/lilcache" serve "$@"
    ;;
  *)
    usage
    ;;
esac
