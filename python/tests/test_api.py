"""The Python API of lilcache in one process: every Cache method and
module-level function of the spec (python/lilcache/__init__.pyi)."""

from __future__ import annotations

import ast
import datetime
import inspect
import math
import os
import pickle
import pydoc
from collections.abc import Callable
from typing import Any

import pytest

import lilcache

STATS_FIELDS = {
    "hits", "misses", "sets", "deletes", "expired", "keys", "bytes_live",
    "bytes_dead", "bytes_file", "generation", "index_slots", "index_used",
    "processes", "compactions", "snapshots", "last_snapshot_ms", "evictions",
    "max_bytes",
}  # fmt: skip
COMPACTION_FIELDS = {
    "compacted", "generation", "bytes_before", "bytes_after", "keys_live",
    "keys_expired", "keys_deleted", "keys_evicted", "duration", "writer_pause",
}  # fmt: skip


# ---- get / set / mapping protocol -------------------------------------------


def test_set_returns_true_and_get_returns_the_value(cache: lilcache.Cache) -> None:
    assert cache.set("a", "b") is True
    assert cache.get("a") == "b"


def test_get_of_an_absent_key_returns_the_default(cache: lilcache.Cache) -> None:
    assert cache.get("absent") is None
    marker = object()
    assert cache.get("absent", marker) is marker
    assert cache.get("absent", default=5) == 5


def test_set_overwrites(cache: lilcache.Cache) -> None:
    cache.set("a", "1")
    cache.set("a", "2")
    assert cache.get("a") == "2"


def test_getitem_returns_the_value_and_raises_keyerror_on_a_miss(
    cache: lilcache.Cache,
) -> None:
    cache["a"] = "b"
    assert cache["a"] == "b"
    with pytest.raises(KeyError):
        cache["absent"]


def test_delitem_removes_and_raises_keyerror_on_a_miss(cache: lilcache.Cache) -> None:
    cache["a"] = "b"
    del cache["a"]
    assert "a" not in cache
    with pytest.raises(KeyError):
        del cache["a"]


def test_contains_tells_live_keys(cache: lilcache.Cache) -> None:
    assert "a" not in cache
    cache["a"] = ""
    assert "a" in cache
    assert b"a" in cache


def test_len_counts_live_keys(cache: lilcache.Cache) -> None:
    assert len(cache) == 0
    for i in range(10):
        cache[f"k{i}"] = i
    assert len(cache) == 10
    cache.delete("k0")
    assert len(cache) == 9


def test_iteration_yields_every_key_once(cache: lilcache.Cache) -> None:
    expected = {f"k{i}" for i in range(20)}
    for key in expected:
        cache[key] = key
    seen = list(iter(cache))
    assert sorted(seen) == sorted(expected)
    assert set(cache) == expected


# ---- add / pop / delete ------------------------------------------------------


def test_add_stores_only_if_absent(cache: lilcache.Cache) -> None:
    assert cache.add("a", "first") is True
    assert cache.add("a", "second") is False
    assert cache.get("a") == "first"


def test_add_after_delete_stores_again(cache: lilcache.Cache) -> None:
    cache.add("a", "first")
    cache.delete("a")
    assert cache.add("a", "again") is True
    assert cache["a"] == "again"


def test_add_with_expire_sets_a_ttl(cache: lilcache.Cache) -> None:
    assert cache.add("a", "v", expire=60) is True
    ttl = cache.ttl("a")
    assert ttl is not None and 0 < ttl <= 60


def test_pop_returns_the_value_once_then_the_default(cache: lilcache.Cache) -> None:
    cache.set("a", "b")
    assert cache.pop("a") == "b"
    assert cache.pop("a") is None
    assert cache.pop("a", "dflt") == "dflt"
    assert cache.pop("a", default=7) == 7
    assert "a" not in cache


def test_delete_tells_whether_the_key_was_there(cache: lilcache.Cache) -> None:
    cache.set("a", "b")
    assert cache.delete("a") is True
    assert cache.delete("a") is False
    assert cache.get("a") is None


# ---- incr / decr -------------------------------------------------------------


def test_incr_starts_absent_keys_at_default(cache: lilcache.Cache) -> None:
    assert cache.incr("n") == 1
    assert cache.incr("n") == 2
    assert cache.incr("m", 5) == 5
    assert cache.incr("d", default=10) == 11
    assert cache.incr("e", delta=3, default=-10) == -7
    assert cache.get("n") == 2


