#include "util/size.h"

#include <array>
#include <limits>

#include "lilcache/lilcache.h"
#include "util/ascii.h"
#include "util/quote.h"

namespace lilcache {
namespace {

constexpr std::string_view kExpected =
    "expected e.g. \"4096\", \"64KiB\", \"512MiB\", \"1G\": digits and a unit B K M G T "
    "(KB, KiB...: powers of 1024)";

[[noreturn]] void Bad(std::string_view text, std::size_t at, std::string_view why) {
  std::string message = "invalid size " + Quote(text) + ": " + std::string(why);
  if (!text.empty()) message += " at character " + std::to_string(at + 1);
  message += " (" + std::string(kExpected) + ")";
  throw Error(ErrorCode::invalid_argument, message);
}

// The shift of `unit` (lower case), or -1.
int UnitShift(std::string_view unit) {
  if (unit.empty() || unit == "b") return 0;
  static constexpr std::array<char, 4> kLetters{'k', 'm', 'g', 't'};
  for (std::size_t i = 0; i < kLetters.size(); ++i) {
    const std::string letter(1, kLetters[i]);
    if (unit == letter || unit == letter + "b" || unit == letter + "ib") {
      return static_cast<int>(10 * (i + 1));
    }
  }
  return -1;
}

}  // namespace

std::uint64_t ParseSize(std::string_view text) {
  if (text.empty()) Bad(text, 0, "empty");
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max() - 1;
  std::size_t i = 0;
  const char c = text[0];
  if (c == ' ' || c == '\t') Bad(text, 0, "space (no spaces are allowed)");
  if (c == '-' || c == '+') Bad(text, 0, "sign (sizes have no sign)");
  std::uint64_t n = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    const auto digit = static_cast<std::uint64_t>(text[i] - '0');
    if (n > (kMax - digit) / 10) Bad(text, i, "too large");
    n = n * 10 + digit;
  }
  if (i == 0) Bad(text, 0, "expected a digit, got " + Quote(text.substr(0, 1)));
  if (i < text.size() && (text[i] == '.' || text[i] == ',')) {
    Bad(text, i, "fractions are not supported (use a smaller unit: \"1536MiB\", not \"1.5GiB\")");
  }
  if (i < text.size() && (text[i] == ' ' || text[i] == '\t')) {
    Bad(text, i, "space (no spaces are allowed)");
  }
  const std::string_view unit = text.substr(i);
  const int shift = UnitShift(AsciiLower(unit));
  if (shift < 0) Bad(text, i, "unknown unit " + Quote(unit));
  if (shift != 0 && n > (kMax >> shift)) Bad(text, i, "too large");
  return n << shift;
}

std::uint64_t ParseSizeLimit(std::string_view text) {
  if (AsciiLower(text) == "none") return std::numeric_limits<std::uint64_t>::max();
  const std::uint64_t n = ParseSize(text);
  if (n == 0) {
    throw Error(ErrorCode::invalid_argument,
                "invalid size " + Quote(text) +
                    ": a limit must be at least 1 byte (\"none\" lifts the limit)");
  }
  return n;
}

std::string FormatSizeLimit(std::uint64_t bytes) {
  if (bytes == 0 || bytes == std::numeric_limits<std::uint64_t>::max()) return "none";
  return std::to_string(bytes);
}

}  // namespace lilcache
