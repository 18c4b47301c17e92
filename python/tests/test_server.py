"""lilcache.start(): the REST server run from Python, each in a child
Python process (start() blocks) on a free port, driven with http.client
and stopped by signals.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from support_procs import (  # noqa: F401  (fixtures)
    PYTHON,
    Processes,
    env,
    home,
    procs,
    read_line,
    request,
    root,
    run_python,
    stop,
)

# A child serving the default cache (or cache_name): start(**argv[1] as
# JSON) with an on_ready that prints the URL; custom SIGINT and SIGTERM handlers are
# installed before, and reported as restored (or not) after start()
# returns.
SERVER = r"""
import json, signal, sys
import lilcache

def custom(signum, frame):
    raise SystemExit(f'custom handler of {signum} called')

signal.signal(signal.SIGINT, custom)
signal.signal(signal.SIGTERM, custom)
calls = []

def ready(url):
    calls.append(url)
    print('ready', url, flush=True)

kwargs = json.loads(sys.argv[1])
if 'cache_name' in kwargs:  # start(cache=lilcache.Cache(cache_name))
    kwargs['cache'] = lilcache.Cache(kwargs.pop('cache_name'))
result = lilcache.start(on_ready=ready, **kwargs)
print('returned', result, len(calls), flush=True)
print('handlers restored',
      signal.getsignal(signal.SIGINT) is custom and signal.getsignal(signal.SIGTERM) is custom,
      flush=True)
"""


def serve(
    procs: Processes, env: dict[str, str], **kwargs: Any
) -> tuple[subprocess.Popen[bytes], int]:
    """Starts SERVER with start(**kwargs) (port 0 unless given) and waits
    for on_ready: returns the child and the port of the URL it got."""
    kwargs.setdefault("port", 0)
    child = procs.start(
        [PYTHON, "-c", SERVER, json.dumps(kwargs)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    line = read_line(child)
    match = re.fullmatch(r"ready http://127\.0\.0\.1:(\d+)", line)
    assert match, line
    return child, int(match.group(1))


def stop_cleanly(child: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> None:
    """Stops a SERVER child with `sig`: start() returns None (on_ready was
    called once), the custom handlers are back, exit status 0."""
    status, out, err = stop(child, sig)
    assert status == 0, err
    assert out.splitlines() == ["returned None 1", "handlers restored True"], err


def test_on_ready_gets_the_url_of_the_listening_server(
    env: dict[str, str], procs: Processes
) -> None:
    """start(port=0, on_ready=f) picks a free port and calls f once with
    http://127.0.0.1:PORT, where the server already answers; SIGINT then
    makes start() return with the previous handlers restored."""
    child, port = serve(procs, env)
    assert port != 0
    assert request(port, "/health")[:2] == (200, b"OK\n")
    assert request(port, "/set?key=a&value=b")[:2] == (200, b"OK\n")
    assert run_python("import lilcache; print(lilcache.get('a'))", env).stdout == "b'b'\n"
    stop_cleanly(child, signal.SIGINT)


def test_sigterm_stops_the_server_too(env: dict[str, str], procs: Processes) -> None:
    """SIGTERM stops start() as SIGINT does."""
    child, port = serve(procs, env)
    assert request(port, "/health")[0] == 200
    stop_cleanly(child, signal.SIGTERM)


def test_start_serves_the_cache_it_is_given_and_logs_requests_at_debug(
    env: dict[str, str], procs: Processes, root: Path
) -> None:
    """start(cache=c) serves c, not the default cache; loglevel='debug'
    logs every request (path without its query) to <root>/<name>.log."""
    child, port = serve(procs, env, cache_name="served", loglevel="debug")
    assert request(port, "/set?key=a&value=secret")[:2] == (200, b"OK\n")
    assert request(port, "/keys/b", method="PUT", body=b"x")[0] == 201
    stop_cleanly(child)
    out = run_python(
        "import lilcache\n"
        "print(lilcache.Cache('served').get('a'), lilcache.get('a'))\n",
        env,
    ).stdout
    assert out == "b'secret' None\n"
    log = (root / "served.log").read_text()
    assert re.search(r" debug lilcache\.served\.http: http \S+ GET /set 200 ", log), log
    assert re.search(r" debug lilcache\.served\.http: http \S+ PUT /keys/b 201 ", log), log
    assert "secret" not in log


def test_a_port_in_use_is_a_lilcache_error(env: dict[str, str]) -> None:
    """start() on a port another socket listens on raises lilcache.Error
    (naming the address) without calling on_ready."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_python(
            "import lilcache\n"
            "try:\n"
            f"    lilcache.start(port={port}, on_ready=lambda url: print('ready', url))\n"
            "except lilcache.Error as e:\n"
            "    print(type(e).__name__, e.code, repr(str(e)))\n",
            env,
        )
    assert result.returncode == 0, result.stderr
    assert not result.stdout.startswith("ready"), result.stdout
    assert result.stdout.startswith("Error busy "), result.stdout
    assert str(port) in result.stdout, result.stdout


def test_a_token_is_required_when_given(env: dict[str, str], procs: Processes) -> None:
    """start(token=T): a request without `Authorization: Bearer T`, or with
    another token, is 401 (with WWW-Authenticate); with it, served."""
    child, port = serve(procs, env, token="s3cret")
    status, _, headers = request(port, "/health")
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert request(port, "/set?key=a&value=b")[0] == 401
    assert request(port, "/health", headers={"Authorization": "Bearer wrong"})[0] == 401
    good = {"Authorization": "Bearer s3cret"}
    assert request(port, "/set?key=a&value=b", headers=good)[:2] == (200, b"OK\n")
    assert request(port, "/get?key=a", headers=good)[:2] == (200, b"b")
    assert run_python("import lilcache; print(lilcache.get('a'))", env).stdout == "b'b'\n"
    stop_cleanly(child)


