// Compaction under concurrent multi-process load, and compactors killed with
// SIGKILL at random points (docs/concurrency.md, "Generation switch").
#include <dirent.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "lilcache/env.h"
#include "lilcache/lilcache.h"
#include "support/test_util.h"

using lilcache::Cache;
using lilcache::test::Children;
using lilcache::test::Pipe;
using lilcache::test::StartGate;
using lilcache::test::TempDir;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// A self-checking value: key + "#" + version + "|", repeated and cut to
// `size` bytes. A torn value, another key's value or another version of this
// key all differ from it.
std::string expected_value(const std::string& key, std::uint64_t version, std::size_t size) {
  std::string unit = key + "#" + std::to_string(version) + "|";
  std::string v;
  v.reserve(size + unit.size());
  while (v.size() < size) v += unit;
  v.resize(size);
  return v;
}

// Value sizes derived from (key index, version) so that a checker can rebuild
// them without storing them.
std::size_t size_of(std::uint64_t index, std::uint64_t version) {
  return 40 + static_cast<std::size_t>((index * 131 + version * 17) % 360);
}

std::string describe(const std::optional<std::string>& v) {
  if (!v) return "<absent>";
  std::string head = v->substr(0, 40);
  return "\"" + head + (v->size() > 40 ? "...\"" : "\"") + " (" + std::to_string(v->size()) +
         " bytes)";
}

// Names of the files in `dir` that end with ".tmp".
std::vector<std::string> tmp_files(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (const dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.size() >= 4 && n.compare(n.size() - 4, 4, ".tmp") == 0) out.push_back(n);
  }
  closedir(d);
  return out;
}

// ---- Test 1: a writer process that owns its keys ---------------------------

constexpr int kWriters = 4;
constexpr std::uint64_t kOwnKeys = 64;

std::string own_key(int writer, std::uint64_t i) {
  return "w" + std::to_string(writer) + "-" + std::to_string(i);
}

// Expected state of one own key: the version of the last acknowledged set, or
// nullopt after an acknowledged pop (or before any write).
using Expected = std::vector<std::optional<std::uint64_t>>;

std::optional<std::string> expected_of(int writer, std::uint64_t i, const Expected& exp) {
  if (!exp[i]) return std::nullopt;
  return expected_value(own_key(writer, i), *exp[i], size_of(i, *exp[i]));
}

// Runs in a forked child: sets, overwrites and pops its own keys until
// `deadline`, checking every read against its own acknowledged history.
// Writes the final expected state to `state_path`. Returns 0, or 3 on a check
// failure (described on stderr).
int own_keys_writer(const std::string& root, int writer, Clock::time_point deadline,
                    const std::string& state_path, StartGate& gate) {
  std::mt19937_64 rng(0x1234567ull + static_cast<std::uint64_t>(writer) * 7919 +
                      static_cast<std::uint64_t>(getpid()));
  auto cache = Cache::open("c", {.root = root});
  Expected exp(kOwnKeys);
  std::uint64_t next_version = 1;
  std::uint64_t ops = 0, sets = 0, pops = 0, reads = 0;
  auto fail = [&](const std::string& what, std::uint64_t i, const std::optional<std::string>& got) {
    std::fprintf(stderr, "writer %d: %s: key %s after %llu ops: expected %s, got %s\n", writer,
                 what.c_str(), own_key(writer, i).c_str(), static_cast<unsigned long long>(ops),
                 describe(expected_of(writer, i, exp)).c_str(), describe(got).c_str());
    return 3;
  };
  auto check = [&](const std::string& what, std::uint64_t i) -> bool {
    auto got = cache.get(own_key(writer, i));
    ++reads;
    if (got != expected_of(writer, i, exp)) {
      fail(what, i, got);
      return false;
    }
    return true;
  };
  gate.wait();
  while (Clock::now() < deadline) {
    std::uint64_t i = rng() % kOwnKeys;
    std::string key = own_key(writer, i);
    if (rng() % 100 < 65) {
      std::uint64_t v = next_version++;
      cache.set(key, expected_value(key, v, size_of(i, v)));
      exp[i] = v;  // acknowledged
      ++sets;
    } else {
      auto got = cache.pop(key);
      if (got != expected_of(writer, i, exp)) return fail("pop returned a wrong value", i, got);
      exp[i] = std::nullopt;  // acknowledged
      ++pops;
    }
    ++ops;
    if (!check("read-back of the key just written", i)) return 3;
    if (!check("read of another own key", rng() % kOwnKeys)) return 3;
  }
  for (std::uint64_t i = 0; i < kOwnKeys; ++i) {
    if (!check("final check", i)) return 3;
  }
  std::ofstream out(state_path);
  for (std::uint64_t i = 0; i < kOwnKeys; ++i)
    out << (exp[i] ? static_cast<long long>(*exp[i]) : -1) << "\n";
  out.close();
  if (!out) {
    std::fprintf(stderr, "writer %d: cannot write %s\n", writer, state_path.c_str());
    return 5;
  }
  std::fprintf(stderr, "writer %d: %llu ops (%llu sets, %llu pops, %llu reads)\n", writer,
               static_cast<unsigned long long>(ops), static_cast<unsigned long long>(sets),
               static_cast<unsigned long long>(pops), static_cast<unsigned long long>(reads));
  return 0;
}

}  // namespace

