// Faults injected through the Env seam: a full disk, failing maps.
#include <doctest/doctest.h>

#include <atomic>
#include <cerrno>
#include <string>

#include "lilcache/env.h"
#include "lilcache/lilcache.h"
#include "test_util.h"

using lilcache::Cache;
using lilcache::Error;
using lilcache::test::TempDir;

namespace {
// posix_fallocate fails with ENOSPC while `disk_full` is set.
class FullDiskEnv : public lilcache::Env {
 public:
  int Fallocate(int fd, off_t offset, off_t length) override {
    if (disk_full.load()) {
      ++refused;
      errno = ENOSPC;
      return -1;
    }
    return Env::Fallocate(fd, offset, length);
  }
  std::atomic<bool> disk_full{false};
  std::atomic<int> refused{0};
};
}  // namespace

TEST_CASE("a full disk makes set fail with a clear no-space Error; reads go on; space back, sets work") {
  TempDir dir;
  FullDiskEnv env;
  auto c = Cache::open("t", {.root = dir.path(), .env = &env});
  c.set("kept", "value");
  env.disk_full = true;
  std::string big(256 << 10, 'x');
  bool failed = false;
  for (int i = 0; i < 20 && !failed; ++i) {  // the first 1 MiB of log fills up
    try {
      c.set("big" + std::to_string(i), big);
    } catch (const Error& e) {
      failed = true;
      CHECK(std::string(e.what()).find("no space left") != std::string::npos);
    }
  }
  REQUIRE(failed);
  CHECK(env.refused > 0);
  CHECK(c.get("kept") == "value");
  CHECK_THROWS_AS(c.set("another", big), Error);
  env.disk_full = false;
  c.set("after", "space is back");
  CHECK(c.get("after") == "space is back");
  CHECK(c.get("kept") == "value");
}

TEST_CASE("creating a cache on a full disk fails with an Error and leaves nothing half-made") {
  TempDir dir;
  FullDiskEnv env;
  env.disk_full = true;
  CHECK_THROWS_WITH_AS(Cache::open("t", {.root = dir.path(), .env = &env}),
                       doctest::Contains("No space left"), Error);
  env.disk_full = false;
  auto c = Cache::open("t", {.root = dir.path(), .env = &env});
  c.set("a", "b");
  CHECK(c.get("a") == "b");
}
