// compaction: writes a new generation of a cache (data file + index, with
// builder.h) holding only its live records, and switches every process to
// it, while the others go on reading and writing. Used to grow the index, to
// reclaim dead space, to evict down to max_bytes and to take snapshots.
// Recovery at open, by a lone opener, is recovery.h.
//
// The protocol (Compactor::Run), by the one process holding the COMPACT lock
// (and, in that process, the one thread holding CacheCore::compact_mutex()):
//  1. Wait until no write of the epoch that is not current is in flight (a
//     compactor that died after its flip left them undrained); t1 = tail;
//     flip the writer epoch and wait until no write of the old epoch is in
//     flight: every record below t1 is now published.
//  2. Collect the live records below t1 from the index into a CRoaring
//     bitmap of offsets; copy them in file order into NAME.G+1.*.tmp.
//  3. Rename the files into place (a snapshot also fsyncs them). Catch up
//     on records appended since (rounds of flip + drain + copy): for each key
//     seen there, copy what the OLD index says is current; throttle writers
//     (THROTTLE) if the backlog does not shrink on its own.
//  4. Pause writers (SWITCHING), drain both epochs, catch up the last bit,
//     publish G+1 in the meta file, resume.
//  5. A snapshot: fsync G+1, raise durable_gen to G+1, msync the meta file,
//     delete every older file (mapped ones live on) and fsync the directory.
//     An automatic compaction: delete the old files but durable_gen's data
//     file, with no sync at all. After a power loss the next boot replays
//     the data files from durable_gen on (docs/concurrency.md, "Durability").
// A compactor that dies at any point leaves the old generation intact and
// usable; its .tmp files are deleted by the next compactor; writers paused by
// it notice (they can take the COMPACT lock) and resume.
//
#pragma once

#include <chrono>
#include <cstdint>
#include <roaring/roaring64map.hh>

#include "engine/cache_core.h"
#include "lilcache/lilcache.h"

namespace lilcache {

class Builder;
class Throttle;

// What a compaction is asked to do, and how it gives way.
struct CompactionRequest {
  const char* reason = "requested";  // for the text log
  std::uint64_t min_slots = 0;       // lower bound of the new index size
  // Wait for this process's own (background) compaction to finish, then run:
  // an explicit compact(). Otherwise give way (return false) if this process
  // is compacting already.
  bool wait_for_own = false;
  // A completed run counts as a snapshot (meta last_snapshot_ms, snapshots),
  // and a snapshot is durable: the new generation is fsynced and becomes
  // durable_gen before the older files are removed. Other runs (automatic
  // compactions) sync nothing (docs/concurrency.md, "Durability").
  bool counts_as_snapshot = false;
  // If not 0: does nothing (returns false) unless the last snapshot of any
  // process is at least this old, so that there is one per interval.
  std::uint64_t snapshot_interval_ms = 0;
  // Filled in by a completed run (may be null).
  CompactionResult* result = nullptr;
};

class Compactor {
 public:
  explicit Compactor(CacheCore& core) : c_(core) {}

  // Returns false without doing anything if another process (or, unless
  // wait_for_own, thread) holds the COMPACT lock, or if the request's
  // snapshot interval has not passed; true once the new generation is live.
  bool Run(CompactionRequest request);

 private:
  // Step 2: the live records below t1 of the old generation, in file order.
  struct Live {
    Roaring64Map offsets;  // offset / record::kAlign
    std::uint64_t bytes = 0, expired = 0, deleted = 0, evicted = 0;
  };
  struct Timings {  // monotonic ns, for the text log line and CompactionResult
    std::uint64_t start = 0, copied = 0, synced = 0, paused = 0, resumed = 0;
    int rounds = 0;
  };

  // One attempt of Run(); throws NewIndexFull (builder.h) if the new index
  // turns out too small, which Run() retries with a bigger one.
  bool RunOnce(const CompactionRequest& req);
  // RunOnce once this thread holds compact_mutex(): the COMPACT lock, the
  // snapshot interval, the old generation pinned.
  bool RunHoldingMutex(const CompactionRequest& req);
  // Steps 1-5 on the pinned old generation.
  bool Switch(Generation& old, const CompactionRequest& req, Timings& t);
  Live CollectLive(Generation& old, std::uint64_t t1);
  void CopyLive(Generation& old, const Live& live, Builder& b);
  // Steps 3 and 4: durable new files, catch-up, pause, publish. False if a
  // writer did not finish in time.
  bool CatchUpAndPublish(Generation& old, Builder& b, std::uint64_t t1, bool durable,
                         Throttle& throttle, Timings& t);
  // Step 5, and what the run reports (text log, CompactionResult).
  void Finish(Generation& old, Builder& b, const CompactionRequest& req, const Live& live,
              bool throttled, Timings& t);
  // Logs why a compaction gives up; returns false.
  bool Abandon(const char* reason);
  // Drops the oldest records of `live` while live.bytes > Options::max_bytes.
  std::uint64_t Evict(Live& live, Generation& g);

  CacheCore& c_;
};

}  // namespace lilcache
