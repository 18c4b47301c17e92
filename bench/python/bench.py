#!/usr/bin/python3
"""lilcache from Python against its Python peers, in one run (issue 15).

Stores: lilcache (the binding, ``lilcache.Cache``), python3-diskcache,
python3-lmdb (sync off, writemap, one transaction per operation), redis-py
talking to a redis-server this script starts on a Unix socket (no
persistence), and a plain dict as the floor.

Workload: 100,000 keys of 16 hex bytes, 100 B values (bytes), a plain
Python loop over 200,000 random operations per measurement:

- set: overwrites of existing keys (sustained: enough writes that lilcache
  compacts during the timed part; the compactions are counted);
- get: gets of existing (preloaded) keys;
- mix: 90 % get / 10 % set in 1 and in 4 processes, each process with its
  own handle, started together; aggregate ops/s.

Every measurement is repeated (5 times by default, interleaved across
stores) and the medians are reported: µs/op, ops/s, the ratios lilcache /
peer, a PASS/FAIL line per target of the issue, and where a lilcache call's
time goes (loop, Python call, binding, engine). Values read back are checked
outside the timed loops; a wrong value or a store error makes the exit
status 1 (a missed target does not).

    /usr/bin/python3 bench/python/bench.py [--quick] [--peers LIST] [--json OUT]

(``./build.sh bench-python`` builds the binding and runs this with
PYTHONPATH=build/python.)
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import importlib
import json
import multiprocessing
import os
import queue
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

Getter = Callable[[bytes], Any]
Setter = Callable[[bytes, bytes], Any]

ALL_STORES = ("lilcache", "diskcache", "lmdb", "redis", "dict")
LABELS = {
    "lilcache": "lilcache",
    "diskcache": "diskcache",
    "lmdb": "py-lmdb",
    "redis": "redis-py",
    "dict": "dict",
}
WORKLOADS = ("get", "set", "mix1", "mix4")
SET_FRACTION = 0.1
VALUE_SIZE = 100
KEY_MULTIPLIER = 0x9E3779B97F4A7C15  # odd: i -> i * K mod 2**64 is a bijection
CHECK_SAMPLE = 1000  # keys read back (untimed) after each measurement
WAIT_SECONDS = 60.0  # for child processes and the redis server


class BenchError(Exception):
    """A store returned a wrong value or failed: the run is not valid."""


@dataclass
class Config:
    """What to measure (see parse_args)."""

    keys: int = 100_000
    ops: int = 200_000
    slow_ops: int = 20_000
    reps: int = 5
    procs: int = 4
    stores: tuple[str, ...] = ALL_STORES
    engine: str = "auto"
    breakdown: bool = True
    quick: bool = False
    json_out: str | None = None
    workdir: str | None = None

    def ops_for(self, store: str) -> int:
        """Ops per measurement: the slow peers (a round trip, an SQLite
        transaction) get --slow-ops so that a run stays within minutes."""
        return min(self.ops, self.slow_ops) if store in ("redis", "diskcache") else self.ops


# ---------------------------------------------------------------------------
# Data


def make_keys(count: int) -> list[bytes]:
    """`count` distinct keys of 16 hex digits, spread like hashes."""
    mask = (1 << 64) - 1
    return [b"%016x" % ((i * KEY_MULTIPLIER) & mask) for i in range(count)]


def make_value(key: bytes, version: int) -> bytes:
    """A 100 B value that says which key and which write it is."""
    head = b"%s:%08x:" % (key, version)
    return head + b"." * (VALUE_SIZE - len(head))


def value_ok(key: bytes, value: Any) -> bool:
    """Whether `value` is one of `key`'s values (any version)."""
    return (
        isinstance(value, bytes)
        and len(value) == VALUE_SIZE
        and value.startswith(key + b":")
        and value.endswith(b".")
    )


def check_sample(store: str, get: Getter, keys: Sequence[bytes], rng: random.Random) -> None:
    """Reads back CHECK_SAMPLE random keys (untimed); BenchError if one is
    missing or not that key's value."""
    for key in rng.sample(keys, min(CHECK_SAMPLE, len(keys))):
        value = get(key)
        if not value_ok(key, value):
            raise BenchError(f"{store}: get({key!r}) returned {value!r:.60}")


def check_exact(store: str, get: Getter, expected: dict[bytes, bytes]) -> None:
    """Every key of `expected` must hold exactly its value."""
    for key, want in expected.items():
        got = get(key)
        if got != want:
            raise BenchError(f"{store}: get({key!r}) returned {got!r:.60}, expected {want!r:.60}")


