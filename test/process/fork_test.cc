// fork() of a process with open caches, with real processes (docs/
// concurrency.md, "fork()"). OFD locks belong to the open file description,
// which a fork child shares with its parent: a child that unlocks drops the
// parent's locks, and a child that lives on keeps a dead parent's locks. So
// a child must hold nothing of its parent's, whether it never calls the
// handle and exits (destroying it), execs, outlives a SIGKILLed parent, or
// keeps using the handle.
//
// Roles: the test process (T) forks a "parent" P that opens the cache; P
// forks the child C under test. Some tests stop P inside the library (an Env
// that blocks in one call: holding GROW in a growth, or COMPACT with writers
// paused) and SIGKILL it there. T is a child subreaper, so that an orphaned C
// is reparented to T and reaped by the test.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "engine/meta.h"
#include "lilcache/env.h"
#include "lilcache/lilcache.h"
#include "support/test_util.h"

namespace {

using lilcache::Cache;
using namespace lilcache::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kName = "fk";
constexpr std::size_t kBig = 2 << 20;  // a value that makes the log grow

lilcache::Options options(const TempDir& dir, lilcache::Env* env = nullptr) {
  lilcache::Options o;
  o.root = dir.file("cache");
  o.env = env;
  return o;
}

// In a child: throws (fork_child prints it and exits 99) when cond is false.
#define CHILD_CHECK(cond)                                                             \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      throw std::runtime_error(std::string(__FILE__ ":") + std::to_string(__LINE__) + \
                               ": check failed: " #cond);                             \
    }                                                                                 \
  } while (0)

