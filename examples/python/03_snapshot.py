"""Seed requirement 3: snapshots of the cache at a regular interval.

    lilcache.init('foo_cache', snapshot='120s')

snapshot= is the interval. Every process that opens the cache with an
interval runs a background thread; per interval exactly one of them writes
the snapshot: a compacted generation of the cache, fsynced, so that every
write before it survives power loss. Snapshots are counted in stats().
cache.snapshot() takes one now; cache.sync() makes every write so far durable
without compacting.

This example uses the shortest interval, '1s', and waits for the first
periodic snapshot (about one second after the open).

Usage: 03_snapshot.py [ROOT]   (default: $LILCACHE_ROOT, else a temporary directory)
"""

import time

import example
import lilcache


def main(root: str) -> None:
    # init() returns the cache it makes the default: a lilcache.Cache.
    cache = lilcache.init("foo_cache", root=root, snapshot="1s")  # e.g. '120s' in real use
    lilcache.set("a", "b")

    # Wait for the background thread's first snapshot (due 1 s after the
    # open; the deadline only guards against a stalled machine).
    deadline = time.monotonic() + 30
    while cache.stats()["snapshots"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    stats = cache.stats()
    example.check(stats["snapshots"] >= 1, "a periodic snapshot was taken")
    example.check(stats["last_snapshot_ms"] > 0, "stats() has the time of the last snapshot")
    print(f"periodic: {stats['snapshots']} snapshot(s), generation {stats['generation']}")
    example.check(cache.get("a") == "b", "a snapshot keeps the data")

    # A snapshot on demand, e.g. before a planned shutdown. 'compacted' is
    # False only if another process was compacting at that moment.
    now = cache.snapshot()
    example.check(now["compacted"], "snapshot() took a snapshot")
    example.check(cache.stats()["snapshots"] > stats["snapshots"], "snapshot() is counted")
    print(f"snapshot(): generation {now['generation']}, {now['keys_live']} live key(s), "
          f"{now['bytes_before']} -> {now['bytes_after']} bytes of log")

    # Durable without compacting.
    cache.set("c", "d")
    cache.sync()


if __name__ == "__main__":
    example.run(main)
