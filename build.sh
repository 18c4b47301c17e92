#!/usr/bin/env bash
# lilcache build entry point.
#
#   ./build.sh demo  [ARGS]   set up, build, run tools/lilcache-demo (seed requirement 1)
#   ./build.sh test  [ARGS]   set up, build, run every test (ARGS go to `meson test`);
#                             the last line is "N passed, N failed"
#   ./build.sh bench [ARGS]   set up, build, run bench/lilcache-bench
#   ./build.sh serve [ARGS]   set up, build, serve the default cache over HTTP on
#                             127.0.0.1:5001 until Ctrl-C (`lilcache serve ARGS`,
#                             docs/rest.md); prints curl lines to try first
#
# "Set up" is scripts/setup.sh: install missing Debian packages, meson setup, ninja.
# Environment: BUILD_DIR (default: build), MESON_ARGS (extra `meson setup` arguments).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
export BUILD_DIR=${BUILD_DIR:-build}

usage() {
  sed -n '2,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
  exit 2
}

setup() { bash scripts/setup.sh; }

# Prints "N passed, N failed" for the test run logged in $1 (meson's testlog.json:
# one JSON object per test with its result and stdout). Each doctest executable
# counts its test cases, from its "[doctest] test cases: X | Y passed | Z failed"
# line(s); an executable that crashed or timed out after reporting no failure
# adds 1 failed; a test that prints no doctest summary (the examples) counts as
# 1 passed or 1 failed by its meson result. Skipped tests count as neither.
# Exits 1 if anything failed.
summarize() {
  python3 - "$1" <<'PY'
import json, re, sys

summary = re.compile(r"\[doctest\] test cases:\s*\d+\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed")
ansi = re.compile(r"\x1b\[[0-9;]*m")
passed = failed = 0
with open(sys.argv[1], encoding="utf-8", errors="replace") as log:
    for line in log:
        if not line.strip():
            continue
        test = json.loads(line)
        result = test.get("result", "ERROR")
        if result == "SKIP":
            continue
        ok = result in ("OK", "EXPECTEDFAIL")
        out = ansi.sub("", (test.get("stdout") or "") + "\n" + (test.get("stderr") or ""))
        counts = summary.findall(out)
        if counts:
            p = sum(int(c[0]) for c in counts)
            f = sum(int(c[1]) for c in counts)
            if not ok and f == 0:
                f = 1  # crashed, timed out or failed after its summary
        else:
            p, f = (1, 0) if ok else (0, 1)
        if not ok:
            print(f"{test.get('name', '?')}: {result}", file=sys.stderr)
        passed += p
        failed += f
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
}

run_tests() {
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
  summarize "$log" || rc=1
  return "$rc"
}

cmd=${1:-}
(($# > 0)) && shift
case $cmd in
  demo)
    setup
    exec "$BUILD_DIR/tools/lilcache-demo" "$@"
    ;;
  test)
    run_tests "$@"
    ;;
  bench)
    setup
    bench=$BUILD_DIR/bench/lilcache-bench
    if [[ ! -x $bench ]]; then
      echo "build.sh: $bench was not built (meson option 'bench'; see scripts/setup.sh)" >&2
      exit 1
    fi
    exec "$bench" "$@"
    ;;
  serve)
    setup
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
