// http_preconditions: the conditional requests of /keys/{key} (RFC 9110
// 13.1): ETag values made from a key's version, and If-Match /
// If-None-Match parsed into what the handler compares with the cache
// (docs/rest.md, "Versions and conditional requests"). Pure functions:
// thread-safe.
#pragma once

#include <boost/beast/http/message.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lilcache {

// The ETag of a version: its decimal, quoted ("\"42\"").
std::string ETagOf(std::uint64_t version);

// An If-Match or If-None-Match condition: "*" (any), or a list of entity
// tags, of which those that name a version (a strong "<decimal>") are in
// `versions` (others, weak tags W/"..." included, can match no version:
// If-Match compares strongly, RFC 9110 13.1.1).
struct EntityTags {
  bool any = false;
  std::vector<std::uint64_t> versions;
};

// The condition of every `field` line of the header together (RFC 9110 5.3:
// they form one list); nullopt if there is none. *malformed is set, with
// nullopt returned, if a value is neither "*" nor a list of entity tags
// (e.g. an unquoted 42), or "*" is combined with tags.
std::optional<EntityTags> ParseEntityTags(const boost::beast::http::request_header<>& header,
                                          boost::beast::http::field field, bool* malformed);

}  // namespace lilcache