// Waits until pred() holds; false after `timeout` (scaled by slowdown()).
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout * static_cast<long>(slowdown());
  while (!pred()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// What the processes of one test tell each other.
struct Control {
  std::atomic<int> armed{0};    // BlockingEnv blocks in its next matching call
  std::atomic<int> blocked{0};  // ... and it is blocked now
  std::atomic<int> release{0};  // ... until this is set
  std::atomic<int> ready{0};    // P has forked C (and whatever else the test says)
  std::atomic<int> go{0};       // T to the others: proceed
  std::atomic<pid_t> child{0};  // C's pid
  std::atomic<int> done{0};     // a process finished its part
  std::atomic<int> result{0};   // and what it found
};

// An Env that stops the process inside the library once, when armed: in a
// log growth (Fallocate, under the GROW lock, inside a writer section), or in
// a compaction once it has paused writers (the first clock read with
// SWITCHING set, under the COMPACT lock). It holds no lock while it waits.
class BlockingEnv : public lilcache::Env {
 public:
  enum class Where { kGrowth, kSwitch };
  BlockingEnv(Control* ctl, Where where) : ctl_(ctl), where_(where) {}
  ~BlockingEnv() override {
    if (meta_ != nullptr) munmap(meta_, lilcache::kHeaderSize);
  }

  // kSwitch watches the writer state of the cache's meta file (mapped
  // read-only through a descriptor of its own, closed at once).
  void watch(const std::string& meta_path) {
    int fd = ::open(meta_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error("open " + meta_path);
    void* p = mmap(nullptr, lilcache::kHeaderSize, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) throw std::runtime_error("mmap " + meta_path);
    meta_ = static_cast<lilcache::MetaHeader*>(p);
  }

  int Fallocate(int fd, off_t offset, off_t length) override {
    if (where_ == Where::kGrowth) Block();
    return Env::Fallocate(fd, offset, length);
  }
  std::uint64_t MonotonicNanos() override {
    if (where_ == Where::kSwitch && meta_ != nullptr &&
        (std::atomic_ref<std::uint32_t>(meta_->writer_state).load() & lilcache::kSwitchingBit)) {
      Block();
    }
    return Env::MonotonicNanos();
  }

 private:
  void Block() {
    if (ctl_->armed.exchange(0) != 1) return;
    ctl_->blocked = 1;
    while (ctl_->release == 0) ::usleep(1000);
  }

  Control* ctl_;
  Where where_;
  lilcache::MetaHeader* meta_ = nullptr;
};

// Process slots of NAME.meta whose owner is alive (holds its SLOT lock), seen
// from a descriptor of the test's own: their pids.
std::vector<std::uint64_t> live_slot_pids(const TempDir& dir) {
  const std::string path = dir.file("cache") + "/" + kName + ".meta";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("open " + path);
  void* p = mmap(nullptr, lilcache::kMetaFileSize, PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    ::close(fd);
    throw std::runtime_error("mmap " + path);
  }
  std::vector<std::uint64_t> pids;
  for (std::size_t i = 0; i < lilcache::kMaxProcesses; ++i) {
    if (lilcache::Env::Default()->IsLocked(fd, lilcache::SlotLockByte(i), 1) != 1) continue;
    const auto* slot = reinterpret_cast<const lilcache::ProcessSlot*>(
        static_cast<const char*>(p) + lilcache::kHeaderSize + i * lilcache::kSlotSize);
    pids.push_back(slot->pid);
  }
  munmap(p, lilcache::kMetaFileSize);
  ::close(fd);
  return pids;
}

bool contains_pid(const std::vector<std::uint64_t>& pids, pid_t pid) {
  for (std::uint64_t p : pids) {
    if (p == static_cast<std::uint64_t>(pid)) return true;
  }
  return false;
}

// Orphans are reparented to the test process, which reaps them.
void become_subreaper() { REQUIRE(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0); }

// C, forked by P: killed (and reaped, once it is the test's child) when the
// test ends, however it ends.
struct Orphan {
  pid_t pid = 0;
  ~Orphan() {
    if (pid <= 0) return;
    ::kill(pid, SIGKILL);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
};

// An idle child: never calls the library; lives until killed (or 10 min).
pid_t fork_idle_child() {
  return fork_child([] {
    for (int i = 0; i < 6000; ++i) ::usleep(100'000);
    return 0;
  });
}

std::string big_value(char c) { return std::string(kBig, c); }

// Namespace scope: destroyed by exit() in whichever process calls it.
std::optional<Cache> g_static_cache;

}  // namespace

TEST_SUITE("process") {
  TEST_CASE("a fork child that exits does not drop its parent's process-slot locks") {
    // P opens three handles (a static one, the default cache, a local one)
    // and forks children that never call them: C1 exits with exit(0), as
    // returning from main does (static and default caches destroyed), C2
    // destroys the local handle and _exits. P's three slots stay alive
    // throughout, as seen by another process; so does C's not being there.
    TempDir dir;
    Children children;
    SharedMemory<Control> ctl;
    pid_t p = children.add(fork_child([&] {
      g_static_cache.emplace(Cache::open(kName, options(dir)));
      lilcache::init(kName, options(dir));
      Cache local = Cache::open(kName, options(dir));
      g_static_cache->set("k", "v");
      lilcache::set("k2", "v2");
      pid_t c1 = fork_child([] {
        std::exit(0);
        return 0;
      });
      CHILD_CHECK(wait_child(c1) == 0);
      ctl->ready = 1;
      while (ctl->go == 0) ::usleep(1000);
      pid_t c2 = fork_child([&] {
        { Cache gone = std::move(local); }
        return 0;
      });
      CHILD_CHECK(wait_child(c2) == 0);
      ctl->ready = 2;
      while (ctl->go == 1) ::usleep(1000);
      // P's handles all still work.
      CHILD_CHECK(g_static_cache->get("k") == "v");
      CHILD_CHECK(lilcache::get("k2") == "v2");
      CHILD_CHECK(local.get("k") == "v");
      g_static_cache.reset();
      return 0;
    }));
    REQUIRE(eventually([&] { return ctl->ready == 1; }, 30s));
    std::vector<std::uint64_t> pids = live_slot_pids(dir);
    CHECK(pids.size() == 3);
    CHECK(pids == std::vector<std::uint64_t>(3, static_cast<std::uint64_t>(p)));
    {
      Cache other = Cache::open(kName, options(dir));
      CHECK(other.stats().processes == 4);
    }
    ctl->go = 1;
    REQUIRE(eventually([&] { return ctl->ready == 2; }, 30s));
    pids = live_slot_pids(dir);
    CHECK(pids == std::vector<std::uint64_t>(3, static_cast<std::uint64_t>(p)));
    ctl->go = 2;
    CHECK(children.wait(p) == 0);
  }

  TEST_CASE("a compactor waits for a write in flight in a process whose fork child exited") {
    // P's set of a 2 MiB value is stopped inside its writer section (in the
    // log's growth, after reserving its space); P's child exits, destroying
    // P's handle. A compaction by another process must still wait for P's
    // write: the write is then in the new generation, never lost in the old.
    TempDir dir;
    Children children;
    SharedMemory<Control> ctl;
    const std::string old_value(100, 'o'), new_value = big_value('n');
    pid_t p = children.add(fork_child([&] {
      BlockingEnv env(ctl.operator->(), BlockingEnv::Where::kGrowth);
      g_static_cache.emplace(Cache::open(kName, options(dir, &env)));
      g_static_cache->set("k", old_value);
      ctl->armed = 1;
      std::thread writer([&] { g_static_cache->set("k", new_value); });
      while (ctl->blocked == 0) ::usleep(1000);
      pid_t c = fork_child([] {
        std::exit(0);  // destroys g_static_cache
        return 0;
      });
      CHILD_CHECK(wait_child(c) == 0);
      ctl->ready = 1;
      writer.join();
      CHILD_CHECK(g_static_cache->get("k") == new_value);
      g_static_cache.reset();
      return 0;
    }));
    REQUIRE(eventually([&] { return ctl->ready == 1; }, 30s));
    pid_t q = children.add(fork_child([&] {
      Cache c = Cache::open(kName, options(dir));
      c.compact();
      ctl->done = 1;
      return 0;
    }));
    // Give the compaction time to (wrongly) finish without P's write; it
    // must wait for it (it would give up after 5 s, which this stays under:
    // not scaled by slowdown()).
    for (int i = 0; i < 2000 && ctl->done == 0; ++i) std::this_thread::sleep_for(1ms);
    CHECK_MESSAGE(ctl->done == 0, "a compaction finished while P's write was in flight");
    ctl->release = 1;
    CHECK(children.wait(p) == 0);
    CHECK(children.wait(q) == 0);
    Cache c = Cache::open(kName, options(dir));
    std::optional<std::string> got = c.get("k");
    const bool got_new = got == new_value;
    CHECK_MESSAGE(got_new, "get returned ",
                  got ? std::to_string(got->size()) + " bytes" : "nothing",
                  got == old_value ? " (the value P's write replaced)" : "");
  }

  TEST_CASE("a fork child that execs holds no lock and no file of its parent's cache") {
    // P holds COMPACT with writers paused (stopped in a compaction) and forks
    // a child that execs /bin/sleep. With P SIGKILLed, another process is
    // alone with the cache and can write and compact at once.
    become_subreaper();
    TempDir dir;
    Children children;
    SharedMemory<Control> ctl;
    Orphan sleeper;
    pid_t p = children.add(fork_child([&] {
      BlockingEnv env(ctl.operator->(), BlockingEnv::Where::kSwitch);
      Cache c = Cache::open(kName, options(dir, &env));
      env.watch(dir.file("cache") + "/" + kName + ".meta");
      c.set("k", "v");
      ctl->armed = 1;
      std::thread compactor([&] { c.compact(); });
      while (ctl->blocked == 0) ::usleep(1000);
      ctl->child = spawn({"/bin/sleep", "600"});
      ctl->ready = 1;
      compactor.join();  // never: SIGKILLed first
      return 0;
    }));
    REQUIRE(eventually([&] { return ctl->ready == 1; }, 30s));
    sleeper.pid = ctl->child;
    const std::string proc = "/proc/" + std::to_string(sleeper.pid);
    REQUIRE(eventually([&] { return read_file(proc + "/comm") == "sleep\n"; }, 30s));
    CHECK(children.kill_and_wait(p) == 128 + SIGKILL);
    CHECK(read_file(proc + "/maps").find(dir.path()) == std::string::npos);
    CHECK(live_slot_pids(dir).empty());
    Cache c = Cache::open(kName, options(dir));
    CHECK(c.stats().processes == 1);
    c.set("after", "x");
    CHECK(c.compact().compacted);
    CHECK(c.get("k") == "v");
  }

  // An idle child outliving a SIGKILLed parent that was stopped `where`,
  // holding that lock: another process, which had the cache open before,
  // writes (a value that makes the log grow) and compacts, promptly.
  void idle_child_outlives_parent(BlockingEnv::Where where) {
    become_subreaper();
    TempDir dir;
    Children children;
    SharedMemory<Control> ctl;
    Orphan idle;
    // Q: opened before P stops; waits for `go`, then writes and compacts.
    pid_t q = children.add(fork_child([&] {
      Cache c = Cache::open(kName, options(dir));
      ctl->done = 1;
      while (ctl->go == 0) ::usleep(1000);
      c.set("from-q", big_value('q'));
      CHILD_CHECK(c.get("from-q") == big_value('q'));
      CHILD_CHECK(c.compact().compacted);
      CHILD_CHECK(c.get("k") == "v");
      return 0;
    }));
    REQUIRE(eventually([&] { return ctl->done == 1; }, 30s));
    pid_t p = children.add(fork_child([&] {
      BlockingEnv env(ctl.operator->(), where);
      Cache c = Cache::open(kName, options(dir, &env));
      env.watch(dir.file("cache") + "/" + kName + ".meta");
      c.set("k", "v");
      ctl->armed = 1;
      std::thread stopped([&] {
        if (where == BlockingEnv::Where::kSwitch) {
          c.compact();
        } else {
          c.set("big", big_value('p'));
        }
      });
      while (ctl->blocked == 0) ::usleep(1000);
      ctl->child = fork_idle_child();
      ctl->ready = 1;
      stopped.join();  // never: SIGKILLed first
      return 0;
    }));
    REQUIRE(eventually([&] { return ctl->ready == 1; }, 30s));
    idle.pid = ctl->child;
    CHECK(children.kill_and_wait(p) == 128 + SIGKILL);
    REQUIRE(::kill(idle.pid, 0) == 0);  // the child lives on
    ctl->go = 1;
    // Without the child's copy of P's locks, Q's write takes about a
    // millisecond; with them, it never ends. 60 s is "does not hang".
    int status = children.wait(q, std::chrono::seconds(60) * static_cast<long>(slowdown()));
    CHECK_MESSAGE(status == 0, "Q's write and compaction did not finish (status ", status, ")");
    CHECK(::kill(idle.pid, 0) == 0);
  }

  TEST_CASE("an idle fork child outliving a parent SIGKILLed with writers paused blocks nobody") {
    idle_child_outlives_parent(BlockingEnv::Where::kSwitch);
  }

  TEST_CASE("an idle fork child outliving a parent SIGKILLed while growing the log blocks nobody") {
    idle_child_outlives_parent(BlockingEnv::Where::kGrowth);
  }

  TEST_CASE("a fork child can grow the log while its parent was growing it at the fork") {
    // P's growth is stopped (holding the in-process growth mutex and GROW)
    // when it forks C; C writes a value that makes the log grow, which waits
    // for P's GROW lock and then goes through.
    TempDir dir;
    Children children;
    SharedMemory<Control> ctl;
    pid_t p = children.add(fork_child([&] {
      BlockingEnv env(ctl.operator->(), BlockingEnv::Where::kGrowth);
      Cache c = Cache::open(kName, options(dir, &env));
      ctl->armed = 1;
      std::thread writer([&] { c.set("from-p", big_value('p')); });
      while (ctl->blocked == 0) ::usleep(1000);
      pid_t child = fork_child([&] {
        c.set("from-c", big_value('c'));
        CHILD_CHECK(c.get("from-c") == big_value('c'));
        return 0;
      });
      ctl->ready = 1;
      writer.join();
      CHILD_CHECK(wait_child(child, std::chrono::seconds(30)) == 0);
      CHILD_CHECK(c.get("from-c") == big_value('c'));
      CHILD_CHECK(c.get("from-p") == big_value('p'));
      return 0;
    }));
    REQUIRE(eventually([&] { return ctl->ready == 1; }, 30s));
    std::this_thread::sleep_for(100ms);  // let C reach the growth
    ctl->release = 1;
    CHECK(children.wait(p, std::chrono::seconds(60) * static_cast<long>(slowdown())) == 0);
  }

  TEST_CASE("a fork child that keeps using its parent's handle does so in a slot of its own") {
    // C's first calls come from four threads at once; C and T write, read
    // and pop at the same time; each value popped once. C's slot is its own,
    // and its exit leaves T's slot alive.
    constexpr int kThreads = 4, kKeys = 200;
    TempDir dir;
    Children children;
    SharedMemory<Control> ctl;
    Cache c = Cache::open(kName, options(dir));
    for (int i = 0; i < kKeys; ++i) c.set("pop-" + std::to_string(i), "v" + std::to_string(i));
    struct Pops {
      std::atomic<int> count[kKeys];
    };
    SharedMemory<Pops> pops;
    auto work = [&](const std::string& who) {
      for (int i = 0; i < kKeys; ++i) {
        std::string k = who + "-" + std::to_string(i);
        c.set(k, k);
        if (c.get(k) != k) throw std::runtime_error("lost " + k);
        std::optional<std::string> v = c.pop("pop-" + std::to_string(i));
        if (v) {
          if (*v != "v" + std::to_string(i)) throw std::runtime_error("bad pop " + *v);
          pops->count[i].fetch_add(1);
        }
      }
    };
    pid_t child = children.add(fork_child([&] {
      while (ctl->go == 0) ::usleep(100);
      std::vector<std::thread> threads;
      std::atomic<int> failures{0};
      for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
          try {
            work("child" + std::to_string(t));
          } catch (const std::exception& e) {
            std::fprintf(stderr, "child thread %d: %s\n", t, e.what());
            failures.fetch_add(1);
          }
        });
      }
      for (auto& th : threads) th.join();
      CHILD_CHECK(failures == 0);
      std::vector<std::uint64_t> pids = live_slot_pids(dir);
      CHILD_CHECK(pids.size() == 2 && contains_pid(pids, getpid()) &&
                  contains_pid(pids, getppid()));
      CHILD_CHECK(c.stats().processes == 2);
      { Cache gone = std::move(c); }
      return 0;
    }));
    ctl->go = 1;
    work("parent");
    REQUIRE(children.wait(child) == 0);
    for (int i = 0; i < kKeys; ++i) CHECK(pops->count[i] == 1);
    for (int t = 0; t < kThreads; ++t) {
      CHECK(c.get("child" + std::to_string(t) + "-" + std::to_string(kKeys - 1)).has_value());
    }
    CHECK(live_slot_pids(dir) == std::vector<std::uint64_t>{static_cast<std::uint64_t>(getpid())});
    CHECK(c.stats().processes == 1);
  }

  TEST_CASE("a fork child claims its process slot under the INIT lock") {
    // A process that opens the cache alone holds INIT from its check that no
    // slot is alive to the end of its recovery. Here T holds INIT: the
    // child's first call must not claim a slot until T lets go.
    TempDir dir;
    Children children;
    SharedMemory<Control> ctl;
    std::optional<Cache> c(Cache::open(kName, options(dir)));
    pid_t child = children.add(fork_child([&] {
      while (ctl->go == 0) ::usleep(100);
      c->set("from-child", "x");
      ctl->done = 1;
      while (ctl->go == 1) ::usleep(100);
      return 0;
    }));
    c.reset();  // T's slot goes: the child is the only opener
    const std::string path = dir.file("cache") + "/" + kName + ".meta";
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    REQUIRE(fd >= 0);
    REQUIRE(lilcache::Env::Default()->Lock(fd, lilcache::kInitLockByte, 1, true, false) == 0);
    ctl->go = 1;
    // The child either claims a slot at once (wrong) or waits for INIT.
    bool claimed = eventually([&] { return contains_pid(live_slot_pids(dir), child); }, 1s);
    CHECK_MESSAGE(!claimed, "the child claimed a slot while another process held INIT");
    CHECK(ctl->done == 0);
    ::close(fd);  // releases INIT
    REQUIRE(eventually([&] { return ctl->done == 1; }, 30s));
    CHECK(contains_pid(live_slot_pids(dir), child));
    ctl->go = 2;
    CHECK(children.wait(child) == 0);
    Cache again = Cache::open(kName, options(dir));
    CHECK(again.get("from-child") == "x");
  }

  TEST_CASE("a fork child waits for its parent's get_or_set lease and leases afresh itself") {
    // A thread of T computes "k" (holding its lease) when T forks C. C's
    // get_or_set of "k" must wait for T's value (the lease is T's, through
    // a description C no longer shares), not compute. Then C leases "k"
    // itself: the in-process table of leases it inherited, which said "a
    // thread here holds it", was reset at the fork.
    TempDir dir;
    Children children;
    SharedMemory<Control> ctl;
    lilcache::Options o = options(dir);
    o.get_or_set_timeout = "20s";
    Cache c = Cache::open(kName, o);
    std::thread computing([&] {
      (void)c.get_or_set("k", [&] {
        ctl->ready = 1;
        while (ctl->go == 0) ::usleep(100);
        std::this_thread::sleep_for(50ms);  // C is waiting by now
        return std::string("from-T");
      });
    });
    REQUIRE(eventually([&] { return ctl->ready == 1; }, 30s));
    pid_t child = children.add(fork_child([&] {
      ctl->go = 1;
      CHILD_CHECK(c.get_or_set("k", [] { return std::string("from-C"); }) == "from-T");
      CHILD_CHECK(c.erase("k"));
      CHILD_CHECK(c.get_or_set("k", [] { return std::string("again"); }) == "again");
      return 0;
    }));
    computing.join();
    CHECK(children.wait(child) == 0);
    CHECK(c.get("k") == "again");
  }
}
