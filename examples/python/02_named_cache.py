"""Seed requirement 2: named caches.

    lilcache.init('foo_cache')
    lilcache.set('a', 'b')

A name selects one cache (its files are <root>/<name>.*); different names are
independent caches, and every handle on one name shares its data.

Usage: 02_named_cache.py [ROOT]   (default: $LILCACHE_ROOT, else a temporary directory)
"""

import os

import example
import lilcache


def main(root: str) -> None:
    # The module-level functions use the cache chosen by init().
    lilcache.init("foo_cache", root=root)
    lilcache.set("a", "b")
    example.check(lilcache.get("a") == "b", "foo_cache has a = b")

    # Another handle on the same name (in this or any process) sees the same data.
    foo = lilcache.Cache("foo_cache", root=root)
    example.check(foo.get("a") == "b", "a second foo_cache handle sees a = b")

    # Another name is another cache.
    bar = lilcache.Cache("bar_cache", root=root)
    example.check(bar.get("a") is None, "bar_cache does not have a")

    example.check(os.path.exists(os.path.join(root, "foo_cache.meta")), "foo_cache.meta exists")
    example.check({"foo_cache", "bar_cache"} <= set(lilcache.list_caches(root)),
                  "list_caches() names both")
    print(f"foo_cache: get('a') -> {foo.get('a')!r}, bar_cache: get('a') -> miss")

    # Names are 1..100 characters of [A-Za-z0-9_.-]; anything else raises.
    try:
        lilcache.Cache("no/slashes", root=root)
        example.check(False, "a name with '/' was accepted")
    except lilcache.InvalidArgumentError as e:  # a lilcache.Error and a ValueError
        print(f"Cache('no/slashes') -> lilcache.InvalidArgumentError: {e}")


if __name__ == "__main__":
    example.run(main)
