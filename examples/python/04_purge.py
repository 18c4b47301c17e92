"""Seed requirement 4: delete the whole cache.

    lilcache.set('a', 'b')
    lilcache.purge()

purge() removes every key, for every process, at once.

Usage: 04_purge.py [ROOT]   (default: $LILCACHE_ROOT, else a temporary directory)
"""

import example
import lilcache


def main(root: str) -> None:
    lilcache.init(root=root)

    # Another handle on the same cache, standing in for another process.
    other = lilcache.Cache(root=root)

    lilcache.set("a", "b")
    lilcache.set("c", "d")
    example.check(other.get("a") == "b", "the other handle sees a = b")

    lilcache.purge()
    example.check(lilcache.get("a") is None and lilcache.get("c") is None, "purge removed a and c")
    example.check("a" not in other and len(other) == 0, "the other handle sees the purge")
    print(f"after purge(): get('a') -> miss, len(other) -> {len(other)}")

    # The cache stays usable.
    lilcache.set("a", "new")
    example.check(other.get("a") == "new", "set works after purge")

    # Cache.clear() is purge() returning how many keys there were.
    example.check(other.clear() == 1, "clear() removed the one key")


if __name__ == "__main__":
    example.run(main)
