"""lilcache: a key-value cache shared by every process and thread of one
machine, with no server and no coordinator process.

The seed's lines work as written::

    import lilcache
    lilcache.set('a', 'b')          # Process 1
    lilcache.get('a')               # Process 2: 'b'
    lilcache.pop('a')               # Process 3: 'b', and it is gone for everyone
    lilcache.init('foo_cache', snapshot='120s')
    lilcache.purge()
    lilcache.init('foo_cache', expires='1d')
    lilcache.start(host='0.0.0.0', port=5001)  # Blocking call
    lilcache.init('foo_cache', root='/home/user/secured-directory')
    lilcache.init(loglevel='DEBUG')

The module-level functions act on a process-wide default cache (init()
chooses it; without init(), the cache 'default' under the default root).
Cache objects are handles of their own: ``lilcache.Cache('foo_cache')``.

Keys are str (stored as UTF-8) or bytes: 'a' and b'a' are one key. Values
keep their type: str, bytes and int (-2**63 .. 2**63-1) come back as they
went in, whichever process reads them. C++ programs, `curl` and the
`lilcache` CLI see the raw bytes (a str's UTF-8, an int's decimal text); what
they store comes back to Python as bytes, and counters made by any incr()
as int. Other objects need ``serializer='pickle'`` (then only unpickled by
handles opened with it: never unpickle what untrusted writers stored).

Durations (expire=, expires=, snapshot=, sync=) are seconds (int or float),
strings of the seed's form ('500ms', '120s', '1h30m', '1d') or
datetime.timedelta objects.

Errors: lilcache.Error (with .code, the C++ ErrorCode name such as
'no_space' or 'permission', and the engine's message); InvalidArgumentError
and LimitError are also ValueErrors; wrong argument types are TypeErrors.

Threads and processes: everything is thread-safe and releases the GIL while
the engine works. Handles survive os.fork() and work with multiprocessing
('fork' and 'spawn': a Cache pickles as "reopen this cache").

The manual: docs/python.md; the C++ API it binds: include/lilcache/lilcache.h.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import pickle
import signal
import threading
from types import TracebackType
from typing import Any, Callable, Iterator, TypeVar

from ._lilcache import (
    Error,
    InvalidArgumentError,
    LimitError,
    _Cache,
    _Server,
    __version__,
    list_caches,
    parse_duration,
)

__all__ = [
    "Cache",
    "Error",
    "InvalidArgumentError",
    "LimitError",
    "__version__",
    "add",
    "cache",
    "decr",
    "delete",
    "get",
    "incr",
    "init",
    "keys",
    "list_caches",
    "memoize",
    "parse_duration",
    "pop",
    "purge",
    "set",
    "start",
    "touch",
    "ttl",
]

_F = TypeVar("_F", bound=Callable[..., Any])

_OPTION_NAMES = (
    "root",
    "snapshot",
    "expires",
    "loglevel",
    "max_bytes",
    "sync",
    "compact_dead_ratio",
    "get_or_set_timeout",
    "create",
    "serializer",
    "backend",
)


def _reopen(name: str, options: dict[str, Any]) -> "Cache":
    """Unpickles a Cache: opens the same cache with the same options."""
    return Cache(name, **options)


class Cache(_Cache):
    """A handle to one named cache, shared with every process that opens it.

    Cache(name='default', *, root=None, snapshot=None, expires=None,
          loglevel=None, max_bytes=None, sync=None, compact_dead_ratio=None,
          get_or_set_timeout=None, create=True, serializer=None,
          backend=None)

    name: 1..100 characters of [A-Za-z0-9_.-] (not '.' or '..'); the cache's
        files are <root>/<name>.*.
    root: the directory of the files (created 0700; files 0600). None:
        $LILCACHE_ROOT, else $XDG_CACHE_HOME/lilcache, else ~/.cache/lilcache.
        A root owned by another user or writable by others is refused
        (Error, code 'permission').
    snapshot: interval of snapshots (durable, compacted points in time),
        e.g. '120s'; one process per interval writes it. None: none.
    expires: default time to live of keys set without expire=; None: never.
    loglevel: level of <root>/<name>.log ('DEBUG', 'info', ... any case).
    max_bytes: size limit of the live data (the least recently stored keys
        are evicted by compactions); None leaves the cache's limit as is.
    sync: None (durable at snapshots), 'always' (every write on disk before
        it returns) or an interval of background syncs ('100ms').
    compact_dead_ratio: fraction of dead bytes that starts a compaction
        (default 0.4; 0 never on dead space).
    get_or_set_timeout: how long get_or_set()/memoize wait for another
        process's computation (default 30 s), then Error (code 'busy').
    create: False: a missing cache is Error (code 'no_such_cache').
    serializer: None (str, bytes and int values only) or 'pickle' (any
        picklable value; unsafe if untrusted users can write the cache).
    backend: where the cache lives (docs/cluster.md): None ($LILCACHE_BACKEND,
        else 'local'), 'local' (the files under root),
        'redis-cluster://host:port[,host:port...]' (a Redis Cluster, through
        these seed nodes; also '[user]:password@' and '?timeout=...') or
        'redis://host:port' (one Redis server). On Redis the cache is the
        key prefix `name` on the servers, shared by every machine, and root
        holds only the log. A malformed URL is Error ('invalid_argument').

    A Cache is a mapping: cache[key] (KeyError on a miss), cache[key] = v,
    del cache[key], key in cache, len(cache), iteration over the keys. It is
    a context manager (closes on exit). Every method is thread-safe and
    atomic across processes; the GIL is released while the engine works.
    Where diskcache has an operation, it has diskcache's name and semantics.
    """

    def __init__(
        self,
        name: str = "default",
        *,
        root: Any = None,
        snapshot: Any = None,
        expires: Any = None,
        loglevel: str | None = None,
        max_bytes: int | None = None,
        sync: Any = None,
        compact_dead_ratio: float | None = None,
        get_or_set_timeout: Any = None,
        create: bool = True,
        serializer: str | None = None,
        backend: str | None = None,
    ) -> None:
        options = {
            "root": root,
            "snapshot": snapshot,
            "expires": expires,
            "loglevel": loglevel,
            "max_bytes": max_bytes,
            "sync": sync,
            "compact_dead_ratio": compact_dead_ratio,
            "get_or_set_timeout": get_or_set_timeout,
            "create": create,
            "serializer": serializer,
            "backend": backend,
        }
        super().__init__(name, **options)
        # Reopened elsewhere (pickling) under the root it resolved to here.
        options["root"] = self.root
        self._options = {k: v for k, v in options.items() if v is not None}

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<lilcache.Cache {self.name!r} in {self.root!r} ({state})>"

    def __enter__(self) -> "Cache":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[str | bytes]:
        """Iterates over the keys live when it starts (keys())."""
        return iter(self.keys())

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles as "open this cache with these options" (multiprocessing)."""
        return (_reopen, (self.name, dict(self._options)))

    def memoize(
        self, expire: Any = None, *, name: str | None = None
    ) -> Callable[[_F], _F]:
        """A decorator caching a function's results in this cache.

        The key is made of `name` (default: the function's module and
        qualified name) and a hash of the pickled arguments, so every process
        running the same code shares the results. A miss is computed once
        across all processes (get_or_set(): others wait for it). Results
        must be values this cache stores (str, bytes, int; anything picklable
        with serializer='pickle'); they expire after `expire` (None: the
        cache's default). The wrapper's __cache_key__(*args, **kwargs) gives
        the key of a call.
        """
        return _memoizer(lambda: self, expire, name)


