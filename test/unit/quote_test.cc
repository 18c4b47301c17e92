#include <doctest/doctest.h>

#include <string>

#include "util/quote.h"

using lilcache::kMaxQuotedBytes;
using lilcache::Quote;

TEST_CASE("printable input is shown as is, in double quotes") {
  CHECK(Quote("1h30m") == "\"1h30m\"");
  CHECK(Quote("") == "\"\"");
  CHECK(Quote("a b~!") == "\"a b~!\"");
}

TEST_CASE("quotes, backslashes, control bytes, NULs and non-ASCII bytes are escaped") {
  CHECK(Quote("say \"hi\"") == "\"say \\\"hi\\\"\"");
  CHECK(Quote("a\\b") == "\"a\\\\b\"");
  CHECK(Quote("l1\nl2\tx\r") == "\"l1\\nl2\\tx\\r\"");
  CHECK(Quote(std::string("a\0b", 3)) == "\"a\\x00b\"");
  CHECK(Quote("\x7f\xff\xc3\xa9") == "\"\\x7f\\xff\\xc3\\xa9\"");
}

TEST_CASE("long input is cut, with its size") {
  std::string q = Quote(std::string(kMaxQuotedBytes + 1, 'x'));
  CHECK(q == "\"" + std::string(kMaxQuotedBytes, 'x') + "\"... (" +
                 std::to_string(kMaxQuotedBytes + 1) + " bytes)");
  CHECK(Quote(std::string(kMaxQuotedBytes, 'x')) ==
        "\"" + std::string(kMaxQuotedBytes, 'x') + "\"");
}