def test_incr_of_a_stored_int_adds_delta(cache: lilcache.Cache) -> None:
    cache.set("n", 41)
    assert cache.incr("n") == 42
    assert cache.incr("n", -50) == -8
    assert cache["n"] == -8


def test_incr_keeps_a_present_keys_ttl(cache: lilcache.Cache) -> None:
    cache.set("n", 1, expire=60)
    cache.incr("n")
    ttl = cache.ttl("n")
    assert ttl is not None and 0 < ttl <= 60


def test_incr_with_default_none_raises_keyerror_on_an_absent_key(
    cache: lilcache.Cache,
) -> None:
    with pytest.raises(KeyError):
        cache.incr("absent", default=None)
    assert "absent" not in cache
    cache.set("present", 1)
    assert cache.incr("present", default=None) == 2


def test_decr_subtracts(cache: lilcache.Cache) -> None:
    assert cache.decr("n") == -1
    assert cache.decr("n", 4) == -5
    assert cache.decr("m", delta=2, default=10) == 8
    with pytest.raises(KeyError):
        cache.decr("absent", default=None)


# ---- ttl / expire / touch ----------------------------------------------------


def test_ttl_is_none_for_absent_and_inf_for_keys_without_expiry(
    cache: lilcache.Cache,
) -> None:
    assert cache.ttl("absent") is None
    cache.set("a", "b")
    assert cache.ttl("a") == math.inf


def test_ttl_is_float_seconds_left(cache: lilcache.Cache) -> None:
    cache.set("a", "b", expire=100)
    ttl = cache.ttl("a")
    assert isinstance(ttl, float)
    assert 0 < ttl <= 100


@pytest.mark.parametrize(
    "expire, seconds",
    [
        (30, 30),
        (30.5, 30.5),
        ("45s", 45),
        ("1h30m", 5400),
        ("1d", 86400),
        ("500ms", 0.5),
        (datetime.timedelta(minutes=2), 120),
        (datetime.timedelta(days=7), 7 * 86400),
    ],
    ids=["int", "float", "str-s", "str-1h30m", "str-1d", "str-ms", "timedelta", "timedelta-7d"],
)
def test_expire_accepts_int_float_str_and_timedelta(
    cache: lilcache.Cache, expire: Any, seconds: float
) -> None:
    cache.set("a", "b", expire=expire)
    ttl = cache.ttl("a")
    assert ttl is not None
    # The key may have expired already only for the 500 ms case.
    if seconds > 1:
        assert seconds - 60 < ttl <= seconds
        assert cache.get("a") == "b"


def test_a_key_with_a_short_expire_vanishes(
    cache: lilcache.Cache, wait_until: Callable[..., bool]
) -> None:
    cache.set("short", "v", expire=0.05)
    cache.set("long", "v")
    assert wait_until(lambda: cache.get("short") is None)
    assert "short" not in cache
    assert cache.ttl("short") is None
    assert cache.keys() == ["long"]
    assert len(cache) == 1


def test_sub_millisecond_expire_is_accepted_and_expires(
    cache: lilcache.Cache, wait_until: Callable[..., bool]
) -> None:
    cache.set("a", "v", expire=0.0001)
    assert wait_until(lambda: "a" not in cache)


def test_expire_none_uses_the_caches_default(open_cache: Callable[..., lilcache.Cache]) -> None:
    cache = open_cache("t", expires="1d")
    cache.set("a", "b")
    ttl = cache.ttl("a")
    assert ttl is not None and 86400 - 60 < ttl <= 86400
    cache.set("b", "b", expire=10)
    ttl = cache.ttl("b")
    assert ttl is not None and 0 < ttl <= 10


def test_cache_expires_accepts_seconds_and_timedelta(
    open_cache: Callable[..., lilcache.Cache],
) -> None:
    for expires in (3600, 3600.0, datetime.timedelta(hours=1), "1h"):
        cache = open_cache("t", expires=expires)
        cache.set("a", "b")
        ttl = cache.ttl("a")
        assert ttl is not None and 3600 - 60 < ttl <= 3600, expires


def test_without_expires_keys_never_expire(cache: lilcache.Cache) -> None:
    cache.set("a", "b", expire=None)
    assert cache.ttl("a") == math.inf


def test_touch_tells_whether_the_key_exists(cache: lilcache.Cache) -> None:
    assert cache.touch("absent") is False
    assert cache.touch("absent", 10) is False
    assert "absent" not in cache
    cache.set("a", "b")
    assert cache.touch("a", 10) is True


