"""The binding's own checks: the extension loads from the build tree, and
the conversions at its edge (keys, typed values, durations, errors) behave
as documented. The suites next to it specify the API in depth."""

from __future__ import annotations

import math
import pathlib

import pytest

import lilcache


def test_the_extension_is_the_one_built_next_to_the_package() -> None:
    package = pathlib.Path(lilcache.__file__).parent
    assert pathlib.Path(lilcache._lilcache.__file__).parent == package
    assert lilcache.__version__.count(".") == 2


def test_values_come_back_with_the_type_they_were_stored_with(tmp_path: pathlib.Path) -> None:
    with lilcache.Cache("t", root=tmp_path) as c:
        c["s"] = "h\u00e9\0llo"
        c["b"] = b"\0\xff"
        c["i"] = -(2**63)
        c["ba"] = bytearray(b"xy")
        assert c["s"] == "h\u00e9\0llo"
        assert c["b"] == b"\0\xff"
        assert c["i"] == -(2**63) and type(c["i"]) is int
        assert c["ba"] == b"xy" and type(c["ba"]) is bytes


def test_a_str_key_and_its_utf8_bytes_are_one_key(tmp_path: pathlib.Path) -> None:
    with lilcache.Cache("t", root=tmp_path) as c:
        c["\u00e9"] = 1
        assert c[b"\xc3\xa9"] == 1
        c[b"\xff"] = 2
        assert sorted(c.keys(), key=repr) == sorted(["\u00e9", b"\xff"], key=repr)


def test_engine_errors_carry_their_kind_and_message(tmp_path: pathlib.Path) -> None:
    with lilcache.Cache("t", root=tmp_path) as c:
        with pytest.raises(lilcache.InvalidArgumentError) as empty:
            c.get("")
        assert empty.value.code == "invalid_argument"
        assert isinstance(empty.value, ValueError) and "empty" in str(empty.value)
        with pytest.raises(lilcache.LimitError) as long_key:
            c.set("k" * 4097, "v")
        assert long_key.value.code == "limit" and "4096" in str(long_key.value)
        c["text"] = "not a number"
        with pytest.raises(lilcache.Error) as not_int:
            c.incr("text")
        assert not_int.value.code == "invalid_argument"
    with pytest.raises(lilcache.Error) as closed:
        c.get("k")
    assert closed.value.code == "invalid_state"


def test_unstorable_values_are_type_errors_unless_pickled(tmp_path: pathlib.Path) -> None:
    with lilcache.Cache("t", root=tmp_path) as c:
        for value in (None, 1.5, True, [1]):
            with pytest.raises(TypeError):
                c.set("k", value)
        with pytest.raises(OverflowError):
            c.set("k", 2**63)
        with pytest.raises(TypeError):
            c.set(1, "v")
    with lilcache.Cache("t", root=tmp_path, serializer="pickle") as p:
        for value in (None, 1.5, True, [1], 2**63):
            p["k"] = value
            assert p["k"] == value and type(p["k"]) is type(value)
    with lilcache.Cache("t", root=tmp_path) as plain:
        assert isinstance(plain["k"], bytes)  # never unpickled unless asked


def test_durations_are_seconds_strings_or_timedeltas() -> None:
    import datetime

    assert lilcache.parse_duration("1d") == 86400.0
    assert lilcache.parse_duration(1.5) == 1.5
    assert lilcache.parse_duration(0.0001) == 0.001  # rounded up to 1 ms
    assert lilcache.parse_duration(datetime.timedelta(minutes=2)) == 120.0
    for bad in (0, -1, math.nan, math.inf):
        with pytest.raises(ValueError):
            lilcache.parse_duration(bad)
    with pytest.raises(lilcache.InvalidArgumentError):
        lilcache.parse_duration("1x")
    with pytest.raises(TypeError):
        lilcache.parse_duration([1])


def test_ttl_is_seconds_inf_or_none(tmp_path: pathlib.Path) -> None:
    with lilcache.Cache("t", root=tmp_path) as c:
        c.set("forever", 1)
        c.set("soon", 1, expire="1h")
        assert c.ttl("forever") == math.inf
        assert 3500 < c.ttl("soon") <= 3600
        assert c.ttl("absent") is None
        assert c.touch("soon") and c.ttl("soon") == math.inf


def test_every_test_file_is_registered_with_meson() -> None:
    """python/tests/meson.build lists the suites by hand: a file missing
    from it would never run."""
    here = pathlib.Path(__file__).parent
    listed = (here / "meson.build").read_text()
    unlisted = [p.name for p in here.glob("test_*.py") if f"'{p.name}'" not in listed]
    assert unlisted == []


@pytest.mark.parametrize("option", ["root", "loglevel", "expires", "snapshot", "sync"])
def test_an_empty_option_string_is_an_error_not_the_default(option: str) -> None:
    """Only None means "the default": '' (an unset variable in a script)
    is refused before anything is opened."""
    with pytest.raises(ValueError, match=option):
        lilcache.Cache("t", **{option: ""})
