"""Python and the other interfaces on one cache: the `lilcache` CLI
($LILCACHE_CLI) and the REST server (`lilcache serve`), both real
processes.

What Python stores, they read raw: a str as its UTF-8, bytes as they are,
an int as its decimal text, a pickled value as the pickle bytes. What they
store, Python reads as bytes, and their counters as int.
"""

from __future__ import annotations

import pickle
import random
import re
import signal
import subprocess
import urllib.parse
from pathlib import Path
from typing import Iterator

import pytest

from support_procs import (  # noqa: F401  (fixtures)
    CLI,
    Processes,
    procs,
    read_line,
    request,
    root,
    run_cli,
    stop,
)

import lilcache

NON_ASCII = "h\u00e9llo w\u00f6rld \u20ac \U0001f600"

# Values a Python program stores, and the bytes every other interface reads.
PYTHON_VALUES: dict[str, tuple[object, bytes]] = {
    "ascii": ("b", b"b"),
    "non-ascii text": (NON_ASCII, NON_ASCII.encode()),
    "text with NUL": ("a\x00b", b"a\x00b"),
    "empty text": ("", b""),
    "bytes": (b"\x00\xff\x01binary", b"\x00\xff\x01binary"),
    "empty bytes": (b"", b""),
    "bytearray": (bytearray(b"\x80\x81"), b"\x80\x81"),
    "int": (42, b"42"),
    "negative int": (-7, b"-7"),
    "int64 max": (2**63 - 1, b"9223372036854775807"),
    "int64 min": (-(2**63), b"-9223372036854775808"),
    "zero": (0, b"0"),
}


@pytest.fixture
def cache(root: Path) -> Iterator[lilcache.Cache]:
    """The cache 'default' of the test's root, as the CLI and server see it."""
    with lilcache.Cache("default", root=str(root)) as handle:
        yield handle


