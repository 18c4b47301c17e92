// libFuzzer target: parse_duration() and validate_name(), each against an
// independent model of its documented grammar (include/lilcache/lilcache.h).
//   duration := (digits unit)+, unit one of w d h m s ms, in that order,
//               each at most once; the total in milliseconds must fit in a
//               signed 64-bit integer
//   name     := 1..kMaxNameBytes of [A-Za-z0-9_.-], not "." or ".."
// Either function must accept exactly what its model accepts (with the same
// value), and reject anything else with a lilcache::Error whose message is
// whole (printable: nothing in the input can cut or garble it) and quotes
// the input (lib/quote.h).
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz_util.h"
#include "lilcache/lilcache.h"
#include "util/quote.h"

using namespace lilcache;

namespace {

__extension__ typedef unsigned __int128 u128;  // wide enough for any sum of two int64

std::optional<std::int64_t> ModelDuration(std::string_view t) {
  if (t.empty()) return std::nullopt;
  u128 total = 0;
  u128 last_unit = ~u128{0};  // units strictly descending
  const u128 kMax = INT64_MAX;
  std::size_t i = 0;
  while (i < t.size()) {
    if (t[i] < '0' || t[i] > '9') return std::nullopt;
    u128 n = 0;
    for (; i < t.size() && t[i] >= '0' && t[i] <= '9'; ++i) {
      n = n * 10 + static_cast<unsigned>(t[i] - '0');
      if (n > kMax) return std::nullopt;
    }
    std::size_t start = i;
    while (i < t.size() && t[i] >= 'a' && t[i] <= 'z') ++i;
    std::string_view u = t.substr(start, i - start);
    u128 ms = u == "ms"  ? 1
              : u == "s" ? 1000
              : u == "m" ? 60'000
              : u == "h" ? 3'600'000
              : u == "d" ? 86'400'000
              : u == "w" ? 604'800'000
                         : 0;
    if (ms == 0 || ms >= last_unit) return std::nullopt;
    last_unit = ms;
    total += n * ms;
    if (total > kMax) return std::nullopt;
  }
  return static_cast<std::int64_t>(total);
}

// The message of an Error about `in`, checked: printable ASCII only, quoting
// `in` after `prefix`, and ending with `suffix` (so nothing cut it short).
void CheckMessage(const Error& e, std::string_view in, const std::string& prefix,
                  std::string_view suffix) {
  std::string_view what = e.what();
  for (char c : what) {
    if (c < 0x20 || c > 0x7e) fuzz::Fail("an error message holds a non-printable byte");
  }
  if (!what.starts_with(prefix + lilcache::Quote(in))) {
    fuzz::Fail("an error message does not quote its input: " + std::string(what));
  }
  if (!what.ends_with(suffix)) fuzz::Fail("an error message was cut: " + std::string(what));
}

bool ModelName(std::string_view n) {
  if (n.empty() || n.size() > kMaxNameBytes || n == "." || n == "..") return false;
  for (char c : n) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::optional<std::int64_t> want = ModelDuration(in);
  try {
    std::int64_t got = parse_duration(in).count();
    if (!want) fuzz::Fail("parse_duration accepted an invalid duration");
    if (got != *want) {
      fuzz::Fail("parse_duration gave " + std::to_string(got) + " ms, expected " +
                 std::to_string(*want));
    }
  } catch (const Error& e) {
    if (want) fuzz::Fail("parse_duration rejected a valid duration: " + std::string(e.what()));
    CheckMessage(e, in, "invalid duration ", "each once)");
  }
  bool valid = ModelName(in);
  try {
    validate_name(in);
    if (!valid) fuzz::Fail("validate_name accepted an invalid name");
  } catch (const Error& e) {
    if (valid) fuzz::Fail("validate_name rejected a valid name: " + std::string(e.what()));
    CheckMessage(e, in, "invalid cache name ", "");
  }
  return 0;
}
