// cache_core: what a cache handle and its compactor both need: the Env, the
// paths, the meta file, the logger, the salt, this process's slot, and the
// generations this process maps (pin, refresh, retire), plus the writer side
// of a compactor's pause. Owned by Cache::Impl (cache_impl.h), which runs
// the compactions (compaction.h) and recovery (recovery.h); they take the
// core, never the handle: cache_impl -> compaction/recovery -> core.
//
// Concurrency contract (docs/concurrency.md has the full argument):
//  * env, paths and salt never change once the cache is open. meta, logger
//    and slot change only when a fork child re-attaches (Adopt), under
//    Cache::Impl's attach mutex, before the release store of the handle's
//    fork epoch that every operation acquires first (cache_impl.h).
//  * current_ is read lock-free (Pin); refresh_mu_ serializes its swaps and
//    guards generations_. Pins and stats counters are per thread stripe
//    (generation.h ThreadStripe): a get writes only its own thread's lines.
//  * compact_mu_: one compactor per process (compaction.h); the writer pause
//    check (ClearPauseIfCompactorDied) tries it, so that it never clears a
//    pause of this process's own compactor.
#pragma once

#include <spdlog/logger.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/generation.h"
#include "engine/meta.h"
#include "format/shared_atomic.h"
#include "util/mutex.h"
#include "util/names.h"

namespace lilcache {

class Env;

class CacheCore {
 public:
  CacheCore(Env* env, CachePaths paths) : env_(env), paths_(std::move(paths)) {}
  CacheCore(const CacheCore&) = delete;
  CacheCore& operator=(const CacheCore&) = delete;

  Env* env() const { return env_; }
  const CachePaths& paths() const { return paths_; }
  Meta& meta() { return *meta_; }
  spdlog::logger& logger() { return *logger_; }
  std::uint64_t salt() const { return salt_; }
  ProcessSlot& my_slot() { return meta_->slot(slot_); }
  std::size_t my_slot_index() const { return slot_; }
  // One compactor per process (compaction.h).
  Mutex& compact_mutex() RETURN_CAPABILITY(compact_mu_) { return compact_mu_; }
  // The cache's size limit (meta max_bytes; 0 = none). Relaxed: a setting,
  // no data depends on when a process sees it change.
  std::uint64_t max_bytes() const {
    return Shared(meta_->header().max_bytes).load(std::memory_order_relaxed);
  }

  // ---- attaching (the opening thread, or a fork child's Reattach) ----
  void set_logger(std::shared_ptr<spdlog::logger> logger) { logger_ = std::move(logger); }
  void set_meta(std::unique_ptr<Meta> meta) { meta_ = std::move(meta); }
  void set_salt(std::uint64_t salt) { salt_ = salt; }
  void set_slot(std::size_t slot) { slot_ = slot; }
  // A fork child's new descriptor of NAME.meta, slot and logger; returns the
  // parent's Meta (to unmap). The parent's logger is kept alive, unused: a
  // parent thread may hold its lock.
  std::unique_ptr<Meta> Adopt(std::unique_ptr<Meta> meta, std::size_t slot,
                              std::shared_ptr<spdlog::logger> logger) EXCLUDES(refresh_mu_);
  // Closes every generation and the meta file (the handle's destructor).
  void Close() EXCLUDES(refresh_mu_);

  // ---- generations ----
  // The current generation, pinned: its files stay mapped until Unpin.
  Generation* Pin() {
    const std::size_t stripe = ThreadStripe();
    for (;;) {
      Generation* g = current_.load(std::memory_order_seq_cst);
      // seq_cst pair with Refresh(): it stores current_ then reads every
      // stripe of the old generation's pins (RetireUnpinned); we bump our
      // stripe then re-read current_. In the single total order of seq_cst
      // operations one of us sees the other, so a generation is never
      // unmapped under a pinned reader. Our stripe's line is written by
      // this thread only (up to kStripes threads), so this RMW stays in
      // our core's cache; current_ is only read.
      std::atomic<std::int64_t>* mine = &g->pins[stripe].n;
      mine->fetch_add(1, std::memory_order_seq_cst);
      if (current_.load(std::memory_order_seq_cst) == g) [[likely]] {
        return g;
      }
      // Release as in Unpin.
      mine->fetch_sub(1, std::memory_order_release);
    }
  }
  // Must run on the thread that pinned g (its stripe). Release: our reads
  // of g's mappings happen before a retirer that sees the stripe drop
  // (its seq_cst load) unmaps them.
  static void Unpin(Generation* g) {
    g->pins[ThreadStripe()].n.fetch_sub(1, std::memory_order_release);
  }
  // The current generation (or null before the first Refresh), unpinned:
  // for a text log line or the thread that just refreshed.
  Generation* current() const { return current_.load(std::memory_order_acquire); }
  // Makes the generation named by the meta file this process's current one.
  void Refresh() EXCLUDES(refresh_mu_);
  // Unmaps retired generations that no thread pins any more.
  void RetireNow() EXCLUDES(refresh_mu_);

