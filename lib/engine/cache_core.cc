#include "engine/cache_core.h"

#include <thread>

#include "engine/file_lock.h"
#include "lilcache/env.h"
#include "lilcache/lilcache.h"

namespace lilcache {

std::unique_ptr<Meta> CacheCore::Adopt(std::unique_ptr<Meta> meta, std::size_t slot,
                                       std::shared_ptr<spdlog::logger> logger) {
  std::unique_ptr<Meta> parents = std::exchange(meta_, std::move(meta));
  slot_ = slot;
  retired_loggers_.push_back(std::exchange(logger_, std::move(logger)));
  MutexLock lock(&refresh_mu_);
  for (auto& g : generations_) g->data.set_logger(logger_.get());
  return parents;
}

void CacheCore::Close() {
  // Before the meta file goes: the counts of this handle's operations.
  if (meta_) FlushCounters();
  {
    MutexLock lock(&refresh_mu_);
    current_.store(nullptr, std::memory_order_seq_cst);
    for (auto& g : generations_) g->Close();
  }
  // Outside refresh_mu_: Close() takes ForkMutex(), which the fork prepare
  // handler holds while it takes refresh_mu_.
  if (meta_) meta_->Close();
}

void CacheCore::ResetInChild() {
  // refresh_mu_ is held by this thread (LockForFork), so generations_ is
  // whole. The parent's other threads are gone with any other mutex they held.
  for (auto& g : generations_) g->data.ResetAfterFork();
  refresh_mu_.Unlock();
  compact_mu_.ResetAfterFork();
  // The unflushed counts copied from the parent are the parent's: it
  // flushes them into its own slot. Relaxed: no other thread exists yet.
  for (auto& stripe : counters_) {
    for (auto& n : stripe.n) n.store(0, std::memory_order_relaxed);
  }
  // Relaxed: no other thread exists yet.
  throttle_check_at_.store(0, std::memory_order_relaxed);
}

// ---- generations ------------------------------------------------------------

void CacheCore::Refresh() {
  MutexLock lock(&refresh_mu_);
  for (int attempt = 0;; ++attempt) {
    // Acquire: pairs with the compactor's release of the new generation
    // number, published after its files were renamed into place.
    std::uint64_t gen = Shared(meta_->header().generation).load(std::memory_order_acquire);
    Generation* cur = current_.load(std::memory_order_relaxed);
    if (cur != nullptr && cur->number == gen) return;
    // Reuse the object of a released generation (one per switch leaked
    // otherwise: ~650 bytes per switch and process, forever). It cannot be
    // freed: a thread in Pin() that loaded current_ before that generation
    // was retired may still bump its stripe of `pins` and, seeing current_
    // changed, drop it again; both touch only `pins`, never reset, and if
    // the object is current again by the time such a thread re-checks
    // current_, it holds a valid pin on the new generation, opened before
    // the seq_cst store below published it.
    RetireUnpinned();  // first, so that what was retired last time is reusable now
    Generation* g = nullptr;
    for (auto& old : generations_) {
      if (old->released) {
        g = old.get();
        break;
      }
    }
    if (g == nullptr) {
      generations_.push_back(std::make_unique<Generation>());
      g = generations_.back().get();
      g->released = true;  // not in use until opened below
    }
    try {
      g->Open(env_, paths_, gen, salt_);
      g->data.set_logger(logger_.get());
    } catch (const Error&) {
      g->Close();  // whatever was opened; the object stays released
      // A newer compaction may have replaced `gen` before we opened it.
      if (attempt < 100 &&
          Shared(meta_->header().generation).load(std::memory_order_acquire) != gen) {
        continue;
      }
      throw;
    }
    g->released = false;
    current_.store(g, std::memory_order_seq_cst);
    logger_->debug("now on generation {}", gen);
    RetireUnpinned();
    return;
  }
}

void CacheCore::RetireNow() {
  MutexLock lock(&refresh_mu_);
  RetireUnpinned();
}

void CacheCore::RetireUnpinned() {
  // A released object is reused by the next Refresh(): generations_ holds
  // at most the generations pinned at once, plus the current one.
  Generation* cur = current_.load(std::memory_order_relaxed);
  for (auto& g : generations_) {
    if (g.get() == cur || g->released) continue;
    // seq_cst loads of every stripe (Pinned): see Pin().
    if (g->Pinned()) continue;
    g->Close();
    g->released = true;
  }
}

// ---- stats counters ---------------------------------------------------------

namespace {
// The ProcessSlot field of each CacheCore::Counter.
constexpr std::uint64_t ProcessSlot::*kSlotField[CacheCore::kCounters] = {
    &ProcessSlot::hits, &ProcessSlot::misses, &ProcessSlot::sets, &ProcessSlot::deletes,
    &ProcessSlot::expired};
}  // namespace

void CacheCore::FlushStripe(std::size_t stripe) {
  ProcessSlot& slot = my_slot();
  for (int c = 0; c < kCounters; ++c) {
    // Relaxed: statistics. The exchange takes exactly what was counted so
    // far, whichever threads of this stripe counted it; the slot gets it
    // once (unsigned arithmetic: a net decrement wraps around correctly).
    std::uint64_t v = counters_[stripe].n[c].exchange(0, std::memory_order_relaxed);
    if (v != 0) Shared(slot.*kSlotField[c]).fetch_add(v, std::memory_order_relaxed);
  }
}

void CacheCore::FlushCounters() {
  for (std::size_t i = 0; i < kStripes; ++i) FlushStripe(i);
}

std::uint64_t CacheCore::Unflushed(Counter c) const {
  std::uint64_t sum = 0;
  // Relaxed: statistics; a stripe being flushed by another thread right
  // now may be missed (it is in neither place for a moment).
  for (const auto& stripe : counters_) sum += stripe.n[c].load(std::memory_order_relaxed);
  return sum;
}

// ---- durability -------------------------------------------------------------

void CacheCore::SyncMeta() { meta_->Sync(); }

void CacheCore::RaiseDurableGen(std::uint64_t gen) {
  auto durable = Shared(meta_->header().durable_gen);
  std::uint64_t cur = durable.load(std::memory_order_seq_cst);
  while (cur < gen && !durable.compare_exchange_weak(cur, gen, std::memory_order_seq_cst)) {
  }
}

void CacheCore::MakeDurable(Generation& g) {
  // The whole data file: a compaction's copies (an automatic compaction
  // never syncs them), and every record written since, by any process.
  if (env_->Fsync(g.data.file().fd()) != 0) ThrowErrno("fsync", g.data.path());
  // Its name, once: whoever raised durable_gen to g had fsynced the directory.
  if (durable_gen() < g.number) {
    if (env_->FsyncDir(paths_.root.c_str()) != 0) ThrowErrno("fsync", paths_.root);
    RaiseDurableGen(g.number);
  }
  SyncMeta();
}

// ---- the writer side of a compactor's pause ---------------------------------

void CacheCore::WaitWhileSwitching() {
  auto state = Shared(meta_->header().writer_state);
  std::uint64_t start = env_->MonotonicNanos();
  std::uint64_t next_check = 1'000'000;  // ns
  for (int spins = 0; (state.load(std::memory_order_acquire) & kSwitchingBit) != 0; ++spins) {
    if (spins < 100) {
      std::this_thread::yield();
      continue;
    }
    env_->SleepMicros(50);
    std::uint64_t waited = env_->MonotonicNanos() - start;
    if (waited < next_check) continue;
    next_check = waited + 5'000'000;
    ClearPauseIfCompactorDied();
  }
}

void CacheCore::Throttled() {
  env_->SleepMicros(kThrottleMicros);
  // Every 5 ms of throttling in this process, check the compactor is alive.
  std::uint64_t now = env_->MonotonicNanos();
  std::uint64_t due = throttle_check_at_.load(std::memory_order_relaxed);
  if (due == 0) {
    throttle_check_at_.compare_exchange_strong(due, now + 5'000'000, std::memory_order_relaxed);
  } else if (now >= due &&
             throttle_check_at_.compare_exchange_strong(due, 0, std::memory_order_relaxed)) {
    ClearPauseIfCompactorDied();
  }
}

void CacheCore::ClearPauseIfCompactorDied() {
  // Is a compactor alive? If we can take the COMPACT lock, none is: the
  // pause was left by a compactor that died. Our own compactor thread, if
  // any, holds compact_mu_.
  if (!compact_mu_.TryLock()) return;
  try {
    ClearPauseOfDeadCompactor();
  } catch (...) {
    compact_mu_.Unlock();
    throw;
  }
  compact_mu_.Unlock();
}

void CacheCore::ClearPauseOfDeadCompactor() {
  FileLock lock = FileLock::TryAcquire(env_, meta_->file(), kCompactLockByte);
  if (!lock.held()) return;
  auto state = Shared(meta_->header().writer_state);
  // seq_cst: part of the writer handshake (see WriterSection).
  std::uint32_t old = state.fetch_and(~(kSwitchingBit | kThrottleBit), std::memory_order_seq_cst);
  if ((old & (kSwitchingBit | kThrottleBit)) != 0) {
    logger_->warn("cleared a writer pause left by a compactor that died");
  }
}

}  // namespace lilcache
