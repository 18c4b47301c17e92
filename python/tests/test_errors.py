"""Every error path reachable from Python: the exception class, its .code
(the C++ ErrorCode's name) and the engine's message, which names the cause."""

from __future__ import annotations

import datetime
import math
import os
import pickle
import threading
from collections.abc import Callable
from typing import Any

import pytest

import lilcache

# Keyed operations, each taking a key (and nothing that can fail first).
KEYED: list[tuple[str, Callable[[lilcache.Cache, Any], Any]]] = [
    ("get", lambda c, k: c.get(k)),
    ("set", lambda c, k: c.set(k, "v")),
    ("add", lambda c, k: c.add(k, "v")),
    ("pop", lambda c, k: c.pop(k)),
    ("delete", lambda c, k: c.delete(k)),
    ("incr", lambda c, k: c.incr(k)),
    ("decr", lambda c, k: c.decr(k)),
    ("touch", lambda c, k: c.touch(k)),
    ("ttl", lambda c, k: c.ttl(k)),
    ("get_or_set", lambda c, k: c.get_or_set(k, lambda: "v")),
    ("getitem", lambda c, k: c[k]),
    ("setitem", lambda c, k: c.__setitem__(k, "v")),
    ("delitem", lambda c, k: c.__delitem__(k)),
    ("contains", lambda c, k: k in c),
]
# `in` takes any object (Container protocol): only str and bytes keys can be in.
TYPED = [(name, op) for name, op in KEYED if name != "contains"]
KEYED_IDS = [name for name, _ in KEYED]
KEYED_OPS = [op for _, op in KEYED]


def _check(info: pytest.ExceptionInfo[Any], code: str, *words: str) -> None:
    """The raised lilcache.Error has `code` and a message naming `words`."""
    err = info.value
    assert isinstance(err, lilcache.Error)
    assert err.code == code
    message = str(err)
    assert message.strip(), "empty message"
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


# ---- keys ---------------------------------------------------------------------


@pytest.mark.parametrize("operation", KEYED_OPS, ids=KEYED_IDS)
@pytest.mark.parametrize("key", ["", b""], ids=["str", "bytes"])
def test_an_empty_key_is_invalidargumenterror(
    cache: lilcache.Cache, operation: Callable[..., Any], key: Any
) -> None:
    with pytest.raises(lilcache.InvalidArgumentError) as info:
        operation(cache, key)
    _check(info, "invalid_argument", "key", "empty")
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("operation", KEYED_OPS, ids=KEYED_IDS)
def test_a_key_over_4096_bytes_is_limiterror(
    cache: lilcache.Cache, operation: Callable[..., Any]
) -> None:
    with pytest.raises(lilcache.LimitError) as info:
        operation(cache, "k" * 4097)
    _check(info, "limit", "4097", "4096")
    assert isinstance(info.value, ValueError)
    assert len(cache) == 0


def test_the_key_limit_counts_utf8_bytes(cache: lilcache.Cache) -> None:
    with pytest.raises(lilcache.LimitError) as info:
        cache.set("é" * 2049, "v")  # 4098 bytes
    _check(info, "limit", "4098")


NOT_KEYS = [1, None, 1.5, ("a",), object(), ["a"]]
NOT_KEY_IDS = ["int", "None", "float", "tuple", "object", "list"]


@pytest.mark.parametrize("operation", [op for _, op in TYPED], ids=[n for n, _ in TYPED])
@pytest.mark.parametrize("key", NOT_KEYS, ids=NOT_KEY_IDS)
def test_a_key_of_another_type_is_typeerror(
    cache: lilcache.Cache, operation: Callable[..., Any], key: Any
) -> None:
    with pytest.raises(TypeError) as info:
        operation(cache, key)
    assert type(key).__name__ in str(info.value)


@pytest.mark.parametrize("key", NOT_KEYS, ids=NOT_KEY_IDS)
def test_in_with_another_type_is_false(cache: lilcache.Cache, key: Any) -> None:
    cache["1"] = "v"
    assert (key in cache) is False


