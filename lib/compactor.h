// compactor: writes a new generation of a cache (log + index) holding only
// its live records, and switches every process to it. Used to grow the index,
// to reclaim dead space, and to recover a damaged log.
//
// Online protocol (Run), by the one process holding the COMPACT lock:
//  1. t1 = tail; flip the writer epoch and wait until no write of the old
//     epoch is in flight: every record below t1 is now published.
//  2. Collect the live records below t1 from the index into a CRoaring
//     bitmap of offsets; copy them in log order into NAME.G+1.*.tmp.
//  3. Catch up on records appended since (rounds of flip + drain + copy):
//     for each key seen there, copy what the OLD index says is current.
//  4. Pause writers (SWITCHING), drain both epochs, catch up the last bit,
//     rename the files into place, publish G+1 in the meta file, resume.
//  5. fsync, delete the old generation's files (mapped ones live on).
// A compactor that dies at any point leaves the old generation intact and
// usable; its .tmp files are deleted by the next compactor; writers paused by
// it notice (they can take the COMPACT lock) and resume.
//
// Offline recovery (RecoverAlone), by a lone opener holding the INIT lock:
// checks the log written since the last check; if anything is wrong (torn
// or corrupt records, a truncated file, a new boot, a flagged checksum
// error) it replays the whole log, keeping the highest-seq record of each
// key, into a new generation.
#pragma once

#include <cstdint>
#include <roaring/roaring64map.hh>

#include "cache_impl.h"

namespace lilcache {

class Compactor {
 public:
  explicit Compactor(Cache::Impl& cache) : c_(cache) {}

  // Returns false without doing anything if another process (or thread)
  // holds the COMPACT lock. `min_slots`: lower bound of the new index size.
  // With snapshot_interval_ms != 0, does nothing (returns false) unless the
  // last snapshot of any process is at least that old: one per interval.
  // A completed Run with a result or an interval counts as a snapshot.
  bool Run(const char* reason, std::uint64_t min_slots, CompactionResult* result = nullptr,
           std::uint64_t snapshot_interval_ms = 0);

  // At open, when no other process has the cache open; caller holds INIT.
  void RecoverAlone();

 private:
  // Drops the oldest records of `live` while live_bytes > Options::max_bytes.
  std::uint64_t Evict(Roaring64Map& live, std::uint64_t& live_bytes, Generation& g);

  Cache::Impl& c_;
};

}  // namespace lilcache
