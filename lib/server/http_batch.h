// http_batch: the JSON of POST /batch/get and POST /batch/set (docs/rest.md,
// "Batches"), binary-safe: a key or value that is valid UTF-8 travels as a
// JSON string ("key", "value"), any other as its base64 ("key_b64",
// "value_b64", RFC 4648 with padding). Parsing is bounded: at most
// kMaxBatchItems items and containers nested two deep (an item in the list),
// refused while parsing, before the rest of the body becomes JSON values.
// Pure functions of their arguments: thread-safe.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lilcache {

// Why a batch body is refused: 400 (malformed), 413 (too many items, a key
// over kMaxKeyBytes).
struct BatchRefusal {
  unsigned status = 400;
  std::string why;
};

// One item of /batch/set. ttl: the item's own "ttl", if it has one.
struct BatchItem {
  std::string key;
  std::string value;
  std::optional<std::chrono::milliseconds> ttl;
};

// The keys of a /batch/get body: a JSON array whose elements are each a key
// as a string or {"key_b64": "..."}. Empty keys are left to the cache (400).
std::optional<BatchRefusal> ParseBatchKeys(std::string_view body, std::vector<std::string>* keys);

// The items of a /batch/set body: a JSON array of {"key" | "key_b64",
// "value" | "value_b64"[, "ttl": "120s"]} (no other member), or a JSON object
// {"key": "value", ...} of string values. Every key and ttl is checked here
// (empty key or ttl 0: 400, key over kMaxKeyBytes: 413), so that the cache
// refuses none of them once some items are written.
std::optional<BatchRefusal> ParseBatchItems(std::string_view body, std::vector<BatchItem>* items);

// One element of a /batch/get answer: {"key": K, "value": V}, V null if the
// key is absent; "key_b64" / "value_b64" for bytes that are not UTF-8.
nlohmann::json BatchResult(std::string_view key, const std::optional<std::string>& value);

// Whether `bytes` is well-formed UTF-8 (RFC 3629: no overlong forms, no
// surrogates, nothing over U+10FFFF).
bool IsUtf8(std::string_view bytes);

// RFC 4648 base64 with padding; Decode accepts exactly what Encode produces
// (nullopt for anything else: other characters, missing padding, spaces).
std::string Base64Encode(std::string_view bytes);
std::optional<std::string> Base64Decode(std::string_view text);

}  // namespace lilcache
