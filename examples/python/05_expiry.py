"""Seed requirement 5: expiring keys.

    lilcache.init('foo_cache', expires='1d')
    lilcache.set('a', 'b')

expires= is the time-to-live of every key set through that cache handle;
set(key, value, expire=...) gives one key its own. Durations are seconds
(int or float), strings like '500ms', '120s', '5m', '1h30m', '1d', '1w', or
datetime.timedelta.

Usage: 05_expiry.py [ROOT]   (default: $LILCACHE_ROOT, else a temporary directory)
"""

import datetime
import time

import example
import lilcache


def main(root: str) -> None:
    lilcache.init("foo_cache", root=root, expires="1d")  # every key set lives one day
    lilcache.set("a", "b")
    ttl = lilcache.ttl("a")  # seconds left
    example.check(ttl is not None and 0 < ttl <= 86400, "a lives one day")

    # A key with its own time-to-live.
    start = time.monotonic()
    lilcache.set("token", "t0k3n", expire=0.05)  # or '50ms', or a timedelta
    seen = lilcache.get("token") is not None
    # (Only a machine stalled for 50 ms between the two calls would miss it.)
    example.check(seen or time.monotonic() - start >= 0.05, "token is there at once")

    time.sleep(0.08)
    example.check(lilcache.get("token") is None, "token expired after 50 ms")
    example.check(lilcache.get("a") == "b", "a (1 day) is still there")
    print(f"after 80 ms: get('token') -> miss, get('a') -> 'b' ({ttl / 3600:.0f} h left)")

    example.check(lilcache.parse_duration("1h30m") == 5400, "1h30m is 5400 seconds")
    example.check(lilcache.parse_duration(datetime.timedelta(minutes=90)) == 5400,
                  "so is timedelta(minutes=90)")


if __name__ == "__main__":
    example.run(main)
