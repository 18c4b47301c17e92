#include "engine/builder.h"

#include <fcntl.h>

#include <cerrno>
#include <vector>

#include "format/shared_atomic.h"
#include "lilcache/env.h"

namespace lilcache {

void RemoveStrayFiles(CacheCore& c, std::uint64_t live, bool live_durable) {
  std::vector<CacheFile> files;
  if (!ListCacheFiles(c.env(), c.paths().root, &files)) return;  // removed another time
  std::vector<std::string> doomed;
  bool predecessor = false;
  for (const CacheFile& f : files) {
    if (f.cache != c.paths().name) continue;
    if (f.kind != CacheFile::Kind::kData && f.kind != CacheFile::Kind::kIndex) continue;
    if (f.generation != live || f.tmp) doomed.push_back(f.file);
    predecessor |= f.generation + 1 == live && f.kind == CacheFile::Kind::kData && !f.tmp;
  }
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
  // Durably: after a reboot, a previous generation's data file that is still there
  // is replayed with the current one (docs/concurrency.md, "Durability"),
  // which must not happen once the switch that retired it has completed.
  if (removed && c.env()->FsyncDir(c.paths().root.c_str()) != 0) {
    ThrowErrno("fsync", c.paths().root);
  }
}

bool VisibleForCopy(CacheCore& c, const record::RecordView& rec, std::uint64_t now) {
  return !rec.is_tombstone() &&
         rec.seq() > Shared(c.meta().header().purge_seq).load(std::memory_order_acquire) &&
         !rec.expired_at(now);
}

}  // namespace lilcache
