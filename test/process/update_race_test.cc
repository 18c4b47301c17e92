// Conditional writes and get_or_set across real processes (issue 14): the
// promises of lilcache.h, "Conditional and read-modify-write operations" and
// "Get or compute, once", checked where they are hardest to keep: callers in
// several processes racing on one key, some of them SIGKILLed mid-call.
//
//  * increment: exec'd lilcache-test-worker `incrementer` processes (several
//    threads each) are killed at random moments and restarted. Every call is
//    recorded on a board in a shared file mapping (increment_board.h) before
//    it starts and after it returns, so the test knows which calls were
//    acknowledged and which were in doubt when their caller died: the counter
//    must end between the two.
//  * add, compare_and_set, compare_and_erase: forked processes race in lock
//    step (a barrier in shared memory; each process pinned to a CPU of its
//    own where it can, so that racers run in parallel): exactly one winner
//    per key or version, whose value is the one stored, also after a replay
//    of the log (the losers' records are marked ABORTED, docs/format.md).
//  * get_or_set: 4 processes x 4 threads ask for one missing key at once:
//    one compute. Its process SIGKILLed mid-compute: a waiter in another
//    process takes over (the kernel drops the lease), long before
//    Options::get_or_set_timeout. Its compute throws: the exception reaches
//    that caller only, and a waiter computes.
//
// Time: about 12 seconds by default; LILCACHE_STRESS_SECONDS=N runs the
// increment torture N seconds.
#include <doctest/doctest.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "format/file_header.h"
#include "format/record.h"
#include "lilcache/lilcache.h"
#include "support/increment_board.h"
#include "support/test_util.h"

namespace {

using namespace lilcache::test;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr const char* kName = "race";
constexpr int kStatusKilled = 128 + SIGKILL;

lilcache::Options options(const std::string& root) {
  lilcache::Options o;
  o.root = root;
  return o;
}

// The same, with no compaction on dead space: the losers' aborted records,
// which the tests count in the log at the end, stay in it (an automatic
// compaction drops them; no longer fsyncing, one often completes in time).
lilcache::Options options_keeping_log(const std::string& root) {
  lilcache::Options o = options(root);
  o.compact_dead_ratio = 0;
  return o;
}

// A bound that only catches hangs, scaled for sanitizer builds.
std::chrono::milliseconds hang_bound(std::chrono::seconds s) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(s * slowdown());
}

// In a child: throws (the thread's failure, see run_threads) when cond is false.
#define CHILD_CHECK(cond, what)                                                          \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      throw std::runtime_error(std::string(__FILE__ ":") + std::to_string(__LINE__) +    \
                               ": check failed: " #cond " (" + std::string(what) + ")"); \
    }                                                                                    \
  } while (0)

// A barrier for the threads of several processes, in shared memory. A
// failing caller breaks it, so that the others stop waiting at once instead
// of at the deadline.
struct Barrier {
  std::atomic<std::uint32_t> count{0};
  std::atomic<std::uint32_t> generation{0};
  std::atomic<bool> broken{false};

  // Returns when `parties` callers have arrived. The waiters spin (yielding)
  // for the first 50 ms, so that those on a CPU leave the barrier within
  // microseconds of the last one and race for real. Throws if the barrier is
  // broken, or after 60 s (scaled): a peer died or hangs.
  void arrive_and_wait(std::uint32_t parties) {
    const std::uint32_t g = generation.load();
    if (count.fetch_add(1) + 1 == parties) {
      // Everyone else waits for the generation to change, so nobody arrives
      // for the next round before this store.
      count.store(0);
      generation.fetch_add(1);
      return;
    }
    const auto start = Clock::now(), deadline = start + hang_bound(60s);
    for (unsigned spins = 0; generation.load() == g; ++spins) {
      if (broken.load()) throw std::runtime_error("barrier broken by a failed peer");
      if (spins % 256 != 0) {
        std::this_thread::yield();
        continue;
      }
      const auto now = Clock::now();
      if (now > deadline) throw std::runtime_error("barrier: a peer never arrived");
      if (now - start < 50ms) {
        std::this_thread::yield();
      } else {
        std::this_thread::sleep_for(20us);
      }
    }
  }
};

