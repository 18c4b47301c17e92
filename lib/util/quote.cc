#include "util/quote.h"

namespace lilcache {

void AppendEscaped(std::string& out, std::string_view text, EscapeMode mode) {
  static constexpr char kHex[] = "0123456789abcdef";
  const bool all = mode == EscapeMode::kAllBytes;
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '\n':
        out += "\\n";
        continue;
      case '\t':
        out += "\\t";
        continue;
      case '\r':
        out += "\\r";
        continue;
      case '"':
      case '\\':
        if (all) out += '\\';
        out += ch;
        continue;
      default:
        break;
    }
    const bool control = c < 0x20 || c == 0x7f;
    if (control || (all && c > 0x7f)) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += ch;
    }
  }
}

std::string Escape(std::string_view text, EscapeMode mode) {
  std::string out;
  out.reserve(text.size());
  AppendEscaped(out, text, mode);
  return out;
}

std::string Quote(std::string_view text) {
  const std::string_view shown = text.substr(0, kMaxQuotedBytes);
  std::string out = "\"";
  AppendEscaped(out, shown);
  out += '"';
  if (shown.size() < text.size()) out += "... (" + std::to_string(text.size()) + " bytes)";
  return out;
}

}  // namespace lilcache
