// generation: one generation of a cache (its data file and its index) as mapped by
// this process, with the lookups both the cache and the compactor need.
//
// Concurrency: a Generation is shared by the threads of one process; `pins`
// counts the threads using it (CacheCore::Pin). Its files may be replaced by
// a newer generation at any time; a pinned Generation stays mapped, and its
// records never change once published, so a pinned reader is always safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "engine/data_file.h"
#include "engine/index.h"
#include "format/record.h"

namespace lilcache {

class Env;
struct CachePaths;

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
  // Threads of this process using this generation; see CacheCore::Pin.
  std::atomic<std::int64_t> pins{0};
  // Unmapped after being retired; guarded by CacheCore::refresh_mu_. A
  // released object is reused for a later generation, never freed while the
  // cache is open: a thread in Pin() may still bump and drop its `pins`.
  bool released = false;

  void Open(Env* env, const CachePaths& paths, std::uint64_t gen, std::uint64_t salt);
  void Close();

  // The published record at `offset` (from an index slot). Maps it if needed.
  // Throws Error if it lies outside the data file or its header is not a record's.
  record::RecordView Record(std::uint64_t offset);
  // Whether the record's checksum matches (a published record is complete, so
  // a mismatch is corruption of the file).
  bool ChecksumOk(const record::RecordView& rec) const {
    return record::RecordChecksum(rec.header, salt) == rec.header->checksum;
  }
  // Looks key up in the index.
  Index::Probe Find(std::string_view key, std::uint64_t hash) {
    return index.Find(hash, [&](std::uint64_t off) { return Record(off).key() == key; });
  }

 private:
  static inline std::atomic<std::int64_t> objects_{0};
};

}  // namespace lilcache
