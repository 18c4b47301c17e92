// quote: user input shown in an error message. Error::what() is a C string,
// so raw input with a NUL would cut the message short, and control bytes
// would garble a terminal or a log line; Quote() makes any input safe to show.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace lilcache {

// Input longer than this is shown cut, followed by its size.
inline constexpr std::size_t kMaxQuotedBytes = 200;

// `text` in double quotes, printable ASCII as is, `"` and `\` escaped with a
// backslash and every other byte as \n, \t, \r or \xHH. Longer input shows
// its first kMaxQuotedBytes bytes and then `... (N bytes)`.
// Quote("1h30m") == "\"1h30m\"", Quote(std::string("a\0b", 3)) == "\"a\\x00b\"".
std::string Quote(std::string_view text);

}  // namespace lilcache
