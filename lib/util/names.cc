#include "util/names.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "engine/file_lock.h"
#include "engine/trust.h"
#include "lilcache/env.h"
#include "lilcache/lilcache.h"
#include "util/error_code.h"
#include "util/quote.h"

namespace lilcache {

namespace {

// Why `name` is no valid cache name; "" if it is one.
std::string NameProblem(std::string_view name) {
  if (name.empty()) return "empty";
  if (name.size() > kMaxNameBytes) return "longer than " + std::to_string(kMaxNameBytes) + " bytes";
  if (name == "." || name == "..") return "reserved";
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.';
    if (!ok) return "only letters, digits, '_', '-' and '.' are allowed";
  }
  return "";
}

}  // namespace

bool ValidName(std::string_view name) { return NameProblem(name).empty(); }

void validate_name(std::string_view name) {
  if (std::string why = NameProblem(name); !why.empty()) {
    throw Error(ErrorCode::invalid_argument, "invalid cache name " + Quote(name) + ": " + why);
  }
}

std::optional<CacheFile> ParseCacheFile(std::string_view file) {
  CacheFile f;
  f.file = std::string(file);
  std::string_view rest = file;
  auto strip = [&rest](std::string_view suffix) {
    if (!rest.ends_with(suffix)) return false;
    rest.remove_suffix(suffix.size());
    return true;
  };
  if (strip(".meta")) {
    f.kind = CacheFile::Kind::kMeta;
  } else if (strip(".log")) {
    f.kind = CacheFile::Kind::kTextLog;
  } else {
    f.tmp = strip(".tmp");
    if (strip(".data")) {
      f.kind = CacheFile::Kind::kData;
    } else if (strip(".index")) {
      f.kind = CacheFile::Kind::kIndex;
    } else {
      return std::nullopt;
    }
    // NAME.G: the generation is the last dot-separated part (a name may
    // hold dots, a generation does not).
    const std::size_t dot = rest.rfind('.');
    if (dot == std::string_view::npos) return std::nullopt;
    std::string_view digits = rest.substr(dot + 1);
    auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), f.generation);
    if (ec != std::errc() || digits.empty() || p != digits.data() + digits.size()) {
      return std::nullopt;
    }
    rest = rest.substr(0, dot);
  }
  if (!ValidName(rest)) return std::nullopt;
  f.cache = std::string(rest);
  return f;
}

bool ListCacheFiles(Env* env, const std::string& root, std::vector<CacheFile>* files) {
  std::vector<std::string> names;
  if (env->ListDirectory(root.c_str(), &names) != 0) return false;
  files->clear();
  for (const std::string& n : names) {
    if (std::optional<CacheFile> f = ParseCacheFile(n)) files->push_back(std::move(*f));
  }
  return true;
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
  throw Error(ErrorCode::invalid_argument,
              "no cache root: set Options::root, $LILCACHE_ROOT, $XDG_CACHE_HOME or $HOME");
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
        throw Error(ErrorCodeOfErrno(errno),
                    "cannot create cache root \"" + part + "\": " + std::strerror(errno));
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
  std::vector<CacheFile> files;
  if (!ListCacheFiles(Env::Default(), root, &files)) {
    throw Error(ErrorCodeOfErrno(errno),
                "cannot read cache root \"" + root + "\": " + std::strerror(errno));
  }
  std::vector<std::string> names;
  for (CacheFile& f : files) {
    if (f.kind == CacheFile::Kind::kMeta) names.push_back(std::move(f.cache));
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string resolve_root(std::string_view root) { return ResolveRoot(root); }

bool cache_exists(std::string_view name, std::string_view root) {
  validate_name(name);
  return CacheExists(Env::Default(), CachePaths{ResolveRoot(root), std::string(name)});
}

}  // namespace lilcache
