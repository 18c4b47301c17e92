#!/usr/bin/env bash
# rest_bench.sh: the RESTful front end against Redis, in one run.
#
#   ninja -C build-rel tools/lilcache bench/lilcache-rest-load
#   BUILD_DIR=build-rel bench/rest_bench.sh
#
# Starts `lilcache serve` on a free port (fresh cache in a temp dir) and
# redis-server on a free loopback port (no persistence), preloads both with
# the same $REST_BENCH_KEYS keys ("key:" + 12 digits, redis-benchmark's
# format) of $REST_BENCH_VALUE_BYTES-byte values, then, $REST_BENCH_REPS
# times, interleaved, drives both with the SAME client at the same
# concurrency: bench/rest_load.cc (lilcache-rest-load: one thread, epoll,
# $REST_BENCH_CONNECTIONS keep-alive connections, one request in flight on
# each, as redis-benchmark), $REST_BENCH_SECONDS per run:
#   GET of random keys: redis GET K, lilcache GET /get?key=K
#   SET of random keys: redis SET K V, lilcache GET /set?key=K&value=V
# and prints the medians: req/s, server CPU per request (utime + stime from
# /proc/PID/stat over the run, divided by the requests the client counted),
# and the ratios lilcache/redis. Targets (issue 16, target 5), each printed
# MET or MISSED: for GET and for SET, lilcache req/s >= 1.0x Redis's and
# lilcache's server CPU per request <= Redis's.
#
# REST_BENCH_CROSS_CHECK=1 adds, in each repetition, rows from the tools of
# each protocol (redis-benchmark -c 50 against Redis, wrk -t2 against
# lilcache with bench/rest_get.lua and rest_set.lua): other clients, other
# costs on the shared cores, so their ratios are for reference only.
#
# Environment: BUILD_DIR (build), REST_BENCH_SECONDS (5, per run),
# REST_BENCH_REPS (3), REST_BENCH_CONNECTIONS (50), REST_BENCH_KEYS (100000),
# REST_BENCH_VALUE_BYTES (100), REST_BENCH_CROSS_CHECK (0),
# REST_BENCH_REDIS_REQUESTS (200000 per redis-benchmark run),
# REST_BENCH_WRK_THREADS (2), REST_BENCH_SERVE_ARGS (extra `lilcache serve` args).
# Every answer must be a success (2xx; for Redis no error and no miss) or the
# run fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
build_dir=${BUILD_DIR:-build}
seconds=${REST_BENCH_SECONDS:-5}
reps=${REST_BENCH_REPS:-3}
redis_requests=${REST_BENCH_REDIS_REQUESTS:-200000}
wrk_threads=${REST_BENCH_WRK_THREADS:-2}
connections=${REST_BENCH_CONNECTIONS:-50}
cross_check=${REST_BENCH_CROSS_CHECK:-0}
python=/usr/bin/python3   # Debian's, whatever python3 comes first on PATH
export REST_BENCH_KEYS=${REST_BENCH_KEYS:-100000}
export REST_BENCH_VALUE_BYTES=${REST_BENCH_VALUE_BYTES:-100}
lilcache=$build_dir/tools/lilcache
load=$build_dir/bench/lilcache-rest-load

for tool in wrk redis-server redis-benchmark redis-cli /usr/bin/python3; do
  if ! command -v "$tool" >/dev/null; then
    echo "rest_bench: $tool not found (scripts/setup.sh installs wrk, redis-server, redis-tools)" >&2
    exit 1
  fi
done
for built in "$lilcache" "$load"; do
  if [[ ! -x $built ]]; then
    echo "rest_bench: $built not built (ninja -C $build_dir tools/lilcache bench/lilcache-rest-load)" >&2
    exit 1
  fi
done

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

clk_tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# ---- servers ----------------------------------------------------------------------
# shellcheck disable=SC2086
"$lilcache" serve --root "$work/root" --port 0 --loglevel warn ${REST_BENCH_SERVE_ARGS:-} \
  >"$work/serve.out" 2>"$work/serve.err" &