def test_touch_with_expire_sets_a_new_ttl(cache: lilcache.Cache) -> None:
    cache.set("a", "b")
    cache.touch("a", 100)
    ttl = cache.ttl("a")
    assert ttl is not None and 0 < ttl <= 100
    cache.touch("a", expire="1d")
    ttl = cache.ttl("a")
    assert ttl is not None and 100 < ttl <= 86400
    assert cache["a"] == "b"


def test_touch_without_expire_makes_the_key_persistent_for_every_handle(
    open_cache: Callable[..., lilcache.Cache],
) -> None:
    cache = open_cache("t", expires="1h")
    cache.set("a", "b")
    assert cache.ttl("a") != math.inf
    assert cache.touch("a") is True
    assert cache.ttl("a") == math.inf
    other = open_cache("t")
    assert other.ttl("a") == math.inf
    assert other["a"] == "b"


def test_a_short_touch_expires_the_key(
    cache: lilcache.Cache, wait_until: Callable[..., bool]
) -> None:
    cache.set("a", "b")
    assert cache.touch("a", 0.05) is True
    assert wait_until(lambda: "a" not in cache)


# ---- get_or_set --------------------------------------------------------------


def test_get_or_set_computes_once_and_returns_the_stored_value(
    cache: lilcache.Cache,
) -> None:
    calls: list[int] = []

    def compute() -> str:
        calls.append(1)
        return "computed"

    assert cache.get_or_set("k", compute) == "computed"
    assert cache.get_or_set("k", compute) == "computed"
    assert len(calls) == 1
    assert cache["k"] == "computed"


def test_get_or_set_returns_an_existing_value_without_computing(
    cache: lilcache.Cache,
) -> None:
    cache.set("k", 7)

    def compute() -> int:
        raise AssertionError("computed although the key was present")

    assert cache.get_or_set("k", compute) == 7


def test_get_or_set_keeps_the_type_of_the_computed_value(cache: lilcache.Cache) -> None:
    assert cache.get_or_set("s", lambda: "x") == "x"
    assert cache.get_or_set("b", lambda: b"x") == b"x"
    assert cache.get_or_set("i", lambda: 12) == 12
    assert (cache.get("s"), cache.get("b"), cache.get("i")) == ("x", b"x", 12)
    assert isinstance(cache.get_or_set("i", lambda: 0), int)


def test_get_or_set_with_expire_sets_a_ttl(cache: lilcache.Cache) -> None:
    cache.get_or_set("k", lambda: "v", expire=60)
    ttl = cache.ttl("k")
    assert ttl is not None and 0 < ttl <= 60


def test_get_or_set_propagates_the_exception_and_stores_nothing(
    cache: lilcache.Cache,
) -> None:
    class Boom(Exception):
        pass

    def compute() -> str:
        raise Boom("no value")

    with pytest.raises(Boom, match="no value"):
        cache.get_or_set("k", compute)
    assert "k" not in cache
    # The key is not left locked: the next caller computes.
    assert cache.get_or_set("k", lambda: "second") == "second"


# ---- memoize -----------------------------------------------------------------


def test_memoize_caches_results_per_argument(cache: lilcache.Cache) -> None:
    calls: list[tuple[Any, ...]] = []

    @cache.memoize()
    def square(x: int) -> int:
        calls.append((x,))
        return x * x

    assert square(3) == 9
    assert square(3) == 9
    assert square(4) == 16
    assert calls == [(3,), (4,)]


def test_memoize_tells_keyword_arguments_apart(cache: lilcache.Cache) -> None:
    calls: list[Any] = []

    @cache.memoize()
    def f(a: int, b: int = 0) -> str:
        calls.append((a, b))
        return f"{a}-{b}"

    assert f(1, b=2) == "1-2"
    assert f(1, b=3) == "1-3"
    assert f(1, b=2) == "1-2"
    assert len(calls) == 2
    assert f.__cache_key__(1, b=2) != f.__cache_key__(1, b=3)


def test_memoize_key_is_in_the_cache_after_a_call(cache: lilcache.Cache) -> None:
    @cache.memoize()
    def f(x: str) -> str:
        return x.upper()

    key = f.__cache_key__("a")
    assert isinstance(key, (str, bytes))
    assert f.__cache_key__("a") == key
    assert f.__cache_key__("b") != key
    assert key not in cache
    assert f("a") == "A"
    assert cache[key] == "A"


def test_memoize_distinct_functions_have_distinct_keys(cache: lilcache.Cache) -> None:
    @cache.memoize()
    def f(x: int) -> int:
        return x + 1

    @cache.memoize()
    def g(x: int) -> int:
        return x + 2

    assert f.__cache_key__(1) != g.__cache_key__(1)
    assert (f(1), g(1)) == (2, 3)


