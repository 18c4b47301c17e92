"""Seed requirement 8: logging.

    lilcache.init(loglevel='DEBUG')   # log file will be stored under root
    lilcache.set('a', 'b')

Each cache logs to <root>/<name>.log, shared by every process that uses it.
Levels: trace debug info warn error critical off, any case; the default is
info (or $LILCACHE_LOGLEVEL).

Usage: 08_logging.py [ROOT]   (default: $LILCACHE_ROOT, else a temporary directory)
"""

import os

import example
import lilcache


def main(root: str) -> None:
    lilcache.init(root=root, loglevel="DEBUG")
    lilcache.set("a", "b")

    log = os.path.join(root, "default.log")
    example.check(os.path.exists(log), "default.log exists under the root")

    with open(log, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    for line in lines[:3]:
        print(f"  {line}")
    example.check(len(lines) > 0, "default.log has lines")
    print(f"{log}: {len(lines)} lines")


if __name__ == "__main__":
    example.run(main)
