"""lilcache on a Redis Cluster from Python: init(..., backend=URL) and
Cache(..., backend=URL), the seed scenario, multiprocessing children (spawn)
sharing the cache through the cluster, racing pops and increments across
processes, and bad backends.

Needs a cluster: $LILCACHE_TEST_CLUSTER (its URL), which
test/cluster/with_cluster.sh exports; meson runs this file under it as the
test python_cluster (suite 'cluster'). Without the variable every test that
needs it is skipped, saying so (python_cluster_local runs the others: bad backends). Each test uses cache names of its own (the cluster
outlives the tests); every child process is joined or killed.
"""

from __future__ import annotations

import multiprocessing
import os
import pathlib
import pickle
import uuid
from collections.abc import Iterator

import pytest

import lilcache

CLUSTER = os.environ.get("LILCACHE_TEST_CLUSTER", "")
TIMEOUT = 120  # seconds a child may take before it is killed (a hang, not a figure)

needs_cluster = pytest.mark.skipif(
    not CLUSTER,
    reason="LILCACHE_TEST_CLUSTER is unset: run under test/cluster/with_cluster.sh "
    "(meson test python_cluster)",
)


@pytest.fixture
def name() -> str:
    """A cache name of this test's own."""
    return f"py_{uuid.uuid4().hex[:16]}"


@pytest.fixture
def restore_default() -> Iterator[None]:
    """Tests calling lilcache.init() put the previous default back."""
    previous = lilcache._default  # noqa: SLF001
    yield
    lilcache._default = previous  # noqa: SLF001


def no_cache_files(root: str) -> bool:
    """Only the text log under root: the values went to the cluster."""
    return all(".log" in p.name for p in pathlib.Path(root).iterdir())


def join_all(children: list[multiprocessing.process.BaseProcess]) -> list[int | None]:
    """Joins every child (killing one that outlives TIMEOUT); their exit codes."""
    for child in children:
        child.join(TIMEOUT)
        if child.is_alive():
            child.kill()
            child.join()
    return [child.exitcode for child in children]


@needs_cluster
def test_the_seed_scenario_runs_on_the_cluster(name: str, root: str,
                                               restore_default: None) -> None:
    lilcache.init(name, root=root, backend=CLUSTER)
    lilcache.set("a", "b")
    assert lilcache.get("a") == "b"
    # Another handle, as another machine would open it, sees it.
    with lilcache.Cache(name, backend=CLUSTER) as other:
        assert other.get("a") == "b"
        assert other.pop("a") == "b"
    assert lilcache.get("a") is None
    assert no_cache_files(root)


def spawned_reader(name: str, queue: multiprocessing.Queue) -> None:
    """A spawned child that opens the cache by init() on the cluster."""
    lilcache.init(name, backend=CLUSTER)
    queue.put(lilcache.get("from parent"))
    lilcache.set("from child", os.getpid())


def spawned_incr(cache: lilcache.Cache, times: int) -> None:
    """A spawned child given the Cache (pickled: reopened on the cluster)."""
    for _ in range(times):
        cache.incr("count")


@needs_cluster
def test_spawned_children_share_the_cache_through_the_cluster(name: str, root: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    with lilcache.Cache(name, root=root, backend=CLUSTER) as cache:
        cache.set("from parent", "hello")
        queue = ctx.Queue()
        reader = ctx.Process(target=spawned_reader, args=(name, queue))
        reader.start()
        assert join_all([reader]) == [0]
        assert queue.get(timeout=10) == "hello"
        assert cache.get("from child") == reader.pid

        children = [ctx.Process(target=spawned_incr, args=(cache, 25)) for _ in range(4)]
        for child in children:
            child.start()
        assert join_all(children) == [0] * 4
        assert cache.get("count") == 100
    assert no_cache_files(root)


def a_pop(cache: lilcache.Cache, queue: multiprocessing.Queue) -> None:
    queue.put(cache.pop("job"))


@needs_cluster
def test_of_racing_pops_in_spawned_processes_exactly_one_gets_the_value(name: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    with lilcache.Cache(name, backend=CLUSTER) as cache:
        for round_ in range(3):
            cache.set("job", f"job {round_}")
            queue = ctx.Queue()
            children = [ctx.Process(target=a_pop, args=(cache, queue)) for _ in range(6)]
            for child in children:
                child.start()
            assert join_all(children) == [0] * 6
            got = sorted((queue.get(timeout=10) for _ in children), key=str)
            assert [g for g in got if g is not None] == [f"job {round_}"]


@needs_cluster
def test_a_cache_pickles_with_its_backend(name: str) -> None:
    with lilcache.Cache(name, backend=CLUSTER) as cache:
        cache.set("k", "v")
        with pickle.loads(pickle.dumps(cache)) as again:
            assert again.get("k") == "v"


@needs_cluster
def test_lilcache_backend_in_the_environment_chooses_the_cluster(
        name: str, run_python) -> None:  # noqa: ANN001
    with lilcache.Cache(name, backend=CLUSTER) as cache:
        cache.set("k", "from the parent")
    code = (f"import lilcache; c = lilcache.Cache({name!r}); "
            "print(c.get('k')); c.set('k2', 'from the child')")
    env = dict(os.environ, LILCACHE_BACKEND=CLUSTER)
    done = run_python(code, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "from the parent\n"
    with lilcache.Cache(name, backend=CLUSTER) as cache:
        assert cache.get("k2") == "from the child"


@pytest.mark.parametrize("url", ["redis-cluster://127.0.0.1:notaport", "http://127.0.0.1:7000",
                                 "redis://127.0.0.1:7000?pool=x"])
def test_a_bad_backend_url_is_an_invalid_argument_error(url: str) -> None:
    with pytest.raises(lilcache.Error) as info:
        lilcache.Cache("bad", backend=url)
    assert info.value.code == "invalid_argument"


def test_a_backend_that_is_not_a_nonempty_str_is_refused() -> None:
    with pytest.raises(TypeError):
        lilcache.Cache("bad", backend=7000)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="backend must not be empty"):
        lilcache.Cache("bad", backend="")
