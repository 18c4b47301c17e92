#!/usr/bin/env bash
# Checks that every C++ file in git is formatted by .clang-format
# (clang-format-14; the version matters: others format differently).
#
#   scripts/check_format.sh          check; prints each misformatted file and
#                                    ends with "N passed, N failed" (files)
#   scripts/check_format.sh --fix    format them in place
#
# Environment: CLANG_FORMAT (default clang-format-14).
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
clang_format=${CLANG_FORMAT:-clang-format-14}
if ! command -v "$clang_format" >/dev/null; then
  echo "check_format.sh: $clang_format not found (Debian: apt-get install clang-format-14)" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
mapfile -t files < <(git ls-files '*.cc' '*.h' '*.hpp' '*.cpp')
if [[ ${1:-} == --fix ]]; then
  "$clang_format" -i "${files[@]}"
  exit
fi
passed=0
failed=0
for f in "${files[@]}"; do
  if "$clang_format" --dry-run -Werror "$f" >/dev/null 2>&1; then
    ((++passed))
  else
    echo "check_format.sh: $f is not formatted (scripts/check_format.sh --fix)" >&2
    ((++failed))
  fi
done
echo "$passed passed, $failed failed"
((failed == 0))
