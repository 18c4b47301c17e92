// generation: one generation of a cache (its data file and its index) as mapped by
// this process, with the lookups both the cache and the compactor need.
//
// Concurrency: a Generation is shared by the threads of one process; its
// `pins` stripes count the threads using it (CacheCore::Pin), each thread in
// its own stripe (ThreadStripe()), so that readers on different cores write
// different cache lines. Its files may be replaced by a newer generation at
// any time; a pinned Generation stays mapped, and its records never change
// once published, so a pinned reader is always safe.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "engine/data_file.h"
#include "engine/index.h"
#include "format/record.h"

namespace lilcache {

class Env;
struct CachePaths;

// Per-thread stripes of process-local counters (a Generation's pins, a
// cache handle's stats counters): thread t uses stripe ThreadStripe() =
// t % kStripes, t numbered in the order threads first ask. Threads beyond
// kStripes share stripes (still correct: stripes are atomics), so up to
// kStripes threads never write a cache line another thread writes.
inline constexpr std::size_t kStripes = 32;
inline constexpr std::size_t kCacheLine = 64;

std::size_t NewThreadStripe();  // generation.cc: the next thread's stripe

inline std::size_t ThreadStripe() {
  // initial-exec: a plain %fs-relative load, not a __tls_get_addr call
  // (the library is a shared object; 8 bytes of static TLS is safe to take
  // even when it is dlopen()ed, as by the Python extension).
  static thread_local std::size_t stripe __attribute__((tls_model("initial-exec"))) = kStripes;
  if (stripe == kStripes) [[unlikely]] {
    stripe = NewThreadStripe();
  }
  return stripe;
}

struct Generation {
  Generation() { objects_.fetch_add(1, std::memory_order_relaxed); }
  ~Generation() { objects_.fetch_sub(1, std::memory_order_relaxed); }
  Generation(const Generation&) = delete;
  Generation& operator=(const Generation&) = delete;
  // Generation objects alive in this process (all caches, and a compactor's
  // or recovery's own), for tests and the soak: a process that switches
  // generations forever must keep this bounded. Relaxed: a statistic.
  static std::int64_t Objects() { return objects_.load(std::memory_order_relaxed); }

  std::uint64_t number = 0;
  std::uint64_t salt = 0;
  DataFile data;
  Index index;
  // Threads of this process using this generation, per ThreadStripe(): a
  // thread pins and unpins on its own stripe (the same thread does both, so
  // no stripe goes below zero). Pinned() = any stripe non-zero. See
  // CacheCore::Pin for the memory orders.
  struct alignas(kCacheLine) PinStripe {
    std::atomic<std::int64_t> n{0};
  };
  std::array<PinStripe, kStripes> pins;
  // Whether a thread may be using it: seq_cst loads of every stripe (the
  // Dekker pairing with Pin(), see CacheCore::Pin and RetireUnpinned).
  bool Pinned() const {
    for (const PinStripe& s : pins) {
      if (s.n.load(std::memory_order_seq_cst) != 0) return true;
    }
    return false;
  }
  // Unmapped after being retired; guarded by CacheCore::refresh_mu_. A
  // released object is reused for a later generation, never freed while the
  // cache is open: a thread in Pin() may still bump and drop its stripe of
  // `pins`.
  bool released = false;

  void Open(Env* env, const CachePaths& paths, std::uint64_t gen, std::uint64_t salt);
  void Close();

  // The published record at `offset` (from an index slot). Maps it if needed.
  // Throws Error if it lies outside the data file or its header is not a record's.
  record::RecordView Record(std::uint64_t offset) {
    // The common case inline: an aligned offset past the file header whose
    // header and body are mapped already.
    const auto* h = reinterpret_cast<const record::RecordHeader*>(data.base() + offset);
    const std::uint64_t mapped = data.mapped();
    if (offset >= kFirstRecordOffset && offset % record::kAlign == 0 &&
        offset + record::kRecordHeaderSize <= mapped &&
        record::CheckRecordHeader(*h) == record::Damage::kNone &&
        offset + record::RecordSize(h->key_len, h->value_len) <= mapped) [[likely]] {
      return record::RecordView{h};
    }
    return RecordSlow(offset);
  }
  // Whether the record's checksum matches (a published record is complete, so
  // a mismatch is corruption of the file).
  bool ChecksumOk(const record::RecordView& rec) const {
    return record::RecordChecksum(rec.header, salt) == rec.header->checksum;
  }
  // Looks key up in the index.
  Index::Probe Find(std::string_view key, std::uint64_t hash) {
    return index.Find(hash, [&](std::uint64_t off) { return Record(off).key() == key; });
  }
  // Looks key up in the index; on a hit, *rec is the record the slot
  // pointed to when probed (its header checked once, by Record()).
  bool FindRecord(std::string_view key, std::uint64_t hash, record::RecordView* rec) {
    Index::Probe p = index.Find(hash, [&](std::uint64_t off) {
      record::RecordView r = Record(off);
      if (r.key() != key) return false;
      *rec = r;
      return true;
    });
    return p.value != 0;
  }

 private:
  record::RecordView RecordSlow(std::uint64_t offset);  // maps what Record() needs, or throws
  static inline std::atomic<std::int64_t> objects_{0};
};

}  // namespace lilcache
