// Multi-process suite: several real processes (fork, each opening its own
// Cache on one root unless the test says otherwise) use one cache at once and
// check the promises of lilcache.h: per-key linearizability across processes,
// visibility as soon as set() returns, pop() exactly once, purge() seen by
// every process at once, data surviving every process, fork() of an open
// handle, and growth of the log under concurrent writers.
//
// Values are self-checking (test_util.h, make_value/check_value): a torn or
// misplaced value is always detected. Children report failures on stderr and
// through their exit status, which the parent checks.
//
// Time: about 22 seconds by default; LILCACHE_STRESS_SECONDS=N runs each
// stress loop N seconds.
#include <doctest/doctest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>
#include <new>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "lilcache/lilcache.h"
#include "support/test_util.h"

namespace {

using namespace lilcache::test;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr const char* kName = "mp";

lilcache::Options options(const std::string& root) {
  lilcache::Options o;
  o.root = root;
  return o;
}

lilcache::Cache open_cache(const TempDir& dir) {
  return lilcache::Cache::open(kName, options(dir.file("cache")));
}

// The index-vs-log audit (lib/audit.h) of the cache, every process done.
void check_audit(const TempDir& dir) {
  std::string report = audit_cache(dir.file("cache"), kName);
  CHECK_MESSAGE(report.empty(), report);
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// In a child: throws (fork_child prints it and exits 99) when cond is false.
#define CHILD_CHECK(cond, ...)                                                        \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      throw std::runtime_error(std::string(__FILE__ ":") + std::to_string(__LINE__) + \
                               ": check failed: " #cond " " + describe(__VA_ARGS__)); \
    }                                                                                 \
  } while (0)

inline std::string describe() { return {}; }
template <typename... A>
std::string describe(const A&... parts) {
  std::string s = "(";
  ((s += std::string(parts)), ...);
  return s + ")";
}

std::string show(const std::optional<std::string>& v, std::string_view key) {
  if (!v) return "nullopt";
  std::string why;
  auto info = check_value(key, *v, &why);
  if (!info) return "a bad value: " + why;
  return "writer " + std::to_string(info->writer) + " seq " + std::to_string(info->seq) + ", " +
         std::to_string(info->length) + " bytes";
}

// Failures of the threads of one child: the first few messages are kept.
class ThreadFailures {
 public:
  void add(const std::string& what) {
    std::lock_guard<std::mutex> g(mu_);
    if (count_++ < 10) messages_.push_back(what);
  }
  // Prints the failures; returns the child's exit status.
  int report() {
    for (const auto& m : messages_) std::fprintf(stderr, "child %d: %s\n", getpid(), m.c_str());
    if (count_ > messages_.size()) {
      std::fprintf(stderr, "child %d: ... and %zu more failures\n", getpid(),
                   count_ - messages_.size());
    }
    return count_ == 0 ? 0 : 1;
  }

 private:
  std::mutex mu_;
  std::size_t count_ = 0;
  std::vector<std::string> messages_;
};

}  // namespace

