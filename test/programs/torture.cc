// lilcache-torture: crash torture at scale. N worker processes x M threads
// do random set / TTL set / get / pop / erase / purge / compact / snapshot on
// one cache (periodic snapshots on, automatic compaction on) while this
// supervisor SIGKILLs a random worker every --kill-interval-ms (and, now and
// then, all of them at once) and restarts it. At the end it stops the
// workers, reopens the cache alone and verifies:
//
//  * 0 acknowledged writes lost. Each worker thread owns a key space (slots
//    "o<writer>\0<slot>") that only it writes, across its incarnations, and
//    keeps the last acknowledged state of each slot in a journal file it
//    maps MAP_SHARED (it survives the SIGKILL in the page cache): the slot's
//    value is then exactly known, up to purges that may have run after it,
//    TTLs that may have passed, and the one operation the thread had in
//    flight when it was killed (either outcome). A restarted thread first
//    reads that slot and records which outcome it sees; the other outcome
//    must never show up later (a dead process's write appearing, or its pop
//    removing a value, after the fact).
//  * 0 torn values: every value is self-checking (make_value); every read
//    is checked, live and at the end. Counter keys hold decimal integers.
//  * counters never go backwards: the threads increment counter keys
//    "c\0<i>" (increment(), or a get_versioned/compare_and_set loop that
//    adds 1, or add() of "1" when absent) and read them; nothing else writes
//    them. Between two observations of a counter by one thread with no purge
//    that may have run in between, the value never decreases, and the
//    thread's own acknowledged increment is counted (the value it returns
//    exceeds the one the thread saw before): an increment lost to a
//    compaction, a recovery or a racing writer's kill shows up.
//  * the conditional writes of issue 14 on the shared keys (add,
//    get_versioned + compare_and_set, compare_and_erase, touch, persist,
//    ttl), get_or_set on keys "g\0<i>" and batches (get_many, set_many,
//    erase_many) run under the same kills, compactions and audits (an
//    aborted record, ABORTED in the log, must never be published or
//    replayed); what they return is checked (values intact, a ttl within
//    the one given, an erase by compare_and_erase journaled like a pop: a
//    value is removed at most once, by a pop or a compare_and_erase).
//  * pop hands out each value at most once: the threads also set and pop
//    values on shared keys "s\0<i>" and journal every value they pop; no
//    value is popped twice and no popped value is in the cache at the end.
//  * 0 failed opens, 0 worker crashes, 0 Errors from operations.
//  * every worker that exits cleanly has released every descriptor and
//    mapping of the cache (/proc/self/fd and /proc/self/maps before the open
//    and after closing).
//  * fork children (--fork-interval-ms): thread 0 of each worker forks now
//    and then a child that stays idle (and often outlives its parent's
//    SIGKILL), one that destroys its inherited handle and exits at once, or
//    one that uses the inherited handle (set/get/pop on the shared keys,
//    counted and journaled like the workers' ops). Each must end in time
//    and cleanly; no lock of the cache may outlive a dead parent in a child
//    (a watchdog fails the run when no operation completes for 20 s).
//  * the full-disk phase (--disk-mib; needs root): the cache lives on a
//    small tmpfs; mid-run a filler file holds it full for a while (no kills
//    then): writes are refused with an Error (ENOSPC), not acknowledged, and
//    must not take effect; reads go on; after the filler is deleted, writes
//    must be acknowledged again. Skipped, with a message, if the tmpfs
//    cannot be mounted.
//  * the index agrees with the log (lib/audit.h): the last part of the run
//    (the calm phase) has no kills and begins with a compaction (whose
//    generation holds no record of a killed writer); then, every 300 ms,
//    every worker thread parks between operations and the live generation
//    is audited; once more after the run.
//
// Prints one summary line (kills, operations, verified counts); exit status
// 0 if every check passed, 1 if one failed (details on stderr), 2 bad usage.
//
//   lilcache-torture --processes 4 --threads 4 --seconds 600 --kill-interval-ms 300
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "inspect/audit.h"
#include "lilcache/env.h"
#include "lilcache/lilcache.h"
#include "support/test_util.h"

namespace {

namespace fs = std::filesystem;
using lilcache::test::check_value;
using lilcache::test::make_value;

constexpr const char* kName = "torture";
constexpr std::uint32_t kMaxProcesses = 64;
constexpr std::uint32_t kMaxThreads = 64;
constexpr std::uint32_t kMaxSlots = 1024;
constexpr std::uint32_t kMaxFailures = 64;
constexpr std::uint32_t kMaxForkChildren = 256;      // alive at once, all workers
constexpr std::uint32_t kMaxIdleChildren = 1;        // per worker process
constexpr std::uint32_t kForkWriterBase = 1u << 20;  // writer ids of fork children
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LILCACHE_TORTURE_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(LILCACHE_TORTURE_ASAN)
// ASan's allocator (clang 14) is not fork-safe: a child of a process with
// threads may hang in its first allocation. Under ASan, fork children stay
// idle (they allocate nothing).
constexpr bool kIdleChildrenOnly = true;
#else
constexpr bool kIdleChildrenOnly = false;
#endif

struct Config {
  std::uint32_t processes = 4;
  std::uint32_t threads = 4;
  double seconds = 60;
  std::uint32_t kill_interval_ms = 300;
  std::uint32_t mass_kill_every = 25;  // every Nth kill kills every worker at once
  std::uint32_t slots = 64;            // own key slots per thread
  std::uint32_t shared_keys = 32;
  std::uint32_t counter_keys = 8;  // incremented by every thread
  std::string root;
  bool keep = false;
  std::uint64_t seed = 0;
  std::uint32_t fork_interval_ms = 300;  // thread 0 of each worker forks a child (0 = never)
  std::uint32_t disk_mib = 256;          // tmpfs of the cache for the full-disk phase (0 = none)
  double full_seconds = 0;               // length of the full-disk phase (0 = auto)
  double calm_seconds = 0;               // final phase without kills, then the audit (0 = auto)
};

std::uint64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull +
         static_cast<std::uint64_t>(ts.tv_nsec);
}
std::uint64_t wall_ms() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000 +
         static_cast<std::uint64_t>(ts.tv_nsec) / 1'000'000;
}

template <typename T>
std::atomic_ref<T> A(T& x) {
  return std::atomic_ref<T>(x);
}

// ---- The control page: shared by the supervisor and every worker ------------

enum Counter {
  kOps,
  kSets,
  kTtlSets,
  kOwnGets,
  kOwnPops,
  kErases,
  kSharedSets,
  kSharedGets,
  kSharedPops,
  kSharedPopHits,
  kPurges,
  kCompactions,
  kSnapshots,
  kForEach,
  kOpens,
  kResolvedInDoubt,
  kInDoubtTookEffect,
  kInDoubtDidNot,
  kForkIdle,
  kForkExit,
  kForkUse,
  kForkOps,
  kNoSpace,
  kNoSpaceOutside,
  kGetsWhileFull,
  kSetsWhileFull,
  kIncrements,
  kCounterCas,
  kCounterCasWins,
  kCounterGets,
  kAdds,
  kAddWins,
  kSharedCas,
  kSharedCasWins,
  kSharedCaeWins,
  kTouches,
  kTtls,
  kGetOrSets,
  kBatchGets,
  kBatchSets,
  kBatchErases,
  kNumCounters
};

enum Failure {
  kLost,
  kTorn,
  kWrong,
  kResurrected,
  kPoppedTwice,
  kPoppedBack,
  kOpenFailed,
  kOpError,
  kLeak,
  kCrash,
  kHung,
  kAudit,
  kNumFailures
};
constexpr const char* kFailureNames[kNumFailures] = {
    "lost",         "torn",      "wrong", "resurrected", "popped twice", "popped back",
    "failed opens", "op errors", "leaks", "crashes",     "hung",         "audit violations"};

struct ProcessState {
  std::uint64_t pid;
  std::uint64_t exit_requested;  // atomic: finish and exit cleanly
  std::uint64_t incarnation;
  std::uint64_t purges_in_flight;  // atomic
  std::uint64_t clean_exits;       // by the supervisor
  std::uint64_t idle_children;     // atomic: idle fork children alive, of every incarnation
};

struct Control {
  std::uint64_t stop;  // atomic: 1 = workers finish their op and exit
  std::uint64_t purge_started, purge_ok, purge_resolved;  // atomic
  std::uint64_t counters[kNumCounters];                   // atomic
  std::uint64_t failures[kNumFailures];                   // atomic
  std::uint64_t messages;                                 // atomic: next message slot
  char message[kMaxFailures][1024];
  ProcessState procs[kMaxProcesses];
  // Fork children alive: 0 = free, 1 = claimed by a forking thread, else the
  // child's pid (stored by the child, cleared by it just before it exits).
  std::uint64_t fork_children[kMaxForkChildren];  // atomic
  std::uint64_t fork_seq;                         // atomic: seqs of fork children's values
  std::uint64_t disk_full;  // atomic: 1 while the full-disk phase holds the disk full
  // The calm phase's audits: while `pause` is 1, worker threads park between
  // operations (`paused` counts them): no write is in flight.
  std::uint64_t pause;   // atomic
  std::uint64_t paused;  // atomic
};

Control* g_control = nullptr;

void count(Counter c, std::uint64_t n = 1) {
  A(g_control->counters[c]).fetch_add(n, std::memory_order_relaxed);
}

// Records a failure; the first kMaxFailures messages are kept for the report.
void fail(Failure f, const std::string& what) {
  A(g_control->failures[f]).fetch_add(1, std::memory_order_relaxed);
  std::uint64_t i = A(g_control->messages).fetch_add(1, std::memory_order_relaxed);
  std::string line = std::string(kFailureNames[f]) + ": " + what;
  if (i < kMaxFailures) {
    std::snprintf(g_control->message[i], sizeof g_control->message[i], "%s", line.c_str());
  }
  std::fprintf(stderr, "lilcache-torture[%d]: %s\n", getpid(), line.c_str());
}

bool disk_full() { return A(g_control->disk_full).load(std::memory_order_relaxed) != 0; }

// An Error of a write refused because the disk is full (no_space, from the
// growth of the log or a compaction's new files): not acknowledged, so not
// a failure; counted.
bool no_space(const lilcache::Error& e) {
  if (e.code() != lilcache::ErrorCode::no_space) return false;
  count(kNoSpace);
  if (!disk_full()) count(kNoSpaceOutside);
  return true;
}

