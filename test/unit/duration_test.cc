#include <doctest/doctest.h>

#include "lilcache/lilcache.h"

using lilcache::Error;
using lilcache::parse_duration;
using std::chrono::milliseconds;

TEST_CASE("durations parse in every unit") {
  CHECK(parse_duration("500ms") == milliseconds(500));
  CHECK(parse_duration("120s") == milliseconds(120'000));
  CHECK(parse_duration("5m") == milliseconds(300'000));
  CHECK(parse_duration("2h") == milliseconds(7'200'000));
  CHECK(parse_duration("1d") == milliseconds(86'400'000));
  CHECK(parse_duration("1w") == milliseconds(604'800'000));
  CHECK(parse_duration("0s") == milliseconds(0));
}

TEST_CASE("compound durations add up") {
  CHECK(parse_duration("1h30m") == milliseconds(5'400'000));
  CHECK(parse_duration("1d2h3m4s5ms") ==
        milliseconds(86'400'000 + 7'200'000 + 180'000 + 4'000 + 5));
}

TEST_CASE("the largest duration, INT64_MAX milliseconds, parses; one more is too large") {
  // Found by test/fuzz/fuzz_parsers: numbers above (INT64_MAX - 9) / 10 were
  // refused before their last digit was looked at.
  CHECK(parse_duration("9223372036854775807ms") == milliseconds::max());
  CHECK(parse_duration("9223372036854775800ms") == milliseconds(9223372036854775800));
  CHECK(parse_duration("9223372036854775s807ms") == milliseconds::max());
  CHECK_THROWS_AS(parse_duration("9223372036854775808ms"), Error);
  CHECK_THROWS_AS(parse_duration("9223372036854775807ms1ms"), Error);
  CHECK_THROWS_AS(parse_duration("9223372036854776s"), Error);
}

TEST_CASE("a bad duration with NUL or control bytes is quoted escaped, so the message is whole") {
  // Found by test/fuzz/fuzz_parsers: the input was quoted raw, and what(), a C
  // string, ended at its first NUL.
  try {
    parse_duration(std::string("5\0s\n", 4));
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()) ==
          "invalid duration \"5\\x00s\\n\": missing unit (expected e.g. \"500ms\", "
          "\"120s\", \"5m\", \"2h\", \"1d\", \"1w\", \"1h30m\")");
  }
}

TEST_CASE("bad durations give an Error quoting the input") {
  for (const char* bad : {"", "12x", "-1s", "s", "1", "1.5s", " 1s", "1s ", "1S", "1hm",
                          "99999999999999999999s", "9223372036854775807w"}) {
    CAPTURE(bad);
    try {
      parse_duration(bad);
      FAIL("no error for " << bad);
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find(std::string("\"") + bad + "\"") != std::string::npos);
    }
  }
}
