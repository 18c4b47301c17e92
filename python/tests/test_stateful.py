"""A Hypothesis state machine drives a Cache and a dict model side by side
and checks that they agree after every operation.

Keys come from a small alphabet in which 'a' and b'a' (and 'é' and its UTF-8
bytes) are the same key, so operations collide. Expiry is modelled without a
clock: a key set with a very short ttl is *volatile* (it may vanish at any
moment, so either outcome is accepted until one is observed), a key with a
long ttl must report a ttl() within its bound, and every other key never
expires.
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import lilcache

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
SHORT = 0.001  # a ttl that is likely over by the next step: volatile keys
LONG = 3600.0  # a ttl no run outlives

KEYS = ["a", b"a", "b", "é", "é".encode(), b"\xff", "long" * 8]
PREFIXES = [b"", "a", b"\xc3", b"\xff", "lo"]
MISSING = object()

ints = st.one_of(
    st.integers(INT64_MIN, INT64_MAX),
    st.integers(-5, 5),
    st.sampled_from([INT64_MIN, INT64_MAX, INT64_MAX - 1, INT64_MIN + 1]),
)
# Digits and '-' make text an incr may accept; NUL, non-ASCII and astral
# characters test the UTF-8 round trip. (A fixed alphabet also spares
# Hypothesis building its Unicode tables, seconds per run.)
TEXT = st.text(alphabet="ab0123456789-\0é☃𝄞 ", max_size=6)
PLAIN_VALUES = st.one_of(
    TEXT,
    st.binary(max_size=6),
    ints,
    ints.map(str),  # text an incr accepts
)
PICKLED_VALUES = st.one_of(
    PLAIN_VALUES,
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False),
    st.lists(st.integers(-3, 3), max_size=3),
    st.integers(INT64_MAX + 1, 2**80),
)
EXPIRES = st.sampled_from([None, None, LONG, SHORT])
DELTAS = st.one_of(st.integers(-3, 3), st.sampled_from([INT64_MAX, INT64_MIN, 10**18]))


def norm(key: str | bytes) -> bytes:
    """The key as the engine sees it."""
    return key.encode() if isinstance(key, str) else key


def counter_of(value: Any) -> int | None:
    """The int an incr reads from a stored value, None if it is no counter."""
    if type(value) is int:
        return value if INT64_MIN <= value <= INT64_MAX else None
    if isinstance(value, (str, bytes)):
        raw = norm(value)
        if re.fullmatch(rb"-?[0-9]+", raw) and INT64_MIN <= int(raw) <= INT64_MAX:
            return int(raw)
    return None


def same(got: Any, expected: Any) -> bool:
    """Equal and of the same type (1 and True, 0.0 and 0 are different)."""
    return type(got) is type(expected) and got == expected


@dataclass
class Entry:
    """What the model knows of one key."""

    value: Any
    volatile: bool  # set with a SHORT ttl: may be gone already
    ttl: float | None  # None = never expires, else an upper bound in seconds


class CacheMachine(RuleBasedStateMachine):
    """A Cache without serializer against a dict."""

    SERIALIZER: str | None = None
    values = PLAIN_VALUES

    def __init__(self) -> None:
        super().__init__()
        self.root = tempfile.mkdtemp(prefix="lilcache-stateful-")  # mode 0700
        self.cache = lilcache.Cache("m", root=self.root, serializer=self.SERIALIZER)
        self.model: dict[bytes, Entry] = {}

    def teardown(self) -> None:
        self.cache.close()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- helpers --

    def store(self, key: str | bytes, value: Any, expire: float | None) -> None:
        self.model[norm(key)] = Entry(value, expire == SHORT, LONG if expire == LONG else None)

    def observe(self, key: str | bytes, got: Any) -> None:
        """Checks a read of `key` that returned `got` (MISSING on a miss)."""
        entry = self.model.get(norm(key))
        if entry is None:
            assert got is MISSING, f"{key!r}: got {got!r}, the model has nothing"
        elif got is MISSING:
            assert entry.volatile, f"{key!r}: missing, the model has {entry.value!r}"
            del self.model[norm(key)]
        else:
            assert same(got, entry.value), f"{key!r}: got {got!r}, expected {entry.value!r}"

    def sure(self) -> set[bytes]:
        return {k for k, e in self.model.items() if not e.volatile}

    # -- rules --

    @rule(key=st.sampled_from(KEYS), value=st.data(), expire=EXPIRES)
    def set(self, key: str | bytes, value: st.DataObject, expire: float | None) -> None:
        v = value.draw(self.values)
        assert self.cache.set(key, v, expire=expire) is True
        self.store(key, v, expire)

    @rule(key=st.sampled_from(KEYS), value=st.data())
    def setitem(self, key: str | bytes, value: st.DataObject) -> None:
        v = value.draw(self.values)
        self.cache[key] = v
        self.store(key, v, None)

    @rule(key=st.sampled_from(KEYS))
    def get(self, key: str | bytes) -> None:
        self.observe(key, self.cache.get(key, MISSING))

    @rule(key=st.sampled_from(KEYS))
    def getitem(self, key: str | bytes) -> None:
        try:
            got = self.cache[key]
        except KeyError:
            got = MISSING
        self.observe(key, got)

    @rule(key=st.sampled_from(KEYS))
    def contains(self, key: str | bytes) -> None:
        present = key in self.cache
        entry = self.model.get(norm(key))
        if entry is None:
            assert not present
        elif not present:
            assert entry.volatile
            del self.model[norm(key)]

    @rule(key=st.sampled_from(KEYS))
    def pop(self, key: str | bytes) -> None:
        self.observe(key, self.cache.pop(key, MISSING))
        self.model.pop(norm(key), None)

    @rule(key=st.sampled_from(KEYS))
    def delete(self, key: str | bytes) -> None:
        deleted = self.cache.delete(key)
        entry = self.model.pop(norm(key), None)
        if entry is None:
            assert deleted is False
        elif not entry.volatile:
            assert deleted is True

    @rule(key=st.sampled_from(KEYS), value=st.data(), expire=EXPIRES)
    def add(self, key: str | bytes, value: st.DataObject, expire: float | None) -> None:
        v = value.draw(self.values)
        added = self.cache.add(key, v, expire=expire)
        entry = self.model.get(norm(key))
        if entry is None:
            assert added is True
        elif not entry.volatile:
            assert added is False
        if added:
            self.store(key, v, expire)

    @rule(key=st.sampled_from(KEYS), value=st.data())
    def get_or_set(self, key: str | bytes, value: st.DataObject) -> None:
        v = value.draw(self.values)
        computed: list[Any] = []

        def compute() -> Any:
            computed.append(v)
            return v

        got = self.cache.get_or_set(key, compute)
        entry = self.model.get(norm(key))
        if computed:
            assert entry is None or entry.volatile, f"{key!r} computed although present"
            assert same(got, v)
            self.store(key, v, None)
        else:
            assert entry is not None, f"{key!r} not computed although absent"
            assert same(got, entry.value)

    @rule(key=st.sampled_from(KEYS), delta=DELTAS, use_decr=st.booleans())
    def incr(self, key: str | bytes, delta: int, use_decr: bool) -> None:
        if use_decr and delta == INT64_MIN:
            delta = 1  # decr(INT64_MIN) would negate it: not this rule's business
        signed = -delta if use_decr else delta
        entry = self.model.get(norm(key))
        base = None if entry is None else counter_of(entry.value)
        fits = base is not None and INT64_MIN <= base + signed <= INT64_MAX
        try:
            got = self.cache.decr(key, delta) if use_decr else self.cache.incr(key, delta)
        except lilcache.Error as e:
            # Only a present value that is no counter, or an overflow, fails.
            assert entry is not None and not fits, f"{key!r}: {e}"
            assert isinstance(e, ValueError)
            if base is not None:
                assert isinstance(e, lilcache.LimitError)
            return
        if entry is None:
            assert got == signed
            self.store(key, got, None)
        elif fits and got == base + signed:
            # Present: the counter keeps its expiry (if got == signed, it may
            # also have expired and restarted: stay volatile then).
            entry.value = got
        else:
            assert entry.volatile, f"{key!r}: incr gave {got}, model {entry.value!r}"
            assert got == signed
            self.store(key, got, None)
        assert type(got) is int

    @rule(key=st.sampled_from(KEYS), expire=st.sampled_from([None, LONG, 60.0]))
    def touch(self, key: str | bytes, expire: float | None) -> None:
        touched = self.cache.touch(key, expire)
        entry = self.model.get(norm(key))
        if entry is None:
            assert touched is False
        elif not entry.volatile:
            assert touched is True
        if touched:
            assert entry is not None
            entry.volatile = False
            entry.ttl = expire
        else:
            self.model.pop(norm(key), None)

    def check_ttl(self, key: str | bytes) -> None:
        left = self.cache.ttl(key)
        entry = self.model.get(norm(key))
        if entry is None:
            assert left is None
        elif left is None:
            assert entry.volatile
            del self.model[norm(key)]
        elif entry.volatile:
            assert 0 < left <= 1
        elif entry.ttl is None:
            assert left == math.inf
        else:
            assert 0 < left <= entry.ttl

    @rule()
    def purge(self) -> None:
        self.cache.purge()
        self.model.clear()

    @rule()
    def clear(self) -> None:
        removed = self.cache.clear()
        assert len(self.sure()) <= removed <= len(self.model)
        self.model.clear()

    @rule()
    def reopen(self) -> None:
        self.cache.close()
        self.cache = lilcache.Cache("m", root=self.root, serializer=self.SERIALIZER)

    @precondition(lambda self: len(self.model) > 0)
    @rule()
    def compact(self) -> None:
        self.cache.compact()

    @rule(prefix=st.sampled_from(PREFIXES))
    def keys(self, prefix: str | bytes) -> None:
        listed = self.cache.keys(prefix)
        for k in listed:
            if isinstance(k, bytes):
                try:
                    k.decode()
                    raise AssertionError(f"{k!r} is valid UTF-8 but listed as bytes")
                except UnicodeDecodeError:
                    pass
            else:
                assert isinstance(k, str)
        got = [norm(k) for k in listed]
        assert len(got) == len(set(got)), f"duplicates in {listed!r}"
        p = norm(prefix)
        assert {k for k in self.sure() if k.startswith(p)} <= set(got) <= set(self.model)
        assert all(k.startswith(p) for k in got)

    # -- invariants --

    @invariant()
    def length_is_bounded_by_the_model(self) -> None:
        assert len(self.sure()) <= len(self.cache) <= len(self.model)

    @invariant()
    def every_ttl_agrees_with_the_model(self) -> None:
        for key in KEYS:
            self.check_ttl(key)


class PickledCacheMachine(CacheMachine):
    """The same with serializer='pickle' and any picklable value."""

    SERIALIZER = "pickle"
    values = PICKLED_VALUES


SETTINGS = settings(
    max_examples=100,
    stateful_step_count=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

TestCacheAgainstADict = CacheMachine.TestCase
TestCacheAgainstADict.settings = SETTINGS
TestPickledCacheAgainstADict = PickledCacheMachine.TestCase
TestPickledCacheAgainstADict.settings = SETTINGS
