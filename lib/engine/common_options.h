// common_options: the Options that every backend (engine/backend.h) reads
// the same way, checked and parsed in one place.
#pragma once

#include <cstdint>

#include "lilcache/lilcache.h"

namespace lilcache {

struct CommonOptions {
  std::uint64_t default_ttl_ms = 0;              // Options::expires; 0 = never
  std::uint64_t get_or_set_timeout_ms = 30'000;  // Options::get_or_set_timeout
};

// Parses Options::expires, get_or_set_timeout and compact_dead_ratio; throws
// Error (invalid_argument) naming the field on a bad value (a zero duration
// included: "" is the default, never "0s").
CommonOptions ParseCommonOptions(const Options& options);

}  // namespace lilcache
