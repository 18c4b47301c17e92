// http_limits: what bounds the resources of the HTTP server as a whole.
//
// - MemoryBudget and BudgetHold: a server-wide budget of bytes for request
//   bodies being received and responses being sent, so that no number of
//   connections (16 clients sending 63 MiB bodies, or asking for 60 MiB values
//   and never reading them) grows the server's memory past it.
// - LineLimiter: at most N log lines of a kind per second, and a count of
//   those suppressed, so that a flood of bad requests cannot grow the log at
//   disk speed.
// - The descriptor arithmetic of the connection cap (RLIMIT_NOFILE).
//
// docs/rest.md ("Limits and timeouts") is the specification.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include "util/mutex.h"

namespace lilcache {

// Bodies and responses up to this size are not charged to the budget: they
// are bounded per connection already (max_connections of them at most).
inline constexpr std::size_t kUnchargedBytes = 64 * 1024;

// Batches (POST /batch/get and /batch/set, docs/rest.md "Batches"): items in
// one request (413 over it), the body of one request (413 over it, from its
// Content-Length before it is read, or as a chunked body grows), and the
// bytes of values one /batch/get answer may carry (413 over it: ask for fewer
// keys). So a batch holds at most about 16 MiB of body or values (the JSON of
// an answer up to 6 times that for values full of control characters), never
// the cache's 64 MiB per value times the items.
inline constexpr std::size_t kMaxBatchItems = 1000;
inline constexpr std::size_t kMaxBatchBodyBytes = 16 * 1024 * 1024;
inline constexpr std::size_t kMaxBatchAnswerBytes = 16 * 1024 * 1024;

// A budget of bytes shared by every connection of a server (any thread).
class MemoryBudget {
 public:
  explicit MemoryBudget(std::size_t limit) : limit_(limit) {}
  MemoryBudget(const MemoryBudget&) = delete;
  MemoryBudget& operator=(const MemoryBudget&) = delete;

  // Takes n bytes if used() + n stays within the limit; else takes nothing.
  bool TryReserve(std::size_t n);
  // Takes n bytes even over the limit (what cannot be refused any more).
  void Force(std::size_t n) { used_.fetch_add(n, std::memory_order_relaxed); }
  void Release(std::size_t n) { used_.fetch_sub(n, std::memory_order_relaxed); }

  std::size_t used() const { return used_.load(std::memory_order_relaxed); }
  std::size_t limit() const { return limit_; }

 private:
  const std::size_t limit_;
  // Relaxed everywhere: a counter in this process's memory through which no
  // other data is published. TryReserve's compare-exchange makes each
  // reservation see the sum of all earlier ones, so the sum never passes the
  // limit except through Force().
  std::atomic<std::size_t> used_{0};
};

// Bytes held from a MemoryBudget, given back on destruction (RAII). Move-only.
// Without a budget (nullptr) every request succeeds and nothing is counted.
class BudgetHold {
 public:
  BudgetHold() = default;
  explicit BudgetHold(MemoryBudget* budget) : budget_(budget) {}
  ~BudgetHold() { Reset(); }
  BudgetHold(BudgetHold&& other) noexcept : budget_(other.budget_), held_(other.held_) {
    other.held_ = 0;
  }
  BudgetHold& operator=(BudgetHold&& other) noexcept;
  BudgetHold(const BudgetHold&) = delete;
  BudgetHold& operator=(const BudgetHold&) = delete;

  // Holds at least n bytes in all: false (holding what it held) if the budget
  // cannot give the difference.
  bool GrowTo(std::size_t n);
  // Holds exactly n bytes: shrinks, or grows even over the budget's limit.
  void ForceTo(std::size_t n);
  void Reset() { ForceTo(0); }
  std::size_t held() const { return held_; }

 private:
  MemoryBudget* budget_ = nullptr;
  std::size_t held_ = 0;
};

// Rate limit of one kind of log line: at most `per_window` lines per window
// (one second by default). Thread-safe.
class LineLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  explicit LineLimiter(unsigned per_window = 10, Clock::duration window = std::chrono::seconds(1))
      : per_window_(per_window), window_(window) {}

  // Whether a line may be written at `now`. When it may, *suppressed is the
  // number of lines refused since the last one allowed (to say so in it).
  bool Allow(Clock::time_point now, std::uint64_t* suppressed);

  // The lines refused in windows that have ended and that no allowed line
  // reported yet (0 if none); counts them as reported. For a periodic
  // "N more suppressed" summary once a flood stops.
  std::uint64_t TakeSuppressed(Clock::time_point now);

 private:
  const unsigned per_window_;
  const Clock::duration window_;
  Mutex mu_;
  Clock::time_point window_start_ GUARDED_BY(mu_) = Clock::time_point();
  unsigned allowed_ GUARDED_BY(mu_) = 0;          // lines allowed in this window
  std::uint64_t suppressed_ GUARDED_BY(mu_) = 0;  // refused, not reported yet
};

// Descriptors a server keeps out of its connection cap: for the cache (its
// meta, text log, the data and index of two generations during a compaction,
// the directory fsync: 8 at most), the process's standard streams, the
// listening socket, the spdlog sinks, and per event loop an epoll, an eventfd
// and a timerfd (3 per thread); plus room for whatever else the process
// opens (a library user's own files). 64 + 4 per thread.
std::size_t ReservedDescriptors(unsigned threads);

// The connection cap and the refusal slots (connections over the cap that get
// a 503 before they are closed) that `nofile` descriptors allow with
// `threads` event loops: connections + refusals + ReservedDescriptors <=
// nofile. refusals = min(64, available / 16). connections >= 1.
struct ConnectionCaps {
  std::size_t connections = 0;
  std::size_t refusals = 0;
};
ConnectionCaps CapsForDescriptors(std::uint64_t nofile, unsigned threads);

// The soft RLIMIT_NOFILE (RLIM_INFINITY as a large number).
std::uint64_t SoftFileLimit();

// Raises the soft RLIMIT_NOFILE to the hard one. Returns the soft limit now.
std::uint64_t RaiseFileLimit();

}  // namespace lilcache