TEST_CASE(
    "compaction while 4 processes write and read loses no acknowledged write and resurrects no "
    "deleted key") {
  TempDir dir;
  TempDir state_dir;
  const auto run_for =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::duration<double>(
          lilcache::test::stress_seconds(5.0) * lilcache::test::slowdown()));  // >= 10 compactions
  std::uint64_t compactions_before = 0;
  {
    auto c = Cache::open("c", {.root = dir.path()});
    // Some unrelated bulk so that each compaction copies a real amount of data.
    for (int i = 0; i < 5000; ++i) {
      std::string k = "bulk-" + std::to_string(i);
      c.set(k, expected_value(k, 0, 200));
    }
    compactions_before = c.stats().compactions;
  }

  Children kids;
  StartGate gate;
  std::vector<pid_t> pids;
  auto deadline = Clock::now() + 500ms + run_for;  // children start after the gate opens
  for (int w = 0; w < kWriters; ++w) {
    std::string state = state_dir.file("state-" + std::to_string(w));
    pids.push_back(kids.add(lilcache::test::fork_child(
        [&, w, state] { return own_keys_writer(dir.path(), w, deadline, state, gate); })));
  }

  auto c = Cache::open("c", {.root = dir.path()});
  gate.open();
  std::uint64_t compacted = 0, skipped = 0;
  std::chrono::microseconds max_pause{0}, total{0};
  std::vector<std::optional<int>> status(kWriters);
  auto hard_stop = deadline + 20s;
  for (;;) {
    bool all_done = true;
    for (int w = 0; w < kWriters; ++w) {
      if (!status[w]) {
        status[w] = lilcache::test::try_wait_child(pids[w]);
        if (status[w]) kids.forget(pids[w]);
      }
      if (!status[w]) all_done = false;
    }
    if (all_done || Clock::now() > hard_stop) break;
    auto r = c.compact();
    if (r.compacted) {
      ++compacted;
      total += r.duration;
      if (r.writer_pause > max_pause) max_pause = r.writer_pause;
    } else {
      ++skipped;
    }
    std::this_thread::sleep_for(10ms);
  }
  for (int w = 0; w < kWriters; ++w) {
    INFO("writer " << w);
    REQUIRE(status[w].has_value());  // ended before the hard stop
    CHECK(*status[w] == 0);
  }
  auto st = c.stats();
  MESSAGE("compactions by the parent: "
          << compacted << " (skipped " << skipped << "), mean duration "
          << (compacted ? total.count() / compacted : 0) << " us, max writer pause "
          << max_pause.count() << " us; stats().compactions grew by "
          << st.compactions - compactions_before);
  CHECK(st.compactions - compactions_before >= 10);
  CHECK(compacted >= 10);

  // A fresh handle sees every writer's final state, and the bulk keys.
  { Cache moved = std::move(c); }
  auto fresh = Cache::open("c", {.root = dir.path()});
  for (int w = 0; w < kWriters; ++w) {
    std::ifstream in(state_dir.file("state-" + std::to_string(w)));
    REQUIRE(in.good());
    for (std::uint64_t i = 0; i < kOwnKeys; ++i) {
      long long v = -2;
      in >> v;
      REQUIRE(v >= -1);
      std::string key = own_key(w, i);
      std::optional<std::string> want;
      if (v >= 0) {
        auto ver = static_cast<std::uint64_t>(v);
        want = expected_value(key, ver, size_of(i, ver));
      }
      auto got = fresh.get(key);
      INFO("key " << key << ": expected " << describe(want) << ", got " << describe(got));
      CHECK(got == want);
    }
  }
  for (int i = 0; i < 5000; i += 97) {
    std::string k = "bulk-" + std::to_string(i);
    CHECK(fresh.get(k) == expected_value(k, 0, 200));
  }
}

