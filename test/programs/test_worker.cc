// lilcache-test-worker: a real, exec'd process that the process suites
// (crash_test, multiprocess_test) run and SIGKILL at random moments.
//
//   lilcache-test-worker ROOT NAME MODE ID [--option=value]...
//
// Opens the cache NAME under ROOT and works on it as writer ID until it has
// done --count operations or the --stop file exists, then exits 0. After each
// operation returns it appends an AckRecord (test_util.h) to the --ack file
// with one write(2) on an O_APPEND descriptor, so that the parent knows
// exactly which operations were acknowledged before a kill.
//
// Modes:
//   writer      set(writer_key(ID, n % keys), make_value(key, ID, n, len)) for
//               n = 0, 1, ...; ack kSet. Now and then reads back one of its
//               own acknowledged keys and checks it is exactly the last value
//               acknowledged for it.
//   big-writer  writer with large values (default 64 KiB .. 512 KiB, 4 keys):
//               makes the log grow often, so that kills land mid-growth.
//   compactor   writer (16 keys) that also calls Cache::compact() after every
//               --compact-every sets (default 10): killed, it dies mid-
//               compaction, mid-switch, mid-rename.
//   popper      on the shared keys "p\0<i>" (i < keys): at random either
//               set a value of its own (ack kSharedSet) or pop (ack kPop with
//               the popped value's writer and seq). Checks every popped value.
//   reader      never writes: for_each over the whole cache and get of
//               shared keys, checking that every value read is intact (every
//               value in the cache must be a make_value of its key).
//   incrementer --threads threads call increment(counter_key(k), 1) on the
//               keys k < --keys (2/3 of the calls on key 0), recording each
//               call on the --board (increment_board.h) as caller
//               ID * threads + thread: started before, acknowledged and the
//               value returned after. Checks that the values returned to a
//               thread for one key go strictly up.
//
// Options:
//   --ack=PATH       ack file (created; required for writer and popper)
//   --stop=PATH      stop (exit 0) once this file exists
//   --count=N        stop after N operations (0 = only on --stop; default 0)
//   --keys=K         key slots (writer default 64, big-writer 4, popper 32)
//   --min=B --max=B  value length range (at least 32)
//   --snapshot=DUR   Options::snapshot of this handle (default none)
//   --seed=S         random seed (default: from the pid)
//   --pace-us=U      sleep U microseconds between operations (pacing only)
//   --compact-every=N  writer modes: Cache::compact() after every N sets
//   --board=PATH     incrementer: the board file (created by the test)
//   --threads=T      incrementer: threads (default 2); --count is per thread
//
// Exit status: 0 done, 2 bad usage, 3 a check failed (torn value, lost or
// stale own write), 4 lilcache::Error, 5 other error. Messages go to stderr.
#include <execinfo.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "lilcache/lilcache.h"
#include "support/increment_board.h"
#include "support/test_util.h"

namespace {

using lilcache::test::AckKind;
using lilcache::test::AckRecord;
using Clock = std::chrono::steady_clock;

struct CheckFailed : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Args {
  std::string root, name, mode;
  std::uint32_t id = 0;
  std::string ack, stop, snapshot;
  std::uint64_t count = 0;
  std::uint64_t keys = 0;
  std::size_t min = 0, max = 0;
  std::uint64_t seed = 0;
  std::uint64_t pace_us = 0;
  std::uint64_t compact_every = 0;
  std::string board;
  std::uint64_t threads = 2;
};

std::uint64_t parse_u64(const std::string& what, const std::string& s) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || errno != 0) throw UsageError("bad " + what + ": " + s);
  return v;
}

