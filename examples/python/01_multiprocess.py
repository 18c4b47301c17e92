"""Seed requirement 1: one cache, shared by processes and threads, no server.

    Process 1: lilcache.set('a', 'b')
    Process 2: lilcache.get('a')
    Process 3: lilcache.pop('a')

Here the processes are children started by multiprocessing; they could as
well be unrelated programs. All they share is the cache's root directory.

Usage: 01_multiprocess.py [ROOT]   (default: $LILCACHE_ROOT, else a temporary directory)
"""

import multiprocessing
import os
import threading
from collections.abc import Callable

import example
import lilcache


def process1(root: str) -> None:
    """Stores a value."""
    lilcache.init(root=root)
    lilcache.set("a", "b")
    print(f"process {os.getpid()}: set('a', 'b')", flush=True)


def process2(root: str) -> None:
    """Reads it."""
    lilcache.init(root=root)
    value = lilcache.get("a")
    print(f"process {os.getpid()}: get('a') -> {value!r}", flush=True)
    example.check(value == "b", "process 2 gets 'b'")


def process3(root: str) -> None:
    """Pops it: removes it and receives its value."""
    lilcache.init(root=root)
    value = lilcache.pop("a")
    print(f"process {os.getpid()}: pop('a') -> {value!r}", flush=True)
    example.check(value == "b", "process 3 pops 'b'")


def in_new_process(body: Callable[[str], None], root: str) -> bool:
    """Runs body(root) in a new process; returns whether it succeeded."""
    process = multiprocessing.Process(target=body, args=(root,))
    process.start()
    process.join()
    return process.exitcode == 0


def main(root: str) -> None:
    example.check(in_new_process(process1, root), "process 1 could not set 'a'")
    example.check(in_new_process(process2, root), "process 2 did not get 'b'")
    example.check(in_new_process(process3, root), "process 3 did not pop 'b'")

    # The pop removed it for every process.
    lilcache.init(root=root)
    example.check(lilcache.get("a") is None, "'a' is still there after the pop")
    print(f"process {os.getpid()}: get('a') -> miss")

    # Threads: of 8 threads racing to pop one key, exactly one gets the value.
    lilcache.set("job", "42")
    winners: list[str] = []

    def pop_job() -> None:
        value = lilcache.pop("job")
        if value is not None:
            winners.append(value)  # list.append is atomic

    threads = [threading.Thread(target=pop_job) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    example.check(winners == ["42"], "exactly one thread popped 'job'")
    print(f"8 threads raced to pop 'job': {len(winners)} got it")


if __name__ == "__main__":
    example.run(main)
