"""Threads: one Cache shared by many threads keeps values intact, hands each
popped value to exactly one thread, counts exactly, and releases the GIL
while it waits (spec: "Threads")."""

from __future__ import annotations

import collections
import random
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import lilcache

THREADS = 8
JOIN_TIMEOUT = 60.0


def run_threads(target: Callable[[int], Any], count: int = THREADS) -> list[Any]:
    """Runs target(i) in `count` threads started together; returns their
    results in order, re-raising the first exception of any thread."""
    results: list[Any] = [None] * count
    errors: list[str] = []
    barrier = threading.Barrier(count)

    def body(i: int) -> None:
        try:
            barrier.wait(timeout=JOIN_TIMEOUT)
            results[i] = target(i)
        except BaseException:  # reported by the main thread
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a thread did not finish"
    assert not errors, errors[0]
    return results


def value_for(key: str, n: int) -> str:
    """A value that tells whether it is intact: key, version, padding, checksum.
    Now and then over 1 MiB (what a thread's read buffer does not keep)."""
    body = f"{key}:{n}:" + "x" * (n % 300 if n % 211 else (1 << 21) + n)
    return f"{body}:{len(body)}"


def intact(key: str, value: Any) -> bool:
    if not isinstance(value, str):
        return False
    body, _, length = value.rpartition(":")
    return body.startswith(key + ":") and length == str(len(body))


def test_threads_doing_random_ops_see_intact_values(cache: lilcache.Cache) -> None:
    shared_keys = [f"shared{i}" for i in range(16)]

    def worker(i: int) -> int:
        rng = random.Random(i)
        own: dict[str, str] = {}
        for n in range(1500):
            op = rng.random()
            if op < 0.3:
                key = rng.choice(shared_keys)
                cache.set(key, value_for(key, n))
            elif op < 0.6:
                key = rng.choice(shared_keys)
                got = cache.get(key)
                assert got is None or intact(key, got), (key, got)
            elif op < 0.8:
                # A key only this thread writes: reads return its last write.
                key = f"own{i}-{rng.randrange(8)}"
                if rng.random() < 0.5:
                    own[key] = value_for(key, n)
                    cache[key] = own[key]
                else:
                    assert cache.get(key) == own.get(key)
            elif op < 0.9:
                key = f"own{i}-{rng.randrange(8)}"
                assert cache.pop(key) == own.pop(key, None)
            else:
                key = rng.choice(shared_keys)
                got = cache.pop(key)
                assert got is None or intact(key, got), (key, got)
        for key, value in own.items():
            assert cache[key] == value
        return len(own)

    run_threads(worker)
    for key in cache.keys("shared"):
        assert intact(key, cache[key])


def test_each_popped_value_goes_to_exactly_one_thread(cache: lilcache.Cache) -> None:
    count = 2000
    for i in range(count):
        cache.set(f"q{i}", f"v{i}")

    def worker(t: int) -> list[str]:
        got = []
        order = list(range(count))
        random.Random(t).shuffle(order)
        for i in order:
            value = cache.pop(f"q{i}")
            if value is not None:
                got.append(value)
        return got

    results = run_threads(worker)
    everything = [v for got in results for v in got]
    duplicates = [v for v, n in collections.Counter(everything).items() if n > 1]
    assert not duplicates, duplicates[:10]
    assert sorted(everything) == sorted(f"v{i}" for i in range(count))
    assert len(cache) == 0


def test_concurrent_add_stores_once(cache: lilcache.Cache) -> None:
    def worker(t: int) -> list[int]:
        return [i for i in range(300) if cache.add(f"k{i}", t)]

    results = run_threads(worker)
    for i in range(300):
        winners = [t for t, won in enumerate(results) if i in won]
        assert len(winners) == 1, (i, winners)
        assert cache[f"k{i}"] == winners[0]


def test_concurrent_incr_counts_exactly(cache: lilcache.Cache) -> None:
    per_thread = 2000

    def worker(t: int) -> int:
        last = 0
        for _ in range(per_thread):
            n = cache.incr("counter", t + 1)
            assert n > last  # every delta is positive
            last = n
            cache.decr("down")
        return last

    run_threads(worker)
    assert cache["counter"] == per_thread * sum(range(1, THREADS + 1))
    assert cache["down"] == -per_thread * THREADS


def test_concurrent_get_or_set_computes_once(cache: lilcache.Cache) -> None:
    calls: list[int] = []
    lock = threading.Lock()

    def compute() -> str:
        with lock:
            calls.append(1)
        return "value"

    def worker(t: int) -> list[str]:
        return [cache.get_or_set(f"k{i}", compute) for i in range(100)]

    results = run_threads(worker)
    assert all(r == ["value"] * 100 for r in results)
    assert len(calls) == 100


def test_threads_share_one_memoized_function(cache: lilcache.Cache) -> None:
    calls: collections.Counter[int] = collections.Counter()
    lock = threading.Lock()

    @cache.memoize()
    def square(x: int) -> int:
        with lock:
            calls[x] += 1
        return x * x

    def worker(t: int) -> list[int]:
        return [square(x) for x in range(50)]

    results = run_threads(worker)
    assert all(r == [x * x for x in range(50)] for r in results)
    assert all(n == 1 for n in calls.values()) and len(calls) == 50


