// duration: parsing of human durations ("500ms", "120s", "1h30m").
//
// The one parser of the project (Options' durations, the tools' --ttl,
// --expires, --snapshot..., the HTTP ttl parameters, Python strings). A
// duration is one or more <digits><unit> with unit one of w d h m s ms, in
// that (descending) order, each at most once, in lower case, with nothing
// else: no sign, no spaces, no fractions ("1500ms", not "1.5s"). Errors
// quote the input (escaped: it may hold any bytes) and say what is wrong at
// which character (1-based).
#pragma once

#include <chrono>
#include <string_view>

namespace lilcache {
// Declared in lilcache.h as the public parse_duration(); this header exists so
// that lib/ code can include the one concept it needs.
std::chrono::milliseconds parse_duration(std::string_view text);

// parse_duration(text), whose Error (invalid_argument) starts with "FIELD: "
// (e.g. "expires: invalid duration \"1 day\": ...") so that it names the
// option the text came from.
std::chrono::milliseconds ParseDurationOf(std::string_view field, std::string_view text);
}  // namespace lilcache
