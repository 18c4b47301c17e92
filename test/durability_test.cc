// Options::sync: what reaches the disk before a write returns, or soon after.
// The Env seam counts the msync calls (the disk flushes of the shared maps).
#include <doctest/doctest.h>
#include <sys/mman.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "lilcache/env.h"
#include "lilcache/lilcache.h"
#include "test_util.h"

using lilcache::Cache;
using lilcache::Error;
using lilcache::test::TempDir;

namespace {

// Counts synchronous msyncs and remembers the bytes of the last one.
class SyncCountingEnv : public lilcache::Env {
 public:
  int Msync(void* addr, std::size_t length, int flags) override {
    if ((flags & MS_SYNC) != 0) {
      last_bytes.assign(static_cast<const char*>(addr), length);
      ++syncs;
    }
    return Env::Msync(addr, length, flags);
  }
  std::atomic<int> syncs{0};
  std::string last_bytes;  // read only by tests that sync from their own thread
};

}  // namespace

TEST_CASE("sync = always: set, pop and erase flush their record to disk before returning") {
  TempDir dir;
  SyncCountingEnv env;
  auto c = Cache::open("t", {.root = dir.path(), .sync = "always", .env = &env});
  int before = env.syncs;
  c.set("key", "VALUE-ONE");
  CHECK(env.syncs == before + 1);
  CHECK(env.last_bytes.find("VALUE-ONE") != std::string::npos);  // its record's pages
  c.set("key2", "VALUE-TWO", std::chrono::hours(1));
  CHECK(env.syncs == before + 2);
  CHECK(env.last_bytes.find("VALUE-TWO") != std::string::npos);
  CHECK(c.pop("key") == "VALUE-ONE");
  CHECK(env.syncs == before + 3);
  CHECK(c.erase("key2"));
  CHECK(env.syncs == before + 4);
  CHECK_FALSE(c.erase("key2"));  // nothing written, nothing to flush
  CHECK(env.syncs == before + 4);
  c.purge();
  CHECK(env.syncs == before + 5);  // the purge mark in the meta page
}

TEST_CASE("sync default: writes return without a disk flush; sync() flushes") {
  TempDir dir;
  SyncCountingEnv env;
  auto c = Cache::open("t", {.root = dir.path(), .env = &env});
  int before = env.syncs;
  for (int i = 0; i < 100; ++i) c.set("k" + std::to_string(i), "v");
  CHECK(c.pop("k1") == "v");
  CHECK(env.syncs == before);
  c.sync();
  CHECK(env.syncs > before);
}

TEST_CASE("sync = an interval: a background thread flushes the log periodically") {
  TempDir dir;
  SyncCountingEnv env;
  auto c = Cache::open("t", {.root = dir.path(), .sync = "10ms", .env = &env});
  c.set("k", "v");
  int before = env.syncs;
  // Waits for an event, not for a time: generous bound for a loaded machine.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (env.syncs < before + 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CHECK(env.syncs >= before + 3);
}

TEST_CASE("bad sync values give an Error at open naming the value") {
  TempDir dir;
  for (const char* bad : {"sometimes", "0ms", "10", "-1s", "ALWAYS"}) {
    CAPTURE(bad);
    CHECK_THROWS_WITH_AS(Cache::open("t", {.root = dir.path(), .sync = bad}),
                         doctest::Contains("invalid sync"), Error);
  }
}
