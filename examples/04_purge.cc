// Seed requirement 4: delete the whole cache.
//
//   lilcache.set('a', 'b')
//   lilcache.purge()
//
// purge() removes every key, for every process, at once.
//
// Usage: 04_purge [ROOT]   (default: a temporary directory)
#include <lilcache/lilcache.h>

#include <cstdio>

#include "example.h"

int main(int argc, char** argv) try {
  const example::Root root(argc, argv);
  lilcache::Options options;
  options.root = root.str();
  lilcache::init("default", options);

  // Another handle on the same cache, standing in for another process.
  lilcache::Cache other = lilcache::Cache::open("default", options);

  lilcache::set("a", "b");
  lilcache::set("c", "d");
  example::check(other.get("a") == "b", "the other handle sees a = b");

  lilcache::purge();
  example::check(!lilcache::get("a") && !lilcache::get("c"), "purge removed a and c");
  example::check(!other.get("a") && other.size() == 0, "the other handle sees the purge");
  std::printf("after purge(): get('a') -> miss, size() -> %zu\n", other.size());

  // The cache stays usable.
  lilcache::set("a", "new");
  example::check(other.get("a") == "new", "set works after purge");
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "04_purge: %s\n", e.what());
  return 1;
}
