#include "engine/common_options.h"

#include <string>

#include "util/duration.h"
#include "util/quote.h"

namespace lilcache {

CommonOptions ParseCommonOptions(const Options& options) {
  CommonOptions c;
  if (!options.expires.empty()) {
    c.default_ttl_ms =
        static_cast<std::uint64_t>(ParseDurationOf("expires", options.expires).count());
    if (c.default_ttl_ms == 0) {
      throw Error(ErrorCode::invalid_argument,
                  "expires: invalid duration " + Quote(options.expires) + ": must be > 0");
    }
  }
  if (!options.get_or_set_timeout.empty()) {  // "" = the default
    const std::chrono::milliseconds t =
        ParseDurationOf("get_or_set_timeout", options.get_or_set_timeout);
    if (t.count() == 0) {
      throw Error(ErrorCode::invalid_argument, "get_or_set_timeout: invalid duration " +
                                                   Quote(options.get_or_set_timeout) +
                                                   ": must be > 0");
    }
    c.get_or_set_timeout_ms = static_cast<std::uint64_t>(t.count());
  }
  if (!(options.compact_dead_ratio >= 0 && options.compact_dead_ratio < 1)) {
    throw Error(ErrorCode::invalid_argument, "invalid compact_dead_ratio " +
                                                 std::to_string(options.compact_dead_ratio) +
                                                 ": must be in [0, 1)");
  }
  return c;
}

}  // namespace lilcache
