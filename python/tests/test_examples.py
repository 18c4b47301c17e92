"""examples/python/*.py as their users run them: each one is a process,
`/usr/bin/python3 examples/python/0N_x.py` with LILCACHE_ROOT set to a fresh
directory, that checks its own outcome (exit status 0) and prints what it
did; these tests check that output and what the example left under the root.

The examples mirror examples/0N_*.cc (the seed's requirements, one each);
test_every_example_is_tested keeps this file and examples/python/ in step.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

SOURCE_ROOT = pathlib.Path(
    os.environ.get("LILCACHE_SOURCE_ROOT", pathlib.Path(__file__).resolve().parents[2]))
EXAMPLES = SOURCE_ROOT / "examples" / "python"

# Every example, and the C++ example it mirrors.
NAMES = [
    "01_multiprocess",
    "02_named_cache",
    "03_snapshot",
    "04_purge",
    "05_expiry",
    "06_rest",
    "07_root",
    "08_logging",
    "09_atomic",
]


def run_example(name: str, root: pathlib.Path, *args: str) -> list[str]:
    """Runs examples/python/<name>.py with LILCACHE_ROOT=root, as a user
    would from a shell; asserts it succeeded and returns its output lines."""
    root.mkdir(mode=0o700, exist_ok=True)
    env = dict(os.environ, LILCACHE_ROOT=str(root))
    env.pop("LILCACHE_LOGLEVEL", None)
    process = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), *args],
        env=env, cwd=root, capture_output=True, text=True, timeout=60)
    assert process.returncode == 0, (
        f"{name}.py exited {process.returncode}\n"
        f"stdout:\n{process.stdout}\nstderr:\n{process.stderr}")
    return process.stdout.splitlines()


def test_every_example_is_tested() -> None:
    on_disk = sorted(p.stem for p in EXAMPLES.glob("[0-9][0-9]_*.py"))
    assert on_disk == NAMES
    cpp = {p.stem for p in (SOURCE_ROOT / "examples").glob("[0-9][0-9]_*.cc")}
    assert set(NAMES) == cpp, "examples/python/ mirrors examples/*.cc one for one"


@pytest.mark.parametrize("name", NAMES)
def test_an_example_is_documented_and_fails_loudly_on_a_wrong_outcome(name: str) -> None:
    """Each example says what it shows (the seed's lines) and how to run it,
    and checks its outcome through example.check, never through assert
    (which python -O removes)."""
    text = (EXAMPLES / f"{name}.py").read_text()
    assert text.startswith('"""')
    assert f"Usage: {name}.py" in text
    assert "example.check(" in text
    assert not re.search(r"^\s*assert\b", text, re.MULTILINE)


def test_an_example_that_fails_a_check_exits_1_with_the_reason(tmp_path: pathlib.Path) -> None:
    """The examples' checks are real: a failed one is exit status 1 and the
    reason on stderr (what the tests below rely on)."""
    process = subprocess.run(
        [sys.executable, "-c",
         "import example; example.run(lambda root: example.check(False, 'broken'))"],
        cwd=EXAMPLES, capture_output=True, text=True, timeout=60)
    assert process.returncode == 1
    assert "check failed: broken" in process.stderr


def test_01_three_processes_share_one_value_and_one_of_eight_threads_pops_it(
        tmp_path: pathlib.Path) -> None:
    lines = run_example("01_multiprocess", tmp_path / "root")
    assert len(lines) == 5, lines
    patterns = [
        r"process (\d+): set\('a', 'b'\)",
        r"process (\d+): get\('a'\) -> 'b'",
        r"process (\d+): pop\('a'\) -> 'b'",
        r"process (\d+): get\('a'\) -> miss",
    ]
    pids = [re.fullmatch(p, line) for p, line in zip(patterns, lines)]
    assert all(pids), lines
    assert len({m.group(1) for m in pids if m}) == 4, "four different processes"
    assert lines[4] == "8 threads raced to pop 'job': 1 got it"


def test_02_a_name_is_a_cache_of_its_own(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "root"
    lines = run_example("02_named_cache", root)
    assert lines[0] == "foo_cache: get('a') -> 'b', bar_cache: get('a') -> miss"
    assert lines[1].startswith("Cache('no/slashes') -> lilcache.InvalidArgumentError: ")
    assert (root / "foo_cache.meta").exists() and (root / "bar_cache.meta").exists()


def test_03_a_periodic_snapshot_then_one_on_demand(tmp_path: pathlib.Path) -> None:
    lines = run_example("03_snapshot", tmp_path / "root")
    periodic = re.fullmatch(r"periodic: (\d+) snapshot\(s\), generation (\d+)", lines[0])
    assert periodic and int(periodic.group(1)) >= 1, lines
    now = re.fullmatch(r"snapshot\(\): generation (\d+), 1 live key\(s\), \d+ -> \d+ bytes of log",
                       lines[1])
    assert now and int(now.group(1)) > int(periodic.group(2)), lines


def test_04_purge_empties_the_cache_for_every_handle(tmp_path: pathlib.Path) -> None:
    lines = run_example("04_purge", tmp_path / "root")
    assert lines == ["after purge(): get('a') -> miss, len(other) -> 0"]


def test_05_a_key_expires_after_its_own_ttl_the_others_after_a_day(tmp_path: pathlib.Path) -> None:
    lines = run_example("05_expiry", tmp_path / "root")
    assert lines == ["after 80 ms: get('token') -> miss, get('a') -> 'b' (24 h left)"]


def test_06_start_serves_the_cache_over_http_until_sigint(tmp_path: pathlib.Path) -> None:
    lines = run_example("06_rest", tmp_path / "root")
    assert re.fullmatch(r"serving foo_cache on http://127\.0\.0\.1:\d+", lines[0]), lines
    assert lines[1:] == [
        "GET /set -> 200, GET /get -> 9 bytes, PUT + GET /pop -> b'payload', then 404;"
        " POST /keys/hits/increment -> 42",
        "SIGINT: start() returned",
    ]


def test_07_the_root_is_created_0700_and_its_files_0600(tmp_path: pathlib.Path) -> None:
    base = tmp_path / "base"
    lines = run_example("07_root", base)
    secured = base / "secured-directory"
    assert lines[0] == f"{secured}: mode 0700"
    files = [re.fullmatch(r"  (\S+): mode 0600", line) for line in lines[1:]]
    assert all(files), lines
    names = {m.group(1) for m in files if m}
    assert "foo_cache.meta" in names
    assert names == {p.name for p in secured.iterdir() if p.is_file()}


def test_08_debug_logging_goes_to_the_caches_log_file(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "root"
    lines = run_example("08_logging", root)
    log = root / "default.log"
    written = log.read_text(errors="replace").splitlines()  # more by now: the close logs too
    counted = re.fullmatch(re.escape(str(log)) + r": (\d+) lines", lines[-1])
    assert counted and 0 < int(counted.group(1)) <= len(written), lines
    assert lines[:-1] == ["  " + line for line in written[:len(lines) - 1]]
    assert any(" debug " in line for line in written), "DEBUG lines are logged"


def test_09_incr_add_get_or_set_and_memoize_lose_nothing_and_compute_once(
        tmp_path: pathlib.Path) -> None:
    lines = run_example("09_atomic", tmp_path / "root")
    assert re.fullmatch(r"get-then-set: expected 8000, got \d+", lines[0]), lines
    assert lines[1] == "incr():       expected 8000, got 8000"
    assert lines[2] == "get_or_set(): 16 askers, make_report ran 1 time(s)"
    assert re.fullmatch(r"memoize: square\(3\), square\(3\), square\(4\) computed 2 time\(s\), "
                        r"key of square\(3\): .+", lines[3]), lines


def test_an_example_also_takes_its_root_as_an_argument(tmp_path: pathlib.Path) -> None:
    """As the C++ examples do: the first argument wins over LILCACHE_ROOT."""
    given = tmp_path / "given"
    given.mkdir(mode=0o700)
    run_example("02_named_cache", tmp_path / "env", str(given))
    assert (given / "foo_cache.meta").exists()
    assert not (tmp_path / "env" / "foo_cache.meta").exists()
