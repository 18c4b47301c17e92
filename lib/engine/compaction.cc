#include "engine/compaction.h"

#include <algorithm>
#include <roaring/roaring64map.hh>
#include <vector>

#include "engine/builder.h"
#include "engine/file_lock.h"
#include "format/shared_atomic.h"
#include "lilcache/env.h"
#include "util/quote.h"

namespace lilcache {

// THROTTLE in writer_state while engaged (docs/format.md); cleared on every
// exit. seq_cst like every writer_state update (the writer handshake).
class Throttle {
 public:
  explicit Throttle(std::atomic_ref<std::uint32_t> state) : state_(state) {}
  ~Throttle() {
    if (engaged_) state_.fetch_and(~kThrottleBit, std::memory_order_seq_cst);
  }
  Throttle(const Throttle&) = delete;
  Throttle& operator=(const Throttle&) = delete;
  void Engage() {
    if (!engaged_) state_.fetch_or(kThrottleBit, std::memory_order_seq_cst);
    engaged_ = true;
  }
  bool engaged() const { return engaged_; }

 private:
  std::atomic_ref<std::uint32_t> state_;
  bool engaged_ = false;
};

namespace {

constexpr std::uint64_t kDrainTimeoutNs = 5'000'000'000;  // a stopped writer aborts the switch
constexpr std::uint64_t kCatchUpThreshold = 32 << 10;     // pause when less than this is left
constexpr int kMaxCatchUpRounds = 64;                     // then pause whatever is left

// Waits until no live process has a write in flight in `epoch` (or in both
// epochs if epoch < 0). False on timeout (a stopped process).
bool Drain(CacheCore& c, int epoch) {
  Meta& m = c.meta();
  Env* env = c.env();
  std::uint64_t start = env->MonotonicNanos();
  for (std::size_t i = 0; i < kMaxProcesses; ++i) {
    ProcessSlot& s = m.slot(i);
    auto busy = [&] {
      // seq_cst: the compactor side of the writer handshake.
      std::uint64_t n = 0;
      for (int e = 0; e < 2; ++e) {
        if (epoch < 0 || epoch == e) n += Shared(s.inflight[e]).load(std::memory_order_seq_cst);
      }
      return n != 0;
    };
    for (int spins = 0; busy(); ++spins) {
      if (spins < 100) continue;
      if (i != c.my_slot_index() && !m.SlotAlive(i)) break;  // its owner died mid-write
      if (env->MonotonicNanos() - start > kDrainTimeoutNs) return false;
      env->SleepMicros(20);
    }
  }
  return true;
}

// Flips the writer epoch and waits for the writes of the old one.
bool FlipAndDrain(CacheCore& c) {
  auto state = Shared(c.meta().header().writer_state);
  std::uint32_t old = state.fetch_xor(kEpochBit, std::memory_order_seq_cst) & kEpochBit;
  return Drain(c, static_cast<int>(old));
}

// For each record in [from, to) of the old generation, copies what the OLD
// index says is current for its key, if newer than what the new one holds.
void CatchUp(CacheCore& c, Generation& old, Builder& b, std::uint64_t from, std::uint64_t to) {
  // Every live writer that reserved below `to` has finished (drained), so
  // space it took beyond the capacity belongs to a writer killed between its
  // reservation and the growth of the file: a hole with nothing to copy.
  // Acquire: pairs with the grower's release store.
  to = std::min(to, Shared(old.data.header().capacity).load(std::memory_order_acquire));
  if (from >= to) return;
  old.data.EnsureMapped(to);
  std::span<const char> region = old.data.Region(to);
  std::uint64_t now = c.env()->NowMillis();
  record::ForEachValidRecord(region, from, to, c.salt(), [&](std::uint64_t, record::RecordView r) {
    std::uint64_t hash = record::HashKey(r.key(), c.salt());
    Index::Probe gp = old.Find(r.key(), hash);
    if (gp.value == 0) return;  // never published (its writer died)
    record::RecordView cur = old.Record(Index::OffsetOf(gp.value));
    Index::Probe np = b.Find(r.key(), hash);
    if (np.value != 0) {
      if (b.Record(Index::OffsetOf(np.value)).seq() >= cur.seq()) return;
    } else if (!VisibleForCopy(c, cur, now)) {
      return;  // deleted/expired and absent from the new generation: nothing to keep
    }
    b.CopyAndInstall(cur, hash, np);
  });
}

// Rounds of flip + drain + catch-up until less than kCatchUpThreshold is left
// (or kMaxCatchUpRounds). Writers are throttled from the first round whose
// backlog is not at most half the previous one: catching up must converge,
// and every byte written meanwhile is copied again (space and time). Returns the number of rounds,
// -1 if a writer did not finish in time.
int CatchUpRounds(CacheCore& c, Generation& old, Builder& b, std::uint64_t& done,
                  Throttle& throttle) {
  auto tail = Shared(old.data.header().tail);
  std::uint64_t previous = UINT64_MAX;
  for (int round = 0; round < kMaxCatchUpRounds; ++round) {
    std::uint64_t t = tail.load(std::memory_order_seq_cst);
    std::uint64_t backlog = t - done;
    if (backlog < kCatchUpThreshold) return round;
    if (backlog > previous / 4 * 3) throttle.Engage();
    previous = backlog;
    if (!FlipAndDrain(c)) return -1;
    CatchUp(c, old, b, done, t);
    done = t;
  }
  return kMaxCatchUpRounds;
}

#ifndef NDEBUG
// Debug builds, after every online switch: each key of the old generation
// must be in the new one at a seq at least as high, unless its record in the
// old one was invisible (a tombstone, expired, purged) or evicted. The old
// generation is frozen by then (writers moved on); in the new one a key's seq
// only grows. A violation is a lost update or a resurrection: logged at
// error level with "compaction invariant violated" (the crash and torture
// suites look for that line; the first 5 violations are logged).
void CheckSwitch(CacheCore& c, Generation& old, Builder& b, std::uint64_t evicted) {
  const std::uint64_t now = c.env()->NowMillis();
  std::uint64_t bad = 0;
  for (std::uint64_t i = 0; i < old.index.slot_count(); ++i) {
    std::uint64_t v = old.index.slot(i).load(std::memory_order_acquire);
    if (v == 0) continue;
    record::RecordView r = old.Record(Index::OffsetOf(v));
    if (!old.ChecksumOk(r)) continue;  // corrupt: compaction skips it (and says so)
    Index::Probe np = b.Find(r.key(), record::HashKey(r.key(), c.salt()));
    std::uint64_t new_seq = np.value == 0 ? 0 : b.Record(Index::OffsetOf(np.value)).seq();
    bool lost = np.value == 0 ? evicted == 0 && VisibleForCopy(c, r, now) : new_seq < r.seq();
    if (!lost) continue;
    if (++bad <= 5) {
      c.logger().error(
          "compaction invariant violated: key {} is at seq {} (offset {}, {}) in generation "
          "{} but {} in generation {}",
          Quote(r.key().substr(0, 64)), r.seq(), Index::OffsetOf(v),
          r.is_tombstone() ? "tombstone" : "value", old.number,
          np.value == 0 ? std::string("absent") : "at seq " + std::to_string(new_seq),
          old.number + 1);
    }
  }
}
#endif

}  // namespace

bool Compactor::Abandon(const char* reason) {
  c_.logger().warn("compaction ({}) abandoned: a writer did not finish in time", reason);
  return false;
}

std::uint64_t Compactor::Evict(Live& live, Generation& g) {
  std::uint64_t limit = c_.max_bytes();
  if (limit == 0 || live.bytes <= limit) return 0;
  // Down to 90% of the limit, so that the next eviction is not one write away.
  std::uint64_t target = limit / 10 * 9, evicted = 0;
  Roaring64Map gone;
  for (std::uint64_t off8 : live.offsets) {  // oldest first: the head of the data file
    if (live.bytes <= target) break;
    live.bytes -= g.Record(off8 * record::kAlign).size();
    gone.add(off8);
    ++evicted;
  }
  live.offsets -= gone;
  Shared(c_.meta().header().evictions).fetch_add(evicted, std::memory_order_relaxed);
  c_.logger().info("evicting {} keys to keep the live data under max_bytes = {}", evicted, limit);
  return evicted;
}

bool Compactor::Run(CompactionRequest req) {
  for (int attempt = 1;; ++attempt) {
    try {
      return RunOnce(req);
    } catch (const NewIndexFull& e) {
      // Keys keep arriving faster than the sizing foresaw (a burst of new
      // keys into a nearly empty cache): start over with four times the room.
      if (attempt == 3) throw;
      req.min_slots = std::max(req.min_slots, e.slots * 4);
      c_.logger().info("compaction ({}): {}; starting over with {} slots", req.reason, e.what(),
                       req.min_slots);
    }
  }
}

bool Compactor::RunOnce(const CompactionRequest& req) {
  // An explicit compact() waits for this process's own background compaction
  // to finish, then does its own; automatic ones give way.
  if (req.wait_for_own) {
    c_.compact_mutex().Lock();
  } else if (!c_.compact_mutex().TryLock()) {
    return false;
  }
  bool done;
  try {
    done = RunHoldingMutex(req);
  } catch (...) {
    c_.compact_mutex().Unlock();
    throw;
  }
  c_.compact_mutex().Unlock();
  return done;
}

bool Compactor::RunHoldingMutex(const CompactionRequest& req) {
  Env* env = c_.env();
  FileLock lock = FileLock::TryAcquire(env, c_.meta().file(), kCompactLockByte);
  if (!lock.held()) return false;
  auto last_snapshot = Shared(c_.meta().header().last_snapshot_ms);
  if (req.snapshot_interval_ms != 0 &&
      env->NowMillis() + 50 <
          last_snapshot.load(std::memory_order_relaxed) + req.snapshot_interval_ms) {
    return false;  // another process took this interval's snapshot
  }
  Timings t;
  t.start = env->MonotonicNanos();
  c_.Refresh();
  struct Unpin {  // on every exit: move this process on, unmap what is left behind
    CacheCore& c;
    Generation* g;
    ~Unpin() {
      CacheCore::Unpin(g);
      try {
        c.Refresh();
        c.RetireNow();
      } catch (...) {
        // The next operation refreshes again and reports any error.
      }
    }
  } unpin{c_, c_.Pin()};
  return Switch(*unpin.g, req, t);
}

bool Compactor::Switch(Generation& old, const CompactionRequest& req, Timings& t) {
  auto& meta = c_.meta().header();
  auto state = Shared(meta.writer_state);
  if (old.number != Shared(meta.generation).load(std::memory_order_acquire)) return false;
  // 1. A compactor that died may have left the pause on; we hold COMPACT now.
  state.fetch_and(~(kSwitchingBit | kThrottleBit), std::memory_order_seq_cst);
  RemoveStrayFiles(c_, old.number, /*durably=*/false);
  // Writes may still be in flight in the epoch that is not current: a
  // compactor that died (or gave up) right after its flip never waited for
  // them, and our own flip below waits only for the current one. They may
  // have reserved space below t1, which the catch-up does not cover: wait for
  // them first (no write enters that epoch now).
  if (!Drain(c_, static_cast<int>((state.load(std::memory_order_seq_cst) & kEpochBit) ^ 1))) {
    return Abandon(req.reason);
  }
  auto tail = Shared(old.data.header().tail);
  const std::uint64_t t1 = tail.load(std::memory_order_seq_cst);
  if (!FlipAndDrain(c_)) return Abandon(req.reason);
  // 2. Live records below t1, in file order, copied.
  Live live = CollectLive(old, t1);
  live.evicted = Evict(live, old);
  Throttle throttle{state};
  // Sized for the live keys (docs/format.md, "Sizing"), not for every key the
  // old index has held: it shrinks after a purge or a mass delete. A
  // catch-up that brings more new keys than it has room for throws
  // NewIndexFull, and Run() starts over with a larger one.
  const std::uint64_t slots = std::max(req.min_slots, Index::SlotsFor(live.offsets.cardinality()));
  Builder b(c_, old.number + 1, slots, NewDataCapacity(live.bytes));
  CopyLive(old, live, b);
  if (!CatchUpAndPublish(old, b, t1, req.counts_as_snapshot, throttle, t)) {
    return Abandon(req.reason);
  }
  Finish(old, b, req, live, throttle.engaged(), t);
  return true;
}

Compactor::Live Compactor::CollectLive(Generation& old, std::uint64_t t1) {
  Live live;
  const std::uint64_t now = c_.env()->NowMillis();
  for (std::uint64_t i = 0; i < old.index.slot_count(); ++i) {
    std::uint64_t v = old.index.slot(i).load(std::memory_order_acquire);
    if (v == 0 || Index::OffsetOf(v) >= t1) continue;
    record::RecordView rec = old.Record(Index::OffsetOf(v));
    if (!VisibleForCopy(c_, rec, now)) {
      ++(rec.is_tombstone() ? live.deleted : rec.expired_at(now) ? live.expired : live.deleted);
      continue;
    }
    live.offsets.add(Index::OffsetOf(v) / record::kAlign);
    live.bytes += rec.size();
  }
  return live;
}

void Compactor::CopyLive(Generation& old, const Live& live, Builder& b) {
  RunCopier copier(b, c_.salt());
  for (std::uint64_t off8 : live.offsets) {
    record::RecordView rec = old.Record(off8 * record::kAlign);
    if (!old.ChecksumOk(rec)) {
      c_.logger().error("compaction: skipping corrupt record at offset {} of {}",
                        off8 * record::kAlign, old.data.path());
      continue;
    }
    copier.Add(off8 * record::kAlign, rec);
  }
  copier.Flush();
}

bool Compactor::CatchUpAndPublish(Generation& old, Builder& b, std::uint64_t t1, bool durable,
                                  Throttle& throttle, Timings& t) {
  Env* env = c_.env();
  auto& meta = c_.meta().header();
  auto state = Shared(meta.writer_state);
  auto tail = Shared(old.data.header().tail);
  // 3. A snapshot makes the bulk of the new files durable under their final
  // names now, so that its last sync (step 5) is short; an automatic
  // compaction syncs nothing (docs/concurrency.md, "Durability"). Then
  // catch up on what writers wrote meanwhile (rounds that must converge,
  // see CatchUpRounds).
  t.copied = env->MonotonicNanos();
  b.Rename();
  if (durable) b.Sync();
  t.synced = env->MonotonicNanos();
  std::uint64_t done = t1;
  t.rounds = CatchUpRounds(c_, old, b, done, throttle);
  if (t.rounds < 0) return false;
  // 4. Pause writers for the last bit and the switch.
  t.paused = env->MonotonicNanos();
  state.fetch_or(kSwitchingBit, std::memory_order_seq_cst);
  struct Resume {  // on every exit
    std::atomic_ref<std::uint32_t> s;
    ~Resume() { s.fetch_and(~kSwitchingBit, std::memory_order_seq_cst); }
  } resume{state};
  if (!Drain(c_, -1)) return false;
  CatchUp(c_, old, b, done, tail.load(std::memory_order_seq_cst));
  b.Seal();
  // No disk flush in the pause: the kernel may write the meta page naming
  // G+1 back at any moment after this store, before G+1's files are on
  // disk; after a power loss, the next boot replays the data files from
  // durable_gen on, whatever the meta page names (docs/concurrency.md,
  // "Durability").
  // Release: a process that reads the new number finds the renamed files.
  Shared(meta.generation).store(old.number + 1, std::memory_order_release);
  Shared(meta.compactions).fetch_add(1, std::memory_order_relaxed);
  state.fetch_and(~(kSwitchingBit | kThrottleBit), std::memory_order_seq_cst);
  t.resumed = env->MonotonicNanos();
  return true;
}

void Compactor::Finish(Generation& old, Builder& b, const CompactionRequest& req, const Live& live,
                       bool throttled, Timings& t) {
  Env* env = c_.env();
  auto& meta = c_.meta().header();
  // 5. A snapshot: all of G+1 durable, with its names, then durable_gen
  // and the meta page; only then the older files go, durably (a directory
  // fsync), so that no replay after a reboot can bring back what G+1
  // dropped (processes that still map them keep their pages). An automatic
  // compaction: the old files go (but durable_gen's data file), not
  // durably (a replay of a file that was not removed is harmless:
  // docs/concurrency.md, "Durability").
  const bool durable = req.counts_as_snapshot;
  if (durable) {
    b.Sync();
    c_.RaiseDurableGen(old.number + 1);
    c_.SyncMeta();
    Shared(meta.last_snapshot_ms).store(env->NowMillis(), std::memory_order_relaxed);
    Shared(meta.snapshots).fetch_add(1, std::memory_order_relaxed);
  }
  RemoveStrayFiles(c_, old.number + 1, durable);
  const std::uint64_t bytes_before = Shared(old.data.header().tail).load(std::memory_order_relaxed);
  const std::uint64_t paused_us = (t.resumed - t.paused) / 1000;
  c_.logger().info(
      "compacted ({}): generation {} -> {}, {} records, {} -> {} bytes, index {} slots, "
      "writers paused {} us, took {} ms (copy {} ms, fsync {} ms, {} catch-up rounds {} ms, "
      "writers {}throttled)",
      req.reason, old.number, old.number + 1, b.records(), bytes_before, b.tail(), b.slots(),
      paused_us, (env->MonotonicNanos() - t.start) / 1'000'000, (t.copied - t.start) / 1'000'000,
      (t.synced - t.copied) / 1'000'000, t.rounds, (t.paused - t.synced) / 1'000'000,
      throttled ? "" : "not ");
  if (CompactionResult* r = req.result) {
    r->compacted = true;
    r->generation = old.number + 1;
    r->bytes_before = bytes_before;
    r->bytes_after = b.tail();
    r->keys_live = b.records();
    r->keys_expired = live.expired;
    r->keys_deleted = live.deleted;
    r->keys_evicted = live.evicted;
    r->duration = std::chrono::microseconds((env->MonotonicNanos() - t.start) / 1000);
    r->writer_pause = std::chrono::microseconds(paused_us);
  }
#ifndef NDEBUG
  CheckSwitch(c_, old, b, live.evicted);  // outside the timings above
#endif
}
}  // namespace lilcache
