// lib/util/size.h: the sizes the tools take (--max-bytes, --memory-budget).
#include "util/size.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "lilcache/lilcache.h"

using lilcache::Error;
using lilcache::FormatSizeLimit;
using lilcache::ParseSize;
using lilcache::ParseSizeLimit;

namespace {

std::string SizeError(std::string_view text, bool limit = false) {
  try {
    limit ? ParseSizeLimit(text) : ParseSize(text);
  } catch (const Error& e) {
    CHECK(e.code() == lilcache::ErrorCode::invalid_argument);
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("sizes take binary units in any case, with or without B or iB") {
  CHECK(ParseSize("4096") == 4096);
  CHECK(ParseSize("0") == 0);
  CHECK(ParseSize("10B") == 10);
  for (const char* k : {"1k", "1K", "1KB", "1kb", "1KiB", "1kib"}) {
    CAPTURE(k);
    CHECK(ParseSize(k) == 1024);
  }
  CHECK(ParseSize("64MiB") == 64ull << 20);
  CHECK(ParseSize("64M") == 64ull << 20);
  CHECK(ParseSize("1G") == 1ull << 30);
  CHECK(ParseSize("1GB") == 1ull << 30);
  CHECK(ParseSize("2TiB") == 2ull << 40);
  CHECK(ParseSize("18446744073709551614") == UINT64_MAX - 1);
}

TEST_CASE("a bad size says what is wrong at which character") {
  CHECK(SizeError("").starts_with("invalid size \"\": empty ("));
  CHECK(SizeError("1.5G").starts_with(
      "invalid size \"1.5G\": fractions are not supported (use a smaller unit: \"1536MiB\", "
      "not \"1.5GiB\") at character 2 ("));
  CHECK(
      SizeError("-1").starts_with("invalid size \"-1\": sign (sizes have no sign) at character 1"));
  CHECK(SizeError(" 1G").starts_with("invalid size \" 1G\": space"));
  CHECK(
      SizeError("1 G").starts_with("invalid size \"1 G\": space (no spaces are allowed) at "
                                   "character 2"));
  CHECK(SizeError("1x").starts_with("invalid size \"1x\": unknown unit \"x\" at character 2"));
  CHECK(SizeError("G").starts_with("invalid size \"G\": expected a digit, got \"G\""));
  CHECK(SizeError("99999999999999999999999")
            .starts_with("invalid size \"99999999999999999999999\": too large at character 20"));
  CHECK(SizeError("18446744073709551615").find("too large") != std::string::npos);
  CHECK(SizeError("16777216T").find("too large") != std::string::npos);
}

TEST_CASE("a size limit is at least 1 byte, and none lifts it") {
  CHECK(ParseSizeLimit("none") == UINT64_MAX);
  CHECK(ParseSizeLimit("None") == UINT64_MAX);
  CHECK(ParseSizeLimit("1k") == 1024);
  CHECK(SizeError("0", true) ==
        "invalid size \"0\": a limit must be at least 1 byte (\"none\" lifts the limit)");
  CHECK(SizeError("0", false) == "no error");
}

TEST_CASE("no limit shows as none") {
  CHECK(FormatSizeLimit(0) == "none");
  CHECK(FormatSizeLimit(UINT64_MAX) == "none");
  CHECK(FormatSizeLimit(4096) == "4096");
}
