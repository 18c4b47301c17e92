"""Shared by the examples (as examples/example.h is by the C++ ones): where an
example's cache lives, and how it checks its own outcome. Not part of
lilcache."""

import os
import sys
import tempfile
from collections.abc import Callable


class CheckFailed(Exception):
    """An example's outcome is not what it says it is."""


def check(ok: bool, what: str) -> None:
    """Fails the example (a traceback and exit status 1) unless `ok`."""
    if not ok:
        raise CheckFailed(f"check failed: {what}")


def run(main: Callable[[str], None]) -> None:
    """Calls main(root) with the cache root of this run: the first argument
    if given, else $LILCACHE_ROOT if set, else a fresh temporary directory
    that is removed (with everything in it) afterwards."""
    if len(sys.argv) > 1:
        main(sys.argv[1])
    elif os.environ.get("LILCACHE_ROOT"):
        main(os.environ["LILCACHE_ROOT"])
    else:
        with tempfile.TemporaryDirectory(prefix="lilcache-example.") as root:
            main(root)