@pytest.fixture
def server(root: Path, procs: Processes) -> Iterator[int]:
    """`lilcache serve` on the test's root, on a free port (yielded); it must
    stop cleanly (exit 0) on SIGTERM at the end."""
    child = procs.start(
        [CLI, "serve", "--root", str(root), "--port", "0", "--loglevel", "warn"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    line = read_line(child)
    match = re.search(r"on http://127\.0\.0\.1:(\d+)$", line)
    assert match, line
    yield int(match.group(1))
    status, _, err = stop(child, signal.SIGTERM)
    assert status == 0, err


def quote(key: str) -> str:
    """`key` percent-encoded for a query or a /keys/ path."""
    return urllib.parse.quote(key, safe="")


def cli_get(root: Path, key: str) -> bytes:
    """`lilcache get KEY`'s stdout (the key must be present)."""
    result = run_cli(["get", key], root)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_cli_reads_python_values_raw(cache: lilcache.Cache, root: Path) -> None:
    """A str set in Python is its UTF-8 to `lilcache get`, bytes are bytes,
    an int is its decimal text."""
    for key, (value, raw) in PYTHON_VALUES.items():
        assert cache.set(key, value) is True
    for key, (_, raw) in PYTHON_VALUES.items():
        assert cli_get(root, key) == raw, key


def test_rest_reads_python_values_raw(cache: lilcache.Cache, server: int) -> None:
    """The same values over HTTP: GET /get?key= and GET /keys/{key} answer
    the raw bytes."""
    for key, (value, _) in PYTHON_VALUES.items():
        cache[key] = value
    for key, (_, raw) in PYTHON_VALUES.items():
        assert request(server, f"/get?key={quote(key)}")[:2] == (200, raw), key
        assert request(server, f"/keys/{quote(key)}")[:2] == (200, raw), key


def test_cli_writes_come_back_to_python_as_bytes(cache: lilcache.Cache, root: Path) -> None:
    """Values set by the CLI are bytes in Python, valid UTF-8 or not, digits
    or not; a key the CLI deletes is gone."""
    assert run_cli(["set", "word", "hello"], root).returncode == 0
    assert run_cli(["set", "digits", "123"], root).returncode == 0
    assert run_cli(["set", "binary", "-"], root, stdin=b"\x00\xff\xfe").returncode == 0
    assert run_cli(["set", "text", "h\u00e9"], root).returncode == 0
    assert cache.get("word") == b"hello"
    assert cache.get("digits") == b"123"
    assert cache.get("binary") == b"\x00\xff\xfe"
    assert cache.get("text") == "h\u00e9".encode()
    # A Python str overwritten by the CLI is the CLI's bytes.
    cache.set("word", "from python")
    assert run_cli(["set", "word", "again"], root).returncode == 0
    assert cache.get("word") == b"again"
    assert run_cli(["delete", "word"], root).returncode == 0
    assert "word" not in cache
    assert cache.get("word") is None


def test_rest_writes_come_back_to_python_as_bytes(cache: lilcache.Cache, server: int) -> None:
    """GET /set and PUT /keys/{key} store bytes for Python."""
    assert request(server, "/set?key=a&value=b")[:2] == (200, b"OK\n")
    assert request(server, "/set?key=n&value=42")[:2] == (200, b"OK\n")
    body = bytes(range(256))
    assert request(server, "/keys/bin", method="PUT", body=body)[0] == 201
    assert cache.get("a") == b"b"
    assert cache.get("n") == b"42"
    assert cache.get("bin") == body
    assert request(server, "/pop?key=a")[:2] == (200, b"b")
    assert cache.get("a") is None


def test_counters_are_shared_by_python_the_cli_and_rest(
    cache: lilcache.Cache, root: Path, server: int
) -> None:
    """One counter incremented in turn by Python, the CLI and REST: every
    increment counts, Python reads it as int, the others as decimal text."""
    assert cache.incr("hits", 5) == 5
    assert cli_get(root, "hits") == b"5"
    assert request(server, "/get?key=hits")[:2] == (200, b"5")
    result = run_cli(["incr", "hits"], root)
    assert (result.returncode, result.stdout) == (0, b"6\n")
    assert cache.get("hits") == 6
    assert request(server, "/keys/hits/increment?by=10", method="POST")[:2] == (200, b"16")
    assert cache.get("hits") == 16
    assert cache.decr("hits", 20) == -4
    assert run_cli(["incr", "hits", "--by", "4"], root).stdout == b"0\n"
    assert cache["hits"] == 0
    # Counters made elsewhere are int in Python too.
    assert run_cli(["incr", "cli counter", "--by", "3"], root).returncode == 0
    assert cache.get("cli counter") == 3
    path = f"/keys/{quote('rest counter')}/increment?initial=100"
    assert request(server, path, method="POST")[:2] == (200, b"101")
    assert cache.get("rest counter") == 101
    assert cache.incr("rest counter") == 102


def test_a_pickled_value_is_the_pickle_bytes_elsewhere(root: Path, server: int) -> None:
    """With serializer='pickle' a value is stored as its pickle: the CLI and
    REST read those bytes, and a handle without the serializer gets them
    as bytes, never unpickled."""
    value = {"tuple": (1, 2.5, None), "set": {3}}
    with lilcache.Cache("default", root=str(root), serializer="pickle") as pickling:
        pickling.set("obj", value)
        assert pickling.get("obj") == value
    raw = cli_get(root, "obj")
    assert pickle.loads(raw) == value
    assert request(server, "/get?key=obj")[:2] == (200, raw)
    with lilcache.Cache("default", root=str(root)) as plain:
        assert plain.get("obj") == raw


def test_keys_and_expiry_agree_between_python_and_the_cli(
    cache: lilcache.Cache, root: Path
) -> None:
    """A key set with an expiry in Python has it for the CLI; keys set by
    the CLI are listed by Python's keys()."""
    cache.set("short", "v", expire="1h")
    result = run_cli(["ttl", "short"], root)
    assert result.returncode == 0, result.stderr
    milliseconds = int(result.stdout)  # `lilcache ttl` prints milliseconds
    assert 3_600_000 - 600_000 < milliseconds <= 3_600_000
    cache.set("forever", "v")
    assert run_cli(["ttl", "forever"], root).stdout.strip() == b"none"
    assert run_cli(["set", "cli/1", "x"], root).returncode == 0
    assert run_cli(["set", "cli/2", "y", "--ttl", "1d"], root).returncode == 0
    assert sorted(cache.keys("cli/")) == ["cli/1", "cli/2"]
    ttl = cache.ttl("cli/2")
    assert ttl is not None and 86400 - 600 < ttl <= 86400
    assert cache.ttl("cli/1") == float("inf")


def test_keys_are_the_same_bytes_for_python_and_the_cli(cache: lilcache.Cache, root: Path) -> None:
    """A str key is its UTF-8 for the CLI, a bytes key its bytes (valid
    UTF-8 or not), and the reverse: keys() gives str for UTF-8 keys and
    bytes for the others."""
    cache.set("cl\u00e9", "1")
    cache.set(b"\xff\xfe", "2")
    listed = run_cli(["keys", "-0"], root)
    assert listed.returncode == 0, listed.stderr
    assert sorted(listed.stdout.split(b"\0")[:-1]) == sorted([b"cl\xc3\xa9", b"\xff\xfe"])
    assert cli_get(root, "cl\u00e9") == b"1"
    assert subprocess.run(
        [CLI, "get", b"\xff\xfe", "--root", str(root)], capture_output=True, timeout=60, check=False
    ).stdout == b"2"
    assert subprocess.run(
        [CLI, "set", b"\xfa\xfb", b"\xfc", "--root", str(root)], timeout=60, check=False
    ).returncode == 0
    assert cache.get(b"\xfa\xfb") == b"\xfc"
    expected = ["cl\u00e9", b"\xff\xfe", b"\xfa\xfb"]
    assert sorted(cache.keys(), key=repr) == sorted(expected, key=repr)


def test_large_values_cross_between_python_and_the_cli_intact(
    cache: lilcache.Cache, root: Path
) -> None:
    """Values of a few MiB go both ways byte for byte: a str set in Python
    read by the CLI, bytes piped to the CLI read by Python."""
    text = "\u00e9t\u00e9 " * 700_000  # 4.2 MB of UTF-8
    cache.set("big text", text)
    assert cli_get(root, "big text") == text.encode()
    blob = random.Random(15).randbytes(3 << 20)
    assert run_cli(["set", "big blob", "-"], root, stdin=blob).returncode == 0
    assert cache.get("big blob") == blob
