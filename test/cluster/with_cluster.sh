#!/usr/bin/env bash
# with_cluster.sh: runs a command against a throw-away Redis Cluster on
# loopback, then tears the cluster down.
#
#   test/cluster/with_cluster.sh [--single] CMD ARGS...
#
# Starts 6 Debian redis-servers (3 masters + 3 replicas: cluster-enabled,
# cluster-node-timeout 1000 ms so that a failover takes ~1-3 s, no
# persistence) on free loopback ports (each port and port+10000, its cluster
# bus, free), in a temporary directory; creates the cluster with
# `redis-cli --cluster create ... --cluster-replicas 1`; waits until every
# node says cluster_state:ok, every node agrees on the slot map
# (`redis-cli --cluster check`) and every replica is in sync; then runs CMD
# with, in its environment:
#   LILCACHE_TEST_CLUSTER      redis-cluster://127.0.0.1:P1,...,127.0.0.1:P6
#   LILCACHE_TEST_CLUSTER_DIR  the temporary directory; its file `nodes` has
#                              one line "PORT PID" per node; node PORT's log
#                              is PORT/redis.log
#   LILCACHE_TEST_REDIS        with --single only: redis://127.0.0.1:P, one
#                              plain (non-cluster) redis-server
# and exits with CMD's status once every server it started is gone (SIGCONT,
# SIGTERM, SIGKILL after 2 s) and the directory removed, also on INT/TERM.
# Several may run at once (meson runs tests in parallel): ports are chosen
# at random and a start-up that loses a port race starts again elsewhere.
# Environment: REDIS_SERVER, REDIS_CLI (default: from PATH).
set -uo pipefail

single=0
if [[ ${1-} == --single ]]; then
  single=1
  shift
