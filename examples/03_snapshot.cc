// Seed requirement 3: snapshots of the cache at a regular interval.
//
//   lilcache.init('foo_cache', snapshot='120s')
//
// Options::snapshot is the interval. Every process that opens the cache with
// an interval runs a background thread; per interval exactly one of them
// writes the snapshot: a compacted generation of the cache, fsynced, so that
// every write before it survives power loss. Snapshots are counted in
// stats(). cache.snapshot() takes one now; cache.sync() makes every write so
// far durable without compacting.
//
// This example uses the shortest interval, "1s", and waits for the first
// periodic snapshot (about one second after the open).
//
// Usage: 03_snapshot [ROOT]   (default: a temporary directory)
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
  options.snapshot = "1s";  // e.g. "120s" in real use; at least "1s"
  lilcache::Cache cache = lilcache::Cache::open("foo_cache", options);
  cache.set("a", "b");

  // Wait for the background thread's first snapshot (due 1 s after the open;
  // the deadline only guards against a stalled machine).
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (cache.stats().snapshots == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  lilcache::Stats stats = cache.stats();
  example::check(stats.snapshots >= 1, "a periodic snapshot was taken");
  example::check(stats.last_snapshot_ms > 0, "stats() has the time of the last snapshot");
  std::printf("periodic: %llu snapshot(s), generation %llu\n",
              static_cast<unsigned long long>(stats.snapshots),
              static_cast<unsigned long long>(stats.generation));
  example::check(cache.get("a") == "b", "a snapshot keeps the data");

  // A snapshot on demand, e.g. before a planned shutdown. compacted is false
  // only if another process was compacting at that moment.
  const lilcache::CompactionResult now = cache.snapshot();
  example::check(now.compacted, "snapshot() took a snapshot");
  example::check(cache.stats().snapshots > stats.snapshots, "snapshot() is counted");
  std::printf("snapshot(): generation %llu, %llu live key(s), %llu -> %llu bytes of log\n",
              static_cast<unsigned long long>(now.generation),
              static_cast<unsigned long long>(now.keys_live),
              static_cast<unsigned long long>(now.bytes_before),
              static_cast<unsigned long long>(now.bytes_after));

  // Durable without compacting.
  cache.set("c", "d");
  cache.sync();
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "03_snapshot: %s\n", e.what());
  return 1;
}
