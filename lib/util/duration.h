// duration: parsing of human durations ("500ms", "120s", "1h30m").
#pragma once

#include <chrono>
#include <string_view>

namespace lilcache {
// Declared in lilcache.h as the public parse_duration(); this header exists so
// that lib/ code can include the one concept it needs.
std::chrono::milliseconds parse_duration(std::string_view text);
}  // namespace lilcache