# ---------------------------------------------------------------------------
# Timed loops (plain Python loops, the garbage collector off as in timeit)


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """Keeps the cyclic garbage collector out of the timed part."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def time_gets(get: Getter, keys: Sequence[bytes]) -> float:
    """ns per get() over `keys`."""
    with no_gc():
        start = time.perf_counter_ns()
        for key in keys:
            get(key)
        elapsed = time.perf_counter_ns() - start
    return elapsed / len(keys)


def time_sets(set_: Setter, keys: Sequence[bytes], values: Sequence[bytes]) -> float:
    """ns per set() over `keys` and `values`."""
    with no_gc():
        start = time.perf_counter_ns()
        for key, value in zip(keys, values):
            set_(key, value)
        elapsed = time.perf_counter_ns() - start
    return elapsed / len(keys)


Op = tuple[bytes, bytes | None]  # (key, None): a get; (key, value): a set


def run_mix(get: Getter, set_: Setter, ops: Sequence[Op]) -> tuple[int, int]:
    """Runs a mix of gets (value None) and sets; returns (start, end) in
    perf_counter_ns, which is CLOCK_MONOTONIC: comparable across processes."""
    with no_gc():
        start = time.perf_counter_ns()
        for key, value in ops:
            if value is None:
                get(key)
            else:
                set_(key, value)
        end = time.perf_counter_ns()
    return start, end


def make_mix(keys: Sequence[bytes], count: int, seed: int, version_base: int) -> list[Op]:
    """`count` random operations, SET_FRACTION of them sets."""
    rng = random.Random(seed)
    ops: list[Op] = []
    for i in range(count):
        key = keys[rng.randrange(len(keys))]
        is_set = rng.random() < SET_FRACTION
        ops.append((key, make_value(key, version_base + i) if is_set else None))
    return ops


# ---------------------------------------------------------------------------
# Stores


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM if this process dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Store:
    """One peer: opens handles (in this or in a child process) that give a
    get and a set callable taking bytes."""

    id = ""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.main: tuple[Getter, Setter] | None = None

    def handle(self) -> tuple[Getter, Setter]:
        """This process's handle for the timed loops (opened once)."""
        if self.main is None:
            self.main = self.open()
        return self.main

    def open(self) -> tuple[Getter, Setter]:
        """A new handle in this process: (get, set)."""
        raise NotImplementedError

    def close(self) -> None:
        """Closes the handles this process opened."""

    def compactions(self) -> int | None:
        """lilcache only: the cache's compactions so far."""
        return None

    def preload(self, keys: Sequence[bytes]) -> None:
        """Stores version 0 of every key (untimed)."""
        _, set_ = self.handle()
        for key in keys:
            set_(key, make_value(key, 0))

    def shutdown(self) -> None:
        """Closes everything and stops what the store started."""
        self.close()

    def forget(self) -> None:
        """In a forked child: drop the parent's handles unused and unclosed
        (they are the parent's; LMDB and SQLite forbid using them here)."""
        self.main = None


