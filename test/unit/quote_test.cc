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

// ---- Escape: the one escaper behind Quote, the HTTP log lines, lilcache-dump
// and the tools' error lines --------------------------------------------------

using lilcache::AppendEscaped;
using lilcache::Escape;
using lilcache::EscapeMode;

TEST_CASE("Escape with kAllBytes makes any bytes printable ASCII that reads back unambiguously") {
  // What Quote shows between its quotes, and lilcache-dump shows of keys,
  // values and paths (test/tools/golden/dump_healthy.txt).
  CHECK(Escape("plain text ~!") == "plain text ~!");
  CHECK(Escape(std::string("bin\0\xff\n\"\\", 8)) == "bin\\x00\\xff\\n\\\"\\\\");
  CHECK(Escape("\t\r\x1b[31m\x7f") == "\\t\\r\\x1b[31m\\x7f");
  CHECK(Escape("\xc3\xa9") == "\\xc3\\xa9");  // UTF-8 too: the output is ASCII
}

TEST_CASE("Escape keeps a log line one line: a request path with CR LF cannot forge a line") {
  // The HTTP log lines (lib/server/http_connection.cc) show request targets so.
  const std::string line = Escape("GET /keys/a\r\n2026-01-01 00:00:00 [1] info forged");
  CHECK(line.find('\n') == std::string::npos);
  CHECK(line.find('\r') == std::string::npos);
  CHECK(line == "GET /keys/a\\r\\n2026-01-01 00:00:00 [1] info forged");
}

TEST_CASE(
    "Escape with kControlBytes escapes only control bytes: quotes, backslashes and UTF-8 stay") {
  // The tools' error lines (tools/cli.h, OneLine): a message that already
  // quotes its input with Quote() is not escaped twice, and a path in UTF-8
  // reads as it is.
  const std::string message = "invalid cache name " + Quote("a\nb") + " under /tmp/caf\xc3\xa9";
  CHECK(Escape(message, EscapeMode::kControlBytes) == message);
  CHECK(Escape("cannot open /tmp/a\nb: x\ty\r\x1b\x7f", EscapeMode::kControlBytes) ==
        "cannot open /tmp/a\\nb: x\\ty\\r\\x1b\\x7f");
  CHECK(Escape(std::string("nul\0", 4), EscapeMode::kControlBytes) == "nul\\x00");
}

TEST_CASE("AppendEscaped appends to what is there") {
  std::string out = "GET ";
  AppendEscaped(out, "/a\\b");
  CHECK(out == "GET /a\\\\b");
  AppendEscaped(out, "\"", EscapeMode::kControlBytes);
  CHECK(out == "GET /a\\\\b\"");
}

TEST_CASE("Quote is Escape between double quotes, cut at kMaxQuotedBytes") {
  const std::string bytes("k\0\xff\"", 4);
  CHECK(Quote(bytes) == "\"" + Escape(bytes) + "\"");
}
