// cache_impl: Cache::Impl, the engine behind lilcache::Cache.
//
// Concurrency contract (docs/concurrency.md has the full argument):
//  * Readers (get, contains, size, keys) take no lock: they pin the current
//    Generation, probe its index, read the immutable record, verify its
//    checksum, and re-check that the generation did not change meanwhile.
//  * Writers (set, pop, erase) announce themselves in their process slot for
//    the current writer epoch (WriterSection), append a record at a space
//    reserved with fetch_add, and publish it with a CAS on the index slot.
//    A slot only ever moves to a record with a higher seq.
//  * Generation switches (index growth, compaction, recovery) are done by the
//    process holding the COMPACT lock; writers pause only for the final swap.
//  * Growth of the data file takes the GROW lock (and an in-process mutex).
//  * fork(): the handle is a ForkHook (fork.h). In the child, before anything
//    else runs, the fork handlers close its NAME.meta descriptor (Meta) and
//    start its mutexes afresh; nothing is unlocked, so the parent keeps its
//    locks and a dead parent's locks die with it. The first call in the child
//    re-attaches (its own descriptor, and its own slot claimed under INIT);
//    a handle the child never calls holds nothing of the parent's.
#pragma once

#include <spdlog/logger.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "engine/backend.h"
#include "engine/cache_core.h"
#include "engine/compaction.h"
#include "engine/fork.h"
#include "engine/generation.h"
#include "engine/lease.h"
#include "engine/meta.h"
#include "format/shared_atomic.h"
#include "lilcache/lilcache.h"
#include "util/mutex.h"
#include "util/names.h"

namespace lilcache {

class Cache::Impl final : public Cache::Backend, public ForkHook {
 public:
  Impl(std::string_view name, const Options& options);
  ~Impl() override;

  // ForkHook: the prepare handler holds the core's refresh mutex across the
  // fork, so the child's copy of its generations is whole; the child starts every mutex of the
  // handle (and of its generations) afresh and forgets the parent's
  // maintenance thread. Its Meta closes its own descriptor (meta.h).
  // The core's refresh mutex is taken in one handler and released in
  // another: out of the analysis' sight (fork.h states the protocol).
  void BeforeFork() override NO_THREAD_SAFETY_ANALYSIS;
  void AfterForkInParent() override NO_THREAD_SAFETY_ANALYSIS;
  void AfterForkInChild() override NO_THREAD_SAFETY_ANALYSIS;

  // ttl_ms = 0: Options::expires (or none). kind: the record's KIND (ValueKind).
  void Set(std::string_view key, std::string_view value, std::uint64_t ttl_ms,
           std::uint8_t kind = 0) override;
  std::optional<std::string> Get(std::string_view key) override;
  // get() into a caller's buffer (reusing its capacity), with the kind.
  bool GetInto(std::string_view key, std::string& value, ValueKind* kind) override;
  // `kind` (if not null) receives the popped value's kind.
  std::optional<std::string> Pop(std::string_view key, bool want_value,
                                 std::uint8_t* kind = nullptr) override;
  bool Contains(std::string_view key) override;
  void Purge() override;
  std::size_t Size() override;
  // Calls fn for each live key with the prefix; `verify` checks each value's
  // checksum first (when values are handed out), throwing Error on a bad one.
  void ForEach(std::string_view prefix,
               const std::function<bool(std::string_view, std::string_view)>& fn,
               bool verify = true) override;
  Stats GetStats() override;

  // ---- conditional writes, get_or_set, batches (cache_update.cc) ----
  // What a conditional write does to a key, given its visible record.
  struct Change {
    enum class Kind { kNothing, kSet, kErase };
    Kind kind = Kind::kNothing;
    std::string_view value;        // kSet: the new value (may view the current record)
    std::uint64_t expires_ms = 0;  // kSet: absolute, 0 = never
    std::uint8_t value_kind = 0;   // kSet: the value's KIND (ValueKind)
  };
  using Decide = std::function<Change(const record::RecordView* current)>;
  // Applies decide(the key's visible record, or nullptr if absent)
  // atomically: the record decide saw is still the key's when the change is
  // published (a CAS of the key's slot); if another writer changed the key
  // meanwhile, the appended record is marked ABORTED and decide is asked
  // again. Returns whether a record was published. decide may throw (before
  // anything is appended for that try). `op` names the operation in the
  // debug log.
  bool Update(std::string_view key, const char* op, const Decide& decide);
  bool Add(std::string_view key, std::string_view value, std::uint64_t ttl_ms,
           std::uint8_t kind = 0) override;
  std::int64_t Increment(std::string_view key, std::int64_t delta, std::int64_t initial,
                         std::uint64_t ttl_ms) override;
  std::optional<Versioned> GetVersioned(std::string_view key) override;
  bool CompareAndSet(std::string_view key, std::uint64_t version, std::string_view value,
                     std::uint64_t ttl_ms, std::uint8_t kind = 0) override;
  bool CompareAndErase(std::string_view key, std::uint64_t version) override;
  bool Touch(std::string_view key, std::uint64_t ttl_ms) override;
  bool Persist(std::string_view key) override;
  std::optional<std::chrono::milliseconds> Ttl(std::string_view key) override;
  TypedValue GetOrSet(std::string_view key, const std::function<TypedValue()>& compute,
                      std::uint64_t ttl_ms) override;
  std::vector<std::optional<std::string>> GetMany(const std::vector<std::string>& keys) override;
  void SetMany(const std::vector<std::pair<std::string, std::string>>& items,
               std::uint64_t ttl_ms) override;
  std::size_t EraseMany(const std::vector<std::string>& keys) override;
  // Items per writer section of SetMany/EraseMany: a compactor's pause waits
  // for at most this many writes of one batch.
  static constexpr std::size_t kBatchChunk = 256;
  // msync of the data file written so far, the index and the meta file.
  void Sync() override;
  // Runs a generation switch now (compaction.h); false if another process
  // holds the COMPACT lock (or as the request says).
  bool Compact(const CompactionRequest& request);
  // Cache::compact(): waits for this process's own background compaction,
  // and counts as a snapshot.
  CompactionResult CompactNow() override;