// In a forked racer: pins this process to CPU p % (CPUs available), so that
// racers of different processes run in parallel on different CPUs (without
// it, the scheduler sometimes keeps them on one CPU, where they take turns
// and almost never race). Best effort.
// The CPUs this process may run on.
int usable_cpus() {
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return 1;
  return CPU_COUNT(&allowed);
}

void spread_over_cpus(int p) {
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return;
  const int n = CPU_COUNT(&allowed);
  if (n < 2) return;
  int want = p % n;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &allowed) || want-- != 0) continue;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    if (sched_setaffinity(0, sizeof one, &one) != 0) return;
    return;
  }
}

// The first bytes of a value, for messages (some values are large).
std::string head(const std::optional<std::string>& v) {
  if (!v) return "nothing";
  return "\"" + v->substr(0, 16) + (v->size() > 16 ? "...\"" : "\"");
}

// The steady clock in ns (CLOCK_MONOTONIC: one clock for every process).
std::int64_t now_ns() {
  return static_cast<std::int64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
          .count());
}

// In a child: runs fn(t) for t < n in n threads. A thread that throws
// prints why and breaks `barrier`. Returns the child's exit status (0: every
// thread returned).
int run_threads(int n, Barrier& barrier, const std::function<void(int)>& fn) {
  std::mutex mu;
  int failures = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < n; ++t) {
    threads.emplace_back([&, t] {
      try {
        fn(t);
      } catch (const std::exception& e) {
        barrier.broken.store(true);
        std::lock_guard<std::mutex> g(mu);
        std::fprintf(stderr, "child %d thread %d: %s\n", static_cast<int>(getpid()), t, e.what());
        ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  return failures == 0 ? 0 : 1;
}

// ---- the increment torture --------------------------------------------------

// The board file of the torture, mapped in this process too.
class BoardFile {
 public:
  explicit BoardFile(const std::string& path) : path_(path), board_(map_board(path, true)) {}
  ~BoardFile() { unmap_board(board_); }
  BoardFile(const BoardFile&) = delete;
  BoardFile& operator=(const BoardFile&) = delete;
  const std::string& path() const { return path_; }
  IncrementBoard* operator->() const { return board_; }

 private:
  std::string path_;
  IncrementBoard* board_;
};

struct CounterTotals {
  std::uint64_t acked = 0, started = 0, final_value = 0;
};

// Checks every counter of a quiescent cache (no worker running) against the
// board: acknowledged <= value <= started (acknowledged + in doubt), and no
// acknowledged call returned more than the value. Returns the sums.
CounterTotals check_counters(lilcache::Cache& cache, const BoardFile& board, std::uint32_t keys,
                             std::uint32_t callers, const std::string& when) {
  INFO(when);
  CounterTotals sum;
  for (std::uint32_t k = 0; k < keys; ++k) {
    std::uint64_t acked = 0, started = 0;
    for (std::uint32_t c = 0; c < callers; ++c) {
      acked += board->callers[c].acked[k].load();
      started += board->callers[c].started[k].load();
    }
    std::optional<std::string> got = cache.get(counter_key(k));
    const std::uint64_t value = got ? std::stoull(*got) : 0;
    std::uint64_t max_seen = 0;
    for (std::uint64_t w = IncrementBoard::kSeenBits / 64; w-- > 0;) {
      if (std::uint64_t bits = board->seen[k][w].load(); bits != 0) {
        max_seen = w * 64 + 63 - static_cast<std::uint64_t>(std::countl_zero(bits));
        break;
      }
    }
    CAPTURE(k);
    CHECK_MESSAGE(acked <= value, "the counter lost acknowledged increments: value ", value, ", ",
                  acked, " acknowledged");
    CHECK_MESSAGE(value <= started, "the counter holds more than every call made: value ", value,
                  ", ", acked, " acknowledged + ", started - acked, " in doubt");
    CHECK_MESSAGE(max_seen <= value, "an acknowledged increment returned ", max_seen,
                  " but the counter is ", value);
    sum.acked += acked;
    sum.started += started;
    sum.final_value += value;
  }
  return sum;
}

// ---- the log --------------------------------------------------------------------

struct LogCount {
  std::uint64_t records = 0;
  std::uint64_t aborted = 0;  // conditional writes that lost their race (docs/format.md)
};

// Counts the valid records of the live generation of a quiescent cache.
LogCount count_log(const std::string& root, const std::string& name) {
  const std::string meta = read_file(root + "/" + name + ".meta");
  REQUIRE(meta.size() >= 40);
  std::uint64_t salt = 0, gen = 0, tail = 0;
  std::memcpy(&salt, meta.data() + 16, 8);
  std::memcpy(&gen, meta.data() + 32, 8);
  const std::string data = read_file(root + "/" + name + "." + std::to_string(gen) + ".data");
  REQUIRE(data.size() >= lilcache::kHeaderSize);
  std::memcpy(&tail, data.data() + 64, 8);
  LogCount n;
  lilcache::record::ForEachValidRecord(std::span<const char>(data.data(), data.size()),
                                       lilcache::kHeaderSize,
                                       std::min<std::uint64_t>(tail, data.size()), salt,
                                       [&](std::uint64_t, const lilcache::record::RecordView& r) {
                                         ++n.records;
                                         n.aborted += r.is_aborted() ? 1 : 0;
                                       });
  return n;
}

// ---- get_or_set ---------------------------------------------------------------

std::string computed_by(int caller) { return "computed by caller " + std::to_string(caller); }

}  // namespace

TEST_SUITE("process") {
  TEST_CASE(
      "increments SIGKILLed at random moments count every acknowledged call and no call twice") {
    // 4 worker slots of 2 threads each increment 3 keys (2/3 of the calls on
    // key 0); a slot's worker is SIGKILLed 0-50 ms after its start (one in 8
    // lives up to 400 ms; times slowdown()) and restarted at once. At the end of each round
    // every worker is killed, and this process reopens the cache and checks
    // the counters; after the last round the workers stop on their own.
    constexpr std::uint32_t kSlots = 4, kThreads = 2, kKeys = 3, kRounds = 4;
    constexpr std::uint32_t kCallers = kSlots * kThreads;
    const double seconds = stress_seconds(8);
    TempDir dir;
    const std::string root = dir.file("cache"), stop = dir.file("stop");
    BoardFile board(dir.file("board"));
    Children children;
    std::mt19937_64 rng(std::random_device{}());
    struct Slot {
      pid_t pid = -1;
      Clock::time_point kill_at;
    };
    Slot slots[kSlots];
    std::size_t kills = 0, starts = 0, reopens = 0;
    CounterTotals last;
    auto start_worker = [&](std::uint32_t s) {
      slots[s].pid =
          children.add(spawn({worker_path(), root, kName, "incrementer", std::to_string(s),
                              "--board=" + board.path(), "--threads=" + std::to_string(kThreads),
                              "--keys=" + std::to_string(kKeys), "--stop=" + stop}));
      std::uint64_t us = rng() % 50'001;
      if (rng() % 8 == 0) us = 50'000 + rng() % 350'001;
      // Sanitized workers start slower: they get as far into their work.
      us = static_cast<std::uint64_t>(static_cast<double>(us) * slowdown());
      slots[s].kill_at = Clock::now() + std::chrono::microseconds(us);
      ++starts;
    };
    auto kill_worker = [&](std::uint32_t s) {
      if (slots[s].pid <= 0) return;  // never kill(-1, ...): every process of the user
      int status = children.kill_and_wait(slots[s].pid);
      INFO("worker slot ", s, " (its stderr is above; 3 = check failed, 4 = lilcache::Error)");
      CHECK((status == kStatusKilled || status == 0));
      kills += status == kStatusKilled ? 1 : 0;
      slots[s].pid = -1;
    };
    for (std::uint32_t round = 0; round < kRounds; ++round) {
      CAPTURE(round);
      const auto round_end = Clock::now() + std::chrono::duration<double>(seconds / kRounds);
      while (Clock::now() < round_end) {
        for (std::uint32_t s = 0; s < kSlots; ++s) {
          if (slots[s].pid < 0) {
            start_worker(s);
          } else if (std::optional<int> ended = try_wait_child(slots[s].pid)) {
            children.forget(slots[s].pid);
            slots[s].pid = -1;
            FAIL_CHECK("worker slot ", s, " ended on its own with status ", *ended,
                       " (its stderr is above)");
          } else if (Clock::now() >= slots[s].kill_at) {
            kill_worker(s);
          }
        }
        std::this_thread::sleep_for(500us);
      }
      if (round + 1 < kRounds) {
        for (std::uint32_t s = 0; s < kSlots; ++s) kill_worker(s);
      } else {
        { std::ofstream(stop).put('x'); }
        for (std::uint32_t s = 0; s < kSlots; ++s) {
          if (slots[s].pid <= 0) start_worker(s);  // killed in the last pass: runs until stopped
          INFO("worker slot ", s, " (its stderr is above; -1 = hung)");
          CHECK(children.wait(slots[s].pid, hang_bound(60s)) == 0);
          slots[s].pid = -1;
        }
      }
      // Every worker is gone: the cache must reopen and the counters be exact.
      lilcache::Cache cache = lilcache::Cache::open(kName, options(root));
      ++reopens;
      CHECK(cache.stats().processes == 1);
      last = check_counters(cache, board, kKeys, kCallers, "after round " + std::to_string(round));
    }
    std::string report = audit_cache(root, kName);
    CHECK_MESSAGE(report.empty(), report);
    CHECK_MESSAGE(board->duplicates.load() == 0, board->duplicates.load(),
                  " acknowledged increments returned a value another one had returned");
    CHECK(kills >= 20);
    CHECK(last.acked >= 1000);
    MESSAGE(starts, " worker starts, ", kills, " kills, ", reopens, " reopens; ", last.acked,
            " increments acknowledged, ", last.started - last.acked, " in doubt, of which ",
            static_cast<std::int64_t>(last.final_value - last.acked), " took effect; ",
            board->unchecked.load(), " returned values past the duplicate check");
  }

  TEST_CASE("racing adds of one key across processes have exactly one winner") {
    // 4 processes x 2 threads: for each of 100 keys, all 8 callers pass a
    // barrier and add(key, "caller <c>" + 64 KiB) at once. The large value
    // makes the append between an adder's check and its publication long
    // enough that racing adders often both find the key absent.
    constexpr int kProcs = 4, kThreads = 2, kCallers = kProcs * kThreads, kKeys = 100;
    struct Board {
      Barrier barrier;
      std::atomic<std::uint32_t> wins[kKeys][kCallers];
    };
    SharedMemory<Board> board;
    TempDir dir;
    const std::string root = dir.file("cache");
    auto key = [](int k) { return std::string("add\0", 4) + std::to_string(k); };
    auto value = [](int c) { return "caller " + std::to_string(c) + std::string(64 * 1024, '.'); };
    Children children;
    std::vector<pid_t> pids;
    for (int p = 0; p < kProcs; ++p) {
      pids.push_back(children.add(fork_child([&, p] {
        spread_over_cpus(p);
        lilcache::Cache c = lilcache::Cache::open(kName, options_keeping_log(root));
        return run_threads(kThreads, board->barrier, [&](int t) {
          const int me = p * kThreads + t;
          for (int k = 0; k < kKeys; ++k) {
            board->barrier.arrive_and_wait(kCallers);
            if (c.add(key(k), value(me))) board->wins[k][me].store(1);
          }
        });
      })));
    }
    for (pid_t pid : pids) CHECK(children.wait(pid, hang_bound(120s)) == 0);

    std::vector<int> winner(kKeys, -1);
    {
      lilcache::Cache c = lilcache::Cache::open(kName, options_keeping_log(root));
      for (int k = 0; k < kKeys; ++k) {
        CAPTURE(k);
        int winners = 0;
        for (int me = 0; me < kCallers; ++me) {
          if (board->wins[k][me].load() != 0) {
            ++winners;
            winner[k] = me;
          }
        }
        CHECK(winners == 1);
        std::optional<std::string> got = c.get(key(k));
        CHECK_MESSAGE(got == value(winner[k]), "the key holds ", head(got));
      }
      CHECK(c.size() == kKeys);
    }
    const LogCount log = count_log(root, kName);
    // The replay below checks something only if some losers got as far as
    // appending (dozens do, on two CPUs or more).
    MESSAGE(log.records, " records in the log, ", log.aborted, " of them aborted adds");
    CHECK_MESSAGE((log.aborted > 0 || usable_cpus() < 2),
                  "no adder lost a race after appending: the test raced nothing");
    // The losers' records are in the log too, some with a higher seq than
    // the winner's: a replay of the log (after a reboot, or a damaged index)
    // must ignore them (they are marked ABORTED).
    force_replay(root, kName);
    lilcache::Cache c = lilcache::Cache::open(kName, options_keeping_log(root));
    for (int k = 0; k < kKeys; ++k) {
      CAPTURE(k);
      std::optional<std::string> got = c.get(key(k));
      CHECK_MESSAGE(got == value(winner[k]), "after the replay the key holds ", head(got),
                    " instead of the winner's value, caller ", winner[k]);
    }
    std::string report = audit_cache(root, kName);
    CHECK_MESSAGE(report.empty(), report);
  }

  TEST_CASE("compare_and_set races across processes have exactly one winner per version") {
    // 4 processes x 2 threads, 500 rounds over 50 keys (round r on key
    // r % 50): every caller reads the key's version, then (a barrier) all
    // compare_and_set with it at once; then caller 0 reads which value the
    // key holds. A last round races compare_and_erase of another key the
    // same way.
    constexpr int kProcs = 4, kThreads = 2, kCallers = kProcs * kThreads, kRounds = 500, kKeys = 50;
    struct Board {
      Barrier barrier;
      std::atomic<std::uint64_t> version[kRounds + 1][kCallers];
      std::atomic<std::uint32_t> won[kRounds + 1][kCallers];
      std::atomic<std::int32_t> holder[kRounds];  // the caller whose value the key holds, 1-based
    };
    SharedMemory<Board> board;
    TempDir dir;
    const std::string root = dir.file("cache");
    auto key = [](int round) {
      return round < kRounds ? std::string("cas\0", 4) + std::to_string(round % kKeys)
                             : std::string("erased\0", 7);
    };
    auto value = [](int round, int c) {
      return "round " + std::to_string(round) + " caller " + std::to_string(c);
    };
    {
      lilcache::Cache c = lilcache::Cache::open(kName, options_keeping_log(root));
      for (int k = 0; k < kKeys; ++k) c.set(key(k), "initial");
      c.set(key(kRounds), "initial");
    }
    Children children;
    std::vector<pid_t> pids;
    for (int p = 0; p < kProcs; ++p) {
      pids.push_back(children.add(fork_child([&, p] {
        spread_over_cpus(p);
        lilcache::Cache c = lilcache::Cache::open(kName, options_keeping_log(root));
        return run_threads(kThreads, board->barrier, [&](int t) {
          const int me = p * kThreads + t;
          for (int round = 0; round <= kRounds; ++round) {
            board->barrier.arrive_and_wait(kCallers);
            std::optional<lilcache::Versioned> v = c.get_versioned(key(round));
            CHILD_CHECK(v.has_value(), "round " + std::to_string(round));
            board->version[round][me].store(v->version);
            board->barrier.arrive_and_wait(kCallers);
            const bool won = round < kRounds
                                 ? c.compare_and_set(key(round), v->version, value(round, me))
                                 : c.compare_and_erase(key(round), v->version);
            if (won) board->won[round][me].store(1);
            board->barrier.arrive_and_wait(kCallers);
            if (me == 0 && round < kRounds) {
              std::optional<std::string> now = c.get(key(round));
              for (int w = 0; w < kCallers; ++w) {
                if (now == value(round, w)) board->holder[round].store(w + 1);
              }
            }
          }
        });
      })));
    }
    for (pid_t pid : pids) CHECK(children.wait(pid, hang_bound(120s)) == 0);

    std::vector<int> winner(kRounds + 1, -1);
    for (int round = 0; round <= kRounds; ++round) {
      CAPTURE(round);
      const std::uint64_t v = board->version[round][0].load();
      int winners = 0;
      for (int me = 0; me < kCallers; ++me) {
        CAPTURE(me);
        CHECK(board->version[round][me].load() == v);  // all raced with one version
        if (board->won[round][me].load() != 0) {
          ++winners;
          winner[round] = me;
        }
      }
      CHECK(winners == 1);
      if (round < kRounds) CHECK(board->holder[round].load() == winner[round] + 1);
      // The previous round on this key gave it a new version.
      if (round >= kKeys && round < kRounds) CHECK(v > board->version[round - kKeys][0].load());
    }
    const LogCount log = count_log(root, kName);
    MESSAGE(log.records, " records in the log, ", log.aborted,
            " of them aborted compare_and_sets or compare_and_erases");
    CHECK_MESSAGE((log.aborted > 0 || usable_cpus() < 2),
                  "no caller lost a race after appending: the test raced nothing");
    {
      lilcache::Cache c = lilcache::Cache::open(kName, options_keeping_log(root));
      CHECK_FALSE(c.contains(key(kRounds)));  // the compare_and_erase round removed it
      CHECK(c.size() == kKeys);
    }
    // A replay of the log must ignore the losers' records (marked ABORTED),
    // some of which have a higher seq than the winner's: each key holds the
    // value of its last round's winner, and the erased key stays erased.
    force_replay(root, kName);
    lilcache::Cache c = lilcache::Cache::open(kName, options_keeping_log(root));
    for (int round = kRounds - kKeys; round < kRounds; ++round) {
      CAPTURE(round);
      std::optional<std::string> got = c.get(key(round));
      CHECK_MESSAGE(got == value(round, winner[round]), "after the replay the key holds ",
                    head(got));
    }
    std::optional<std::string> got = c.get(key(kRounds));
    CHECK_MESSAGE(!got.has_value(), "the replay revived ", head(got));
    std::string report = audit_cache(root, kName);
    CHECK_MESSAGE(report.empty(), report);
  }

  TEST_CASE("get_or_set computes once for 4 processes x 4 threads asking at once") {
    // For each of 3 keys: all 16 callers pass a barrier and call get_or_set
    // with a compute that records its call and takes 300 ms.
    constexpr int kProcs = 4, kThreads = 4, kCallers = kProcs * kThreads, kKeys = 3;
    struct Board {
      Barrier barrier;
      std::atomic<std::uint32_t> computes[kKeys];
      std::atomic<std::int32_t> computer[kKeys];       // 1-based caller
      std::atomic<std::int32_t> got[kKeys][kCallers];  // 1-based caller named by the value
    };
    SharedMemory<Board> board;
    TempDir dir;
    const std::string root = dir.file("cache");
    auto key = [](int k) { return std::string("gos\0", 4) + std::to_string(k); };
    Children children;
    std::vector<pid_t> pids;
    for (int p = 0; p < kProcs; ++p) {
      pids.push_back(children.add(fork_child([&, p] {
        lilcache::Cache c = lilcache::Cache::open(kName, options(root));
        return run_threads(kThreads, board->barrier, [&](int t) {
          const int me = p * kThreads + t;
          for (int k = 0; k < kKeys; ++k) {
            board->barrier.arrive_and_wait(kCallers);
            std::string v = c.get_or_set(key(k), [&] {
              board->computes[k].fetch_add(1);
              board->computer[k].store(me + 1);
              std::this_thread::sleep_for(300ms);
              return computed_by(me);
            });
            for (int w = 0; w < kCallers; ++w) {
              if (v == computed_by(w)) board->got[k][me].store(w + 1);
            }
            CHILD_CHECK(board->got[k][me].load() != 0, "get_or_set returned \"" + v + "\"");
          }
        });
      })));
    }
    for (pid_t pid : pids) CHECK(children.wait(pid, hang_bound(120s)) == 0);
    for (int k = 0; k < kKeys; ++k) {
      CAPTURE(k);
      CHECK(board->computes[k].load() == 1);
      for (int me = 0; me < kCallers; ++me) {
        CAPTURE(me);
        CHECK(board->got[k][me].load() == board->computer[k].load());
      }
    }
  }

  TEST_CASE("get_or_set is taken over by another process when its computing process is SIGKILLed") {
    // 4 processes x 4 threads call get_or_set of one key at once. The first
    // compute signals that it runs and sleeps for 10 minutes; the test
    // SIGKILLs its process. A waiter in another process must take the lease
    // the kernel released, compute (300 ms) and store, and every surviving
    // caller return that value: within 30 s, where only the lease, not
    // Options::get_or_set_timeout (60 s), can have woken them.
    constexpr int kProcs = 4, kThreads = 4, kCallers = kProcs * kThreads;
    struct Board {
      Barrier barrier;
      std::atomic<std::uint32_t> computes;
      std::atomic<std::int32_t> computer_pid[kCallers];
      std::atomic<std::int32_t> computer[kCallers];   // 1-based caller of the n-th compute
      std::atomic<std::int32_t> got[kCallers];        // 1-based caller named by the value
      std::atomic<std::int64_t> got_at_ns[kCallers];  // steady clock (system-wide)
    };
    SharedMemory<Board> board;
    TempDir dir;
    const std::string root = dir.file("cache");
    const std::string key("gos\0takeover", 12);
    Children children;
    std::vector<pid_t> pids;
    for (int p = 0; p < kProcs; ++p) {
      pids.push_back(children.add(fork_child([&, p] {
        lilcache::Options o = options(root);
        o.get_or_set_timeout = "60s";
        lilcache::Cache c = lilcache::Cache::open(kName, o);
        return run_threads(kThreads, board->barrier, [&](int t) {
          const int me = p * kThreads + t;
          board->barrier.arrive_and_wait(kCallers);
          std::string v = c.get_or_set(key, [&] {
            const std::uint32_t n = board->computes.fetch_add(1);
            board->computer_pid[n].store(getpid());
            board->computer[n].store(me + 1);
            // The first compute waits for its SIGKILL.
            std::this_thread::sleep_for(n == 0 ? std::chrono::milliseconds(600s) : 300ms);
            return computed_by(me);
          });
          for (int w = 0; w < kCallers; ++w) {
            if (v == computed_by(w)) board->got[me].store(w + 1);
          }
          board->got_at_ns[me].store(now_ns());
          CHILD_CHECK(board->got[me].load() != 0, "get_or_set returned \"" + v + "\"");
        });
      })));
    }
    const auto deadline = Clock::now() + hang_bound(60s);
    while (board->computes.load() == 0 || board->computer_pid[0].load() == 0) {
      REQUIRE_MESSAGE(Clock::now() < deadline, "nobody started computing");
      std::this_thread::sleep_for(1ms);
    }
    // Let every caller reach its wait before the kill.
    std::this_thread::sleep_for(200ms);
    const pid_t victim = board->computer_pid[0].load();
    REQUIRE(std::find(pids.begin(), pids.end(), victim) != pids.end());
    const std::int64_t killed_at = now_ns();
    CHECK(children.kill_and_wait(victim) == kStatusKilled);
    for (pid_t pid : pids) {
      if (pid != victim) CHECK(children.wait(pid, hang_bound(120s)) == 0);
    }
    CHECK(board->computes.load() == 2);
    CHECK(board->computer_pid[1].load() != victim);
    const int second = board->computer[1].load();
    std::int64_t last_ns = killed_at;
    int survivors = 0;
    for (int me = 0; me < kCallers; ++me) {
      if (board->got[me].load() == 0) continue;  // a caller of the killed process
      CAPTURE(me);
      ++survivors;
      CHECK(board->got[me].load() == second);
      last_ns = std::max(last_ns, board->got_at_ns[me].load());
    }
    CHECK(survivors == kCallers - kThreads);
    const double took = static_cast<double>(last_ns - killed_at) / 1e9;
    // Not a timing assertion: the point is "not the 60 s timeout".
    CHECK_MESSAGE(took < 30, "the survivors returned ", took, " s after the kill");
    if (survivors > 0) {
      MESSAGE("the survivors returned ", took, " s after the SIGKILL of the computing process");
    }
    lilcache::Cache c = lilcache::Cache::open(kName, options(root));
    CHECK(c.get(key) == computed_by(second - 1));
  }

  TEST_CASE("a get_or_set whose compute throws lets a waiter in another process compute") {
    // 4 processes x 2 threads call get_or_set of one key at once. The first
    // compute throws after 300 ms: the exception reaches its caller only,
    // nothing is stored, and one waiter (of any process) computes instead.
    constexpr int kProcs = 4, kThreads = 2, kCallers = kProcs * kThreads;
    struct Board {
      Barrier barrier;
      std::atomic<std::uint32_t> computes;
      std::atomic<std::int32_t> computer[kCallers];  // 1-based caller of the n-th compute
      std::atomic<std::int32_t> got[kCallers];       // 1-based caller named by the value
      std::atomic<std::uint32_t> threw[kCallers];    // get_or_set threw compute's exception
    };
    SharedMemory<Board> board;
    TempDir dir;
    const std::string root = dir.file("cache");
    const std::string key("gos\0throws", 11);
    struct ComputeFailed : std::runtime_error {
      using std::runtime_error::runtime_error;
    };
    Children children;
    std::vector<pid_t> pids;
    for (int p = 0; p < kProcs; ++p) {
      pids.push_back(children.add(fork_child([&, p] {
        lilcache::Cache c = lilcache::Cache::open(kName, options(root));
        return run_threads(kThreads, board->barrier, [&](int t) {
          const int me = p * kThreads + t;
          board->barrier.arrive_and_wait(kCallers);
          try {
            std::string v = c.get_or_set(key, [&] {
              const std::uint32_t n = board->computes.fetch_add(1);
              board->computer[n].store(me + 1);
              std::this_thread::sleep_for(300ms);
              if (n == 0) throw ComputeFailed("the first compute fails");
              return computed_by(me);
            });
            for (int w = 0; w < kCallers; ++w) {
              if (v == computed_by(w)) board->got[me].store(w + 1);
            }
            CHILD_CHECK(board->got[me].load() != 0, "get_or_set returned \"" + v + "\"");
          } catch (const ComputeFailed&) {
            board->threw[me].store(1);
          }
        });
      })));
    }
    for (pid_t pid : pids) CHECK(children.wait(pid, hang_bound(120s)) == 0);
    REQUIRE(board->computes.load() == 2);
    const int first = board->computer[0].load(), second = board->computer[1].load();
    CHECK(first != second);
    for (int me = 0; me < kCallers; ++me) {
      CAPTURE(me);
      if (me + 1 == first) {
        CHECK(board->threw[me].load() == 1);  // the exception reached its caller
        CHECK(board->got[me].load() == 0);
      } else {
        CHECK(board->threw[me].load() == 0);
        CHECK(board->got[me].load() == second);
      }
    }
  }
}
