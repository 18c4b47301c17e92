// logging: the per-cache text log, <root>/<name>.log, through spdlog. Every
// process that opens the cache appends to the same file (O_APPEND, one write
// per line, flushed at once), each line carrying the pid. The library never
// writes to stdout or stderr.
#pragma once

#include <spdlog/logger.h>

#include <memory>
#include <string>
#include <string_view>

namespace lilcache {

class Env;

// Parses a level name ("trace" ... "off", any case; "" = $LILCACHE_LOGLEVEL
// or "info"). Throws Error quoting the input on anything else.
spdlog::level::level_enum ParseLogLevel(std::string_view name);

// A logger appending to `path` (created 0600) at `level`. Throws Error if the
// file cannot be opened.
std::shared_ptr<spdlog::logger> MakeCacheLogger(Env* env, const std::string& path,
                                                const std::string& cache_name,
                                                spdlog::level::level_enum level);

}  // namespace lilcache
