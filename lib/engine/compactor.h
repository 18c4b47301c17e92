// compactor: writes a new generation of a cache (log + index) holding only
// its live records, and switches every process to it. Used to grow the index,
// to reclaim dead space, and to recover a damaged log.
//
// Online protocol (Run), by the one process holding the COMPACT lock:
//  1. Wait until no write of the epoch that is not current is in flight (a
//     compactor that died after its flip left them undrained); t1 = tail;
//     flip the writer epoch and wait until no write of the old epoch is in
//     flight: every record below t1 is now published.
//  2. Collect the live records below t1 from the index into a CRoaring
//     bitmap of offsets; copy them in log order into NAME.G+1.*.tmp.
//  3. Rename the files into place and fsync them (throttling writers
//     meanwhile if they are busy: all they write is copied again). Catch up
//     on records appended since (rounds of flip + drain + copy): for each key
//     seen there, copy what the OLD index says is current; throttle writers
//     (THROTTLE) if the backlog does not shrink on its own.
//  4. Pause writers (SWITCHING), drain both epochs, catch up the last bit,
//     publish G+1 in the meta file, resume.
//  5. msync the meta file, fsync, delete the old generation's files (mapped
//     ones live on) and fsync the directory. Until then, a boot after a power
//     loss replays G's log with G+1's: the catch-up copies are not synced
//     before the meta page may name G+1 (docs/concurrency.md, "Durability").
// A compactor that dies at any point leaves the old generation intact and
// usable; its .tmp files are deleted by the next compactor; writers paused by
// it notice (they can take the COMPACT lock) and resume.
//
// Offline recovery (RecoverAlone), by a lone opener holding the INIT lock:
// checks the log written since the last check; if anything is wrong it
// writes a new generation. After a damaged (torn) record in the same boot,
// a process was killed mid-write: the index, which the kernel kept intact,
// says what was published, so the new generation holds the records the index
// points at (a record written but never published by a killed writer must
// not take effect). After a new boot, a truncated file, a flagged checksum
// error, or an index pointing at a bad record, the index cannot be trusted
// and the log is replayed instead: the highest-seq valid record of each key.
// So is an index that cannot be opened (missing, too short, bad header): it
// is derived data, rebuilt from the log. After a reboot, the previous
// generation's log is replayed too if it is still there (see step 5). The boot id and the cleared
// needs_rebuild flag are stored only once the new generation is durable and
// named by the meta file: a recovery that is interrupted is done again.
#pragma once

#include <cstdint>
#include <roaring/roaring64map.hh>
#include <string>

#include "engine/cache_impl.h"

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
  // One attempt of Run(); throws NewIndexFull (compactor.cc) if the new
  // index turns out too small, which Run() retries with a bigger one.
  bool RunOnce(const char* reason, std::uint64_t min_slots, CompactionResult* result,
               std::uint64_t snapshot_interval_ms);
  // Logs why a compaction gives up; returns false.
  bool Abandon(const char* reason);
  // Writes a new generation from g's index (when trusted) or its log, then
  // records it (and `boot`, the boot it recovered from) in the meta file.
  // `previous`: the previous generation's log, to replay too (may be null).
  void Rebuild(Generation& g, const std::string& why, bool index_trusted, const std::string& boot,
               DataFile* previous);
  // Drops the oldest records of `live` while live_bytes > Options::max_bytes.
  std::uint64_t Evict(Roaring64Map& live, std::uint64_t& live_bytes, Generation& g);

  Cache::Impl& c_;
};

}  // namespace lilcache
