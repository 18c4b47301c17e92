// quote: bytes shown as text, the one escaper of the project. Error::what()
// is a C string, so raw input with a NUL would cut a message short; control
// bytes would garble a terminal or split a log line; and keys, values and
// file names are arbitrary bytes. Every place that shows such bytes (error
// messages, the HTTP log lines, lilcache-dump, the tools' error lines) goes
// through AppendEscaped(), so that they all read the same way.
//
// The escapes: \n, \t, \r, \" and \\ by name, any other escaped byte as \xhh
// (two lowercase hex digits). Which bytes are escaped is the EscapeMode's.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace lilcache {

enum class EscapeMode {
  // Every byte outside printable ASCII (0x20..0x7e), and `"` and `\`: the
  // output is printable ASCII and reads back unambiguously. For bytes as
  // they are (keys, values, paths, request targets).
  kAllBytes,
  // Only control bytes (0x00..0x1f and 0x7f); `"`, `\` and bytes over 0x7f
  // (UTF-8 text) are kept. For a message that may already quote its input
  // (with Quote()), put on one line without escaping it twice.
  kControlBytes,
};

// Appends `text`, escaped as `mode` says, to `out`.
void AppendEscaped(std::string& out, std::string_view text,
                   EscapeMode mode = EscapeMode::kAllBytes);

// `text` escaped as `mode` says.
// Escape(std::string("a\0\"", 3)) == "a\\x00\\\"", Escape("é\n", kControlBytes) == "é\\n".
std::string Escape(std::string_view text, EscapeMode mode = EscapeMode::kAllBytes);

// Input longer than this is shown cut by Quote(), followed by its size.
inline constexpr std::size_t kMaxQuotedBytes = 200;

// `text` in double quotes, escaped (kAllBytes): user input shown in an error
// message. Longer input shows its first kMaxQuotedBytes bytes and then
// `... (N bytes)`.
// Quote("1h30m") == "\"1h30m\"", Quote(std::string("a\0b", 3)) == "\"a\\x00b\"".
std::string Quote(std::string_view text);

}  // namespace lilcache
