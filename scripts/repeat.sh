#!/usr/bin/env bash
# Runs one test (a doctest executable and a test-case filter) N times and
# keeps the output of every failing run; for rare failures such as the
# SIGKILL torture's (docs/testing.md, "Findings").
#
#   scripts/repeat.sh N TEST [FILTER]
#   scripts/repeat.sh 30 crash_test 'SIGKILL torture*'
#
# TEST is a name under $BUILD_DIR/test (default build/); the failing outputs
# go to $OUT (default /tmp/lilcache-repeat) as fail.<run>.txt. Prints one line
# per run and ends with "N runs, N failed"; exits 1 if any run failed.
set -uo pipefail

if [[ $# -lt 2 ]]; then
  sed -n '2,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
  exit 2
fi
runs=$1
test=$2
filter=${3:-*}
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=$(realpath "${BUILD_DIR:-build}")
out=${OUT:-/tmp/lilcache-repeat}
mkdir -p "$out"
export LILCACHE_TEST_WORKER=$build/test/lilcache-test-worker
failed=0
for ((i = 1; i <= runs; i++)); do
  log=$out/run.$i.txt
  if timeout 600 "$build/test/$test" -tc="$filter" >"$log" 2>&1; then
    echo "run $i: ok"
    rm -f "$log"
  else
    failed=$((failed + 1))
    mv "$log" "$out/fail.$i.txt"
    echo "run $i: FAILED ($out/fail.$i.txt)"
  fi
done
echo "$runs runs, $failed failed"
[[ $failed -eq 0 ]]
