// counter: increment()'s arithmetic, the same on every backend: a counter is
// the decimal text of an int64, and a sum that overflows is refused.
#pragma once

#include <cstdint>
#include <string_view>

namespace lilcache {

// The integer `value` (of key `key`) holds; throws Error (invalid_argument)
// quoting the value (printable, at most 32 bytes) if it is not the decimal
// text of an int64.
std::int64_t ParseCounter(std::string_view key, std::string_view value);

// base + delta; throws Error (limit) if it overflows an int64.
std::int64_t AddToCounter(std::string_view key, std::int64_t base, std::int64_t delta);

}  // namespace lilcache
