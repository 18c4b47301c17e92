// operation: what every Cache::Impl operation stands on: argument checks,
// a pinned generation (PinGuard) and the writer section (WriterSection).
// Used by cache_impl.cc (set, pop, reads) and cache_update.cc (conditional
// writes, get_or_set, batches).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "engine/cache_core.h"
#include "format/shared_atomic.h"
#include "lilcache/lilcache.h"

namespace lilcache {

inline void CheckKey(std::string_view key) {
  if (key.empty()) {
    throw Error(ErrorCode::invalid_argument,
                "invalid key: empty (keys are 1.." + std::to_string(kMaxKeyBytes) + " bytes)");
  }
  if (key.size() > kMaxKeyBytes) {
    throw Error(ErrorCode::limit,
                "key too long: " + std::to_string(key.size()) +
                    " bytes (limit kMaxKeyBytes = " + std::to_string(kMaxKeyBytes) + ")");
  }
}

inline void CheckValue(std::string_view value) {
  if (value.size() > kMaxValueBytes) {
    throw Error(ErrorCode::limit,
                "value too large: " + std::to_string(value.size()) +
                    " bytes (limit kMaxValueBytes = " + std::to_string(kMaxValueBytes) + ")");
  }
}

// Counts bytes of g's data file that no slot points to any more.
inline void AddDead(Generation& g, std::uint64_t bytes) {
  // Relaxed: a statistic that triggers compaction; no data depends on it.
  Shared(g.data.header().dead_bytes).fetch_add(bytes, std::memory_order_relaxed);
}

// Unpins a generation when leaving scope.
class PinGuard {
 public:
  explicit PinGuard(Generation* g) : g_(g) {}
  ~PinGuard() { CacheCore::Unpin(g_); }
  PinGuard(const PinGuard&) = delete;
  PinGuard& operator=(const PinGuard&) = delete;
  Generation* get() const { return g_; }

 private:
  Generation* g_;
};

// ---- WriterSection ----------------------------------------------------------
// Announces a write in this process's slot for the current writer epoch and
// pins the current generation; see docs/format.md ("Process slot") and
// docs/concurrency.md. While a compactor has set SWITCHING, waits.
class WriterSection {
 public:
  explicit WriterSection(CacheCore& c) : c_(c) {
    auto state = Shared(c.meta().header().writer_state);
    bool throttled = false;
    for (;;) {
      // seq_cst on the state loads and the counter updates: the Dekker-style
      // handshake with a compactor (it flips/sets the state, then reads the
      // counters) needs a single total order of these four operations.
      std::uint32_t s = state.load(std::memory_order_seq_cst);
      if ((s & kSwitchingBit) != 0) {
        c.WaitWhileSwitching();
        c.Refresh();
        continue;
      }
      if ((s & kThrottleBit) != 0 && !throttled) {
        c.Throttled();  // once per write, before it counts as in flight
        throttled = true;
        continue;
      }
      epoch_ = static_cast<int>(s & kEpochBit);
      Counter().fetch_add(1, std::memory_order_seq_cst);
      if (state.load(std::memory_order_seq_cst) != s) {
        Leave();
        continue;
      }
      gen_ = c.Pin();
      // seq_cst: must not be satisfied by a value older than the state we read.
      if (gen_->number == Shared(c.meta().header().generation).load(std::memory_order_seq_cst)) {
        return;
      }
      Leave();
      c.Refresh();
    }
  }
  ~WriterSection() { Leave(); }
  WriterSection(const WriterSection&) = delete;
  WriterSection& operator=(const WriterSection&) = delete;

  Generation& gen() const { return *gen_; }

 private:
  std::atomic_ref<std::uint64_t> Counter() { return Shared(c_.my_slot().inflight[epoch_]); }
  void Leave() {
    if (gen_ != nullptr) CacheCore::Unpin(gen_);
    gen_ = nullptr;
    // seq_cst: a compactor that reads 0 here must also see everything this
    // write did (the CAS that published the record happened before).
    if (epoch_ >= 0) Counter().fetch_sub(1, std::memory_order_seq_cst);
    epoch_ = -1;
  }

  CacheCore& c_;
  int epoch_ = -1;
  Generation* gen_ = nullptr;
};

}  // namespace lilcache