Args parse_args(int argc, char** argv) {
  if (argc < 5) throw UsageError("usage: lilcache-test-worker ROOT NAME MODE ID [--opt=value]...");
  Args a;
  a.root = argv[1];
  a.name = argv[2];
  a.mode = argv[3];
  a.id = static_cast<std::uint32_t>(parse_u64("ID", argv[4]));
  a.seed = static_cast<std::uint64_t>(getpid()) * 0x9e3779b97f4a7c15ull ^
           static_cast<std::uint64_t>(Clock::now().time_since_epoch().count());
  for (int i = 5; i < argc; ++i) {
    std::string arg = argv[i];
    auto eq = arg.find('=');
    if (arg.rfind("--", 0) != 0 || eq == std::string::npos) throw UsageError("bad option " + arg);
    std::string k = arg.substr(2, eq - 2), v = arg.substr(eq + 1);
    if (k == "ack") {
      a.ack = v;
    } else if (k == "stop") {
      a.stop = v;
    } else if (k == "snapshot") {
      a.snapshot = v;
    } else if (k == "count") {
      a.count = parse_u64(k, v);
    } else if (k == "keys") {
      a.keys = parse_u64(k, v);
    } else if (k == "min") {
      a.min = parse_u64(k, v);
    } else if (k == "max") {
      a.max = parse_u64(k, v);
    } else if (k == "seed") {
      a.seed = parse_u64(k, v);
    } else if (k == "pace-us") {
      a.pace_us = parse_u64(k, v);
    } else if (k == "compact-every") {
      a.compact_every = parse_u64(k, v);
    } else if (k == "board") {
      a.board = v;
    } else if (k == "threads") {
      a.threads = parse_u64(k, v);
    } else {
      throw UsageError("unknown option " + arg);
    }
  }
  bool big = a.mode == "big-writer";
  if (a.mode == "compactor" && a.compact_every == 0) a.compact_every = 10;
  if (a.mode == "writer" || big || a.mode == "compactor" || a.mode == "popper") {
    if (a.ack.empty()) throw UsageError(a.mode + " needs --ack");
  } else if (a.mode == "incrementer") {
    using lilcache::test::IncrementBoard;
    if (a.board.empty()) throw UsageError("incrementer needs --board");
    if (a.keys == 0) a.keys = 3;
    if (a.keys > IncrementBoard::kMaxKeys || a.threads == 0 ||
        (a.id + 1) * a.threads > IncrementBoard::kMaxCallers) {
      throw UsageError("incrementer: too many keys, threads or a too large ID for the board");
    }
  } else if (a.mode != "reader") {
    throw UsageError("unknown mode " + a.mode);
  }
  if (a.keys == 0) a.keys = big ? 4 : a.mode == "popper" ? 32 : a.mode == "compactor" ? 16 : 64;
  if (a.min == 0) a.min = big ? 64 * 1024 : 32;
  if (a.max == 0) a.max = big ? 512 * 1024 : 600;
  if (a.min < lilcache::test::kValueHeader) a.min = lilcache::test::kValueHeader;
  if (a.max < a.min) a.max = a.min;
  return a;
}

class Worker {
 public:
  explicit Worker(Args args) : a_(std::move(args)), rng_(a_.seed) {
    if (!a_.ack.empty()) {
      ack_fd_ = ::open(a_.ack.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      if (ack_fd_ < 0) throw std::runtime_error("open " + a_.ack + ": " + std::strerror(errno));
    }
  }

  int run() {
    auto t0 = Clock::now();
    lilcache::Options o;
    o.root = a_.root;
    o.snapshot = a_.snapshot;
    lilcache::Cache cache = lilcache::Cache::open(a_.name, o);
    ack(AckKind::kOpen, a_.id, 0, 0, Clock::now() - t0);
    if (a_.mode == "writer" || a_.mode == "big-writer" || a_.mode == "compactor") {
      writer(cache);
    } else if (a_.mode == "popper") {
      popper(cache);
    } else if (a_.mode == "incrementer") {
      incrementer(cache);
    } else {
      reader(cache);
    }
    ack(AckKind::kDone, a_.id, 0, 0, max_latency_);
    return 0;
  }

 private:
  bool should_stop(std::uint64_t done) const {
    if (a_.pace_us != 0 && done != 0) {
      std::this_thread::sleep_for(std::chrono::microseconds(a_.pace_us));
    }
    if (a_.count != 0 && done >= a_.count) return true;
    return !a_.stop.empty() && ::access(a_.stop.c_str(), F_OK) == 0;
  }

  std::size_t random_length() {
    return std::uniform_int_distribution<std::size_t>(a_.min, a_.max)(rng_);
  }

  void ack(AckKind kind, std::uint32_t writer, std::uint32_t length, std::uint64_t seq,
           Clock::duration latency) {
    if (ack_fd_ < 0) return;
    AckRecord r;
    r.kind = kind;
    r.writer = writer;
    r.length = length;
    r.seq = seq;
    r.latency_ns = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(latency).count());
    if (::write(ack_fd_, &r, sizeof r) != static_cast<ssize_t>(sizeof r)) {
      throw std::runtime_error(std::string("write ack: ") + std::strerror(errno));
    }
  }

