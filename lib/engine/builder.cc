#include "engine/builder.h"

#include <atomic>
#include <vector>

#include "format/shared_atomic.h"
#include "lilcache/env.h"

namespace lilcache {

void RemoveStrayFiles(CacheCore& c, std::uint64_t live, bool durably) {
  std::vector<CacheFile> files;
  if (!ListCacheFiles(c.env(), c.paths().root, &files)) return;  // removed another time
  // seq_cst (the fence, then the load): the compactor's side of the
  // handshake with Cache::Impl::Sync(), which raises durable_gen and then
  // loads the generation. The live generation was published before this
  // call: either Sync() sees it and makes it durable, or we see Sync()'s
  // raise here and keep its generation's data file.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const std::uint64_t durable = c.durable_gen();
  std::vector<std::string> doomed;
  for (const CacheFile& f : files) {
    if (f.cache != c.paths().name) continue;
    if (f.kind != CacheFile::Kind::kData && f.kind != CacheFile::Kind::kIndex) continue;
    if (!f.tmp && f.generation == live) continue;
    if (!f.tmp && durable != 0 && f.generation == durable && f.kind == CacheFile::Kind::kData) {
      continue;
    }
    doomed.push_back(f.file);
  }
  bool removed = false;
  for (const auto& f : doomed) {
    std::string path = c.paths().root + "/" + f;
    if (c.env()->Unlink(path.c_str()) == 0) {
      c.logger().debug("removed stale file {}", path);
      removed = true;
    }
  }
  if (durably && removed && c.env()->FsyncDir(c.paths().root.c_str()) != 0) {
    ThrowErrno("fsync", c.paths().root);
  }
}

bool VisibleForCopy(CacheCore& c, const record::RecordView& rec, std::uint64_t now) {
  return !rec.is_tombstone() &&
         rec.seq() > Shared(c.meta().header().purge_seq).load(std::memory_order_acquire) &&
         !rec.expired_at(now);
}

}  // namespace lilcache