  const std::string& name() const override { return core_.paths().name; }
  const std::string& root() const override { return core_.paths().root; }
  Env* env() const override { return env_; }

  // Dead space is reclaimed automatically (Options::compact_dead_ratio) only
  // in data files longer than this: smaller ones are not worth a compaction.
  static constexpr std::uint64_t kMinReclaimTail = 4u << 20;
  // Backpressure (docs/concurrency.md, "Space"): once dead bytes pass
  // kPaceStartRatio of the data file (at least compact_dead_ratio + 0.05), a
  // write sleeps CacheCore::kThrottleMicros after it is done with a
  // probability that grows linearly to 1 at kPaceFullRatio (at least 0.03
  // above the start): writers faster than compaction are slowed just enough,
  // a few writes in a thousand, and the file stays within 2x the live data
  // (dead < 1/2).
  static constexpr double kPaceStartRatio = 0.3;
  static constexpr double kPaceFullRatio = 0.48;

 private:
  enum class Outcome { kDone, kIndexFull };
  // The data file bytes one write appended, to msync with Options::sync = "always".
  struct Written {
    std::uint64_t begin = UINT64_MAX;
    std::uint64_t end = 0;
    void Add(std::uint64_t off, std::uint64_t size) {
      begin = std::min(begin, off);
      end = std::max(end, off + size);
    }
  };

