#!/usr/bin/env bash
# Builds the libFuzzer targets (clang++-14, ASan + UBSan, in build-fuzz/) and
# runs one or all of them, in one of two modes:
#
#   test/fuzz/run.sh TARGET|all SECONDS [libFuzzer options...]
#       exploratory (`./build.sh fuzz 600`): random seeds, for SECONDS each,
#       starting from the checked-in seeds (test/fuzz/corpus/TARGET) plus what
#       earlier runs found (build-fuzz/corpus/TARGET, where new inputs go; the
#       source tree is never written). Not a gate: a finding is fixed and its
#       input added to test/fuzz/corpus/TARGET (docs/testing.md).
#   test/fuzz/run.sh --gate TARGET|all [libFuzzer options...]
#       deterministic (CI's gate): the checked-in corpus only, libFuzzer's
#       -seed fixed (FUZZ_SEED, default 1) and a fixed number of executions
#       per target (gate_runs below, about 15 s each on the 2-vCPU VM; times
#       FUZZ_GATE_SCALE, default 1); new inputs go to a scratch directory.
#       The same tree gives the same inputs, so a gate failure is the
#       change's, not the dice's.
#
# TARGET: fuzz_record, fuzz_recovery, fuzz_index, fuzz_parsers, fuzz_http.
# A crash, hang (-timeout, 10 s), leak, sanitizer report or
# failed property check stops the run and leaves the input in
# build-fuzz/artifacts/TARGET/ (reproduce: build-fuzz/test/fuzz/TARGET FILE).
# Prints one line per target (executions, coverage, features, corpus size)
# and ends with "N passed, N failed" (one per target). Exit 1 on a finding.
#
# Environment: FUZZ_BUILD_DIR (default build-fuzz), FUZZ_JOBS (default 1:
# runs of `all` in parallel), CXX (default clang++-14).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
targets_all=(fuzz_record fuzz_recovery fuzz_index fuzz_parsers fuzz_http)
usage() {
  sed -n '2,30s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
  exit 2
}
gate=false
if [[ ${1:-} == --gate ]]; then
  gate=true
  shift
  (($# >= 1)) || usage
  which=$1
  seconds=
  shift
else
  (($# >= 2)) || usage
  which=$1
  seconds=$2
  shift 2
fi
if [[ $which == all ]]; then
  targets=("${targets_all[@]}")
else
  targets=("$which")
fi
build=${FUZZ_BUILD_DIR:-build-fuzz}
export CXX=${CXX:-clang++-14}

if [[ ! -f $build/meson-private/coredata.dat ]]; then
  # -O1 and line tables only, as the ASan build: quick to build, and as fast
  # to fuzz within a few percent.
  meson setup "$build" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
    -Dbench=disabled -Dpython=disabled -Dwerror=false -Doptimization=1 -Ddebug=false \
    -Dcpp_args=-gline-tables-only >/dev/null
fi
ninja -C "$build" "${targets[@]/#/test/fuzz/}" >/dev/null

# halt_on_error: every UBSan report is a crash that libFuzzer records.
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
# The targets create caches in $TMPDIR: tmpfs if there is one.
if [[ -z ${TMPDIR:-} && -d /dev/shm && -w /dev/shm ]]; then
  export TMPDIR=/dev/shm
fi

max_len() {
  case $1 in
    fuzz_index) echo 20000 ;;      # a 1,024-slot index is 8 KiB of slots
    fuzz_http) echo 16384 ;;
    fuzz_recovery) echo 16384 ;;
    *) echo 4096 ;;
  esac
}

# The gate runs the targets with address-space randomization off (setarch -R),
# where the kernel allows it: coverage that depends on addresses (hashing of
# pointers, the allocator) then repeats too, and with it the inputs libFuzzer
# derives from the seed.
fixed_addresses=()
if $gate && setarch "$(uname -m)" -R true 2>/dev/null; then
  fixed_addresses=(setarch "$(uname -m)" -R)
fi

# Executions of each target in the gate: about 15 s each on the 2-vCPU VM
# (measured 2026-12-07; docs/testing.md).
gate_runs() {
  local n
  case $1 in
    fuzz_recovery) n=8000 ;;
    fuzz_index) n=6000 ;;
    fuzz_http) n=150000 ;;
    fuzz_record) n=800000 ;;
    *) n=300000 ;;
  esac
  echo $((n * ${FUZZ_GATE_SCALE:-1}))
}

run_one() {
  local t=$1 log=$build/fuzz-logs/$1.log
  shift
  mkdir -p "$build/corpus/$t" "$build/artifacts/$t" "$build/fuzz-logs"
  local rc=0 mode corpus
  if $gate; then
    # A fresh scratch corpus each time: only checked-in inputs are read.
    corpus=$build/gate-corpus/$t
    rm -rf "$corpus"
    mkdir -p "$corpus"
    # -reload=0: no time-driven rereading of the corpus directories.
    mode=(-seed="${FUZZ_SEED:-1}" -runs="$(gate_runs "$t")" -reload=0)
  else
    corpus=$build/corpus/$t
    mode=(-max_total_time="$seconds")
  fi
  local start=$SECONDS
  "${fixed_addresses[@]}" "$build/test/fuzz/$t" "${mode[@]}" -timeout=10 -rss_limit_mb=2048 \
    -max_len="$(max_len "$t")" -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$t/" "$@" \
    "$corpus" "test/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  local took=$((SECONDS - start))
  local execs cov ft corp
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  corp=$(grep -o 'corp: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  if ((rc == 0)); then
    echo "$t: ok: ${execs:-?} executions in ${took}s$($gate && echo " (seed ${FUZZ_SEED:-1})"), cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?} ($log)"
  else
    echo "$t: FAILED (exit $rc) after ${execs:-?} executions; log $log, input in $build/artifacts/$t/"
    grep -E -A40 'ERROR: |FUZZ FINDING|runtime error|Timeout|deadly signal' "$log" | head -60 >&2 || true
  fi
  return "$rc"
}

passed=0
failed=0
jobs=${FUZZ_JOBS:-1}
if ((jobs > 1 && ${#targets[@]} > 1)); then
  mkdir -p "$build/fuzz-logs"
  for t in "${targets[@]}"; do
    while (($(jobs -rp | wc -l) >= jobs)); do wait -n || true; done
    rm -f "$build/fuzz-logs/$t.rc"
    (
      rc=0
      run_one "$t" "$@" >"$build/fuzz-logs/$t.summary" 2>&1 || rc=$?
      echo "$rc" >"$build/fuzz-logs/$t.rc"
    ) &
  done
  wait
  for t in "${targets[@]}"; do
    cat "$build/fuzz-logs/$t.summary"
    if [[ $(cat "$build/fuzz-logs/$t.rc" 2>/dev/null) == 0 ]]; then ((++passed)); else ((++failed)); fi
  done
else
  for t in "${targets[@]}"; do
    if run_one "$t" "$@"; then ((++passed)); else ((++failed)); fi
  done
fi
echo "$passed passed, $failed failed"
((failed == 0))
