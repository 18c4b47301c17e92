// file_lock: descriptors and open-file-description (OFD) byte-range locks.
//
// OFD locks (fcntl F_OFD_SETLK/F_OFD_SETLKW) belong to the open file
// description, not to the process: two descriptors from two open() calls
// exclude each other even inside one process, closing an unrelated
// descriptor never drops them, and the kernel drops them when the last
// reference to the description goes: its last descriptor, and also its last
// MAP_SHARED mapping (a mapping holds the description), i.e. when its process
// dies. That last property is how lilcache detects dead processes; so a file
// that carries locks is mapped through another description (Meta::Open).
//
// fork() copies descriptors, not descriptions: a child's F_UNLCK drops the
// parent's lock, and a child that lives on keeps a dead parent's locks. Every
// descriptor that carries locks is closed in a fork child (lib/fork.h), never
// unlocked there.
//
// Threads sharing ONE descriptor share its locks: a FileLock taken by one
// thread does not exclude another thread using the same descriptor. Callers
// pair a FileLock with an in-process mutex where threads must exclude each
// other (see DataFile::Grow).
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>

namespace lilcache {

class Env;

// An owned file descriptor; closed on destruction.
class FileHandle {
 public:
  FileHandle() = default;
  FileHandle(Env* env, int fd, std::string path) : env_(env), fd_(fd), path_(std::move(path)) {}
  FileHandle(FileHandle&& o) noexcept { *this = std::move(o); }
  FileHandle& operator=(FileHandle&& o) noexcept;
  ~FileHandle() { Reset(); }

  // Opens path with O_NOFOLLOW | O_CLOEXEC added to flags, then checks with
  // fstat that it is a cache file we may trust (CheckCacheFile: a regular
  // file of ours, mode 0600); throws Error.
  static FileHandle Open(Env* env, const std::string& path, int flags, mode_t mode = 0600);

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  bool valid() const { return fd_ >= 0; }
  off_t Size() const;  // fstat; throws Error
  void Reset();
  // Forgets the descriptor without closing it and returns it (-1 if none).
  int Detach() { return std::exchange(fd_, -1); }

 private:
  Env* env_ = nullptr;
  int fd_ = -1;
  std::string path_;
};

// Holds an OFD lock on [start, start+len) of a descriptor until destroyed.
class FileLock {
 public:
  FileLock() = default;
  FileLock(FileLock&& o) noexcept { *this = std::move(o); }
  FileLock& operator=(FileLock&& o) noexcept;
  ~FileLock() { Release(); }

  // Blocks until the exclusive lock is held. Throws Error on failure.
  static FileLock Acquire(Env* env, const FileHandle& file, off_t start, off_t len = 1);
  // Tries once; returns an unheld FileLock if another description holds it.
  static FileLock TryAcquire(Env* env, const FileHandle& file, off_t start, off_t len = 1);

  bool held() const { return fd_ >= 0; }
  void Release();
  // Stops tracking the lock without unlocking it (fork child: the lock is
  // the parent's too, and unlocking would drop it for the parent).
  void Forget() { fd_ = -1; }

 private:
  Env* env_ = nullptr;
  int fd_ = -1;
  off_t start_ = 0, len_ = 0;
};

// Throws Error("<what> <path>: <strerror(errno)>") with errno as it is now,
// its code from errno (ErrorCodeOfErrno: no_space, permission or io).
[[noreturn]] void ThrowErrno(const std::string& what, const std::string& path);

}  // namespace lilcache