// ---- Test 2: compactors killed at random points ------------------------------

TEST_CASE(
    "a compactor killed with SIGKILL at random points leaves a cache that opens with all data") {
  TempDir dir;
  constexpr std::uint64_t kKeys = 20000;
  constexpr std::size_t kSize = 200;
  const int max_rounds = 30;
  const auto budget = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::duration<double>(lilcache::test::stress_seconds(20.0)));
  auto key_of = [](std::uint64_t i) { return "k" + std::to_string(i); };
  std::vector<std::uint64_t> version(kKeys, 0);
  {
    auto c = Cache::open("c", {.root = dir.path()});
    for (std::uint64_t i = 0; i < kKeys; ++i) c.set(key_of(i), expected_value(key_of(i), 0, kSize));
    // Overwrites: dead space for the compactions to drop.
    for (std::uint64_t i = 0; i < kKeys; i += 2) {
      version[i] = 1;
      c.set(key_of(i), expected_value(key_of(i), 1, kSize));
    }
  }

  std::mt19937_64 rng(20261124);
  auto start = Clock::now();
  int rounds = 0, kills = 0, exited = 0;
  std::uint64_t child_switches = 0, parent_sets = 0;
  int tmp_after_kill = 0, tmp_after_open = 0, rounds_with_switch = 0;
  std::chrono::microseconds max_set{0};
  for (; rounds < max_rounds && Clock::now() - start < budget; ++rounds) {
    CAPTURE(rounds);
    Children kids;
    Pipe ready;
    pid_t pid = kids.add(lilcache::test::fork_child([&] {
      ready.close_read();
      auto c = Cache::open("c", {.root = dir.path()});
      ready.send(1);
      auto stop = Clock::now() + 10s;
      while (Clock::now() < stop) c.compact();
      return 0;
    }));
    ready.close_write();
    auto w = Cache::open("c", {.root = dir.path()});
    std::uint64_t gen_before = w.stats().generation;
    REQUIRE(ready.recv(10s) == 1u);  // the child has opened the cache
    // Acknowledged writes while the child compacts, until the random kill.
    // Mostly 0-50 ms (mid-copy, mid-catch-up); every third round up to 300 ms
    // so that some kills land in or after a switch (a compaction of this
    // cache takes ~50-150 ms on a loaded 2-core machine).
    auto delay = std::chrono::microseconds(rng() % (rounds % 3 == 2 ? 300001 : 50001));
    auto kill_at = Clock::now() + delay;
    do {
      std::uint64_t i = rng() % kKeys;
      std::uint64_t v = version[i] + 1;
      w.set(key_of(i), expected_value(key_of(i), v, kSize));
      version[i] = v;
      ++parent_sets;
    } while (Clock::now() < kill_at);
    int status = kids.kill_and_wait(pid);
    if (!tmp_files(dir.path()).empty()) ++tmp_after_kill;
    if (status == 137) {
      ++kills;
    } else {
      ++exited;
      INFO("compactor child exited with status " << status << " before the kill");
      CHECK(status == 0);
    }

    // A writer is not held by a pause the dead compactor may have left.
    {
      std::uint64_t i = rng() % kKeys;
      std::uint64_t v = version[i] + 1;
      auto t0 = Clock::now();
      w.set(key_of(i), expected_value(key_of(i), v, kSize));
      auto took = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0);
      version[i] = v;
      if (took > max_set) max_set = took;
      CHECK(took < 2s);
    }
    std::uint64_t gen_after_kill = w.stats().generation;
    child_switches += gen_after_kill - gen_before;
    if (gen_after_kill != gen_before) ++rounds_with_switch;
    { Cache closing = std::move(w); }

    // The cache opens, holds every acknowledged value, and the next
    // compaction removes the dead compactor's leftovers.
    std::optional<Cache> c;
    REQUIRE_NOTHROW(c.emplace(Cache::open("c", {.root = dir.path()})));
    if (!tmp_files(dir.path()).empty()) ++tmp_after_open;
    std::uint64_t wrong = 0;
    for (std::uint64_t i = 0; i < kKeys; ++i) {
      auto got = c->get(key_of(i));
      auto want = expected_value(key_of(i), version[i], kSize);
      if (got != want) {
        if (wrong < 5) {
          FAIL_CHECK("key " << key_of(i) << ": expected " << describe(want) << ", got "
                            << describe(got));
        }
        ++wrong;
      }
    }
    CHECK(wrong == 0);
    CHECK(c->size() == kKeys);
    auto r = c->compact();
    CHECK(r.compacted);
    CHECK(r.keys_live == kKeys);
    auto left = tmp_files(dir.path());
    INFO("leftover .tmp files: " << left.size() << (left.empty() ? "" : " e.g. " + left[0]));
    CHECK(left.empty());
    if (wrong != 0) break;
  }
  MESSAGE(
      rounds << " rounds in "
             << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count()
             << " ms: " << kills << " compactors killed by SIGKILL, " << exited
             << " exited first; generation switches completed by the killed compactors: "
             << child_switches << " (in " << rounds_with_switch << " rounds); .tmp files left "
             << "by the kill in " << tmp_after_kill << " rounds, still there after the "
             << "parent's open in " << tmp_after_open << "; " << parent_sets
             << " acknowledged sets during compactions; slowest set after a kill "
             << max_set.count() << " us");
  CHECK(rounds >= 10);
  CHECK(kills >= rounds / 2);
}