fi
if (($# == 0)); then
  echo "usage: with_cluster.sh [--single] CMD ARGS..." >&2
  exit 2
fi

redis_server=${REDIS_SERVER:-$(command -v redis-server || true)}
redis_cli=${REDIS_CLI:-$(command -v redis-cli || true)}
if [[ -z $redis_server || -z $redis_cli ]]; then
  echo "with_cluster.sh: redis-server and redis-cli are needed (Debian: redis-server, redis-tools)" >&2
  exit 2
fi

declare -A pid_of
dir=$(mktemp -d "${TMPDIR:-/tmp}/lilcache-cluster.XXXXXX") || exit 2
pids=()

cmd_pid=
cleanup() {
  local pid
  if [[ -n $cmd_pid ]]; then
    kill -TERM "$cmd_pid" 2>/dev/null
    wait "$cmd_pid" 2>/dev/null
    cmd_pid=
  fi
  for pid in "${pids[@]}"; do kill -CONT "$pid" 2>/dev/null; kill -TERM "$pid" 2>/dev/null; done
  for _ in $(seq 20); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  pids=()
}
trap 'cleanup; rm -rf "$dir"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# N free ports: each port and port+10000 can be bound on 127.0.0.1 (ports
# 10000..21999, so that the buses stay under the ephemeral range).
free_ports() {
  /usr/bin/python3 - "$1" <<'EOF'
import random, socket, sys
want, found = int(sys.argv[1]), []
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        s.close()
while len(found) < want:
    p = random.randrange(10000, 22000)
    if p not in found and free(p) and free(p + 10000):
        found.append(p)
print(" ".join(map(str, found)))
EOF
}

# Starts redis-server on $1 (cluster mode unless $2 is "plain"); records its pid.
start_server() {
  local port=$1 mode=$2
  mkdir -p "$dir/$port"
  {
    echo "port $port"
    echo "bind 127.0.0.1"
    echo "dir $dir/$port"
    echo "logfile $dir/$port/redis.log"
    echo "daemonize no"
    echo "appendonly no"
    echo 'save ""'
    echo "repl-diskless-sync-delay 0"  # replicas in sync at once (default: 5 s)
    if [[ $mode == cluster ]]; then
      echo "cluster-enabled yes"
      echo "cluster-config-file nodes.conf"
      echo "cluster-node-timeout 1000"
    fi
  } >"$dir/$port/redis.conf"
  "$redis_server" "$dir/$port/redis.conf" </dev/null >/dev/null 2>&1 &
  pids+=($!)
  pid_of[$port]=$!
  echo "$port $!" >>"$dir/nodes.tmp"
}

# Waits until the server of every port says it is ready in its own log
# (not a PING: a port taken by another program, or by another
# with_cluster.sh's server, may answer). False if one died or stays silent
# (a lost port race: the log says which).
wait_ready() {
  local port i
  for port in "$@"; do
    for i in $(seq 200); do
      grep -q 'Ready to accept connections' "$dir/$port/redis.log" 2>/dev/null && continue 2
      if ! kill -0 "${pid_of[$port]}" 2>/dev/null; then
        echo "with_cluster.sh: redis-server on port $port exited: $(tail -n 1 "$dir/$port/redis.log" 2>/dev/null)" >&2
        return 1
      fi
      sleep 0.05
    done
    echo "with_cluster.sh: redis-server on port $port not ready after 10 s" >&2
    return 1
  done
}

cluster_ready() {
  local port
  for port in "${ports[@]}"; do
    "$redis_cli" -p "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || return 1
    local info
    info=$("$redis_cli" -p "$port" info replication 2>/dev/null)
    if grep -q '^role:slave' <<<"$info"; then
      grep -q '^master_link_status:up' <<<"$info" || return 1
    fi
  done
  "$redis_cli" --cluster check "127.0.0.1:${ports[0]}" 2>/dev/null |
    grep -q 'All nodes agree about slots configuration' || return 1
  "$redis_cli" --cluster check "127.0.0.1:${ports[0]}" >/dev/null 2>&1
}

start=$(date +%s.%N)
started=0
for attempt in 1 2 3 4 5; do
  rm -f "$dir/nodes.tmp"
  count=6
  ((single)) && count=7
  read -ra ports <<<"$(free_ports "$count")"
  single_port=
  if ((single)); then
    single_port=${ports[6]}
    ports=("${ports[@]:0:6}")
  fi
  for port in "${ports[@]}"; do start_server "$port" cluster; done
  [[ -n $single_port ]] && start_server "$single_port" plain
  if wait_ready "${ports[@]}" $single_port; then
    started=1
    break
  fi
  echo "with_cluster.sh: a server did not start (port race?), attempt $attempt; again" >&2
  cleanup
  for port in "${ports[@]}" $single_port; do rm -rf "${dir:?}/$port"; done
done
if ((!started)); then
  echo "with_cluster.sh: cannot start redis-server (see the logs above)" >&2
  exit 2
fi
mv "$dir/nodes.tmp" "$dir/nodes"

hosts=()
for port in "${ports[@]}"; do hosts+=("127.0.0.1:$port"); done
if ! "$redis_cli" --cluster create "${hosts[@]}" --cluster-replicas 1 --cluster-yes \
  >"$dir/create.log" 2>&1; then
  echo "with_cluster.sh: redis-cli --cluster create failed:" >&2
  cat "$dir/create.log" >&2
  exit 2
fi
ready=0
for _ in $(seq 300); do
  if cluster_ready; then
    ready=1
    break
  fi
  sleep 0.05
done
if ((!ready)); then
  echo "with_cluster.sh: the cluster is not ready after 15 s:" >&2
  "$redis_cli" --cluster check "127.0.0.1:${ports[0]}" >&2
  exit 2
fi
elapsed=$(/usr/bin/python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" \
  "$start" "$(date +%s.%N)")

url="redis-cluster://$(IFS=,; echo "${hosts[*]}")"
export LILCACHE_TEST_CLUSTER=$url
export LILCACHE_TEST_CLUSTER_DIR=$dir
[[ -n $single_port ]] && export LILCACHE_TEST_REDIS=redis://127.0.0.1:$single_port
echo "with_cluster.sh: cluster up in ${elapsed} s: $url${single_port:+ (single: 127.0.0.1:$single_port)}" >&2

# In the background, so that INT/TERM reach the traps at once (explicit
# stdin: a background command's would be /dev/null).
"$@" <&0 &
cmd_pid=$!
wait "$cmd_pid"
status=$?
cmd_pid=
exit "$status"
