#include "engine/builder.h"

#include <dirent.h>
#include <fcntl.h>

#include <cerrno>
#include <charconv>
#include <string_view>
#include <vector>

#include "engine/shared_atomic.h"
#include "lilcache/env.h"

namespace lilcache {

void RemoveStrayFiles(CacheCore& c, std::uint64_t live, bool live_durable) {
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

bool VisibleForCopy(CacheCore& c, const record::RecordView& rec, std::uint64_t now) {
  return !rec.is_tombstone() &&
         rec.seq() > Shared(c.meta().header().purge_seq).load(std::memory_order_acquire) &&
         !rec.expired_at(now);
}

}  // namespace lilcache
