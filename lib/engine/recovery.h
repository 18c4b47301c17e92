// recovery: at open, a lone opener (no other process has the cache open;
// it holds the INIT lock) checks the data file written since the last check;
// if anything is wrong it writes a new generation (builder.h). After a
// damaged (torn) record in the same boot,
// a process was killed mid-write: the index, which the kernel kept intact,
// says what was published, so the new generation holds the records the index
// points at (a record written but never published by a killed writer must
// not take effect). After a new boot, a truncated file, a flagged checksum
// error, or an index pointing at a bad record, the index cannot be trusted
// and the data file is replayed instead: the highest-seq valid record of each key.
// So is an index that cannot be opened (missing, too short, bad header): it
// is derived data, rebuilt from the data file. After a reboot, the data
// files of every generation from durable_gen on that are still there are
// replayed together (compaction.h, step 5). The boot id and the cleared needs_rebuild flag are
// stored only once the new generation is durable and named by the meta file: a recovery that is
// interrupted is done again.
#pragma once

#include <cstdint>
#include <roaring/roaring64map.hh>
#include <string>
#include <vector>

#include "engine/cache_core.h"

namespace lilcache {

class Builder;

class Recovery {
 public:
  explicit Recovery(CacheCore& core) : c_(core) {}

  // At open, when no other process has the cache open; caller holds INIT.
  void RecoverAlone();

 private:
  // Why generation g must be rebuilt ("" if it need not); sets
  // *index_trusted when its index still says what was published.
  std::string WhyRebuild(Generation& g, const std::string& boot, bool* index_trusted);
  // After a reboot: replays the data files of every generation from
  // durable_gen on that is still there into a new generation.
  void RecoverAfterReboot(const std::string& boot);
  // Writes generation `next` from g's index (when trusted) or its data file
  // (and the `older` data files, replayed with it: the newest record of a
  // key wins), then records it (and `boot`, the boot it recovered from) in
  // the meta file.
  void Rebuild(Generation& g, const std::string& why, bool index_trusted, const std::string& boot,
               const std::vector<DataFile*>& older, std::uint64_t next);

  // Makes the rebuilt generation (in b) durable and names it in the meta
  // file, as durable_gen too, with `boot`; seqs go on above max_seq. Closes g.
  void Publish(Generation& g, Builder& b, std::uint64_t max_seq, const std::string& boot);

  CacheCore& c_;
};

}  // namespace lilcache
