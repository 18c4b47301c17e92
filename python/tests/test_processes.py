"""lilcache.Cache across real processes: os.fork(), multiprocessing under
'fork' and 'spawn', processes and threads racing random operations, writers
SIGKILLed at random points, and memoize() under a 16-process stampede.

Every cache lives in the test's own temporary root; every child process is
reaped (or killed) before the test ends; waits are bounded (TIMEOUT), and
nothing asserts on time.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import random
import select
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from support_procs import (  # noqa: F401  (fixtures)
    PYTHON,
    TIMEOUT,
    Processes,
    check_python,
    env,
    raw_line,
    home,
    procs,
    root,
)

import lilcache


def reap(pid: int) -> int:
    """Waits (at most TIMEOUT) for the forked child `pid` and returns its
    exit status; kills it and fails the test if it still runs."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"forked child {pid} still ran after {TIMEOUT:.0f} s")
        time.sleep(0.01)


def join_all(children: list[multiprocessing.process.BaseProcess]) -> list[int | None]:
    """Joins every child (at most TIMEOUT in all), kills those still
    running, and returns their exit codes."""
    deadline = time.monotonic() + TIMEOUT
    for child in children:
        child.join(max(0.0, deadline - time.monotonic()))
    for child in children:
        if child.is_alive():
            child.kill()
            child.join()
    return [child.exitcode for child in children]


# --- os.fork() ---------------------------------------------------------------


def test_a_forked_child_uses_the_parents_cache(root: Path) -> None:
    """After os.fork() the child goes on with the Cache object the parent
    opened; both sides see each other's writes, and the parent's handle
    keeps working."""
    with lilcache.Cache("forked", root=str(root)) as cache:
        cache.set("from parent", "p")
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 1
            try:
                ok = cache.get("from parent") == "p"
                cache.set("from child", "c")
                cache.incr("counter")
                code = 0 if ok else 2
            finally:
                os._exit(code)
        cache.incr("counter")
        assert reap(pid) == 0
        assert cache.get("from child") == "c"
        assert cache.incr("counter") == 3


# The module's default cache across os.fork(), in a child Python (so that
# init() does not change the default cache of the test process).
FORK_DEFAULT = r"""
import os, sys
import lilcache
lilcache.set('from parent', 1)
pid = os.fork()
if pid == 0:
    code = 1
    try:
        ok = lilcache.get('from parent') == 1
        lilcache.set('from child', b'c')
        lilcache.incr('counter')
        code = 0 if ok else 2
    finally:
        os._exit(code)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status), repr(lilcache.get('from child')), lilcache.incr('counter'))
"""


def test_a_forked_child_uses_the_parents_default_cache(env: dict[str, str]) -> None:
    """The module-level functions work in a forked child on the default
    cache the parent opened, and the parent sees the child's writes."""
    assert check_python(FORK_DEFAULT, env) == "0 b'c' 2\n"


# --- multiprocessing ---------------------------------------------------------


def child_with_cache(cache: lilcache.Cache, index: int) -> None:
    """A multiprocessing child given a Cache: checks what the parent wrote
    and writes back through it (exits non-zero on a mismatch)."""
    if cache.get("from parent") != ("parent", 1):
        raise SystemExit(2)
    cache.set(f"from child {index}", {"index": index, "pid": os.getpid()})
    cache.incr("children")


def child_opening_cache(root: str, index: int) -> None:
    """A multiprocessing child that opens the cache itself."""
    with lilcache.Cache("mp", root=root, serializer="pickle", expires="1h") as cache:
        child_with_cache(cache, index)