def test_memoize_name_chooses_the_key(cache: lilcache.Cache) -> None:
    @cache.memoize(name="shared")
    def f(x: int) -> int:
        return x + 1

    @cache.memoize(name="shared")
    def g(x: int) -> int:
        raise AssertionError("g computed although f stored the result")

    assert f.__cache_key__(1) == g.__cache_key__(1)
    assert f(1) == 2
    assert g(1) == 2


def test_memoize_keeps_the_functions_name_and_doc(cache: lilcache.Cache) -> None:
    @cache.memoize()
    def documented(x: int) -> int:
        """Adds one."""
        return x + 1

    assert documented.__name__ == "documented"
    assert documented.__doc__ == "Adds one."


def test_memoize_expire_recomputes_after_expiry(
    cache: lilcache.Cache, wait_until: Callable[..., bool]
) -> None:
    calls: list[int] = []

    @cache.memoize(expire=0.05)
    def f() -> int:
        calls.append(1)
        return len(calls)

    assert f() == 1
    assert wait_until(lambda: f.__cache_key__() not in cache)
    assert f() == 2


def test_memoize_expire_sets_the_ttl(cache: lilcache.Cache) -> None:
    @cache.memoize(expire="1h")
    def f() -> str:
        return "v"

    f()
    ttl = cache.ttl(f.__cache_key__())
    assert ttl is not None and 0 < ttl <= 3600


# ---- keys / purge / clear ----------------------------------------------------


def test_keys_lists_every_live_key(cache: lilcache.Cache) -> None:
    for key in ("a1", "a2", "b1"):
        cache[key] = key
    assert sorted(cache.keys()) == ["a1", "a2", "b1"]


def test_keys_with_a_prefix_lists_only_matching_keys(cache: lilcache.Cache) -> None:
    for key in ("a1", "a2", "b1", "ab"):
        cache[key] = key
    assert sorted(cache.keys("a")) == ["a1", "a2", "ab"]
    assert sorted(cache.keys(prefix="ab")) == ["ab"]
    assert sorted(cache.keys(b"a")) == ["a1", "a2", "ab"]
    assert cache.keys("zzz") == []


def test_keys_limit_caps_the_count(cache: lilcache.Cache) -> None:
    names = {f"k{i}" for i in range(10)}
    for key in names:
        cache[key] = key
    some = cache.keys(limit=3)
    assert len(some) == 3 and set(some) <= names
    assert len(cache.keys("k", limit=5)) == 5
    assert len(cache.keys(limit=100)) == 10
    assert sorted(cache.keys(limit=None)) == sorted(names)


def test_keys_omits_deleted_keys(cache: lilcache.Cache) -> None:
    cache["a"] = "1"
    cache["b"] = "2"
    cache.delete("a")
    assert cache.keys() == ["b"]


def test_purge_empties_the_cache_for_every_handle(
    open_cache: Callable[..., lilcache.Cache],
) -> None:
    cache = open_cache("t")
    other = open_cache("t")
    for i in range(50):
        cache[f"k{i}"] = i
    assert cache.purge() is None
    assert len(other) == 0
    assert other.keys() == []
    assert other.get("k1") is None
    cache["after"] = "x"
    assert other["after"] == "x"


def test_clear_returns_the_number_of_keys_it_removed(cache: lilcache.Cache) -> None:
    assert cache.clear() == 0
    for i in range(7):
        cache[f"k{i}"] = i
    assert cache.clear() == 7
    assert len(cache) == 0


# ---- stats / compact / snapshot / sync ----------------------------------------


def test_stats_has_every_field_of_the_engine(cache: lilcache.Cache) -> None:
    stats = cache.stats()
    assert isinstance(stats, dict)
    assert set(stats) == STATS_FIELDS
    assert all(type(v) is int for v in stats.values()), stats


def test_stats_count_operations(cache: lilcache.Cache) -> None:
    before = cache.stats()
    cache.set("a", "b")
    cache.set("c", "d")
    cache.get("a")
    cache.get("absent")
    cache.delete("c")
    after = cache.stats()
    assert after["sets"] - before["sets"] == 2
    assert after["hits"] - before["hits"] >= 1
    assert after["misses"] - before["misses"] >= 1
    assert after["deletes"] - before["deletes"] == 1
    assert after["keys"] == 1
    assert after["processes"] >= 1


