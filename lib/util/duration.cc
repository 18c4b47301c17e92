#include "util/duration.h"

#include <cstdint>
#include <limits>
#include <string>

#include "lilcache/lilcache.h"
#include "util/quote.h"

namespace lilcache {
namespace {

[[noreturn]] void Bad(std::string_view text, std::string_view why) {
  throw Error(
      ErrorCode::invalid_argument,
      "invalid duration " + Quote(text) + ": " + std::string(why) +
          " (expected e.g. \"500ms\", \"120s\", \"5m\", \"2h\", \"1d\", \"1w\", \"1h30m\")");
}

// Milliseconds per unit, or 0 if `unit` is not one.
std::uint64_t UnitMillis(std::string_view unit) {
  if (unit == "ms") return 1;
  if (unit == "s") return 1000;
  if (unit == "m") return 60'000;
  if (unit == "h") return 3'600'000;
  if (unit == "d") return 86'400'000;
  if (unit == "w") return 604'800'000;
  return 0;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlpha(char c) { return c >= 'a' && c <= 'z'; }

}  // namespace

std::chrono::milliseconds parse_duration(std::string_view text) {
  if (text.empty()) Bad(text, "empty");
  constexpr std::uint64_t kMax = std::numeric_limits<std::int64_t>::max();
  std::uint64_t total = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    if (!IsDigit(text[i])) Bad(text, "expected a number");
    std::uint64_t n = 0;
    for (; i < text.size() && IsDigit(text[i]); ++i) {
      const auto digit = static_cast<std::uint64_t>(text[i] - '0');
      if (n > (kMax - digit) / 10) Bad(text, "too large");
      n = n * 10 + digit;
    }
    std::size_t start = i;
    while (i < text.size() && IsAlpha(text[i])) ++i;
    if (start == i) Bad(text, "missing unit");
    std::uint64_t unit = UnitMillis(text.substr(start, i - start));
    if (unit == 0) Bad(text, "unknown unit " + Quote(text.substr(start, i - start)));
    if (n > (kMax - total) / unit) Bad(text, "too large");
    total += n * unit;
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(total));
}

}  // namespace lilcache