  // ---- stats counters (ProcessSlot hits..expired) ----
  // Counted per thread stripe in process memory and flushed into this
  // handle's process slot when a stripe's counter crosses a multiple of
  // kFlushEvery, at Close() and by FlushCounters(); stats() adds the
  // unflushed part (Unflushed). So a get writes no shared cache line.
  enum Counter { kHits, kMisses, kSets, kDeletes, kExpired, kCounters };
  static constexpr std::uint64_t kFlushEvery = 64;
  // Adds n (may be a two's-complement negative: -1 as ~0ull) to counter c.
  void Count(Counter c, std::uint64_t n = 1) {
    const std::size_t stripe = ThreadStripe();
    // Relaxed: a statistic, no data depends on it; the stripe's line is
    // written by this thread only (up to kStripes threads).
    std::uint64_t old = counters_[stripe].n[c].fetch_add(n, std::memory_order_relaxed);
    if (((old + n) ^ old) >= kFlushEvery) [[unlikely]] {
      FlushStripe(stripe);
    }
  }
  // Counts of this handle's operations not yet in its process slot.
  std::uint64_t Unflushed(Counter c) const;
  // Moves every stripe into the process slot (Close, tests).
  void FlushCounters();

  // ---- durability (docs/concurrency.md, "Durability") ----
  // msync of the meta file.
  void SyncMeta();
  // The newest generation known durable (meta durable_gen; 0 = none yet).
  // seq_cst: the Sync side of the handshake with a compactor's removal of
  // old files (RemoveStrayFiles, Cache::Impl::Sync).
  std::uint64_t durable_gen() const {
    return Shared(meta_->header().durable_gen).load(std::memory_order_seq_cst);
  }
  // Raises meta durable_gen to `gen` (never lowers it), once the data file
  // of `gen` and its name are durable. seq_cst, as durable_gen().
  void RaiseDurableGen(std::uint64_t gen);
  // Makes generation g durable: its whole data file, the directory (its
  // name; once per generation), then durable_gen and the meta page. The caller keeps g from
  // being retired and its files from being removed meanwhile (a writer
  // section), or checks afterwards that g is still current (Sync).
  void MakeDurable(Generation& g);

  // ---- the writer side of a compactor's pause (writer_state) ----
  // Blocks while a compactor has writers paused; clears the pause if the
  // compactor died (its COMPACT lock is free).
  void WaitWhileSwitching();
  // A write begins while a compactor asks writers to slow down (THROTTLE):
  // sleeps kThrottleMicros; clears a throttle left by a dead compactor.
  void Throttled();
  static constexpr std::uint64_t kThrottleMicros = 50;

  // ---- fork (Cache::Impl's ForkHook) ----
  // The prepare handler holds refresh_mu_ across the fork, so the child's
  // copy of generations_ is whole.
  void LockForFork() ACQUIRE(refresh_mu_) { refresh_mu_.Lock(); }
  void UnlockInParent() RELEASE(refresh_mu_) { refresh_mu_.Unlock(); }
  // The child's only thread: releases refresh_mu_ and starts every other
  // mutex (and its generations' ones) afresh (fork.h: no allocation, no
  // lock, no Env).
  void ResetInChild() RELEASE(refresh_mu_);

 private:
  // Clears SWITCHING/THROTTLE if no compactor holds the COMPACT lock.
  void ClearPauseIfCompactorDied() EXCLUDES(compact_mu_);
  void ClearPauseOfDeadCompactor() REQUIRES(compact_mu_);
  void RetireUnpinned() REQUIRES(refresh_mu_);  // unmaps retired generations nobody pins
  void FlushStripe(std::size_t stripe);

  Env* const env_;
  const CachePaths paths_;
  std::shared_ptr<spdlog::logger> logger_;
  std::vector<std::shared_ptr<spdlog::logger>> retired_loggers_;  // see Adopt
  std::unique_ptr<Meta> meta_;
  std::size_t slot_ = 0;
  std::uint64_t salt_ = 0;

  // Process-local parts of the stats counters, per ThreadStripe(); see Count.
  struct alignas(kCacheLine) CounterStripe {
    std::atomic<std::uint64_t> n[kCounters] = {};
  };
  std::array<CounterStripe, kStripes> counters_;

  std::atomic<Generation*> current_{nullptr};
  Mutex refresh_mu_;  // serializes swaps of current_
  // Current, retired and released (reusable) generations; never shrinks
  // while open (see Refresh), bounded by the generations pinned at once.
  std::vector<std::unique_ptr<Generation>> generations_ GUARDED_BY(refresh_mu_);
  Mutex compact_mu_;  // one compactor per process
  // When this process next checks that a throttling compactor is alive
  // (monotonic ns; 0 = not throttled lately). Relaxed: a heuristic.
  std::atomic<std::uint64_t> throttle_check_at_{0};
};

}  // namespace lilcache