namespace {

// An Env that, when a compaction renames its new log into place (after the
// copy, before the catch-up), moves the old log's tail past its capacity: as
// a writer does that reserves space at the end of the file and is killed
// before it grows the file.
class ReserveBeyondEndEnv : public lilcache::Env {
 public:
  explicit ReserveBeyondEndEnv(std::string old_log) : old_log_(std::move(old_log)) {}
  int Rename(const char* from, const char* to) override {
    if (!done_ && std::string_view(from).ends_with(".data.tmp")) {
      done_ = true;
      int fd = ::open(old_log_.c_str(), O_RDWR | O_CLOEXEC);
      REQUIRE(fd >= 0);
      std::uint64_t capacity = 0;
      REQUIRE(::pread(fd, &capacity, 8, 72) == 8);  // docs/format.md: capacity
      std::uint64_t tail = capacity + (1 << 20);    // a 1 MiB reservation...
      REQUIRE(::pwrite(fd, &tail, 8, 64) == 8);     // ...past the end: tail
      ::close(fd);
    }
    return Env::Rename(from, to);
  }
  bool done() const { return done_; }

 private:
  std::string old_log_;
  bool done_ = false;
};

}  // namespace

TEST_CASE("a compaction passes over space a killed writer reserved past the end of the log") {
  // Catch-up used to map the old log up to its tail and failed ("offset lies
  // beyond the end") until some other writer grew the file.
  TempDir dir;
  ReserveBeyondEndEnv env(dir.file("t.1.data"));
  auto c = Cache::open("t", {.root = dir.path(), .env = &env});
  for (int i = 0; i < 100; ++i) c.set("k" + std::to_string(i), "v" + std::to_string(i));
  lilcache::CompactionResult r = c.compact();
  REQUIRE(env.done());
  CHECK(r.compacted);
  for (int i = 0; i < 100; ++i) CHECK(c.get("k" + std::to_string(i)) == "v" + std::to_string(i));
  c.set("after", "works");
  CHECK(c.get("after") == "works");
}

