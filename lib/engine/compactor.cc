#include "engine/compactor.h"

#include <dirent.h>
#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <roaring/roaring64map.hh>
#include <unordered_map>
#include <vector>

#include "lilcache/env.h"
#include "util/quote.h"
#include "engine/shared_atomic.h"
#include "engine/trust.h"

namespace lilcache {
namespace {

constexpr std::uint64_t kDrainTimeoutNs = 5'000'000'000;  // a stopped writer aborts the switch
constexpr std::uint64_t kCatchUpThreshold = 32 << 10;  // pause when less than this is left
constexpr int kMaxCatchUpRounds = 64;   // then pause whatever is left

// The new generation's index filled up during catch-up: more new keys
// arrived during the compaction than it was sized for. Run() starts over.
struct NewIndexFull : Error {
  explicit NewIndexFull(std::uint64_t n)
      : Error(ErrorCode::busy,
              "compaction: new index of " + std::to_string(n) + " slots filled up during catch-up"),
        slots(n) {}
  std::uint64_t slots;
};

// A new generation being written by one thread, under .tmp names.
class Builder {
 public:
  Builder(Cache::Impl& c, std::uint64_t gen, std::uint64_t slots, std::uint64_t capacity)
      : c_(c), number_(gen) {
    g_.number = gen;
    g_.salt = c.salt();
    g_.data.Create(c.env(), c.paths().data(gen) + ".tmp", gen, c.salt(), capacity,
                   c.env()->NowMillis());
    g_.index.Create(c.env(), c.paths().index(gen) + ".tmp", gen, slots);
  }
  ~Builder() {
    if (!finished_) Discard();
  }

  Index::Probe Find(std::string_view key, std::uint64_t hash) { return g_.Find(key, hash); }
  record::RecordView Record(std::uint64_t off) { return g_.Record(off); }

  // Appends `bytes` (whole records of the old generation, in log order) with
  // one write to the file, not through its mapping: a page of a fresh
  // mapping costs a fault and a zero-fill before the copy (measured on the
  // dev VM: 512 MB in 1.3-1.8 s through the mapping, 0.14 s by pwrite).
  // Returns their offset in the new log.
  std::uint64_t AppendBytes(std::span<const char> bytes) {
    std::uint64_t off = g_.data.Reserve(bytes.size(), nullptr);
    if (c_.env()->PwriteAll(g_.data.file().fd(), bytes.data(), bytes.size(),
                            static_cast<off_t>(off)) != 0) {
      ThrowErrno("cannot write", g_.data.path());
    }
    return off;
  }

  // Points the key's slot (probe `p`) at the copy at `off`. The caller has
  // checked it is newer than what the slot holds.
  void Install(std::uint64_t off, std::uint64_t hash, const Index::Probe& p) {
    std::uint64_t value = Index::Pack(hash, off);
    if (p.value == 0) {
      std::uint64_t seen;
      g_.index.Claim(p.pos, value, &seen);
    } else {
      // Relaxed is enough: nobody else can see this index before the rename
      // and the release store of the new generation number.
      g_.index.slot(p.pos).store(value, std::memory_order_relaxed);
#ifndef NDEBUG
      const record::RecordView now = Record(off);
      CheckSlotMove(c_.logger(), "compaction", now.key(), Record(Index::OffsetOf(p.value)).seq(),
                    now.seq());
#endif
      // The copy it replaces (catch-up) is dead space of the new generation.
      auto dead = Shared(g_.data.header().dead_bytes);
      dead.store(dead.load(std::memory_order_relaxed) + Record(Index::OffsetOf(p.value)).size(),
                 std::memory_order_relaxed);
    }
    if (g_.index.used() * 4 > g_.index.slot_count() * 3) throw NewIndexFull(g_.index.slot_count());
    ++records_;
  }

  // Appends a copy of `rec` (from the old generation) and points the key's
  // slot at it. The caller has checked it is newer than what the slot holds.
  // One record (the catch-up, whose last round runs while writers are
  // paused) is copied through the mapping: cheaper than a write(2) each.
  void CopyAndInstall(const record::RecordView& rec, std::uint64_t hash, const Index::Probe& p) {
    std::uint64_t off = g_.data.Reserve(rec.size(), nullptr);
    std::memcpy(g_.data.base() + off, rec.header, rec.size());
    Install(off, hash, p);
  }

