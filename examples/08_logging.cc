// Seed requirement 8: logging.
//
//   lilcache.init(loglevel='DEBUG')   # log file will be stored under root
//   lilcache.set('a', 'b')
//
// Each cache logs to <root>/<name>.log, shared by every process that uses it.
// Levels: trace debug info warn error critical off, any case; the default is
// info (or $LILCACHE_LOGLEVEL).
//
// Usage: 08_logging [ROOT]   (default: a temporary directory)
#include <lilcache/lilcache.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "example.h"

int main(int argc, char** argv) try {
  const example::Root root(argc, argv);
  lilcache::Options options;
  options.root = root.str();
  options.loglevel = "DEBUG";
  lilcache::init("default", options);
  lilcache::set("a", "b");

  const std::filesystem::path log = root.path() / "default.log";
  example::check(std::filesystem::exists(log), "default.log exists under the root");

  std::ifstream in(log);
  int lines = 0;
  for (std::string line; std::getline(in, line);) {
    if (lines++ < 3) std::printf("  %s\n", line.c_str());
  }
  example::check(lines > 0, "default.log has lines");
  std::printf("%s: %d lines\n", log.c_str(), lines);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "08_logging: %s\n", e.what());
  return 1;
}