lilcache_pid=$!
pids+=("$lilcache_pid")
port=
for _ in $(seq 300); do
  port=$(sed -n 's|.* on http://127\.0\.0\.1:\([0-9]*\)$|\1|p' "$work/serve.out")
  [[ -n $port ]] && break
  kill -0 "$lilcache_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ -z $port ]]; then
  echo "rest_bench: lilcache serve did not start:" >&2
  cat "$work/serve.err" >&2
  exit 1
fi

redis_port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  >"$work/redis.log" 2>&1 &
redis_pid=$!
pids+=("$redis_pid")
for _ in $(seq 300); do
  [[ $(redis-cli -p "$redis_port" ping 2>/dev/null || true) == PONG ]] && break
  sleep 0.1
done

# ---- preload: the same keys and values in both, pipelined -----------------------
"$python" - "$port" "$redis_port" "$REST_BENCH_KEYS" "$REST_BENCH_VALUE_BYTES" <<'PY'
import socket, sys

port, redis_port, keys, value_bytes = map(int, sys.argv[1:])
value = "x" * value_bytes

def pipeline(port, requests, answer, count):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall("".join(requests).encode())
    data = b""
    while data.count(answer) < count:
        chunk = s.recv(1 << 20)
        if not chunk:
            sys.exit(f"preload: connection to port {port} closed early")
        data += chunk
    s.close()

for start in range(0, keys, 2000):
    batch = [f"key:{i:012d}" for i in range(start, min(keys, start + 2000))]
    pipeline(port, [f"GET /set?key={k}&value={value} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" for k in batch],
             b"HTTP/1.1 200 OK\r\n", len(batch))
    pipeline(redis_port,
             [f"*3\r\n$3\r\nSET\r\n${len(k)}\r\n{k}\r\n${len(value)}\r\n{value}\r\n" for k in batch],
             b"+OK\r\n", len(batch))
PY

# ---- runs ---------------------------------------------------------------------------
results=$work/results   # lines: name rps cpu_us_per_request
: >"$results"

# cpu_per_request PID TICKS_BEFORE TICKS_AFTER REQUESTS
cpu_per_request() {
  "$python" -c "print(($3 - $2) * 1e6 / $clk_tck / max(1, $4))"
}

run_load() {  # name protocol port pid op
  local before after out
  before=$(cpu_ticks "$4")
  if ! out=$("$load" --protocol "$2" --port "$3" --op "$5" --connections "$connections" \
    --seconds "$seconds" --keys "$REST_BENCH_KEYS" --value-bytes "$REST_BENCH_VALUE_BYTES"); then
    echo "rest_bench: $1: some answers were not successes: $out" >&2
    exit 1
  fi
  after=$(cpu_ticks "$4")
  # requests N seconds S rps R errors E
  read -r _ requests _ _ _ rps _ _ <<<"$out"
  echo "$1 $rps $(cpu_per_request "$4" "$before" "$after" "$requests")" >>"$results"
}

run_wrk() {  # name script connections
  local before after out rps requests
  before=$(cpu_ticks "$lilcache_pid")
  out=$(wrk -t"$wrk_threads" -c"$3" -d"${seconds}s" -s "bench/$2" "http://127.0.0.1:$port")
  after=$(cpu_ticks "$lilcache_pid")
  if grep -q "Non-2xx" <<<"$out"; then
    echo "rest_bench: $1: some responses were not 2xx:" >&2
    echo "$out" >&2
    exit 1
  fi
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  echo "$1 $rps $(cpu_per_request "$lilcache_pid" "$before" "$after" "$requests")" >>"$results"
}

