// builder: a new generation of a cache (data file + index) being written
// by one thread under .tmp names, by a compaction (compaction.h) or a
// recovery (recovery.h); and the removal of the files of generations that
// are no longer live (older ones, and .tmp files of crashed builders).
//
// Concurrency: a Builder is used by one thread; nobody else can see its
// files before the rename (Rename) and the release store of the new
// generation number in the meta file. RemoveStrayFiles runs under the
// COMPACT lock (or INIT with no other process alive).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "engine/cache_core.h"
#include "engine/data_file.h"
#include "engine/generation.h"
#include "format/record.h"
#include "format/shared_atomic.h"
#include "lilcache/env.h"
#include "lilcache/lilcache.h"

namespace lilcache {

// The new generation's index filled up during catch-up: more new keys
// arrived during the compaction than it was sized for. Run() starts over.
struct NewIndexFull : Error {
  explicit NewIndexFull(std::uint64_t n)
      : Error(ErrorCode::busy,
              "compaction: new index of " + std::to_string(n) + " slots filled up during catch-up"),
        slots(n) {}
  std::uint64_t slots;
};

// The capacity to give the data file of a new generation holding
// `live_bytes` of records: those, the header, and an eighth more as room for
// the writes that follow (the catch-up's, the next generation's first), in
// whole MiB (DataFile::Create rounds up). With the index at 14.5 bytes per
// key, both files take at most about 1.13 x the live data + 1 MiB
// (docs/format.md, "Sizing"), and a full one grows by DataFile::Grow. The
// room is left out where it would pass kMaxDataBytes (the records are not).
inline std::uint64_t NewDataCapacity(std::uint64_t live_bytes) {
  const std::uint64_t need = live_bytes + kHeaderSize;
  return std::max(need, std::min(need + live_bytes / 8, kMaxDataBytes));
}

// A new generation being written by one thread, under .tmp names.
class Builder {
 public:
  Builder(CacheCore& c, std::uint64_t gen, std::uint64_t slots, std::uint64_t capacity)
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

  // Appends `bytes` (whole records of the old generation, in file order) with
  // one write to the file, not through its mapping: a page of a fresh
  // mapping costs a fault and a zero-fill before the copy (measured on the
  // dev VM: 512 MB in 1.3-1.8 s through the mapping, 0.14 s by pwrite).
  // Returns their offset in the new data file.
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
    if (Index::TooFullToBuild(g_.index.used(), g_.index.slot_count())) {
      throw NewIndexFull(g_.index.slot_count());
    }
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
  std::uint64_t number() const { return number_; }
  std::uint64_t slots() const { return g_.index.slot_count(); }

 private:
  CacheCore& c_;
  std::uint64_t number_;
  Generation g_;
  bool finished_ = false;
  bool renamed_ = false;
  std::uint64_t records_ = 0;
};

// Copies records of the old generation, given in file order, into a Builder
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

// Deletes every file of the cache that belongs neither to the live
// generation nor is the data file of the durable one (meta durable_gen, when
// older: what a power loss falls back to): older generations and .tmp files
// of crashed compactions. The caller holds COMPACT (or INIT with no other
// process alive). `durably`: the removals are made durable (a directory
// fsync), as a snapshot or a recovery must, once the live generation is
// durable_gen: after a reboot, a file that is still there is replayed.
void RemoveStrayFiles(CacheCore& c, std::uint64_t live, bool durably);

// Whether a compaction or a recovery copies `rec` into a new generation: a
// value (not a tombstone) newer than the last purge and not expired at `now`.
bool VisibleForCopy(CacheCore& c, const record::RecordView& rec, std::uint64_t now);

}  // namespace lilcache
