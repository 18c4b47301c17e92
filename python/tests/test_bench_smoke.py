"""The Python benchmark (bench/python/bench.py) still runs: a --quick run
with tiny sizes prints its tables, ratios and one verdict per target of
issue 15, and cleans up after itself. Timings are not checked (noisy,
shared machines); what a run prints and checks is."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SOURCE_ROOT = Path(os.environ.get("LILCACHE_SOURCE_ROOT", Path(__file__).resolve().parents[2]))
BENCH = SOURCE_ROOT / "bench" / "python" / "bench.py"
TIMEOUT = 120  # seconds; a --quick run takes a few


def load_bench() -> ModuleType:
    """bench.py as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("lilcache_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def run_bench(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Runs bench.py with this interpreter, its stores under tmp_path."""
    work = tmp_path / "work"
    work.mkdir(mode=0o700, exist_ok=True)
    env = dict(os.environ, LILCACHE_ROOT=str(tmp_path / "root"), TMPDIR=str(work))
    return subprocess.run(
        [sys.executable, str(BENCH), "--dir", str(work), *args],
        capture_output=True, text=True, timeout=TIMEOUT, env=env, check=False,
    )


def peers() -> list[str]:
    """Every peer the benchmark knows; redis only where its server is
    installed (the Debian packages of the others are the test's
    requirements)."""
    redis = ["redis"] if shutil.which("redis-server") else []
    return ["lilcache", "diskcache", "lmdb", "dict"] + redis


def test_a_quick_run_prints_the_tables_the_ratios_and_a_verdict_per_target(tmp_path: Path) -> None:
    out_json = tmp_path / "bench.json"
    done = run_bench(tmp_path, "--quick", "--peers", ",".join(peers()), "--json", str(out_json))
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "## µs per operation" in out
    assert "## ops/s" in out
    assert "## Ratios: lilcache ops/s / peer ops/s" in out
    assert "## Where a lilcache call's time goes" in out
    assert "## lilcache compactions" in out
    assert "engine get() into a buffer, hit, timed in C++ in this process" in out  # _bench_engine()
    # One row per store in both tables, a number in every cell.
    labels = {"lilcache": "lilcache", "diskcache": "diskcache", "lmdb": "py-lmdb", "dict": "dict",
              "redis": "redis-py"}
    for store in peers():
        rows = re.findall(rf"^\| {re.escape(labels[store])} \|(.*)\|$", out, re.MULTILINE)
        assert len(rows) == 2, f"{store}: {rows}"
        for row in rows:
            cells = [c.strip() for c in row.split("|")]
            assert len(cells) == 4 and all(re.fullmatch(r"[\d.]+[kM]?", c) for c in cells), row
    assert re.search(r"^\| vs py-lmdb \|", out, re.MULTILINE)
    assert re.search(r"^\| vs diskcache \|", out, re.MULTILINE)
    # Five targets, each judged (both peers were measured).
    verdicts = re.findall(r"^(PASS|FAIL|NOT MEASURED): (.*)$", out, re.MULTILINE)
    assert [v for v, _ in verdicts if v == "NOT MEASURED"] == []
    assert len(verdicts) == 5, verdicts
    data = json.loads(out_json.read_text())
    assert set(data["medians_ns_per_op"]) == set(peers())
    assert len(data["targets"]) == 5 and all(t["passed"] in (True, False) for t in data["targets"])


def test_a_run_leaves_no_files_and_no_redis_server_behind(tmp_path: Path) -> None:
    done = run_bench(tmp_path, "--quick", "--peers", ",".join(peers()), "--no-breakdown")
    assert done.returncode == 0, done.stdout + done.stderr
    assert list((tmp_path / "work").iterdir()) == []
    if "redis" in peers():
        server = re.search(r"^\[setup\] redis-server pid (\d+) on (\S+)$", done.stdout,
                           re.MULTILINE)
        assert server is not None, done.stdout
        with pytest.raises(ProcessLookupError):
            os.kill(int(server[1]), 0)  # reaped by the benchmark: gone
        assert not Path(server[2]).parent.exists()


def test_peers_it_does_not_know_are_a_usage_error(tmp_path: Path) -> None:
    done = run_bench(tmp_path, "--quick", "--peers", "lilcache,memcached")
    assert done.returncode == 2
    assert "memcached" in done.stderr


def test_a_missing_target_peer_is_reported_not_measured(tmp_path: Path) -> None:
    done = run_bench(tmp_path, "--quick", "--peers", "lilcache,lmdb", "--no-breakdown")
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^NOT MEASURED: get >= 10x diskcache: diskcache missing$", done.stdout,
                     re.MULTILINE)
    assert re.search(r"^(PASS|FAIL): get >= 2x py-lmdb: ", done.stdout, re.MULTILINE)


def test_the_read_back_checks_catch_a_wrong_or_missing_value() -> None:
    bench = load_bench()
    key = b"0123456789abcdef"
    good = bench.make_value(key, 7)
    assert len(good) == bench.VALUE_SIZE and bench.value_ok(key, good)
    bench.check_sample("fake", {key: good}.get, [key], bench.random.Random(1))
    for wrong in (None, good[:-1], bench.make_value(b"fedcba9876543210", 7), good.decode()):
        with pytest.raises(bench.BenchError):
            bench.check_sample("fake", {key: wrong}.get, [key], bench.random.Random(1))
    with pytest.raises(bench.BenchError):
        bench.check_exact("fake", {key: good}.get, {key: bench.make_value(key, 8)})


def test_the_engine_hook_counts_the_keys_it_found_and_stores_sets(root: str) -> None:
    import lilcache
    from lilcache import _lilcache

    cache = lilcache.Cache("hook", root=root)
    try:
        keys = [b"k%d" % i for i in range(100)]
        ns, stored = _lilcache._bench_engine(cache, keys, [b"v%d" % i for i in range(100)])
        assert ns >= 0 and stored == 100
        assert cache.get(b"k7") == b"v7" and len(cache) == 100
        ns, found = _lilcache._bench_engine(cache, keys + [b"absent", b"k7"])
        assert ns >= 0 and found == 101
        with pytest.raises(ValueError):
            _lilcache._bench_engine(cache, keys, [b"v"])
    finally:
        cache.close()