run_redis_benchmark() {  # name test
  local before after out rps
  before=$(cpu_ticks "$redis_pid")
  out=$(redis-benchmark -h 127.0.0.1 -p "$redis_port" -c 50 -n "$redis_requests" \
    -r "$REST_BENCH_KEYS" -d "$REST_BENCH_VALUE_BYTES" -t "$2" --csv)
  after=$(cpu_ticks "$redis_pid")
  rps=$(tail -n 1 <<<"$out" | cut -d, -f2 | tr -d '"')
  echo "$1 $rps $(cpu_per_request "$redis_pid" "$before" "$after" "$redis_requests")" \
    >>"$results"
}

echo "rest_bench: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at start;" \
  "$REST_BENCH_KEYS keys, $REST_BENCH_VALUE_BYTES-byte values, ${seconds}s per run," \
  "$connections connections, $reps repetitions"
for rep in $(seq "$reps"); do
  echo "rest_bench: repetition $rep of $reps"
  for op in get set; do
    run_load "redis_$op" resp "$redis_port" "$redis_pid" "$op"
    run_load "lilcache_$op" http "$port" "$lilcache_pid" "$op"
    if [[ $cross_check == 1 ]]; then
      run_redis_benchmark "redis_benchmark_$op" "$op"
      run_wrk "wrk_$op" "rest_$op.lua" "$connections"
    fi
  done
done
echo "rest_bench: load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"

# ---- report ---------------------------------------------------------------------------
"$python" - "$results" "$connections" "$wrk_threads" <<'PY'
import statistics, sys

rows = {}
for line in open(sys.argv[1]):
    name, rps, cpu = line.split()
    rows.setdefault(name, []).append((float(rps), float(cpu)))
med = {n: (statistics.median(r for r, _ in v), statistics.median(c for _, c in v))
       for n, v in rows.items()}
c, t = sys.argv[2], sys.argv[3]

def line(label, name, peer):
    if name not in med:
        return
    rps, cpu = med[name]
    ratio = f"{rps / med[peer][0]:.2f}x" if peer else ""
    cpu_ratio = f"{cpu / med[peer][1]:.2f}x" if peer else ""
    cpus = [c for _, c in rows[name]]
    print(f"| {label} | {rps:,.0f} | {ratio} | {cpu:.2f} ({min(cpus):.2f}-{max(cpus):.2f}) "
          f"| {cpu_ratio} |")

print()
print("| server, request, client | req/s (median) | vs redis | server CPU µs/req (median, range) "
      "| vs redis |")
print("|---|--:|--:|--:|--:|")
load = f"lilcache-rest-load -c {c}"
line(f"redis GET, {load}", "redis_get", None)
line(f"lilcache GET /get, {load}", "lilcache_get", "redis_get")
line(f"redis SET, {load}", "redis_set", None)
line(f"lilcache GET /set, {load}", "lilcache_set", "redis_set")
if "wrk_get" in med:
    print()
    print("Cross-check, other clients (not the targets):")
    print()
    print("| server, request, client | req/s (median) | vs redis | server CPU µs/req (median, range) "
      "| vs redis |")
    print("|---|--:|--:|--:|--:|")
    line("redis GET, redis-benchmark -c 50", "redis_benchmark_get", None)
    line(f"lilcache GET /get, wrk -t{t} -c{c}", "wrk_get", "redis_benchmark_get")
    line("redis SET, redis-benchmark -c 50", "redis_benchmark_set", None)
    line(f"lilcache GET /set, wrk -t{t} -c{c}", "wrk_set", "redis_benchmark_set")
print()
for what in ("get", "set"):
    (rps, cpu), (redis_rps, redis_cpu) = med[f"lilcache_{what}"], med[f"redis_{what}"]
    ratio = rps / redis_rps
    W = what.upper()
    print(f"target lilcache {W} req/s >= 1.0x redis {W}: {ratio:.2f}x: "
          f"{'MET' if ratio >= 1.0 else 'MISSED'}")
    print(f"target lilcache {W} server CPU/request <= redis {W}'s: {cpu:.2f} vs {redis_cpu:.2f} µs: "
          f"{'MET' if cpu <= redis_cpu else 'MISSED'}")
PY
