// Options::sync: what reaches the disk before a write returns, or soon after.
// The Env seam counts the msync calls (the disk flushes of the shared maps).
#include <doctest/doctest.h>
#include <sys/mman.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "lilcache/env.h"
#include "lilcache/lilcache.h"
#include "support/fault_env.h"
#include "support/power_env.h"
#include "support/test_util.h"

using lilcache::Cache;
using lilcache::Error;
using lilcache::test::auto_compact;
using lilcache::test::FaultEnv;
using lilcache::test::PowerEnv;
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
  int Fsync(int fd) override {
    ++fsyncs;
    return Env::Fsync(fd);
  }
  int FsyncDir(const char* path) override {
    ++fsyncs;
    return Env::FsyncDir(path);
  }
  std::atomic<int> syncs{0};
  std::atomic<int> fsyncs{0};  // of files and directories
  std::string last_bytes;      // read only by tests that sync from their own thread
};

}  // namespace

TEST_CASE("sync = always: set, pop and erase flush their record to disk before returning") {
  TempDir dir;
  SyncCountingEnv env;
  auto c = Cache::open("t", {.root = dir.path(), .sync = "always", .env = &env});
  int before = env.syncs, fsyncs_before = env.fsyncs;
  c.set("first", "write");
  // The first write in a generation makes all of it durable: its data file
  // and its name (fsyncs), then durable_gen in the meta page.
  CHECK(env.fsyncs == fsyncs_before + 2);
  CHECK(env.syncs == before + 1);
  CHECK(env.last_bytes.substr(0, 8) == "LILCMETA");
  before = env.syncs;
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
    const std::string quoted = "\"" + std::string(bad) + "\"";
    CHECK_THROWS_WITH_AS(Cache::open("t", {.root = dir.path(), .sync = bad}),
                         doctest::Contains(quoted.c_str()), Error);
    CHECK_ERROR_CODE(Cache::open("t", {.root = dir.path(), .sync = bad}),
                     lilcache::ErrorCode::invalid_argument);
  }
}

