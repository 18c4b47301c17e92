#!/usr/bin/env bash
# cluster_bench.sh: lilcache on a Redis Cluster (issue 18), in one run, on a
# cluster of its own: 3 masters + 3 replicas of redis-server on loopback,
# started and torn down by test/cluster/with_cluster.sh (this script re-runs
# itself under it unless $LILCACHE_TEST_CLUSTER already names a cluster).
#
#   ninja -C build tools/lilcache bench/lilcache-cluster-bench
#   BUILD_DIR=build bench/cluster_bench.sh
#
# (a) lilcache-cluster-bench: the bench workload (random sets and gets, a
#     90/10 mix in several processes) through lilcache::Cache with
#     backend=redis-cluster://... against hiredis-direct (a client with its
#     own slot routing doing plain GET/SET) on the same cluster: ns/op and
#     the ratio (target <= 1.1x).
# (b) redis-benchmark --cluster -p PORT -t set,get -n $CLUSTER_BENCH_REQUESTS -q:
#     the cluster itself, Redis's own client.
# (c) `lilcache serve --backend URL` x2 on two ports under wrk
#     (bench/rest_get.lua, rest_set.lua; -t$CLUSTER_BENCH_WRK_THREADS
#     -c$CLUSTER_BENCH_CONNECTIONS, $CLUSTER_BENCH_SECONDS s per run): one
#     server alone, then both at once (one wrk each, req/s summed), beside one
#     `lilcache serve` on the local engine; every answer must be 2xx.
# Then one table with the ratios.
#
# Environment: BUILD_DIR (build), CLUSTER_BENCH_ARGS (extra arguments of
# lilcache-cluster-bench, e.g. "--reps 3 --keys 10000"),
# CLUSTER_BENCH_REQUESTS (100000), CLUSTER_BENCH_SECONDS (5),
# CLUSTER_BENCH_WRK_THREADS (2), CLUSTER_BENCH_CONNECTIONS (16),
# REST_BENCH_KEYS (10000 keys preloaded for wrk), REST_BENCH_VALUE_BYTES (100).
set -euo pipefail

script=$(realpath "${BASH_SOURCE[0]}")
cd "$(dirname "$script")/.."
if [[ -z ${LILCACHE_TEST_CLUSTER:-} ]]; then
  if [[ ! -x test/cluster/with_cluster.sh ]]; then
    echo "cluster_bench: test/cluster/with_cluster.sh not found" >&2
    exit 1
  fi
  exec test/cluster/with_cluster.sh "$script" "$@"
fi

build_dir=${BUILD_DIR:-build}
url=$LILCACHE_TEST_CLUSTER
requests=${CLUSTER_BENCH_REQUESTS:-100000}
seconds=${CLUSTER_BENCH_SECONDS:-5}
wrk_threads=${CLUSTER_BENCH_WRK_THREADS:-2}
connections=${CLUSTER_BENCH_CONNECTIONS:-16}
python=/usr/bin/python3   # Debian's, whatever python3 comes first on PATH
export REST_BENCH_KEYS=${REST_BENCH_KEYS:-10000}
export REST_BENCH_VALUE_BYTES=${REST_BENCH_VALUE_BYTES:-100}
lilcache=$build_dir/tools/lilcache
bench=$build_dir/bench/lilcache-cluster-bench

for tool in wrk redis-benchmark curl "$python"; do
  if ! command -v "$tool" >/dev/null; then
    echo "cluster_bench: $tool not found (scripts/setup.sh installs wrk and redis-tools)" >&2
    exit 1
  fi
done
for built in "$lilcache" "$bench"; do
  if [[ ! -x $built ]]; then
    echo "cluster_bench: $built not built (ninja -C $build_dir tools/lilcache" \
      "bench/lilcache-cluster-bench)" >&2
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