  void Attach();  // open meta, claim a slot, recover if alone, map
  // The check at the start of every operation: one relaxed load of the
  // process's fork epoch and one acquire load of the handle's. In a fork
  // child the first call re-attaches (Reattach).
  void ReattachIfForked() {
    const std::uint64_t epoch = ForkEpoch();
    if (epoch == fork_epoch_.load(std::memory_order_acquire)) [[likely]] {
      return;
    }
    Reattach(epoch);
  }
  void Reattach(std::uint64_t epoch) EXCLUDES(attach_mu_);
  void OpenLocked();  // under the INIT lock
  std::uint64_t Append(Generation& g, const record::NewRecord& rec, Written& w);
  record::NewRecord Sequenced(record::NewRecord rec);
  Outcome SetIn(Generation& g, const record::NewRecord& rec, std::uint64_t hash, Written& w);
  std::optional<std::string> PopIn(Generation& g, std::string_view key, std::uint64_t hash,
                                   bool want_value, bool* found, Written& w,
                                   std::uint8_t* kind = nullptr);
  Outcome UpdateIn(Generation& g, std::string_view key, std::uint64_t hash, const Decide& decide,
                   bool* wrote, Written& w);
  // A record this writer appended at `off` and will never publish: marked
  // ABORTED (docs/format.md, "Record") and counted as dead space.
  void Abort(Generation& g, std::uint64_t off, std::size_t size);
  // The absolute expiry of a write with ttl_ms (0: Options::expires, or never).
  std::uint64_t ExpiryOf(std::uint64_t ttl_ms) const;
  // With Options::sync = "always": msyncs what a write appended.
  void SyncWritten(Generation& g, const Written& w);
  // Visible to readers: a SET newer than the last purge and not expired.
  bool Visible(const record::RecordView& rec, bool* expired);
  void CheckIntegrity(Generation& g, const record::RecordView& rec);
  // What a finished write asks for: a backpressure sleep (Options::
  // compact_dead_ratio), a background compaction (index half full, dead
  // space, max_bytes). Judged by AssessWrite() inside the writer section,
  // where the generation written to is pinned; carried out by AfterWrite()
  // outside it.
  struct WriteFollowUp {
    double pace = 0;  // the probability that this write sleeps (backpressure)
    bool compact = false;
  };
  WriteFollowUp AssessWrite(Generation& g) const;
  void AfterWrite(WriteFollowUp f);
  // Backpressure for `writes` writes done at `pace` (WriteFollowUp::pace),
  // outside the writer section so that no compactor ever waits for it.
  void Pace(double pace, std::uint64_t writes);
  // Background maintenance: AfterWrite() asks, this thread compacts, so no
  // set() pays for a compaction (unless the index is completely full).
  void RequestMaintenance() EXCLUDES(maintenance_mu_);
  void MaintenanceLoop() EXCLUDES(maintenance_mu_);
  // What the maintenance thread waits for: a request, or the stop.
  bool MaintenanceWakeUp() const REQUIRES(maintenance_mu_) {
    return maintenance_stop_ || maintenance_requested_.load(std::memory_order_relaxed);
  }
  void RunMaintenance(bool snapshot);
  void PeriodicSync();  // Options::sync as an interval; logs failures
  void StartMaintenanceThread() EXCLUDES(maintenance_mu_);
  void StopMaintenance() EXCLUDES(maintenance_mu_);
  // This thread's stripe of process-local counters (CacheCore::Count): no
  // shared cache line is written. Inline: every get runs it.
  void CountHit(bool hit, bool expired) {
    core_.Count(hit ? CacheCore::kHits : CacheCore::kMisses);
    if (expired) [[unlikely]] {
      core_.Count(CacheCore::kExpired);
    }
  }
  // get() and contains(): the value (or "" when !copy_value) if visible;
  // also its record's seq (the version) and expiry when asked for.
  struct Found {
    std::uint64_t seq = 0;
    std::uint64_t expires_ms = 0;
    std::uint8_t kind = 0;
  };
  // Whether key holds a live value; its bytes are assigned to *value (its
  // checksum checked first) unless value is null (contains, ttl). `count`:
  // in the hit/miss counters of stats() (not get_or_set's polls).
  bool Lookup(std::string_view key, std::string* value, Found* found = nullptr, bool count = true);
  // One key of a lookup in the pinned generation g (Lookup, GetMany).
  bool LookupIn(Generation& g, std::string_view key, std::uint64_t hash, std::string* value,
                Found* found, bool* expired);

  // env, paths, meta, logger, salt, slot, generations: shared with the
  // compactor and recovery (cache_core.h).
  CacheCore core_;
  Env* const env_;  // core_.env()
  std::uint64_t default_ttl_ms_ = 0;
  std::uint64_t get_or_set_timeout_ms_ = 30'000;  // Options::get_or_set_timeout
  std::function<void()> get_or_set_wait_hook_;    // Options::get_or_set_wait_hook
  std::uint64_t snapshot_ms_ = 0;
  bool create_ = true;           // Options::create_if_missing
  bool sync_always_ = false;     // Options::sync == "always"
  bool one_shot_ = false;        // Options::one_shot: "opened" is logged at debug
  std::uint64_t sync_ms_ = 0;    // Options::sync as an interval; 0 = none
  std::uint64_t max_bytes_ = 0;  // Options::max_bytes: stored in the meta at open if not 0
  double dead_ratio_ = 0.4;
  double pace_start_ = kPaceStartRatio;  // see kPaceStartRatio
  double pace_full_ = kPaceFullRatio;    // see kPaceFullRatio
  spdlog::level::level_enum level_;
  // The fork epoch (fork.h) this handle is attached in: it holds a descriptor
  // of NAME.meta and a process slot of this process. Release store by
  // Reattach() after the core's meta, slot and logger are set, acquire load in
  // ReattachIfForked(): a thread that sees the epoch current sees them too.
  std::atomic<std::uint64_t> fork_epoch_{0};

  Mutex attach_mu_;  // serializes Reattach() (guards the core's attach state)
  // Monotonic ns before which AfterWrite() does not try to compact again
  // (another process holds the COMPACT lock, or a try was abandoned).
  // Relaxed: a hint between threads of this process.
  std::atomic<std::uint64_t> compact_backoff_until_{0};
  // Relaxed: set by writers, cleared by the maintenance thread; the mutex
  // and condition variable carry the actual hand-over.
  std::atomic<bool> maintenance_requested_{false};
  Mutex maintenance_mu_;
  CondVar maintenance_cv_{&maintenance_mu_};
  bool maintenance_stop_ GUARDED_BY(maintenance_mu_) = false;
  // Started on first request under maintenance_mu_; joined (outside it) once
  // maintenance_stop_ is set, after which nobody starts it again.
  std::thread maintenance_;

  LeaseTable leases_{env_};  // get_or_set() leases of this handle's threads

  // Last: registered once every member above exists, unregistered first.
  ForkRegistration fork_registration_{this};
};

}  // namespace lilcache