def test_keys_prefix_of_another_type_is_typeerror(cache: lilcache.Cache) -> None:
    with pytest.raises(TypeError):
        cache.keys(1)  # type: ignore[arg-type]


def test_keys_limit_must_be_an_int(cache: lilcache.Cache) -> None:
    with pytest.raises(TypeError):
        cache.keys(limit="3")  # type: ignore[arg-type]


# ---- values --------------------------------------------------------------------


def test_a_value_of_another_type_names_the_type(cache: lilcache.Cache) -> None:
    with pytest.raises(TypeError) as info:
        cache.set("k", 1.5)
    assert "float" in str(info.value)


def test_an_int_over_int64_is_overflowerror(cache: lilcache.Cache) -> None:
    with pytest.raises(OverflowError):
        cache.set("k", 2**63)


def test_a_value_over_64_mib_is_limiterror(cache: lilcache.Cache) -> None:
    with pytest.raises(lilcache.LimitError) as info:
        cache.set("k", b"\0" * (64 * 1024 * 1024 + 1))
    _check(info, "limit", str(64 * 1024 * 1024 + 1))


def test_an_unpicklable_value_with_the_pickle_serializer_raises_and_stores_nothing(
    pickled: lilcache.Cache,
) -> None:
    with pytest.raises(Exception) as info:
        pickled.set("k", lambda: None)
    assert not isinstance(info.value, lilcache.Error)
    assert "k" not in pickled


# ---- incr ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["abc", "", "1.5", " 1", b"\xff", "9" * 30],
    ids=["word", "empty", "float", "space", "binary", "huge"],
)
def test_incr_of_a_value_that_is_not_an_integer_is_a_valueerror(
    cache: lilcache.Cache, value: Any
) -> None:
    cache.set("k", value)
    with pytest.raises(lilcache.Error) as info:
        cache.incr("k")
    _check(info, info.value.code, "not a decimal int64")
    assert isinstance(info.value, ValueError)
    assert cache.get("k") == value


def test_incr_overflow_is_limiterror(cache: lilcache.Cache) -> None:
    cache.set("k", 2**63 - 1)
    with pytest.raises(lilcache.LimitError) as info:
        cache.incr("k")
    _check(info, "limit", "overflows")
    assert cache.get("k") == 2**63 - 1
    cache.set("k", -(2**63))
    with pytest.raises(lilcache.LimitError):
        cache.decr("k")
    with pytest.raises(lilcache.LimitError):
        cache.incr("absent", 1, default=2**63 - 1)
    assert "absent" not in cache


def test_decr_by_min_int64_is_limiterror(cache: lilcache.Cache) -> None:
    with pytest.raises((lilcache.LimitError, OverflowError)):
        cache.decr("k", -(2**63))
    assert "k" not in cache


@pytest.mark.parametrize("delta", [2**63, -(2**63) - 1])
def test_incr_delta_beyond_int64_is_overflowerror(cache: lilcache.Cache, delta: int) -> None:
    with pytest.raises(OverflowError):
        cache.incr("k", delta)
    assert "k" not in cache


@pytest.mark.parametrize("delta", [1.5, "1", None], ids=["float", "str", "None"])
def test_incr_delta_of_another_type_is_typeerror(cache: lilcache.Cache, delta: Any) -> None:
    with pytest.raises(TypeError):
        cache.incr("k", delta)


def test_incr_of_an_absent_key_with_default_none_is_keyerror(cache: lilcache.Cache) -> None:
    with pytest.raises(KeyError):
        cache.incr("absent", default=None)
    with pytest.raises(KeyError):
        cache.decr("absent", default=None)
    assert "absent" not in cache


# ---- durations -----------------------------------------------------------------

BAD_DURATION_STRINGS = ["1x", "", "abc", "10", "1.5s", "-1s", "s"]
BAD_DURATION_NUMBERS = [-1, 0, 0.0, -0.5, math.nan, -math.inf]


@pytest.mark.parametrize("text", BAD_DURATION_STRINGS)
def test_a_bad_duration_string_is_valueerror(cache: lilcache.Cache, text: str) -> None:
    for call in (
        lambda: cache.set("k", "v", expire=text),
        lambda: cache.add("k", "v", expire=text),
        lambda: cache.touch("k", text),
        lambda: cache.get_or_set("k", lambda: "v", expire=text),
        lambda: lilcache.parse_duration(text),
    ):
        with pytest.raises(ValueError) as info:
            call()
        assert str(info.value)
    assert "k" not in cache


