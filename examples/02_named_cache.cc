// Seed requirement 2: named caches.
//
//   lilcache.init('foo_cache')
//   lilcache.set('a', 'b')
//
// A name selects one cache (its files are <root>/<name>.*); different names
// are independent caches, and every handle on one name shares its data.
//
// Usage: 02_named_cache [ROOT]   (default: a temporary directory)
#include <lilcache/lilcache.h>

#include <cstdio>
#include <filesystem>

#include "example.h"

int main(int argc, char** argv) try {
  const example::Root root(argc, argv);
  lilcache::Options options;
  options.root = root.str();

  // The module-level functions use the cache chosen by init().
  lilcache::init("foo_cache", options);
  lilcache::set("a", "b");
  example::check(lilcache::get("a") == "b", "foo_cache has a = b");

  // Another handle on the same name (in this or any process) sees the same data.
  lilcache::Cache foo = lilcache::Cache::open("foo_cache", options);
  example::check(foo.get("a") == "b", "a second foo_cache handle sees a = b");

  // Another name is another cache.
  lilcache::Cache bar = lilcache::Cache::open("bar_cache", options);
  example::check(!bar.get("a"), "bar_cache does not have a");

  example::check(std::filesystem::exists(root.path() / "foo_cache.meta"), "foo_cache.meta exists");
  std::printf("foo_cache: get('a') -> '%s', bar_cache: get('a') -> miss\n",
              foo.get("a").value_or("").c_str());

  // Names are 1..100 characters of [A-Za-z0-9_.-]; anything else throws.
  try {
    lilcache::Cache::open("no/slashes", options);
    example::check(false, "a name with '/' was accepted");
  } catch (const lilcache::Error& e) {
    std::printf("open(\"no/slashes\") -> lilcache::Error: %s\n", e.what());
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "02_named_cache: %s\n", e.what());
  return 1;
}
