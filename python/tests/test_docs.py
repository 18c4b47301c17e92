"""docs/python.md's rules, checked as the manual states them: the type
table, durations, the error table, ttl and touch. (The API's full
behaviour is test_api.py's, test_types.py's and test_errors.py's; this file
keeps the manual honest.)"""

from __future__ import annotations

import datetime
import math
import os
import pathlib
import pickle
import re
from collections.abc import Iterator

import pytest

import lilcache

SOURCE_ROOT = pathlib.Path(
    os.environ.get("LILCACHE_SOURCE_ROOT", pathlib.Path(__file__).resolve().parents[2]))


@pytest.fixture
def root(tmp_path: pathlib.Path) -> str:
    path = tmp_path / "root"
    path.mkdir(mode=0o700)
    return str(path)


@pytest.fixture
def cache(root: str) -> Iterator[lilcache.Cache]:
    with lilcache.Cache("docs", root=root) as c:
        yield c


# docs/python.md, "Keys and values: the type rule": stored -> read back.
ROUND_TRIPS = [
    ("héllo\0", "héllo\0"),
    (b"\xff\0", b"\xff\0"),
    (bytearray(b"ba"), b"ba"),
    (memoryview(b"mv"), b"mv"),
    (2**63 - 1, 2**63 - 1),
    (-(2**63), -(2**63)),
    (0, 0),
]


@pytest.mark.parametrize(("stored", "read"), ROUND_TRIPS)
def test_a_value_comes_back_as_the_type_table_says(cache: lilcache.Cache, stored: object,
                                                   read: object) -> None:
    cache.set("k", stored)
    value = cache.get("k")
    assert value == read and type(value) is type(read)


@pytest.mark.parametrize("value", [1.5, True, None, [1], {"a": 1}])
def test_other_types_are_a_type_error_without_a_serializer(cache: lilcache.Cache,
                                                           value: object) -> None:
    with pytest.raises(TypeError):
        cache.set("k", value)
    assert "k" not in cache


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1])
def test_an_int_outside_int64_is_an_overflow_error(cache: lilcache.Cache, value: int) -> None:
    with pytest.raises(OverflowError):
        cache.set("k", value)


def test_pickle_stores_anything_but_only_a_pickle_handle_unpickles(root: str) -> None:
    with lilcache.Cache("docs", root=root, serializer="pickle") as pickled, \
            lilcache.Cache("docs", root=root) as plain:
        for value in [{"a": [1, 2.5]}, True, 2**64, None]:
            pickled.set("k", value)
            assert pickled.get("k") == value and type(pickled.get("k")) is type(value)
            raw = plain.get("k")
            assert type(raw) is bytes and pickle.loads(raw) == value
        pickled.set("s", "text")  # str, bytes and int64 stay readable by every client
        assert plain.get("s") == "text"


def test_a_key_is_str_or_bytes_and_both_spellings_are_one_key(cache: lilcache.Cache) -> None:
    cache.set("a", "1")
    assert cache.get(b"a") == "1" and cache.get(bytearray(b"a")) == "1"
    with pytest.raises(TypeError):
        cache.get(1.5)  # type: ignore[arg-type]


def test_durations_are_seconds_strings_or_timedeltas(cache: lilcache.Cache) -> None:
    assert lilcache.parse_duration("1h30m") == 5400
    assert lilcache.parse_duration(datetime.timedelta(minutes=90)) == 5400
    assert lilcache.parse_duration(0.5) == 0.5
    assert lilcache.parse_duration(0.0001) == 0.001  # rounds up to 1 ms
    cache.set("k", "v", expire="1d")
    ttl = cache.ttl("k")
    assert ttl is not None and 86000 < ttl <= 86400


@pytest.mark.parametrize("bad", [0, -1, 0.0, float("nan"), float("inf")])
def test_a_number_that_is_not_a_positive_finite_duration_is_a_value_error(
        cache: lilcache.Cache, bad: float) -> None:
    with pytest.raises(ValueError):
        cache.set("k", "v", expire=bad)
    assert "k" not in cache


@pytest.mark.parametrize("bad", ["1x", "", "0s", "0ms"])
def test_a_string_the_engine_rejects_is_an_invalid_argument_error(
        cache: lilcache.Cache, bad: str) -> None:
    """As for numbers, a zero duration is an error, for set as for touch."""
    with pytest.raises(lilcache.InvalidArgumentError):
        cache.set("k", "v", expire=bad)
    assert "k" not in cache
    cache.set("k", "v")
    with pytest.raises(lilcache.InvalidArgumentError):
        cache.touch("k", bad)


def test_ttl_is_inf_without_expiry_none_when_absent_and_touch_none_means_never(
        cache: lilcache.Cache) -> None:
    assert cache.ttl("k") is None
    cache.set("k", "v")
    assert cache.ttl("k") == math.inf
    assert cache.touch("k", 60) is True
    ttl = cache.ttl("k")
    assert ttl is not None and 0 < ttl <= 60
    assert cache.touch("k") is True and cache.ttl("k") == math.inf
    assert cache.touch("absent", 60) is False


def test_the_error_table(root: str, cache: lilcache.Cache) -> None:
    def code(exc: type[BaseException], f) -> str:  # type: ignore[no-untyped-def]
        with pytest.raises(exc) as info:
            f()
        return info.value.code

    assert code(lilcache.InvalidArgumentError, lambda: cache.set("", "v")) == "invalid_argument"
    assert code(lilcache.LimitError, lambda: cache.set("k" * 4097, "v")) == "limit"
    cache.set("text", "abc")
    assert code(lilcache.InvalidArgumentError, lambda: cache.incr("text")) == "invalid_argument"
    cache.set("big", 2**63 - 1)
    assert code(lilcache.LimitError, lambda: cache.incr("big")) == "limit"
    assert code(lilcache.Error, lambda: lilcache.Cache("absent", root=root, create=False)) \
        == "no_such_cache"
    assert code(lilcache.InvalidArgumentError, lambda: lilcache.Cache("no/slashes", root=root)) \
        == "invalid_argument"
    assert issubclass(lilcache.InvalidArgumentError, ValueError)
    assert issubclass(lilcache.LimitError, ValueError)
    with pytest.raises(KeyError):
        cache["absent"]
    with pytest.raises(KeyError):
        del cache["absent"]
    with pytest.raises(KeyError):
        cache.incr("absent", default=None)
    cache.close()
    assert code(lilcache.Error, lambda: cache.get("k")) == "invalid_state"
    cache.close()  # idempotent


def documented_fields(row_start: str) -> list[str]:
    """The field names docs/python.md's Cache table lists in the row
    starting with row_start ("a `dict`: `f1 f2 ...`")."""
    manual = SOURCE_ROOT / "docs" / "python.md"
    row = next(line for line in manual.read_text().splitlines() if line.startswith(row_start))
    match = re.search(r"a `dict`: `([a-z_ ]+)`", row)
    assert match, row
    return match.group(1).split()


def test_stats_and_compact_return_the_documented_fields(cache: lilcache.Cache) -> None:
    cache.set("a", "b")
    assert sorted(cache.stats()) == sorted(documented_fields("| `stats()` |"))
    result = cache.compact()
    assert sorted(result) == sorted(documented_fields("| `compact()`, `snapshot()` |"))
    assert result["compacted"] is True
    assert isinstance(result["duration"], float) and isinstance(result["writer_pause"], float)
