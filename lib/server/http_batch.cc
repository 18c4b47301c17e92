#include "server/http_batch.h"

#include <cstdint>
#include <exception>
#include <utility>

#include "lilcache/lilcache.h"
#include "server/http_limits.h"

namespace lilcache {
namespace {

using nlohmann::json;

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Thrown by the parser callback to stop parsing at once.
struct Stop : std::exception {
  BatchRefusal refusal;
  explicit Stop(BatchRefusal r) : refusal(std::move(r)) {}
};

// Parses body as JSON, refusing (Stop) more than kMaxBatchItems items (the
// elements of a top-level array, or the members of a top-level object) and
// any container inside an item, as they are met.
json ParseBounded(std::string_view body) {
  bool top_array = false;
  std::size_t items = 0;
  auto bound = [&](int depth, json::parse_event_t event, json&) {
    using E = json::parse_event_t;
    const bool starts = event == E::object_start || event == E::array_start;
    if (depth == 0 && starts) top_array = event == E::array_start;
    if (depth >= 2 && starts) {
      throw Stop({400, "malformed batch: a list or object nested in an item"});
    }
    const bool item = depth == 1 && (top_array ? (starts || event == E::value) : event == E::key);
    if (item && ++items > kMaxBatchItems) {
      throw Stop({413, "batch of more than " + std::to_string(kMaxBatchItems) + " items"});
    }
    return true;
  };
  return json::parse(body.begin(), body.end(), bound);
}

// The bytes of item[text] or, base64, of item[b64]; exactly one must be there.
std::optional<BatchRefusal> Bytes(const json& item, const char* text, const char* b64,
                                  std::string* out) {
  const auto t = item.find(text);
  const auto b = item.find(b64);
  if ((t == item.end()) == (b == item.end())) {
    return BatchRefusal{400, std::string("malformed batch item: it needs one of \"") + text +
                                 "\" and \"" + b64 + "\""};
  }
  if (t != item.end()) {
    if (!t->is_string()) return BatchRefusal{400, std::string("\"") + text + "\" is not a string"};
    *out = t->get<std::string>();
    return std::nullopt;
  }
  std::optional<std::string> decoded;
  if (b->is_string()) decoded = Base64Decode(b->get_ref<const std::string&>());
  if (!decoded) return BatchRefusal{400, std::string("\"") + b64 + "\" is not base64"};
  *out = std::move(*decoded);
  return std::nullopt;
}

std::optional<BatchRefusal> CheckKey(const std::string& key) {
  if (key.empty()) return BatchRefusal{400, "invalid key: empty"};
  if (key.size() > kMaxKeyBytes) {
    return BatchRefusal{413, "key too long: " + std::to_string(key.size()) +
                                 " bytes (limit kMaxKeyBytes = " + std::to_string(kMaxKeyBytes) +
                                 ")"};
  }
  return std::nullopt;
}

int Sextet(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// The body as JSON, bounded (ParseBounded); a refusal if it is not.
std::optional<BatchRefusal> ParseBody(std::string_view body, json* out) {
  try {
    *out = ParseBounded(body);
  } catch (const Stop& s) {
    return s.refusal;
  } catch (const json::exception& e) {
    return BatchRefusal{400, std::string("malformed JSON: ") + e.what()};
  }
  return std::nullopt;
}

}  // namespace

std::optional<BatchRefusal> ParseBatchKeys(std::string_view body, std::vector<std::string>* keys) {
  keys->clear();
  json list;
  if (auto refused = ParseBody(body, &list)) return refused;
  if (!list.is_array()) return BatchRefusal{400, "malformed batch: expected a JSON array of keys"};
  keys->reserve(list.size());
  for (const json& k : list) {
    if (k.is_string()) {
      keys->push_back(k.get<std::string>());
    } else if (k.is_object() && k.size() == 1 && k.contains("key_b64")) {
      std::string key;
      if (auto bad = Bytes(k, "key", "key_b64", &key)) return bad;
      keys->push_back(std::move(key));
    } else {
      return BatchRefusal{400, "malformed batch: a key is a string or {\"key_b64\": \"...\"}"};
    }
    if (auto bad = CheckKey(keys->back())) return bad;
  }
  return std::nullopt;
}

std::optional<BatchRefusal> ParseBatchItems(std::string_view body, std::vector<BatchItem>* items) {
  items->clear();
  json list;
  if (auto refused = ParseBody(body, &list)) return refused;
  if (list.is_object()) {  // {"key": "value", ...}
    for (auto& [key, value] : list.items()) {
      if (!value.is_string()) {
        return BatchRefusal{400,
                            "malformed batch: in {\"key\": \"value\", ...} values are strings"};
      }
      items->push_back({key, value.get<std::string>(), std::nullopt});
      if (auto bad = CheckKey(items->back().key)) return bad;
    }
    return std::nullopt;
  }
  if (!list.is_array()) {
    return BatchRefusal{400, "malformed batch: expected a JSON array of items or an object"};
  }
  items->reserve(list.size());
  for (const json& item : list) {
    if (!item.is_object()) {
      return BatchRefusal{400, "malformed batch: an item is {\"key\": ..., \"value\": ...}"};
    }
    for (const auto& member : item.items()) {
      const std::string& name = member.key();
      if (name != "key" && name != "key_b64" && name != "value" && name != "value_b64" &&
          name != "ttl") {
        return BatchRefusal{400, "malformed batch item: unknown member \"" + name + "\""};
      }
    }
    BatchItem out;
    if (auto bad = Bytes(item, "key", "key_b64", &out.key)) return bad;
    if (auto bad = CheckKey(out.key)) return bad;
    if (auto bad = Bytes(item, "value", "value_b64", &out.value)) return bad;
    if (const auto ttl = item.find("ttl"); ttl != item.end()) {
      if (!ttl->is_string())
        return BatchRefusal{400, "bad ttl: a duration string such as \"120s\""};
      try {
        out.ttl = parse_duration(ttl->get_ref<const std::string&>());
      } catch (const Error& e) {
        return BatchRefusal{400, std::string("bad ttl: ") + e.what()};
      }
      if (out.ttl->count() <= 0) return BatchRefusal{400, "bad ttl: it must be over 0"};
    }
    items->push_back(std::move(out));
  }
  return std::nullopt;
}

json BatchResult(std::string_view key, const std::optional<std::string>& value) {
  json r = json::object();
  if (IsUtf8(key)) {
    r["key"] = std::string(key);
  } else {
    r["key_b64"] = Base64Encode(key);
  }
  if (!value) {
    r["value"] = nullptr;
  } else if (IsUtf8(*value)) {
    r["value"] = *value;
  } else {
    r["value_b64"] = Base64Encode(*value);
  }
  return r;
}

bool IsUtf8(std::string_view bytes) {
  std::size_t i = 0;
  const std::size_t n = bytes.size();
  auto cont = [&](std::size_t at) {
    return at < n && (static_cast<unsigned char>(bytes[at]) & 0xC0) == 0x80;
  };
  while (i < n) {
    const unsigned char c = static_cast<unsigned char>(bytes[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;  // a continuation byte, C0, C1 or F5..FF
    }
    for (std::size_t k = 1; k < len; ++k) {
      if (!cont(i + k)) return false;
      cp = (cp << 6) | (static_cast<unsigned char>(bytes[i + k]) & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

std::string Base64Encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t v = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16 |
                            static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1]))
                                << 8 |
                            static_cast<unsigned char>(bytes[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kAlphabet[(v >> s) & 63];
  }
  const std::size_t rest = bytes.size() - i;
  if (rest > 0) {
    std::uint32_t v = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16;
    if (rest == 2) v |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    const int pad = last ? (text[i + 3] == '=') + (text[i + 2] == '=') : 0;
    if (pad == 1 && text[i + 2] == '=') return std::nullopt;
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const int s = k >= 4 - pad ? 0 : Sextet(text[i + k]);
      if (s < 0) return std::nullopt;
      v = v << 6 | static_cast<std::uint32_t>(s);
    }
    // The bits under the padding must be 0: one encoding per byte string.
    if ((pad == 1 && (v & 0xFF) != 0) || (pad == 2 && (v & 0xFFFF) != 0)) return std::nullopt;
    out += static_cast<char>(v >> 16);
    if (pad < 2) out += static_cast<char>((v >> 8) & 0xFF);
    if (pad < 1) out += static_cast<char>(v & 0xFF);
  }
  return out;
}

}  // namespace lilcache
