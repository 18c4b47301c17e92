// trust: whose files a cache may use (docs/operations.md, "Files and
// permissions").
//
// The rule: a cache belongs to the user who owns its root directory, and only
// that user uses it. Every process, the superuser's too, refuses with an Error
// - a root directory that is not owned by its effective uid, or that group or
//   others may write (they could replace the cache's files);
// - a root that is a symbolic link owned by anyone but itself or the
//   superuser (its owner could point it elsewhere);
// - a cache file (NAME.meta, NAME.G.data, NAME.G.index, NAME.log) that is not
//   a regular file owned by its effective uid with no group or other
//   permission bit (0600).
// The superuser does not act for the owner: it would write its own data into
// files that another user reads (issue 12's attack), and create files that
// user could not use (issue 11); the error says to run as the owner instead.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <string>

#include "lilcache/lilcache.h"

namespace lilcache {

class Env;

// What CheckRootDirectory and CheckCacheFile throw: a refusal, not damage
// (code permission).
// Code that treats a file it cannot open as damaged and rebuilds it (a lone
// opener's recovery of the index) rethrows this one: a file another user owns
// or can write is refused, never repaired over.
struct UntrustedFile : Error {
  explicit UntrustedFile(const std::string& what) : Error(ErrorCode::permission, what) {}
};

// "uid 65534 (nobody)", or "uid 4242" if the uid has no name.
std::string DescribeUid(uid_t uid);

// Throws UntrustedFile unless `root` is a directory (or a symbolic link, owned by
// the caller or the superuser, to one) owned by the caller's effective uid
// and not writable by group or others. The message names the path, the
// owner or mode found, and what to do.
void CheckRootDirectory(Env* env, const std::string& root);

// Throws UntrustedFile unless `st` (fstat of the open file `path`) is a regular file
// owned by the caller's effective uid without group or other permission bits.
void CheckCacheFile(const struct stat& st, const std::string& path);

}  // namespace lilcache