  // Gives the files their final names (NAME.G.data/.index). Harmless before
  // the switch: until meta says G, such files are strays that the next
  // compactor deletes.
  void Rename() {
    Env* env = c_.env();
    for (auto [tmp, final] :
         {std::pair{c_.paths().data(number_) + ".tmp", c_.paths().data(number_)},
          std::pair{c_.paths().index(number_) + ".tmp", c_.paths().index(number_)}}) {
      if (env->Rename(tmp.c_str(), final.c_str()) != 0) ThrowErrno("cannot rename", tmp);
    }
    renamed_ = true;
  }

  // Marks everything written as checked (the compactor verified each record).
  void Seal() {
    auto& h = g_.data.header();
    Shared(h.verified_upto)
        .store(Shared(h.tail).load(std::memory_order_relaxed), std::memory_order_relaxed);
    finished_ = true;
  }

  // Everything written so far durable: both files and their names.
  void Sync() {
    Env* env = c_.env();
    if (env->Fsync(g_.data.file().fd()) != 0) ThrowErrno("fsync", c_.paths().data(number_));
    if (env->Fsync(g_.index.file().fd()) != 0) ThrowErrno("fsync", c_.paths().index(number_));
    if (env->FsyncDir(c_.paths().root.c_str()) != 0) ThrowErrno("fsync", c_.paths().root);
  }

  void Discard() {
    g_.Close();
    std::string suffix = renamed_ ? "" : ".tmp";
    c_.env()->Unlink((c_.paths().data(number_) + suffix).c_str());
    c_.env()->Unlink((c_.paths().index(number_) + suffix).c_str());
  }

  std::uint64_t tail() { return Shared(g_.data.header().tail).load(std::memory_order_relaxed); }
  std::uint64_t records() const { return records_; }
  std::uint64_t slots() const { return g_.index.slot_count(); }

 private:
  Cache::Impl& c_;
  std::uint64_t number_;
  Generation g_;
  bool finished_ = false;
  bool renamed_ = false;
  std::uint64_t records_ = 0;
};

// Copies records of the old generation, given in log order, into a Builder
// whose index does not hold their keys yet: adjacent records go out as one
// write of up to kMaxRunBytes. The caller calls Flush() at the end (not the
// destructor: a write may throw).
class RunCopier {
 public:
  static constexpr std::uint64_t kMaxRunBytes = 1 << 20;

  RunCopier(Builder& b, std::uint64_t salt) : b_(b), salt_(salt) {}

  void Add(std::uint64_t off, const record::RecordView& rec) {
    if (!run_.empty() && (off != end_ || end_ - begin_ + rec.size() > kMaxRunBytes)) Flush();
    if (run_.empty()) begin_ = off;
    run_.push_back(rec);
    end_ = off + rec.size();
  }

  void Flush() {
    if (run_.empty()) return;
    auto* start = reinterpret_cast<const char*>(run_.front().header);
    std::uint64_t dst = b_.AppendBytes({start, static_cast<std::size_t>(end_ - begin_)});
    for (const record::RecordView& r : run_) {
      std::uint64_t hash = record::HashKey(r.key(), salt_);
      b_.Install(dst + static_cast<std::uint64_t>(reinterpret_cast<const char*>(r.header) - start),
                 hash, b_.Find(r.key(), hash));
    }
    run_.clear();
  }

