#include "engine/trust.h"

#include <fcntl.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <vector>

#include "engine/file_lock.h"
#include "lilcache/env.h"
#include "lilcache/lilcache.h"

namespace lilcache {
namespace {

std::string Octal(mode_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0%03o", static_cast<unsigned>(mode & 07777));
  return buf;
}

std::string UserName(uid_t uid) {
  std::vector<char> buf(16384);
  struct passwd pw;
  struct passwd* found = nullptr;
  if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) return "";
  return pw.pw_name;
}

// What to do about a file or root of another user.
std::string RunAsOwner(uid_t owner) {
  std::string name = UserName(owner);
  return "a cache is used only by the user who owns its root directory: run as that user (e.g. "
         "sudo -u " +
         (name.empty() ? "'#" + std::to_string(owner) + "'" : name) +
         "), or use a root of your own (docs/operations.md)";
}

// fstat of `path` opened with `flags` (O_PATH: no access needed), or -1/errno.
int StatOpen(Env* env, const std::string& path, int flags, struct stat* st) {
  int fd = env->Open(path.c_str(), flags | O_CLOEXEC, 0);
  if (fd < 0) return -1;
  int rc = env->Fstat(fd, st);
  int saved = errno;
  env->Close(fd);
  errno = saved;
  return rc;
}

}  // namespace

std::string DescribeUid(uid_t uid) {
  std::string name = UserName(uid);
  return "uid " + std::to_string(uid) + (name.empty() ? "" : " (" + name + ")");
}

void CheckRootDirectory(Env* env, const std::string& root) {
  const uid_t me = geteuid();
  struct stat st;
  // The name itself first, not following a symbolic link.
  if (StatOpen(env, root, O_PATH | O_NOFOLLOW, &st) != 0)
    ThrowErrno("cannot open cache root", root);
  if (S_ISLNK(st.st_mode) && st.st_uid != me && st.st_uid != 0) {
    throw UntrustedFile("refusing cache root \"" + root + "\": it is a symbolic link owned by " +
                        DescribeUid(st.st_uid) +
                        ", who could point it anywhere; use the directory it " +
                        "points to, or a root of your own");
  }
  // Then the directory (the link's target).
  if (StatOpen(env, root, O_RDONLY | O_DIRECTORY, &st) != 0) {
    if (errno == ENOTDIR) {
      throw Error(ErrorCode::invalid_argument, "cache root \"" + root + "\" is not a directory");
    }
    ThrowErrno("cannot open cache root", root);
  }
  if (st.st_uid != me) {
    throw UntrustedFile("refusing cache root \"" + root + "\": it is owned by " +
                        DescribeUid(st.st_uid) + ", not by you (" + DescribeUid(me) + "); " +
                        RunAsOwner(st.st_uid));
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    throw UntrustedFile(
        "refusing cache root \"" + root + "\": its mode " + Octal(st.st_mode) +
        " lets other users replace the cache's files; if you trust what is in it, " +
        "chmod go-w it (lilcache creates roots 0700)");
  }
}

void CheckCacheFile(const struct stat& st, const std::string& path) {
  const uid_t me = geteuid();
  if (!S_ISREG(st.st_mode)) throw UntrustedFile("refusing to use " + path + ": not a regular file");
  if (st.st_uid != me) {
    throw UntrustedFile("refusing to use " + path + ": it is owned by " + DescribeUid(st.st_uid) +
                        ", not by you (" + DescribeUid(me) + "); " + RunAsOwner(st.st_uid));
  }
  if ((st.st_mode & 077) != 0) {
    throw UntrustedFile(
        "refusing to use " + path + ": its mode " + Octal(st.st_mode) +
        " gives other users access (cache files are 0600); if you trust its content, " +
        "chmod 600 it");
  }
}

}  // namespace lilcache