def _memoizer(
    target: Callable[[], Cache], expire: Any, name: str | None
) -> Callable[[_F], _F]:
    """memoize's decorator, caching in the cache target() returns."""
    if callable(expire) and name is None:
        raise TypeError("use @memoize(), not @memoize")

    def decorator(func: _F) -> _F:
        base = name or f"{func.__module__}.{func.__qualname__}"

        def cache_key(*args: Any, **kwargs: Any) -> str:
            blob = pickle.dumps((args, sorted(kwargs.items())), protocol=4)
            return f"memoize:{base}:{hashlib.sha256(blob).hexdigest()}"

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return target().get_or_set(
                cache_key(*args, **kwargs), lambda: func(*args, **kwargs), expire
            )

        wrapper.__cache_key__ = cache_key  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator


# ---- The seed's module-level functions, on a process-wide default cache ----

_default_lock = threading.Lock()
_default: Cache | None = None


def init(
    name: str = "default",
    *,
    root: Any = None,
    snapshot: Any = None,
    expires: Any = None,
    loglevel: str | None = None,
    max_bytes: int | None = None,
    sync: Any = None,
    serializer: str | None = None,
    backend: str | None = None,
) -> Cache:
    """Opens the cache `name` (options as Cache's) and makes it this
    process's default cache, the one the module-level functions use; returns
    it. The previous default closes once no call is using it. On an error
    (lilcache.Error), the previous default stays."""
    global _default
    opened = Cache(
        name,
        root=root,
        snapshot=snapshot,
        expires=expires,
        loglevel=loglevel,
        max_bytes=max_bytes,
        sync=sync,
        serializer=serializer,
        backend=backend,
    )
    with _default_lock:
        _default = opened
    return opened


def cache() -> Cache:
    """The default cache: the last init()'s, else 'default' under the
    default root (opened on first use)."""
    global _default
    current = _default
    if current is not None:
        return current
    with _default_lock:
        if _default is None:
            _default = Cache()
        return _default


