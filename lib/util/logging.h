// logging: the per-cache text log, <root>/<name>.log, through spdlog. Every
// process that opens the cache appends to the same file (O_APPEND, one write
// per line, flushed at once), each line carrying the pid, and rotates it to
// <name>.log.1 at kLogMaxBytes. The library never writes to stdout or stderr.
#pragma once

#include <spdlog/logger.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace lilcache {

class Env;

// Parses a level name ("trace" ... "off", any case; "" = $LILCACHE_LOGLEVEL
// or "info"). Throws Error quoting the input on anything else (naming
// $LILCACHE_LOGLEVEL if the name came from it).
spdlog::level::level_enum ParseLogLevel(std::string_view name);

// Size at which the text log is rotated to <path>.1 (the one old file kept):
// a cache's log takes at most about twice this (docs/operations.md, "Logs").
inline constexpr std::uint64_t kLogMaxBytes = 8 << 20;

// A logger appending to `path` at `level`: opened by us with O_NOFOLLOW |
// O_CLOEXEC | O_APPEND (created 0600) and checked like every cache file
// (lib/trust.h), rotated to <path>.1 by whichever process finds it at
// `max_bytes` (safe across processes: see logging.cc). Throws Error if the
// file cannot be opened or is not to be trusted.
std::shared_ptr<spdlog::logger> MakeCacheLogger(Env* env, const std::string& path,
                                                const std::string& cache_name,
                                                spdlog::level::level_enum level,
                                                std::uint64_t max_bytes = kLogMaxBytes);

}  // namespace lilcache