@pytest.mark.parametrize("method", ["compact", "snapshot"])
def test_compact_and_snapshot_return_a_compaction_result(
    cache: lilcache.Cache, method: str
) -> None:
    for i in range(20):
        cache[f"k{i}"] = "x" * 100
    for i in range(5):
        del cache[f"k{i}"]
    generation = cache.stats()["generation"]
    result = getattr(cache, method)()
    assert isinstance(result, dict)
    assert set(result) == COMPACTION_FIELDS
    assert result["compacted"] is True
    assert result["keys_live"] == 15
    assert result["generation"] > generation
    assert cache.stats()["generation"] == result["generation"]
    for field in ("duration", "writer_pause"):
        assert isinstance(result[field], float) and result[field] >= 0
    for field in COMPACTION_FIELDS - {"compacted", "duration", "writer_pause"}:
        assert type(result[field]) is int, field
    assert sorted(cache.keys()) == sorted(f"k{i}" for i in range(5, 20))


def test_snapshot_is_counted_in_stats(cache: lilcache.Cache) -> None:
    cache["a"] = "b"
    before = cache.stats()["snapshots"]
    cache.snapshot()
    stats = cache.stats()
    assert stats["snapshots"] == before + 1
    assert stats["last_snapshot_ms"] > 0


def test_sync_returns_none(cache: lilcache.Cache) -> None:
    cache["a"] = "b"
    assert cache.sync() is None
    assert cache["a"] == "b"


# ---- opening: options, properties, create=False -------------------------------


def test_name_root_and_serializer_properties(
    open_cache: Callable[..., lilcache.Cache], root: str
) -> None:
    cache = open_cache("props")
    assert cache.name == "props"
    assert os.path.realpath(cache.root) == os.path.realpath(root)
    assert cache.serializer is None
    assert open_cache("props", serializer="pickle").serializer == "pickle"


def test_default_name_is_default(root: str) -> None:
    with lilcache.Cache(root=root) as cache:
        assert cache.name == "default"