@pytest.mark.parametrize("text", ["1x", "abc", "1.5s"])
def test_a_duration_string_the_engine_rejects_is_invalidargumenterror(
    cache: lilcache.Cache, text: str
) -> None:
    with pytest.raises(lilcache.InvalidArgumentError) as info:
        cache.set("k", "v", expire=text)
    _check(info, "invalid_argument", "duration", text)
    with pytest.raises(lilcache.InvalidArgumentError) as info:
        lilcache.parse_duration(text)
    _check(info, "invalid_argument", "duration", text)


@pytest.mark.parametrize("number", BAD_DURATION_NUMBERS, ids=repr)
def test_a_duration_number_not_above_zero_is_valueerror(
    cache: lilcache.Cache, number: float
) -> None:
    for call in (
        lambda: cache.set("k", "v", expire=number),
        lambda: cache.add("k", "v", expire=number),
        lambda: cache.touch("k", number),
        lambda: lilcache.parse_duration(number),
    ):
        with pytest.raises(ValueError) as info:
            call()
        assert str(info.value)
    assert "k" not in cache


@pytest.mark.parametrize("seconds", [0, -1], ids=["zero", "negative"])
def test_a_timedelta_not_above_zero_is_valueerror(cache: lilcache.Cache, seconds: int) -> None:
    with pytest.raises(ValueError):
        cache.set("k", "v", expire=datetime.timedelta(seconds=seconds))
    assert "k" not in cache


@pytest.mark.parametrize("expire", [[1], object(), b"1s"], ids=["list", "object", "bytes"])
def test_a_duration_of_another_type_is_typeerror(cache: lilcache.Cache, expire: Any) -> None:
    with pytest.raises(TypeError):
        cache.set("k", "v", expire=expire)


@pytest.mark.parametrize(
    "option, value, words",
    [
        ("expires", "1x", ["1x"]),
        ("expires", "1 day", ["expires", "1 day", "character 2"]),
        ("snapshot", "1.5s", ["snapshot", "fractions", "character 2"]),
        ("expires", 0, []),
        ("expires", -5, []),
        ("snapshot", "500ms", ["snapshot", "500ms"]),
        ("snapshot", "soon", ["soon"]),
        ("sync", "sometimes", ["sync", "sometimes"]),
        ("sync", 0, []),
        ("get_or_set_timeout", "1x", ["get_or_set_timeout", "1x"]),
        ("get_or_set_timeout", 0, []),
        ("compact_dead_ratio", 1.0, ["compact_dead_ratio"]),
        ("compact_dead_ratio", -0.1, ["compact_dead_ratio"]),
        ("loglevel", "loud", ["loud"]),
    ],
)
def test_a_bad_option_is_valueerror_naming_it(
    root: str, option: str, value: Any, words: list[str]
) -> None:
    with pytest.raises(ValueError) as info:
        lilcache.Cache("t", root=root, **{option: value})
    message = str(info.value)
    assert message.strip()
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    if words:
        assert isinstance(info.value, lilcache.InvalidArgumentError)
        assert info.value.code == "invalid_argument"


def test_an_empty_duration_string_is_valueerror_for_every_option(root: str) -> None:
    # As for expire= and parse_duration(): '' is no duration (None means
    # "the default"; '' silently meaning it too would hide a caller's bug).
    accepted = []
    for option in ("expires", "snapshot", "sync", "get_or_set_timeout"):
        try:
            lilcache.Cache("t", root=root, **{option: ""}).close()
            accepted.append(option)
        except ValueError as e:
            assert str(e)
    assert not accepted, f"'' accepted as {accepted}"


@pytest.mark.parametrize("serializer", ["json", "", "PICKLE", 1])
def test_a_bad_serializer_is_refused(root: str, serializer: Any) -> None:
    with pytest.raises((ValueError, TypeError)) as info:
        lilcache.Cache("t", root=root, serializer=serializer)
    assert str(info.value)
    assert lilcache.list_caches(root) == []


