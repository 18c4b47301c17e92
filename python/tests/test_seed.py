"""The seed's Python lines, verbatim, each run by a real `python3 -c`
process with LILCACHE_ROOT (and HOME) in the test's temporary directory.

Each SNIPPET_* constant is the seed's text exactly as issue 15 quotes it;
the child programs embed it unchanged (only start()'s port and init()'s
root path are substituted, as the issue allows) and print what the test
then checks.
"""

from __future__ import annotations

import json
import signal
import stat
import subprocess
from pathlib import Path

import pytest

from support_procs import (  # noqa: F401  (fixtures)
    Processes,
    check_python,
    env,
    free_port,
    home,
    procs,
    raw_line,
    root,
    stop,
    urlopen,
    wait_listening,
)

SNIPPET_IMPORT = "import lilcache"
SNIPPET_SET = "lilcache.set('a', 'b')"  # Process1
SNIPPET_GET = "lilcache.get('a')"  # Process2
SNIPPET_POP = "lilcache.pop('a')"  # Process3
SNIPPET_SNAPSHOT = "lilcache.init('foo_cache', snapshot='120s')"
SNIPPET_PURGE = "lilcache.purge()"
SNIPPET_EXPIRES = "lilcache.init('foo_cache', expires='1d')"
SNIPPET_START = "lilcache.start(host='0.0.0.0', port=5001)  # Blocking call"
SNIPPET_ROOT = "lilcache.init('foo_cache', root='/home/user/secured-directory')"
SNIPPET_LOGLEVEL = "lilcache.init(loglevel='DEBUG')"


def program(*lines: str) -> str:
    """A child program: `import lilcache` (verbatim), then `lines`."""
    return "\n".join([SNIPPET_IMPORT, *lines]) + "\n"


def test_import_lilcache_runs_and_creates_no_cache(env: dict[str, str], root: Path) -> None:
    """`import lilcache` alone succeeds and opens nothing: the default cache
    is opened by the first call, not by the import."""
    out = check_python(program("print(lilcache.__name__)"), env)
    assert out == "lilcache\n"
    assert list(root.iterdir()) == []


def test_process1_sets_process2_gets_process3_pops_and_then_it_is_gone(
    env: dict[str, str],
) -> None:
    """Process1: lilcache.set('a', 'b'); Process2: lilcache.get('a') is 'b';
    Process3: lilcache.pop('a') is 'b'; a fourth process then misses."""
    assert check_python(program(SNIPPET_SET), env) == ""
    assert check_python(program(f"print(repr({SNIPPET_GET}))"), env) == "'b'\n"
    # Process2 again: a get does not consume the value.
    assert check_python(program(f"print(repr({SNIPPET_GET}))"), env) == "'b'\n"
    assert check_python(program(f"print(repr({SNIPPET_POP}))"), env) == "'b'\n"
    assert check_python(program(f"print(repr({SNIPPET_GET}))"), env) == "None\n"
    assert check_python(program(f"print(repr({SNIPPET_POP}))"), env) == "None\n"


