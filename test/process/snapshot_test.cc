// Periodic snapshots across processes (real time: intervals of 1 s).
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "lilcache/lilcache.h"
#include "support/test_util.h"

using lilcache::Cache;
using lilcache::test::TempDir;
using namespace std::chrono_literals;

TEST_CASE("with snapshot=1s and 3 processes, exactly one snapshot is taken per interval") {
  TempDir dir;
  { Cache::open("s", {.root = dir.path()}).set("seed", "x"); }
  const auto run_for = 5500ms;
  std::vector<pid_t> kids;
  for (int p = 0; p < 3; ++p) {
    kids.push_back(lilcache::test::fork_child([&, p] {
      auto c = Cache::open("s", {.root = dir.path(), .snapshot = "1s"});
      auto end = std::chrono::steady_clock::now() + run_for;
      for (int i = 0; std::chrono::steady_clock::now() < end; ++i) {
        c.set("p" + std::to_string(p) + "-" + std::to_string(i % 100), std::to_string(i));
        std::this_thread::sleep_for(2ms);
      }
      return 0;
    }));
  }
  for (pid_t k : kids) CHECK(lilcache::test::wait_child(k, 60s) == 0);
  auto st = Cache::open("s", {.root = dir.path()}).stats();
  MESSAGE("snapshots in " << run_for.count() << " ms with 3 processes: " << st.snapshots);
  // Intervals start at the first open with snapshot set: 5 whole intervals
  // fit in 5.5 s; three processes must not make that 15 (or even 7).
  CHECK(st.snapshots >= 3);  // a loaded machine may delay a thread past one deadline
  CHECK(st.snapshots <= 6);
  CHECK(st.keys == 301);
}

TEST_CASE("snapshot() makes a durable compacted generation and sync() returns") {
  TempDir dir;
  auto c = Cache::open("s", {.root = dir.path()});
  for (int i = 0; i < 1000; ++i) c.set("k" + std::to_string(i % 100), std::to_string(i));
  auto r = c.snapshot();
  REQUIRE(r.compacted);
  CHECK(r.keys_live == 100);
  auto st = c.stats();
  CHECK(st.snapshots == 1);
  CHECK(st.last_snapshot_ms > 0);
  c.set("after", "snapshot");
  CHECK_NOTHROW(c.sync());
  CHECK(c.get("after") == "snapshot");
}

TEST_CASE("the snapshot thread stops cleanly when the handle closes") {
  TempDir dir;
  auto start = std::chrono::steady_clock::now();
  {
    auto c = Cache::open("s", {.root = dir.path(), .snapshot = "1h"});
    c.set("a", "b");
  }
  CHECK(std::chrono::steady_clock::now() - start < 5s);  // no wait for the hour
}

TEST_CASE("periodic snapshots are taken while a writer never stops") {
  TempDir dir;
  auto c = Cache::open("s", {.root = dir.path(), .snapshot = "1s"});
  auto end = std::chrono::steady_clock::now() + 4500ms;
  for (int i = 0; std::chrono::steady_clock::now() < end; ++i) {
    c.set("k" + std::to_string(i % 2000),
          std::string(100, 'v'));                        // overwrites: compactions wanted too
    if (i % 100 == 0) std::this_thread::sleep_for(1ms);  // busy, but not a disk-bandwidth flood
  }
  auto st = c.stats();
  MESSAGE("snapshots in 4.5 s of continuous writes: " << st.snapshots);
  CHECK(st.snapshots >= 2);
}
