#include <doctest/doctest.h>

#include <string>

#include "util/ascii.h"

using lilcache::AsciiLower;
using lilcache::EqualsIgnoreCase;
using lilcache::StartsWithIgnoreCase;

TEST_CASE("EqualsIgnoreCase folds only ASCII letters") {
  CHECK(EqualsIgnoreCase("chunked", "Chunked"));
  CHECK(EqualsIgnoreCase("100-CONTINUE", "100-continue"));
  CHECK(EqualsIgnoreCase("", ""));
  CHECK(!EqualsIgnoreCase("chunked", "chunke"));
  CHECK(!EqualsIgnoreCase("chunked ", "chunked"));
  CHECK(!EqualsIgnoreCase("[", "{"));  // '[' is 'A' - 'a' + '{': no arithmetic folding
  CHECK(!EqualsIgnoreCase("\xc3\x89", "\xc3\xa9"));  // É and é: not ASCII, not folded
  static_assert(EqualsIgnoreCase("Bearer", "bEARER"));
}

TEST_CASE("StartsWithIgnoreCase compares the prefix only") {
  CHECK(StartsWithIgnoreCase("Bearer s3cret", "bearer "));
  CHECK(StartsWithIgnoreCase("BEARER ", "bearer "));
  CHECK(!StartsWithIgnoreCase("Bearer", "bearer "));
  CHECK(!StartsWithIgnoreCase("Basic x", "bearer "));
  CHECK(StartsWithIgnoreCase("anything", ""));
}

TEST_CASE("AsciiLower lowers A..Z and keeps every other byte") {
  CHECK(AsciiLower("WARN") == "warn");
  CHECK(AsciiLower("Local-Host.EXAMPLE") == "local-host.example");
  CHECK(AsciiLower(std::string("\xc3\x89@[Z", 5)) == std::string("\xc3\x89@[z", 5));
  static_assert(AsciiLower('Q') == 'q' && AsciiLower('q') == 'q' && AsciiLower('1') == '1');
}
