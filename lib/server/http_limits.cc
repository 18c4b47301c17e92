#include "server/http_limits.h"

#include <sys/resource.h>

#include <algorithm>
#include <utility>

namespace lilcache {

bool MemoryBudget::TryReserve(std::size_t n) {
  std::size_t used = used_.load(std::memory_order_relaxed);
  do {
    if (n > limit_ || used > limit_ - n) return false;
  } while (!used_.compare_exchange_weak(used, used + n, std::memory_order_relaxed));
  return true;
}

BudgetHold& BudgetHold::operator=(BudgetHold&& other) noexcept {
  if (this != &other) {
    Reset();
    budget_ = other.budget_;
    held_ = std::exchange(other.held_, 0);
  }
  return *this;
}

bool BudgetHold::GrowTo(std::size_t n) {
  if (n <= held_) return true;
  if (budget_ != nullptr && !budget_->TryReserve(n - held_)) return false;
  held_ = n;
  return true;
}

void BudgetHold::ForceTo(std::size_t n) {
  if (budget_ != nullptr) {
    if (n > held_) {
      budget_->Force(n - held_);
    } else if (n < held_) {
      budget_->Release(held_ - n);
    }
  }
  held_ = n;
}

bool LineLimiter::Allow(Clock::time_point now, std::uint64_t* suppressed) {
  MutexLock lock(&mu_);
  if (now - window_start_ >= window_) {
    window_start_ = now;
    allowed_ = 0;
  }
  if (allowed_ >= per_window_) {
    ++suppressed_;
    return false;
  }
  ++allowed_;
  *suppressed = std::exchange(suppressed_, 0);
  return true;
}

std::uint64_t LineLimiter::TakeSuppressed(Clock::time_point now) {
  MutexLock lock(&mu_);
  if (suppressed_ == 0 || now - window_start_ < window_) return 0;
  return std::exchange(suppressed_, 0);
}

std::size_t ReservedDescriptors(unsigned threads) { return 64 + 4 * std::size_t{threads}; }

ConnectionCaps CapsForDescriptors(std::uint64_t nofile, unsigned threads) {
  const std::size_t reserved = ReservedDescriptors(threads);
  const std::uint64_t available = nofile > reserved ? nofile - reserved : 0;
  ConnectionCaps caps;
  caps.refusals = static_cast<std::size_t>(std::min<std::uint64_t>(64, available / 16));
  caps.connections = static_cast<std::size_t>(
      std::max<std::uint64_t>(1, std::min<std::uint64_t>(SIZE_MAX / 2, available - caps.refusals)));
  return caps;
}

std::uint64_t SoftFileLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1024;
  return rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : rl.rlim_cur;
}

std::uint64_t RaiseFileLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);  // best effort: the cap follows what it got
  }
  return SoftFileLimit();
}

}  // namespace lilcache
