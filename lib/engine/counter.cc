#include "engine/counter.h"

#include <charconv>
#include <string>

#include "lilcache/lilcache.h"

namespace lilcache {

std::int64_t ParseCounter(std::string_view key, std::string_view value) {
  std::int64_t n = 0;
  const char* end = value.data() + value.size();
  auto [ptr, ec] = std::from_chars(value.data(), end, n);
  if (value.empty() || ec != std::errc() || ptr != end) {
    std::string shown(value.substr(0, 32));
    for (char& c : shown) {
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
    }
    throw Error(ErrorCode::invalid_argument,
                "cannot increment key of " + std::to_string(key.size()) + " bytes: its value \"" +
                    shown + (value.size() > 32 ? "...\"" : "\"") + " is not a decimal int64");
  }
  return n;
}

std::int64_t AddToCounter(std::string_view key, std::int64_t base, std::int64_t delta) {
  std::int64_t result = 0;
  if (__builtin_add_overflow(base, delta, &result)) {
    throw Error(ErrorCode::limit, "cannot increment key of " + std::to_string(key.size()) +
                                      " bytes: " + std::to_string(base) + " + " +
                                      std::to_string(delta) + " overflows an int64");
  }
  return result;
}

}  // namespace lilcache
