"""Shared pytest fixtures of the Python package's suites (python/tests/).

Every test runs against a cache under its own temporary root, never the
user's ~/.cache: as a safety net, LILCACHE_ROOT and XDG_CACHE_HOME point at a
session-wide temporary directory (mode 0700) for the whole run, so that even
a test that forgets root= stays out of the user's files. Hypothesis's files
go to $HYPOTHESIS_STORAGE_DIRECTORY, by default <build>/python-tests-hypothesis
under meson (LILCACHE_BUILD_ROOT), else the session directory.

Fixtures (use them by naming them as arguments):
  root          str: a fresh, empty directory of mode 0700 for this test only.
  cache         lilcache.Cache('t', root=root), closed after the test.
  pickled       lilcache.Cache('t', root=root, serializer='pickle'), closed
                after the test (the same cache as `cache` if both are used).
  open_cache    a factory: open_cache(name='t', **options) opens a Cache
                under `root` (root= may be overridden) and closes it after
                the test.
  default_cache lilcache.init('default', root=root): the module-level
                functions (lilcache.set, get, ...) act on it during the test;
                it is closed after the test and the previous default restored.
  keep_default_cache  for tests calling lilcache.init() themselves: restores
                the previous default cache after the test.
  wait_until    wait_until(predicate, timeout=10.0) -> bool: polls
                predicate() until it is true (True) or timeout seconds passed
                (False). For expiry and other eventual facts; assert on its
                result, never on how long it took.
  child_env     a dict: os.environ plus PYTHONPATH (the module under test)
                and LILCACHE_ROOT=root, for subprocesses of the test.
  run_python    run_python(code, env=None, timeout=60) ->
                subprocess.CompletedProcess: runs `code` in a fresh
                /usr/bin/python3 (sys.executable) with child_env (or env),
                capturing text output; the process is killed at timeout.

The environment meson gives each test (python/tests/meson.build):
PYTHONPATH=<build>/python, LILCACHE_CLI, LILCACHE_DUMP, LILCACHE_SOURCE_ROOT,
LILCACHE_BUILD_ROOT.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import lilcache

_SESSION_ROOT: str | None = None
_SAVED_ENV: dict[str, str | None] = {}


def pytest_configure(config: pytest.Config) -> None:
    """Points LILCACHE_ROOT and XDG_CACHE_HOME at a private session dir."""
    global _SESSION_ROOT
    _SESSION_ROOT = tempfile.mkdtemp(prefix="lilcache-pytest-")
    os.chmod(_SESSION_ROOT, 0o700)
    for var, sub in (("LILCACHE_ROOT", "root"), ("XDG_CACHE_HOME", "xdg")):
        _SAVED_ENV[var] = os.environ.get(var)
        path = os.path.join(_SESSION_ROOT, sub)
        os.mkdir(path, 0o700)
        os.environ[var] = path
    # Hypothesis keeps its files out of the source tree: in the build tree
    # (kept between runs) under meson, else in the session dir.
    if "HYPOTHESIS_STORAGE_DIRECTORY" not in os.environ:
        _SAVED_ENV["HYPOTHESIS_STORAGE_DIRECTORY"] = None
        build = os.environ.get("LILCACHE_BUILD_ROOT")
        where = os.path.join(build, "python-tests-hypothesis") if build else _SESSION_ROOT
        os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = os.path.join(where, "hypothesis")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Restores the environment and removes the session dir."""
    for var, old in _SAVED_ENV.items():
        if old is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = old
    if _SESSION_ROOT is not None:
        shutil.rmtree(_SESSION_ROOT, ignore_errors=True)


@pytest.fixture
def root(tmp_path: Any) -> str:
    """A fresh, empty cache root of mode 0700, private to this test."""
    path = tmp_path / "root"
    path.mkdir(mode=0o700)
    os.chmod(path, 0o700)  # whatever the umask
    return str(path)


@pytest.fixture
def open_cache(root: str) -> Iterator[Callable[..., lilcache.Cache]]:
    """A factory opening caches under `root`, each closed after the test."""
    opened: list[lilcache.Cache] = []

    def open_(name: str = "t", **options: Any) -> lilcache.Cache:
        options.setdefault("root", root)
        handle = lilcache.Cache(name, **options)
        opened.append(handle)
        return handle

    yield open_
    for handle in opened:
        handle.close()


@pytest.fixture
def cache(open_cache: Callable[..., lilcache.Cache]) -> lilcache.Cache:
    """lilcache.Cache('t', root=root), without a serializer."""
    return open_cache("t")


@pytest.fixture
def pickled(open_cache: Callable[..., lilcache.Cache]) -> lilcache.Cache:
    """lilcache.Cache('t', root=root, serializer='pickle')."""
    return open_cache("t", serializer="pickle")


@pytest.fixture
def keep_default_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Restores the module's default cache (the one init() sets) after the
    test, so that a test calling init() leaves no closed default behind."""
    # The package keeps it in lilcache._default (None until first use).
    if hasattr(lilcache, "_default"):
        monkeypatch.setattr(lilcache, "_default", lilcache._default)


@pytest.fixture
def default_cache(root: str, keep_default_cache: None) -> Iterator[lilcache.Cache]:
    """The process's default cache (module-level functions), under `root`;
    closed after the test, and the previous default restored."""
    handle = lilcache.init("default", root=root)
    yield handle
    handle.close()


def _wait_until(predicate: Callable[[], Any], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


@pytest.fixture
def wait_until() -> Callable[..., bool]:
    """wait_until(predicate, timeout=10.0) -> whether predicate() came true."""
    return _wait_until


@pytest.fixture
def child_env(root: str) -> dict[str, str]:
    """The environment for a subprocess: this module, LILCACHE_ROOT=root."""
    env = dict(os.environ)
    module_dir = os.path.dirname(os.path.dirname(os.path.abspath(lilcache.__file__)))
    paths = [module_dir] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["LILCACHE_ROOT"] = root
    return env


@pytest.fixture
def run_python(
    child_env: dict[str, str],
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """run_python(code, env=None, timeout=60): runs code in a new python3."""

    def run(
        code: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        # subprocess.run kills the child when the timeout expires.
        return subprocess.run(
            [sys.executable, "-c", code],
            env=child_env if env is None else env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run