TEST_SUITE("process") {
  TEST_CASE(
      "the seed scenario: process 1 sets, process 2 gets, process 3 pops, process 2 then misses") {
    TempDir dir;
    Children children;
    const std::string key = "seed";
    const std::string value = make_value(key, 1, 1, 100);

    pid_t p1 = children.add(fork_child([&] {
      lilcache::Cache c = open_cache(dir);
      c.set(key, value);
      return 0;
    }));
    REQUIRE(children.wait(p1) == 0);

    Pipe to_p2, from_p2;
    pid_t p2 = children.add(fork_child([&] {
      to_p2.close_write();
      from_p2.close_read();
      lilcache::Cache c = open_cache(dir);
      std::optional<std::string> got = c.get(key);
      CHILD_CHECK(got == value, "process 2 first get: ", show(got, key));
      CHILD_CHECK(c.contains(key));
      from_p2.send(1);
      CHILD_CHECK(to_p2.recv() == 1u);  // process 3 has popped
      got = c.get(key);
      CHILD_CHECK(!got.has_value(), "process 2 get after the pop: ", show(got, key));
      CHILD_CHECK(!c.contains(key));
      return 0;
    }));
    to_p2.close_read();
    from_p2.close_write();
    REQUIRE(from_p2.recv() == 1u);

    pid_t p3 = children.add(fork_child([&] {
      lilcache::Cache c = open_cache(dir);
      std::optional<std::string> got = c.pop(key);
      CHILD_CHECK(got == value, "process 3 pop: ", show(got, key));
      got = c.pop(key);
      CHILD_CHECK(!got.has_value(), "second pop: ", show(got, key));
      return 0;
    }));
    CHECK(children.wait(p3) == 0);
    to_p2.send(1);
    CHECK(children.wait(p2) == 0);
  }

  TEST_CASE(
      "4 processes x 4 threads of random set/get/pop/contains keep every value intact and "
      "ordered") {
    // 64 binary keys shared by 16 writers. Each value names its writer and that
    // writer's sequence number and checks itself. For each (thread, key, writer)
    // the sequence numbers a thread sees never go backwards (its own sets
    // count as seen). Every popped value is recorded; the parent checks that
    // none was popped twice, each was really set, and none is still cached.
    constexpr int kProcs = 4, kThreads = 4, kKeys = 64;
    constexpr std::uint32_t kWriters = kProcs * kThreads;
    const double seconds = stress_seconds(5);
    TempDir dir;
    Children children;
    StartGate gate;
    std::vector<std::string> keys;
    for (int k = 0; k < kKeys; ++k) {
      std::string key("k\0", 2);
      key += static_cast<char>(k);
      key += "\xff";
      if (k % 5 == 0) key += std::string(static_cast<std::size_t>(k) * 20, '\0');
      keys.push_back(key);
    }
    std::vector<pid_t> pids;
    for (int p = 0; p < kProcs; ++p) {
      pids.push_back(children.add(fork_child([&, p] {
        lilcache::Cache c = open_cache(dir);
        gate.wait();
        ThreadFailures failures;
        std::mutex mu;
        std::vector<AckRecord> records;  // kPop: popped values; kSet: each writer's last seq
        std::vector<std::thread> threads;
        auto start = Clock::now();
        for (int t = 0; t < kThreads; ++t) {
          threads.emplace_back([&, t] {
            const std::uint32_t me = static_cast<std::uint32_t>(p * kThreads + t + 1);
            std::mt19937_64 rng(me * 7919 + static_cast<std::uint64_t>(getpid()));
            std::vector<std::vector<std::int64_t>> seen(
                kKeys, std::vector<std::int64_t>(kWriters + 1, -1));
            std::vector<AckRecord> pops;
            std::uint64_t seq = 0;
            auto observe = [&](int k, const std::optional<std::string>& v, const char* op) {
              if (!v) return std::optional<ValueInfo>();
              std::string why;
              std::optional<ValueInfo> info = check_value(keys[k], *v, &why);
              if (!info) {
                failures.add(std::string(op) + " of key " + std::to_string(k) + ": " + why);
              } else if (info->writer == 0 || info->writer > kWriters) {
                failures.add(std::string(op) + ": unknown writer " + std::to_string(info->writer));
                info.reset();
              } else if (static_cast<std::int64_t>(info->seq) < seen[k][info->writer]) {
                failures.add(std::string(op) + " of key " + std::to_string(k) +
                             " went backwards: writer " + std::to_string(info->writer) + " seq " +
                             std::to_string(info->seq) + " after seq " +
                             std::to_string(seen[k][info->writer]));
              } else {
                seen[k][info->writer] = static_cast<std::int64_t>(info->seq);
              }
              return info;
            };
            try {
              for (std::uint64_t op = 0;; ++op) {
                if (op % 64 == 0 && seconds_since(start) >= seconds) break;
                int k = static_cast<int>(rng() % kKeys);
                unsigned dice = static_cast<unsigned>(rng() % 100);
                if (dice < 40) {
                  std::size_t len = 32 + rng() % 2000;
                  if (rng() % 64 == 0) len = 20000 + rng() % 80000;
                  ++seq;
                  c.set(keys[k], make_value(keys[k], me, seq, len));
                  seen[k][me] = static_cast<std::int64_t>(seq);
                } else if (dice < 70) {
                  observe(k, c.get(keys[k]), "get");
                } else if (dice < 85) {
                  std::optional<std::string> v = c.pop(keys[k]);
                  if (auto info = observe(k, v, "pop")) {
                    AckRecord r;
                    r.kind = AckKind::kPop;
                    r.writer = info->writer;
                    r.seq = info->seq;
                    r.length = info->length;
                    pops.push_back(r);
                  }
                } else if (dice < 98) {
                  c.contains(keys[k]);
                } else {
                  c.erase(keys[k]);
                }
              }
            } catch (const std::exception& e) {
              failures.add(std::string("exception: ") + e.what());
            }
            AckRecord last;
            last.kind = AckKind::kSet;
            last.writer = me;
            last.seq = seq;
            std::lock_guard<std::mutex> g(mu);
            records.insert(records.end(), pops.begin(), pops.end());
            records.push_back(last);
          });
        }
        for (auto& th : threads) th.join();
        std::string out(reinterpret_cast<const char*>(records.data()),
                        records.size() * sizeof(AckRecord));
        FILE* f = std::fopen(dir.file("records-" + std::to_string(p)).c_str(), "wb");
        if (f == nullptr || std::fwrite(out.data(), 1, out.size(), f) != out.size() ||
            std::fclose(f) != 0) {
          failures.add("cannot write the records file");
        }
        return failures.report();
      })));
    }
    gate.open();
    for (pid_t pid : pids)
      CHECK(children.wait(pid, std::chrono::seconds(static_cast<int>(seconds) + 120)) == 0);
    check_audit(dir);

    std::map<std::uint32_t, std::uint64_t> last_seq;
    std::set<std::pair<std::uint32_t, std::uint64_t>> popped;
    std::size_t duplicates = 0, pops = 0;
    for (int p = 0; p < kProcs; ++p) {
      for (const AckRecord& r : read_acks(dir.file("records-" + std::to_string(p)))) {
        if (r.kind == AckKind::kSet) last_seq[r.writer] = r.seq;
      }
    }
    REQUIRE(last_seq.size() == kWriters);
    for (int p = 0; p < kProcs; ++p) {
      for (const AckRecord& r : read_acks(dir.file("records-" + std::to_string(p)))) {
        if (r.kind != AckKind::kPop) continue;
        ++pops;
        if (!popped.insert({r.writer, r.seq}).second) {
          ++duplicates;
          FAIL_CHECK("value popped twice: writer ", r.writer, " seq ", r.seq);
        }
        CHECK_MESSAGE(r.seq <= last_seq[r.writer], "popped writer ", r.writer, " seq ", r.seq,
                      " but it only set up to ", last_seq[r.writer]);
        CHECK_MESSAGE(r.seq >= 1, "popped seq 0");
      }
    }
    CHECK(duplicates == 0);
    lilcache::Cache c = open_cache(dir);
    std::size_t live = 0;
    for (int k = 0; k < kKeys; ++k) {
      std::optional<std::string> v = c.get(keys[k]);
      if (!v) continue;
      ++live;
      std::string why;
      std::optional<ValueInfo> info = check_value(keys[k], *v, &why);
      REQUIRE_MESSAGE(info.has_value(), "key ", k, ": ", why);
      CHECK_MESSAGE(popped.count({info->writer, info->seq}) == 0, "key ", k,
                    " still holds a popped value: writer ", info->writer, " seq ", info->seq);
      CHECK(info->seq <= last_seq[info->writer]);
    }
    std::uint64_t sets = 0;
    for (auto& [w, s] : last_seq) sets += s;
    CHECK(c.size() == live);
    CHECK(pops > 0);
    MESSAGE(sets, " sets, ", pops, " pops, ", live, " keys left in ", seconds, " s");
  }

  TEST_CASE("a value set in one process is visible to a get in another as soon as set returns") {
    // Ping-pong across two pipes: A sets, tells B, B must get exactly that
    // value; B sets another key, tells A, A must get it. Every 16th value is
    // large (up to 1 MiB) so that the log grows while both have it mapped.
    const double seconds = stress_seconds(2);
    TempDir dir;
    Children children;
    Pipe ab, ba;
    auto length = [](std::uint64_t i) -> std::size_t {
      return i % 16 == 15 ? 256 * 1024 + (i * 7919) % (768 * 1024) : 32 + (i * 31) % 3000;
    };
    const std::string ping("ping\0", 5), pong("pong\0", 5);
    constexpr std::uint64_t kEnd = ~0ull;
    pid_t a = children.add(fork_child([&] {
      ab.close_read();
      ba.close_write();
      lilcache::Cache c = open_cache(dir);
      auto start = Clock::now();
      std::uint64_t i = 0;
      for (; seconds_since(start) < seconds || i < 100; ++i) {
        c.set(ping, make_value(ping, 1, i, length(i)));
        ab.send(i);
        CHILD_CHECK(ba.recv() == i);
        std::optional<std::string> got = c.get(pong);
        CHILD_CHECK(got == make_value(pong, 2, i, length(i + 1)), "round ", std::to_string(i),
                    ": A got ", show(got, pong));
      }
      ab.send(kEnd);
      std::printf("ping-pong: %llu rounds\n", static_cast<unsigned long long>(i));
      return 0;
    }));
    pid_t b = children.add(fork_child([&] {
      ab.close_write();
      ba.close_read();
      lilcache::Cache c = open_cache(dir);
      for (;;) {
        std::optional<std::uint64_t> i = ab.recv();
        CHILD_CHECK(i.has_value());
        if (*i == kEnd) return 0;
        std::optional<std::string> got = c.get(ping);
        CHILD_CHECK(got == make_value(ping, 1, *i, length(*i)), "round ", std::to_string(*i),
                    ": B got ", show(got, ping));
        CHILD_CHECK(c.contains(ping));
        c.set(pong, make_value(pong, 2, *i, length(*i + 1)));
        ba.send(*i);
      }
    }));
    ab.close_read();
    ab.close_write();
    ba.close_read();
    ba.close_write();
    CHECK(children.wait(a, std::chrono::seconds(static_cast<int>(seconds) + 60)) == 0);
    CHECK(children.wait(b) == 0);
  }

  TEST_CASE("once set returns, no process ever reads an older value of that key") {
    // 2 writer processes own 8 keys each and, after each set returns, publish
    // its sequence number in shared memory. 2 reader processes read the
    // published number s0, then get the key: the value must be intact, from
    // the key's writer, with a sequence number >= s0. Some values are large
    // (the log grows and is compacted under the readers).
    constexpr int kWriters = 2, kReaders = 2, kKeysPer = 8;
    const double seconds = stress_seconds(3);
    TempDir dir;
    Children children;
    StartGate gate;
    struct Board {
      std::atomic<std::uint64_t> acked[kWriters * kKeysPer];
      std::atomic<bool> stop{false};
    };
    SharedMemory<Board> board;
    auto key = [](int k) { return std::string("lin\0", 4) + std::to_string(k); };
    std::vector<pid_t> writers, readers;
    for (int w = 0; w < kWriters; ++w) {
      writers.push_back(children.add(fork_child([&, w] {
        lilcache::Cache c = open_cache(dir);
        gate.wait();
        std::mt19937_64 rng(static_cast<std::uint64_t>(w));
        for (std::uint64_t seq = 1; !board->stop.load(); ++seq) {
          int k = w * kKeysPer + static_cast<int>(rng() % kKeysPer);
          std::size_t len = rng() % 100 == 0 ? 100000 + rng() % 400000 : 32 + rng() % 500;
          c.set(key(k), make_value(key(k), static_cast<std::uint32_t>(w + 1), seq, len));
          board->acked[k].store(seq, std::memory_order_seq_cst);
        }
        return 0;
      })));
    }
    for (int r = 0; r < kReaders; ++r) {
      readers.push_back(children.add(fork_child([&, r] {
        lilcache::Cache c = open_cache(dir);
        gate.wait();
        std::mt19937_64 rng(static_cast<std::uint64_t>(100 + r));
        std::uint64_t reads = 0;
        while (!board->stop.load()) {
          int k = static_cast<int>(rng() % (kWriters * kKeysPer));
          std::uint64_t s0 = board->acked[k].load(std::memory_order_seq_cst);
          std::optional<std::string> got = c.get(key(k));
          ++reads;
          if (s0 == 0 && !got) continue;
          CHILD_CHECK(got.has_value(), "key ", std::to_string(k), " missing after seq ",
                      std::to_string(s0), " was acknowledged");
          std::string why;
          std::optional<ValueInfo> info = check_value(key(k), *got, &why);
          CHILD_CHECK(info.has_value(), why);
          CHILD_CHECK(info->writer == static_cast<std::uint32_t>(k / kKeysPer + 1));
          CHILD_CHECK(info->seq >= s0, "key ", std::to_string(k), ": read seq ",
                      std::to_string(info->seq), " after seq ", std::to_string(s0),
                      " was acknowledged");
        }
        std::printf("linearizable reads: %llu\n", static_cast<unsigned long long>(reads));
        return 0;
      })));
    }
    gate.open();
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));  // pacing only
    board->stop.store(true);
    for (pid_t pid : writers) CHECK(children.wait(pid) == 0);
    for (pid_t pid : readers) CHECK(children.wait(pid) == 0);
  }

  TEST_CASE(
      "concurrent sets of one key from several processes leave one whole value, never a mix") {
    // 4 processes set one key over and over with large values of their own
    // (64 KiB - 1 MiB, so that the copies overlap) while a 5th reads it: every
    // read is one intact value. At the end the key holds the last value of
    // one of the writers, exactly.
    constexpr int kProcs = 4, kSets = 150;
    TempDir dir;
    Children children;
    StartGate gate;
    const std::string k("one\0key", 7);
    auto length = [](int p, int i) {
      return std::size_t{64 * 1024} +
             static_cast<std::size_t>((p * 7919 + i * 104729) % (960 * 1024));
    };
    std::vector<pid_t> pids;
    for (int p = 0; p < kProcs; ++p) {
      pids.push_back(children.add(fork_child([&, p] {
        lilcache::Cache c = open_cache(dir);
        gate.wait();
        for (int i = 0; i < kSets; ++i) {
          c.set(k, make_value(k, static_cast<std::uint32_t>(p + 1), static_cast<std::uint64_t>(i),
                              length(p, i)));
        }
        return 0;
      })));
    }
    SharedMemory<std::atomic<bool>> done;
    pid_t reader = children.add(fork_child([&] {
      lilcache::Cache c = open_cache(dir);
      gate.wait();
      std::uint64_t reads = 0;
      while (!done->load()) {
        std::optional<std::string> got = c.get(k);
        if (!got) continue;
        ++reads;
        std::string why;
        std::optional<ValueInfo> info = check_value(k, *got, &why);
        CHILD_CHECK(info.has_value(), why);
        CHILD_CHECK(info->writer >= 1 && info->writer <= kProcs);
      }
      std::printf("one key: %llu reads\n", static_cast<unsigned long long>(reads));
      return 0;
    }));
    gate.open();
    for (pid_t pid : pids) CHECK(children.wait(pid, std::chrono::seconds(120)) == 0);
    done->store(true);
    CHECK(children.wait(reader) == 0);
    lilcache::Cache c = open_cache(dir);
    std::optional<std::string> got = c.get(k);
    REQUIRE(got.has_value());
    std::string why;
    std::optional<ValueInfo> info = check_value(k, *got, &why);
    REQUIRE_MESSAGE(info.has_value(), why);
    REQUIRE((info->writer >= 1 && info->writer <= static_cast<std::uint32_t>(kProcs)));
    CHECK_MESSAGE(info->seq == kSets - 1, "the key holds set #", info->seq, " of writer ",
                  info->writer, ", not its last");
    CHECK(*got == make_value(k, info->writer, kSets - 1,
                             length(static_cast<int>(info->writer) - 1, kSets - 1)));
  }

  TEST_CASE("purge in one process is seen at once by another") {
    // A sets a round of keys, B sees them; A purges and at once B finds none of
    // them, size() is 0 and keys() is empty (but for C's newer writes: see
    // below); B's next set is seen by A. Meanwhile C keeps setting its own key
    // and publishes the last sequence number acknowledged to it: after a purge
    // B may see only a value of C newer than the last one acked before the purge.
    const double seconds = stress_seconds(2);
    TempDir dir;
    Children children;
    struct Board {
      std::atomic<std::uint64_t> c_acked{0};  // C's last acknowledged seq
      std::atomic<std::uint64_t> before_purge{0};
      std::atomic<bool> stop{false};
    };
    SharedMemory<Board> board;
    const std::string ckey("c\0key", 5);
    Pipe ab, ba;
    pid_t cpid = children.add(fork_child([&] {
      ab.close_read();
      ab.close_write();
      ba.close_read();
      ba.close_write();
      lilcache::Cache c = open_cache(dir);
      for (std::uint64_t s = 1; !board->stop.load(); ++s) {
        c.set(ckey, make_value(ckey, 3, s, 64));
        board->c_acked.store(s);
      }
      return 0;
    }));
    pid_t a = children.add(fork_child([&] {
      ab.close_read();
      ba.close_write();
      lilcache::Cache c = open_cache(dir);
      auto start = Clock::now();
      int r = 0;
      for (; r < 30 || seconds_since(start) < seconds; ++r) {
        for (int i = 0; i < 200; ++i) {
          std::string k = "r" + std::to_string(r) + std::string(1, '\0') + std::to_string(i);
          c.set(k,
                make_value(k, 1, static_cast<std::uint64_t>(i), 32 + static_cast<std::size_t>(i)));
        }
        ab.send(1);
        CHILD_CHECK(ba.recv() == 1u);
        board->before_purge.store(board->c_acked.load());
        c.purge();
        ab.send(2);
        CHILD_CHECK(ba.recv() == 3u);
        std::string after = "after" + std::to_string(r);
        std::optional<std::string> got = c.get(after);
        CHILD_CHECK(got == make_value(after, 2, static_cast<std::uint64_t>(r), 40), "round ",
                    std::to_string(r), ": set after the purge not seen: ", show(got, after));
      }
      ab.send(0);
      std::printf("purge: %d rounds\n", r);
      return 0;
    }));
    pid_t b = children.add(fork_child([&] {
      ab.close_write();
      ba.close_read();
      lilcache::Cache c = open_cache(dir);
      for (int r = 0;; ++r) {
        std::optional<std::uint64_t> m = ab.recv();
        CHILD_CHECK(m.has_value());
        if (*m == 0) return 0;
        auto key = [&](int i) {
          return "r" + std::to_string(r) + std::string(1, '\0') + std::to_string(i);
        };
        for (int i = 0; i < 200; ++i) {
          std::string k = key(i);
          CHILD_CHECK(c.get(k) == make_value(k, 1, static_cast<std::uint64_t>(i),
                                             32 + static_cast<std::size_t>(i)),
                      "round ", std::to_string(r), " key ", std::to_string(i), " not seen");
        }
        ba.send(1);
        CHILD_CHECK(ab.recv() == 2u);  // purged
        std::uint64_t c_before = board->before_purge.load();
        for (int i = 0; i < 200; ++i) {
          std::string k = key(i);
          std::optional<std::string> got = c.get(k);
          CHILD_CHECK(!got.has_value(), "round ", std::to_string(r), " key ", std::to_string(i),
                      " survived the purge: ", show(got, k));
          CHILD_CHECK(!c.contains(k));
        }
        std::string prev = "after" + std::to_string(r - 1);
        CHILD_CHECK(!c.get(prev).has_value(), "round ", std::to_string(r),
                    ": B's set before the purge survived it");
        std::optional<std::string> cv = c.get(ckey);
        if (cv) {
          std::string why;
          std::optional<ValueInfo> info = check_value(ckey, *cv, &why);
          CHILD_CHECK(info.has_value(), why);
          CHILD_CHECK(info->seq > c_before, "round ", std::to_string(r), ": C's seq ",
                      std::to_string(info->seq), " acknowledged before the purge (last acked ",
                      std::to_string(c_before), ") survived it");
        }
        for (const std::string& k : c.keys()) {
          CHILD_CHECK(k == ckey, "round ", std::to_string(r), ": keys() lists a key of ",
                      std::to_string(k.size()), " bytes after the purge");
        }
        CHILD_CHECK(c.size() <= 1u);
        std::string after = "after" + std::to_string(r);
        c.set(after, make_value(after, 2, static_cast<std::uint64_t>(r), 40));
        ba.send(3);
      }
    }));
    ab.close_read();
    ab.close_write();
    ba.close_read();
    ba.close_write();
    CHECK(children.wait(a, std::chrono::seconds(120)) == 0);
    CHECK(children.wait(b) == 0);
    board->stop.store(true);
    CHECK(children.wait(cpid) == 0);
  }

  TEST_CASE("data survives after every process exits and the cache is reopened") {
    // Three processes write (binary keys, the longest key, empty and all-NUL
    // values, a large value), overwrite and erase, then exit. A new process
    // opens the cache and finds exactly the final state; so does a second
    // reopen.
    TempDir dir;
    Children children;
    auto key_of = [](int p, int i) {
      std::string k = "s" + std::to_string(p) + std::string("\0\xff", 2) + std::to_string(i);
      return k;
    };
    auto final_value = [&](int p, int i) -> std::optional<std::string> {
      std::string k = key_of(p, i);
      if (i % 10 == 3) return std::nullopt;  // erased
      if (i % 10 == 4) return std::nullopt;  // popped
      if (i % 2 == 0)
        return make_value(k, static_cast<std::uint32_t>(p + 1), 2,
                          32 + static_cast<std::size_t>(i) * 3);
      return make_value(k, static_cast<std::uint32_t>(p + 1), 1,
                        32 + static_cast<std::size_t>(i) * 7);
    };
    const std::string long_key(lilcache::kMaxKeyBytes, '\x01');
    const std::string nul_value(1000, '\0');
    const std::string big_value = make_value("big", 9, 9, 3 * 1024 * 1024);
    std::vector<pid_t> pids;
    for (int p = 0; p < 3; ++p) {
      pids.push_back(children.add(fork_child([&, p] {
        lilcache::Cache c = open_cache(dir);
        const std::uint32_t w = static_cast<std::uint32_t>(p + 1);
        for (int i = 0; i < 300; ++i) {
          std::string k = key_of(p, i);
          c.set(k, make_value(k, w, 1, 32 + static_cast<std::size_t>(i) * 7));
        }
        for (int i = 0; i < 300; i += 2) {
          std::string k = key_of(p, i);
          c.set(k, make_value(k, w, 2, 32 + static_cast<std::size_t>(i) * 3));
        }
        for (int i = 3; i < 300; i += 10) CHILD_CHECK(c.erase(key_of(p, i)));
        for (int i = 4; i < 300; i += 10) CHILD_CHECK(c.pop(key_of(p, i)).has_value());
        if (p == 0) {
          c.set("empty", "");
          c.set(long_key, "long");
          c.set("nul", nul_value);
          c.set("big", big_value);
        }
        return 0;
      })));
    }
    for (pid_t pid : pids) REQUIRE(children.wait(pid) == 0);
    for (int reopen = 0; reopen < 2; ++reopen) {
      CAPTURE(reopen);
      lilcache::Cache c = open_cache(dir);
      CHECK(c.stats().processes == 1);
      std::size_t expected = 4;
      for (int p = 0; p < 3; ++p) {
        for (int i = 0; i < 300; ++i) {
          std::string k = key_of(p, i);
          std::optional<std::string> want = final_value(p, i);
          std::optional<std::string> got = c.get(k);
          if (want) ++expected;
          if (got != want) {
            FAIL_CHECK("process ", p, " key ", i, ": want ", show(want, k), ", got ", show(got, k));
          }
        }
      }
      CHECK(c.get("empty") == std::string());
      CHECK(c.get(long_key) == std::string("long"));
      CHECK(c.get("nul") == nul_value);
      CHECK(c.get("big") == big_value);
      CHECK(c.size() == expected);
    }
  }

  TEST_CASE("the size limit one process sets applies to the writes of another") {
    // The parent opens the cache with max_bytes and only keeps it open; a
    // child that gives no limit writes twice the limit: its own background
    // compaction starts evicting, and its compact() brings the live data
    // under the cache's limit.
    TempDir dir;
    Children children;
    lilcache::Options o = options(dir.file("cache"));
    o.max_bytes = 100'000;
    lilcache::Cache limiter = lilcache::Cache::open(kName, o);
    pid_t child = children.add(fork_child([&] {
      lilcache::Cache c = open_cache(dir);
      CHILD_CHECK(c.stats().max_bytes == 100'000u);
      char key[16];
      for (int i = 0; i < 1000; ++i) {
        std::snprintf(key, sizeof key, "k%04d", i);
        c.set(key, std::string(155, 'v'));  // 200 bytes per record
      }
      // Its own background compaction evicts by the cache's limit...
      auto deadline = Clock::now() + 10s;
      while (c.stats().evictions == 0 && Clock::now() < deadline) {
        std::this_thread::sleep_for(10ms);
      }
      CHILD_CHECK(c.stats().evictions > 0u);
      // ... and so does its compact(), down to the limit.
      c.compact();
      lilcache::Stats st = c.stats();
      CHILD_CHECK(st.evictions >= 500u);
      CHILD_CHECK(st.bytes_live <= 100'000u);
      CHILD_CHECK(!c.get("k0000"));
      CHILD_CHECK(c.get("k0999").has_value());
      return 0;
    }));
    CHECK(children.wait(child) == 0);
    CHECK(limiter.stats().evictions >= 500);
  }

  TEST_CASE("a forked child can keep using its parent's Cache") {
    // The parent opens a Cache and forks; the child uses the same handle (from
    // two threads, and a grandchild from a fork of the child), then drops it.
    // The parent sees the child's writes and its pop, and keeps working; the
    // child's exit takes nothing of the parent's with it.
    TempDir dir;
    Children children;
    lilcache::Cache c = open_cache(dir);
    c.set("from-parent", make_value("from-parent", 1, 1, 100));
    c.set("to-pop", make_value("to-pop", 1, 2, 100));
    pid_t child = children.add(fork_child([&] {
      std::optional<std::string> got = c.get("from-parent");
      CHILD_CHECK(got == make_value("from-parent", 1, 1, 100), show(got, "from-parent"));
      got = c.pop("to-pop");
      CHILD_CHECK(got == make_value("to-pop", 1, 2, 100), show(got, "to-pop"));
      std::vector<std::thread> threads;
      for (int t = 0; t < 2; ++t) {
        threads.emplace_back([&, t] {
          for (int i = 0; i < 200; ++i) {
            std::string k = "child-" + std::to_string(t) + "-" + std::to_string(i);
            c.set(k, make_value(k, 2, static_cast<std::uint64_t>(i), 64));
          }
        });
      }
      for (auto& th : threads) th.join();
      pid_t grandchild = fork_child([&] {
        CHILD_CHECK(c.get("child-1-199") == make_value("child-1-199", 2, 199, 64));
        c.set("grandchild", make_value("grandchild", 3, 1, 50));
        return 0;
      });
      int st = wait_child(grandchild);
      CHILD_CHECK(st == 0, "grandchild exit status ", std::to_string(st));
      CHILD_CHECK(c.get("grandchild") == make_value("grandchild", 3, 1, 50));
      { lilcache::Cache dropped = std::move(c); }  // closes the child's handle
      return 0;
    }));
    REQUIRE(children.wait(child) == 0);
    for (int t = 0; t < 2; ++t) {
      for (int i = 0; i < 200; ++i) {
        std::string k = "child-" + std::to_string(t) + "-" + std::to_string(i);
        std::optional<std::string> got = c.get(k);
        if (got != make_value(k, 2, static_cast<std::uint64_t>(i), 64)) {
          FAIL_CHECK("child's write ", k, " not seen by the parent: ", show(got, k));
        }
      }
    }
    CHECK(c.get("grandchild") == make_value("grandchild", 3, 1, 50));
    CHECK(!c.get("to-pop").has_value());
    CHECK(c.get("from-parent") == make_value("from-parent", 1, 1, 100));
    // The parent's handle still works, and another process sees its writes
    // and counts exactly two openers (the parent and itself).
    for (int i = 0; i < 100; ++i) {
      std::string k = "after-fork-" + std::to_string(i);
      c.set(k, make_value(k, 1, static_cast<std::uint64_t>(i), 80));
    }
    pid_t other = children.add(fork_child([&] {
      lilcache::Cache mine = open_cache(dir);
      for (int i = 0; i < 100; ++i) {
        std::string k = "after-fork-" + std::to_string(i);
        CHILD_CHECK(mine.get(k) == make_value(k, 1, static_cast<std::uint64_t>(i), 80), k);
      }
      std::uint64_t n = mine.stats().processes;
      CHILD_CHECK(n == 2, "stats().processes = ", std::to_string(n));
      return 0;
    }));
    CHECK(children.wait(other) == 0);
    CHECK(c.size() == 1 + 400 + 1 + 100);
  }

  TEST_CASE(
      "stats() counts another process's gets once it closes its handle, and a fork child "
      "never counts its parent's unflushed ones") {
    // Counts are flushed from process memory into the process slot every 64
    // per thread stripe and at close; a fork child starts with none of its
    // parent's (the parent flushes those itself).
    TempDir dir;
    Children children;
    lilcache::Cache c = open_cache(dir);
    c.set("k", "v");
    for (int i = 0; i < 10; ++i) c.get("k");  // unflushed in the parent
    pid_t child = children.add(fork_child([&] {
      // The parent's handle: 64 gets, then dropped (closed) in the child.
      for (int i = 0; i < 64; ++i) CHILD_CHECK(c.get("k") == "v");
      { lilcache::Cache gone = std::move(c); }
      // A handle of its own: 100 gets, closed.
      lilcache::Cache mine = open_cache(dir);
      for (int i = 0; i < 100; ++i) CHILD_CHECK(mine.get("k") == "v");
      return 0;
    }));
    REQUIRE(children.wait(child) == 0);
    lilcache::Stats st = c.stats();
    CHECK(st.hits == 10u + 64u + 100u);
    CHECK(st.sets == 1u);
  }

  TEST_CASE("racing pops across processes hand out each value exactly once") {
    // Rounds: the parent sets 1000 keys, then 4 processes x 2 threads released
    // at once pop every key (each thread in its own order). Each key must be
    // popped exactly once overall, with its exact value, and be gone after.
    constexpr int kProcs = 4, kThreads = 2, kKeys = 1000;
    const double seconds = stress_seconds(3);
    TempDir dir;
    // The parent's handle is closed while the children are forked: its
    // background compaction thread (the index grows as the keys go in) may
    // be inside malloc at the fork, and ASan's allocator (clang 14) is not
    // fork-safe: the child then hangs in its first allocation. (glibc's
    // malloc is; the library supports fork of a threaded process, tested
    // elsewhere in this suite.)
    std::optional<lilcache::Cache> c(open_cache(dir));
    auto start = Clock::now();
    int round = 0;
    for (; round < 3 || seconds_since(start) < seconds; ++round) {
      CAPTURE(round);
      Children children;
      auto key = [&](int i) {
        return "q" + std::to_string(round) + std::string(1, '\0') + std::to_string(i);
      };
      if (!c) c.emplace(open_cache(dir));
      for (int i = 0; i < kKeys; ++i) {
        c->set(key(i), make_value(key(i), 1, static_cast<std::uint64_t>(round * kKeys + i),
                                  40 + static_cast<std::size_t>(i % 300)));
      }
      c.reset();
      StartGate gate;
      std::vector<pid_t> pids;
      for (int p = 0; p < kProcs; ++p) {
        pids.push_back(children.add(fork_child([&, p] {
          lilcache::Cache mine = open_cache(dir);
          gate.wait();
          ThreadFailures failures;
          std::vector<std::vector<int>> got(kThreads);
          std::vector<std::thread> threads;
          for (int t = 0; t < kThreads; ++t) {
            threads.emplace_back([&, t] {
              std::mt19937 rng(static_cast<unsigned>(p * kThreads + t));
              std::vector<int> order(kKeys);
              for (int i = 0; i < kKeys; ++i) order[static_cast<std::size_t>(i)] = i;
              if (t == 0) std::shuffle(order.begin(), order.end(), rng);
              if (t == 1 && p % 2 == 1) std::reverse(order.begin(), order.end());
              try {
                for (int i : order) {
                  std::optional<std::string> v = mine.pop(key(i));
                  if (!v) continue;
                  got[static_cast<std::size_t>(t)].push_back(i);
                  std::string k = key(i);
                  if (*v != make_value(k, 1, static_cast<std::uint64_t>(round * kKeys + i),
                                       40 + static_cast<std::size_t>(i % 300))) {
                    failures.add("pop of key " + std::to_string(i) + " returned " + show(v, k));
                  }
                }
              } catch (const std::exception& e) {
                failures.add(std::string("exception: ") + e.what());
              }
            });
          }
          for (auto& th : threads) th.join();
          FILE* f = std::fopen(dir.file("pops-" + std::to_string(p)).c_str(), "w");
          CHILD_CHECK(f != nullptr);
          for (const auto& v : got) {
            for (int i : v) std::fprintf(f, "%d\n", i);
          }
          CHILD_CHECK(std::fclose(f) == 0);
          return failures.report();
        })));
      }
      gate.open();
      for (pid_t pid : pids) REQUIRE(children.wait(pid) == 0);
      check_audit(dir);
      c.emplace(open_cache(dir));
      std::vector<int> count(kKeys, 0);
      for (int p = 0; p < kProcs; ++p) {
        std::string text = read_file(dir.file("pops-" + std::to_string(p)));
        std::size_t at = 0;
        while (at < text.size()) {
          std::size_t nl = text.find('\n', at);
          REQUIRE(nl != std::string::npos);
          int i = std::stoi(text.substr(at, nl - at));
          REQUIRE((i >= 0 && i < kKeys));
          ++count[static_cast<std::size_t>(i)];
          at = nl + 1;
        }
      }
      int wrong = 0;
      for (int i = 0; i < kKeys; ++i) {
        if (count[static_cast<std::size_t>(i)] != 1) {
          if (wrong++ < 10)
            FAIL_CHECK("key ", i, " was popped ", count[static_cast<std::size_t>(i)], " times");
        }
        if (c->contains(key(i))) FAIL_CHECK("key ", i, " is still there after every pop");
      }
      REQUIRE(wrong == 0);
    }
    CHECK(c->size() == 0);
    MESSAGE(round, " rounds of ", kKeys, " keys");
  }

  TEST_CASE(
      "sets racing pops in 4 processes leave an index that a replay of the log agrees "
      "with") {
    // Rounds: 4 processes x 2 threads released at once walk the same fresh
    // keys in the same order, each doing a set or a pop of each key (so they
    // collide on it). A pop whose CAS fails because a set got in first must
    // draw a newer tombstone, never install its older one over the newer
    // value: the index would say "absent" while a replay of the log brings
    // the value back. After each round: the audit (lib/audit.h); then the
    // keys are read, a replay is forced (needs_rebuild, opened alone) and
    // every key must read the same.
    constexpr int kProcs = 4, kThreads = 2, kKeys = 2000;
    const double seconds = stress_seconds(3);
    TempDir dir;
    auto start = Clock::now();
    int round = 0;
    std::uint64_t present = 0;
    for (; round < 3 || seconds_since(start) < seconds; ++round) {
      CAPTURE(round);
      auto key = [&](int i) { return "r" + std::to_string(round) + "-" + std::to_string(i); };
      {
        lilcache::Cache c = open_cache(dir);
        for (int i = 0; i < kKeys; ++i) c.set(key(i), make_value(key(i), 99, 0, 40));
      }
      Children children;
      StartGate gate;
      std::vector<pid_t> pids;
      for (int p = 0; p < kProcs; ++p) {
        pids.push_back(children.add(fork_child([&, p] {
          lilcache::Cache mine = open_cache(dir);
          gate.wait();
          std::vector<std::thread> threads;
          for (int t = 0; t < kThreads; ++t) {
            threads.emplace_back([&, t] {
              const auto me = static_cast<std::uint32_t>(p * kThreads + t + 1);
              std::mt19937 rng(static_cast<unsigned>(round * 100 + p * kThreads + t));
              for (int i = 0; i < kKeys; ++i) {
                if (rng() % 2 == 0) {
                  mine.set(key(i), make_value(key(i), me, static_cast<std::uint64_t>(i), 40));
                } else {
                  mine.pop(key(i));
                }
              }
            });
          }
          for (auto& th : threads) th.join();
          return 0;
        })));
      }
      gate.open();
      for (pid_t pid : pids) REQUIRE(children.wait(pid) == 0);
      check_audit(dir);
      std::vector<std::optional<std::string>> before;
      {
        lilcache::Cache c = open_cache(dir);
        for (int i = 0; i < kKeys; ++i) before.push_back(c.get(key(i)));
      }
      force_replay(dir.file("cache"), kName);
      lilcache::Cache c = open_cache(dir);  // alone: replays the log
      int differ = 0;
      for (int i = 0; i < kKeys; ++i) {
        std::optional<std::string> now = c.get(key(i));
        const auto& was = before[static_cast<std::size_t>(i)];
        present += was ? 1 : 0;
        if (now != was && differ++ < 10) {
          FAIL_CHECK("key ", i, ": ", show(was, key(i)), " before the replay, ", show(now, key(i)),
                     " after");
        }
      }
      REQUIRE(differ == 0);
    }
    MESSAGE(round, " rounds of ", kKeys, " keys (", present,
            " present at the end) read the same after a replay");
  }

  TEST_CASE("the log grows while several processes write") {
    // 4 processes each set 170 values of ~100 KiB (about 68 MiB in all, so the
    // log grows many times) while reading each other's keys; every value read
    // must be intact. Afterwards every value is there, exactly.
    constexpr int kProcs = 4, kValues = 170;
    TempDir dir;
    Children children;
    StartGate gate;
    auto key = [](int p, int i) { return "g" + std::to_string(p) + "-" + std::to_string(i); };
    auto length = [](int p, int i) {
      return std::size_t{100 * 1024} + static_cast<std::size_t>((p * 131 + i * 977) % 4096);
    };
    std::vector<pid_t> pids;
    for (int p = 0; p < kProcs; ++p) {
      pids.push_back(children.add(fork_child([&, p] {
        lilcache::Cache c = open_cache(dir);
        gate.wait();
        std::mt19937 rng(static_cast<unsigned>(p));
        std::size_t seen = 0;
        for (int i = 0; i < kValues; ++i) {
          std::string k = key(p, i);
          c.set(k, make_value(k, static_cast<std::uint32_t>(p + 1), static_cast<std::uint64_t>(i),
                              length(p, i)));
          for (int r = 0; r < 3; ++r) {
            int q = static_cast<int>(rng() % kProcs), j = static_cast<int>(rng() % kValues);
            std::string other = key(q, j);
            std::optional<std::string> v = c.get(other);
            if (!v) continue;
            ++seen;
            CHILD_CHECK(*v == make_value(other, static_cast<std::uint32_t>(q + 1),
                                         static_cast<std::uint64_t>(j), length(q, j)),
                        "read of ", other, ": ", show(v, other));
          }
        }
        for (int i = 0; i < kValues; ++i) {
          std::string k = key(p, i);
          CHILD_CHECK(c.get(k) == make_value(k, static_cast<std::uint32_t>(p + 1),
                                             static_cast<std::uint64_t>(i), length(p, i)),
                      k);
        }
        return 0;
      })));
    }
    gate.open();
    for (pid_t pid : pids) CHECK(children.wait(pid, std::chrono::seconds(120)) == 0);
    check_audit(dir);
    lilcache::Cache c = open_cache(dir);
    int bad = 0;
    for (int p = 0; p < kProcs; ++p) {
      for (int i = 0; i < kValues; ++i) {
        std::string k = key(p, i);
        std::optional<std::string> v = c.get(k);
        if (v != make_value(k, static_cast<std::uint32_t>(p + 1), static_cast<std::uint64_t>(i),
                            length(p, i)) &&
            bad++ < 10) {
          FAIL_CHECK(k, ": ", show(v, k));
        }
      }
    }
    CHECK(bad == 0);
    CHECK(c.size() == static_cast<std::size_t>(kProcs * kValues));
    lilcache::Stats st = c.stats();
    MESSAGE("log: ", st.bytes_file / (1024 * 1024), " MiB appended, generation ", st.generation);
  }
}