def test_a_thread_waiting_in_get_or_set_does_not_hold_the_gil(root: str) -> None:
    """Thread A computes 'k' and blocks until the main thread lets it finish;
    thread B calls get_or_set('k') meanwhile and waits inside the engine for
    A's result. If B held the GIL while it waits, the main thread could not
    run Python code to let A finish: B would give up after
    get_or_set_timeout (lilcache.Error 'busy') and the test fails.
    Nothing here measures time."""
    cache = lilcache.Cache("t", root=root, get_or_set_timeout="30s")
    computing = threading.Event()
    release = threading.Event()
    b_calling = threading.Event()
    results: dict[str, Any] = {}

    def compute_a() -> str:
        computing.set()
        assert release.wait(JOIN_TIMEOUT), "never released"
        return "from A"

    def compute_b() -> str:
        results["b computed"] = True
        return "from B"

    def thread_a() -> None:
        try:
            results["a"] = cache.get_or_set("k", compute_a)
        except BaseException as e:  # reported below
            results["a"] = e

    def thread_b() -> None:
        b_calling.set()
        try:
            results["b"] = cache.get_or_set("k", compute_b)
        except BaseException as e:
            results["b"] = e

    a = threading.Thread(target=thread_a, daemon=True)
    b = threading.Thread(target=thread_b, daemon=True)
    try:
        a.start()
        assert computing.wait(JOIN_TIMEOUT)
        b.start()
        assert b_calling.wait(JOIN_TIMEOUT)
        # Let B get into the engine's wait (a longer pause only makes the
        # test stricter, never flaky), while the main thread keeps running
        # Python code and cache operations of its own.
        for i in range(50):
            threading.Event().wait(0.005)
            cache.set(f"main{i}", i)
            assert cache.get(f"main{i}") == i
        # B returning now means it did not wait for A, or gave up because the
        # main thread could not run (B held the GIL: lilcache.Error 'busy').
        assert "b" not in results, f"B returned while A computed: {results['b']!r}"
        assert b.is_alive()
    finally:
        release.set()
        a.join(JOIN_TIMEOUT)
        b.join(JOIN_TIMEOUT)
    try:
        assert not a.is_alive() and not b.is_alive()
        assert results["a"] == "from A"
        assert results["b"] == "from A", results["b"]
        assert "b computed" not in results
    finally:
        cache.close()


def test_a_waiter_computes_when_the_computing_thread_raises(root: str) -> None:
    cache = lilcache.Cache("t", root=root, get_or_set_timeout="30s")
    computing = threading.Event()
    release = threading.Event()
    b_calling = threading.Event()
    results: dict[str, Any] = {}

    def compute_a() -> str:
        computing.set()
        assert release.wait(JOIN_TIMEOUT)
        raise RuntimeError("A fails")

    def thread_a() -> None:
        try:
            results["a"] = cache.get_or_set("k", compute_a)
        except BaseException as e:
            results["a"] = e

    def thread_b() -> None:
        b_calling.set()
        results["b"] = cache.get_or_set("k", lambda: "from B")

    a = threading.Thread(target=thread_a, daemon=True)
    b = threading.Thread(target=thread_b, daemon=True)
    try:
        a.start()
        assert computing.wait(JOIN_TIMEOUT)
        b.start()
        assert b_calling.wait(JOIN_TIMEOUT)
        threading.Event().wait(0.1)
    finally:
        release.set()
        a.join(JOIN_TIMEOUT)
        b.join(JOIN_TIMEOUT)
    try:
        assert isinstance(results["a"], RuntimeError)
        assert results["b"] == "from B"
        assert cache["k"] == "from B"
    finally:
        cache.close()


def test_closing_a_cache_while_threads_use_it_is_safe(root: str) -> None:
    """Threads keep operating while the main thread closes the handle: each
    call either completes or raises Error 'invalid_state'; nothing crashes
    and every thread stops."""
    cache = lilcache.Cache("t", root=root)
    started = threading.Barrier(THREADS + 1)
    outcomes: list[str] = []

    def worker(t: int) -> None:
        started.wait(JOIN_TIMEOUT)
        n = 0
        while True:
            n += 1
            try:
                cache.set(f"k{t}", n)
                assert cache.get(f"k{t}") in (n, None)
                cache.incr("shared")
                cache.pop(f"k{t}")
                len(cache)
            except lilcache.Error as e:
                outcomes.append(e.code)
                return

    threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(THREADS)]
    for t in threads:
        t.start()
    started.wait(JOIN_TIMEOUT)
    deadline = time.monotonic() + JOIN_TIMEOUT
    while cache.get("shared", 0) < 100 and time.monotonic() < deadline:  # all at work
        threading.Event().wait(0.001)
    cache.close()
    for t in threads:
        t.join(JOIN_TIMEOUT)
    assert not any(t.is_alive() for t in threads)
    assert outcomes == ["invalid_state"] * THREADS
    with lilcache.Cache("t", root=root) as again:
        assert again["shared"] >= 100