def set(key: Any, value: Any, expire: Any = None) -> bool:  # noqa: A001
    """Stores value under key in the default cache (Cache.set)."""
    return cache().set(key, value, expire)


def get(key: Any, default: Any = None) -> Any:
    """The value of key in the default cache, or default (Cache.get)."""
    return cache().get(key, default)


def pop(key: Any, default: Any = None) -> Any:
    """Removes key from the default cache and returns its value, or default;
    one of racing pops gets it (Cache.pop)."""
    return cache().pop(key, default)


def delete(key: Any) -> bool:
    """Removes key from the default cache (Cache.delete)."""
    return cache().delete(key)


def add(key: Any, value: Any, expire: Any = None) -> bool:
    """Stores value only if key is absent from the default cache (Cache.add)."""
    return cache().add(key, value, expire)


def incr(key: Any, delta: int = 1, default: int | None = 0) -> int:
    """Atomically adds delta to an integer in the default cache (Cache.incr)."""
    return cache().incr(key, delta, default)


def decr(key: Any, delta: int = 1, default: int | None = 0) -> int:
    """Atomically subtracts delta from an integer in the default cache."""
    return cache().decr(key, delta, default)


def touch(key: Any, expire: Any = None) -> bool:
    """Gives key a new expiry in the default cache (Cache.touch)."""
    return cache().touch(key, expire)


def ttl(key: Any) -> float | None:
    """Seconds until key expires in the default cache (Cache.ttl)."""
    return cache().ttl(key)


def keys(prefix: Any = "", limit: int | None = None) -> list[str | bytes]:
    """Keys of the default cache (Cache.keys)."""
    return cache().keys(prefix, limit)


def purge() -> None:
    """Removes every key of the default cache, for every process, at once."""
    cache().purge()


def memoize(expire: Any = None, *, name: str | None = None) -> Callable[[_F], _F]:
    """Cache.memoize on the default cache (the one current at each call)."""
    return _memoizer(cache, expire, name)


def start(
    host: str = "127.0.0.1",
    port: int = 5001,
    *,
    token: str | None = None,
    allowed_hosts: list[str] | None = None,
    allowed_origins: list[str] | None = None,
    threads: int = 0,
    max_connections: int = 0,
    loglevel: str | None = None,
    cache: Cache | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serves a cache over HTTP and blocks (the seed's "Blocking call").

    Serves `cache` (default: the default cache) on host:port (port 0: a free
    one) with the REST API of docs/rest.md: GET /get?key=a, GET
    /set?key=a&value=b, /keys/{key} with GET, PUT, DELETE, and more. Called
    in the main thread, SIGINT (Ctrl-C) and SIGTERM stop it cleanly: start()
    then returns None, and the previous signal handlers are back. Elsewhere
    it serves until the process ends. on_ready(url) is called once it
    listens. The GIL is released while it serves.

    token: a bearer token every request must carry (None: $LILCACHE_TOKEN,
    else none; serving a non-loopback address without one logs a warning).
    allowed_hosts / allowed_origins: Host names and browser origins allowed
    besides the defaults (by default no web page can use the server).
    threads: serving threads (0: one per core). max_connections: 0 = 1000.
    Errors (lilcache.Error): a port in use (code 'busy'), a bad option.
    """
    target = cache if cache is not None else globals()["cache"]()
    server = _Server(
        target,
        host,
        port,
        token,
        list(allowed_hosts or []),
        list(allowed_origins or []),
        threads,
        max_connections,
        loglevel or "",
    )
    in_main = threading.current_thread() is threading.main_thread()
    previous: dict[int, Any] = {}
    try:
        _serve(server, in_main, previous, on_ready)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.close()  # the port is free when start() returns or raises


def _serve(
    server: _Server,
    in_main: bool,
    previous: dict[int, Any],
    on_ready: Callable[[str], None] | None,
) -> None:
    """start()'s loop: installs the signal handlers (recording the previous
    ones in `previous` for start() to restore), serves in a thread of its
    own, calls on_ready, and waits until the server stops."""
    if in_main:

        def stop(signum: int, frame: Any) -> None:
            server.stop()

        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, stop)
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            server.run()
        except BaseException as e:  # re-raised in the caller's thread
            failure.append(e)

    # Python runs signal handlers in the main thread between bytecodes, so
    # the calling thread waits (interruptibly) while another one serves.
    runner = threading.Thread(target=serve, name="lilcache-server", daemon=True)
    runner.start()
    try:
        if on_ready is not None:
            on_ready(server.url)  # it may send requests: the server is running
        while runner.is_alive():
            runner.join(0.2)
    finally:
        server.stop()
        runner.join()
    if failure:
        raise failure[0]