def test_init_with_a_snapshot_interval_creates_the_cache_and_snapshots_on_demand(
    env: dict[str, str], root: Path
) -> None:
    """lilcache.init('foo_cache', snapshot='120s') opens (creating) the
    cache foo_cache under the root and starts the background thread that
    takes the snapshots (stopped by close()); no snapshot is due before
    120 s, one can be forced at once, and it is counted for every process,
    whose own interval then runs from it."""
    first = program(
        "import json, os",
        "def threads(): return len(os.listdir('/proc/self/task'))",
        "other = lilcache.Cache('other')  # whatever a first open starts",
        "threads_before = threads()",
        SNIPPET_SNAPSHOT,
        "threads_with_interval = threads()",
        "lilcache.set('a', 'b')",
        "before = lilcache.cache().stats()",
        "result = lilcache.cache().snapshot()",
        "after = lilcache.cache().stats()",
        "lilcache.cache().close()",
        "print(json.dumps({'name': lilcache.cache().name, 'before': before,",
        "                  'result': result, 'after': after,",
        "                  'threads': [threads_before, threads_with_interval, threads()]}))",
    )
    seen = json.loads(check_python(first, env))
    assert seen["name"] == "foo_cache"
    before, during, after = seen["threads"]
    assert (during, after) == (before + 1, before), "a snapshot thread while open"
    assert seen["before"]["snapshots"] == 0
    assert seen["before"]["last_snapshot_ms"] == 0
    assert seen["result"]["compacted"] is True
    assert seen["result"]["keys_live"] == 1
    assert seen["after"]["snapshots"] == 1
    assert seen["after"]["last_snapshot_ms"] > 0
    names = {p.name for p in root.iterdir()}
    assert {"foo_cache.meta", "foo_cache.log"} <= names, names
    assert any(n.startswith("foo_cache.") and n.endswith(".data") for n in names), names
    assert any(n.startswith("foo_cache.") and n.endswith(".index") for n in names), names

    # Another process with the same interval: the last snapshot is recent,
    # so opening takes none; the data survived the compaction.
    second = program(
        SNIPPET_SNAPSHOT,
        "import json",
        "print(json.dumps({'a': lilcache.get('a'), 'stats': lilcache.cache().stats()}))",
    )
    seen2 = json.loads(check_python(second, env))
    assert seen2["a"] == "b"
    assert seen2["stats"]["snapshots"] == 1
    assert seen2["stats"]["last_snapshot_ms"] == seen["after"]["last_snapshot_ms"]

    # The interval reaches the engine, which takes none under 1 s.
    out = check_python(
        program(
            "try:",
            "    " + SNIPPET_SNAPSHOT.replace("120s", "500ms"),
            "except lilcache.InvalidArgumentError as e:",
            "    print(e.code)",
        ),
        env,
    )
    assert out == "invalid_argument\n"


def test_purge_in_one_process_is_seen_at_once_by_another(
    env: dict[str, str], procs: Processes
) -> None:
    """lilcache.purge() empties the cache for a process that has it open and
    keeps using it, with no reopen."""
    # A process that keeps the default cache open and reads on request.
    reader = procs.python(
        program(
            "import sys",
            "for line in sys.stdin:",
            "    print(repr(lilcache.get(line.strip())), len(lilcache.keys()), flush=True)",
        ),
        env,
        stdin=subprocess.PIPE,
    )
    assert reader.stdin is not None and reader.stdout is not None
    check_python(program(SNIPPET_SET, "lilcache.set('c', 'd')"), env)

    def ask(key: str) -> str:
        reader.stdin.write(key.encode() + b"\n")  # type: ignore[union-attr]
        reader.stdin.flush()  # type: ignore[union-attr]
        return raw_line(reader).decode().strip()

    assert ask("a") == "'b' 2"
    check_python(program(SNIPPET_PURGE), env)
    assert ask("a") == "None 0"
    assert ask("c") == "None 0"
    reader.stdin.close()
    assert reader.wait(60) == 0


def test_init_with_expires_gives_keys_a_ttl_of_one_day(env: dict[str, str]) -> None:
    """lilcache.init('foo_cache', expires='1d'): a key set through it expires
    in a day (ttl() reads 86400 s, less the time this took), and is readable
    by another process meanwhile."""
    out = check_python(
        program(SNIPPET_EXPIRES, "lilcache.set('a', 'b')", "print(lilcache.ttl('a'))"),
        env,
    )
    ttl = float(out)
    assert 86400 - 600 < ttl <= 86400
    out = check_python(
        program("lilcache.init('foo_cache')", "print(repr(lilcache.get('a')), lilcache.ttl('a'))"),
        env,
    )
    value, ttl_seen = out.split()
    assert value == "'b'"
    assert 86400 - 600 < float(ttl_seen) <= 86400


