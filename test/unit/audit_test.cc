// The index-vs-log audit (lib/audit.h): it passes on caches the engine
// wrote, and it reports the states that break "a slot only moves to a higher
// seq" (docs/concurrency.md), built here directly in the files.
#include <doctest/doctest.h>
#include <signal.h>
#include <spdlog/logger.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine/generation.h"
#include "engine/meta.h"
#include "format/record.h"
#include "format/shared_atomic.h"
#include "inspect/audit.h"
#include "inspect/inspect.h"
#include "lilcache/env.h"
#include "lilcache/lilcache.h"
#include "support/test_util.h"
#include "util/names.h"

namespace {

using lilcache::AuditIndex;
using lilcache::Generation;
using lilcache::Index;

lilcache::Options options(const lilcache::test::TempDir& dir) {
  lilcache::Options o;
  o.root = dir.path();
  return o;
}

// The live generation of a closed cache, mapped read-write, to tamper with.
struct Files {
  Files(const std::string& root, const std::string& name) {
    auto in = lilcache::Inspector::Open(root, name);
    salt = in.header().meta.salt;
    g.Open(lilcache::Env::Default(), lilcache::CachePaths{root, name}, in.header().meta.generation,
           salt);
  }
  ~Files() { g.Close(); }

  std::uint64_t hash(std::string_view key) const { return lilcache::record::HashKey(key, salt); }
  // Offsets of the records of `key`, in log order.
  std::vector<std::uint64_t> records(std::string_view key) {
    std::uint64_t tail = lilcache::Shared(g.data.header().tail).load();
    std::vector<std::uint64_t> out;
    lilcache::record::ForEachValidRecord(
        g.data.Region(tail), lilcache::kHeaderSize, tail, salt,
        [&](std::uint64_t off, const lilcache::record::RecordView& r) {
          if (r.key() == key) out.push_back(off);
        });
    return out;
  }
  // Points the slot of `key` at the record at `off`.
  void point(std::string_view key, std::uint64_t off) {
    Index::Probe p = g.Find(key, hash(key));
    REQUIRE(p.value != 0);
    g.index.slot(p.pos).store(Index::Pack(hash(key), off));
  }
  // Appends a record below a new tail, published in no slot.
  std::uint64_t append(lilcache::record::RecordType type, std::string_view key,
                       std::string_view value, std::uint64_t seq) {
    std::size_t size = lilcache::record::RecordSize(key.size(), value.size());
    std::uint64_t off = g.data.Reserve(size, nullptr);
    lilcache::record::EncodeRecord({type, key, value, seq, 0}, salt,
                                   std::span<char>(g.data.base() + off, size));
    return off;
  }

  std::uint64_t salt = 0;
  Generation g;
};

std::string all(const lilcache::AuditReport& r) { return r.Describe(); }

}  // namespace

TEST_CASE(
    "the audit finds nothing wrong in a cache written by sets, pops, erases, TTLs, a "
    "purge and a compaction") {
  lilcache::test::TempDir dir;
  {
    auto c = lilcache::Cache::open("a", options(dir));
    for (int i = 0; i < 300; ++i) c.set("k" + std::to_string(i % 100), "v" + std::to_string(i));
    for (int i = 0; i < 100; i += 3) c.pop("k" + std::to_string(i));
    for (int i = 1; i < 100; i += 7) c.erase("k" + std::to_string(i));
    c.set("short", "lived", std::chrono::milliseconds(1));
    c.set("gone", "soon");
    c.purge();
    c.set("after", "purge");
    auto before = AuditIndex(dir.path(), "a");
    CHECK_MESSAGE(before.ok(), all(before));
    CHECK(before.keys == 103);
    CHECK(before.slots == 103);
    REQUIRE(c.compact().compacted);
    c.set("k1", "again");
    c.pop("k2");
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(5));  // "short" expires
  auto r = AuditIndex(dir.path(), "a");
  CHECK_MESSAGE(r.ok(), all(r));
  CHECK(r.generation == 2);
  CHECK(r.slots >= 1);
}

TEST_CASE(
    "the audit reports a slot moved back from a value to an older tombstone (a pop "
    "installing its stale tombstone after a failed CAS)") {
  lilcache::test::TempDir dir;
  {
    auto c = lilcache::Cache::open("a", options(dir));
    c.set("k", "v1");
    c.pop("k");
    c.set("k", "v2");
    c.set("other", "x");
  }
  {
    Files f(dir.path(), "a");
    auto recs = f.records("k");  // v1, its tombstone, v2
    REQUIRE(recs.size() == 3);
    CHECK(AuditIndex(dir.path(), "a").ok());
    f.point("k", recs[1]);  // the index now says "absent"; the log's newest is v2
  }
  auto r = AuditIndex(dir.path(), "a");
  REQUIRE(r.violations.size() == 1);
  CHECK_MESSAGE(r.violations[0].find("a replay would bring back a value") != std::string::npos,
                all(r));
  CHECK(r.violations[0].find("\"k\"") != std::string::npos);
  // What it means: the index says "absent", a replay of the log (here
  // forced by the needs_rebuild flag) brings the popped value back.
  {
    auto c = lilcache::Cache::open("a", options(dir));
    CHECK(!c.get("k"));
  }
  lilcache::test::force_replay(dir.path(), "a");
  {
    auto c = lilcache::Cache::open("a", options(dir));
    CHECK(c.get("k") == "v2");
  }
}