// purge_ok + purge_resolved: purges that can no longer take effect later.
std::uint64_t purges_done() {
  return A(g_control->purge_ok).load(std::memory_order_seq_cst) +
         A(g_control->purge_resolved).load(std::memory_order_seq_cst);
}
std::uint64_t purges_started() {
  return A(g_control->purge_started).load(std::memory_order_seq_cst);
}

// ---- The journal of one worker thread (one file per (process, thread)) ------

enum class SlotState : std::uint32_t { kAbsent = 0, kSet = 1 };

// What an own slot holds after an acknowledged (or observed) operation.
struct Entry {
  SlotState state;
  std::uint32_t len;
  std::uint64_t seq;
  std::uint64_t ttl_ms;          // 0 = none
  std::uint64_t invoke_wall_ms;  // of the set that stored the value (TTL window)
  std::uint64_t ack_wall_ms;
  std::uint64_t purges_done_before;    // purges_done() before the op began
  std::uint64_t purges_started_after;  // purges_started() after it returned
  // A killed incarnation's op on this slot that was then observed NOT to
  // have taken effect: it must never take effect later. 0 = none.
  std::uint64_t ghost_seq;
  std::uint32_t ghost_len;
  std::uint32_t ghost_is_pop;  // 1: a pop/erase (the value must not vanish)
  std::uint64_t ghost_seen_ns;
};

// The journal's state machine. kInvoked: the op described by inflight_* is
// being called (its outcome is in doubt if the process dies now). kCommit:
// pending_entry is being copied to entries[pending_slot] (copied again by
// whoever finds this state, so a kill mid-copy tears nothing).
enum class InFlight : std::uint64_t { kIdle = 0, kInvoked = 1, kCommit = 3 };
constexpr std::uint64_t kUnknownYet = ~0ull;  // an Entry field of an op that has not returned
enum class OpKind : std::uint32_t { kSet = 1, kPop = 2, kErase = 3 };

struct Journal {
  std::uint64_t magic;
  std::uint64_t next_seq;  // of this writer's values, never reused
  std::uint64_t inflight;  // atomic InFlight
  std::uint32_t inflight_slot;
  OpKind inflight_kind;
  std::uint64_t inflight_invoke_ns;
  Entry inflight_entry;  // the slot's state if the op takes effect
  std::uint32_t pending_slot;
  std::uint32_t pad;
  Entry pending_entry;
  Entry entries[kMaxSlots];
};
constexpr std::uint64_t kJournalMagic = 0x4c4e524a54524f54ull;

// Maps `path` (created zeroed if missing) MAP_SHARED; never unmapped.
template <typename T>
T* map_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("open " + path + ": " + std::strerror(errno));
  if (::ftruncate(fd, sizeof(T)) != 0) throw std::runtime_error("ftruncate " + path);
  void* p = mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) throw std::runtime_error("mmap " + path);
  return static_cast<T*>(p);
}

std::uint32_t writer_id(std::uint32_t p, std::uint32_t t) { return p * kMaxThreads + t + 1; }
std::string own_key(std::uint32_t writer, std::uint32_t slot) {
  return "o" + std::to_string(writer) + std::string("\0", 1) + std::to_string(slot);
}
std::string shared_key(std::uint32_t i) { return std::string("s\0", 2) + std::to_string(i); }
std::string counter_key(std::uint32_t i) { return std::string("c\0", 2) + std::to_string(i); }
std::string get_or_set_key(std::uint32_t i) { return std::string("g\0", 2) + std::to_string(i); }
bool is_counter_key(std::string_view k) {
  return k.size() > 2 && k.substr(0, 2) == std::string_view("c\0", 2);
}

// The decimal int64 a counter key holds (increment()'s format), or nullopt.
std::optional<std::int64_t> parse_counter(std::string_view v) {
  std::int64_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || end != v.data() + v.size() || v.empty()) return std::nullopt;
  return n;
}

// Any live key's value: a counter's integer, or else an intact make_value.
bool check_any(std::string_view key, std::string_view v, std::string* why) {
  if (!is_counter_key(key)) return check_value(key, v, why).has_value();
  if (parse_counter(v)) return true;
  *why = "counter key holds \"" + std::string(v.substr(0, 40)) + "\", not an integer";
  return false;
}

std::string describe_value(std::string_view key, const std::optional<std::string>& v) {
  if (!v) return "nothing";
  std::string why;
  auto info = check_value(key, *v, &why);
  if (!info) return "a bad value (" + why + ")";
  return "writer " + std::to_string(info->writer) + " seq " + std::to_string(info->seq) + " (" +
         std::to_string(info->length) + " bytes)";
}

std::string describe_entry(const Entry& e) {
  std::string s = e.state == SlotState::kSet
                      ? "seq " + std::to_string(e.seq) + " (" + std::to_string(e.len) + " bytes" +
                            (e.ttl_ms ? ", ttl " + std::to_string(e.ttl_ms) + " ms" : "") + ")"
                      : std::string("absent");
  s += ", purges done before " + std::to_string(e.purges_done_before) + ", started after " +
       std::to_string(e.purges_started_after);
  if (e.ghost_seq != 0) {
    s += std::string("; a killed incarnation's ") + (e.ghost_is_pop ? "pop/erase" : "set") +
         " (seq " + std::to_string(e.ghost_seq) + ") was observed not to have taken effect";
  }
  return s;
}

// When an observation of a slot (a get, a pop) happened, as far as purges
// and TTLs go: what surely happened before it began, what may have happened
// by the time it ended.
struct Window {
  std::uint64_t ok_before = 0;  // purges completed before it began
  std::uint64_t wall_before = 0;
  std::uint64_t started_after = 0;  // purges begun by the time it ended
  std::uint64_t wall_after = 0;
};
Window begin_window() {
  Window w;
  w.ok_before = A(g_control->purge_ok).load(std::memory_order_seq_cst);
  w.wall_before = wall_ms();
  return w;
}
void end_window(Window& w) {
  w.started_after = purges_started();
  w.wall_after = wall_ms();
}

// What an own slot may hold when observed in window w, given its entry.
struct Allowed {
  bool value = false;   // the entry's value
  bool absent = false;  // nothing
};
Allowed allowed(const Entry& e, const Window& w) {
  Allowed a;
  if (e.state == SlotState::kAbsent) {
    a.absent = true;
    return a;
  }
  a.value = true;
  // A purge begun after the entry's op began may have removed it; one begun
  // after the op returned and completed before the observation did.
  bool may_purge = w.started_after > e.purges_done_before;
  bool purged = e.purges_started_after != kUnknownYet && w.ok_before > e.purges_started_after;
  // Its expiry time lies in [invoke + ttl, ack + ttl] (the library stamps it).
  bool may_expire = e.ttl_ms != 0 && w.wall_after + 1 >= e.invoke_wall_ms + e.ttl_ms;
  bool expired =
      e.ttl_ms != 0 && e.ack_wall_ms != kUnknownYet && w.wall_before > e.ack_wall_ms + e.ttl_ms + 1;
  a.absent = may_purge || may_expire;
  if (purged || expired) {
    a.value = false;
    a.absent = true;
  }
  return a;
}

// Classifies `got` for an own slot: "" if allowed, else why not.
std::string check_own(const std::string& key, std::uint32_t writer, const Entry& e,
                      const std::optional<std::string>& got, const Allowed& a, Failure* kind) {
  if (!got) {
    if (a.absent) return "";
    *kind = kLost;
    return "missing; should hold " + describe_entry(e);
  }
  std::string why;
  auto info = check_value(key, *got, &why);
  if (!info) {
    *kind = kTorn;
    return "holds a bad value: " + why;
  }
  if (a.value && info->writer == writer && info->seq == e.seq && info->length == e.len) return "";
  if (e.ghost_seq != 0 && !e.ghost_is_pop && info->writer == writer && info->seq == e.ghost_seq) {
    *kind = kResurrected;
    return "holds the value of a set a killed incarnation had in flight (seq " +
           std::to_string(e.ghost_seq) +
           "), which a live read had seen NOT take effect; should hold " + describe_entry(e);
  }
  *kind = kWrong;
  return "holds " + describe_value(key, got) + "; should hold " + describe_entry(e) +
         (a.value ? "" : " (purged or expired by now)");
}

// ---- A worker process ---------------------------------------------------------

struct WorkerContext {
  const Config& cfg;
  std::uint32_t p;
  std::uint64_t incarnation;
  lilcache::Cache* cache;
  std::string journal_dir;
  std::optional<lilcache::Cache>* holder;  // owns *cache (a fork child destroys its copy)
};

