#!/usr/bin/env bash
# rest_bench.sh: the RESTful front end against Redis, in one run.
#
#   bench/rest_bench.sh            (after building: ninja -C build tools/lilcache)
#
# Starts `lilcache serve` on a free port (fresh cache in a temp dir) and
# redis-server on a free loopback port (no persistence), preloads both with
# the same $REST_BENCH_KEYS keys ("key:" + 12 digits, redis-benchmark's
# format) of $REST_BENCH_VALUE_BYTES-byte values, then, $REST_BENCH_REPS
# times, interleaved:
#   redis-benchmark -c 50 (no pipelining) GET, then SET, of random keys (-r)
#   wrk -t2 keep-alive, 16 and 128 connections: GET /get (bench/rest_get.lua)
#     and GET /set (bench/rest_set.lua) of random existing keys
# and prints the medians: req/s, server CPU per request (from
# /proc/PID/stat), and the ratios lilcache/redis. Targets: lilcache GET >=
# 1.0x redis GET, lilcache SET >= 1.0x redis SET (reported MET or MISSED).
#
# Environment: BUILD_DIR (build), REST_BENCH_SECONDS (5, per wrk run),
# REST_BENCH_REPS (3), REST_BENCH_KEYS (100000), REST_BENCH_VALUE_BYTES (100),
# REST_BENCH_REDIS_REQUESTS (200000 per redis-benchmark run),
# REST_BENCH_WRK_THREADS (2), REST_BENCH_SERVE_ARGS (extra `lilcache serve` args).
# Every response must be 2xx (wrk's "Non-2xx" count) or the run fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
build_dir=${BUILD_DIR:-build}
seconds=${REST_BENCH_SECONDS:-5}
reps=${REST_BENCH_REPS:-3}
redis_requests=${REST_BENCH_REDIS_REQUESTS:-200000}
wrk_threads=${REST_BENCH_WRK_THREADS:-2}
export REST_BENCH_KEYS=${REST_BENCH_KEYS:-100000}
export REST_BENCH_VALUE_BYTES=${REST_BENCH_VALUE_BYTES:-100}
lilcache=$build_dir/tools/lilcache

for tool in wrk redis-server redis-benchmark redis-cli python3; do
  if ! command -v "$tool" >/dev/null; then
    echo "rest_bench: $tool not found (scripts/setup.sh installs wrk, redis-server, redis-tools)" >&2
    exit 1
  fi
done
if [[ ! -x $lilcache ]]; then
  echo "rest_bench: $lilcache not built (ninja -C $build_dir tools/lilcache)" >&2
  exit 1
fi

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

redis_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  >"$work/redis.log" 2>&1 &
redis_pid=$!
pids+=("$redis_pid")
for _ in $(seq 300); do
  [[ $(redis-cli -p "$redis_port" ping 2>/dev/null || true) == PONG ]] && break
  sleep 0.1
done

# ---- preload: the same keys and values in both, pipelined -----------------------
python3 - "$port" "$redis_port" "$REST_BENCH_KEYS" "$REST_BENCH_VALUE_BYTES" <<'PY'
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
  echo "$1 $rps $(python3 -c "print(($after - $before) * 1e6 / $clk_tck / max(1, $requests))")" \
    >>"$results"
}

run_redis() {  # name test
  local before after out rps
  before=$(cpu_ticks "$redis_pid")
  out=$(redis-benchmark -h 127.0.0.1 -p "$redis_port" -c 50 -n "$redis_requests" \
    -r "$REST_BENCH_KEYS" -d "$REST_BENCH_VALUE_BYTES" -t "$2" --csv)
  after=$(cpu_ticks "$redis_pid")
  rps=$(tail -n 1 <<<"$out" | cut -d, -f2 | tr -d '"')
  echo "$1 $rps $(python3 -c "print(($after - $before) * 1e6 / $clk_tck / $redis_requests)")" \
    >>"$results"
}

echo "rest_bench: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at start;" \
  "$REST_BENCH_KEYS keys, $REST_BENCH_VALUE_BYTES-byte values, ${seconds}s per wrk run," \
  "$reps repetitions"
for rep in $(seq "$reps"); do
  echo "rest_bench: repetition $rep of $reps"
  run_redis redis_get get
  run_wrk lilcache_get_16 rest_get.lua 16
  run_wrk lilcache_get_128 rest_get.lua 128
  run_redis redis_set set
  run_wrk lilcache_set_16 rest_set.lua 16
  run_wrk lilcache_set_128 rest_set.lua 128
done
echo "rest_bench: load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"

# ---- report ---------------------------------------------------------------------------
python3 - "$results" "$wrk_threads" <<'PY'
import statistics, sys

rows = {}
for line in open(sys.argv[1]):
    name, rps, cpu = line.split()
    rows.setdefault(name, []).append((float(rps), float(cpu)))
med = {n: (statistics.median(r for r, _ in v), statistics.median(c for _, c in v))
       for n, v in rows.items()}
t = sys.argv[2]

def line(label, name, peer):
    rps, cpu = med[name]
    ratio = f"{rps / med[peer][0]:.2f}x" if peer else ""
    print(f"| {label} | {rps:,.0f} | {cpu:.1f} | {ratio} |")

print()
print("| server, client | req/s (median) | server CPU µs/req | vs redis |")
print("|---|--:|--:|--:|")
line("redis GET, redis-benchmark -c 50", "redis_get", None)
line(f"lilcache GET /get, wrk -t{t} -c16", "lilcache_get_16", "redis_get")
line(f"lilcache GET /get, wrk -t{t} -c128", "lilcache_get_128", "redis_get")
line("redis SET, redis-benchmark -c 50", "redis_set", None)
line(f"lilcache GET /set, wrk -t{t} -c16", "lilcache_set_16", "redis_set")
line(f"lilcache GET /set, wrk -t{t} -c128", "lilcache_set_128", "redis_set")
print()
for what, peer in (("get", "redis_get"), ("set", "redis_set")):
    best = max(med[f"lilcache_{what}_16"][0], med[f"lilcache_{what}_128"][0])
    ratio = best / med[peer][0]
    print(f"target lilcache {what.upper()} >= 1.0x redis {what.upper()}: "
          f"{ratio:.2f}x (best of 16/128 connections): {'MET' if ratio >= 1.0 else 'MISSED'}")
PY