namespace {

using Model = std::map<std::string, std::string>;  // what the cache must hold

// Opens an image left by a power loss as the first process after the reboot
// and checks that it holds exactly `model`.
// `maybe`: keys whose last write may be lost (not synced, no snapshot
// completed since): absent from `model`, they may hold this value.
void check_image(const std::string& root, const Model& model, const Model& maybe = {},
                 const std::string& boot = "after-the-power-loss") {
  FaultEnv rebooted;  // never fails: it only reports another boot
  rebooted.set_boot_id(boot);
  auto c = Cache::open("t", {.root = root, .env = &rebooted});
  std::size_t extra = 0;
  // Not structured bindings: clang 14 cannot capture them in CAPTURE's lambda.
  for (const auto& kv : model) {
    const std::string& key = kv.first;
    CAPTURE(key);
    CHECK(c.get(key) == kv.second);
  }
  for (const auto& kv : maybe) {
    const std::string& key = kv.first;
    CAPTURE(key);
    std::optional<std::string> got = c.get(key);
    CHECK((!got || *got == kv.second));
    extra += got.has_value();
  }
  CHECK(c.size() == model.size() + extra);
}

bool writers_paused(const std::string& root) {
  constexpr off_t kWriterState = 48;  // docs/format.md, NAME.meta
  constexpr std::uint32_t kSwitching = 2;
  int fd = ::open((root + "/t.meta").c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  std::uint32_t state = 0;
  REQUIRE(::pread(fd, &state, 4, kWriterState) == 4);
  ::close(fd);
  return (state & kSwitching) != 0;
}

}  // namespace

TEST_CASE(
    "sync = always: an acknowledged write survives a power loss at any instant of a compaction") {
  // One handle compacts; before each of its Env calls, another handle (sync =
  // "always") writes - unless writers are paused for the switch - so writes
  // land in the old generation at every stage of the compaction (copied by
  // the catch-up) and in the new one right after the switch. The power is
  // lost before call k, for every k (test/power_env.h): the image holds the
  // files as made durable, with the meta page as last synced or as it is at
  // that instant (written back early by the kernel). Reopened after the
  // "reboot", it must hold every write acknowledged before call k.
  TempDir base(true, lilcache::test::tmpfs_dir());
  const std::string seed = base.file("seed");
  Model seeded;
  {
    auto c = Cache::open("t", {.root = seed});
    for (int i = 0; i < 40; ++i) {
      seeded["k" + std::to_string(i)] = std::string(200 + 37 * i, static_cast<char>('a' + i % 26));
      c.set("k" + std::to_string(i), seeded["k" + std::to_string(i)]);
    }
    for (int i = 0; i < 10; ++i) c.set("k" + std::to_string(i), seeded["k" + std::to_string(i)]);
    for (int i = 30; i < 35; ++i) {
      c.erase("k" + std::to_string(i));
      seeded.erase("k" + std::to_string(i));
    }
    seeded["deleted-late"] = "deleted just before the compaction";  // not written below
    c.set("deleted-late", seeded["deleted-late"]);
  }
  // Runs the compaction, losing power before call `k` (0: never); returns
  // the number of calls.
  auto run = [&](std::uint64_t k) {
    TempDir dir(true, lilcache::test::tmpfs_dir());
    const std::string root = dir.file("c");
    std::filesystem::copy(seed, root);
    PowerEnv env;
    Model model = seeded, at_loss;
    std::uint64_t calls = 0;
    std::string call_name;
    {
      auto compactor = Cache::open("t", {.root = root, .env = &env});
      auto writer =
          Cache::open("t", {.root = root, .sync = "always", .compact_dead_ratio = 0, .env = &env});
      env.checkpoint(root);
      // A delete and a set that are not synced (the set also keeps the
      // writer's msyncs off the delete's page): they may be lost until the
      // compaction (a snapshot) completes, never after.
      REQUIRE(compactor.erase("deleted-late"));
      model.erase("deleted-late");
      compactor.set("set-late", std::string(9000, 's'));
      env.start([&](std::uint64_t n, const char* name) {
        if (!writers_paused(root)) {  // the writer would wait for this thread
          const std::string key = "k" + std::to_string(n * 7 % 40);
          switch (n % 4) {
            case 0:
            case 3: {
              const std::string fresh = "w" + std::to_string(n);
              model[fresh] = std::string(n % 4 == 0 ? 16000 : 100, static_cast<char>('A' + n % 26));
              writer.set(fresh, model[fresh]);
              break;
            }
            case 1:
              model[key] = "overwritten at " + std::to_string(n);
              writer.set(key, model[key]);
              break;
            case 2: {
              auto it = model.find(key);
              std::optional<std::string> had;
              if (it != model.end()) had = it->second;
              CHECK(writer.pop(key) == had);
              model.erase(key);
              break;
            }
          }
        }
        if (n == k) {
          call_name = name;
          at_loss = model;
          env.crash_image(root, dir.file("meta-as-synced"), false);
          env.crash_image(root, dir.file("meta-as-now"), true);
        }
      });
      CHECK(compactor.compact().compacted);
      calls = env.stop();
      if (k == 0) {  // the power fails right after the compaction returned
        at_loss = model;
        at_loss["set-late"] = std::string(9000, 's');
        env.crash_image(root, dir.file("meta-as-synced"), false);
        env.crash_image(root, dir.file("meta-as-now"), true);
      }
    }
    if (k == 0) {
      // The writes above are big enough for a catch-up round while writers
      // run (and so for the sync of its copies before the pause).
      std::string line, compacted;
      std::ifstream log(root + "/t.log");
      while (std::getline(log, line)) {
        if (line.find("compacted") != std::string::npos) compacted = line;
      }
      CAPTURE(compacted);
      CHECK(compacted.find(" 1 catch-up rounds") != std::string::npos);
    }
    if (k <= calls) {
      CAPTURE(k);
      CAPTURE(call_name);
      const Model maybe = k == 0 ? Model{}
                                 : Model{{"deleted-late", seeded.at("deleted-late")},
                                         {"set-late", std::string(9000, 's')}};
      {
        INFO("meta page as last synced");
        check_image(dir.file("meta-as-synced"), at_loss, maybe);
      }
      {
        INFO("meta page as at the power loss");
        check_image(dir.file("meta-as-now"), at_loss, maybe);
      }
    }
    return calls;
  };
  const std::uint64_t calls = run(0);
  REQUIRE(calls > 20);
  for (std::uint64_t k = 1; k <= calls; ++k) run(k);
}

TEST_CASE(
    "sync = always: the first write after an automatic compaction makes that generation durable") {
  // After a power loss only the data files of generations from durable_gen
  // on are replayed, and the compactor of the next generation removes this
  // one's file: a write acknowledged in a generation that an automatic
  // compaction (which syncs nothing) made must make it durable first
  // (docs/concurrency.md, "Durability"). A snapshot's generation is durable.
  TempDir dir;
  SyncCountingEnv env;
  auto c = Cache::open("t", {.root = dir.path(), .sync = "always", .env = &env});
  auto other = Cache::open("t", {.root = dir.path()});  // compacts, with another Env
  c.set("a", "1");
  int before = env.syncs, fsyncs_before = env.fsyncs;
  c.set("b", "2");
  CHECK(env.syncs == before + 1);  // the record only
  CHECK(env.fsyncs == fsyncs_before);
  REQUIRE(other.compact().compacted);  // a snapshot: durable
  before = env.syncs;
  c.set("c", "3");
  CHECK(env.syncs == before + 1);  // the record only
  CHECK(env.fsyncs == fsyncs_before);
  const std::uint64_t gen = auto_compact(other, "fill");
  CHECK(env.fsyncs == fsyncs_before);  // other's compaction used its own Env
  before = env.syncs;
  c.set("d", "4");
  CHECK(env.fsyncs == fsyncs_before + 2);  // the data file of `gen`, the directory
  CHECK(env.syncs == before + 1);          // then the meta page
  CHECK(env.last_bytes.substr(0, 8) == "LILCMETA");
  CHECK(c.stats().generation == gen);
  before = env.syncs;
  c.set("e", "5");
  CHECK(env.syncs == before + 1);
  CHECK(env.fsyncs == fsyncs_before + 2);
}

TEST_CASE("an automatic compaction syncs nothing and keeps the last durable generation's log") {
  TempDir dir;
  SyncCountingEnv env;
  auto c = Cache::open("t", {.root = dir.path(), .env = &env});
  const auto data = [&](std::uint64_t gen) {
    return std::filesystem::exists(dir.file("t." + std::to_string(gen) + ".data"));
  };
  c.set("a", "1");
  c.sync();  // generation 1 is durable
  const int fsyncs = env.fsyncs, syncs = env.syncs;
  const std::uint64_t second = auto_compact(c, "fill");
  CHECK(env.fsyncs == fsyncs);
  CHECK(env.syncs == syncs);
  CHECK(data(1));  // what a power loss falls back to
  CHECK(!std::filesystem::exists(dir.file("t.1.index")));
  const std::uint64_t third = auto_compact(c, "more");
  CHECK(data(1));
  for (std::uint64_t g = 2; g < third; ++g) CHECK(!data(g));  // never durable: not needed
  CHECK(second < third);
  c.sync();  // `third` is durable: the next compaction removes generation 1
  CHECK(env.fsyncs > fsyncs);
  const std::uint64_t fourth = auto_compact(c, "last");
  CHECK(!data(1));
  CHECK(data(third));
  REQUIRE(c.compact().compacted);  // a snapshot: durable, everything older goes
  for (std::uint64_t g = 1; g <= fourth; ++g) CHECK(!data(g));
  CHECK(c.get("a") == "1");
}

TEST_CASE(
    "a power loss after automatic compactions keeps every write made durable before it, "
    "deletes included") {
  // Automatic compactions sync nothing and drop tombstones. What was durable
  // before them (a sync(), a snapshot) must survive a power loss at any
  // point after; a key whose delete was synced must not come back from an
  // older generation's log (Bitcask's bug), including a delete synced in a
  // generation made by an automatic compaction.
  TempDir dir(true, lilcache::test::tmpfs_dir());
  const std::string root = dir.file("c");
  PowerEnv env;
  const std::string v1 = std::string(3000, '1'), v2 = std::string(3000, '2');
  std::vector<std::string> images;
  {
    auto c = Cache::open("t", {.root = root, .env = &env});
    c.set("kept", v1);
    c.set("doomed", "synced, then deleted and the delete synced");
    c.set("doomed-later", "deleted in an automatic compaction's generation");
    c.sync();
    REQUIRE(c.erase("doomed"));
    c.sync();
    auto_compact(c, "a");  // drops doomed's tombstone
    REQUIRE(c.erase("doomed-later"));
    auto_compact(c, "b");  // drops doomed-later's tombstone
    c.sync();              // ... the delete was before this sync
    // Generation 1's log is still there (nothing compacted since the sync),
    // and holds doomed-later's value: it must not be replayed any more.
    REQUIRE(std::filesystem::exists(root + "/t.1.data"));
    const auto lose_power = [&](const std::string& when) {
      for (const bool meta_now : {false, true}) {
        images.push_back(dir.file(when + (meta_now ? "-meta-as-now" : "-meta-as-synced")));
        env.crash_image(root, images.back(), meta_now);
      }
    };
    lose_power("after-sync");
    c.set("kept", v2);  // not synced: either value may survive
    auto_compact(c, "c");
    lose_power("later");
  }
  for (const std::string& image : images) {
    CAPTURE(image);
    FaultEnv rebooted;
    rebooted.set_boot_id("after-the-power-loss");
    auto c = Cache::open("t", {.root = image, .env = &rebooted});
    const std::optional<std::string> kept = c.get("kept");
    CHECK((kept == v1 || kept == v2));
    CHECK(c.get("doomed") == std::nullopt);
    CHECK(c.get("doomed-later") == std::nullopt);
    CHECK(c.get("a0") == "filler");  // synced by the third sync()
  }
}

TEST_CASE(
    "a power loss at any instant of the replay after a reboot leaves a cache that the next boot "
    "replays") {
  // The first open after a reboot replays the log into a new generation;
  // the power fails again before each of its Env calls. What it recorded
  // must never make the next boot skip the replay or lose a record.
  TempDir base(true, lilcache::test::tmpfs_dir());
  const std::string seed = base.file("seed");
  Model model;
  {
    auto c = Cache::open("t", {.root = seed});
    for (int i = 0; i < 60; ++i) {
      model["k" + std::to_string(i)] = std::string(100 + 91 * i, static_cast<char>('a' + i % 26));
      c.set("k" + std::to_string(i), model["k" + std::to_string(i)]);
    }
    for (int i = 0; i < 60; i += 7) {
      c.erase("k" + std::to_string(i));
      model.erase("k" + std::to_string(i));
    }
  }
  auto run = [&](std::uint64_t k) {
    TempDir dir(true, lilcache::test::tmpfs_dir());
    const std::string root = dir.file("c");
    std::filesystem::copy(seed, root);
    PowerEnv env;
    env.set_boot_id("first-reboot");
    env.checkpoint(root);
    std::string call_name;
    env.start([&](std::uint64_t n, const char* name) {
      if (n != k) return;
      call_name = name;
      env.crash_image(root, dir.file("meta-as-synced"), false);
      env.crash_image(root, dir.file("meta-as-now"), true);
    });
    {
      auto c = Cache::open("t", {.root = root, .env = &env});
      CHECK(c.stats().generation == 2);  // replayed
    }
    const std::uint64_t calls = env.stop();
    if (k != 0 && k <= calls) {
      CAPTURE(k);
      CAPTURE(call_name);
      {
        INFO("meta page as last synced");
        check_image(dir.file("meta-as-synced"), model, {}, "second-reboot");
      }
      {
        INFO("meta page as at the power loss");
        check_image(dir.file("meta-as-now"), model, {}, "second-reboot");
      }
    }
    return calls;
  };
  const std::uint64_t calls = run(0);
  REQUIRE(calls > 10);
  for (std::uint64_t k = 1; k <= calls; ++k) run(k);
}