@pytest.mark.parametrize("max_bytes", [-1, 2**64])
def test_a_max_bytes_outside_uint64_is_refused(root: str, max_bytes: int) -> None:
    with pytest.raises((ValueError, OverflowError)):
        lilcache.Cache("t", root=root, max_bytes=max_bytes)


# ---- names and roots -------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["../x", "", ".", "..", "a/b", "sp ace", "x" * 101, "nul\0"],
    ids=["dotdot-slash", "empty", "dot", "dotdot", "slash", "space", "too-long", "nul"],
)
def test_a_bad_cache_name_is_invalidargumenterror(root: str, name: str) -> None:
    with pytest.raises(lilcache.InvalidArgumentError) as info:
        lilcache.Cache(name, root=root)
    _check(info, "invalid_argument", "name")
    assert os.listdir(root) == []


def test_a_bad_name_in_init_is_invalidargumenterror_and_keeps_the_default(
    root: str, default_cache: lilcache.Cache
) -> None:
    with pytest.raises(lilcache.InvalidArgumentError) as info:
        lilcache.init("../x", root=root)
    _check(info, "invalid_argument", "../x")
    assert lilcache.cache() is default_cache
    assert lilcache.set("a", "b") and default_cache["a"] == "b"


def test_a_root_that_is_a_file_is_invalidargumenterror(tmp_path: Any) -> None:
    path = tmp_path / "file"
    path.write_text("not a directory")
    with pytest.raises(lilcache.InvalidArgumentError) as info:
        lilcache.Cache("t", root=str(path))
    _check(info, "invalid_argument", str(path))


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702], ids=oct)
def test_a_root_writable_by_others_is_a_permission_error(tmp_path: Any, mode: int) -> None:
    path = tmp_path / "open"
    path.mkdir()
    os.chmod(path, mode)
    with pytest.raises(lilcache.Error) as info:
        lilcache.Cache("t", root=str(path))
    _check(info, "permission", str(path))
    assert os.listdir(path) == []


def test_create_false_on_a_missing_cache_is_no_such_cache(root: str) -> None:
    with pytest.raises(lilcache.Error) as info:
        lilcache.Cache("nothere", root=root, create=False)
    _check(info, "no_such_cache", "nothere")
    assert not isinstance(info.value, ValueError)


def test_a_wrong_option_name_is_typeerror(root: str) -> None:
    with pytest.raises(TypeError):
        lilcache.Cache("t", root=root, expire="1d")  # type: ignore[call-arg]


def test_options_are_keyword_only(root: str) -> None:
    with pytest.raises(TypeError):
        lilcache.Cache("t", root)  # type: ignore[misc]


# ---- closed handles, errors' shape ------------------------------------------------


def test_a_closed_cache_raises_invalid_state_naming_it(root: str) -> None:
    cache = lilcache.Cache("t", root=root)
    cache.close()
    with pytest.raises(lilcache.Error) as info:
        cache.get("a")
    _check(info, "invalid_state", "closed")
    assert not isinstance(info.value, ValueError)


def test_errors_can_be_caught_as_lilcache_error_and_valueerror(cache: lilcache.Cache) -> None:
    try:
        cache.set("", "v")
    except ValueError as e:
        assert isinstance(e, lilcache.Error)
    else:
        pytest.fail("no error")


def test_error_code_is_a_plain_str(cache: lilcache.Cache) -> None:
    with pytest.raises(lilcache.Error) as info:
        cache.get("")
    assert type(info.value.code) is str
    assert info.value.args and info.value.args[0] == str(info.value)


def test_errors_pickle_with_their_class_code_and_message(tmp_path: Any) -> None:
    # multiprocessing sends a worker's exception to the parent pickled.
    path = tmp_path / "open"
    path.mkdir(mode=0o700)
    os.chmod(path, 0o777)
    errors = []
    for call in (
        lambda: lilcache.Cache("t", root=str(path)),  # lilcache.Error itself
        lambda: lilcache.parse_duration("1x"),  # InvalidArgumentError
    ):
        with pytest.raises(lilcache.Error) as info:
            call()
        errors.append(info.value)
    for err in errors:
        copy = pickle.loads(pickle.dumps(err))
        assert type(copy) is type(err)
        assert copy.code == err.code
        assert str(copy) == str(err)
    assert [e.code for e in errors] == ["permission", "invalid_argument"]