def test_an_empty_token_is_an_error_not_no_authentication(env: dict[str, str]) -> None:
    """start(token='') raises lilcache.Error instead of serving without a
    token."""
    result = run_python(
        "import lilcache\n"
        "try:\n"
        "    lilcache.start(port=0, token='', on_ready=lambda url: print('ready', url))\n"
        "except lilcache.Error as e:\n"
        "    print('Error', e.code)\n",
        env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Error "), result.stdout


def test_cross_site_browser_requests_are_refused(env: dict[str, str], procs: Processes) -> None:
    """A request from another site's page (Origin not allowed, or
    Sec-Fetch-Site: cross-site) is 403, and writes nothing; allowed origins
    and hosts are served."""
    child, port = serve(
        procs, env, allowed_origins=["https://app.example"], allowed_hosts=["cache.lan"]
    )
    evil = [
        {"Origin": "http://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "null"},
        {"Host": "rebind.evil.example"},
    ]
    for headers in evil:
        assert request(port, "/set?key=a&value=evil", headers=headers)[0] == 403, headers
    assert request(port, "/get?key=a")[0] == 404

    status, body, headers = request(
        port, "/set?key=a&value=b", headers={"Origin": "https://app.example"}
    )
    assert (status, body) == (200, b"OK\n")
    assert headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert request(port, "/get?key=a", headers={"Sec-Fetch-Site": "same-origin"})[:2] == (200, b"b")
    assert request(port, "/get?key=a", headers={"Host": "cache.lan"})[:2] == (200, b"b")
    stop_cleanly(child)


def test_sigint_during_a_slow_request_still_stops_the_server(
    env: dict[str, str], procs: Processes
) -> None:
    """SIGINT while a client is half-way through sending a request (its
    header not complete) still stops start(): the server lets the request
    run to its deadline (10 s), drops it unanswered, and start() returns.
    (A connection between two keep-alive requests is idle, and closed at
    once.)"""
    child, port = serve(procs, env)
    with socket.create_connection(("127.0.0.1", port), timeout=60) as slow:
        slow.sendall(b"GET /get?key=a HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        # A whole request on another connection, answered once the server
        # accepted the connections before it: the slow one is in progress.
        assert request(port, "/health")[:2] == (200, b"OK\n")
        stop_cleanly(child, signal.SIGINT)
        try:
            assert slow.recv(4096) == b"", "the slow request was answered"
        except ConnectionResetError:
            pass


# start() from a thread other than the main one: Python lets only the main
# thread install signal handlers, so start() installs none there and serves
# until the process ends (or forever); the handlers of the process stay as
# they were. A daemon thread serving does not keep the process alive.
NON_MAIN = r"""
import signal, threading, urllib.request
import lilcache

ready = threading.Event()
urls = []

def on_ready(url):
    urls.append(url)
    ready.set()

def run():
    try:
        lilcache.start(port=0, on_ready=on_ready)
        print('returned', flush=True)
    except BaseException as e:
        print('raised', type(e).__name__, e, flush=True)
        ready.set()

thread = threading.Thread(target=run, daemon=True)
thread.start()
print('ready', ready.wait(60), flush=True)
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
print('health', opener.open(urls[0] + '/health', timeout=60).read(), flush=True)
print('SIGINT handler untouched',
      signal.getsignal(signal.SIGINT) is signal.default_int_handler, flush=True)
print('SIGTERM handler untouched', signal.getsignal(signal.SIGTERM) == signal.SIG_DFL, flush=True)
print('still serving', thread.is_alive(), flush=True)
"""


def test_start_from_a_thread_other_than_the_main_one_serves_until_the_process_ends(
    env: dict[str, str]
) -> None:
    """start() in a non-main thread serves (on_ready is called, requests
    are answered), installs no signal handler (only the main thread may),
    and never returns on its own: the process ends it by exiting (status
    0, the serving thread being a daemon)."""
    result = run_python(NON_MAIN, env)
    assert result.stdout.splitlines() == [
        "ready True",
        "health b'OK\\n'",
        "SIGINT handler untouched True",
        "SIGTERM handler untouched True",
        "still serving True",
    ], result.stderr
    assert result.returncode == 0, result.stderr


# on_ready raising: start() raises the same exception and frees the port
# at once, even while the exception (whose traceback holds start()'s frame
# and so its server) is kept, as sys.last_value in an interactive session.
ON_READY_RAISES = r"""
import socket, sys
import lilcache

def boom(url):
    raise RuntimeError('on_ready failed')

port = int(sys.argv[1])
try:
    lilcache.start(port=port, on_ready=boom)
except RuntimeError as e:
    kept = e  # as an interactive session, or a logger, keeps it
    print('raised', e, flush=True)
probe = socket.socket()
try:
    probe.connect(('127.0.0.1', port))
    print('still listening', flush=True)
except ConnectionRefusedError:
    print('closed', flush=True)
"""


def test_on_ready_raising_propagates_and_leaves_nothing_listening(env: dict[str, str]) -> None:
    """If on_ready raises, start() raises that exception and the port is
    free again, whoever still holds the exception."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = subprocess.run(
        [PYTHON, "-c", ON_READY_RAISES, str(port)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["raised on_ready failed", "closed"]