class WorkerThread {
 public:
  WorkerThread(WorkerContext& ctx, std::uint32_t t)
      : ctx_(ctx),
        t_(t),
        writer_(writer_id(ctx.p, t)),
        rng_(ctx.cfg.seed ^ (std::uint64_t{ctx.p} << 48) ^ (ctx.incarnation << 20) ^ t ^
             mono_ns()) {
    std::string base = ctx.journal_dir + "/p" + std::to_string(ctx.p) + "t" + std::to_string(t);
    j_ = map_file<Journal>(base + ".journal");
    pops_fd_ = ::open((base + ".pops").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (pops_fd_ < 0) throw std::runtime_error("open pops journal");
  }
  ~WorkerThread() {
    munmap(j_, sizeof(Journal));
    ::close(pops_fd_);
  }

  // Finishes the journal of the previous incarnation: an op acknowledged
  // but not yet copied is copied; an op in doubt is resolved by reading.
  void Adopt() {
    if (j_->magic != kJournalMagic) {
      std::memset(j_, 0, sizeof(Journal));
      j_->magic = kJournalMagic;
      j_->next_seq = 1;
      return;
    }
    auto state = static_cast<InFlight>(A(j_->inflight).load(std::memory_order_acquire));
    if (state == InFlight::kInvoked) {
      Commit(j_->inflight_slot, Resolve());
      count(kResolvedInDoubt);
    } else if (state == InFlight::kCommit) {
      j_->entries[j_->pending_slot] = j_->pending_entry;
      SetState(InFlight::kIdle);
    }
  }

  void Run() {
    auto& stop = g_control->stop;
    auto& exit = g_control->procs[ctx_.p].exit_requested;
    const bool forks = t_ == 0 && ctx_.cfg.fork_interval_ms != 0;
    std::uint64_t next_fork = forks ? mono_ns() + ForkInterval() : 0;
    while (A(stop).load(std::memory_order_relaxed) == 0 &&
           A(exit).load(std::memory_order_relaxed) == 0) {
      Step();
      count(kOps);
      if (forks && mono_ns() >= next_fork) {
        Fork();
        next_fork = mono_ns() + ForkInterval();
      }
      if (A(g_control->pause).load(std::memory_order_seq_cst) != 0) Park();
    }
  }

  // Parks between operations while the supervisor audits. seq_cst: the
  // supervisor reads `paused`, then the cache's files.
  void Park() {
    auto& stop = g_control->stop;
    auto& exit = g_control->procs[ctx_.p].exit_requested;
    A(g_control->paused).fetch_add(1, std::memory_order_seq_cst);
    while (A(g_control->pause).load(std::memory_order_seq_cst) != 0 &&
           A(stop).load(std::memory_order_relaxed) == 0 &&
           A(exit).load(std::memory_order_relaxed) == 0) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    A(g_control->paused).fetch_sub(1, std::memory_order_seq_cst);
  }

 private:
  std::uint64_t Rand(std::uint64_t n) { return rng_() % n; }

  std::uint64_t ForkInterval() {
    const std::uint64_t k = ctx_.cfg.fork_interval_ms;
    return (k / 2 + Rand(k + 1)) * 1'000'000;
  }

  // ---- Fork children ----
  // A child forked from this thread, with the worker's handle inherited:
  //  * idle: never touches the cache; sleeps 0.5-5 s (or until the run
  //    stops), often outliving this process when it is SIGKILLed. It must
  //    keep no lock of the cache (a dead parent's COMPACT, GROW or SLOT lock
  //    kept alive by it would stall every writer: the watchdog's "hung");
  //  * exit: destroys the inherited handle at once and exits. That must not
  //    drop any lock of this (live) process;
  //  * use: set/get/pop on the shared keys through the inherited handle
  //    (values of writer kForkWriterBase + this writer, seqs from
  //    Control::fork_seq; pops journaled like ours), then destroys it and
  //    exits.
  // This thread waits for the last two (a deadline: "hung"); the supervisor,
  // a child subreaper, reaps the children of dead workers.
  enum class ForkKind { kIdle, kExit, kUse };

  void Fork() {
    ProcessState& ps = g_control->procs[ctx_.p];
    auto kind = kIdleChildrenOnly ? ForkKind::kIdle : static_cast<ForkKind>(Rand(3));
    if (kIdleChildrenOnly && A(ps.idle_children).load() >= kMaxIdleChildren) return;
    if (kind == ForkKind::kIdle && A(ps.idle_children).load() >= kMaxIdleChildren) {
      kind = ForkKind::kExit;
    }
    std::uint32_t slot = 0;
    for (;; ++slot) {
      if (slot == kMaxForkChildren) return;  // enough children for now
      std::uint64_t free = 0;
      if (A(g_control->fork_children[slot]).compare_exchange_strong(free, 1)) break;
    }
    if (kind == ForkKind::kIdle) A(ps.idle_children).fetch_add(1);
    // Idle children keep the generations mapped at the fork (deleted files
    // whose space the tmpfs of the full-disk phase gets back only when they
    // exit): a few seconds each, one per worker at a time.
    const std::uint64_t idle_ns = (500 + Rand(4'500)) * 1'000'000;
    std::fflush(nullptr);
    const pid_t pid = fork();
    if (pid < 0) {
      fail(kOpError, std::string("fork: ") + std::strerror(errno));
      if (kind == ForkKind::kIdle) A(ps.idle_children).fetch_sub(1);
      A(g_control->fork_children[slot]).store(0);
      return;
    }
    if (pid == 0) {
      A(g_control->fork_children[slot]).store(static_cast<std::uint64_t>(getpid()));
      int rc = 0;
      try {
        rc = ChildMain(kind, idle_ns);
      } catch (const std::exception& e) {
        fail(kOpError, std::string("fork child: ") + e.what());
        rc = 6;
      }
      if (kind == ForkKind::kIdle) A(ps.idle_children).fetch_sub(1);
      A(g_control->fork_children[slot]).store(0);
      _exit(rc);  // no fflush: a stdio lock may have been held by another thread at the fork
    }
    count(kind == ForkKind::kIdle ? kForkIdle : kind == ForkKind::kExit ? kForkExit : kForkUse);
    if (kind == ForkKind::kIdle) return;
    const char* what =
        kind == ForkKind::kExit ? "a fork child that exits" : "a fork child using the cache";
    const int code = lilcache::test::wait_child(
        pid,
        std::chrono::milliseconds(static_cast<std::int64_t>(20'000 * lilcache::test::slowdown())));
    A(g_control->fork_children[slot]).store(0);  // if it was killed
    if (code < 0) {
      fail(kHung, std::string(what) + " (pid " + std::to_string(pid) + ") did not exit in time");
    } else if (code != 0) {
      fail(kCrash, std::string(what) + " ended with " +
                       (code >= 128 ? std::string("signal ") + strsignal(code - 128)
                                    : "status " + std::to_string(code)));
    }
  }

  int ChildMain(ForkKind kind, std::uint64_t idle_ns) {
    if (kind == ForkKind::kIdle) {
      const std::uint64_t until = mono_ns() + idle_ns;
      while (mono_ns() < until && A(g_control->stop).load(std::memory_order_relaxed) == 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      return 0;
    }
    if (kind == ForkKind::kUse) {
      const std::uint32_t writer = kForkWriterBase + writer_;
      const std::uint64_t ops = 50 + Rand(200);
      for (std::uint64_t i = 0; i < ops; ++i) {
        const std::string key = shared_key(static_cast<std::uint32_t>(Rand(ctx_.cfg.shared_keys)));
        const std::uint64_t dice = Rand(3);
        try {
          if (dice == 0) {
            std::uint64_t seq = A(g_control->fork_seq).fetch_add(1) + 1;
            ctx_.cache->set(key, make_value(key, writer, seq, Length()));
            count(kSharedSets);
          } else {
            std::optional<std::string> got =
                dice == 1 ? ctx_.cache->get(key) : ctx_.cache->pop(key);
            count(dice == 1 ? kSharedGets : kSharedPops);
            if (got) Observed(key, *got, dice == 2);
          }
        } catch (const lilcache::Error& e) {
          if (!no_space(e)) fail(kOpError, std::string("fork child: ") + e.what());
        }
        count(kOps);
        count(kForkOps);
      }
    }
    ctx_.holder->reset();  // destroys the inherited handle, as exit() would
    return 0;
  }

  // A value a get or pop of a shared key returned: intact; a popped one is
  // journaled (popped at most once).
  void Observed(const std::string& key, const std::string& got, bool popped) {
    std::string why;
    auto info = check_value(key, got, &why);
    if (!info) {
      fail(kTorn, std::string(popped ? "pop" : "get") + " of a shared key: " + why);
      return;
    }
    if (!popped) return;
    count(kSharedPopHits);
    std::uint64_t rec[2] = {info->writer, info->seq};
    if (::write(pops_fd_, rec, sizeof rec) != static_cast<ssize_t>(sizeof rec)) {
      fail(kOpError, "cannot journal a pop");
    }
  }

  void SetState(InFlight st) {
    A(j_->inflight).store(static_cast<std::uint64_t>(st), std::memory_order_release);
  }
  // Makes `e` the state of `slot`, so that a kill at any point leaves
  // either the old entry or the new one.
  void Commit(std::uint32_t slot, const Entry& e) {
    j_->pending_slot = slot;
    j_->pending_entry = e;
    SetState(InFlight::kCommit);
    j_->entries[slot] = e;
    SetState(InFlight::kIdle);
  }

  std::size_t Length() {
    if (Rand(1000) == 0) return 65536 + Rand(1 << 20);  // grows the log now and then
    return 32 + Rand(1000);
  }

  // The op a killed incarnation had in flight (or one refused with an
  // Error): reads the slot to see whether it took effect; returns the slot's
  // entry from now on. *set_took_effect: it was a set, and it did.
  Entry Resolve(bool* set_took_effect = nullptr) {
    const std::uint32_t slot = j_->inflight_slot;
    Entry e = j_->entries[slot];
    const Entry next = j_->inflight_entry;
    const std::string key = own_key(writer_, slot);
    std::uint64_t done_before = purges_done();
    std::uint64_t t0 = mono_ns();
    Window w = begin_window();
    std::optional<std::string> got = ctx_.cache->get(key);
    end_window(w);
    const std::uint64_t started_after = w.started_after;
    Allowed old_ok = allowed(e, w);
    Allowed new_ok = allowed(next, w);
    auto matches = [&](const Entry& x) {
      if (!got || x.state != SlotState::kSet) return false;
      auto info = check_value(key, *got, nullptr);
      return info && info->writer == writer_ && info->seq == x.seq && info->length == x.len;
    };
    if (matches(next) && new_ok.value) {
      count(kInDoubtTookEffect);
      if (set_took_effect != nullptr) *set_took_effect = true;
      e = next;  // it took effect
      e.ack_wall_ms = wall_ms();
      e.purges_started_after = started_after;
    } else if (matches(e) && old_ok.value) {
      // It did not: a pop/erase that left the value, or a set that did not land.
      count(kInDoubtDidNot);
      e.ghost_seq = next.state == SlotState::kSet ? next.seq : e.seq;
      e.ghost_len = next.len;
      e.ghost_is_pop = next.state == SlotState::kAbsent;
      e.ghost_seen_ns = t0;
      e.purges_done_before = done_before;
      e.purges_started_after = started_after;
    } else if (!got) {
      if (!old_ok.absent && !new_ok.absent) {
        fail(kLost, "slot " + std::to_string(slot) + " of writer " + std::to_string(writer_) +
                        " is missing after a kill; it held " + describe_entry(e) +
                        " and the killed op would leave " + describe_entry(next));
      }
      Entry absent{};
      absent.state = SlotState::kAbsent;
      if (next.state == SlotState::kSet) {  // a set that did not land must never land
        absent.ghost_seq = next.seq;
        absent.ghost_len = next.len;
        absent.ghost_seen_ns = t0;
      }
      e = absent;
    } else {
      Failure kind = kWrong;
      std::string why = check_own(key, writer_, e, got, old_ok, &kind);
      fail(kind == kLost ? kWrong : kind,
           "slot " + std::to_string(slot) + " of writer " + std::to_string(writer_) +
               " after a kill: " + (why.empty() ? "unexpected value" : why) +
               "; the killed op would leave " + describe_entry(next));
      Entry seen{};  // go on from what is there, so that one fault is reported once
      seen.state = SlotState::kAbsent;
      if (auto info = check_value(key, *got, nullptr); info && info->writer == writer_) {
        seen.state = SlotState::kSet;
        seen.seq = info->seq;
        seen.len = info->length;
      }
      seen.purges_done_before = done_before;
      seen.purges_started_after = started_after;
      e = seen;
    }
    return e;
  }

  // One operation on an own slot, journaled around the call.
  void OwnWrite(OpKind kind) {
    const std::uint32_t slot = static_cast<std::uint32_t>(Rand(ctx_.cfg.slots));
    const std::string key = own_key(writer_, slot);
    Entry& cur = j_->entries[slot];
    Entry next{};
    std::string value;
    std::uint64_t ttl = 0;
    if (kind == OpKind::kSet) {
      next.state = SlotState::kSet;
      next.seq = j_->next_seq;
      A(j_->next_seq).store(next.seq + 1, std::memory_order_release);
      next.len = static_cast<std::uint32_t>(Length());
      if (Rand(8) == 0) ttl = Rand(2) == 0 ? 50 + Rand(3000) : 3'600'000;
      next.ttl_ms = ttl;
      value = make_value(key, writer_, next.seq, next.len);
    } else {
      next.state = SlotState::kAbsent;
    }
    next.purges_done_before = purges_done();
    next.invoke_wall_ms = wall_ms();
    next.ack_wall_ms = kUnknownYet;
    next.purges_started_after = kUnknownYet;
    j_->inflight_slot = slot;
    j_->inflight_kind = kind;
    j_->inflight_invoke_ns = mono_ns();
    j_->inflight_entry = next;
    SetState(InFlight::kInvoked);
    Window w = begin_window();
    std::optional<std::string> popped;
    bool erased = false;
    try {
      if (kind == OpKind::kSet) {
        if (ttl != 0) {
          ctx_.cache->set(key, value, std::chrono::milliseconds(ttl));
          count(kTtlSets);
        } else {
          ctx_.cache->set(key, value);
          count(kSets);
        }
      } else if (kind == OpKind::kPop) {
        popped = ctx_.cache->pop(key);
        count(kOwnPops);
      } else {
        erased = ctx_.cache->erase(key);
        count(kErases);
      }
    } catch (const lilcache::Error& e) {
      if (no_space(e)) {
        // Refused: it must not have taken effect. Read the slot as for a
        // killed op; the value must then never show up later (ghost).
        bool took_effect = false;
        Entry now = Resolve(&took_effect);
        if (took_effect) {
          fail(kWrong, "own slot " + std::to_string(slot) + " of writer " +
                           std::to_string(writer_) + ": a " +
                           (kind == OpKind::kSet ? "set" : "pop/erase") + " refused with \"" +
                           e.what() + "\" took effect");
        }
        Commit(slot, now);
        return;
      }
      fail(kOpError, std::string("own write: ") + e.what());
      SetState(InFlight::kIdle);
      return;
    }
    if (kind == OpKind::kSet && disk_full()) count(kSetsWhileFull);
    end_window(w);
    next.ack_wall_ms = w.wall_after;
    next.purges_started_after = w.started_after;
    const Allowed before = allowed(cur, w);
    // A pop/erase reports what the slot held: check it.
    if (kind == OpKind::kPop) {
      Failure f = kWrong;
      std::string why = check_own(key, writer_, cur, popped, before, &f);
      if (!why.empty()) {
        fail(f, "pop of own slot " + std::to_string(slot) + " of writer " +
                    std::to_string(writer_) + ": " + why);
      }
    } else if (kind == OpKind::kErase && !erased && !before.absent) {
      fail(kLost, "erase of own slot " + std::to_string(slot) + " of writer " +
                      std::to_string(writer_) + " found nothing; it held " + describe_entry(cur));
    }
    Commit(slot, next);  // the acknowledgement
  }

  void OwnGet() {
    const std::uint32_t slot = static_cast<std::uint32_t>(Rand(ctx_.cfg.slots));
    const std::string key = own_key(writer_, slot);
    Entry& cur = j_->entries[slot];
    std::uint64_t done_before = purges_done();
    Window w = begin_window();
    std::optional<std::string> got = ctx_.cache->get(key);
    end_window(w);
    count(kOwnGets);
    if (disk_full()) count(kGetsWhileFull);
    Allowed a = allowed(cur, w);
    Failure f = kWrong;
    std::string why = check_own(key, writer_, cur, got, a, &f);
    if (!why.empty()) {
      fail(f, "get of own slot " + std::to_string(slot) + " of writer " + std::to_string(writer_) +
                  ": " + why);
    }
    if (!got && cur.state == SlotState::kSet) {
      // Purged or expired: from now on the slot is known to be empty.
      Entry e = cur;
      e.state = SlotState::kAbsent;
      e.purges_done_before = done_before;
      if (e.ghost_is_pop) e.ghost_seq = 0;  // the value a killed pop left is gone anyway
      Commit(slot, e);
    }
  }

  void Shared(int what) {
    const std::string key = shared_key(static_cast<std::uint32_t>(Rand(ctx_.cfg.shared_keys)));
    if (what == 0) {
      std::uint64_t seq = j_->next_seq;
      A(j_->next_seq).store(seq + 1, std::memory_order_release);
      ctx_.cache->set(key, make_value(key, writer_, seq, Length()));
      count(kSharedSets);
      return;
    }
    std::optional<std::string> got = what == 1 ? ctx_.cache->get(key) : ctx_.cache->pop(key);
    count(what == 1 ? kSharedGets : kSharedPops);
    if (what == 1 && disk_full()) count(kGetsWhileFull);
    if (got) Observed(key, *got, what == 2);
  }

  void Step() {
    std::uint64_t dice = Rand(1'000'000);
    try {
      if (dice < 300'000) {
        OwnWrite(OpKind::kSet);
      } else if (dice < 500'000) {
        OwnGet();
      } else if (dice < 540'000) {
        OwnWrite(OpKind::kPop);
      } else if (dice < 570'000) {
        OwnWrite(OpKind::kErase);
      } else if (dice < 760'000) {
        Shared(0);
      } else if (dice < 870'000) {
        Shared(1);
      } else if (dice < 930'000) {
        Shared(2);
      } else if (dice < 960'000) {
        Counter();
      } else if (dice < 975'000) {
        SharedConditional();
      } else if (dice < 985'000) {
        SharedExpiry();
      } else if (dice < 992'000) {
        GetOrSet();
      } else if (dice < 999'950) {
        Batch();
      } else if (dice < 999'960) {  // rare: about one per second in all
        Purge();
      } else if (dice < 999'980) {
        if (ctx_.cache->compact().compacted) count(kCompactions);
      } else if (dice < 999'990) {
        if (ctx_.cache->snapshot().compacted) count(kSnapshots);
      } else {
        ForEach();
      }
    } catch (const lilcache::Error& e) {
      if (!no_space(e)) fail(kOpError, e.what());
    }
  }

  // ---- Counters: see the file comment ("counters never go backwards") ----
  struct CounterSeen {
    bool valid = false;
    std::int64_t value = 0;         // the value this thread last saw (0: absent)
    std::uint64_t done_before = 0;  // purges_done() before that observation began
  };

  std::int64_t CounterValue(const std::string& key, std::string_view v) {
    std::optional<std::int64_t> n = parse_counter(v);
    if (!n)
      fail(kTorn, "counter " + key.substr(2) + " holds \"" + std::string(v.substr(0, 40)) + "\"");
    return n.value_or(0);
  }

  void Counter() {
    const std::uint32_t i = static_cast<std::uint32_t>(Rand(ctx_.cfg.counter_keys));
    const std::string key = counter_key(i);
    const std::uint64_t done_before = purges_done();
    std::int64_t seen = 0;
    bool incremented = false;
    const std::uint64_t dice = Rand(10);
    if (dice < 5) {
      seen = ctx_.cache->increment(key, static_cast<std::int64_t>(1 + Rand(3)));
      incremented = true;
      count(kIncrements);
    } else if (dice < 8) {
      // The read-modify-write loop of the manual, one round.
      std::optional<lilcache::Versioned> v = ctx_.cache->get_versioned(key);
      seen = v ? CounterValue(key, v->value) : 0;
      const std::string next = std::to_string(seen + 1);
      incremented =
          v ? ctx_.cache->compare_and_set(key, v->version, next) : ctx_.cache->add(key, next);
      count(kCounterCas);
      if (incremented) {
        ++seen;
        count(kCounterCasWins);
      }
    } else {
      std::optional<std::string> v = ctx_.cache->get(key);
      seen = v ? CounterValue(key, *v) : 0;
      count(kCounterGets);
    }
    const std::uint64_t started_after = purges_started();
    if (counters_seen_.size() <= i) counters_seen_.resize(i + 1);
    CounterSeen& last = counters_seen_[i];
    // No purge may have run between the two observations: every purge begun
    // by now had completed before the previous one began.
    if (last.valid && started_after == last.done_before &&
        (incremented ? seen <= last.value : seen < last.value)) {
      fail(kLost, "counter " + std::to_string(i) + " went from " + std::to_string(last.value) +
                      " to " + std::to_string(seen) + (incremented ? " by an increment" : "") +
                      " (writer " + std::to_string(writer_) + ")");
    }
    last = {true, seen, done_before};
  }

  // ---- Conditional writes, expiry and batches on the shared keys ----
  std::string NewSharedValue(const std::string& key) {
    std::uint64_t seq = j_->next_seq;
    A(j_->next_seq).store(seq + 1, std::memory_order_release);
    return make_value(key, writer_, seq, Length());
  }

  void SharedConditional() {
    const std::string key = shared_key(static_cast<std::uint32_t>(Rand(ctx_.cfg.shared_keys)));
    const std::uint64_t dice = Rand(3);
    if (dice == 0) {
      count(kAdds);
      if (ctx_.cache->add(key, NewSharedValue(key))) count(kAddWins);
      return;
    }
    std::optional<lilcache::Versioned> v = ctx_.cache->get_versioned(key);
    count(kSharedGets);
    if (!v) return;
    Observed(key, v->value, false);
    if (dice == 1) {
      count(kSharedCas);
      if (ctx_.cache->compare_and_set(key, v->version, NewSharedValue(key))) {
        count(kSharedCasWins);
      }
    } else if (ctx_.cache->compare_and_erase(key, v->version)) {
      // It removed exactly that value: journaled as a pop (at most once).
      count(kSharedCaeWins);
      Observed(key, v->value, true);
    }
  }

  void SharedExpiry() {
    const std::string key = shared_key(static_cast<std::uint32_t>(Rand(ctx_.cfg.shared_keys)));
    constexpr std::chrono::milliseconds kHour(3'600'000);
    const std::uint64_t dice = Rand(3);
    if (dice == 0) {
      // Shared keys are set without a TTL: a touch gives them an hour.
      if (ctx_.cache->touch(key, kHour)) count(kTouches);
    } else if (dice == 1) {
      if (ctx_.cache->persist(key)) count(kTouches);
    } else {
      std::optional<std::chrono::milliseconds> left = ctx_.cache->ttl(key);
      count(kTtls);
      if (left && *left != lilcache::kNoExpiry && (left->count() < 0 || *left > kHour)) {
        fail(kWrong, "ttl of a shared key is " + std::to_string(left->count()) +
                         " ms; only no expiry or at most an hour was ever given");
      }
    }
  }

  void GetOrSet() {
    const std::string key = get_or_set_key(static_cast<std::uint32_t>(Rand(8)));
    if (Rand(8) == 0) {
      if (ctx_.cache->erase(key)) count(kErases);
      return;
    }
    std::string v = ctx_.cache->get_or_set(key, [&] { return NewSharedValue(key); });
    count(kGetOrSets);
    std::string why;
    if (!check_value(key, v, &why)) fail(kTorn, "get_or_set: " + why);
  }

  void Batch() {
    const std::uint64_t dice = Rand(3);
    const std::size_t n = 1 + Rand(8);
    std::vector<std::string> keys;
    for (std::size_t k = 0; k < n; ++k) {
      keys.push_back(shared_key(static_cast<std::uint32_t>(Rand(ctx_.cfg.shared_keys))));
    }
    if (dice == 0) {
      std::vector<std::optional<std::string>> got = ctx_.cache->get_many(keys);
      count(kBatchGets);
      if (got.size() != keys.size()) {
        fail(kWrong, "get_many of " + std::to_string(keys.size()) + " keys returned " +
                         std::to_string(got.size()));
        return;
      }
      for (std::size_t k = 0; k < n; ++k) {
        if (got[k]) Observed(keys[k], *got[k], false);
      }
    } else if (dice == 1) {
      std::vector<std::pair<std::string, std::string>> items;
      for (const std::string& k : keys) items.emplace_back(k, NewSharedValue(k));
      ctx_.cache->set_many(items);
      count(kBatchSets);
      count(kSharedSets, items.size());
    } else {
      if (ctx_.cache->erase_many(keys) > keys.size()) fail(kWrong, "erase_many removed too many");
      count(kBatchErases);
    }
  }

  void Purge() {
    ProcessState& ps = g_control->procs[ctx_.p];
    A(ps.purges_in_flight).fetch_add(1, std::memory_order_seq_cst);
    A(g_control->purge_started).fetch_add(1, std::memory_order_seq_cst);
    ctx_.cache->purge();
    A(g_control->purge_ok).fetch_add(1, std::memory_order_seq_cst);
    A(ps.purges_in_flight).fetch_sub(1, std::memory_order_seq_cst);
    count(kPurges);
  }

  void ForEach() {
    ctx_.cache->for_each([&](std::string_view k, std::string_view v) {
      std::string why;
      if (!check_any(k, v, &why)) fail(kTorn, "for_each: " + why);
      return true;
    });
    count(kForEach);
  }

  WorkerContext& ctx_;
  std::uint32_t t_;
  std::uint32_t writer_;
  std::mt19937_64 rng_;
  Journal* j_ = nullptr;
  int pops_fd_ = -1;
  std::vector<CounterSeen> counters_seen_;
};

lilcache::Options cache_options(const Config& cfg) {
  lilcache::Options o;
  o.root = cfg.root + "/cache";
  o.snapshot = "1s";
  o.compact_dead_ratio = 0.25;
  return o;
}

// The workers' Env: Env::Default() plus a record of the address-space
// reservations the library makes (anonymous PROT_NONE maps, lib/mapping.h)
// and releases, so that a worker can check it released them all (big
// anonymous maps in /proc/self/maps cannot be told apart from a sanitizer's
// allocator regions). Lock-free, unlike test/fault_env.h's FaultEnv: a fork
// child must never find a lock held by a thread of its parent that does not
// exist in it (a child hung so in FaultEnv's mutex).
class TrackingEnv : public lilcache::Env {
 public:
  void* Mmap(void* addr, std::size_t length, int prot, int flags, int fd, off_t offset) override {
    void* p = Env::Mmap(addr, length, prot, flags, fd, offset);
    if (p != MAP_FAILED && prot == PROT_NONE && (flags & MAP_ANONYMOUS) != 0) {
      for (Entry& e : table_) {
        std::uintptr_t free = 0;
        // Relaxed: each entry is one process's own bookkeeping; the count
        // is read after every thread using the cache has been joined.
        if (e.addr.compare_exchange_strong(free, reinterpret_cast<std::uintptr_t>(p),
                                           std::memory_order_relaxed)) {
          e.length.store(length, std::memory_order_relaxed);
          return p;
        }
      }
      overflow_.store(true, std::memory_order_relaxed);
    }
    return p;
  }
  int Munmap(void* addr, std::size_t length) override {
    int rc = Env::Munmap(addr, length);
    if (rc != 0) return rc;
    for (Entry& e : table_) {
      std::uintptr_t a = reinterpret_cast<std::uintptr_t>(addr);
      if (e.addr.load(std::memory_order_relaxed) == a &&
          e.length.load(std::memory_order_relaxed) == length &&
          e.addr.compare_exchange_strong(a, 0, std::memory_order_relaxed)) {
        break;
      }
    }
    return rc;
  }
  // Reservations made and not unmapped yet (SIZE_MAX: too many to track).
  std::size_t reservations_held() const {
    if (overflow_.load(std::memory_order_relaxed)) return SIZE_MAX;
    std::size_t n = 0;
    for (const Entry& e : table_) n += e.addr.load(std::memory_order_relaxed) != 0 ? 1 : 0;
    return n;
  }

 private:
  struct Entry {
    std::atomic<std::uintptr_t> addr{0};
    std::atomic<std::size_t> length{0};
  };
  std::array<Entry, 4096> table_;
  std::atomic<bool> overflow_{false};
};

// Exit status: 0 clean, 4 open failed, 5 leaked descriptors or mappings,
// 6 other error.
int worker_main(const Config& cfg, std::uint32_t p, std::uint64_t incarnation) {
  const std::string cache_dir = cfg.root + "/cache";
  const auto before = lilcache::test::process_resources(cache_dir);
  TrackingEnv env;
  {
    std::optional<lilcache::Cache> cache;
    try {
      lilcache::Options o = cache_options(cfg);
      o.env = &env;
      cache.emplace(lilcache::Cache::open(kName, o));
    } catch (const lilcache::Error& e) {
      fail(kOpenFailed, "process " + std::to_string(p) + ": " + e.what());
      return 4;
    }
    count(kOpens);
    WorkerContext ctx{cfg, p, incarnation, &*cache, cfg.root + "/journal", &cache};
    std::vector<std::unique_ptr<WorkerThread>> workers;
    for (std::uint32_t t = 0; t < cfg.threads; ++t) {
      workers.push_back(std::make_unique<WorkerThread>(ctx, t));
    }
    for (auto& w : workers) w->Adopt();
    std::vector<std::thread> threads;
    for (auto& w : workers) threads.emplace_back([&w] { w->Run(); });
    for (auto& th : threads) th.join();
    workers.clear();
  }
  const auto after = lilcache::test::process_resources(cache_dir);
  std::string leaked;
  if (after.fds_under != 0 || after.maps_under != 0 || after.fds != before.fds) {
    leaked = after.describe() + "; before opening it: " + before.describe();
  }
  if (env.reservations_held() != 0) {
    leaked += std::to_string(env.reservations_held()) + " address reservations never released; ";
  }
  if (!leaked.empty()) {
    fail(kLeak, "process " + std::to_string(p) + " after closing the cache: " + leaked);
    return 5;
  }
  return 0;
}

// ---- The supervisor ---------------------------------------------------------

struct Worker {
  pid_t pid = -1;
  std::uint64_t incarnation = 0;
};

using Clock = std::chrono::steady_clock;

std::chrono::milliseconds ms_of(double seconds) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
}

class Supervisor {
 public:
  explicit Supervisor(Config cfg) : cfg_(std::move(cfg)), rng_(cfg_.seed) {}
  ~Supervisor() { UnmountDisk(); }

  // The run: [t0, full_at) kills; [full_at, full_end) the full-disk phase
  // (no kills: the disk is held full, writes are refused, reads go on);
  // [full_end, calm_at) kills again; [calm_at, end) the calm phase: no
  // kills, every worker alive, a compaction started after the last kill
  // (its generation holds only published records: no record of a killed
  // writer), then the workers and their fork children go on until the end.
  // Then the audit of the index against the log (lib/audit.h), and Verify.
  int Run() {
    fs::create_directories(cfg_.root + "/journal");
    fs::create_directories(cfg_.root + "/cache");
    // Fork children of dead workers are reparented to us: we reap them.
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
      std::fprintf(stderr, "lilcache-torture: PR_SET_CHILD_SUBREAPER: %s\n", std::strerror(errno));
    }
    MountDisk();
    g_control = static_cast<Control*>(
        mmap(nullptr, sizeof(Control), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    if (g_control == MAP_FAILED) throw std::runtime_error("mmap control");
    std::memset(g_control, 0, sizeof(Control));
    workers_.resize(cfg_.processes);
    for (std::uint32_t p = 0; p < cfg_.processes; ++p) Start(p);
    const auto t0 = Clock::now();
    const auto end = t0 + ms_of(cfg_.seconds);
    calm_len_ =
        cfg_.calm_seconds > 0 ? cfg_.calm_seconds : std::clamp(cfg_.seconds / 10, 2.0, 30.0);
    calm_len_ = std::min(calm_len_, cfg_.seconds / 2);
    const auto calm_at = end - ms_of(calm_len_);
    full_len_ = !disk_mounted_          ? 0
                : cfg_.full_seconds > 0 ? cfg_.full_seconds
                                        : std::clamp(cfg_.seconds / 10, 2.0, 20.0);
    full_len_ = std::min(full_len_, std::chrono::duration<double>(calm_at - t0).count() / 2);
    const auto full_at = t0 + (calm_at - t0) / 2 - ms_of(full_len_ / 2);
    const auto full_end = full_at + ms_of(full_len_);
    bool full_done = !disk_mounted_, calm = false;
    auto next_top_up = t0, next_audit = t0;
    last_progress_ = t0;
    auto next_kill = t0 + Interval();
    while (Clock::now() < end) {
      Reap();
      ReapOrphans();
      Watchdog();
      const auto now = Clock::now();
      if (!full_done && !full_ && now >= full_at) BeginFull();
      if (full_ && now >= full_end) {
        EndFull();
        full_done = true;
      }
      if (full_ && now >= next_top_up) {
        TopUp();
        next_top_up = now + std::chrono::milliseconds(50);
      }
      CheckResumed();
      if (!calm && now >= calm_at) {
        calm = true;
        Calm();
        next_audit = Clock::now() + std::chrono::milliseconds(200);
      }
      if (calm && calm_compacted_ && Clock::now() >= next_audit) {
        AuditPaused();
        next_audit = Clock::now() + std::chrono::milliseconds(300);
      }
      if (!full_ && !calm && Clock::now() >= next_kill) {
        if (cfg_.mass_kill_every != 0 && ++kill_rounds_ % cfg_.mass_kill_every == 0) {
          for (std::uint32_t p = 0; p < cfg_.processes; ++p) Kill(p);
          ++mass_kills_;
        } else if (rng_() % 8 == 0) {
          // Now and then a clean exit instead: the worker checks that it
          // released every descriptor and mapping of the cache.
          Retire(static_cast<std::uint32_t>(rng_() % cfg_.processes));
        } else {
          Kill(static_cast<std::uint32_t>(rng_() % cfg_.processes));
        }
        for (std::uint32_t p = 0; p < cfg_.processes; ++p) {
          if (workers_[p].pid < 0) Start(p);
        }
        // On schedule, however long this round took (a clean exit waits for
        // the worker's snapshot in progress, a restart after killing all
        // for a recovery).
        next_kill = std::max(next_kill + Interval(),
                             std::chrono::steady_clock::now() - std::chrono::seconds(1));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (full_) EndFull();
    run_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    Stop();
    WaitForkChildren();
    if (resume_pending_) {
      fail(kHung, "no write was acknowledged after the full-disk phase (until the end of the run)");
    }
    Audit();
    int rc = Verify();
    UnmountDisk();
    return rc;
  }

 private:
  std::chrono::milliseconds Interval() {
    std::uint64_t k = cfg_.kill_interval_ms;
    return std::chrono::milliseconds(k / 2 + rng_() % (k + 1));
  }

  void Start(std::uint32_t p) {
    Worker& w = workers_[p];
    ++w.incarnation;
    A(g_control->procs[p].exit_requested).store(0);
    std::fflush(nullptr);
    pid_t pid = fork();
    if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
      int rc = 6;
      try {
        rc = worker_main(cfg_, p, w.incarnation);
      } catch (const std::exception& e) {
        fail(kOpError, std::string("worker: ") + e.what());
      }
      std::fflush(nullptr);
      _exit(rc);
    }
    w.pid = pid;
    A(g_control->procs[p].pid).store(static_cast<std::uint64_t>(pid));
    ++starts_;
  }

  // ---- The full-disk phase ----

  // The cache's directory becomes a small tmpfs, which the full-disk phase
  // fills with a filler file. Needs root (CAP_SYS_ADMIN); skipped if not.
  void MountDisk() {
    if (cfg_.disk_mib == 0) {
      disk_note_ = "full-disk phase off (--disk-mib 0)";
      return;
    }
    const std::string dir = cfg_.root + "/cache";
    const std::string opts = "size=" + std::to_string(cfg_.disk_mib) + "m,mode=0700";
    if (mount("lilcache-torture", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) != 0) {
      disk_note_ = "full-disk phase SKIPPED: cannot mount a " + std::to_string(cfg_.disk_mib) +
                   " MiB tmpfs at " + dir + ": " + std::strerror(errno) +
                   " (it needs root or CAP_SYS_ADMIN)";
      std::printf("lilcache-torture: %s\n", disk_note_.c_str());
      std::fflush(stdout);
      return;
    }
    disk_mounted_ = true;
  }

  void UnmountDisk() {
    if (!disk_mounted_) return;
    const std::string dir = cfg_.root + "/cache";
    if (umount2(dir.c_str(), MNT_DETACH) != 0) {
      std::fprintf(stderr, "lilcache-torture: umount %s: %s\n", dir.c_str(), std::strerror(errno));
    }
    disk_mounted_ = false;
  }

  void BeginFull() {
    full_ = true;
    full_began_at_ = Clock::now();
    A(g_control->disk_full).store(1);
    const std::string path = cfg_.root + "/cache/filler";
    filler_fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (filler_fd_ < 0) {
      std::fprintf(stderr, "lilcache-torture: open %s: %s\n", path.c_str(), std::strerror(errno));
      return;
    }
    TopUp();
  }

  // Writes to the filler until the disk is full (compactions that finish
  // free space: taken back at once).
  void TopUp() {
    if (filler_fd_ < 0) return;
    static const std::string chunk(1 << 20, 'F');
    for (std::size_t size = chunk.size(); size >= 4096;) {
      ssize_t n = ::write(filler_fd_, chunk.data(), size);
      if (n > 0) {
        filler_bytes_ += static_cast<std::uint64_t>(n);
        filler_max_ = std::max(filler_max_, filler_bytes_);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      size /= 16;
    }
  }

  void EndFull() {
    full_held_s_ = std::chrono::duration<double>(Clock::now() - full_began_at_).count();
    if (filler_fd_ >= 0) {
      ::close(filler_fd_);
      ::unlink((cfg_.root + "/cache/filler").c_str());
      filler_fd_ = -1;
    }
    A(g_control->disk_full).store(0);
    full_ = false;
    filler_bytes_ = 0;
    writes_at_full_end_ = Writes();
    full_ended_at_ = Clock::now();
    resume_pending_ = true;
  }

  std::uint64_t Writes() {
    return A(g_control->counters[kSets]).load() + A(g_control->counters[kTtlSets]).load() +
           A(g_control->counters[kSharedSets]).load();
  }

  // After the phase, writes must be acknowledged again.
  void CheckResumed() {
    if (!resume_pending_) return;
    if (Writes() > writes_at_full_end_) {
      resume_pending_ = false;
      resumed_after_ms_ = static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - full_ended_at_)
              .count());
      return;
    }
    if (Clock::now() - full_ended_at_ > ms_of(30 * lilcache::test::slowdown())) {
      resume_pending_ = false;
      fail(kHung, "no write was acknowledged within 30 s after the disk had space again");
    }
  }

  // ---- The calm phase, fork children, the watchdog ----

  // Every worker alive, then a compaction that starts after the last kill.
  void Calm() {
    for (std::uint32_t p = 0; p < cfg_.processes; ++p) {
      if (workers_[p].pid < 0) Start(p);
    }
    const auto deadline = Clock::now() + ms_of(60 * lilcache::test::slowdown());
    try {
      lilcache::Cache c = lilcache::Cache::open(kName, cache_options(cfg_));
      while (!calm_compacted_ && Clock::now() < deadline) {
        try {
          calm_compacted_ = c.compact().compacted;  // false: another process is compacting
        } catch (const lilcache::Error& e) {
          if (!no_space(e)) fail(kOpError, std::string("calm phase: compact: ") + e.what());
        }
        if (!calm_compacted_) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    } catch (const lilcache::Error& e) {
      fail(kOpenFailed, std::string("calm phase: open: ") + e.what());
      return;
    }
    if (!calm_compacted_) {
      fail(kHung, "the calm phase found no compaction able to complete within 60 s");
    }
  }

  // Fail once when no operation completes for 20 s (x slowdown): writers
  // blocked, e.g. by a lock a dead process's fork child keeps alive.
  void Watchdog() {
    const std::uint64_t ops = A(g_control->counters[kOps]).load(std::memory_order_relaxed);
    const auto now = Clock::now();
    if (ops != last_ops_) {
      last_ops_ = ops;
      last_progress_ = now;
      stalled_ = false;
      return;
    }
    const double limit = 20 * lilcache::test::slowdown();
    if (!stalled_ && now - last_progress_ > ms_of(limit)) {
      stalled_ = true;
      fail(kHung, "no operation completed for " + std::to_string(static_cast<int>(limit)) +
                      " s (every worker blocked)");
    }
  }

  // Reaps the fork children of dead workers (we are their subreaper).
  void ReapOrphans() {
    for (;;) {
      siginfo_t info{};
      if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0) return;
      for (const Worker& w : workers_) {
        if (w.pid == info.si_pid) return;  // a worker: Reap() judges it
      }
      int st = 0;
      if (waitpid(info.si_pid, &st, 0) != info.si_pid) return;
      ++orphans_;
      if (WIFEXITED(st) && WEXITSTATUS(st) != 0) {
        fail(kCrash,
             "a fork child of a dead worker exited with status " + std::to_string(WEXITSTATUS(st)));
      } else if (WIFSIGNALED(st) && WTERMSIG(st) != SIGKILL) {
        fail(kCrash, std::string("a fork child of a dead worker died of signal ") +
                         strsignal(WTERMSIG(st)));
      }
    }
  }

  // After the workers: every fork child ends (idle ones see `stop`).
  void WaitForkChildren() {
    const auto deadline = Clock::now() + ms_of(60 * lilcache::test::slowdown());
    auto alive = [&] {
      std::vector<pid_t> pids;
      for (auto& slot : g_control->fork_children) {
        std::uint64_t v = A(slot).load();
        if (v > 1) pids.push_back(static_cast<pid_t>(v));  // 1: claimed by a worker killed
      }                                                    // before it forked
      return pids;
    };
    while (!alive().empty() && Clock::now() < deadline) {
      ReapOrphans();
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    for (pid_t pid : alive()) {
      fail(kHung, "fork child " + std::to_string(pid) + " did not exit after the run stopped");
      lilcache::test::dump_stacks(pid);
      ::kill(pid, SIGKILL);
    }
    // Every process left is a child of ours: reap them all.
    for (auto until = Clock::now() + std::chrono::seconds(10); Clock::now() < until;) {
      ReapOrphans();
      int st = 0;
      pid_t r = waitpid(-1, &st, WNOHANG);
      if (r < 0 && errno == ECHILD) break;
      if (r == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  // ---- The audit ----

  // Audits the live generation of the quiescent cache. A compaction (of a
  // maintenance thread) may replace it meanwhile: the generation read stays
  // frozen, but its files may be gone before the audit opens them: retried.
  void AuditNow() {
    for (int attempt = 1;; ++attempt) {
      try {
        lilcache::AuditReport r = lilcache::AuditIndex(cfg_.root + "/cache", kName);
        ++audits_;
        audit_records_ += r.records;
        audit_keys_ += r.keys;
        audit_max_records_ = std::max(audit_max_records_, r.records);
        audit_violations_ += r.violations.size();
        for (const auto& v : r.violations)
          fail(kAudit, "generation " + std::to_string(r.generation) + ": " + v);
        return;
      } catch (const lilcache::Error& e) {
        if (attempt < 10) continue;
        fail(kAudit, std::string("the audit could not run: ") + e.what());
        return;
      }
    }
  }

  // In the calm phase: every worker thread parks between operations, then
  // the audit of the generation they wrote to.
  void AuditPaused() {
    A(g_control->pause).store(1, std::memory_order_seq_cst);
    const std::uint64_t all = std::uint64_t{cfg_.processes} * cfg_.threads;
    const auto deadline = Clock::now() + ms_of(30 * lilcache::test::slowdown());
    while (A(g_control->paused).load(std::memory_order_seq_cst) < all && Clock::now() < deadline) {
      Reap();
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    if (A(g_control->paused).load(std::memory_order_seq_cst) < all) {
      fail(kHung, "the workers did not all pause for an audit within 30 s");
    } else {
      AuditNow();
    }
    A(g_control->pause).store(0, std::memory_order_seq_cst);
  }

  // After the run, every process gone.
  void Audit() {
    if (!calm_compacted_) {
      audit_note_ = "audits skipped (no compaction in the calm phase)";
      return;
    }
    AuditNow();
    char buf[256];
    std::snprintf(
        buf, sizeof buf,
        "%llu audits (paused workers, then after the run) of generations of up to %llu "
        "records (mean %.0f records of %.0f keys), %llu violations",
        static_cast<unsigned long long>(audits_),
        static_cast<unsigned long long>(audit_max_records_),
        audits_ ? static_cast<double>(audit_records_) / static_cast<double>(audits_) : 0.0,
        audits_ ? static_cast<double>(audit_keys_) / static_cast<double>(audits_) : 0.0,
        static_cast<unsigned long long>(audit_violations_));
    audit_note_ = buf;
  }

  // After a worker ended: a purge it had in flight can no longer happen.
  void Ended(std::uint32_t p) {
    std::uint64_t n = A(g_control->procs[p].purges_in_flight).exchange(0);
    A(g_control->purge_resolved).fetch_add(n, std::memory_order_seq_cst);
    workers_[p].pid = -1;
  }

  void Kill(std::uint32_t p) {
    Worker& w = workers_[p];
    if (w.pid < 0) return;
    ::kill(w.pid, SIGKILL);
    int code = lilcache::test::wait_child(w.pid);
    if (code == 128 + SIGKILL) {
      ++kills_;
    } else {
      Judge(p, code);
    }
    Ended(p);
  }

  // Asks worker p to finish and exit, and waits for it.
  void Retire(std::uint32_t p) {
    Worker& w = workers_[p];
    if (w.pid < 0) return;
    A(g_control->procs[p].exit_requested).store(1);
    Judge(p, lilcache::test::wait_child(w.pid, std::chrono::seconds(60)));
    Ended(p);
    ++retired_;
  }

  // A worker that ended on its own during the run.
  void Reap() {
    for (std::uint32_t p = 0; p < cfg_.processes; ++p) {
      Worker& w = workers_[p];
      if (w.pid < 0) continue;
      std::optional<int> code = lilcache::test::try_wait_child(w.pid);
      if (!code) continue;
      Judge(p, *code);
      Ended(p);
      Start(p);
    }
  }

  // `code` as lilcache::test::wait_child gives it: the exit status,
  // 128 + signal, or -1 for a worker that did not end in time (its threads'
  // stacks are printed, then it is killed).
  void Judge(std::uint32_t p, int code) {
    const std::string who = "worker " + std::to_string(p);
    if (code == 0) {
      ++g_control->procs[p].clean_exits;
    } else if (code == 4 || code == 5) {
      // counted by the worker (failed open, leak)
    } else if (code < 0) {
      fail(kHung, who + " did not exit in time");
    } else if (code >= 128) {
      fail(kCrash, who + " died of signal " + std::to_string(code - 128) + " (" +
                       strsignal(code - 128) + ")");
    } else {
      fail(kCrash, who + " exited with status " + std::to_string(code));
    }
  }

  void Stop() {
    A(g_control->stop).store(1);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    for (std::uint32_t p = 0; p < cfg_.processes; ++p) {
      Worker& w = workers_[p];
      if (w.pid < 0) continue;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      Judge(p, lilcache::test::wait_child(w.pid, std::max(left, std::chrono::milliseconds(0))));
      Ended(p);
    }
  }

  // Checks every journal against the cache, reopened by this process alone.
  int Verify() {
    const std::string cache_dir = cfg_.root + "/cache";
    const std::string evidence = cfg_.root + "/cache-before-final-open";
    fs::remove_all(evidence);
    fs::copy(cache_dir, evidence, fs::copy_options::recursive);
    const auto before = lilcache::test::process_resources(cache_dir);
    std::uint64_t own_present = 0, own_absent = 0, shared_checked = 0, popped_total = 0, listed = 0,
                  in_doubt = 0;
    {
      std::optional<lilcache::Cache> cache;
      try {
        cache.emplace(lilcache::Cache::open(kName, cache_options(cfg_)));
      } catch (const lilcache::Error& e) {
        fail(kOpenFailed, std::string("final open: ") + e.what());
      }
      if (cache) {
        std::vector<std::uint64_t> popped;  // writer << 40 | seq
        for (std::uint32_t p = 0; p < cfg_.processes; ++p) {
          for (std::uint32_t t = 0; t < cfg_.threads; ++t) {
            const std::uint32_t writer = writer_id(p, t);
            std::string base =
                cfg_.root + "/journal/p" + std::to_string(p) + "t" + std::to_string(t);
            if (!fs::exists(base + ".journal")) continue;
            Journal* j = map_file<Journal>(base + ".journal");
            auto state = static_cast<InFlight>(A(j->inflight).load());
            if (state == InFlight::kCommit) {
              j->entries[j->pending_slot] = j->pending_entry;
              state = InFlight::kIdle;
            }
            for (std::uint32_t slot = 0; slot < cfg_.slots; ++slot) {
              const std::string key = own_key(writer, slot);
              const Entry& e = j->entries[slot];
              Window w = begin_window();
              std::optional<std::string> got = cache->get(key);
              end_window(w);
              got ? ++own_present : ++own_absent;
              Allowed a = allowed(e, w);
              Failure f = kWrong;
              std::string why = check_own(key, writer, e, got, a, &f);
              if (!why.empty() && state == InFlight::kInvoked && j->inflight_slot == slot) {
                // The op the last incarnation had in flight: either outcome.
                ++in_doubt;
                Allowed b = allowed(j->inflight_entry, w);
                Failure f2 = kWrong;
                if (check_own(key, writer, j->inflight_entry, got, b, &f2).empty()) why.clear();
              }
              if (!why.empty()) {
                fail(f, "final check: own slot " + std::to_string(slot) + " of writer " +
                            std::to_string(writer) + " (process " + std::to_string(p) + " thread " +
                            std::to_string(t) + "): " + why);
              }
            }
            munmap(j, sizeof(Journal));
            std::string pops = lilcache::test::read_file(base + ".pops");
            for (std::size_t at = 0; at + 16 <= pops.size(); at += 16) {
              std::uint64_t rec[2];
              std::memcpy(rec, pops.data() + at, 16);
              popped.push_back(rec[0] << 40 | rec[1]);
            }
          }
        }
        popped_total = popped.size();
        std::sort(popped.begin(), popped.end());
        for (std::size_t i = 1; i < popped.size(); ++i) {
          if (popped[i] == popped[i - 1]) {
            fail(kPoppedTwice, "writer " + std::to_string(popped[i] >> 40) + " seq " +
                                   std::to_string(popped[i] & ((1ull << 40) - 1)) +
                                   " was popped twice");
          }
        }
        for (std::uint32_t i = 0; i < cfg_.shared_keys; ++i) {
          const std::string key = shared_key(i);
          std::optional<std::string> got = cache->get(key);
          ++shared_checked;
          if (!got) continue;
          std::string why;
          auto info = check_value(key, *got, &why);
          if (!info) {
            fail(kTorn, "final check: shared key " + std::to_string(i) + ": " + why);
          } else if (std::binary_search(popped.begin(), popped.end(),
                                        std::uint64_t{info->writer} << 40 | info->seq)) {
            fail(kPoppedBack, "final check: shared key " + std::to_string(i) + " holds writer " +
                                  std::to_string(info->writer) + " seq " +
                                  std::to_string(info->seq) + ", which was popped");
          }
        }
        // Nothing writes any more, but keys with a TTL may still expire: the
        // count of a listing lies between size() before it and size() after.
        const std::size_t size_before = cache->size();
        cache->for_each([&](std::string_view k, std::string_view v) {
          ++listed;
          std::string why;
          if (!check_any(k, v, &why)) fail(kTorn, "final for_each: " + why);
          return true;
        });
        final_stats_ = cache->stats();
        std::size_t size = cache->size();
        if (listed > size_before || listed < size) {
          fail(kWrong, "for_each listed " + std::to_string(listed) + " keys, size() said " +
                           std::to_string(size_before) + " before and " + std::to_string(size) +
                           " after");
        }
      }
    }
    const auto after = lilcache::test::process_resources(cache_dir);
    if (after.fds_under != 0 || after.maps_under != 0 || after.fds != before.fds) {
      fail(kLeak, "the verifying process after closing: " + after.describe());
    }
    std::uint64_t failures = 0;
    for (int f = 0; f < kNumFailures; ++f) failures += A(g_control->failures[f]).load();
    std::uint64_t clean = 0;
    for (std::uint32_t p = 0; p < cfg_.processes; ++p) clean += g_control->procs[p].clean_exits;
    std::uint64_t recoveries = 0;
    {
      std::string log = lilcache::test::read_file(cache_dir + "/" + kName + ".log");
      for (std::size_t at = 0; (at = log.find("recovering ", at)) != std::string::npos; ++at) {
        ++recoveries;
      }
      // Debug builds check each online compaction's switch (compaction.cc, CheckSwitch).
      for (std::size_t at = 0;
           (at = log.find("compaction invariant violated", at)) != std::string::npos; ++at) {
        fail(kLost, "the cache log says: " + log.substr(at, log.find('\n', at) - at));
      }
    }
    // The summary line.
    auto c = [&](Counter k) { return std::to_string(A(g_control->counters[k]).load()); };
    auto u = [](std::uint64_t x) { return std::to_string(x); };
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.0f", run_seconds_);
    std::string line =
        "torture: " + u(cfg_.processes) + " processes x " + u(cfg_.threads) + " threads, " + secs +
        " s, kill interval " + u(cfg_.kill_interval_ms) + " ms: " + u(kills_) + " kills (" +
        u(mass_kills_) + " rounds killing all), " + u(retired_) + " clean restarts, " + u(starts_) +
        " starts, " + u(clean) + " clean exits checked for leaks, " + u(recoveries) +
        " recoveries; ops " + c(kOps) + " (sets " + c(kSets) + ", ttl sets " + c(kTtlSets) +
        ", own gets " + c(kOwnGets) + ", own pops " + c(kOwnPops) + ", erases " + c(kErases) +
        ", shared sets " + c(kSharedSets) + ", shared gets " + c(kSharedGets) + ", shared pops " +
        c(kSharedPops) + " hitting " + c(kSharedPopHits) + ", purges " + c(kPurges) +
        ", compact() " + c(kCompactions) + ", snapshot() " + c(kSnapshots) + ", for_each " +
        c(kForEach) + ", increments " + c(kIncrements) + ", counter CAS rounds " + c(kCounterCas) +
        " winning " + c(kCounterCasWins) + ", counter gets " + c(kCounterGets) + ", adds " +
        c(kAdds) + " winning " + c(kAddWins) + ", shared CAS " + c(kSharedCas) + " winning " +
        c(kSharedCasWins) + ", compare_and_erase wins " + c(kSharedCaeWins) +
        ", touch/persist hits " + c(kTouches) + ", ttl " + c(kTtls) + ", get_or_set " +
        c(kGetOrSets) + ", get_many " + c(kBatchGets) + ", set_many " + c(kBatchSets) +
        ", erase_many " + c(kBatchErases) + "); generations " + u(final_stats_.generation) +
        " (compactions " + u(final_stats_.compactions) + ", snapshots " +
        u(final_stats_.snapshots) + "); in-doubt ops of killed threads " + c(kResolvedInDoubt) +
        " (with refused writes: took effect " + c(kInDoubtTookEffect) + ", did not " +
        c(kInDoubtDidNot) + "); verified: " + u(own_present + own_absent) + " own slots (" +
        u(own_present) + " present, " + u(own_absent) + " absent, " + u(in_doubt) +
        " in doubt at the end), " + u(shared_checked) + " shared keys, " + u(popped_total) +
        " pops unique, " + u(listed) + " live keys intact;";
    for (int f = 0; f < kNumFailures; ++f) {
      line += std::string(" ") + kFailureNames[f] + " " + u(A(g_control->failures[f]).load()) +
              (f + 1 < kNumFailures ? "," : "");
    }
    char full[512];
    if (disk_mounted_ || full_len_ > 0) {
      std::snprintf(full, sizeof full,
                    "; full disk (%u MiB tmpfs): %.1f s held full by a filler of up to %.1f MiB, "
                    "writes refused %s (outside the phase %s), gets while full %s, sets "
                    "acknowledged while full %s, writes resumed %s",
                    cfg_.disk_mib, full_held_s_, static_cast<double>(filler_max_) / (1 << 20),
                    c(kNoSpace).c_str(), c(kNoSpaceOutside).c_str(), c(kGetsWhileFull).c_str(),
                    c(kSetsWhileFull).c_str(),
                    resumed_after_ms_ == UINT64_MAX
                        ? "never"
                        : ("after " + u(resumed_after_ms_) + " ms").c_str());
    } else {
      std::snprintf(full, sizeof full, "; %s", disk_note_.c_str());
    }
    line += std::string(full) + "; fork children: " + c(kForkIdle) + " idle, " + c(kForkExit) +
            " exiting, " + c(kForkUse) + " using the cache (" + c(kForkOps) + " ops), " +
            u(orphans_) + " reaped after their worker died; calm phase " +
            std::to_string(static_cast<int>(calm_len_)) + " s, " + audit_note_;
    line += failures == 0 ? " => PASS" : " => FAIL";
    std::printf("%s\n", line.c_str());
    if (failures != 0) {
      std::uint64_t n = std::min<std::uint64_t>(A(g_control->messages).load(), kMaxFailures);
      std::fprintf(stderr, "lilcache-torture: %llu failures; the first %llu:\n",
                   static_cast<unsigned long long>(failures), static_cast<unsigned long long>(n));
      for (std::uint64_t i = 0; i < n; ++i) std::fprintf(stderr, "  %s\n", g_control->message[i]);
      std::fprintf(stderr,
                   "lilcache-torture: files kept in %s (the cache as the workers left it: "
                   "%s; inspect with lilcache-dump --root DIR %s --records)\n",
                   cfg_.root.c_str(), evidence.c_str(), kName);
    }
    std::fflush(stdout);
    return failures == 0 ? 0 : 1;
  }

  Config cfg_;
  std::mt19937_64 rng_;
  std::vector<Worker> workers_;
  std::uint64_t kills_ = 0, mass_kills_ = 0, kill_rounds_ = 0, starts_ = 0, retired_ = 0;
  lilcache::Stats final_stats_{};
  double run_seconds_ = 0;
  // Full-disk phase.
  bool disk_mounted_ = false, full_ = false, resume_pending_ = false;
  std::string disk_note_;
  double full_len_ = 0, full_held_s_ = 0;
  Clock::time_point full_began_at_;
  int filler_fd_ = -1;
  std::uint64_t filler_bytes_ = 0, filler_max_ = 0, writes_at_full_end_ = 0;
  std::uint64_t resumed_after_ms_ = UINT64_MAX;
  Clock::time_point full_ended_at_;
  // Calm phase, audit, fork children, watchdog.
  double calm_len_ = 0;
  bool calm_compacted_ = false, stalled_ = false;
  std::string audit_note_;
  std::uint64_t orphans_ = 0, last_ops_ = 0;
  std::uint64_t audits_ = 0, audit_records_ = 0, audit_keys_ = 0, audit_max_records_ = 0,
                audit_violations_ = 0;
  Clock::time_point last_progress_;
};

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  CLI::App app(
      "lilcache-torture: SIGKILL torture of N processes x M threads on one cache, "
      "then a check that nothing acknowledged was lost and nothing torn was read");
  app.add_option("--processes", cfg.processes, "worker processes")
      ->check(CLI::Range(1u, kMaxProcesses));
  app.add_option("--threads", cfg.threads, "threads per worker")
      ->check(CLI::Range(1u, kMaxThreads));
  app.add_option("--seconds", cfg.seconds,
                 "duration of the kill loop ($LILCACHE_TORTURE_SECONDS, if set, overrides it: "
                 "./build.sh test-asan and test-tsan shorten the CI run so)")
      ->check(CLI::PositiveNumber);
  app.add_option("--kill-interval-ms", cfg.kill_interval_ms,
                 "mean time between kills (uniform in [k/2, 3k/2])")
      ->check(CLI::Range(1u, 3'600'000u));
  app.add_option("--mass-kill-every", cfg.mass_kill_every,
                 "every Nth kill kills every worker at once (0 = never)");
  app.add_option("--slots", cfg.slots, "own key slots per thread")
      ->check(CLI::Range(1u, kMaxSlots));
  app.add_option("--shared-keys", cfg.shared_keys, "shared keys for set/pop")
      ->check(CLI::Range(1u, 100000u));
  app.add_option("--counter-keys", cfg.counter_keys, "counter keys every thread increments")
      ->check(CLI::Range(1u, 100000u));
  app.add_option("--root", cfg.root,
                 "directory for the cache and the journals (default: a new "
                 "temporary directory, removed if every check passes)");
  app.add_flag("--keep", cfg.keep, "keep the directory even if every check passes");
  app.add_option("--seed", cfg.seed, "random seed (default: random)");
  app.add_option("--fork-interval-ms", cfg.fork_interval_ms,
                 "thread 0 of each worker forks a child (idle, exiting or using the cache) every "
                 "so often, uniform in [k/2, 3k/2] (0 = never)");
  app.add_option("--disk-mib", cfg.disk_mib,
                 "the cache lives on a tmpfs of this size, filled up in the full-disk phase "
                 "(0 = no tmpfs, no full-disk phase; needs root)");
  app.add_option("--full-seconds", cfg.full_seconds,
                 "length of the full-disk phase (default: a tenth of the run, 2-20 s)");
  app.add_option("--calm-seconds", cfg.calm_seconds,
                 "final phase without kills, before the audit (default: a tenth of the run, "
                 "2-30 s)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (const char* env = std::getenv("LILCACHE_TORTURE_SECONDS"); env != nullptr && *env != '\0') {
    char* end = nullptr;
    double v = std::strtod(env, &end);
    if (end == env || *end != '\0' || !(v > 0)) {
      std::fprintf(stderr,
                   "lilcache-torture: LILCACHE_TORTURE_SECONDS=%s is not a positive number\n", env);
      return 2;
    }
    cfg.seconds = v;
  }
  if (cfg.seed == 0) cfg.seed = std::random_device{}() ^ mono_ns();
  bool temporary = cfg.root.empty();
  if (temporary) {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/lilcache-torture-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) {
      std::fprintf(stderr, "lilcache-torture: mkdtemp: %s\n", std::strerror(errno));
      return 1;
    }
    cfg.root = tmpl;
  } else if (fs::exists(cfg.root) && !fs::is_empty(cfg.root)) {
    std::fprintf(stderr, "lilcache-torture: --root %s is not empty\n", cfg.root.c_str());
    return 2;
  }
  std::printf("lilcache-torture: seed %llu, root %s\n", static_cast<unsigned long long>(cfg.seed),
              cfg.root.c_str());
  std::fflush(stdout);
  int rc = 1;
  try {
    rc = Supervisor(cfg).Run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lilcache-torture: %s\n", e.what());
    return 1;
  }
  if (rc == 0 && temporary && !cfg.keep) fs::remove_all(cfg.root);
  return rc;
}