@pytest.mark.parametrize("how", ["argument", "opened in child"])
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_multiprocessing_children_share_the_cache(root: Path, method: str, how: str) -> None:
    """Under multiprocessing 'fork' and 'spawn', a child given the Cache as
    an argument (pickled for spawn: reopened with the same options) or
    opening it itself reads the parent's values and writes values the
    parent reads, with the handle's options (serializer, expires) intact."""
    ctx = multiprocessing.get_context(method)
    with lilcache.Cache("mp", root=str(root), serializer="pickle", expires="1h") as cache:
        cache.set("from parent", ("parent", 1))
        if how == "argument":
            children = [ctx.Process(target=child_with_cache, args=(cache, i)) for i in range(2)]
        else:
            children = [
                ctx.Process(target=child_opening_cache, args=(str(root), i)) for i in range(2)
            ]
        for child in children:
            child.start()
        assert join_all(children) == [0, 0]
        assert cache.get("children") == 2
        for i, child in enumerate(children):
            value = cache.get(f"from child {i}")
            assert value == {"index": i, "pid": child.pid}
            # The child's handle had expires='1h': its key has a ttl.
            ttl = cache.ttl(f"from child {i}")
            assert ttl is not None and 3600 - 600 < ttl <= 3600


def test_a_pickled_cache_reopens_the_same_cache_with_the_same_options(root: Path) -> None:
    """pickle (what 'spawn' does to arguments) turns a Cache into "reopen
    this cache with these options"."""
    with lilcache.Cache("pickled", root=str(root), serializer="pickle") as cache:
        cache.set("k", [1, 2])
        with pickle.loads(pickle.dumps(cache)) as copy:
            assert copy is not cache
            assert (copy.name, copy.root, copy.serializer) == ("pickled", str(root), "pickle")
            assert copy.get("k") == [1, 2]


# --- 4 processes x 4 threads of random operations ----------------------------

PROCESSES = 4
THREADS = 4
OPS_PER_THREAD = 5000
KEYS = 40
COUNTERS = ["counter 0", "counter 1"]


def stress_value(kind: str, key: int, proc: int, thread: int, op: int) -> Any:
    """A value that names its key and, uniquely, its writer and operation."""
    if kind == "int":
        return ((key * 10 + proc) * 10 + thread) * 1_000_000 + op
    text = f"k{key}|{kind}|{proc}|{thread}|{op}|" + "x" * (op % 300)
    return text if kind == "str" else text.encode()


def stress_check(key: int, value: Any) -> tuple[str, int, int, int]:
    """Checks that `value`, read under key `key`, is intact and was written
    for that key; returns its writer (kind, process, thread, op)."""
    if isinstance(value, int):
        op = value % 1_000_000
        rest = value // 1_000_000
        thread, rest = rest % 10, rest // 10
        proc, k = rest % 10, rest // 10
        assert k == key, (key, value)
        return ("int", proc, thread, op)
    text = value if isinstance(value, str) else value.decode()
    fields = text.split("|")
    assert fields[0] == f"k{key}", (key, value)
    kind, proc, thread, op = fields[1], int(fields[2]), int(fields[3]), int(fields[4])
    assert kind == ("str" if isinstance(value, str) else "bytes"), (key, value)
    assert fields[5] == "x" * (op % 300), (key, value)
    return (kind, proc, thread, op)


