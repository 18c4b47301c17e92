"""Beyond the seed: counters, add, get-or-set and memoize, the atomic ways to
do what a get-then-set does with a race.

    lilcache.incr('hits')                         # not: set(k, get(k) + 1)
    lilcache.add('lock:report', owner)            # not: if get(k) is None: set(k, v)
    cache.get_or_set('report', make_report)       # not: get(k) or set(k, make_report())
    @lilcache.memoize('1h')                       # get_or_set on the arguments

Four threads each count to 2,000 on one key, first with get-then-set (which
loses updates) and then with incr() (which does not); the same holds across
processes. Then 16 threads ask for one report at once: it is made once.

Usage: 09_atomic.py [ROOT]   (default: $LILCACHE_ROOT, else a temporary directory)
"""

import threading
import time
from collections.abc import Callable

import example
import lilcache

THREADS, EACH = 4, 2000


def in_threads(body: Callable[[], None], count: int = THREADS) -> None:
    """Runs body() in `count` threads at once and waits for them."""
    threads = [threading.Thread(target=body) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def main(root: str) -> None:
    cache = lilcache.init(root=root)

    # The race: two threads read 7, both write 8.
    def get_then_set() -> None:
        for _ in range(EACH):
            lilcache.set("racy", lilcache.get("racy", 0) + 1)

    # The atomic way (an absent key starts at default=0).
    def increment() -> None:
        for _ in range(EACH):
            lilcache.incr("hits")

    in_threads(get_then_set)
    in_threads(increment)
    print(f"get-then-set: expected {THREADS * EACH}, got {lilcache.get('racy')}\n"
          f"incr():       expected {THREADS * EACH}, got {lilcache.get('hits')}")
    example.check(lilcache.get("hits") == THREADS * EACH, "incr() lost no update")

    # add(): exactly one of racing callers stores (a lock, a claim, a dedup).
    example.check(lilcache.add("lock:report", "worker-1"), "the first add stores")
    example.check(not lilcache.add("lock:report", "worker-2"), "a second add does not")

    # get_or_set(): one computation, however many ask at once (any processes).
    computed: list[int] = []

    def make_report() -> str:
        computed.append(1)
        time.sleep(0.1)  # an expensive report
        return "the report"

    reports: list[str] = []
    in_threads(lambda: reports.append(cache.get_or_set("report", make_report)), count=16)
    example.check(reports == ["the report"] * 16, "every asker has it")
    print(f"get_or_set(): 16 askers, make_report ran {len(computed)} time(s)")
    example.check(len(computed) == 1, "make_report ran once")

    # memoize: the same, keyed by the function and its arguments.
    calls: list[int] = []

    @lilcache.memoize("1h")
    def square(n: int) -> int:
        calls.append(n)
        return n * n

    example.check([square(3), square(3), square(4)] == [9, 9, 16], "square is right")
    example.check(calls == [3, 4], "square(3) was computed once")
    print(f"memoize: square(3), square(3), square(4) computed {len(calls)} time(s), "
          f"key of square(3): {square.__cache_key__(3)!r}")


if __name__ == "__main__":
    example.run(main)