  void note_latency(Clock::duration d) {
    if (d > max_latency_) max_latency_ = d;
  }

  void writer(lilcache::Cache& cache) {
    struct Acked {
      std::uint64_t seq;
      std::size_t length;
    };
    std::map<std::uint64_t, Acked> acked;  // slot -> last acknowledged write
    for (std::uint64_t n = 0; !should_stop(n); ++n) {
      std::uint64_t slot = n % a_.keys;
      std::string key = lilcache::test::writer_key(a_.id, slot);
      std::size_t len = random_length();
      std::string value = lilcache::test::make_value(key, a_.id, n, len);
      auto t0 = Clock::now();
      cache.set(key, value);
      auto d = Clock::now() - t0;
      note_latency(d);
      ack(AckKind::kSet, a_.id, static_cast<std::uint32_t>(len), n, d);
      acked[slot] = Acked{n, len};
      if (a_.compact_every != 0 && (n + 1) % a_.compact_every == 0) cache.compact();
      if (rng_() % 4 == 0) {
        auto it = acked.begin();
        std::advance(it, static_cast<long>(rng_() % acked.size()));
        std::string k = lilcache::test::writer_key(a_.id, it->first);
        auto t1 = Clock::now();
        std::optional<std::string> got = cache.get(k);
        note_latency(Clock::now() - t1);
        if (!got) {
          throw CheckFailed("get of own key slot " + std::to_string(it->first) +
                            " missed; last set seq " + std::to_string(it->second.seq));
        }
        if (*got != lilcache::test::make_value(k, a_.id, it->second.seq, it->second.length)) {
          std::string why = "intact";
          auto info = lilcache::test::check_value(k, *got, &why);
          throw CheckFailed(
              "get of own key slot " + std::to_string(it->first) +
              " returned a value other than the last set (seq " + std::to_string(it->second.seq) +
              "): " +
              (info ? "writer " + std::to_string(info->writer) + " seq " + std::to_string(info->seq)
                    : why));
        }
      }
    }
  }

  void popper(lilcache::Cache& cache) {
    std::uint64_t sets = 0;
    for (std::uint64_t op = 0; !should_stop(op); ++op) {
      std::string key = std::string("p\0", 2) + std::to_string(rng_() % a_.keys);
      if (rng_() % 2 == 0) {
        std::size_t len = random_length();
        std::string value = lilcache::test::make_value(key, a_.id, sets, len);
        auto t0 = Clock::now();
        cache.set(key, value);
        auto d = Clock::now() - t0;
        note_latency(d);
        ack(AckKind::kSharedSet, a_.id, static_cast<std::uint32_t>(len), sets, d);
        ++sets;
      } else {
        auto t0 = Clock::now();
        std::optional<std::string> got = cache.pop(key);
        auto d = Clock::now() - t0;
        note_latency(d);
        if (!got) continue;
        std::string why;
        auto info = lilcache::test::check_value(key, *got, &why);
        if (!info) throw CheckFailed("pop returned a bad value: " + why);
        ack(AckKind::kPop, info->writer, info->length, info->seq, d);
      }
    }
  }

  void reader(lilcache::Cache& cache) {
    for (std::uint64_t pass = 0; !should_stop(pass); ++pass) {
      std::string bad;
      cache.for_each([&](std::string_view k, std::string_view v) {
        std::string why;
        if (!lilcache::test::check_value(k, v, &why)) {
          bad = "for_each: " + why;
          return false;
        }
        return true;
      });
      if (!bad.empty()) throw CheckFailed(bad);
      for (int i = 0; i < 64; ++i) {
        std::string key = std::string("p\0", 2) + std::to_string(rng_() % 32);
        auto t0 = Clock::now();
        std::optional<std::string> got = cache.get(key);
        note_latency(Clock::now() - t0);
        std::string why;
        if (got && !lilcache::test::check_value(key, *got, &why)) {
          throw CheckFailed("get: " + why);
        }
      }
    }
  }

