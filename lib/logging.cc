#include "logging.h"

#include <fcntl.h>
#include <spdlog/sinks/basic_file_sink.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "file_lock.h"
#include "lilcache/env.h"
#include "lilcache/lilcache.h"
#include "quote.h"

namespace lilcache {

spdlog::level::level_enum ParseLogLevel(std::string_view name) {
  std::string n(name);
  if (n.empty()) {
    const char* env = std::getenv("LILCACHE_LOGLEVEL");
    n = env != nullptr && *env != '\0' ? env : "info";
  }
  std::string lower = n;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "warning") lower = "warn";
  static const char* kNames[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
  for (int i = 0; i < 7; ++i) {
    if (lower == kNames[i]) return static_cast<spdlog::level::level_enum>(i);
  }
  throw Error("invalid log level " + Quote(n) +
              " (expected trace, debug, info, warn, error, critical or off)");
}

std::shared_ptr<spdlog::logger> MakeCacheLogger(Env* env, const std::string& path,
                                                const std::string& cache_name,
                                                spdlog::level::level_enum level) {
  // Create it 0600 ourselves: spdlog's fopen would honour the umask (0644).
  FileHandle::Open(env, path, O_WRONLY | O_CREAT | O_APPEND, 0600);
  std::shared_ptr<spdlog::sinks::basic_file_sink_mt> sink;
  try {
    sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, /*truncate=*/false);
  } catch (const spdlog::spdlog_ex& e) {
    throw Error("cannot open log file " + path + ": " + e.what());
  }
  auto logger = std::make_shared<spdlog::logger>("lilcache." + cache_name, std::move(sink));
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e [%P] %l %n: %v");
  logger->set_level(level);
  logger->flush_on(spdlog::level::trace);  // one write(2) per line: lines of processes never mix
  return logger;
}

}  // namespace lilcache