def stress_process(root: str, proc: int) -> dict[str, Any]:
    """One of the PROCESSES: THREADS threads of random set/get/pop/add/
    delete/incr on one shared cache. Returns the values it popped, the
    increments it made and the errors its threads met."""
    cache = lilcache.Cache("stress", root=root)
    popped: list[list[tuple[str, int, int, int]]] = [[] for _ in range(THREADS)]
    increments: list[dict[str, int]] = [dict.fromkeys(COUNTERS, 0) for _ in range(THREADS)]
    errors: list[str] = []

    def run(thread: int) -> None:
        rng = random.Random(proc * 1000 + thread)
        try:
            for op in range(OPS_PER_THREAD):
                key = rng.randrange(KEYS)
                name = f"k{key}"
                roll = rng.random()
                if roll < 0.30:
                    kind = rng.choice(["str", "bytes", "int"])
                    assert cache.set(name, stress_value(kind, key, proc, thread, op)) is True
                elif roll < 0.55:
                    value = cache.get(name)
                    if value is not None:
                        stress_check(key, value)
                elif roll < 0.70:
                    value = cache.pop(name)
                    if value is not None:
                        popped[thread].append(stress_check(key, value))
                elif roll < 0.75:
                    cache.add(name, stress_value("str", key, proc, thread, op))
                elif roll < 0.80:
                    cache.delete(name)
                else:
                    counter = rng.choice(COUNTERS)
                    delta = rng.randint(-3, 10)
                    cache.incr(counter, delta)
                    increments[thread][counter] += delta
        except BaseException as error:  # reported to the parent
            errors.append(f"process {proc} thread {thread}: {error!r}")

    threads = [threading.Thread(target=run, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cache.close()
    totals = {c: sum(inc[c] for inc in increments) for c in COUNTERS}
    return {"popped": [v for vs in popped for v in vs], "increments": totals, "errors": errors}


def test_processes_and_threads_racing_random_operations_keep_values_intact(root: Path) -> None:
    """4 processes x 4 threads of random set/get/pop/add/delete/incr: every
    value read is the one written for its key, of its type; no value is
    popped twice overall; the counters hold the exact sum of the
    increments."""
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(PROCESSES) as pool:
        pending = pool.starmap_async(stress_process, [(str(root), p) for p in range(PROCESSES)])
        results = pending.get(TIMEOUT)
    assert [e for r in results for e in r["errors"]] == []
    popped = [v for r in results for v in r["popped"]]
    assert len(popped) > 100  # the race did race
    assert len(popped) == len(set(popped)), "a value was popped twice"
    with lilcache.Cache("stress", root=str(root)) as cache:
        for counter in COUNTERS:
            assert cache.get(counter) == sum(r["increments"][counter] for r in results)
        for name in cache.keys():
            if name not in COUNTERS:
                stress_check(int(str(name)[1:]), cache[name])


# --- racing pops and adds: exactly one winner per key ---------------------------

RACERS = 8
RACE_ROUNDS = 40
RACE_KEYS = 100  # per round


def race_child(root: str, barrier: Any, index: int, results: Any) -> None:
    """One of the RACERS: in each round, once all are ready, pops the
    round's keys of 'pop' and adds its keys of 'add', all in the same order
    (so that they contend for each key at once), and reports what it won."""
    popped: list[tuple[int, int, str]] = []
    added: list[tuple[int, int]] = []
    with lilcache.Cache("race", root=root) as cache:
        for round_ in range(RACE_ROUNDS):
            barrier.wait(TIMEOUT)
            for k in range(RACE_KEYS):
                value = cache.pop(f"pop {round_} {k}")
                if value is not None:
                    popped.append((round_, k, value))
                if cache.add(f"add {round_} {k}", index):
                    added.append((round_, k))
    results.put((index, popped, added))


def test_a_pop_hands_each_value_to_exactly_one_process(root: Path) -> None:
    """8 processes released together (40 times) pop the same keys: each
    value goes to exactly one of them (none lost, none twice); and of their
    racing add()s of absent keys exactly one per key succeeds, its value
    being the winner's."""
    every_key = [(r, k) for r in range(RACE_ROUNDS) for k in range(RACE_KEYS)]
    with lilcache.Cache("race", root=str(root)) as cache:
        for r, k in every_key:
            cache.set(f"pop {r} {k}", f"value {r} {k}")
        ctx = multiprocessing.get_context("fork")
        barrier = ctx.Barrier(RACERS)
        results = ctx.Queue()
        children = [
            ctx.Process(target=race_child, args=(str(root), barrier, i, results))
            for i in range(RACERS)
        ]
        for child in children:
            child.start()
        reports = [results.get(timeout=TIMEOUT) for _ in range(RACERS)]
        assert join_all(children) == [0] * RACERS
        popped = sorted(p for _, won, _ in reports for p in won)
        assert popped == [(r, k, f"value {r} {k}") for r, k in every_key]
        winners = {rk: index for index, _, added in reports for rk in added}
        assert sum(len(added) for _, _, added in reports) == len(every_key)
        assert sorted(winners) == every_key
        for (r, k), index in winners.items():
            assert cache.get(f"add {r} {k}") == index
        assert len(cache) == len(every_key)  # the adds; every pop key is gone


# --- a writer SIGKILLed at random points --------------------------------------

# The writer: random set/pop/incr/delete on the cache 'killed', each
# announced before ("B op key arg") and acknowledged after ("A result") on
# stdout, until it is killed. argv: round number, seed.
WRITER = r"""
import random, sys
import lilcache
round_, seed = int(sys.argv[1]), int(sys.argv[2])
rng = random.Random(seed)
cache = lilcache.Cache('killed')
big = b'B' * 200_000
for i in range(10**9):
    key = f'k{rng.randrange(30)}'
    roll = rng.random()
    if roll < 0.45:
        value = f'{key}|{round_}|{i}'
        value = value.encode() + big if rng.random() < 0.2 else value
        print('B set', key, repr(value)[:60], flush=True)
        cache.set(key, value)
        print('A', repr(value)[:60], flush=True)
    elif roll < 0.65:
        print('B pop', key, flush=True)
        print('A', repr(cache.pop(key))[:60], flush=True)
    elif roll < 0.9:
        key = f'n{rng.randrange(3)}'
        print('B incr', key, flush=True)
        print('A', cache.incr(key), flush=True)
    else:
        print('B delete', key, flush=True)
        print('A', cache.delete(key), flush=True)
"""

ABSENT = "None"


def apply_acknowledged(model: dict[str, str], lines: list[str]) -> tuple[str, str, str] | None:
    """Applies the acknowledged operations of a writer's output to `model`
    (key -> repr of the value, cut to 60 characters as the writer prints
    it) and returns the operation in flight when it died, if any, as (op,
    key, repr of the value it would store)."""
    pending: tuple[str, str, str] | None = None
    for line in lines:
        if line.startswith("B "):
            parts = line.split(" ", 3)
            pending = (parts[1], parts[2], parts[3] if len(parts) > 3 else "")
            continue
        assert line.startswith("A ") and pending is not None, line
        op, key, arg = pending
        result = line[2:]
        if op == "set":
            model[key] = arg
        elif op == "pop":
            assert result == model.get(key, ABSENT), (line, key)
            model.pop(key, None)
        elif op == "incr":
            assert int(result) == int(model.get(key, "0")) + 1, (line, key)
            model[key] = result
        elif op == "delete":
            assert result == str(key in model), (line, key)
            model.pop(key, None)
        pending = None
    return pending


def test_a_writer_killed_at_random_points_loses_only_its_operation_in_flight(
    env: dict[str, str], procs: Processes
) -> None:
    """A writer is SIGKILLed after a random number of operations, five times
    in a row on one cache: after each kill the cache reopens, and every
    acknowledged set, pop, incr and delete is there; only the operation in
    flight may have happened or not."""
    rng = random.Random(15)
    model: dict[str, str] = {}
    for round_ in range(5):
        writer = procs.start(
            [PYTHON, "-c", WRITER, str(round_), str(rng.randrange(2**32))],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert writer.stdout is not None
        target = rng.randrange(1, 400)
        lines: list[str] = []
        while sum(line.startswith("A ") for line in lines) < target:
            line = raw_line(writer).decode()
            assert line.endswith("\n"), f"writer exited {writer.poll()} after {lines[-3:]}"
            lines.append(line.rstrip("\n"))
        time.sleep(rng.random() * 0.005)
        writer.send_signal(signal.SIGKILL)
        rest = writer.stdout.read().decode()
        assert writer.wait(TIMEOUT) == -signal.SIGKILL
        # A last line cut by the kill is not an acknowledgement.
        lines += [line for line in rest.split("\n")[:-1]]
        in_flight = apply_acknowledged(model, lines)

        with lilcache.Cache("killed", root=env["LILCACHE_ROOT"]) as cache:
            seen = {
                str(key): repr(cache.get(key))[:60]
                for key in [f"k{i}" for i in range(30)] + [f"n{i}" for i in range(3)]
            }
            seen = {key: value for key, value in seen.items() if value != ABSENT}
            if in_flight is not None:
                op, key, arg = in_flight
                after = dict(model)
                if op == "set":
                    after[key] = arg
                elif op in ("pop", "delete"):
                    after.pop(key, None)
                elif op == "incr":
                    after[key] = str(int(model.get(key, "0")) + 1)
                assert seen in (model, after), (in_flight, seen, model)
                model = seen
            else:
                assert seen == model
            # The killed writer's handle is not counted as open any more.
            assert cache.stats()["processes"] == 1
            # The cache takes writes after the kill.
            assert cache.set("after kill", round_) is True
            cache.delete("after kill")


# --- memoize under a stampede --------------------------------------------------

STAMPEDE = 16


def stampede_child(root: str, barrier: Any, index: int) -> None:
    """One of the STAMPEDE processes: waits for all, then calls the
    memoized function, stores what it got, and counts its computations."""
    cache = lilcache.Cache("memo", root=root)

    @cache.memoize(name="slow")
    def slow(x: int) -> str:
        cache.incr("computations")
        with open(os.path.join(root, "computations.txt"), "a") as log:
            log.write(f"{os.getpid()}\n")
        time.sleep(0.3)  # so that the others arrive while it computes
        return f"result {x}"

    barrier.wait(TIMEOUT)
    cache.set(f"got {index}", slow(7))
    cache.close()


def test_memoize_computes_once_under_a_16_process_stampede(root: Path) -> None:
    """16 processes released together call one memoized function with the
    same argument: exactly one computes it, all 16 get its result."""
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(STAMPEDE)
    children = [
        ctx.Process(target=stampede_child, args=(str(root), barrier, i)) for i in range(STAMPEDE)
    ]
    for child in children:
        child.start()
    assert join_all(children) == [0] * STAMPEDE
    with lilcache.Cache("memo", root=str(root)) as cache:
        assert [cache.get(f"got {i}") for i in range(STAMPEDE)] == ["result 7"] * STAMPEDE
        assert cache.get("computations") == 1
    assert len((root / "computations.txt").read_text().splitlines()) == 1


# --- get_or_set when the computing process fails -------------------------------

# A process calling get_or_set('k'): its computation counts itself; the
# first one blocks until a line arrives on stdin (never, if the process is
# killed first), then raises.
COMPUTE = r"""
import sys
import lilcache
cache = lilcache.Cache('lease', root=sys.argv[1])

def compute():
    n = cache.incr('computations')
    print('computing', n, flush=True)
    if n == 1:
        sys.stdin.readline()
        raise ValueError('first computation failed')
    return f'computed by {n}'

print('calling', flush=True)
try:
    print('got', cache.get_or_set('k', compute), flush=True)
except ValueError as e:
    print('raised', e, flush=True)
"""


@pytest.mark.parametrize("failure", ["killed", "raises"])
def test_a_get_or_set_waiter_computes_when_the_computing_process_dies_or_raises(
    root: Path, env: dict[str, str], procs: Processes, failure: str
) -> None:
    """get_or_set() across processes: while one process computes, another
    waits (computes nothing); if the computing process is SIGKILLed, or its
    computation raises (the exception reaching its caller), the waiter
    computes instead and gets its own value."""

    def start() -> subprocess.Popen[bytes]:
        child = procs.start(
            [PYTHON, "-c", COMPUTE, str(root)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert child.stdout is not None
        assert raw_line(child) == b"calling\n"
        return child

    first = start()
    assert first.stdout is not None and first.stdin is not None
    assert raw_line(first) == b"computing 1\n"
    waiter = start()
    # The waiter computes nothing while the first computes (a correct one
    # never does; a wrong one most likely within this window).
    readable, _, _ = select.select([waiter.stdout], [], [], 0.3)
    assert readable == [], "the waiter computed while another process was computing"
    if failure == "killed":
        first.kill()
        assert first.wait(TIMEOUT) == -signal.SIGKILL
    else:
        out, _ = first.communicate(b"raise\n", timeout=TIMEOUT)
        assert (first.returncode, out) == (0, b"raised first computation failed\n")
    out, _ = waiter.communicate(timeout=TIMEOUT)
    assert (waiter.returncode, out) == (0, b"computing 2\ngot computed by 2\n")
    with lilcache.Cache("lease", root=str(root)) as cache:
        assert cache.get("k") == "computed by 2"
        assert cache.get("computations") == 2


# --- os.fork() while other threads are inside the engine ------------------------


def test_fork_while_other_threads_write_and_compact_gives_working_children(root: Path) -> None:
    """os.fork() while three threads of the parent are setting, getting and
    compacting (GIL released, engine locks possibly held): each of 30
    children uses the inherited Cache at once, without hanging."""
    with lilcache.Cache("fork_threads", root=str(root), snapshot="1s") as cache:
        stop = threading.Event()
        errors: list[BaseException] = []

        def hammer(thread: int) -> None:
            try:
                i = 0
                while not stop.is_set():
                    cache.set(f"k{thread}-{i % 100}", "x" * (i % 5000))
                    cache.get(f"k{thread}-{i * 7 % 100}")
                    if thread == 0 and i % 500 == 499:
                        cache.compact()
                    i += 1
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=hammer, args=(t,)) for t in range(3)]
        for thread in threads:
            thread.start()
        try:
            statuses = []
            for n in range(30):
                pid = os.fork()
                if pid == 0:  # the child: never returns into pytest
                    code = 1
                    try:
                        cache.set("child", n)
                        cache.incr("children")
                        code = 0 if cache.get("child") == n else 2
                    finally:
                        os._exit(code)
                statuses.append(reap(pid))
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert errors == []
        assert statuses == [0] * 30
        assert cache.get("children") == 30


# A process that waits in get_or_set('k') for another's computation (with a
# get_or_set_timeout of 3 s), reporting the exception that ends the wait.
WAIT_INTERRUPTED = r"""
import sys
import lilcache
cache = lilcache.Cache('lease', root=sys.argv[1], get_or_set_timeout='3s')
print('calling', flush=True)
try:
    cache.get_or_set('k', lambda: 'computed')
except BaseException as e:
    print('raised', type(e).__name__, flush=True)
"""


def process_state(pid: int) -> str:
    """The state letter of /proc/PID/stat ('R' running, 'S' sleeping...)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


def test_ctrl_c_interrupts_a_get_or_set_wait(
    root: Path, env: dict[str, str], procs: Processes
) -> None:
    """SIGINT (Ctrl-C) to a process waiting in get_or_set() for another
    process's computation raises KeyboardInterrupt in it, as it would in
    time.sleep() or Lock.acquire(), instead of holding on until
    get_or_set_timeout."""
    computer = procs.start(
        [PYTHON, "-c", COMPUTE, str(root)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert computer.stdout is not None
    assert raw_line(computer) == b"calling\n"
    assert raw_line(computer) == b"computing 1\n"  # and blocks on stdin
    waiter = procs.start(
        [PYTHON, "-c", WAIT_INTERRUPTED, str(root)], env=env, stdout=subprocess.PIPE
    )
    assert waiter.stdout is not None
    assert raw_line(waiter) == b"calling\n"
    # Into the wait: asleep, for a while (not a timing assertion: a
    # signal sent earlier only makes the test pass).
    deadline = time.monotonic() + TIMEOUT
    while process_state(waiter.pid) != "S" and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)
    waiter.send_signal(signal.SIGINT)
    out, _ = waiter.communicate(timeout=TIMEOUT)
    assert out == b"raised KeyboardInterrupt\n"