def test_root_defaults_to_lilcache_root(
    root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LILCACHE_ROOT", root)
    with lilcache.Cache("envroot") as cache:
        cache["a"] = "b"
        assert os.path.realpath(cache.root) == os.path.realpath(root)
    assert "envroot" in lilcache.list_caches(root)


def test_root_falls_back_to_xdg_cache_home(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    xdg = tmp_path / "xdg"
    xdg.mkdir(mode=0o700)
    monkeypatch.delenv("LILCACHE_ROOT")
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    with lilcache.Cache("xdg") as cache:
        assert os.path.realpath(cache.root) == os.path.realpath(xdg / "lilcache")
    assert lilcache.list_caches(str(xdg / "lilcache")) == ["xdg"]


def test_two_handles_share_data(open_cache: Callable[..., lilcache.Cache]) -> None:
    one = open_cache("t")
    two = open_cache("t")
    one["a"] = "b"
    assert two["a"] == "b"
    assert two.pop("a") == "b"
    assert "a" not in one


def test_distinct_names_are_distinct_caches(open_cache: Callable[..., lilcache.Cache]) -> None:
    one = open_cache("one")
    two = open_cache("two")
    one["a"] = "b"
    assert "a" not in two


def test_create_false_refuses_a_missing_cache(
    open_cache: Callable[..., lilcache.Cache], root: str
) -> None:
    with pytest.raises(lilcache.Error) as info:
        lilcache.Cache("missing", root=root, create=False)
    assert info.value.code == "no_such_cache"
    assert "missing" in str(info.value)
    assert lilcache.list_caches(root) == []
    open_cache("missing")["a"] = "b"
    existing = open_cache("missing", create=False)
    assert existing["a"] == "b"


@pytest.mark.parametrize(
    "options",
    [
        {"snapshot": "120s"},
        {"snapshot": datetime.timedelta(minutes=5)},
        {"snapshot": 3600},
        {"loglevel": "DEBUG"},
        {"loglevel": "debug"},
        {"loglevel": "Warn"},
        {"max_bytes": 1 << 30},
        {"sync": "always"},
        {"sync": "100ms"},
        {"sync": 0.5},
        {"compact_dead_ratio": 0.5},
        {"compact_dead_ratio": 0.0},
        {"get_or_set_timeout": "5s"},
        {"get_or_set_timeout": 2.5},
        {"expires": "1d"},
    ],
    ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()),
)
def test_every_option_is_accepted(
    open_cache: Callable[..., lilcache.Cache], options: dict[str, Any]
) -> None:
    cache = open_cache("opts", **options)
    cache["a"] = "b"
    assert cache["a"] == "b"


def test_max_bytes_is_the_caches_limit(open_cache: Callable[..., lilcache.Cache]) -> None:
    cache = open_cache("t", max_bytes=1 << 20)
    assert cache.stats()["max_bytes"] == 1 << 20


# ---- close / context manager -------------------------------------------------


def test_close_is_idempotent_and_sets_closed(root: str) -> None:
    cache = lilcache.Cache("t", root=root)
    assert cache.closed is False
    cache.close()
    assert cache.closed is True
    cache.close()
    assert cache.closed is True


USE_AFTER_CLOSE: list[tuple[str, Callable[[lilcache.Cache], Any]]] = [
    ("get", lambda c: c.get("a")),
    ("set", lambda c: c.set("a", "b")),
    ("add", lambda c: c.add("a", "b")),
    ("pop", lambda c: c.pop("a")),
    ("delete", lambda c: c.delete("a")),
    ("incr", lambda c: c.incr("a")),
    ("decr", lambda c: c.decr("a")),
    ("touch", lambda c: c.touch("a")),
    ("ttl", lambda c: c.ttl("a")),
    ("get_or_set", lambda c: c.get_or_set("a", lambda: "b")),
    ("keys", lambda c: c.keys()),
    ("purge", lambda c: c.purge()),
    ("clear", lambda c: c.clear()),
    ("stats", lambda c: c.stats()),
    ("compact", lambda c: c.compact()),
    ("snapshot", lambda c: c.snapshot()),
    ("sync", lambda c: c.sync()),
    ("getitem", lambda c: c["a"]),
    ("setitem", lambda c: c.__setitem__("a", "b")),
    ("delitem", lambda c: c.__delitem__("a")),
    ("contains", lambda c: "a" in c),
    ("len", lambda c: len(c)),
    ("iter", lambda c: list(iter(c))),
    ("memoize", lambda c: c.memoize()(lambda: "v")()),
]


@pytest.mark.parametrize(
    "operation", [op for _, op in USE_AFTER_CLOSE], ids=[name for name, _ in USE_AFTER_CLOSE]
)
def test_every_operation_after_close_raises_invalid_state(
    root: str, operation: Callable[[lilcache.Cache], Any]
) -> None:
    cache = lilcache.Cache("t", root=root)
    cache["a"] = "b"
    cache.close()
    with pytest.raises(lilcache.Error) as info:
        operation(cache)
    assert info.value.code == "invalid_state"
    assert str(info.value)


def test_with_statement_returns_the_cache_and_closes_it(root: str) -> None:
    with lilcache.Cache("t", root=root) as cache:
        assert isinstance(cache, lilcache.Cache)
        cache["a"] = "b"
        assert not cache.closed
    assert cache.closed
    with lilcache.Cache("t", root=root) as again:
        assert again["a"] == "b"


def test_with_statement_closes_on_an_exception(root: str) -> None:
    with pytest.raises(RuntimeError):
        with lilcache.Cache("t", root=root) as cache:
            raise RuntimeError("inside")
    assert cache.closed


def test_closing_one_handle_leaves_the_others_working(
    open_cache: Callable[..., lilcache.Cache],
) -> None:
    one = open_cache("t")
    two = open_cache("t")
    one["a"] = "b"
    one.close()
    assert two["a"] == "b"


def test_data_persists_across_close_and_reopen(root: str) -> None:
    with lilcache.Cache("t", root=root) as cache:
        cache["s"] = "str"
        cache["b"] = b"bytes"
        cache["i"] = 42
    with lilcache.Cache("t", root=root) as cache:
        assert (cache["s"], cache["b"], cache["i"]) == ("str", b"bytes", 42)


# ---- pickling a Cache ----------------------------------------------------------


def test_a_pickled_cache_reopens_the_same_cache(open_cache: Callable[..., lilcache.Cache]) -> None:
    cache = open_cache("t", expires="1h")
    cache["a"] = "b"
    copy = pickle.loads(pickle.dumps(cache))
    try:
        assert copy is not cache
        assert copy.name == cache.name
        assert copy.root == cache.root
        assert copy.serializer is None
        assert copy["a"] == "b"
        copy["c"] = "d"
        assert cache["c"] == "d"
        # Same options: the default expiry came along.
        ttl = copy.ttl("c")
        assert ttl is not None and 0 < ttl <= 3600
    finally:
        copy.close()
    assert not cache.closed


def test_a_pickled_cache_keeps_its_serializer(pickled: lilcache.Cache) -> None:
    pickled["a"] = [1, 2]
    copy = pickle.loads(pickle.dumps(pickled))
    try:
        assert copy.serializer == "pickle"
        assert copy["a"] == [1, 2]
    finally:
        copy.close()


# ---- module level ---------------------------------------------------------------


def test_init_returns_the_default_cache(default_cache: lilcache.Cache, root: str) -> None:
    assert isinstance(default_cache, lilcache.Cache)
    assert default_cache.name == "default"
    assert os.path.realpath(default_cache.root) == os.path.realpath(root)
    assert lilcache.cache() is default_cache


def test_module_functions_act_on_the_default_cache(default_cache: lilcache.Cache) -> None:
    assert lilcache.set("a", "b") is True
    assert default_cache["a"] == "b"
    assert lilcache.get("a") == "b"
    assert lilcache.get("absent", "d") == "d"
    assert lilcache.add("a", "x") is False
    assert lilcache.add("n", 5) is True
    assert lilcache.incr("n") == 6
    assert lilcache.decr("n", 2) == 4
    assert lilcache.touch("a", 100) is True
    ttl = lilcache.ttl("a")
    assert ttl is not None and 0 < ttl <= 100
    assert lilcache.touch("a") is True
    assert lilcache.ttl("a") == math.inf
    assert sorted(lilcache.keys()) == ["a", "n"]
    assert lilcache.keys("n") == ["n"]
    assert lilcache.keys(limit=1)[0] in ("a", "n")
    assert lilcache.pop("a") == "b"
    assert lilcache.pop("a", "gone") == "gone"
    assert lilcache.delete("n") is True
    assert lilcache.delete("n") is False
    lilcache.set("x", "y", expire=60)
    assert 0 < default_cache.ttl("x") <= 60
    assert lilcache.purge() is None
    assert len(default_cache) == 0


def test_module_memoize_uses_the_default_cache(default_cache: lilcache.Cache) -> None:
    calls: list[int] = []

    @lilcache.memoize()
    def f(x: int) -> int:
        calls.append(x)
        return x * 2

    assert f(2) == 4
    assert f(2) == 4
    assert calls == [2]
    assert default_cache[f.__cache_key__(2)] == 4


def test_init_with_options(root: str, keep_default_cache: None) -> None:
    cache = lilcache.init("foo_cache", root=root, expires="1d", snapshot="120s", loglevel="DEBUG")
    try:
        assert lilcache.cache() is cache
        assert cache.name == "foo_cache"
        lilcache.set("a", "b")
        ttl = cache.ttl("a")
        assert ttl is not None and 86400 - 60 < ttl <= 86400
    finally:
        cache.close()


def test_init_again_switches_the_default_cache(root: str, keep_default_cache: None) -> None:
    first = lilcache.init("first", root=root)
    second = lilcache.init("second", root=root, serializer="pickle")
    try:
        assert lilcache.cache() is second
        lilcache.set("a", 1.5)
        assert second["a"] == 1.5
        assert "a" not in first
    finally:
        first.close()
        second.close()


def test_without_init_the_first_call_opens_default_under_lilcache_root(
    run_python: Callable[..., Any], root: str
) -> None:
    code = (
        "import lilcache\n"
        "lilcache.set('a', 'b')\n"
        "c = lilcache.cache()\n"
        "print(c.name, lilcache.get('a'))\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["default", "b"]
    assert lilcache.list_caches(root) == ["default"]
    with lilcache.Cache("default", root=root) as cache:
        assert cache["a"] == "b"


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("500ms", 0.5),
        ("120s", 120.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1h30m", 5400.0),
        ("1d", 86400.0),
        ("1w", 604800.0),
        (2, 2.0),
        (0.25, 0.25),
        (datetime.timedelta(minutes=1, milliseconds=500), 60.5),
    ],
)
def test_parse_duration_returns_seconds(text: Any, seconds: float) -> None:
    result = lilcache.parse_duration(text)
    assert isinstance(result, float)
    assert result == seconds


def test_list_caches_names_the_caches_of_a_root(
    open_cache: Callable[..., lilcache.Cache], root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert lilcache.list_caches(root) == []
    open_cache("alpha")
    open_cache("beta")
    names = lilcache.list_caches(root)
    assert sorted(names) == ["alpha", "beta"]
    assert all(isinstance(n, str) for n in names)
    monkeypatch.setenv("LILCACHE_ROOT", root)
    assert sorted(lilcache.list_caches()) == ["alpha", "beta"]


def test_version_is_a_string() -> None:
    assert isinstance(lilcache.__version__, str) and lilcache.__version__


# ---- the stub, the exports and the docstrings ----------------------------------


def _stub_path() -> str:
    return os.path.join(os.path.dirname(lilcache.__file__), "__init__.pyi")


def _stub_tree() -> ast.Module:
    with open(_stub_path(), encoding="utf-8") as f:
        return ast.parse(f.read())


def _public(names: set[str]) -> set[str]:
    return {n for n in names if not n.startswith("_")}


def _stub_module_names() -> set[str]:
    names: set[str] = set()
    for node in _stub_tree().body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def _module_exports() -> set[str]:
    if hasattr(lilcache, "__all__"):
        return set(lilcache.__all__)
    # Without __all__: the public names that are not imported modules.
    return {
        n for n in _public(set(dir(lilcache)))
        if not inspect.ismodule(getattr(lilcache, n))
    }  # fmt: skip


def test_the_stub_names_exactly_what_the_module_exports() -> None:
    stub = _public(_stub_module_names())
    exported = _public(_module_exports())
    assert stub == exported, (
        f"in the stub only: {sorted(stub - exported)}; "
        f"exported only: {sorted(exported - stub)}"
    )
    for name in stub | {"__version__"}:
        assert hasattr(lilcache, name), name


@pytest.mark.parametrize("cls", ["Cache", "Error", "InvalidArgumentError", "LimitError"])
def test_the_stub_names_exactly_the_public_members_of_each_class(cls: str) -> None:
    stub_class = next(
        n for n in _stub_tree().body if isinstance(n, ast.ClassDef) and n.name == cls
    )
    in_stub: set[str] = set()
    for node in stub_class.body:
        if isinstance(node, ast.FunctionDef):
            in_stub.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            in_stub.add(node.target.id)
    real = getattr(lilcache, cls)
    assert _public(in_stub) <= set(dir(real)), sorted(_public(in_stub) - set(dir(real)))
    # Every stub dunder is implemented by the class itself (or its bases in
    # the package), not just inherited from object.
    for name in in_stub - _public(in_stub):
        assert getattr(real, name) is not getattr(object, name, None), name
    if cls == "Cache":
        members = _public(set(dir(real)))
        assert members == _public(in_stub), (
            f"in the stub only: {sorted(_public(in_stub) - members)}; "
            f"in the class only: {sorted(members - _public(in_stub))}"
        )


def test_the_error_hierarchy() -> None:
    assert issubclass(lilcache.Error, Exception)
    for cls in (lilcache.InvalidArgumentError, lilcache.LimitError):
        assert issubclass(cls, lilcache.Error)
        assert issubclass(cls, ValueError)


def _public_callables() -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = [("lilcache", lilcache)]
    for name in sorted(_public(_stub_module_names())):
        obj = getattr(lilcache, name, None)
        if callable(obj):
            found.append((name, obj))
    for name in sorted(_public(set(dir(lilcache.Cache)))):
        found.append((f"Cache.{name}", getattr(lilcache.Cache, name)))
    return found


_CALLABLES = _public_callables()


@pytest.mark.parametrize("name, obj", _CALLABLES, ids=[name for name, _ in _CALLABLES])
def test_every_public_function_and_method_has_a_docstring(name: str, obj: Any) -> None:
    doc = inspect.getdoc(obj)
    assert doc and doc.strip(), f"{name} has no docstring"


def test_help_of_cache_reads_as_a_manual() -> None:
    text = pydoc.render_doc(lilcache.Cache, renderer=pydoc.plaintext)
    for method in ("get", "set", "add", "pop", "delete", "incr", "decr", "touch", "ttl",
                   "get_or_set", "memoize", "keys", "purge", "clear", "stats", "compact",
                   "snapshot", "sync", "close"):  # fmt: skip
        assert f"{method}(" in text, method
    help_text = pydoc.render_doc(lilcache, renderer=pydoc.plaintext)
    assert "init(" in help_text and "start(" in help_text


def test_get_or_set_and_memoize_without_expire_use_the_caches_default(
    open_cache: Callable[..., lilcache.Cache],
) -> None:
    cache = open_cache("t", expires="1h")
    cache.get_or_set("k", lambda: "v")

    @cache.memoize()
    def f() -> str:
        return "v"

    f()
    for key in ("k", f.__cache_key__()):
        ttl = cache.ttl(key)
        assert ttl is not None and 3600 - 60 < ttl <= 3600, key
