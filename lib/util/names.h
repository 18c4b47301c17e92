// names: cache-name validation, root resolution and the paths of a cache's files.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lilcache {

// Whether name is 1..kMaxNameBytes of [A-Za-z0-9_.-], not "." or "..".
bool ValidName(std::string_view name);
// Throws Error unless name is 1..kMaxNameBytes of [A-Za-z0-9_.-], not "." or "..".
void validate_name(std::string_view name);

// Options::root resolved: the argument if not empty, else $LILCACHE_ROOT, else
// $XDG_CACHE_HOME/lilcache, else $HOME/.cache/lilcache. Throws Error if none.
std::string ResolveRoot(std::string_view root);

// Creates `root` (and missing parents) with mode 0700 if it is missing, then
// checks it (CheckRootDirectory, lib/trust.h: a directory of the caller's,
// not writable by others). Throws Error.
class Env;
void EnsureRootDirectory(Env* env, const std::string& root);

// Paths of the files of cache `name` under `root` (docs/format.md).
struct CachePaths {
  std::string root, name;
  std::string meta() const { return root + "/" + name + ".meta"; }
  // The text log (spdlog lines, docs/operations.md), not a data file.
  std::string text_log() const { return root + "/" + name + ".log"; }
  std::string data(std::uint64_t gen) const {
    return root + "/" + name + "." + std::to_string(gen) + ".data";
  }
  std::string index(std::uint64_t gen) const {
    return root + "/" + name + "." + std::to_string(gen) + ".index";
  }
};

// A file of a cache, by its name under the root (docs/format.md):
// NAME.meta, NAME.log (the text log), NAME.G.data, NAME.G.index, and the
// .tmp files of the last two that a compaction writes.
struct CacheFile {
  enum class Kind { kMeta, kTextLog, kData, kIndex };
  std::string file;   // the name in the directory
  std::string cache;  // NAME, a valid cache name
  Kind kind = Kind::kMeta;
  std::uint64_t generation = 0;  // G (kData and kIndex)
  bool tmp = false;              // a .tmp file (kData and kIndex)
};

// What `file` (a name in a cache root) is, parsed from its end: nullopt if
// it is no cache's file.
std::optional<CacheFile> ParseCacheFile(std::string_view file);

// The files of caches in directory `root` (in no particular order), read
// through env. Returns false with errno set if the directory cannot be read.
bool ListCacheFiles(Env* env, const std::string& root, std::vector<CacheFile>* files);

// Whether the cache of `paths` exists: its NAME.meta is there (a file of any
// kind, even one the caller cannot open, as lstat(2) says). Throws Error if
// that cannot be told (e.g. the root cannot be searched).
bool CacheExists(Env* env, const CachePaths& paths);

}  // namespace lilcache
