"""Helpers of the multi-process and cross-interface suites (test_seed.py,
test_processes.py, test_interop.py, test_server.py): where the build is,
the environment of a child Python, child processes that never outlive a
test, free ports and small HTTP clients that ignore proxies.

Not a conftest: the test modules import what they use from here (fixtures
included), so that it adds nothing to the other suites.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.client import HTTPConnection, HTTPMessage
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import pytest

# Every wait on a child process or a server is bounded by this (seconds): a
# generous bound against a hang, never a timing assertion.
TIMEOUT = 60.0

SOURCE_ROOT = Path(
    os.environ.get("LILCACHE_SOURCE_ROOT", Path(__file__).resolve().parents[2])
)
BUILD_ROOT = Path(os.environ.get("LILCACHE_BUILD_ROOT", SOURCE_ROOT / "build"))
BUILD_PYTHON = BUILD_ROOT / "python"
CLI = os.environ.get("LILCACHE_CLI", str(BUILD_ROOT / "tools" / "lilcache"))

# The interpreter running the tests (meson passes the one it found; by hand,
# /usr/bin/python3): children run the same one.
PYTHON = sys.executable

# So that `import lilcache` finds the build tree when pytest is run by hand
# without PYTHONPATH.
if BUILD_PYTHON.is_dir() and str(BUILD_PYTHON) not in sys.path:
    sys.path.insert(0, str(BUILD_PYTHON))


def make_dir(path: Path) -> Path:
    """Creates `path` (and its parents) mode 0700 and returns it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def child_env(root: Path, home: Path, **extra: str) -> dict[str, str]:
    """The environment of a child process: this one's, with the cache root
    and HOME in the test's temporary directory, the build tree first on
    PYTHONPATH, and nothing inherited that changes lilcache's behaviour."""
    env = dict(os.environ)
    for name in ("XDG_CACHE_HOME", "LILCACHE_LOGLEVEL", "LILCACHE_TOKEN"):
        env.pop(name, None)
    env["LILCACHE_ROOT"] = str(root)
    env["HOME"] = str(home)
    path = [str(BUILD_PYTHON)] + [
        p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p
    ]
    env["PYTHONPATH"] = os.pathsep.join(path)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_python(
    code: str, env: Mapping[str, str], timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Runs `code` as `python3 -c code` to its end (killed after `timeout`)
    and returns the result, stdout and stderr as text."""
    return subprocess.run(
        [PYTHON, "-c", code],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def check_python(code: str, env: Mapping[str, str]) -> str:
    """run_python() that must exit 0; returns its stdout."""
    result = run_python(code, env)
    assert result.returncode == 0, (
        f"exit {result.returncode}\n--- code:\n{code}\n--- stderr:\n{result.stderr}"
    )
    return result.stdout


def run_cli(
    args: Sequence[str], root: Path, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Runs `lilcache ARGS --root ROOT` (stdout and stderr as bytes)."""
    return subprocess.run(
        [CLI, *args, "--root", str(root)],
        input=stdin,
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )


class Processes:
    """The child processes of one test: each is killed (SIGKILL) and reaped
    at the end of the test if it still runs."""

    def __init__(self) -> None:
        self._children: list[subprocess.Popen[bytes]] = []

    def start(self, args: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
        """subprocess.Popen(args, **kwargs), tracked."""
        child: subprocess.Popen[bytes] = subprocess.Popen(  # type: ignore[call-overload]
            list(args), **kwargs
        )
        self._children.append(child)
        return child

    def python(
        self, code: str, env: Mapping[str, str], **kwargs: object
    ) -> subprocess.Popen[bytes]:
        """`python3 -c code` with stdout and stderr piped, tracked."""
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        return self.start([PYTHON, "-c", code], env=dict(env), **kwargs)

    def close(self) -> None:
        """Kills and reaps every child still running."""
        for child in self._children:
            if child.poll() is None:
                child.kill()
            child.wait(TIMEOUT)
            for stream in (child.stdin, child.stdout, child.stderr):
                if stream is not None:
                    stream.close()


@pytest.fixture
def procs() -> Iterator[Processes]:
    """Child processes killed at the end of the test."""
    processes = Processes()
    try:
        yield processes
    finally:
        processes.close()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The test's own cache root, mode 0700."""
    return make_dir(tmp_path / "root")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The test's HOME, so that nothing reaches the user's cache dir."""
    return make_dir(tmp_path / "home")


@pytest.fixture
def env(root: Path, home: Path) -> dict[str, str]:
    """The environment of a child Python using `root`."""
    return child_env(root, home)


def wait_exit(child: subprocess.Popen[bytes], timeout: float = TIMEOUT) -> int:
    """Waits for `child` to exit; fails the test (the child is killed at
    teardown) if it still runs after `timeout`."""
    try:
        return child.wait(timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"pid {child.pid} still runs after {timeout:.0f} s")


def stop(child: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> tuple[int, str, str]:
    """Sends `sig` to `child`, waits for its exit and returns (exit status,
    stdout, stderr)."""
    child.send_signal(sig)
    try:
        out, err = child.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"pid {child.pid} still runs {TIMEOUT:.0f} s after signal {sig}")
    return child.returncode, out.decode(errors="replace"), err.decode(errors="replace")


@contextlib.contextmanager
def watchdog(child: subprocess.Popen[bytes], timeout: float = TIMEOUT) -> Iterator[None]:
    """Kills `child` if the block takes longer than `timeout`, so that a
    blocking read of its output ends (with EOF) instead of hanging."""
    timer = threading.Timer(timeout, child.kill)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def raw_line(child: subprocess.Popen[bytes]) -> bytes:
    """The next line of `child`'s stdout as bytes, newline included (b''
    at EOF, or if none comes within TIMEOUT: the child is then killed)."""
    assert child.stdout is not None
    with watchdog(child):
        return child.stdout.readline()


def read_line(child: subprocess.Popen[bytes]) -> str:
    """The next line of `child`'s stdout (a child that exits before writing
    one, or writes none within TIMEOUT, fails the test with its stderr)."""
    line = raw_line(child).decode()
    if not line:
        rc = wait_exit(child)
        err = child.stderr.read().decode(errors="replace") if child.stderr else ""
        pytest.fail(f"child exited {rc} before writing a line; stderr:\n{err}")
    return line.rstrip("\n")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on `host` (another program may take it
    before the caller binds it: unlikely enough for a test)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# urllib without the environment's proxies (http_proxy must not see tests).
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def urlopen(
    url: str,
    *,
    method: str = "GET",
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, bytes, Mapping[str, str]]:
    """One request with urllib: (status, body, headers), 4xx and 5xx
    included."""
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    try:
        with _OPENER.open(request, timeout=TIMEOUT) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read(), error.headers


def request(
    port: int,
    path: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    host: str = "127.0.0.1",
) -> tuple[int, bytes, HTTPMessage]:
    """One request with http.client, exact path and headers: (status, body,
    headers)."""
    connection = HTTPConnection(host, port, timeout=TIMEOUT)
    try:
        connection.request(method, path, body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        return response.status, response.read(), response.headers
    finally:
        connection.close()


def wait_listening(child: subprocess.Popen[bytes], port: int) -> None:
    """Waits until a server started by `child` answers GET /health on
    `port` (any status: a token may be required); fails the test if the
    child exits first or nothing answers within TIMEOUT."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        if child.poll() is not None:
            err = child.stderr.read().decode(errors="replace") if child.stderr else ""
            pytest.fail(f"server exited {child.returncode} before listening; stderr:\n{err}")
        try:
            request(port, "/health")
            return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"nothing listens on port {port} after {TIMEOUT:.0f} s")
            time.sleep(0.05)
