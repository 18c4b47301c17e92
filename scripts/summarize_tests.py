#!/usr/bin/env python3
"""Prints "N passed, N failed" for a `meson test` run (used by build.sh).

Usage: summarize_tests.py TESTLOG_JSON [SANITIZER_REPORT_DIR]

TESTLOG_JSON is meson's testlog.json: one JSON object per test with its
result and output. Counting:

* A doctest executable counts its test cases, from its
  "[doctest] test cases: X | Y passed | Z failed" line(s); one that crashed,
  timed out or failed after reporting no failure adds 1 failed.
* A test that prints no doctest summary (the examples, the torture) counts
  as 1 passed or 1 failed by its meson result. Skipped tests count as
  neither.
* Sanitizer runs: a test whose output holds a sanitizer report fails. With
  SANITIZER_REPORT_DIR (one report file per reporting process, see
  sanitizer_env in build.sh), each file adds 1 failed and is printed to
  stderr, except a file holding only LeakSanitizer's notice that a thread
  could not be suspended (no report follows it).

Exits 1 if anything failed. Standard library only: any python3 runs it.
"""

import json
import os
import re
import sys
from typing import Iterator, Tuple

DOCTEST_SUMMARY = re.compile(
    r"\[doctest\] test cases:\s*\d+\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
LSAN_NOTICE = re.compile(
    r"^==\d+==Running thread \d+ was not suspended\. False leaks are possible\.$")
SANITIZER_REPORT = re.compile(
    r"ERROR: (AddressSanitizer|LeakSanitizer)|WARNING: ThreadSanitizer|"
    r":\d+:\d+: runtime error: ")


def tests(testlog: str) -> Iterator[dict]:
    """Yields the test records of a testlog.json."""
    with open(testlog, encoding="utf-8", errors="replace") as log:
        for line in log:
            if line.strip():
                yield json.loads(line)


def count_test(test: dict) -> Tuple[int, int]:
    """Returns (passed, failed) for one test record; reports failures."""
    name = test.get("name", "?")
    result = test.get("result", "ERROR")
    ok = result in ("OK", "EXPECTEDFAIL")
    out = ANSI_ESCAPE.sub(
        "", (test.get("stdout") or "") + "\n" + (test.get("stderr") or ""))
    if SANITIZER_REPORT.search(out):
        # A report on stderr (gcc's UBSan cannot log to a file), from the
        # test or from a child that inherited its stderr.
        print(f"{name}: sanitizer report in its output", file=sys.stderr)
        ok = False
    counts = DOCTEST_SUMMARY.findall(out)
    if counts:
        passed = sum(int(c[0]) for c in counts)
        failed = sum(int(c[1]) for c in counts)
        if not ok and failed == 0:
            failed = 1  # crashed, timed out or failed after its summary
    else:
        passed, failed = (1, 0) if ok else (0, 1)
    if not ok:
        print(f"{name}: {result}", file=sys.stderr)
    return passed, failed


def count_reports(report_dir: str) -> int:
    """Returns the number of sanitizer reports in report_dir; prints them."""
    reports = 0
    for name in sorted(os.listdir(report_dir)):
        path = os.path.join(report_dir, name)
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
        if lines and all(LSAN_NOTICE.search(line) for line in lines):
            # A thread exiting as its process ended could not be stopped for
            # the leak scan: a notice, not a report (a leak has its own).
            print(f"sanitizer notice {path} (not a report): {lines[0]}",
                  file=sys.stderr)
            continue
        print(f"sanitizer report {path}:", file=sys.stderr)
        for line in lines[:80]:
            print("  " + line, file=sys.stderr)
        reports += 1
    return reports


def main(argv: list) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    passed = failed = 0
    for test in tests(argv[1]):
        if test.get("result", "ERROR") == "SKIP":
            continue
        p, f = count_test(test)
        passed += p
        failed += f
    if len(argv) > 2 and os.path.isdir(argv[2]):
        failed += count_reports(argv[2])
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
