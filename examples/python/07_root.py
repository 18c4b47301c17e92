"""Seed requirement 7: where the cache lives.

    lilcache.init('foo_cache', root='/home/user/secured-directory')
    lilcache.set('password', 'hello123')

root= is the directory holding the cache's files. lilcache creates it (with
its parents) mode 0700 and its files mode 0600: only the owner can read them.
Without a root: $LILCACHE_ROOT, else $XDG_CACHE_HOME/lilcache, else
~/.cache/lilcache.

Usage: 07_root.py [DIR]   (uses DIR/secured-directory; default DIR: $LILCACHE_ROOT,
                          else a temporary directory)
"""

import os
import stat

import example
import lilcache


def main(base: str) -> None:
    secured = os.path.join(base, "secured-directory")  # does not exist yet

    lilcache.init("foo_cache", root=secured)
    lilcache.set("password", "hello123")
    example.check(lilcache.get("password") == "hello123", "password is stored")

    dir_mode = stat.S_IMODE(os.stat(secured).st_mode)
    example.check(dir_mode == 0o700, "the root directory is mode 0700")
    print(f"{secured}: mode {dir_mode:04o}")

    for entry in sorted(os.scandir(secured), key=lambda e: e.name):
        if not entry.is_file():
            continue
        mode = stat.S_IMODE(entry.stat().st_mode)
        print(f"  {entry.name}: mode {mode:04o}")
        example.check(mode == 0o600, "every file in the root is mode 0600")


if __name__ == "__main__":
    example.run(main)