# ---- the Python layer's own checks -------------------------------------------------


def test_memoize_used_without_parentheses_is_typeerror(cache: lilcache.Cache) -> None:
    with pytest.raises(TypeError) as info:

        @cache.memoize  # type: ignore[arg-type]
        def f() -> str:
            return "v"

    assert "memoize()" in str(info.value)


def test_a_negative_keys_limit_is_valueerror(cache: lilcache.Cache) -> None:
    cache["a"] = "b"
    with pytest.raises(ValueError) as info:
        cache.keys(limit=-1)
    assert "limit" in str(info.value)
    assert cache.keys(limit=0) == []


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.incr("k", True),
        lambda c: c.incr("k", 1, default=True),
        lambda c: c.set("k", "v", expire=True),
        lambda c: c.touch("k", False),
    ],
    ids=["incr-delta", "incr-default", "set-expire", "touch-expire"],
)
def test_a_bool_is_no_number_here(cache: lilcache.Cache, call: Callable[..., Any]) -> None:
    # bool is an int subclass: accepting True as 1 second or delta 1 would
    # hide a caller's mistake.
    cache.set("k", 1)
    with pytest.raises(TypeError) as info:
        call(cache)
    assert "bool" in str(info.value)
    assert cache.get("k") == 1


@pytest.mark.parametrize(
    "call",
    [lambda c: c.set("k", "a\udcff"), lambda c: c.set("\udcff", "v")],
    ids=["value", "key"],
)
def test_a_str_that_is_not_utf8_encodable_is_a_valueerror(
    cache: lilcache.Cache, call: Callable[..., Any]
) -> None:
    with pytest.raises(UnicodeEncodeError):
        call(cache)
    assert len(cache) == 0


# ---- the cache's files ----------------------------------------------------------------


def test_a_cache_file_open_to_others_is_a_permission_error(root: str) -> None:
    with lilcache.Cache("t", root=root) as cache:
        cache["a"] = "b"
    meta = os.path.join(root, "t.meta")
    os.chmod(meta, 0o644)
    with pytest.raises(lilcache.Error) as info:
        lilcache.Cache("t", root=root)
    _check(info, "permission", meta)
    os.chmod(meta, 0o600)
    with lilcache.Cache("t", root=root) as cache:
        assert cache["a"] == "b"


def test_a_meta_file_that_is_not_lilcaches_is_corrupt(root: str) -> None:
    meta = os.path.join(root, "t.meta")
    fd = os.open(meta, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        os.write(fd, b"garbage!" * 1024)
    finally:
        os.close(fd)
    with pytest.raises(lilcache.Error) as info:
        lilcache.Cache("t", root=root)
    _check(info, "corrupt", meta)
    assert not isinstance(info.value, ValueError)


# ---- waiting ------------------------------------------------------------------------


def test_get_or_set_waiting_past_its_timeout_is_busy(root: str) -> None:
    """A caller waiting for another thread's computation longer than
    get_or_set_timeout gets Error 'busy' (the other one is held until then,
    so no clock decides the outcome)."""
    cache = lilcache.Cache("t", root=root, get_or_set_timeout="50ms")
    computing = threading.Event()
    release = threading.Event()
    results: dict[str, Any] = {}

    def compute() -> str:
        computing.set()
        release.wait(60)
        return "slow"

    def first() -> None:
        results["first"] = cache.get_or_set("k", compute)

    thread = threading.Thread(target=first, daemon=True)
    thread.start()
    try:
        assert computing.wait(60)
        with pytest.raises(lilcache.Error) as info:
            cache.get_or_set("k", lambda: "other")
        _check(info, "busy")
        assert not isinstance(info.value, ValueError)
    finally:
        release.set()
        thread.join(60)
        cache.close()
    assert results["first"] == "slow"
