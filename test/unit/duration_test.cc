#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <utility>

#include "lilcache/lilcache.h"
#include "support/test_util.h"

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
          "invalid duration \"5\\x00s\\n\": missing unit after the number at character 2 "
          "(expected e.g. \"500ms\", \"120s\", \"1h30m\", \"1d\": digits and a unit w d h m s "
          "ms, units in that order, each once)");
  }
}

TEST_CASE("bad durations give an Error quoting the input") {
  for (const char* bad :
       {"", "12x", "-1s", "s", "1", "1.5s", " 1s", "1s ", "1S", "1hm", "99999999999999999999s",
        "9223372036854775807w", "30m1h", "1s1s", "1ms1s", "1h1h"}) {
    CAPTURE(bad);
    try {
      parse_duration(bad);
      FAIL("no error for " << bad);
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find(std::string("\"") + bad + "\"") != std::string::npos);
    }
  }
}

// The message of parse_duration(text)'s Error.
std::string DurationError(std::string_view text) {
  try {
    parse_duration(text);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST_CASE("a bad duration's message says what is wrong at which character") {
  CHECK(DurationError("1.5s").starts_with(
      "invalid duration \"1.5s\": fractions are not supported (use a smaller unit: \"1500ms\", "
      "not \"1.5s\") at character 2 ("));
  CHECK(DurationError("5S").starts_with(
      "invalid duration \"5S\": unit \"S\" is not lower case (units are w d h m s ms) at "
      "character 2 ("));
  CHECK(DurationError("  5s").starts_with(
      "invalid duration \"  5s\": space (no spaces are allowed) at character 1 ("));
  CHECK(DurationError("5s ").starts_with(
      "invalid duration \"5s \": space (no spaces are allowed) at character 3 ("));
  CHECK(
      DurationError("-1s").starts_with("invalid duration \"-1s\": sign (durations are not "
                                       "negative; no sign) at character 1 ("));
  CHECK(DurationError("1x").starts_with("invalid duration \"1x\": unknown unit \"x\""));
  CHECK(DurationError("12").starts_with(
      "invalid duration \"12\": missing unit after the number at character 2 ("));
  CHECK(DurationError("").starts_with("invalid duration \"\": empty ("));
  CHECK(DurationError("1 day").starts_with(
      "invalid duration \"1 day\": space (no spaces are allowed) at character 2 ("));
}

TEST_CASE("units come in descending order, each at most once") {
  CHECK(parse_duration("1w1d1h1m1s1ms") ==
        milliseconds(604'800'000 + 86'400'000 + 3'600'000 + 60'000 + 1'000 + 1));
  CHECK(parse_duration("1m1ms") == milliseconds(60'001));
  CHECK(DurationError("30m1h").starts_with(
      "invalid duration \"30m1h\": unit \"h\" after a smaller unit (units in descending "
      "order: w d h m s ms) at character 5 ("));
  CHECK(DurationError("1s1s").starts_with(
      "invalid duration \"1s1s\": unit \"s\" repeated (each unit at most once) at "
      "character 4 ("));
  CHECK(DurationError("1ms1s").find("after a smaller unit") != std::string::npos);
}

TEST_CASE("an Options duration's error names the field") {
  lilcache::test::TempDir root;
  // Not structured bindings: clang 14 cannot capture them in CAPTURE's lambda.
  for (auto entry : {std::pair<std::string, lilcache::Options>{"expires", {.expires = "1 day"}},
                     {"snapshot", {.snapshot = "1.5s"}},
                     {"get_or_set_timeout", {.get_or_set_timeout = "5S"}}}) {
    const std::string& field = entry.first;
    lilcache::Options& options = entry.second;
    CAPTURE(field);
    options.root = root.path();
    try {
      lilcache::Cache::open("c", options);
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(e.code() == lilcache::ErrorCode::invalid_argument);
      CHECK(std::string(e.what()).starts_with(field + ": invalid duration \""));
    }
  }
}
