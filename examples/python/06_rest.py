"""Seed requirement 6: a RESTful server.

    lilcache.init('foo_cache')
    lilcache.start(host='0.0.0.0', port=5001)  # Blocking call

lilcache.start() serves the default cache (or cache=) until SIGINT (Ctrl-C)
or SIGTERM, then returns. This example listens on a free port (port=0) and,
once it listens (on_ready), talks to it from a thread as any client (curl, a
browser, another language) would, then stops it with SIGINT. What a client
sets over HTTP, Cache.get() sees at once in every process, and the reverse;
values set over HTTP are bytes to Python, counters are ints. Every endpoint:
docs/rest.md.

Usage: 06_rest.py [ROOT]   (default: $LILCACHE_ROOT, else a temporary directory)
"""

import os
import signal
import threading
import urllib.error
import urllib.request

import example
import lilcache


def http(method: str, url: str, body: bytes | None = None) -> tuple[int, bytes]:
    """One HTTP request; returns (status, body)."""
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:  # 4xx, 5xx
        return e.code, e.read()


def exercise(cache: lilcache.Cache, url: str) -> None:
    """What a client does, checked against the library's view of the cache."""
    # Set over HTTP; the library sees it (as bytes: HTTP values carry no type).
    status, _ = http("GET", url + "/set?key=a&value=b")
    example.check(status == 200, "GET /set answers 200")
    example.check(cache.get("a") == b"b", "Cache.get sees what HTTP set")

    # Get over HTTP what the library set: the body is the value's UTF-8 bytes.
    cache.set("greeting", "hi\0thére")
    status, raw = http("GET", url + "/get?key=greeting")
    example.check(status == 200 and raw == "hi\0thére".encode(), "GET /get returns the raw value")

    # The resource form: PUT the raw body, then pop it, once.
    put, _ = http("PUT", url + "/keys/job", b"payload")
    example.check(put == 201, "PUT /keys/job answers 201 Created")
    popped = http("GET", url + "/pop?key=job")
    example.check(popped == (200, b"payload"), "GET /pop returns the value")
    example.check(http("GET", url + "/get?key=job")[0] == 404, "after the pop, GET /get is 404")

    # A counter is shared: incremented over HTTP, it is an int to Python.
    cache.incr("hits", 41)
    status, count = http("POST", url + "/keys/hits/increment")
    example.check((status, count, cache.get("hits")) == (200, b"42", 42), "one counter for both")
    print(f"GET /set -> 200, GET /get -> {len(raw)} bytes, PUT + GET /pop -> {popped[1]!r}, "
          f"then 404; POST /keys/hits/increment -> {cache.get('hits')!r}", flush=True)


def main(root: str) -> None:
    cache = lilcache.init("foo_cache", root=root)
    failures: list[BaseException] = []

    def client(url: str) -> None:
        try:
            exercise(cache, url)
        except BaseException as e:  # reported by main, after the server stops
            failures.append(e)
        finally:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C does: start() returns

    def on_ready(url: str) -> None:
        print(f"serving foo_cache on {url}", flush=True)
        threading.Thread(target=client, args=(url,)).start()

    lilcache.start(host="127.0.0.1", port=0, on_ready=on_ready)  # blocks until SIGINT
    print("SIGINT: start() returned")
    if failures:
        raise failures[0]


if __name__ == "__main__":
    example.run(main)