# The first seed's port: redis-benchmark --cluster starts from it.
hosts=${url#redis-cluster://}
hosts=${hosts##*@}
hosts=${hosts%%\?*}
first=${hosts%%,*}
first_port=${first##*:}

results=$work/results   # lines: name value
: >"$results"
echo "cluster_bench: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at start;" \
  "cluster $url"

# ---- (a) the bench workload: lilcache backend vs hiredis-direct ---------------------
echo
echo "## (a) lilcache-cluster-bench ${CLUSTER_BENCH_ARGS:-}"
# shellcheck disable=SC2086
"$bench" --cluster "$url" ${CLUSTER_BENCH_ARGS:-} | tee "$work/bench.out"

# ---- (b) redis-benchmark --cluster ---------------------------------------------------
echo
echo "## (b) redis-benchmark --cluster -p $first_port -t set,get -n $requests -q"
redis-benchmark --cluster -h 127.0.0.1 -p "$first_port" -t set,get -n "$requests" -q \
  | tr '\r' '\n' | grep -E '^(SET|GET): [0-9.]+ requests per second' | tee "$work/rb.out"
awk '/^SET:/ {print "rb_set", $2} /^GET:/ {print "rb_get", $2}' "$work/rb.out" >>"$results"

# ---- (c) lilcache serve --backend URL x2 under wrk -----------------------------------
start_serve() {  # name args...: starts lilcache serve, sets $port
  local name=$1
  shift
  "$lilcache" serve --port 0 --loglevel warn "$@" >"$work/$name.out" 2>"$work/$name.err" &
  local pid=$!
  pids+=("$pid")
  port=
  for _ in $(seq 300); do
    port=$(sed -n 's|.* on http://127\.0\.0\.1:\([0-9]*\)$|\1|p' "$work/$name.out")
    [[ -n $port ]] && return
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "cluster_bench: lilcache serve ($name) did not start:" >&2
  cat "$work/$name.err" >&2
  exit 1
}

name="rest_bench_$$"
start_serve local --root "$work/local" --name "$name"
port_local=$port
start_serve a --root "$work/a" --name "$name" --backend "$url"
port_a=$port
start_serve b --root "$work/b" --name "$name" --backend "$url"
port_b=$port

# Preload the same keys through the local server and server a (pipelined).
"$python" - "$port_local" "$port_a" "$REST_BENCH_KEYS" "$REST_BENCH_VALUE_BYTES" <<'PY'
import socket, sys

ports, keys, value_bytes = sys.argv[1:3], int(sys.argv[3]), int(sys.argv[4])
value = "x" * value_bytes
for port in map(int, ports):
    for start in range(0, keys, 1000):
        batch = [f"key:{i:012d}" for i in range(start, min(keys, start + 1000))]
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall("".join(f"GET /set?key={k}&value={value} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                          for k in batch).encode())
        data = b""
        while data.count(b"HTTP/1.1 200 OK\r\n") < len(batch):
            chunk = s.recv(1 << 20)
            if not chunk:
                sys.exit(f"preload: connection to port {port} closed early")
            data += chunk
        s.close()
PY

run_wrk() {  # script port output
  wrk -t"$wrk_threads" -c"$connections" -d"${seconds}s" -s "bench/$1" "http://127.0.0.1:$2" >"$3"
  if grep -q "Non-2xx\|Socket errors" "$3"; then
    echo "cluster_bench: some responses to $1 on port $2 were not 2xx:" >&2
    cat "$3" >&2
    exit 1
  fi
}
rps() { awk '/^Requests\/sec:/ {print $2}' "$1"; }

echo
echo "## (c) wrk -t$wrk_threads -c$connections -d${seconds}s on lilcache serve"
for op in get set; do
  run_wrk "rest_$op.lua" "$port_local" "$work/wrk_local"
  echo "local_$op $(rps "$work/wrk_local")" >>"$results"
  run_wrk "rest_$op.lua" "$port_a" "$work/wrk_one"
  echo "one_$op $(rps "$work/wrk_one")" >>"$results"
  run_wrk "rest_$op.lua" "$port_a" "$work/wrk_a" &
  wrk_a=$!
  run_wrk "rest_$op.lua" "$port_b" "$work/wrk_b"
  wait "$wrk_a"
  echo "two_$op $(rps "$work/wrk_a") $(rps "$work/wrk_b")" >>"$results"
done
# A value set through one front end is read through the other.
curl -sS --max-time 10 "http://127.0.0.1:$port_a/set?key=check&value=through-a" >/dev/null
got=$(curl -sS --max-time 10 "http://127.0.0.1:$port_b/get?key=check")
if [[ $got != through-a ]]; then
  echo "cluster_bench: server b read '$got', not what server a set" >&2
  exit 1
fi
echo "cluster_bench: load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"

# ---- report ---------------------------------------------------------------------------
"$python" - "$results" <<'PY'
import sys

rows = {}
for line in open(sys.argv[1]):
    name, *values = line.split()
    rows[name] = [float(v) for v in values]
one = lambda n: rows[n][0]
print()
print("| HTTP front end (wrk) | GET req/s | SET req/s | GET vs local | SET vs local |")
print("|---|--:|--:|--:|--:|")
for label, key in (("lilcache serve, local engine", "local"),
                   ("lilcache serve --backend cluster, one server", "one"),
                   ("lilcache serve --backend cluster x2 (sum of both)", "two")):
    g, s = sum(rows[f"{key}_get"]), sum(rows[f"{key}_set"])
    print(f"| {label} | {g:.0f} | {s:.0f} | {g / one('local_get'):.2f}x | "
          f"{s / one('local_set'):.2f}x |")
two_get, two_set = sum(rows["two_get"]), sum(rows["two_set"])
print(f"| two servers / one server | | | {two_get / one('one_get'):.2f}x | "
      f"{two_set / one('one_set'):.2f}x |")
if "rb_get" in rows:
    print()
    print("| redis-benchmark --cluster (Redis's client, no HTTP) | GET req/s | SET req/s |")
    print("|---|--:|--:|")
    print(f"| 50 clients | {one('rb_get'):.0f} | {one('rb_set'):.0f} |")
    print(f"| lilcache serve x2 / redis-benchmark | {two_get / one('rb_get'):.2f}x | "
          f"{two_set / one('rb_set'):.2f}x |")
PY
