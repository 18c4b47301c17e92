#!/usr/bin/python3
"""Times paging through every key of GET /keys (docs/rest.md, "Listing
keys: pages"): starts `lilcache serve` on a fresh root, stores N keys with
/batch/set, then follows Link: rel="next" from /keys?limit=L to the end, 3
times for L = 1,000 and 10,000, and prints the median of each.

    /usr/bin/python3 bench/rest_keys_pages.py build-rel/tools/lilcache 100000
"""
import http.client
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def main() -> None:
    cli, n = sys.argv[1], int(sys.argv[2])
    root = tempfile.mkdtemp()
    server = subprocess.Popen(
        [cli, "serve", "--root", root, "--port", "0", "--loglevel", "warn"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline().decode().strip()
        port = int(re.search(r":(\d+)$", line).group(1))  # type: ignore[union-attr]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for start in range(0, n, 1000):
            items = {f"key:{i:09d}": "v" for i in range(start, min(n, start + 1000))}
            conn.request("POST", "/batch/set", json.dumps(items),
                         {"Content-Type": "application/json"})
            conn.getresponse().read()
        for limit in (1000, 10000):
            runs = []
            pages = 0
            for _ in range(3):
                began = time.perf_counter()
                target = f"/keys?limit={limit}"
                pages = listed = 0
                while target:
                    conn.request("GET", target)
                    reply = conn.getresponse()
                    listed += len(json.loads(reply.read()))
                    pages += 1
                    link = reply.getheader("Link")
                    target = re.match(r"<([^>]*)>", link).group(1) if link else ""  # type: ignore[union-attr]
                runs.append(time.perf_counter() - began)
                assert listed == n, (listed, n)
            median = statistics.median(runs)
            print(f"{n} keys, limit {limit}: {pages} pages, median {median * 1000:.0f} ms "
                  f"({median / pages * 1000:.1f} ms a page); runs "
                  f"{[round(r * 1000) for r in runs]} ms")
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