TEST_CASE(
    "the audit reports a slot moved back past a value even when a newer tombstone "
    "follows it") {
  lilcache::test::TempDir dir;
  {
    auto c = lilcache::Cache::open("a", options(dir));
    c.set("k", "v1");
    c.pop("k");
    c.set("k", "v2");
    c.pop("k");
  }
  {
    Files f(dir.path(), "a");
    auto recs = f.records("k");  // v1, T, v2, T
    REQUIRE(recs.size() == 4);
    f.point("k", recs[1]);
  }
  auto r = AuditIndex(dir.path(), "a");
  REQUIRE(r.violations.size() == 1);
  CHECK_MESSAGE(r.violations[0].find("moved back past it") != std::string::npos, all(r));
}

TEST_CASE(
    "the audit accepts the newer tombstone of a pop that lost its race, and reports one "
    "that would delete a visible value") {
  lilcache::test::TempDir dir;
  {
    auto c = lilcache::Cache::open("a", options(dir));
    c.set("popped", "v");
    c.pop("popped");
    c.set("held", "v");
  }
  {
    Files f(dir.path(), "a");
    f.append(lilcache::record::RecordType::kTombstone, "popped", "", 1000);
    f.append(lilcache::record::RecordType::kTombstone, "held", "", 1001);
  }
  auto r = AuditIndex(dir.path(), "a");
  REQUIRE_MESSAGE(r.violations.size() == 1, all(r));
  CHECK(r.violations[0].find("\"held\"") != std::string::npos);
  CHECK(r.violations[0].find("a replay would delete the value the index holds") !=
        std::string::npos);
}

TEST_CASE(
    "the audit reports a key of the log without a slot, a slot pointing at no record, "
    "and a slot of another key's tag") {
  lilcache::test::TempDir dir;
  {
    auto c = lilcache::Cache::open("a", options(dir));
    c.set("k", "v");
    c.set("j", "w");
  }
  {
    Files f(dir.path(), "a");
    f.append(lilcache::record::RecordType::kSet, "orphan", "value", 1000);
    Index::Probe p = f.g.Find("j", f.hash("j"));
    f.g.index.slot(p.pos).store(Index::Pack(f.hash("j"), 4096 + 8));  // mid-record
  }
  auto r = AuditIndex(dir.path(), "a");
  std::string text = all(r);
  CHECK_MESSAGE(text.find("key \"orphan\" has no slot") != std::string::npos, text);
  CHECK_MESSAGE(text.find("holds no valid record") != std::string::npos, text);
  CHECK_MESSAGE(text.find("key \"j\" has no slot") != std::string::npos, text);
  CHECK(r.violations.size() == 3);
}

#ifndef NDEBUG
TEST_CASE("an unpublished newer value is a violation unless its record is marked aborted") {
  lilcache::test::TempDir dir;
  {
    auto c = lilcache::Cache::open("a", options(dir));
    c.set("k", "published");
  }
  std::uint64_t loser = 0;
  {
    Files f(dir.path(), "a");
    // What a compare_and_set that lost its race appends: a newer record
    // that no slot points to.
    loser = f.append(lilcache::record::RecordType::kSet, "k", "lost", 1000);
  }
  auto r = AuditIndex(dir.path(), "a");
  REQUIRE_MESSAGE(r.violations.size() == 1, all(r));
  CHECK(r.violations[0].find("a replay would bring back a value") != std::string::npos);
  {
    Files f(dir.path(), "a");
    const std::size_t size = lilcache::record::RecordSize(1, 4);
    lilcache::record::MarkAborted(std::span<char>(f.g.data.base() + loser, size), f.salt);
  }
  r = AuditIndex(dir.path(), "a");
  CHECK_MESSAGE(r.ok(), all(r));
  // And a replay agrees: the aborted record does not come back.
  lilcache::test::force_replay(dir.path(), "a");
  auto c = lilcache::Cache::open("a", options(dir));
  CHECK(c.get("k") == "published");
}

TEST_CASE("the audit finds nothing wrong after racing conditional writes") {
  lilcache::test::TempDir dir;
  {
    auto c = lilcache::Cache::open("a", options(dir));
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&c, t] {
        for (int i = 0; i < 2000; ++i) {
          const std::string key = "k" + std::to_string(i % 16);
          c.increment("n" + std::to_string(i % 4));
          if (!c.add(key, std::to_string(t))) {
            if (auto v = c.get_versioned(key)) (void)c.compare_and_set(key, v->version, "x");
          }
          if (i % 3 == 0) (void)c.pop(key);
        }
      });
    }
    for (auto& th : threads) th.join();
  }
  auto r = AuditIndex(dir.path(), "a");
  CHECK_MESSAGE(r.ok(), all(r));
}

TEST_CASE("debug builds abort when a slot moves to a record that is not newer") {
  pid_t pid = lilcache::test::fork_child([] {
    // The default action, not doctest's handler (inherited): it would report
    // a crash and print a failed summary that the test run counts.
    ::signal(SIGABRT, SIG_DFL);
    spdlog::logger quiet("audit_test");                 // no sinks
    lilcache::CheckSlotMove(quiet, "test", "k", 7, 8);  // newer: fine
    lilcache::CheckSlotMove(quiet, "test", "k", 8, 7);  // older: aborts
    return 0;
  });
  CHECK(lilcache::test::wait_child(pid) == 128 + SIGABRT);
}
#endif
