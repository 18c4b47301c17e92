#include "util/duration.h"

#include <array>
#include <cstdint>
#include <limits>
#include <string>

#include "lilcache/lilcache.h"
#include "util/ascii.h"
#include "util/quote.h"

namespace lilcache {
namespace {

struct Unit {
  std::string_view name;
  std::uint64_t millis;
};

// In the order they must appear: descending.
constexpr std::array<Unit, 6> kUnits{{{"w", 604'800'000},
                                      {"d", 86'400'000},
                                      {"h", 3'600'000},
                                      {"m", 60'000},
                                      {"s", 1000},
                                      {"ms", 1}}};

constexpr std::string_view kExpected =
    "expected e.g. \"500ms\", \"120s\", \"1h30m\", \"1d\": digits and a unit w d h m s ms, "
    "units in that order, each once";

// Throws the Error for `text`, wrong at byte `at` (0-based) because of `why`.
[[noreturn]] void Bad(std::string_view text, std::size_t at, std::string_view why) {
  std::string message = "invalid duration " + Quote(text) + ": " + std::string(why);
  if (!text.empty()) message += " at character " + std::to_string(at + 1);
  message += " (" + std::string(kExpected) + ")";
  throw Error(ErrorCode::invalid_argument, message);
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsLower(char c) { return c >= 'a' && c <= 'z'; }
bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }
bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// The index in kUnits of `name`, or kUnits.size().
std::size_t UnitIndex(std::string_view name) {
  for (std::size_t i = 0; i < kUnits.size(); ++i) {
    if (kUnits[i].name == name) return i;
  }
  return kUnits.size();
}

}  // namespace

std::chrono::milliseconds parse_duration(std::string_view text) {
  if (text.empty()) Bad(text, 0, "empty");
  constexpr std::uint64_t kMax = std::numeric_limits<std::int64_t>::max();
  std::uint64_t total = 0;
  std::size_t i = 0;
  std::size_t next_unit = 0;  // units before kUnits[next_unit] were used or skipped
  while (i < text.size()) {
    const char c = text[i];
    if (IsSpace(c)) Bad(text, i, "space (no spaces are allowed)");
    if (c == '-' || c == '+') Bad(text, i, "sign (durations are not negative; no sign)");
    if (!IsDigit(c)) Bad(text, i, "expected a digit, got " + Quote(text.substr(i, 1)));
    std::uint64_t n = 0;
    for (; i < text.size() && IsDigit(text[i]); ++i) {
      const auto digit = static_cast<std::uint64_t>(text[i] - '0');
      if (n > (kMax - digit) / 10) Bad(text, i, "too large (at most 9223372036854775807ms)");
      n = n * 10 + digit;
    }
    if (i == text.size()) Bad(text, i - 1, "missing unit after the number");
    if (IsSpace(text[i])) Bad(text, i, "space (no spaces are allowed)");
    if (text[i] == '.' || text[i] == ',') {
      Bad(text, i, "fractions are not supported (use a smaller unit: \"1500ms\", not \"1.5s\")");
    }
    const std::size_t start = i;
    while (i < text.size() && (IsLower(text[i]) || IsUpper(text[i]))) ++i;
    if (start == i) Bad(text, start, "missing unit after the number");
    const std::string_view name = text.substr(start, i - start);
    std::size_t unit = UnitIndex(name);
    if (unit == kUnits.size()) {
      if (UnitIndex(AsciiLower(name)) != kUnits.size()) {
        Bad(text, start, "unit " + Quote(name) + " is not lower case (units are w d h m s ms)");
      }
      Bad(text, start, "unknown unit " + Quote(name) + " (units are w d h m s ms)");
    }
    if (unit < next_unit) {
      const bool repeated = unit + 1 == next_unit;
      Bad(text, start,
          "unit " + Quote(name) +
              (repeated ? " repeated (each unit at most once)"
                        : " after a smaller unit (units in descending order: w d h m s ms)"));
    }
    next_unit = unit + 1;
    if (n > (kMax - total) / kUnits[unit].millis) {
      Bad(text, start, "too large (at most 9223372036854775807ms)");
    }
    total += n * kUnits[unit].millis;
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(total));
}

std::chrono::milliseconds ParseDurationOf(std::string_view field, std::string_view text) {
  try {
    return parse_duration(text);
  } catch (const Error& e) {
    throw Error(ErrorCode::invalid_argument, std::string(field) + ": " + e.what());
  }
}

}  // namespace lilcache