def start_program(port: int) -> str:
    """The seed's start() line on `port`, then what it returns and whether
    the previous signal handlers are back."""
    line = SNIPPET_START.replace("5001", str(port))
    assert line == f"lilcache.start(host='0.0.0.0', port={port})  # Blocking call"
    return program(
        "import signal",
        line,
        "print('start returned', flush=True)",
        "print('SIGINT handler restored:',",
        "      signal.getsignal(signal.SIGINT) is signal.default_int_handler)",
        "print('SIGTERM handler restored:', signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)",
    )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_start_serves_the_seed_endpoints_until_a_signal_stops_it(
    env: dict[str, str], procs: Processes, sig: int
) -> None:
    """lilcache.start(host='0.0.0.0', port=PORT)  # Blocking call: serves
    GET /set and GET /get (urllib), the values are the cache's, and SIGINT
    or SIGTERM make start() return (exit status 0) with the previous signal
    handlers restored."""
    port = free_port("0.0.0.0")
    server = procs.python(start_program(port), env)
    wait_listening(server, port)
    base = f"http://127.0.0.1:{port}"
    assert urlopen(f"{base}/set?key=a&value=b")[:2] == (200, b"OK\n")
    assert urlopen(f"{base}/get?key=a")[:2] == (200, b"b")
    assert urlopen(f"{base}/get?key=nope")[0] == 404
    # The served cache is the default one: a library process sees the value
    # (set over HTTP, so bytes).
    assert check_python(program(f"print(repr({SNIPPET_GET}))"), env) == "b'b'\n"
    check_python(program("lilcache.set('z', 'from python')"), env)
    assert urlopen(f"{base}/get?key=z")[:2] == (200, b"from python")

    status, out, err = stop(server, sig)
    assert status == 0, err
    assert out.splitlines() == [
        "start returned",
        "SIGINT handler restored: True",
        "SIGTERM handler restored: True",
    ], err


def test_init_with_a_root_keeps_the_cache_there_private(
    tmp_path: Path, env: dict[str, str], root: Path, home: Path
) -> None:
    """lilcache.init('foo_cache', root='/home/user/secured-directory') (the
    path substituted by a temporary one) creates the directory mode 0700
    and the cache's files mode 0600 there, not under LILCACHE_ROOT."""
    secured = tmp_path / "home" / "user" / "secured-directory"
    line = SNIPPET_ROOT.replace("/home/user/secured-directory", str(secured))
    assert line == f"lilcache.init('foo_cache', root='{secured}')"
    check_python(program(line, "lilcache.set('password', 'hello123')"), env)

    assert stat.S_IMODE(secured.stat().st_mode) == 0o700
    files = sorted(secured.iterdir())
    assert any(p.name == "foo_cache.meta" for p in files), files
    for path in files:
        assert path.is_file()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert list(root.iterdir()) == []

    # The same root from another process finds it; LILCACHE_ROOT does not.
    assert check_python(program(line, "print(lilcache.get('password'))"), env) == "hello123\n"
    elsewhere = program("lilcache.init('foo_cache')", "print(lilcache.get('password'))")
    assert check_python(elsewhere, env) == "None\n"


def debug_lines(log: Path, pid: int) -> list[str]:
    """The debug lines of process `pid` in `log`."""
    return [line for line in log.read_text().splitlines() if f"[{pid}] debug " in line]


def test_init_with_loglevel_debug_writes_debug_lines_to_the_log_under_the_root(
    env: dict[str, str], root: Path
) -> None:
    """lilcache.init(loglevel='DEBUG') logs at debug level to
    <root>/default.log; a process without it (level info) adds no debug
    line."""
    pid_line = "import os; print(os.getpid())"
    pid = int(check_python(program(SNIPPET_LOGLEVEL, "lilcache.set('a', 'b')", pid_line), env))
    log = root / "default.log"
    assert log.is_file()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert debug_lines(log, pid), log.read_text()

    quiet = int(check_python(program("lilcache.set('a', 'c')", pid_line), env))
    assert quiet != pid
    assert f"[{quiet}] " in log.read_text()
    assert debug_lines(log, quiet) == []
