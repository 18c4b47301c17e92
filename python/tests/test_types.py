"""Values and keys keep their Python types through the cache (spec: "Keys",
"Values keep their type"), with and without serializer='pickle'."""

from __future__ import annotations

import datetime
import decimal
import pickle
from collections.abc import Callable
from typing import Any

import pytest

import lilcache

MIB = 1024 * 1024
MAX_VALUE = 64 * MIB
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

STRINGS = [
    "",
    "b",
    "héllo wörld ☃ 𝄞 日本語",
    "a\0b\0",
    "\0",
    "line\nbreak\ttab\r",
    "ascii" * 3,
    "é" * (MIB // 2),  # 1 MiB of UTF-8
    "x" * MIB,
]
STRING_IDS = [
    "empty", "short", "non-ascii", "nul", "only-nul", "controls", "ascii", "1MiB-utf8", "1MiB",
]  # fmt: skip


@pytest.mark.parametrize("value", STRINGS, ids=STRING_IDS)
def test_a_str_round_trips_as_str(cache: lilcache.Cache, value: str) -> None:
    cache.set("k", value)
    got = cache.get("k")
    assert type(got) is str
    assert got == value


def test_bytes_with_every_byte_value_round_trip_as_bytes(cache: lilcache.Cache) -> None:
    value = bytes(range(256)) * 4
    cache.set("k", value)
    got = cache.get("k")
    assert type(got) is bytes
    assert got == value


def test_empty_bytes_round_trip_as_bytes(cache: lilcache.Cache) -> None:
    cache.set("k", b"")
    assert cache.get("k") == b""
    assert type(cache.get("k")) is bytes
    assert "k" in cache


def test_empty_str_and_empty_bytes_are_values_not_misses(cache: lilcache.Cache) -> None:
    cache.set("s", "")
    cache.set("b", b"")
    assert cache.get("s", "missing") == ""
    assert cache.get("b", "missing") == b""
    assert cache["s"] == ""
    assert cache.pop("b", "missing") == b""


def test_bytes_that_look_like_utf8_stay_bytes(cache: lilcache.Cache) -> None:
    cache.set("k", "héllo".encode())
    assert cache.get("k") == "héllo".encode()
    cache.set("n", b"12")
    assert cache.get("n") == b"12"


def test_a_str_that_looks_like_a_number_stays_str(cache: lilcache.Cache) -> None:
    cache.set("k", "12")
    assert cache.get("k") == "12"


@pytest.mark.parametrize(
    "value",
    [bytearray(b"ab\0c"), memoryview(b"ab\0c"), memoryview(bytearray(b"ab\0c"))],
    ids=["bytearray", "memoryview", "memoryview-of-bytearray"],
)
def test_bytearray_and_memoryview_come_back_as_bytes(cache: lilcache.Cache, value: Any) -> None:
    cache.set("k", value)
    got = cache.get("k")
    assert type(got) is bytes
    assert got == b"ab\0c"


@pytest.mark.parametrize("value", [0, 1, -1, 42, 10**18, INT64_MAX, INT64_MIN, INT64_MIN + 1])
def test_an_int64_round_trips_as_int(cache: lilcache.Cache, value: int) -> None:
    cache.set("k", value)
    got = cache.get("k")
    assert type(got) is int
    assert got == value


@pytest.mark.parametrize("value", [INT64_MAX + 1, INT64_MIN - 1, 2**100, -(2**100)])
def test_an_int_beyond_int64_is_overflowerror_without_a_serializer(
    cache: lilcache.Cache, value: int
) -> None:
    with pytest.raises(OverflowError):
        cache.set("k", value)
    assert "k" not in cache


@pytest.mark.parametrize(
    "value",
    [True, False, 1.5, 0.0, None, [1], ("a",), {"a": 1}, {1}, object(), decimal.Decimal(1), 1j],
    ids=["True", "False", "float", "zero-float", "None", "list", "tuple", "dict", "set",
         "object", "Decimal", "complex"],  # fmt: skip
)
def test_other_types_are_typeerror_without_a_serializer(cache: lilcache.Cache, value: Any) -> None:
    with pytest.raises(TypeError):
        cache.set("k", value)
    with pytest.raises(TypeError):
        cache.add("k", value)
    with pytest.raises(TypeError):
        cache["k"] = value
    assert "k" not in cache


def test_a_computed_value_of_another_type_is_typeerror_and_not_stored(
    cache: lilcache.Cache,
) -> None:
    with pytest.raises(TypeError):
        cache.get_or_set("k", lambda: 1.5)
    assert "k" not in cache
    assert cache.get_or_set("k", lambda: "ok") == "ok"


PICKLED = [
    True, False, 1.5, float("inf"), None, [1, "a", b"b"], ("t", 1), {"a": [1, 2]},
    {1, 2}, frozenset({3}), 2**100, -(2**63) - 1, 2**63, decimal.Decimal("1.25"), 1j,
    datetime.date(2024, 2, 29), [None],
]  # fmt: skip


@pytest.mark.parametrize("value", PICKLED, ids=[repr(v)[:30] for v in PICKLED])
def test_with_the_pickle_serializer_anything_picklable_round_trips(
    pickled: lilcache.Cache, value: Any
) -> None:
    pickled.set("k", value)
    got = pickled.get("k", KeyError)
    assert type(got) is type(value)
    assert got == value


@pytest.mark.parametrize(
    "value",
    ["héllo\0", b"\0\xff", 0, INT64_MIN, INT64_MAX],
    ids=["str", "bytes", "0", "min", "max"],
)
def test_with_the_pickle_serializer_str_bytes_and_int64_keep_their_kinds(
    pickled: lilcache.Cache, open_cache: Callable[..., lilcache.Cache], value: Any
) -> None:
    pickled.set("k", value)
    assert pickled.get("k") == value and type(pickled.get("k")) is type(value)
    # A handle without a serializer reads them the same: they were not pickled.
    plain = open_cache("t")
    assert plain.get("k") == value and type(plain.get("k")) is type(value)


def test_with_the_pickle_serializer_bool_is_not_stored_as_an_int(
    pickled: lilcache.Cache,
) -> None:
    pickled.set("k", True)
    assert pickled.get("k") is True
    with pytest.raises(lilcache.Error):
        pickled.incr("k")


def test_a_stored_none_is_told_apart_from_a_miss_by_a_default(pickled: lilcache.Cache) -> None:
    pickled.set("k", None)
    assert "k" in pickled
    assert pickled.get("k", "missing") is None
    assert pickled["k"] is None
    assert pickled.pop("k", "missing") is None
    assert pickled.pop("k", "missing") == "missing"


def test_pickle_serializer_in_get_or_set_and_add(pickled: lilcache.Cache) -> None:
    assert pickled.get_or_set("k", lambda: [1, 2]) == [1, 2]
    assert pickled.get_or_set("k", lambda: [3]) == [1, 2]
    assert pickled.add("a", {"x": 1.5}) is True
    assert pickled["a"] == {"x": 1.5}


def test_a_pickled_value_is_raw_bytes_for_a_handle_without_a_serializer(
    pickled: lilcache.Cache, open_cache: Callable[..., lilcache.Cache]
) -> None:
    value = {"a": [1, 2.5, None]}
    pickled.set("k", value)
    plain = open_cache("t")
    raw = plain.get("k")
    assert type(raw) is bytes
    assert pickle.loads(raw) == value


def test_a_pickle_handle_does_not_unpickle_plain_bytes(
    pickled: lilcache.Cache, open_cache: Callable[..., lilcache.Cache]
) -> None:
    data = pickle.dumps([1, 2])
    open_cache("t").set("k", data)
    assert pickled.get("k") == data


def test_a_str_key_and_its_utf8_bytes_are_one_key(cache: lilcache.Cache) -> None:
    cache.set("a", 1)
    assert cache.get(b"a") == 1
    cache.set(b"k\xc3\xa9", "v")
    assert cache["ké"] == "v"
    assert cache.delete("ké") is True
    assert b"k\xc3\xa9" not in cache
    cache.set("a", 2)
    assert len(cache) == 1


@pytest.mark.parametrize(
    "key", [bytearray(b"key"), memoryview(b"key")], ids=["bytearray", "memoryview"]
)
def test_bytearray_and_memoryview_keys_are_their_bytes(cache: lilcache.Cache, key: Any) -> None:
    cache.set(key, "v")
    assert cache["key"] == "v"
    assert cache.get(key) == "v"
    assert key in cache
    assert cache.pop(key) == "v"


def test_keys_returns_str_for_utf8_keys_and_bytes_otherwise(cache: lilcache.Cache) -> None:
    cache.set("plain", 1)
    cache.set("ünï", 2)
    cache.set(b"utf8-bytes", 3)
    cache.set(b"\xff\xfe", 4)
    cache.set(b"a\0b", 5)
    keys = cache.keys()
    expected = ["plain", "ünï", "utf8-bytes", b"\xff\xfe", "a\0b"]
    assert sorted(keys, key=repr) == sorted(expected, key=repr)
    for key in keys:
        assert cache.get(key) is not None


def test_a_non_utf8_key_iterates_as_bytes_and_reads_back(cache: lilcache.Cache) -> None:
    cache.set(b"\x80", "v")
    assert list(cache) == [b"\x80"]
    assert cache[b"\x80"] == "v"


def test_keys_prefix_matches_bytes(cache: lilcache.Cache) -> None:
    cache.set(b"\xffa", 1)
    cache.set(b"\xffb", 2)
    cache.set("z", 3)
    assert sorted(cache.keys(b"\xff")) == [b"\xffa", b"\xffb"]


def test_a_key_of_4096_bytes_is_accepted(cache: lilcache.Cache) -> None:
    key = "k" * 4096
    cache.set(key, "v")
    assert cache[key] == "v"
    assert cache.keys() == [key]


def test_a_64_mib_value_round_trips_and_one_byte_more_is_limiterror(
    cache: lilcache.Cache,
) -> None:
    value = bytes(range(256)) * (MAX_VALUE // 256)
    assert len(value) == MAX_VALUE
    cache.set("big", value)
    got = cache.get("big")
    assert got == value
    del got
    with pytest.raises(lilcache.LimitError) as info:
        cache.set("bigger", value + b"x")
    assert info.value.code == "limit"
    assert str(MAX_VALUE + 1) in str(info.value)
    assert "bigger" not in cache
    cache.delete("big")


def test_a_str_over_64_mib_of_utf8_is_limiterror(cache: lilcache.Cache) -> None:
    # 32 Mi two-byte characters plus one: 64 MiB + 2 bytes of UTF-8.
    value = "é" * (MAX_VALUE // 2 + 1)
    with pytest.raises(lilcache.LimitError):
        cache.set("k", value)
    assert "k" not in cache


_NESTED: dict[str, lilcache.Cache] = {}


def _rebuild_reading_the_cache(payload: bytes, key: str) -> tuple[bytes, Any]:
    """Unpickles a NestedRead: reads `key` from the cache while unpickling."""
    return payload, _NESTED["cache"].get(key)


class NestedRead:
    """An object whose unpickling reads another key of the same cache."""

    def __init__(self, payload: bytes, key: str) -> None:
        self.payload = payload
        self.key = key

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_reading_the_cache, (self.payload, self.key))


@pytest.mark.parametrize("size", [10, 3 * MIB], ids=["small", "3MiB"])
def test_a_get_while_unpickling_a_get_leaves_both_values_intact(
    pickled: lilcache.Cache, size: int
) -> None:
    outer = bytes(range(256)) * (size // 256 + 1)
    inner = b"\x07" * size
    pickled.set("inner", inner)
    pickled.set("outer", NestedRead(outer, "inner"))
    _NESTED["cache"] = pickled
    try:
        assert pickled.get("outer") == (outer, inner)
        assert pickled["outer"] == (outer, inner)
        assert pickled.pop("outer") == (outer, inner)
    finally:
        _NESTED.clear()