class HandlesStore(Store):
    """A store whose handles are objects with close() (lilcache, diskcache),
    kept in self.handles."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.handles: list[Any] = []

    def close(self) -> None:
        for cache in self.handles:
            cache.close()
        self.handles.clear()
        self.main = None

    def forget(self) -> None:
        self.handles = []
        self.main = None


class LilcacheStore(HandlesStore):
    id = "lilcache"

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.module = importlib.import_module("lilcache")

    def open_cache(self) -> Any:
        cache = self.module.Cache("bench", root=str(self.directory))
        self.handles.append(cache)
        return cache

    def open(self) -> tuple[Getter, Setter]:
        cache = self.open_cache()
        return cache.get, cache.set

    def compactions(self) -> int | None:
        cache = self.handles[0] if self.handles else self.open_cache()
        return int(cache.stats()["compactions"])


class DiskcacheStore(HandlesStore):
    id = "diskcache"

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.module = importlib.import_module("diskcache")

    def open(self) -> tuple[Getter, Setter]:
        cache = self.module.Cache(str(self.directory))  # the defaults users get
        self.handles.append(cache)
        return cache.get, cache.set

    def preload(self, keys: Sequence[bytes]) -> None:
        self.handle()
        with self.handles[0].transact():  # one SQLite transaction
            super().preload(keys)


class LmdbStore(Store):
    """py-lmdb as the issue measured it: sync and metasync off, writemap, one
    transaction per operation (in its cheapest form: no `with`)."""

    id = "lmdb"

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.module = importlib.import_module("lmdb")
        self.env: Any = None

    def open(self) -> tuple[Getter, Setter]:
        if self.env is None:  # one environment per process (LMDB's rule)
            self.env = self.module.open(
                str(self.directory), map_size=1 << 32, sync=False, metasync=False, writemap=True
            )
        begin = self.env.begin

        def get(key: bytes) -> Any:
            return begin().get(key)  # the read transaction ends with the object

        def set_(key: bytes, value: bytes) -> None:
            txn = begin(write=True)
            txn.put(key, value)
            txn.commit()

        return get, set_

    def preload(self, keys: Sequence[bytes]) -> None:
        self.handle()
        with self.env.begin(write=True) as txn:
            for key in keys:
                txn.put(key, make_value(key, 0))

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None
        self.main = None

    def forget(self) -> None:
        self.env = None
        self.main = None


class RedisStore(Store):
    """redis-py against a redis-server started here: Unix socket, no
    persistence (--save '' --appendonly no)."""

    id = "redis"

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.module = importlib.import_module("redis")
        server = shutil.which("redis-server")
        if server is None:
            raise ModuleNotFoundError("redis-server not found (Debian package redis-server)")
        directory.mkdir(parents=True, exist_ok=True)
        # A Unix socket path has at most 107 bytes: a short directory of its own.
        self.socket_dir = Path(tempfile.mkdtemp(prefix="lilcache-redis-", dir="/tmp"))
        self.socket = self.socket_dir / "redis.sock"
        self.log = open(directory / "redis.log", "wb")
        self.server = subprocess.Popen(
            [server, "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--dir", str(directory)],
            stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
        )
        print(f"[setup] redis-server pid {self.server.pid} on {self.socket}", flush=True)
        self.clients: list[Any] = []
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            try:
                self.module.Redis(unix_socket_path=str(self.socket)).ping()
                break
            except self.module.exceptions.ConnectionError:
                if self.server.poll() is not None or time.monotonic() > deadline:
                    self.shutdown()
                    log = (directory / "redis.log").read_text(errors="replace").strip()
                    raise BenchError(f"redis-server did not start: {log[-500:]}") from None
                time.sleep(0.02)

    def open(self) -> tuple[Getter, Setter]:
        client = self.module.Redis(unix_socket_path=str(self.socket))
        self.clients.append(client)
        return client.get, client.set

    def preload(self, keys: Sequence[bytes]) -> None:
        client = self.module.Redis(unix_socket_path=str(self.socket))
        for i in range(0, len(keys), 1000):
            client.mset({key: make_value(key, 0) for key in keys[i:i + 1000]})
        client.close()

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.clients.clear()
        self.main = None

    def forget(self) -> None:
        self.clients = []
        self.main = None

    def shutdown(self) -> None:
        self.close()
        if self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        self.log.close()
        shutil.rmtree(self.socket_dir, ignore_errors=True)


class DictStore(Store):
    """The floor: a dict (private to each process; not a shared cache)."""

    id = "dict"

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.data: dict[bytes, bytes] = {}

    def open(self) -> tuple[Getter, Setter]:
        return self.data.get, self.data.__setitem__

    def forget(self) -> None:
        # A copy of its own: the copy touches every key and value (their
        # reference counts), so fork's copy-on-write is paid before the
        # timed loop, not in it.
        self.data = dict(self.data)
        self.main = None


STORE_TYPES: dict[str, type[Store]] = {
    "lilcache": LilcacheStore,
    "diskcache": DiskcacheStore,
    "lmdb": LmdbStore,
    "redis": RedisStore,
    "dict": DictStore,
}


# ---------------------------------------------------------------------------
# Multi-process mix


def mix_child(store: Store, keys: Sequence[bytes], count: int, seed: int, version_base: int,
              barrier: Any, results: Any) -> None:
    """A mix process (forked): opens its own handle, waits for the others,
    runs `count` operations, checks a sample, reports (start, end, error)."""
    try:
        store.forget()
        get, set_ = store.handle()
        # Objects of its own: touching the parent's keys would update their
        # reference counts, copying the pages they share with it (fork's
        # copy-on-write) inside the timed loop.
        keys = make_keys(len(keys))
        ops = make_mix(keys, count, seed, version_base)
        barrier.wait(WAIT_SECONDS)
        start, end = run_mix(get, set_, ops)
        check_sample(store.id, get, keys, random.Random(seed + 1))
        store.close()
        results.put((start, end, ""))
    except BaseException as e:  # reported to the parent, which fails the run
        results.put((0, 0, f"{type(e).__name__}: {e}"))


def measure_mix(store: Store, keys: Sequence[bytes], total_ops: int, procs: int, seed: int,
                version_base: int) -> float:
    """Aggregate ops/s of `procs` processes doing total_ops / procs ops each."""
    per_process = max(1, total_ops // procs)
    if procs == 1:
        get, set_ = store.handle()
        ops = make_mix(keys, per_process, seed, version_base)
        start, end = run_mix(get, set_, ops)
        return per_process * 1e9 / (end - start)
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(procs + 1)
    results = ctx.Queue()
    children = [
        ctx.Process(target=mix_child, args=(store, keys, per_process, seed + 7919 * i,
                                            version_base + per_process * i, barrier, results))
        for i in range(procs)
    ]
    try:
        for child in children:
            child.start()
        barrier.wait(WAIT_SECONDS)
        reports = [results.get(timeout=WAIT_SECONDS * 5) for _ in children]
    except (threading.BrokenBarrierError, queue.Empty):
        raise BenchError(f"{store.id}, {procs} processes: a process did not start or report "
                         "in time") from None
    finally:
        for child in children:
            child.join(WAIT_SECONDS)
            if child.is_alive():
                child.kill()
                child.join()
    errors = [error for _, _, error in reports if error]
    if errors:
        raise BenchError(f"{store.id}, {procs} processes: {errors[0]}")
    start = min(r[0] for r in reports)
    end = max(r[1] for r in reports)
    return per_process * procs * 1e9 / (end - start)


# ---------------------------------------------------------------------------
# Where a lilcache call's time goes


def extension_method(cache: Any, name: str) -> Callable[..., Any] | None:
    """The C++ extension's own method `name` bound to `cache` if the Python
    layer overrides it, else None (the method users call is the extension's)."""
    mro = type(cache).__mro__
    owner = next((klass for klass in mro if name in vars(klass)), None)
    if owner is None or owner.__module__.endswith("_lilcache"):
        return None
    for klass in mro:
        if klass.__module__.endswith("_lilcache") and name in vars(klass):
            return vars(klass)[name].__get__(cache, type(cache))
    return None


def engine_figures(config: Config) -> dict[str, float] | None:
    """ns per get and set of the C++ engine (100 B values) from the C++
    benchmark (build/bench/lilcache-bench), or None if it is not there."""
    if config.engine == "none" or (config.engine == "auto" and config.quick):
        return None
    path: Path | None = None
    if config.engine != "auto":
        path = Path(config.engine)
    else:
        roots = [os.environ.get("LILCACHE_BUILD_ROOT", ""),
                 str(Path(__file__).resolve().parents[2] / "build")]
        for root in roots:
            if root and (Path(root) / "bench" / "lilcache-bench").is_file():
                path = Path(root) / "bench" / "lilcache-bench"
                break
    if path is None:
        return None
    print(f"[engine] {path} --stores lilcache --parts getset --reps 3 --seconds 0.2 "
          f"--keys {config.keys}", flush=True)
    try:
        out = subprocess.run(
            [str(path), "--stores", "lilcache", "--parts", "getset", "--reps", "3",
             "--seconds", "0.2", "--keys", str(config.keys)],
            capture_output=True, text=True, timeout=600, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as e:
        print(f"[engine] not measured: {e}", flush=True)
        return None
    # "## Values of 100 B (medians)" ... "| lilcache | 619 | 2,345 | ..."
    section = out.split("## Values of 100 B", 1)[-1]
    match = re.search(r"^\| lilcache \| ([\d,.]+) \| ([\d,.]+) \|", section, re.MULTILINE)
    if match is None:
        print("[engine] not measured: no '| lilcache | get | set |' row in its output", flush=True)
        return None
    return {"get": float(match[1].replace(",", "")), "set": float(match[2].replace(",", ""))}


def engine_hook(store: LilcacheStore) -> Callable[..., int] | None:
    """lilcache._lilcache._bench_engine(cache, keys, values=None): the
    engine's own ns for get() of each key (or set() of each pair),
    timed in C++ inside this process; None in a binding without it."""
    extension = sys.modules.get(store.module.__name__ + "._lilcache")
    return getattr(extension, "_bench_engine", None)


def breakdown(config: Config, store: LilcacheStore, keys: Sequence[bytes],
              rng: random.Random) -> dict[str, float]:
    """ns per operation of the pieces of a lilcache call, medians of
    config.reps, measured one after the other in each repetition: the loop,
    a Python call of a C method, the extension's dispatch, calls that find
    nothing, hits (bytes and str), sets, and the engine alone (in C++, in
    this process, on the same keys)."""
    cache = store.open_cache()
    count = config.ops
    indices = [rng.randrange(len(keys)) for _ in range(count)]
    hits = [keys[i] for i in indices]
    missing = [b"missing-%010d" % i for i in range(count)]
    set_keys = [keys[rng.randrange(len(keys))] for _ in range(count)]
    versions = iter(range(1 << 40, 1 << 41))  # above the main part's versions
    # The same keys as str, objects made in key order as `keys` were (a list
    # of fresh objects in the order of use would be faster to walk).
    str_keys = [key.decode() for key in keys]
    str_hits = [str_keys[i] for i in indices]
    # str against bytes: two caches written alike (in key order, never
    # overwritten), so that only the types differ, not where the records lie.
    str_cache = store.module.Cache("bench-str", root=str(store.directory))
    bytes_cache = store.module.Cache("bench-bytes", root=str(store.directory))
    store.handles += [str_cache, bytes_cache]
    for key in keys:
        value = make_value(key, 0)
        str_cache.set(key.decode(), value.decode())
        bytes_cache.set(key, value)
    # Sets without compactions: what a set costs per call. (Its log grows
    # by ~160 B a set: 2 x ops/4 x reps sets.)
    plain = store.module.Cache("bench-plain", root=str(store.directory), compact_dead_ratio=0)
    store.handles.append(plain)
    for key in keys:
        plain.set(key, make_value(key, 0))
    plain_keys = set_keys[:max(1, count // 4)]
    empty: dict[bytes, bytes] = {}

    def new_values(keys: Sequence[bytes]) -> list[bytes]:
        return [make_value(key, next(versions)) for key in keys]

    closed = type(cache).closed.fget  # called with the cache as its argument
    pieces: dict[str, Callable[[], float]] = {
        "loop": lambda: loop_only(hits),
        "call": lambda: time_gets(empty.get, hits),
        # A property of the extension: pybind11's dispatch alone (no engine,
        # the GIL kept); get, set and `in` bypass it (python/src/fast_path.cc).
        "closed": lambda: time_gets(closed, [cache] * count),
        "contains_missing": lambda: time_gets(cache.__contains__, missing),
        "get_missing": lambda: time_gets(cache.get, missing),
        "get_str": lambda: time_gets(str_cache.get, str_hits),  # type: ignore[arg-type]
        "get_bytes_twin": lambda: time_gets(bytes_cache.get, hits),
        "gil": gil_cost,
    }
    raw_get = extension_method(cache, "get")
    if raw_get is not None:
        pieces["get_extension"] = lambda: time_gets(raw_get, hits)
    hook = engine_hook(store)
    if hook is not None:
        pieces["engine_get_missing"] = lambda: engine_get(missing, 0)

    def engine_get(chunk: Sequence[bytes], want: int | None = None) -> float:
        """ns per get() of the engine alone; BenchError unless it found
        `want` keys (default: all)."""
        ns, found = hook(cache, list(chunk))  # type: ignore[misc]
        if found != (len(chunk) if want is None else want):
            raise BenchError(f"lilcache: _bench_engine() found {found} of {len(chunk)} keys")
        return ns / len(chunk)

    def engine_set(target: Any, chunk: Sequence[bytes]) -> float:
        ns, _ = hook(target, list(chunk), new_values(chunk))  # type: ignore[misc]
        return ns / len(chunk)

    def interleaved(python: Callable[[Sequence[bytes]], float],
                    engine: Callable[[Sequence[bytes]], float],
                    chunk_keys: Sequence[bytes], chunk: int) -> tuple[float, float]:
        """ns/op from Python and from the engine alone, alternating in
        chunks so that both see the same load."""
        totals = [0.0, 0.0]
        for i in range(0, len(chunk_keys), chunk):
            part = chunk_keys[i:i + chunk]
            totals[0] += python(part) * len(part)
            if hook is not None:
                totals[1] += engine(part) * len(part)
        return totals[0] / len(chunk_keys), totals[1] / len(chunk_keys)

    samples: dict[str, list[float]] = {name: [] for name in pieces}
    for name in ("get", "engine_get", "set", "engine_set", "set_plain", "engine_set_plain"):
        samples[name] = []
    for _ in range(config.reps):
        for name, measure in pieces.items():
            samples[name].append(measure())
        get_ns, engine_get_ns = interleaved(lambda c: time_gets(cache.get, c), engine_get,
                                            hits, 5000)
        # Sets: one after the other, each all of set_keys, so that each
        # pays the same compactions: a compaction's cost to writers is its
        # duration (writes sleep while it runs), whatever the writers' speed,
        # and the part that runs into it would pay it all.
        set_ns, engine_set_ns = interleaved(
            lambda c: time_sets(cache.set, c, new_values(c)),
            lambda c: engine_set(cache, c), set_keys, len(set_keys))
        plain_ns, engine_plain_ns = interleaved(
            lambda c: time_sets(plain.set, c, new_values(c)),
            lambda c: engine_set(plain, c), plain_keys, 5000)
        samples["get"].append(get_ns)
        samples["set"].append(set_ns)
        samples["set_plain"].append(plain_ns)
        if hook is not None:
            samples["engine_get"].append(engine_get_ns)
            samples["engine_set"].append(engine_set_ns)
            samples["engine_set_plain"].append(engine_plain_ns)
    check_sample(store.id, cache.get, keys, rng)
    result = {name: statistics.median(values) for name, values in samples.items() if values}
    if hook is None:  # the C++ benchmark, another process at another time
        engine = engine_figures(config)
        if engine is not None:
            result["cpp_bench_get"] = engine["get"]
            result["cpp_bench_set"] = engine["set"]
    return result


def gil_cost() -> float:
    """ns to release and take back the GIL: a ctypes call of labs() that
    releases it (CDLL) against one that keeps it (PyDLL)."""
    libc_released, libc_kept = ctypes.CDLL(None).labs, ctypes.PyDLL(None).labs
    for function in (libc_released, libc_kept):
        function.argtypes, function.restype = [ctypes.c_long], ctypes.c_long
    numbers = list(range(100_000))
    kept = time_gets(libc_kept, numbers)  # type: ignore[arg-type]
    return time_gets(libc_released, numbers) - kept  # type: ignore[arg-type]


def loop_only(keys: Sequence[bytes]) -> float:
    """ns per iteration of an empty `for` loop over `keys`."""
    with no_gc():
        start = time.perf_counter_ns()
        for _ in keys:
            pass
        elapsed = time.perf_counter_ns() - start
    return elapsed / len(keys)


# ---------------------------------------------------------------------------
# The run


@dataclass
class Results:
    """Everything measured; medians are computed from `samples`."""

    config: Config
    skipped: dict[str, str] = field(default_factory=dict)
    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # ns/op
    compactions: dict[str, list[int]] = field(default_factory=dict)  # lilcache, per workload
    breakdown: dict[str, float] = field(default_factory=dict)  # ns/op
    ops: dict[str, int] = field(default_factory=dict)

    def median(self, store: str, workload: str) -> float | None:
        values = self.samples.get(store, {}).get(workload)
        return statistics.median(values) if values else None

    def ratio(self, workload: str, peer: str) -> float | None:
        """lilcache ops/s / peer ops/s (= peer ns / lilcache ns)."""
        mine, theirs = self.median("lilcache", workload), self.median(peer, workload)
        return theirs / mine if mine and theirs else None


def open_stores(config: Config, workdir: Path, results: Results) -> dict[str, Store]:
    """The stores of --peers that can run here; the others are skipped
    with a reason."""
    stores: dict[str, Store] = {}
    for store_id in config.stores:
        try:
            stores[store_id] = STORE_TYPES[store_id](workdir / store_id)
        except ImportError as e:
            results.skipped[store_id] = str(e)
            print(f"[setup] {LABELS[store_id]} skipped: {e}", flush=True)
    return stores


def measure_rep(config: Config, rep: int, stores: dict[str, Store], keys: list[bytes],
                results: Results) -> None:
    """One repetition of every workload, store after store."""
    rng = random.Random(1000 + rep)
    get_keys = [keys[rng.randrange(len(keys))] for _ in range(config.ops)]
    set_keys = [keys[rng.randrange(len(keys))] for _ in range(config.ops)]
    base = 1 + rep * 4 * config.ops  # versions: unique across reps and workloads
    set_values = [make_value(key, base + i) for i, key in enumerate(set_keys)]
    for store_id, store in stores.items():
        ops = config.ops_for(store_id)
        results.ops[store_id] = ops
        samples = results.samples.setdefault(store_id, {w: [] for w in WORKLOADS})
        get, set_ = store.handle()
        counts: dict[str, int] = {}

        # Gets first: after the sets, lilcache would still be compacting
        # (in a thread of this process) what they left.
        samples["get"].append(time_gets(get, get_keys[:ops]))
        check_sample(store_id, get, keys, rng)

        before = store.compactions()
        samples["set"].append(time_sets(set_, set_keys[:ops], set_values[:ops]))
        after = store.compactions()
        if before is not None and after is not None:
            counts["set"] = after - before
        last = dict(zip(set_keys[:ops], set_values[:ops]))
        sample = rng.sample(sorted(last), min(CHECK_SAMPLE, len(last)))
        check_exact(store_id, get, {key: last[key] for key in sample})

        before = store.compactions()
        samples["mix1"].append(1e9 / measure_mix(store, keys, ops, 1, rep * 31 + 1,
                                                 base + config.ops))
        check_sample(store_id, get, keys, rng)
        samples["mix4"].append(1e9 / measure_mix(store, keys, ops, config.procs, rep * 31 + 2,
                                                 base + 2 * config.ops))
        check_sample(store_id, get, keys, rng)
        after = store.compactions()
        if before is not None and after is not None:
            counts["mix"] = after - before
        for workload, count in counts.items():
            results.compactions.setdefault(workload, []).append(count)

        print(f"[rep {rep + 1}/{config.reps}] {LABELS[store_id]}: "
              + ", ".join(f"{w} {samples[w][-1] / 1000:.2f} µs/op" for w in WORKLOADS)
              + (f"; compactions {counts}" if counts else ""), flush=True)


def run(config: Config) -> Results:
    """Sets up every store, preloads it, runs config.reps repetitions
    (interleaved across stores), then the lilcache breakdown."""
    results = Results(config)
    workdir = Path(tempfile.mkdtemp(prefix="lilcache-pybench-", dir=config.workdir))
    stores: dict[str, Store] = {}
    try:
        stores = open_stores(config, workdir, results)
        keys = make_keys(config.keys)
        for store_id, store in stores.items():
            start = time.monotonic()
            store.preload(keys)
            check_sample(store_id, store.handle()[0], keys, random.Random(1))
            print(f"[setup] {LABELS[store_id]}: {len(keys):,} keys preloaded in "
                  f"{time.monotonic() - start:.1f} s", flush=True)
        for rep in range(config.reps):
            measure_rep(config, rep, stores, keys, results)
        lil = stores.get("lilcache")
        if config.breakdown and isinstance(lil, LilcacheStore):
            results.breakdown = breakdown(config, lil, keys, random.Random(7))
    finally:
        for store in stores.values():
            with contextlib.suppress(Exception):
                store.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)
    return results


# ---------------------------------------------------------------------------
# Report

TARGETS = (  # (workload, peer, factor): lilcache ops/s >= factor x peer's
    ("get", "lmdb", 2.0),
    ("get", "diskcache", 10.0),
    ("set", "lmdb", 1.0),
    ("set", "diskcache", 50.0),
    ("mix4", "lmdb", 2.0),
)


def workload_title(workload: str, procs: int) -> str:
    titles = {"get": "get", "set": "set", "mix1": "mix, 1 process",
              "mix4": f"mix, {procs} processes"}
    return titles[workload]


def ops_text(ops_per_s: float) -> str:
    if ops_per_s >= 1e6:
        return f"{ops_per_s / 1e6:.2f}M"
    if ops_per_s >= 1e3:
        return f"{ops_per_s / 1e3:.1f}k"
    return f"{ops_per_s:.0f}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|---|" + "--:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def target_lines(results: Results) -> list[tuple[str, bool | None, str]]:
    """(name, passed or None if not measured, detail) per target."""
    lines = []
    for workload, peer, factor in TARGETS:
        name = f"{workload_title(workload, results.config.procs)} >= {factor:g}x {LABELS[peer]}"
        ratio = results.ratio(workload, peer)
        if ratio is None:
            missing = peer if results.median(peer, workload) is None else "lilcache"
            lines.append((name, None, f"{LABELS[missing]} missing"))
        else:
            mine = 1e9 / results.median("lilcache", workload)  # type: ignore[operator]
            theirs = 1e9 / results.median(peer, workload)  # type: ignore[operator]
            lines.append((name, ratio >= factor,
                          f"{ratio:.2f}x (lilcache {ops_text(mine)} ops/s, "
                          f"{LABELS[peer]} {ops_text(theirs)})"))
    return lines


def report(results: Results) -> str:
    """The markdown report: medians, ratios, compactions, breakdown, targets."""
    config = results.config
    stores = list(results.samples)
    titles = [workload_title(w, config.procs) for w in WORKLOADS]
    out = [
        f"# lilcache from Python: {config.keys:,} keys, {VALUE_SIZE} B values, "
        f"{config.ops:,} random ops per measurement "
        f"(redis, diskcache: {min(config.ops, config.slow_ops):,}), "
        f"medians of {config.reps}",
        "",
        "## µs per operation (lower is better; mixes: wall time / all processes' ops)",
        "",
    ]
    rows = []
    for store in stores:
        cells = [LABELS[store]]
        for workload in WORKLOADS:
            value = results.median(store, workload)
            cells.append(f"{value / 1000:.2f}" if value else "-")
        rows.append(cells)
    out += [table(["store"] + titles, rows), "", "## ops/s (higher is better)", ""]
    rows = []
    for store in stores:
        cells = [LABELS[store]]
        for workload in WORKLOADS:
            value = results.median(store, workload)
            cells.append(ops_text(1e9 / value) if value else "-")
        rows.append(cells)
    out += [table(["store"] + titles, rows)]
    if "dict" in stores:
        out += ["", "(dict: a private dict per process, not shared: the floor of a Python loop.)"]
    out += ["", "## Ratios: lilcache ops/s / peer ops/s (higher is better)", ""]
    if "lilcache" in stores:
        rows = []
        for peer in ("lmdb", "diskcache", "redis", "dict"):
            if peer in stores:
                cells = [f"vs {LABELS[peer]}"]
                for workload in WORKLOADS:
                    ratio = results.ratio(workload, peer)
                    cells.append(f"{ratio:.2f}x" if ratio else "-")
                rows.append(cells)
        out += [table(["lilcache / peer"] + titles, rows)]
    else:
        out += ["No ratios: lilcache was not measured."]
    if results.compactions:
        out += ["", "## lilcache compactions (from stats()['compactions'] before/after)", ""]
        for workload, counts in results.compactions.items():
            what = "timed sets" if workload == "set" else "mixes (1 and 4 processes)"
            out.append(f"- during the {what}: {', '.join(map(str, counts))} (per repetition)")
    if results.breakdown:
        out += ["", "## Where a lilcache call's time goes (ns per op, medians)", "",
                breakdown_table(results.breakdown)]
    if results.skipped:
        out += [""] + [f"{LABELS[s]} skipped: {why}" for s, why in results.skipped.items()]
    out += ["", "## Targets (issue 15)", ""]
    for name, passed, detail in target_lines(results):
        verdict = "NOT MEASURED" if passed is None else "PASS" if passed else "FAIL"
        out.append(f"{verdict}: {name}: {detail}")
    out += ["", f"Load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"]
    return "\n".join(out)


def breakdown_table(b: dict[str, float]) -> str:
    """The measured pieces, then what they imply."""
    rows = [
        ("`for k in keys: pass` (the loop)", b.get("loop")),
        ("`{}.get(k)` (the loop + a Python call of a C method)", b.get("call")),
        ("`cache.closed` (a pybind11 property: its dispatch, no engine)", b.get("closed")),
        ("`cache.__contains__(k)` (`k in cache`), key missing", b.get("contains_missing")),
        ("`cache.get(k)`, key missing", b.get("get_missing")),
        ("engine get(), key missing, timed in C++ in this process", b.get("engine_get_missing")),
        ("releasing and taking back the GIL (ctypes: CDLL - PyDLL call)", b.get("gil")),
        ("`cache.get(k)`, hit, bytes key and value", b.get("get")),
        ("the extension's get (under the Python layer's), hit", b.get("get_extension")),
        ("`cache.get(k)`, hit, bytes, a cache written once in key order", b.get("get_bytes_twin")),
        ("`cache.get(k)`, hit, str key and value, a cache written alike", b.get("get_str")),
        ("engine get() into a buffer, hit, timed in C++ in this process", b.get("engine_get")),
        ("`cache.set(k, v)`, bytes, no compaction (compact_dead_ratio=0)", b.get("set_plain")),
        ("engine set(), no compaction, timed in C++ in this process", b.get("engine_set_plain")),
        ("`cache.set(k, v)`, bytes, sustained (compactions included)", b.get("set")),
        ("engine set(), sustained, timed in C++ in this process", b.get("engine_set")),
        ("engine get, C++ bench/lilcache-bench (another process)", b.get("cpp_bench_get")),
        ("engine set, C++ bench/lilcache-bench (another process)", b.get("cpp_bench_set")),
    ]
    derived: list[tuple[str, float | None]] = []
    if "call" in b:
        derived += [
            ("=> a Python call (call - loop)", b["call"] - b["loop"]),
            ("=> pybind11's dispatch (closed - call)", b["closed"] - b["call"]),
            ("=> a miss past the Python call: arguments, GIL release, handle, index probe "
             "(get missing - call)", b["get_missing"] - b["call"]),
        ]
        if "engine_get_missing" in b:
            derived.append(("=> the binding's own work on a miss "
                            "(get missing - call - engine miss)",
                            b["get_missing"] - b["call"] - b["engine_get_missing"]))
    engine_get = b.get("engine_get", b.get("cpp_bench_get"))
    engine_set = b.get("engine_set", b.get("cpp_bench_set"))
    if engine_get is not None and "get" in b:
        derived.append(("=> a hit outside the engine (get - engine get)", b["get"] - engine_get))
    if "engine_set_plain" in b:
        derived.append(("=> a set outside the engine (set - engine set, no compaction)",
                        b["set_plain"] - b["engine_set_plain"]))
        derived.append(("=> compactions and their backpressure, per set (engine: sustained - none)",
                        b["engine_set"] - b["engine_set_plain"]))
    elif engine_set is not None and "set" in b:
        derived.append(("=> a set outside the engine (set - engine set)", b["set"] - engine_set))
    if "get_extension" in b:
        derived.append(("=> the Python layer (get - extension's get)",
                        b["get"] - b["get_extension"]))
    if "get_str" in b:
        derived.append(("=> str instead of bytes (encode the key, decode the value)",
                        b["get_str"] - b["get_bytes_twin"]))
    return table(["piece", "ns/op"], [(name, f"{value:,.0f}") for name, value in rows + derived
                                       if value is not None])


# ---------------------------------------------------------------------------
# Command line


def parse_args(argv: Sequence[str]) -> Config:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run in seconds: 2,000 keys, 4,000 ops, 1 repetition "
                             "(never runs lilcache-bench)")
    parser.add_argument("--peers", default=",".join(ALL_STORES),
                        help=f"comma-separated subset of {','.join(ALL_STORES)} (default: all)")
    parser.add_argument("--json", dest="json_out", metavar="OUT",
                        help="also write every sample to OUT (JSON)")
    parser.add_argument("--keys", type=int, help="number of keys (default 100,000)")
    parser.add_argument("--ops", type=int, help="random ops per measurement (default 200,000)")
    parser.add_argument("--slow-ops", type=int,
                        help="ops per measurement for redis and diskcache (default 20,000)")
    parser.add_argument("--reps", type=int, help="repetitions, medians reported (default 5)")
    parser.add_argument("--procs", type=int, default=4,
                        help="processes of the second mix (default 4)")
    parser.add_argument("--engine", default="auto", metavar="PATH|auto|none",
                        help="the C++ lilcache-bench for the engine's own get/set figures "
                             "where the binding lacks _bench_engine() "
                             "(auto: $LILCACHE_BUILD_ROOT or build/; not with --quick)")
    parser.add_argument("--no-breakdown", action="store_true",
                        help="skip where a lilcache call's time goes")
    parser.add_argument("--dir", help="where the stores' temporary directory goes "
                                      "(default: $TMPDIR or /tmp)")
    args = parser.parse_args(argv)
    stores = tuple(s.strip() for s in args.peers.split(",") if s.strip())
    unknown = [s for s in stores if s not in ALL_STORES]
    if unknown or not stores:
        parser.error(f"--peers: unknown {', '.join(unknown) or '(empty)'}; "
                     f"choose from {', '.join(ALL_STORES)}")
    quick = args.quick
    config = Config(
        keys=args.keys or (2_000 if quick else 100_000),
        ops=args.ops or (4_000 if quick else 200_000),
        slow_ops=args.slow_ops or (400 if quick else 20_000),
        reps=args.reps or (1 if quick else 5),
        procs=args.procs,
        stores=stores,
        engine=args.engine,
        breakdown=not args.no_breakdown,
        quick=quick,
        json_out=args.json_out,
        workdir=args.dir,
    )
    for name in ("keys", "ops", "slow_ops", "reps", "procs"):
        if getattr(config, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return config


def write_json(results: Results, path: str) -> None:
    config = results.config
    data = {
        "config": {k: v for k, v in vars(config).items() if k != "json_out"},
        "value_size": VALUE_SIZE,
        "ops": results.ops,
        "samples_ns_per_op": results.samples,
        "medians_ns_per_op": {
            s: {w: results.median(s, w) for w in WORKLOADS} for s in results.samples
        },
        "ratios_lilcache_over_peer": {
            peer: {w: results.ratio(w, peer) for w in WORKLOADS}
            for peer in results.samples if peer != "lilcache"
        },
        "compactions": results.compactions,
        "breakdown_ns_per_op": results.breakdown,
        "targets": [{"target": n, "passed": p, "detail": d} for n, p, d in target_lines(results)],
        "skipped": results.skipped,
        "loadavg": os.getloadavg(),
    }
    Path(path).write_text(json.dumps(data, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(sys.argv[1:] if argv is None else argv)
    # SIGTERM unwinds like ^C: the finally blocks stop redis-server and
    # remove the temporary directory.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        results = run(config)
    except BenchError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    print()
    print(report(results), flush=True)
    if config.json_out:
        write_json(results, config.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
