#include <doctest/doctest.h>

#include <atomic>

#include "lilcache/env.h"
#include "lilcache/lilcache.h"
#include "support/test_util.h"

using lilcache::Cache;
using lilcache::test::TempDir;
using std::chrono::milliseconds;

using lilcache::test::FakeClockEnv;

TEST_CASE("a key with a ttl is visible until it expires, then gone at once") {
  TempDir dir;
  FakeClockEnv env;
  auto c = Cache::open("t", {.root = dir.path(), .env = &env});
  c.set("k", "v", milliseconds(1000));
  env.now += 999;
  CHECK(c.get("k") == "v");
  CHECK(c.contains("k"));
  CHECK(c.size() == 1);
  env.now += 1;
  CHECK(!c.get("k"));
  CHECK(!c.contains("k"));
  CHECK(c.size() == 0);
  CHECK(!c.pop("k"));
  CHECK(c.stats().expired >= 2);
}

TEST_CASE("Options::expires is the default ttl; a per-key ttl overrides it") {
  TempDir dir;
  FakeClockEnv env;
  auto c = Cache::open("t", {.root = dir.path(), .expires = "1d", .env = &env});
  c.set("default", "v");
  c.set("short", "v", milliseconds(10));
  env.now += 11;
  CHECK(!c.get("short"));
  CHECK(c.get("default") == "v");
  env.now += 86'400'000 - 11 - 1;
  CHECK(c.get("default") == "v");
  env.now += 1;
  CHECK(!c.get("default"));
}

TEST_CASE("setting an expired key again revives it; keys without ttl never expire") {
  TempDir dir;
  FakeClockEnv env;
  auto c = Cache::open("t", {.root = dir.path(), .env = &env});
  c.set("k", "old", milliseconds(5));
  c.set("forever", "x");
  env.now += 10;
  CHECK(!c.get("k"));
  c.set("k", "new");
  env.now += 10ull * 365 * 86'400'000;
  CHECK(c.get("k") == "new");
  CHECK(c.get("forever") == "x");
}

TEST_CASE("expired keys are dropped by compaction and stay gone") {
  TempDir dir;
  FakeClockEnv env;
  auto c = Cache::open("t", {.root = dir.path(), .env = &env});
  for (int i = 0; i < 3000; ++i) c.set("k" + std::to_string(i), "v", milliseconds(100));
  c.set("keep", "yes");
  env.now += 200;
  for (int i = 0; i < 3000; ++i) c.set("n" + std::to_string(i), "w");  // grows the index
  auto st = c.stats();
  CHECK(st.generation > 1);
  CHECK(st.keys == 3001);
  CHECK(!c.get("k1"));
  CHECK(c.get("keep") == "yes");
}