  void incrementer(lilcache::Cache& cache) {
    using lilcache::test::IncrementBoard;
    IncrementBoard* board = lilcache::test::map_board(a_.board, /*create=*/false);
    std::mutex mu;
    std::exception_ptr failed;
    std::vector<std::thread> threads;
    for (std::uint64_t t = 0; t < a_.threads; ++t) {
      threads.emplace_back([&, t] {
        IncrementBoard::Caller& me = board->callers[a_.id * a_.threads + t];
        std::mt19937_64 rng(a_.seed + t);
        std::int64_t last[IncrementBoard::kMaxKeys] = {};
        try {
          for (std::uint64_t n = 0; !should_stop(n); ++n) {
            {
              std::lock_guard<std::mutex> g(mu);
              if (failed) return;
            }
            const auto k = static_cast<std::uint32_t>(rng() % 2 == 0 ? 0 : rng() % a_.keys);
            me.started[k].fetch_add(1);
            auto t0 = Clock::now();
            const std::int64_t v = cache.increment(lilcache::test::counter_key(k), 1);
            auto d = Clock::now() - t0;
            me.acked[k].fetch_add(1);
            if (v <= last[k]) {
              throw CheckFailed("increment of key " + std::to_string(k) + " returned " +
                                std::to_string(v) + " after returning " + std::to_string(last[k]) +
                                " to this thread");
            }
            last[k] = v;
            if (static_cast<std::uint64_t>(v) < IncrementBoard::kSeenBits) {
              const std::uint64_t bit = 1ull << (v % 64);
              if ((board->seen[k][v / 64].fetch_or(bit) & bit) != 0) board->duplicates.fetch_add(1);
            } else {
              board->unchecked.fetch_add(1);
            }
            std::lock_guard<std::mutex> g(mu);
            note_latency(d);
          }
        } catch (...) {
          std::lock_guard<std::mutex> g(mu);
          if (!failed) failed = std::current_exception();
        }
      });
    }
    for (auto& th : threads) th.join();
    lilcache::test::unmap_board(board);
    if (failed) std::rethrow_exception(failed);
  }

  Args a_;
  std::mt19937_64 rng_;
  int ack_fd_ = -1;
  Clock::duration max_latency_{0};
};

// On a crash (SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL) prints who crashed
// and a backtrace to stderr (resolve with `addr2line -Cfe lilcache-test-worker
// +OFFSET`), then dies of the same signal so the parent sees 128+signal.
char g_crash_banner[256] = "lilcache-test-worker: fatal signal\n";

void on_crash(int sig) {
  ssize_t ignored = ::write(2, g_crash_banner, std::strlen(g_crash_banner));
  void* frames[64];
  int n = backtrace(frames, 64);
  backtrace_symbols_fd(frames, n, 2);
  (void)ignored;
  signal(sig, SIG_DFL);
  raise(sig);
}

void install_crash_handler(const std::string& who) {
  std::snprintf(g_crash_banner, sizeof g_crash_banner,
                "%s: FATAL SIGNAL (library crash), backtrace:\n", who.c_str());
  void* warm[1];
  backtrace(warm, 1);  // loads libgcc now, not in the handler
  for (int sig : {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL}) signal(sig, on_crash);
}

}  // namespace

int main(int argc, char** argv) {
  std::string who = "lilcache-test-worker";
  try {
    Args args = parse_args(argc, argv);
    who +=
        " " + args.mode + " " + std::to_string(args.id) + " (pid " + std::to_string(getpid()) + ")";
    install_crash_handler(who);
    return Worker(std::move(args)).run();
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s: %s\n", who.c_str(), e.what());
    return 2;
  } catch (const CheckFailed& e) {
    std::fprintf(stderr, "%s: CHECK FAILED: %s\n", who.c_str(), e.what());
    return 3;
  } catch (const lilcache::Error& e) {
    std::fprintf(stderr, "%s: lilcache::Error: %s\n", who.c_str(), e.what());
    return 4;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", who.c_str(), e.what());
    return 5;
  }
}
