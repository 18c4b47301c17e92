#include "engine/file_lock.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "engine/trust.h"
#include "lilcache/env.h"
#include "lilcache/lilcache.h"
#include "util/error_code.h"

namespace lilcache {

void ThrowErrno(const std::string& what, const std::string& path) {
  int e = errno;
  std::string msg = what + " " + path + ": " + std::strerror(e);
  if (e == ENOSPC || e == EDQUOT) msg += " (no space left on the device holding the cache)";
  throw Error(ErrorCodeOfErrno(e), msg);
}

FileHandle& FileHandle::operator=(FileHandle&& o) noexcept {
  if (this != &o) {
    Reset();
    env_ = o.env_;
    fd_ = std::exchange(o.fd_, -1);
    path_ = std::move(o.path_);
  }
  return *this;
}

FileHandle FileHandle::Open(Env* env, const std::string& path, int flags, mode_t mode) {
  int fd = env->Open(path.c_str(), flags | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) {
    if (errno == ELOOP) {
      throw UntrustedFile("refusing to open " + path + ": it is a symbolic link");
    }
    ThrowErrno("cannot open", path);
  }
  FileHandle f(env, fd, path);  // closes fd if a check below throws
  // Checked on the descriptor, after open: what we use is what we checked.
  struct stat st;
  if (env->Fstat(fd, &st) != 0) ThrowErrno("fstat", path);
  CheckCacheFile(st, path);
  return f;
}

off_t FileHandle::Size() const {
  struct stat st;
  if (env_->Fstat(fd_, &st) != 0) ThrowErrno("fstat", path_);
  return st.st_size;
}

void FileHandle::Reset() {
  if (fd_ >= 0) env_->Close(fd_);
  fd_ = -1;
}

FileLock& FileLock::operator=(FileLock&& o) noexcept {
  if (this != &o) {
    Release();
    env_ = o.env_;
    fd_ = std::exchange(o.fd_, -1);
    start_ = o.start_;
    len_ = o.len_;
  }
  return *this;
}

FileLock FileLock::Acquire(Env* env, const FileHandle& file, off_t start, off_t len) {
  if (env->Lock(file.fd(), start, len, /*exclusive=*/true, /*wait=*/true) != 0) {
    ThrowErrno("cannot lock byte " + std::to_string(start) + " of", file.path());
  }
  FileLock l;
  l.env_ = env;
  l.fd_ = file.fd();
  l.start_ = start;
  l.len_ = len;
  return l;
}

FileLock FileLock::TryAcquire(Env* env, const FileHandle& file, off_t start, off_t len) {
  FileLock l;
  if (env->Lock(file.fd(), start, len, /*exclusive=*/true, /*wait=*/false) != 0) {
    if (errno == EAGAIN || errno == EACCES) return l;
    ThrowErrno("cannot lock byte " + std::to_string(start) + " of", file.path());
  }
  l.env_ = env;
  l.fd_ = file.fd();
  l.start_ = start;
  l.len_ = len;
  return l;
}

void FileLock::Release() {
  if (fd_ >= 0) env_->Unlock(fd_, start_, len_);
  fd_ = -1;
}

}  // namespace lilcache
