#include "server/http_preconditions.h"

#include <charconv>

namespace lilcache {
namespace {

bool IsOws(char c) { return c == ' ' || c == '\t'; }

// etagc = %x21 / %x23-7E / obs-text (RFC 9110 8.8.3).
bool IsETagChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u == 0x21 || (u >= 0x23 && u != 0x7F);
}

}  // namespace

std::string ETagOf(std::uint64_t version) {
  // Appended, not "\"" + to_string(v): gcc 12 -O3 warns (-Wrestrict, a false
  // positive) on that operator+, and release builds use -Werror.
  std::string tag(1, '"');
  tag += std::to_string(version);
  tag += '"';
  return tag;
}

std::optional<EntityTags> ParseEntityTags(const boost::beast::http::request_header<>& header,
                                          boost::beast::http::field field, bool* malformed) {
  *malformed = false;
  auto [first, last] = header.equal_range(field);
  if (first == last) return std::nullopt;
  EntityTags tags;
  bool listed = false;  // a tag was listed (not "*")
  for (auto it = first; it != last; ++it) {
    std::string_view s = it->value();
    for (;;) {
      while (!s.empty() && (IsOws(s.front()) || s.front() == ',')) s.remove_prefix(1);
      if (s.empty()) break;
      if (s.front() == '*') {
        tags.any = true;
        s.remove_prefix(1);
      } else {
        bool weak = false;
        if (s.starts_with("W/")) {
          weak = true;
          s.remove_prefix(2);
        }
        if (s.empty() || s.front() != '"') {
          *malformed = true;
          return std::nullopt;
        }
        const std::size_t close = s.find('"', 1);
        if (close == std::string_view::npos) {
          *malformed = true;
          return std::nullopt;
        }
        const std::string_view opaque = s.substr(1, close - 1);
        for (char c : opaque) {
          if (!IsETagChar(c)) {
            *malformed = true;
            return std::nullopt;
          }
        }
        std::uint64_t v = 0;
        const char* end = opaque.data() + opaque.size();
        auto [ptr, ec] = std::from_chars(opaque.data(), end, v);
        if (!weak && !opaque.empty() && ec == std::errc() && ptr == end) {
          tags.versions.push_back(v);
        }
        listed = true;
        s.remove_prefix(close + 1);
      }
      // Then the end, or optional white space and a comma.
      while (!s.empty() && IsOws(s.front())) s.remove_prefix(1);
      if (!s.empty() && s.front() != ',') {
        *malformed = true;
        return std::nullopt;
      }
    }
  }
  if (tags.any && listed) {
    *malformed = true;
    return std::nullopt;
  }
  if (!tags.any && !listed) {  // only commas and spaces
    *malformed = true;
    return std::nullopt;
  }
  return tags;
}

}  // namespace lilcache