 private:
  Builder& b_;
  std::uint64_t salt_;
  std::vector<record::RecordView> run_;
  std::uint64_t begin_ = 0, end_ = 0;
};

// Deletes every file of the cache that belongs to no live generation:
// older generations and .tmp files of crashed compactions. The caller holds
// COMPACT (or INIT with no other process alive).
// `live_durable`: the live generation's files and the meta page naming it
// are known synced; else they are synced before the previous generation's
// log goes (a compactor that died after its switch left it, and it is all
// that a power loss would leave of the catch-up copies: "Durability").
void RemoveStrayFiles(Cache::Impl& c, std::uint64_t live, bool live_durable) {
  const std::string prefix = c.paths().name + ".";
  DIR* dir = opendir(c.paths().root.c_str());
  if (dir == nullptr) return;
  std::vector<std::string> doomed;
  bool predecessor = false;
  while (const dirent* e = readdir(dir)) {
    std::string_view n = e->d_name;
    if (!n.starts_with(prefix)) continue;
    n.remove_prefix(prefix.size());
    std::uint64_t gen = 0;
    auto [p, ec] = std::from_chars(n.data(), n.data() + n.size(), gen);
    if (ec != std::errc() || p == n.data()) continue;
    std::string_view rest(p, static_cast<std::size_t>(n.data() + n.size() - p));
    bool ours = rest == ".data" || rest == ".index" || rest == ".data.tmp" || rest == ".index.tmp";
    if (ours && (gen != live || rest.ends_with(".tmp"))) doomed.emplace_back(e->d_name);
    predecessor |= ours && gen + 1 == live && rest == ".data";
  }
  closedir(dir);
  if (predecessor && !live_durable) {
    Env* env = c.env();
    for (const std::string& path : {c.paths().data(live), c.paths().index(live)}) {
      int fd = env->Open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0);
      if (fd < 0) ThrowErrno("cannot open", path);
      int rc = env->Fsync(fd);
      int e = errno;
      env->Close(fd);
      errno = e;
      if (rc != 0) ThrowErrno("fsync", path);
    }
    c.SyncMeta();
  }
  bool removed = false;
  for (const auto& f : doomed) {
    std::string path = c.paths().root + "/" + f;
    if (c.env()->Unlink(path.c_str()) == 0) {
      c.logger().debug("removed stale file {}", path);
      removed = true;
    }
  }
  // Durably: after a reboot, a previous generation's log that is still there
  // is replayed with the current one (docs/concurrency.md, "Durability"),
  // which must not happen once the switch that retired it has completed.
  if (removed && c.env()->FsyncDir(c.paths().root.c_str()) != 0) {
    ThrowErrno("fsync", c.paths().root);
  }
}

bool VisibleForCopy(Cache::Impl& c, const record::RecordView& rec, std::uint64_t now) {
  return !rec.is_tombstone() &&
         rec.seq() > Shared(c.meta().header().purge_seq).load(std::memory_order_acquire) &&
         !rec.expired_at(now);
}

// Waits until no live process has a write in flight in `epoch` (or in both
// epochs if epoch < 0). False on timeout (a stopped process).
bool Drain(Cache::Impl& c, int epoch) {
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
bool FlipAndDrain(Cache::Impl& c) {
  auto state = Shared(c.meta().header().writer_state);
  std::uint32_t old = state.fetch_xor(kEpochBit, std::memory_order_seq_cst) & kEpochBit;
  return Drain(c, static_cast<int>(old));
}

// For each record in [from, to) of the old generation, copies what the OLD
// index says is current for its key, if newer than what the new one holds.
void CatchUp(Cache::Impl& c, Generation& old, Builder& b, std::uint64_t from, std::uint64_t to) {
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

// Rounds of flip + drain + catch-up until less than kCatchUpThreshold is left
// (or kMaxCatchUpRounds). Writers are throttled from the first round whose
// backlog is not at most half the previous one: catching up must converge,
// and every byte written meanwhile is copied again (space and time). Returns the number of rounds, -1 if a
// writer did not finish in time.
int CatchUpRounds(Cache::Impl& c, Generation& old, Builder& b, std::uint64_t& done,
                  Throttle& throttle) {
  auto tail = Shared(old.data.header().tail);
  std::uint64_t previous = UINT64_MAX;
  for (int round = 0; round < kMaxCatchUpRounds; ++round) {
    std::uint64_t t = tail.load(std::memory_order_seq_cst);
    std::uint64_t backlog = t - done;
    if (backlog < kCatchUpThreshold) return round;
    if (backlog > previous / 2) throttle.Engage();
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
void CheckSwitch(Cache::Impl& c, Generation& old, Builder& b, std::uint64_t evicted) {
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

std::uint64_t Compactor::Evict(Roaring64Map& live, std::uint64_t& live_bytes, Generation& g) {
  std::uint64_t limit = c_.max_bytes();
  if (limit == 0 || live_bytes <= limit) return 0;
  // Down to 90% of the limit, so that the next eviction is not one write away.
  std::uint64_t target = limit / 10 * 9, evicted = 0;
  Roaring64Map gone;
  for (std::uint64_t off8 : live) {  // oldest first: the head of the log
    if (live_bytes <= target) break;
    live_bytes -= g.Record(off8 * record::kAlign).size();
    gone.add(off8);
    ++evicted;
  }
  live -= gone;
  Shared(c_.meta().header().evictions).fetch_add(evicted, std::memory_order_relaxed);
  c_.logger().info("evicting {} keys to keep the live data under max_bytes = {}", evicted, limit);
  return evicted;
}

bool Compactor::Run(const char* reason, std::uint64_t min_slots, CompactionResult* result,
                    std::uint64_t snapshot_interval_ms) {
  for (int attempt = 1;; ++attempt) {
    try {
      return RunOnce(reason, min_slots, result, snapshot_interval_ms);
    } catch (const NewIndexFull& e) {
      // Keys keep arriving faster than the sizing foresaw (a burst of new
      // keys into a nearly empty cache): start over with four times the room.
      if (attempt == 3) throw;
      min_slots = std::max(min_slots, e.slots * 4);
      c_.logger().info("compaction ({}): {}; starting over with {} slots", reason, e.what(),
                       min_slots);
    }
  }
}

bool Compactor::RunOnce(const char* reason, std::uint64_t min_slots, CompactionResult* result,
                        std::uint64_t snapshot_interval_ms) {
  // An explicit compact() waits for this process's own background compaction
  // to finish, then does its own; automatic ones give way.
  std::unique_lock<std::mutex> in_process(c_.compact_mutex(), std::defer_lock);
  if (result != nullptr) {
    in_process.lock();
  } else if (!in_process.try_lock()) {
    return false;
  }
  Env* env = c_.env();
  FileLock lock = FileLock::TryAcquire(env, c_.meta().file(), kCompactLockByte);
  if (!lock.held()) return false;
  auto& meta = c_.meta().header();
  auto last_snapshot = Shared(meta.last_snapshot_ms);
  if (snapshot_interval_ms != 0 &&
      env->NowMillis() + 50 <
          last_snapshot.load(std::memory_order_relaxed) + snapshot_interval_ms) {
    return false;  // another process took this interval's snapshot
  }
  const std::uint64_t start_ns = env->MonotonicNanos();
  c_.Refresh();
  Generation* old = c_.Pin();
  struct Unpin {  // on every exit: move this process on, unmap what is left behind
    Cache::Impl& c;
    Generation* g;
    ~Unpin() {
      Cache::Impl::Unpin(g);
      try {
        c.Refresh();
        c.RetireNow();
      } catch (...) {
        // The next operation refreshes again and reports any error.
      }
    }
  } unpin{c_, old};
  auto state = Shared(meta.writer_state);
  if (old->number != Shared(meta.generation).load(std::memory_order_acquire)) return false;
  // A compactor that died may have left the pause on; we hold COMPACT now.
  state.fetch_and(~(kSwitchingBit | kThrottleBit), std::memory_order_seq_cst);
  RemoveStrayFiles(c_, old->number, /*live_durable=*/false);

  // Writes may still be in flight in the epoch that is not current: a
  // compactor that died (or gave up) right after its flip never waited for
  // them, and our own flip below waits only for the current one. They may
  // have reserved space below t1, which the catch-up does not cover: wait for
  // them first (no write enters that epoch now).
  if (!Drain(c_, static_cast<int>((state.load(std::memory_order_seq_cst) & kEpochBit) ^ 1))) {
    return Abandon(reason);
  }
  auto tail = Shared(old->data.header().tail);
  std::uint64_t t1 = tail.load(std::memory_order_seq_cst);
  if (!FlipAndDrain(c_)) return Abandon(reason);
  // 2. Live records below t1, in log order.
  Roaring64Map live;
  std::uint64_t live_bytes = 0, now = env->NowMillis(), expired = 0, deleted = 0;
  for (std::uint64_t i = 0; i < old->index.slot_count(); ++i) {
    std::uint64_t v = old->index.slot(i).load(std::memory_order_acquire);
    if (v == 0 || Index::OffsetOf(v) >= t1) continue;
    record::RecordView rec = old->Record(Index::OffsetOf(v));
    if (!VisibleForCopy(c_, rec, now)) {
      ++(rec.is_tombstone() ? deleted : rec.expired_at(now) ? expired : deleted);
      continue;
    }
    live.add(Index::OffsetOf(v) / record::kAlign);
    live_bytes += rec.size();
  }
  std::uint64_t evicted = Evict(live, live_bytes, *old);
  // Writers slow down for the whole switch when the log is already more than
  // 1.5 times its live data: a log that must not grow much further (as when
  // reclaiming dead space) cannot take in a compaction's worth of writes at
  // full speed, and each of them would be copied again.
  Throttle throttle{state};
  if (tail.load(std::memory_order_relaxed) > (live_bytes + kHeaderSize) / 2 * 3) {
    throttle.Engage();
  }
  // Room for every key the old generation has held, not only the live ones:
  // after a purge or mass delete few are live, but the writes the catch-up
  // copies may bring as many back.
  std::uint64_t slots = std::max({min_slots, Index::SlotsFor(live.cardinality() * 2),
                                  Index::SlotsFor(old->index.used())});
  Builder b(c_, old->number + 1, slots, live_bytes + kHeaderSize);
  RunCopier copier(b, c_.salt());
  for (std::uint64_t off8 : live) {
    record::RecordView rec = old->Record(off8 * record::kAlign);
    if (!old->ChecksumOk(rec)) {
      c_.logger().error("compaction: skipping corrupt record at offset {} of {}",
                        off8 * record::kAlign, old->data.path());
      continue;
    }
    copier.Add(off8 * record::kAlign, rec);
  }
  copier.Flush();
  // 3. Make the new files durable under their final names, so that the meta
  // page naming G+1 can never reach the disk before the files it names. That
  // is the slow part: if writers are busy, slow them down meanwhile, since
  // everything they write now will be copied again. Then catch up on what
  // they wrote (rounds that must converge, see CatchUpRounds).
  const std::uint64_t copied_ns = env->MonotonicNanos();
  if (tail.load(std::memory_order_relaxed) - t1 >= kCatchUpThreshold) throttle.Engage();
  b.Rename();
  b.Sync();
  const std::uint64_t synced_ns = env->MonotonicNanos();
  std::uint64_t done = t1;
  int rounds = CatchUpRounds(c_, *old, b, done, throttle);
  if (rounds < 0) return Abandon(reason);
  // 4. Pause writers for the last bit and the switch.
  const std::uint64_t pause_ns = env->MonotonicNanos();
  state.fetch_or(kSwitchingBit, std::memory_order_seq_cst);
  struct Resume {
    std::atomic_ref<std::uint32_t> s;
    ~Resume() { s.fetch_and(~kSwitchingBit, std::memory_order_seq_cst); }
  } resume{state};
  if (!Drain(c_, -1)) return Abandon(reason);
  CatchUp(c_, *old, b, done, tail.load(std::memory_order_seq_cst));
  b.Seal();
  // The catch-up copies are not durable yet, and the kernel may write the
  // meta page back at any moment after this store (or another process's
  // sync() or purge() flush it): after a power loss the next boot may find
  // a G+1 without its last records. It replays G's log with it, which this
  // process unlinks only once G+1 is synced (step 5, RemoveStrayFiles):
  // docs/concurrency.md, "Durability". So no disk flush in the pause.
  // Release: a process that reads the new number finds the renamed files.
  Shared(meta.generation).store(old->number + 1, std::memory_order_release);
  Shared(meta.compactions).fetch_add(1, std::memory_order_relaxed);
  state.fetch_and(~(kSwitchingBit | kThrottleBit), std::memory_order_seq_cst);
  const std::uint64_t paused_us = (env->MonotonicNanos() - pause_ns) / 1000;
  // 5. The new generation number durable (a sync = "always" writer in G+1
  // does not count on it: it syncs the meta page itself unless its handle
  // knows G+1 durable), then all of G+1, and only then the old files go,
  // durably (processes that still map them keep their pages).
  c_.SyncMeta();
  b.Sync();
  if (snapshot_interval_ms != 0 || result != nullptr) {
    last_snapshot.store(env->NowMillis(), std::memory_order_relaxed);
    Shared(meta.snapshots).fetch_add(1, std::memory_order_relaxed);
  }
  RemoveStrayFiles(c_, old->number + 1, /*live_durable=*/true);
  c_.logger().info(
      "compacted ({}): generation {} -> {}, {} records, {} -> {} bytes, index {} slots, "
      "writers paused {} us, took {} ms (copy {} ms, fsync {} ms, {} catch-up rounds {} ms, "
      "writers {}throttled)",
      reason, old->number, old->number + 1, b.records(), tail.load(std::memory_order_relaxed),
      b.tail(), b.slots(), paused_us, (env->MonotonicNanos() - start_ns) / 1'000'000,
      (copied_ns - start_ns) / 1'000'000, (synced_ns - copied_ns) / 1'000'000, rounds,
      (pause_ns - synced_ns) / 1'000'000, throttle.engaged() ? "" : "not ");
  if (result != nullptr) {
    result->compacted = true;
    result->generation = old->number + 1;
    result->bytes_before = tail.load(std::memory_order_relaxed);
    result->bytes_after = b.tail();
    result->keys_live = b.records();
    result->keys_expired = expired;
    result->keys_deleted = deleted;
    result->keys_evicted = evicted;
    result->duration = std::chrono::microseconds((env->MonotonicNanos() - start_ns) / 1000);
    result->writer_pause = std::chrono::microseconds(paused_us);
  }
#ifndef NDEBUG
  CheckSwitch(c_, *old, b, evicted);  // outside the timings above
#endif
  return true;
}

namespace {

// The newest valid record of each key in the log (the whole file, not just to
// its recorded tail: after a power loss the header may be older than the
// records). Keys are views into the mapped log.
struct LogScan {
  std::unordered_map<std::string_view, std::uint64_t> latest;  // key -> offset
  std::uint64_t max_seq = 0;
  std::uint64_t records = 0;
  std::uint64_t damaged = 0;  // damaged regions skipped
};

record::RecordView RecordAt(const DataFile& d, std::uint64_t off) {
  record::RecordView r;
  r.header = reinterpret_cast<const record::RecordHeader*>(d.base() + off);
  return r;
}

LogScan ScanLog(DataFile& d, std::uint64_t salt) {
  LogScan s;
  const std::uint64_t end = d.file_size();
  std::span<const char> region(d.base(), end);
  s.damaged = record::ForEachValidRecord(region, kHeaderSize, end, salt,
                                      [&](std::uint64_t off, record::RecordView r) {
                                        ++s.records;
                                        s.max_seq = std::max(s.max_seq, r.seq());
                                        auto [it, fresh] = s.latest.try_emplace(r.key(), off);
                                        if (!fresh && RecordAt(d, it->second).seq() < r.seq()) {
                                          it->second = off;
                                        }
                                      });
  return s;
}

// The records the index publishes, each checked (inside the log, a valid
// record, of the key the slot's tag says). False if any is not: the index
// cannot be trusted and the caller replays the log instead.
bool PublishedRecords(Generation& g, Roaring64Map* out) {
  const std::uint64_t tail = Shared(g.data.header().tail).load(std::memory_order_relaxed);
  std::span<const char> region = g.data.Region(std::min(tail, g.data.mapped()));
  for (std::uint64_t i = 0; i < g.index.slot_count(); ++i) {
    std::uint64_t v = g.index.slot(i).load(std::memory_order_relaxed);
    if (v == 0) continue;
    std::uint64_t off = Index::OffsetOf(v);
    record::RecordView r;
    if (off < kHeaderSize || record::CheckRecord(region, off, g.salt, &r) != record::Damage::kNone ||
        !Index::TagMatches(v, record::HashKey(r.key(), g.salt))) {
      return false;
    }
    out->add(off / record::kAlign);
  }
  return true;
}

}  // namespace

void Compactor::RecoverAlone() {
  Env* env = c_.env();
  auto& meta = c_.meta().header();
  // Nobody else is here: any pause is a dead compactor's.
  Shared(meta.writer_state).store(0, std::memory_order_seq_cst);
  std::uint64_t gen = Shared(meta.generation).load(std::memory_order_acquire);
  Generation g;
  g.number = gen;
  g.salt = c_.salt();
  // The log first: it is the data. A log that cannot be opened is an Error.
  g.data.Open(env, c_.paths().data(gen), gen, c_.salt());
  std::string boot = env->BootId();
  std::string why;
  // The index is derived from the log: one that cannot be opened or
  // validated (missing, too short, bad magic, wrong generation or slot
  // count) is a reason to replay the log, never an unopenable cache.
  try {
    g.index.Open(env, c_.paths().index(gen), gen);
  } catch (const UntrustedFile&) {
    throw;  // another user's file, or one others can write: refused, not rebuilt over
  } catch (const Error& e) {
    why = std::string("the index cannot be used (") + e.what() + ")";
  }
  // Only a damaged record of a process killed this boot leaves the index
  // trustworthy: the kernel kept every store to the shared mappings.
  bool index_trusted = false;
  if (!why.empty()) {
    // Replay.
  } else if (!c_.meta().BootIdIs(boot)) {
    why = "first open since a reboot";
  } else if ((Shared(meta.flags).load(std::memory_order_relaxed) & kFlagNeedsRebuild) != 0) {
    why = "a checksum error was reported";
  } else if (g.data.truncated()) {
    why = "the log file is shorter than its header says (truncated)";
  }
  auto& dh = g.data.header();
  std::uint64_t tail = Shared(dh.tail).load(std::memory_order_relaxed);
  if (why.empty()) {
    std::uint64_t off = Shared(dh.verified_upto).load(std::memory_order_relaxed);
    if (tail > g.data.mapped()) g.data.EnsureMapped(tail);
    std::span<const char> region = g.data.Region(tail);
    while (off < tail) {
      record::RecordView r;
      record::Damage d = record::CheckRecord(region, off, c_.salt(), &r);
      if (d != record::Damage::kNone) {
        why = std::string("damaged record (") + record::DamageName(d) + ") at offset " +
              std::to_string(off);
        index_trusted = true;
        break;
      }
      off += r.size();
    }
    if (why.empty()) Shared(dh.verified_upto).store(tail, std::memory_order_relaxed);
  }
  if (why.empty()) {
    // The boot id matches (else `why` would say so): nothing to record.
    RemoveStrayFiles(c_, gen, /*live_durable=*/false);
    return;
  }
  // After a reboot, the previous generation's log is replayed too if it is
  // still there: a compaction does not sync the last records it copies
  // before the meta page may name the new generation, and it unlinks the
  // old log (durably) only once the new one is synced (docs/concurrency.md,
  // "Durability"). A log that cannot be opened is left out.
  DataFile previous;
  bool have_previous = false;
  if (!c_.meta().BootIdIs(boot) && gen > 1) {
    const std::string path = c_.paths().data(gen - 1);
    const int fd = env->Open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0);
    if (fd < 0 && errno != ENOENT) ThrowErrno("cannot open", path);  // it may be needed
    if (fd >= 0) {
      env->Close(fd);
      try {
        previous.Open(env, path, gen - 1, c_.salt());
        have_previous = true;
      } catch (const Error& e) {
        c_.logger().warn("recovery: leaving out the previous generation's log: {}", e.what());
      }
    }
  }
  // The boot id is stored by Rebuild, with the rebuilt generation, once that
  // is durable: an opener killed before (a slow replay, Ctrl-C) leaves the
  // old one, and the next opener replays again instead of trusting an index
  // that the power loss left stale.
  Rebuild(g, why, index_trusted, boot, have_previous ? &previous : nullptr);
  previous.Close();
}

// Writes generation g+1 holding the live records of g: those its index
// publishes when `index_trusted` (a record a killed writer wrote but never
// published must not take effect), else the newest valid record of each key
// in the log (replay).
void Compactor::Rebuild(Generation& g, const std::string& why, bool index_trusted,
                        const std::string& boot, DataFile* previous) {
  Env* env = c_.env();
  auto& meta = c_.meta().header();
  LogScan scan = ScanLog(g.data, g.salt);
  Roaring64Map candidates;
  if (index_trusted && !PublishedRecords(g, &candidates)) {
    c_.logger().warn("recovery: the index of {} points at a damaged record; replaying the log",
                     g.data.path());
    candidates.clear();
    index_trusted = false;
  }
  c_.logger().warn("recovering {}: {}; rebuilding from the {}", g.data.path(), why,
                   index_trusted ? "index" : "log");
  std::uint64_t unpublished = 0;
  if (index_trusted) {
    for (std::uint64_t off8 : candidates) {
      record::RecordView r = g.Record(off8 * record::kAlign);
      auto it = scan.latest.find(r.key());
      if (it != scan.latest.end() && it->second != off8 * record::kAlign) ++unpublished;
    }
  } else {
    for (const auto& [key, off] : scan.latest) candidates.add(off / record::kAlign);
  }
  // The previous generation's log, when a power loss cut its compaction
  // short (docs/concurrency.md, "Durability"): its newest record of a key
  // wins where g has none or an older one (seqs are cache-wide).
  LogScan prev_scan;
  Roaring64Map prev_candidates;
  if (previous != nullptr && !index_trusted) {
    prev_scan = ScanLog(*previous, g.salt);
    for (const auto& [key, off] : prev_scan.latest) {
      auto it = scan.latest.find(key);
      if (it != scan.latest.end()) {
        if (RecordAt(g.data, it->second).seq() >= RecordAt(*previous, off).seq()) continue;
        candidates.remove(it->second / record::kAlign);
      }
      prev_candidates.add(off / record::kAlign);
    }
  }
  std::uint64_t bytes = 0, now = env->NowMillis();
  auto visible = [&](const DataFile& d, const Roaring64Map& from) {
    Roaring64Map live;
    for (std::uint64_t off8 : from) {
      record::RecordView r = RecordAt(d, off8 * record::kAlign);
      if (!VisibleForCopy(c_, r, now)) continue;
      live.add(off8);
      bytes += r.size();
    }
    return live;
  };
  Roaring64Map live = visible(g.data, candidates);
  Roaring64Map prev_live;
  if (previous != nullptr) prev_live = visible(*previous, prev_candidates);
  Builder b(c_, g.number + 1, Index::SlotsFor((live.cardinality() + prev_live.cardinality()) * 2),
            bytes + kHeaderSize);
  {
    RunCopier copier(b, c_.salt());
    for (std::uint64_t off8 : live) copier.Add(off8 * record::kAlign, g.Record(off8 * record::kAlign));
    copier.Flush();
  }
  if (previous != nullptr) {  // keys distinct from the ones above
    RunCopier copier(b, c_.salt());
    for (std::uint64_t off8 : prev_live) {
      copier.Add(off8 * record::kAlign, RecordAt(*previous, off8 * record::kAlign));
    }
    copier.Flush();
  }
  scan.max_seq = std::max(scan.max_seq, prev_scan.max_seq);
  b.Seal();
  b.Rename();
  b.Sync();
  auto next = Shared(meta.next_seq);
  if (next.load(std::memory_order_relaxed) <= scan.max_seq) {
    next.store(scan.max_seq + 1, std::memory_order_relaxed);
  }
  // The files of g+1 are durable (Sync above) before the meta page names
  // them. What recovery did is recorded only now that it is done: the new
  // generation, the flag cleared, the boot id of this boot, all in the one
  // meta page, synced at once (if it never reaches the disk, the next boot
  // replays g again: the same result).
  Shared(meta.generation).store(g.number + 1, std::memory_order_release);
  Shared(meta.flags).fetch_and(~kFlagNeedsRebuild, std::memory_order_relaxed);
  c_.meta().SetBootId(boot);
  c_.SyncMeta();
  const std::uint64_t old = g.number;
  g.Close();
  RemoveStrayFiles(c_, old + 1, /*live_durable=*/true);
  c_.logger().warn(
      "recovered: {} valid records, {} damaged regions skipped, {} live keys kept, {} keys "
      "whose newest record was never published (a killed writer's) kept their published one, "
      "{} keys taken from the previous generation's log",
      scan.records + prev_scan.records, scan.damaged + prev_scan.damaged, b.records(), unpublished,
      prev_live.cardinality());
}

}  // namespace lilcache
