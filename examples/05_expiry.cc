// Seed requirement 5: expiring keys.
//
//   lilcache.init('foo_cache', expires='1d')
//   lilcache.set('a', 'b')
//
// Options::expires is the time-to-live of every key set through that handle;
// set(key, value, ttl) gives one key its own. Durations are like "500ms",
// "120s", "5m", "1h30m", "1d", "1w".
//
// Usage: 05_expiry [ROOT]   (default: a temporary directory)
#include <lilcache/lilcache.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "example.h"

using namespace std::chrono_literals;

int main(int argc, char** argv) try {
  const example::Root root(argc, argv);
  lilcache::Options options;
  options.root = root.str();
  options.expires = "1d";  // every key set through this handle lives one day
  lilcache::init("foo_cache", options);
  lilcache::set("a", "b");

  // A key with its own time-to-live.
  const auto start = std::chrono::steady_clock::now();
  lilcache::set("token", "t0k3n", 50ms);
  const bool seen = lilcache::get("token").has_value();
  // (Only a machine stalled for 50 ms between the two calls would miss it.)
  example::check(seen || std::chrono::steady_clock::now() - start >= 50ms,
                 "token is there at once");

  std::this_thread::sleep_for(80ms);
  example::check(!lilcache::get("token"), "token expired after 50 ms");
  example::check(lilcache::get("a") == "b", "a (1 day) is still there");
  std::printf("after 80 ms: get('token') -> miss, get('a') -> 'b'\n");

  example::check(lilcache::parse_duration("1h30m") == 90min, "1h30m is 90 minutes");
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "05_expiry: %s\n", e.what());
  return 1;
}
