#include "engine/cache_impl.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <new>
#include <random>
#include <thread>

#include "engine/common_options.h"
#include "engine/compaction.h"
#include "engine/operation.h"
#include "engine/recovery.h"
#include "engine/space.h"
#include "engine/trust.h"
#include "format/shared_atomic.h"
#include "lilcache/env.h"
#include "util/duration.h"
#include "util/logging.h"
#include "util/quote.h"

namespace lilcache {

// ---- open, attach, fork -----------------------------------------------------

namespace {

// The paths of cache `name` under Options::root (name validated first).
CachePaths PathsOf(std::string_view name, const Options& options) {
  validate_name(name);
  return CachePaths{ResolveRoot(options.root), std::string(name)};
}

}  // namespace

Cache::Impl::Impl(std::string_view name, const Options& options)
    : core_(options.env != nullptr ? options.env : Env::Default(), PathsOf(name, options)),
      env_(core_.env()) {
  const CommonOptions common = ParseCommonOptions(options);
  default_ttl_ms_ = common.default_ttl_ms;
  get_or_set_timeout_ms_ = common.get_or_set_timeout_ms;
  get_or_set_wait_hook_ = options.get_or_set_wait_hook;
  if (!options.snapshot.empty()) {
    snapshot_ms_ =
        static_cast<std::uint64_t>(ParseDurationOf("snapshot", options.snapshot).count());
    if (snapshot_ms_ < 1000) {
      throw Error(ErrorCode::invalid_argument,
                  "snapshot: invalid interval " + Quote(options.snapshot) + ": at least 1s");
    }
  }
  if (options.sync == "always") {
    sync_always_ = true;
  } else if (!options.sync.empty()) {
    std::chrono::milliseconds ms;
    try {
      ms = parse_duration(options.sync);
    } catch (const Error& e) {
      throw Error(
          ErrorCode::invalid_argument,
          "invalid sync \"" + options.sync + "\": \"always\" or a duration (" + e.what() + ")");
    }
    if (ms.count() == 0) {
      throw Error(ErrorCode::invalid_argument,
                  "invalid sync \"" + options.sync + "\": must be > 0");
    }
    sync_ms_ = static_cast<std::uint64_t>(ms.count());
  }
  level_ = ParseLogLevel(options.loglevel);
  one_shot_ = options.one_shot;
  max_bytes_ = options.max_bytes;
  dead_ratio_ = options.compact_dead_ratio;
  pace_start_ = std::max(kPaceStartRatio, dead_ratio_ + 0.05);
  pace_full_ = std::max(kPaceFullRatio, pace_start_ + 0.03);
  create_ = options.create_if_missing;
  if (create_) {
    EnsureRootDirectory(env_, core_.paths().root);
  } else {
    Meta().Open(env_, core_.paths().meta(), /*create=*/false);  // before the data file is made
    CheckRootDirectory(env_, core_.paths().root);
  }
  core_.set_logger(MakeCacheLogger(env_, core_.paths().text_log(), core_.paths().name, level_));
  Attach();
}

Cache::Impl::~Impl() {
  // In a fork child that never called this handle, the fork handlers have
  // closed its descriptor of NAME.meta and forgotten its slot lock (the
  // parent's), and reset its mutexes: closing it unmaps and closes files,
  // and unlocks nothing. Its logger may be locked by a parent thread that is
  // gone: only a handle attached in this process logs.
  const bool attached_here = fork_epoch_.load(std::memory_order_relaxed) == ForkEpoch();
  StopMaintenance();
  try {
    core_.Close();
    if (attached_here) core_.logger().debug("closed");
  } catch (...) {
    // Destructors do not throw; the kernel drops our locks when the fds close.
  }
}

CompactionResult Cache::Impl::CompactNow() {
  CompactionResult r;
  Compact({.reason = "requested", .wait_for_own = true, .counts_as_snapshot = true, .result = &r});
  return r;
}

void Cache::Impl::BeforeFork() { core_.LockForFork(); }

void Cache::Impl::AfterForkInParent() { core_.UnlockInParent(); }

void Cache::Impl::AfterForkInChild() {
  // The child's only thread (fork.h: no allocation, no lock, no Env). This
  // thread holds the core's refresh mutex (BeforeFork()), so its generations
  // are whole. The parent's other threads are gone with any other mutex they
  // held: start those afresh.
  core_.ResetInChild();
  attach_mu_.ResetAfterFork();
  maintenance_mu_.ResetAfterFork();
  maintenance_cv_.ResetAfterFork();
  // The parent's maintenance thread does not exist here; forget it (the
  // object is only a copy: never joined, never destroyed joinable) and start
  // our own when needed. Relaxed: no other thread exists yet.
  new (&maintenance_) std::thread();
  maintenance_requested_.store(false, std::memory_order_relaxed);
  compact_backoff_until_.store(0, std::memory_order_relaxed);
  leases_.ResetInChild();
}

void Cache::Impl::Attach() {
  // Relaxed: the constructing thread is the only one using the handle yet.
  fork_epoch_.store(ForkEpoch(), std::memory_order_relaxed);
  core_.set_meta(std::make_unique<Meta>());
  core_.meta().Open(env_, core_.paths().meta(), create_);
  FileLock init = FileLock::Acquire(env_, core_.meta().file(), kInitLockByte);
  OpenLocked();
}

void Cache::Impl::OpenLocked() {
  if (core_.meta().IsBlank() && !create_) {
    throw Error(ErrorCode::no_such_cache,
                "no such cache (" + core_.paths().meta() + " was never initialized)");
  }
  if (core_.meta().IsBlank()) {
    std::uint64_t salt = env_->Random64();
    std::uint64_t now = env_->NowMillis();
    Generation g;
    g.data.Create(env_, core_.paths().data(1), 1, salt, kGrowQuantum, now);
    g.index.Create(env_, core_.paths().index(1), 1, kMinSlots);
    g.Close();
    core_.meta().Initialize(salt, now, env_->BootId());
    core_.logger().info("created cache {} in {}", core_.paths().name, core_.paths().root);
  }
  core_.meta().Validate();
  core_.set_salt(core_.meta().header().salt);
  if (max_bytes_ != 0) {
    // Relaxed: see CacheCore::max_bytes().
    Shared(core_.meta().header().max_bytes).store(max_bytes_, std::memory_order_relaxed);
  }
  if (!core_.meta().OthersAlive()) {
    Recovery(core_).RecoverAlone();
  }
  core_.set_slot(core_.meta().ClaimSlot(static_cast<std::uint64_t>(getpid())));
  core_.Refresh();
  Generation* g = core_.current();
  core_.logger().log(one_shot_ ? spdlog::level::debug : spdlog::level::info,
                     "opened (generation {}, {} bytes of log, {} index slots, process slot {})",
                     g->number, Shared(g->data.header().tail).load(std::memory_order_relaxed),
                     g->index.slot_count(), core_.my_slot_index());
  if (snapshot_ms_ != 0 || sync_ms_ != 0) StartMaintenanceThread();
}

void Cache::Impl::Reattach(std::uint64_t epoch) {
  MutexLock lock(&attach_mu_);
  // Relaxed: attach_mu_ orders us after the thread that re-attached.
  if (epoch == fork_epoch_.load(std::memory_order_relaxed)) return;
  // First call in a fork child (or a grandchild...). The fork handlers have
  // closed our copy of the parent's NAME.meta descriptor: get a descriptor,
  // and a process slot, of our own. Everything that can fail comes first: if
  // it throws, the handle is unchanged and the next call tries again.
  // The old logger's lock may be held by a parent thread: keep it alive
  // (nothing will use it) and log through a new one.
  std::shared_ptr<spdlog::logger> logger =
      MakeCacheLogger(env_, core_.paths().text_log(), core_.paths().name, level_);
  auto meta = std::make_unique<Meta>();
  meta->Open(env_, core_.paths().meta(), /*create=*/false);
  std::size_t slot;
  {
    // Under the INIT lock, like an opener: a process that opens the cache
    // alone holds INIT from its check that no slot is alive to the end of its
    // recovery, which must not see a writer appear (ours would write into
    // the generation it replaces). INIT also orders us after a lone opener
    // that is recovering; our next operation then finds its new generation.
    FileLock init = FileLock::Acquire(env_, meta->file(), kInitLockByte);
    slot = meta->ClaimSlot(static_cast<std::uint64_t>(getpid()));
  }
  std::unique_ptr<Meta> parents = core_.Adopt(std::move(meta), slot, std::move(logger));
  // Unmaps only: its descriptor was closed in the fork handler.
  parents->Close();
  // Release: pairs with the acquire load in ReattachIfForked().
  fork_epoch_.store(epoch, std::memory_order_release);
  core_.logger().info("re-attached after fork (process slot {})", slot);
  if (snapshot_ms_ != 0 || sync_ms_ != 0) StartMaintenanceThread();
}

// ---- writes -----------------------------------------------------------------

record::NewRecord Cache::Impl::Sequenced(record::NewRecord rec) {
  // seq_cst (in DrawSeq): seqs order records; a slot moves only to a higher
  // seq, and the linearization argument (docs/concurrency.md) needs the seq
  // of a record to be drawn after its writer began. Throws Error (nothing
  // written) when the range of seqs is used up.
  rec.seq = core_.meta().DrawSeq();
  return rec;
}

std::uint64_t Cache::Impl::Append(Generation& g, const record::NewRecord& rec, Written& w) {
  std::size_t size = record::RecordSize(rec.key.size(), rec.value.size());
  std::uint64_t off = g.data.Reserve(size, &core_.meta().file());
  record::EncodeRecord(rec, core_.salt(), std::span<char>(g.data.base() + off, size));
  w.Add(off, size);
  return off;
}

void Cache::Impl::SyncWritten(Generation& g, const Written& w) {
  if (!sync_always_ || w.end == 0) return;
  // After a power loss only the data files of generations from durable_gen
  // on are replayed (docs/concurrency.md, "Durability"): right after an
  // automatic compaction, which syncs nothing, g is newer, and the
  // compactor of g's successor would remove g's file. So the first such
  // write in g makes all of g durable (once per generation, by whichever
  // process gets there first). Still inside the writer section: g is
  // current, no newer generation can be published meanwhile, so g's file
  // stays.
  if (core_.durable_gen() < g.number) {
    core_.MakeDurable(g);
    return;
  }
  static const std::uint64_t page = static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
  std::uint64_t begin = w.begin / page * page;
  if (env_->Msync(g.data.base() + begin, w.end - begin, MS_SYNC) != 0) {
    ThrowErrno("msync", g.data.path());
  }
}

void Cache::Impl::Abort(Generation& g, std::uint64_t off, std::size_t size) {
  // Inside the writer section that appended it: a compactor's catch-up
  // reads this range only after every such section has left (Drain).
  record::MarkAborted(std::span<char>(g.data.base() + off, size), core_.salt());
  AddDead(g, size);
}

std::uint64_t Cache::Impl::ExpiryOf(std::uint64_t ttl_ms) const {
  if (ttl_ms == 0) ttl_ms = default_ttl_ms_;
  return ttl_ms == 0 ? 0 : env_->NowMillis() + ttl_ms;
}

Cache::Impl::Outcome Cache::Impl::SetIn(Generation& g, const record::NewRecord& rec,
                                        std::uint64_t hash, Written& w) {
  const std::size_t size = record::RecordSize(rec.key.size(), rec.value.size());
  // Probe before appending: a new key that finds the index full must wait
  // for a growth compaction (Set() retries), and appending first would cost
  // a whole record per retry. So a writer appends at most once per
  // generation while it waits: a second try in the same generation finds the
  // index still full here. Using this probe after the append is sound: the
  // claim or CAS below checks that the slot still holds what we saw, and a
  // claimed slot never becomes empty again, so an empty slot found here is
  // still the end of the key's chain if the claim succeeds.
  Index::Probe p = g.Find(rec.key, hash);
  if (p.full) return Outcome::kIndexFull;  // nothing appended
  record::NewRecord mine = Sequenced(rec);
  std::uint64_t slot_value = Index::Pack(hash, Append(g, mine, w));
  for (;; p = g.Find(rec.key, hash)) {
    if (p.full) {  // filled up since our first probe: our record is dead
      Abort(g, Index::OffsetOf(slot_value), size);
      return Outcome::kIndexFull;
    }
    if (p.value == 0) {
      if (g.index.Claim(p.pos, slot_value, &p.value)) return Outcome::kDone;
      continue;  // someone claimed that slot first; it may be our key: probe again
    }
    for (;;) {
      record::RecordView cur = g.Record(Index::OffsetOf(p.value));
      if (cur.seq() > mine.seq) {
        // Never published; older than cur, so a replay would not revive it
        // either, but an aborted record says so plainly.
        Abort(g, Index::OffsetOf(slot_value), size);
        // A newer write got there first. It may have observed the value
        // before ours (a pop or erase, or a conditional write: an increment
        // computed from it, an add saw the key present), so ours must come
        // after it, with a newer seq. (Ours may not be linearized just before
        // it: that write did not see ours.)
        mine = Sequenced(rec);
        slot_value = Index::Pack(hash, Append(g, mine, w));
      }
      // acq_rel: release publishes our record; acquire (p.value on failure)
      // lets us read the record that beat us.
      if (g.index.slot(p.pos).compare_exchange_strong(p.value, slot_value,
                                                      std::memory_order_acq_rel)) {
        CheckSlotMove(core_.logger(), "set", rec.key, cur.seq(), mine.seq);
        AddDead(g, cur.size());
        return Outcome::kDone;
      }
    }
  }
}

void Cache::Impl::Set(std::string_view key, std::string_view value, std::uint64_t ttl_ms,
                      std::uint8_t kind) {
  CheckKey(key);
  CheckValue(value);
  ReattachIfForked();
  if (ttl_ms == 0) ttl_ms = default_ttl_ms_;
  record::NewRecord rec{
      record::RecordType::kSet, key, value, 0, ttl_ms == 0 ? 0 : env_->NowMillis() + ttl_ms, kind};
  const std::uint64_t hash = record::HashKey(key, core_.salt());
  WriteFollowUp follow_up;
  for (;;) {
    std::uint64_t slots;
    {
      WriterSection w(core_);
      Written written;
      if (SetIn(w.gen(), rec, hash, written) == Outcome::kDone) {
        SyncWritten(w.gen(), written);
        follow_up = AssessWrite(w.gen());
        break;
      }
      slots = w.gen().index.slot_count();
    }
    // The index is full: grow it (or wait for whoever is growing it).
    if (!Compact({.reason = "index full", .min_slots = slots * 2})) env_->SleepMicros(1000);
  }
  core_.Count(CacheCore::kSets);
  if (core_.logger().should_log(spdlog::level::debug)) {
    core_.logger().debug("set key of {} bytes, value of {} bytes, ttl {} ms", key.size(),
                         value.size(), ttl_ms);
  }
  AfterWrite(follow_up);
}

std::optional<std::string> Cache::Impl::PopIn(Generation& g, std::string_view key,
                                              std::uint64_t hash, bool want_value, bool* found,
                                              Written& w, std::uint8_t* kind) {
  Index::Probe p = g.Find(key, hash);
  if (p.full || p.value == 0) return std::nullopt;
  const std::size_t tomb_size = record::RecordSize(key.size(), 0);
  std::uint64_t tomb_slot = 0, tomb_seq = 0;
  for (;;) {
    record::RecordView cur = g.Record(Index::OffsetOf(p.value));
    bool expired = false;
    if (!Visible(cur, &expired)) {
      // Our tombstone lost (to another pop, an expiry or a purge): its seq
      // may be above a value set later, which a replay must not delete.
      if (tomb_slot != 0) Abort(g, Index::OffsetOf(tomb_slot), tomb_size);
      if (expired) core_.Count(CacheCore::kExpired);
      return std::nullopt;
    }
    CheckIntegrity(g, cur);
    if (tomb_slot == 0 || cur.seq() > tomb_seq) {
      if (tomb_slot != 0) Abort(g, Index::OffsetOf(tomb_slot), tomb_size);
      record::NewRecord t = Sequenced({record::RecordType::kTombstone, key, {}, 0, 0});
      tomb_slot = Index::Pack(hash, Append(g, t, w));
      tomb_seq = t.seq;
    }
    // acq_rel as in SetIn. Only the pop whose CAS moves the slot off this
    // record gets its value: that is what makes pop hand it out once.
    if (g.index.slot(p.pos).compare_exchange_strong(p.value, tomb_slot,
                                                    std::memory_order_acq_rel)) {
      CheckSlotMove(core_.logger(), "pop", key, cur.seq(), tomb_seq);
      AddDead(g, cur.size());
      *found = true;
      if (kind != nullptr) *kind = cur.kind();
      return want_value ? std::optional<std::string>(std::string(cur.value()))
                        : std::optional<std::string>(std::string());
    }
  }
}

std::optional<std::string> Cache::Impl::Pop(std::string_view key, bool want_value,
                                            std::uint8_t* kind) {
  CheckKey(key);
  ReattachIfForked();
  const std::uint64_t hash = record::HashKey(key, core_.salt());
  bool found = false;
  std::optional<std::string> out;
  WriteFollowUp follow_up;
  {
    WriterSection w(core_);
    Written written;
    out = PopIn(w.gen(), key, hash, want_value, &found, written, kind);
    if (found) {
      SyncWritten(w.gen(), written);
      follow_up = AssessWrite(w.gen());
    }
  }
  CountHit(found, false);
  if (found) core_.Count(CacheCore::kDeletes);
  core_.logger().debug("pop key of {} bytes: {}", key.size(), found ? "removed" : "absent");
  AfterWrite(follow_up);
  return out;
}

void Cache::Impl::Purge() {
  ReattachIfForked();
  auto& h = core_.meta().header();
  // Every record with a seq up to s is now invisible: seqs are drawn from
  // the same counter, so records begun after this draw get higher ones.
  // seq_cst (DrawSeq); an Error when the range of seqs is used up.
  std::uint64_t s = core_.meta().DrawSeq();
  auto purge = Shared(h.purge_seq);
  std::uint64_t cur = purge.load(std::memory_order_seq_cst);
  // seq_cst: a get that begins after purge() returns must see the new mark.
  while (cur < s && !purge.compare_exchange_weak(cur, s, std::memory_order_seq_cst)) {
  }
  if (sync_always_) core_.SyncMeta();
  core_.logger().info("purged (every record with seq <= {} is gone)", s);
}

Cache::Impl::WriteFollowUp Cache::Impl::AssessWrite(Generation& g) const {
  auto& dh = g.data.header();
  // Relaxed: heuristics only.
  const std::uint64_t tail = Shared(dh.tail).load(std::memory_order_relaxed);
  const std::uint64_t dead = Shared(dh.dead_bytes).load(std::memory_order_relaxed);
  const auto dead_over = [&](double ratio) {
    return dead_ratio_ > 0 && tail > kMinReclaimTail &&
           static_cast<double>(dead) > ratio * static_cast<double>(tail);
  };
  WriteFollowUp f;
  // Backpressure: writers outrun compaction (the data file holds more dead
  // space than the compactor keeps up with).
  if (dead_ratio_ > 0 && tail > kMinReclaimTail) {
    const double ratio = static_cast<double>(dead) / static_cast<double>(tail);
    f.pace = std::clamp((ratio - pace_start_) / (pace_full_ - pace_start_), 0.0, 1.0);
  }
  if (maintenance_requested_.load(std::memory_order_relaxed)) return f;
  const std::uint64_t limit = core_.max_bytes();
  f.compact = Index::NeedsGrowth(g.index.used(), g.index.slot_count()) || dead_over(dead_ratio_) ||
              (limit != 0 && LiveBytes(tail, dead) > limit);
  return f;
}

void Cache::Impl::AfterWrite(WriteFollowUp f) {
  // The sleep comes after the write is done and outside the writer
  // section, so that no compactor ever waits for it.
  Pace(f.pace, 1);
  if (!f.compact || maintenance_requested_.load(std::memory_order_relaxed)) return;
  if (env_->MonotonicNanos() < compact_backoff_until_.load(std::memory_order_relaxed)) return;
  RequestMaintenance();
}

void Cache::Impl::Pace(double pace, std::uint64_t writes) {
  if (pace <= 0 || writes == 0) return;
  // A thread's writes sleep in proportion to `pace`, spread evenly (the debt
  // carries over from write to write): one write in 1/pace, never a burst.
  thread_local double debt = 0;
  debt += pace * static_cast<double>(writes);
  if (debt < 1) return;
  const auto sleeps = static_cast<std::uint64_t>(debt);
  debt -= static_cast<double>(sleeps);
  env_->SleepMicros(CacheCore::kThrottleMicros * sleeps);
}

void Cache::Impl::RequestMaintenance() {
  MutexLock lock(&maintenance_mu_);
  if (maintenance_stop_ || maintenance_requested_.exchange(true, std::memory_order_relaxed)) return;
  if (!maintenance_.joinable()) maintenance_ = std::thread([this] { MaintenanceLoop(); });
  maintenance_cv_.Signal();
}

void Cache::Impl::StartMaintenanceThread() {
  MutexLock lock(&maintenance_mu_);
  if (!maintenance_stop_ && !maintenance_.joinable()) {
    maintenance_ = std::thread([this] { MaintenanceLoop(); });
  }
}

void Cache::Impl::Sync() {
  ReattachIfForked();
  auto gen = Shared(core_.meta().header().generation);
  for (int attempt = 1;; ++attempt) {
    {
      PinGuard pin(core_.Pin());
      Generation& g = *pin.get();
      if (env_->Fsync(g.index.file().fd()) != 0) ThrowErrno("fsync", g.index.path());
      core_.MakeDurable(g);
      // seq_cst: the other side of RemoveStrayFiles' handshake. A compactor
      // that switched to a newer generation after our raise of durable_gen
      // sees it and keeps g's data file; one that switched before it may
      // have removed g's file, and we see its generation here: then the
      // newer generation (which holds copies of all of g's records) is made
      // durable instead.
      if (gen.load(std::memory_order_seq_cst) == g.number) {
        core_.logger().debug("synced generation {}", g.number);
        return;
      }
    }
    if (attempt == 100) {
      throw Error(ErrorCode::busy, "sync: 100 generation switches while syncing " + name());
    }
    core_.Refresh();
  }
}

void Cache::Impl::MaintenanceLoop() {
  // A cache that never had a snapshot gets its first one an interval after
  // this thread started (in whichever process gets there first).
  const std::uint64_t first_due = env_->NowMillis() + snapshot_ms_;
  auto snapshot_due_at = [&] {
    std::uint64_t last =
        Shared(core_.meta().header().last_snapshot_ms).load(std::memory_order_relaxed);
    return last == 0 ? first_due : last + snapshot_ms_;
  };
  std::uint64_t sync_due = env_->NowMillis() + sync_ms_;
  maintenance_mu_.Lock();
  for (;;) {
    if (snapshot_ms_ == 0 && sync_ms_ == 0) {
      while (!MaintenanceWakeUp()) maintenance_cv_.Wait();
    } else {
      std::uint64_t due = std::min(snapshot_ms_ != 0 ? snapshot_due_at() : UINT64_MAX,
                                   sync_ms_ != 0 ? sync_due : UINT64_MAX);
      std::uint64_t now = env_->NowMillis();
      const auto deadline =
          std::chrono::steady_clock::now() + std::chrono::milliseconds(due > now ? due - now : 0);
      while (!MaintenanceWakeUp() && std::chrono::steady_clock::now() < deadline) {
        maintenance_cv_.WaitUntil(deadline);
      }
    }
    if (maintenance_stop_) break;
    // Requests from writers must not starve the snapshot: check both.
    const bool requested = maintenance_requested_.load(std::memory_order_relaxed);
    maintenance_mu_.Unlock();
    if (snapshot_ms_ != 0 && env_->NowMillis() + 50 >= snapshot_due_at()) {
      RunMaintenance(/*snapshot=*/true);
    }
    if (requested) RunMaintenance(/*snapshot=*/false);
    if (sync_ms_ != 0 && env_->NowMillis() >= sync_due) {
      PeriodicSync();
      sync_due = env_->NowMillis() + sync_ms_;
    }
    maintenance_mu_.Lock();
    if (requested) maintenance_requested_.store(false, std::memory_order_relaxed);
  }
  maintenance_mu_.Unlock();
}

void Cache::Impl::PeriodicSync() {
  try {
    Sync();
  } catch (const std::exception& e) {
    core_.logger().error("periodic sync failed: {}", e.what());
  }
}

void Cache::Impl::RunMaintenance(bool snapshot) {
  try {
    if (snapshot) {
      ReattachIfForked();
      Compactor(core_).Run(
          {.reason = "snapshot", .counts_as_snapshot = true, .snapshot_interval_ms = snapshot_ms_});
      return;
    }
    bool grow;
    std::uint64_t slots;
    {
      PinGuard pin(core_.Pin());  // another thread's core_.Refresh() may retire the generation
      grow = Index::NeedsGrowth(pin.get()->index.used(), pin.get()->index.slot_count());
      slots = pin.get()->index.slot_count();
    }
    // Otherwise the compaction sizes the new index from the live keys alone,
    // which shrinks it when most claimed slots hold tombstones or expired keys.
    if (!Compact({.reason = grow ? "index 3/4 full" : "dead space or max_bytes",
                  .min_slots = grow ? Index::GrownSlots(slots) : 0})) {
      // Another process holds the COMPACT lock (and will do the work).
      compact_backoff_until_.store(env_->MonotonicNanos() + 10'000'000, std::memory_order_relaxed);
    }
  } catch (const std::exception& e) {
    core_.logger().error("background {} failed: {}", snapshot ? "snapshot" : "compaction",
                         e.what());
    compact_backoff_until_.store(env_->MonotonicNanos() + 1'000'000'000, std::memory_order_relaxed);
  }
}

void Cache::Impl::StopMaintenance() {
  {
    MutexLock lock(&maintenance_mu_);
    maintenance_stop_ = true;
  }
  maintenance_cv_.SignalAll();
  if (maintenance_.joinable()) maintenance_.join();
}

bool Cache::Impl::Compact(const CompactionRequest& request) {
  ReattachIfForked();
  return Compactor(core_).Run(request);
}

// ---- reads ------------------------------------------------------------------

bool Cache::Impl::Visible(const record::RecordView& rec, bool* expired) {
  if (rec.is_tombstone()) return false;
  // Acquire: pairs with Purge()'s seq_cst update.
  if (rec.seq() <= Shared(core_.meta().header().purge_seq).load(std::memory_order_acquire))
    return false;
  if (rec.expires_ms() != 0 && env_->NowMillis() >= rec.expires_ms()) {
    *expired = true;
    return false;
  }
  return true;
}

void Cache::Impl::CheckIntegrity(Generation& g, const record::RecordView& rec) {
  if (g.ChecksumOk(rec)) [[likely]] {
    return;
  }
  // Relaxed: a hint for the next lone opener, who rebuilds from the data file.
  Shared(core_.meta().header().flags).fetch_or(kFlagNeedsRebuild, std::memory_order_relaxed);
  auto off = reinterpret_cast<const char*>(rec.header) - g.data.base();
  core_.logger().error("bad checksum of the record at offset {} of {}", off, g.data.path());
  throw Error(ErrorCode::corrupt, "corrupt cache: bad checksum of the record at offset " +
                                      std::to_string(off) + " of " + g.data.path() +
                                      " (it will be rebuilt from the log at the next open)");
}

bool Cache::Impl::LookupIn(Generation& g, std::string_view key, std::uint64_t hash,
                           std::string* value, Found* found, bool* expired) {
  // The probe hands back the record whose key it matched: its header is
  // read and checked once.
  record::RecordView rec;
  if (!g.FindRecord(key, hash, &rec)) return false;
  if (!Visible(rec, expired)) return false;
  if (value != nullptr) {
    CheckIntegrity(g, rec);
    // Into a buffer that holds the value already (a reused one), not
    // assign(): its general replace path costs ~60 instructions more than a
    // resize (free when the size is the same) and a memcpy. A new buffer
    // (get()) is allocated and filled by assign() at once. The record lies
    // in the mapping, never in *value.
    const std::string_view v = rec.value();
    if (value->capacity() >= v.size()) {
      if (value->size() != v.size()) value->resize(v.size());
      if (!v.empty()) std::memcpy(value->data(), v.data(), v.size());
    } else {
      value->assign(v);
    }
  }
  if (found != nullptr) *found = Found{rec.seq(), rec.expires_ms(), rec.kind()};
  return true;
}

bool Cache::Impl::Lookup(std::string_view key, std::string* value, Found* found, bool count) {
  CheckKey(key);
  ReattachIfForked();
  const std::uint64_t hash = record::HashKey(key, core_.salt());
  auto gen = Shared(core_.meta().header().generation);
  for (;;) {
    PinGuard pin(core_.Pin());
    Generation& g = *pin.get();
    // Acquire loads of the generation before and after the lookup: if it did
    // not change, no write of a newer generation can have completed before
    // our slot load, so the value read is current (or concurrent).
    if (g.number != gen.load(std::memory_order_acquire)) {
      core_.Refresh();
      continue;
    }
    bool expired = false;
    const bool hit = LookupIn(g, key, hash, value, found, &expired);
    if (g.number != gen.load(std::memory_order_acquire)) continue;
    if (count) CountHit(hit, expired);
    if (core_.logger().should_log(spdlog::level::debug)) {
      core_.logger().debug("{} key of {} bytes: {}", value != nullptr ? "get" : "contains",
                           key.size(), hit ? "hit" : (expired ? "expired" : "miss"));
    }
    return hit;
  }
}

std::optional<std::string> Cache::Impl::Get(std::string_view key) {
  std::string value;
  if (!Lookup(key, &value)) return std::nullopt;
  return std::optional<std::string>(std::move(value));
}
bool Cache::Impl::GetInto(std::string_view key, std::string& value, ValueKind* kind) {
  Found found;
  if (!Lookup(key, &value, &found)) return false;
  if (kind != nullptr) *kind = static_cast<ValueKind>(found.kind);
  return true;
}
bool Cache::Impl::Contains(std::string_view key) { return Lookup(key, nullptr); }

void Cache::Impl::ForEach(std::string_view prefix,
                          const std::function<bool(std::string_view, std::string_view)>& fn,
                          bool verify) {
  ReattachIfForked();
  std::uint64_t mine;
  {
    // Pinned: an unpinned Generation object may be released and reopened
    // for another generation at any time (Refresh).
    PinGuard pin(core_.Pin());
    mine = pin.get()->number;
  }
  if (Shared(core_.meta().header().generation).load(std::memory_order_acquire) != mine)
    core_.Refresh();
  PinGuard pin(core_.Pin());
  Generation& g = *pin.get();
  for (std::uint64_t i = 0; i < g.index.slot_count(); ++i) {
    std::uint64_t v = g.index.slot(i).load(std::memory_order_acquire);
    if (v == 0) continue;
    record::RecordView rec = g.Record(Index::OffsetOf(v));
    bool expired = false;
    if (!rec.key().starts_with(prefix) || !Visible(rec, &expired)) continue;
    if (verify) CheckIntegrity(g, rec);
    if (!fn(rec.key(), rec.value())) return;
  }
}

std::size_t Cache::Impl::Size() {
  std::size_t n = 0;
  ForEach(
      {},
      [&](std::string_view, std::string_view) {
        ++n;
        return true;
      },
      /*verify=*/false);
  return n;
}

Stats Cache::Impl::GetStats() {
  Stats st;
  ForEach(
      {},
      [&](std::string_view k, std::string_view v) {
        ++st.keys;
        st.bytes_live += record::RecordSize(k.size(), v.size());
        return true;
      },
      /*verify=*/false);
  auto& h = core_.meta().header();
  auto rd = [](std::uint64_t& f) { return Shared(f).load(std::memory_order_relaxed); };
  st.hits = rd(h.retired_hits);
  st.misses = rd(h.retired_misses);
  st.sets = rd(h.retired_sets);
  st.deletes = rd(h.retired_deletes);
  st.expired = rd(h.retired_expired);
  st.compactions = rd(h.compactions);
  st.snapshots = rd(h.snapshots);
  st.last_snapshot_ms = rd(h.last_snapshot_ms);
  st.evictions = rd(h.evictions);
  st.max_bytes = rd(h.max_bytes);
  // This handle's counts not yet flushed into its slot (CacheCore::Count).
  st.hits += core_.Unflushed(CacheCore::kHits);
  st.misses += core_.Unflushed(CacheCore::kMisses);
  st.sets += core_.Unflushed(CacheCore::kSets);
  st.deletes += core_.Unflushed(CacheCore::kDeletes);
  st.expired += core_.Unflushed(CacheCore::kExpired);
  if (st.max_bytes == UINT64_MAX) st.max_bytes = 0;  // a lifted limit: none, as documented
  for (std::size_t i = 0; i < kMaxProcesses; ++i) {
    ProcessSlot& s = core_.meta().slot(i);
    st.hits += rd(s.hits);
    st.misses += rd(s.misses);
    st.sets += rd(s.sets);
    st.deletes += rd(s.deletes);
    st.expired += rd(s.expired);
    if (s.pid != 0 && (i == core_.my_slot_index() || core_.meta().SlotAlive(i))) ++st.processes;
  }
  PinGuard pin(core_.Pin());
  Generation& g = *pin.get();
  st.generation = g.number;
  st.bytes_file = rd(g.data.header().tail);
  st.bytes_dead = DeadBytes(st.bytes_file, st.bytes_live);
  st.index_slots = g.index.slot_count();
  st.index_used = g.index.used();
  return st;
}

}  // namespace lilcache