namespace {

// Holds one thread's growth of the log (its Fallocate) until released: a
// writer stopped between reserving its space and writing its record. The
// first rename of a compaction's new file (after its index scan and copy),
// or release(), lets it go.
class StallGrowthEnv : public lilcache::Env {
 public:
  void stall(std::thread::id t) { target_ = t; }
  int Fallocate(int fd, off_t offset, off_t length) override {
    if (std::this_thread::get_id() == target_) {
      stalled_.store(true);
      auto deadline = Clock::now() + 20s;
      while (!released_.load() && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
    }
    return Env::Fallocate(fd, offset, length);
  }
  int Rename(const char* from, const char* to) override {
    if (stalled_.load() && !released_.exchange(true)) released_at_rename_ = true;
    return Env::Rename(from, to);
  }
  void release() { released_.store(true); }
  bool stalled() const { return stalled_.load(); }
  bool released_at_rename() const { return released_at_rename_; }

 private:
  std::atomic<std::thread::id> target_{};
  std::atomic<bool> stalled_{false}, released_{false};
  bool released_at_rename_ = false;
};

// Flips the writer epoch bit of NAME.meta (docs/format.md: writer_state at
// offset 48), as a compactor does just before it dies.
void flip_writer_epoch(const std::string& meta_path) {
  int fd = ::open(meta_path.c_str(), O_RDWR | O_CLOEXEC);
  REQUIRE(fd >= 0);
  void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  REQUIRE(p != MAP_FAILED);
  std::atomic_ref<std::uint32_t>(*reinterpret_cast<std::uint32_t*>(static_cast<char*>(p) + 48))
      .fetch_xor(1);
  ::munmap(p, 4096);
  ::close(fd);
}

}  // namespace

TEST_CASE(
    "a compaction waits for writers of the epoch a dead compactor flipped away from before it "
    "reads the index") {
  // A compactor flips the writer epoch and then waits for the writes of the
  // old one. One killed right after its flip leaves writes in flight in an
  // epoch that the next compactor's own flip does not drain. Such a write
  // reserved its space before the next compactor's start (so its catch-up
  // does not cover it): if that compactor read the index before the write
  // published its record, the new generation kept the previous value.
  TempDir dir;
  StallGrowthEnv env;
  auto c = Cache::open("t", {.root = dir.path(), .env = &env});
  for (int i = 0; i < 100; ++i) c.set("k" + std::to_string(i), "old");
  const std::string big(2 << 20, 'n');  // grows the 1 MiB log: stalls in Fallocate
  std::thread writer([&] {
    env.stall(std::this_thread::get_id());
    c.set("k7", big);
  });
  while (!env.stalled()) std::this_thread::sleep_for(1ms);
  flip_writer_epoch(dir.file("t.meta"));  // the compactor that died
  std::thread timer([&] {
    std::this_thread::sleep_for(300ms);
    env.release();
  });
  lilcache::CompactionResult r = c.compact();
  writer.join();
  timer.join();
  CHECK(r.compacted);
  CHECK_MESSAGE(!env.released_at_rename(),
                "the compaction scanned and copied while a write it should wait for was stalled");
  std::optional<std::string> k7 = c.get("k7");
  const bool k7_is_the_new_value = k7 == big;  // (not printed: 2 MiB)
  CHECK(k7_is_the_new_value);
  CHECK(k7.value_or("<absent>").substr(0, 8) == big.substr(0, 8));
  CHECK(c.get("k8") == "old");
}

namespace {

// Counts the library's short sleeps (and skips them: the test needs no wall
// time).
class CountingSleepEnv : public lilcache::Env {
 public:
  void SleepMicros(std::uint64_t micros) override {
    if (micros == 50) short_sleeps.fetch_add(1);
  }
  std::atomic<std::uint64_t> short_sleeps{0};
};

}  // namespace

TEST_CASE("writers that outrun compaction are slowed while the log is over half dead space") {
  // Backpressure bounds the file to about 2x the live data: while another
  // process holds the COMPACT lock (or compaction cannot keep up), each write
  // made while dead bytes exceed 45% of the log pays a short sleep; once a
  // compaction reclaims the space, writes run free again.
  TempDir dir;
  CountingSleepEnv env;
  auto c = Cache::open("t", {.root = dir.path(), .env = &env});
  const std::string value(1000, 'v');
  for (int i = 0; i < 1000; ++i) c.set("k" + std::to_string(i), value);
  // A "compactor" in another process: an OFD lock on the COMPACT byte
  // (docs/format.md) held through a descriptor of our own.
  int fd = ::open(dir.file("t.meta").c_str(), O_RDWR | O_CLOEXEC);
  REQUIRE(fd >= 0);
  struct flock fl = {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = 2;
  fl.l_len = 1;
  // (Our background compaction may hold it a moment: the index grew.)
  bool locked = false;
  for (int i = 0; i < 5000 && !locked; ++i) {
    locked = ::fcntl(fd, F_OFD_SETLK, &fl) == 0;
    if (!locked) std::this_thread::sleep_for(1ms);
  }
  REQUIRE(locked);
  // Overwrite until the log (> 4 MiB) is more than half dead.
  std::uint64_t before = env.short_sleeps.load();
  for (int round = 0; round < 12; ++round) {
    for (int i = 0; i < 1000; ++i) c.set("k" + std::to_string(i), value);
  }
  lilcache::Stats st = c.stats();
  REQUIRE(st.bytes_file > (4u << 20));
  REQUIRE(st.bytes_dead * 2 > st.bytes_file);
  const std::uint64_t slowed = env.short_sleeps.load() - before;
  CHECK(slowed > 0);
  before = env.short_sleeps.load();
  for (int i = 0; i < 100; ++i) c.set("k" + std::to_string(i), value);
  CHECK(env.short_sleeps.load() - before == 100);  // every write while over the limit
  // The compactor goes away; a compaction reclaims the space.
  ::close(fd);
  CHECK(c.compact().compacted);
  before = env.short_sleeps.load();
  for (int i = 0; i < 100; ++i) c.set("k" + std::to_string(i), value);
  CHECK(env.short_sleeps.load() - before == 0);
  for (int i = 0; i < 1000; ++i) CHECK(c.get("k" + std::to_string(i)) == value);
}
