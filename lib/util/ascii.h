// ascii: ASCII case folding, the one case-insensitive compare of the project
// (HTTP field values and tokens, log level names). Only 'A'..'Z' fold: no
// locale, so that "TITLE" and "title" compare equal everywhere and no other
// byte ever does.
#pragma once

#include <string>
#include <string_view>

namespace lilcache {

constexpr char AsciiLower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

// `s` with 'A'..'Z' lowered.
inline std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = AsciiLower(c);
  return out;
}

// Whether a and b are equal but for the case of ASCII letters.
constexpr bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (AsciiLower(a[i]) != AsciiLower(b[i])) return false;
  }
  return true;
}

// Whether s starts with prefix but for the case of ASCII letters.
constexpr bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && EqualsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

}  // namespace lilcache
