#include "util/names.h"

#include <dirent.h>
#include <fcntl.h>

#include <algorithm>
#include <vector>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "engine/file_lock.h"
#include "lilcache/env.h"
#include "lilcache/lilcache.h"
#include "util/quote.h"
#include "engine/trust.h"

namespace lilcache {

void validate_name(std::string_view name) {
  auto bad = [&](const std::string& why) {
    throw Error("invalid cache name " + Quote(name) + ": " + why);
  };
  if (name.empty()) bad("empty");
  if (name.size() > kMaxNameBytes) bad("longer than " + std::to_string(kMaxNameBytes) + " bytes");
  if (name == "." || name == "..") bad("reserved");
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.';
    if (!ok) bad("only letters, digits, '_', '-' and '.' are allowed");
  }
}

std::string ResolveRoot(std::string_view root) {
  if (!root.empty()) return std::string(root);
  auto env = [](const char* var) -> std::string {
    const char* v = std::getenv(var);
    return v != nullptr ? v : "";
  };
  if (auto r = env("LILCACHE_ROOT"); !r.empty()) return r;
  if (auto x = env("XDG_CACHE_HOME"); !x.empty()) return x + "/lilcache";
  if (auto h = env("HOME"); !h.empty()) return h + "/.cache/lilcache";
  throw Error("no cache root: set Options::root, $LILCACHE_ROOT, $XDG_CACHE_HOME or $HOME");
}

void EnsureRootDirectory(Env* env, const std::string& root) {
  int fd = env->Open(root.c_str(), O_PATH | O_CLOEXEC, 0);
  if (fd >= 0) {
    env->Close(fd);
  } else if (errno != ENOENT) {
    ThrowErrno("cannot open cache root", root);
  } else {
    // Create missing parents too, each 0700 (mkdir -p with a private mode).
    // EEXIST is no error: another process may create a part between our
    // open and mkdir, and whoever made the root, CheckRootDirectory judges
    // it below. No chmod: the umask only ever removes bits from 0700.
    for (std::size_t pos = 1; pos <= root.size(); ++pos) {
      if (pos != root.size() && root[pos] != '/') continue;
      std::string part = root.substr(0, pos);
      if (env->Mkdir(part.c_str(), 0700) != 0 && errno != EEXIST) {
        throw Error("cannot create cache root \"" + part + "\": " + std::strerror(errno));
      }
    }
  }
  CheckRootDirectory(env, root);
}

bool CacheExists(Env* env, const CachePaths& paths) {
  const std::string meta = paths.meta();
  // O_PATH | O_NOFOLLOW: like lstat(2), needs no permission on the file and
  // finds a symbolic link itself (which opening the cache then refuses).
  const int fd = env->Open(meta.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC, 0);
  if (fd >= 0) {
    env->Close(fd);
    return true;
  }
  if (errno == ENOENT) return false;
  ThrowErrno("cannot look for", meta);
}


std::vector<std::string> list_caches(std::string_view root_arg) {
  std::string root = ResolveRoot(root_arg);
  DIR* dir = opendir(root.c_str());
  if (dir == nullptr) {
    throw Error("cannot read cache root \"" + root + "\": " + std::strerror(errno));
  }
  std::vector<std::string> names;
  while (const dirent* e = readdir(dir)) {
    std::string_view n = e->d_name;
    if (!n.ends_with(".meta")) continue;
    n.remove_suffix(5);
    try {
      validate_name(n);
      names.emplace_back(n);
    } catch (const Error&) {
      // not one of ours
    }
  }
  closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace lilcache
