// lilcache::Env: every operating-system call the library makes (files, maps,
// byte-range locks, clocks) goes through this interface, so that tests can
// inject faults (ENOSPC, EIO, EINTR, ...) and a fake clock. Applications
// never need it: Options::env = nullptr uses Env::Default().
//
// To inject a fault, subclass Env, override the calls of interest and
// forward the others to the base class (whose methods are the POSIX
// implementation):
//
//   class FullDisk : public lilcache::Env {
//    public:
//     int Fallocate(int fd, off_t offset, off_t length) override {
//       errno = ENOSPC;
//       return -1;
//     }
//   };
//   FullDisk env;
//   auto cache = lilcache::Cache::open("t", {.root = dir, .env = &env});
//   cache.set("k", big_value);  // throws lilcache::Error "... no space left ..."
//
// Each file method mirrors its POSIX call: it returns what the call returns
// (-1 on failure; Mmap: MAP_FAILED) and leaves the cause in errno. The
// library turns failures into lilcache::Error with the call, the path and
// strerror(errno). The default implementations retry on EINTR where POSIX allows it (Open,
// Fallocate, Fstatfs, Lock, SleepMicros).
//
// Signals: Env::Default() restarts every call that a signal interrupts
// (EINTR), so a signal handler in the application never fails an operation.
// A subclass that returns -1 with EINTR reports a call that failed: the
// library handles it like any other error (an Error, nothing lost). A
// failure of Close, Munmap or Unlock is ignored (the resource is gone either
// way), as is a failed Unlink of a leftover file; any other failure is
// reported.
//
// Thread-safety: Env::Default() is stateless and safe from any thread. A
// subclass used by a Cache is called from every thread that uses that Cache
// and from its background compaction and snapshot threads, so it must be
// thread-safe; it must outlive every Cache opened with it. Every process
// uses its own Env: the data is shared through the files, so a fake clock
// in one process is not seen by the others.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/vfs.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "lilcache/export.h"

namespace lilcache {

class LILCACHE_EXPORT Env {
 public:
  virtual ~Env() = default;

  // The process-wide POSIX implementation. Never deleted by the library.
  static Env* Default();

  // ---- files ----
  // The library opens the cache's files with O_CLOEXEC | O_NOFOLLOW and
  // creates them with mode 0600, and directories with mode 0700, then checks
  // each with Fstat (owner and mode, docs/operations.md). The text log is
  // opened the same way (O_APPEND) and written with Append.
  virtual int Open(const char* path, int flags, mode_t mode);
  virtual int Close(int fd);
  virtual int Fstat(int fd, struct stat* st);
  virtual int Ftruncate(int fd, off_t length);
  // fallocate(fd, 0, offset, length) (fallocate(2), mode 0: allocates
  // [offset, offset + length) and extends the file size to cover it). Every
  // growth of a data file allocates only its new range this way, so that a full
  // disk is an ENOSPC Error from set() and never a SIGBUS when the mapping
  // is written. Not posix_fallocate: on a file system without fallocate,
  // glibc's fallback writes a byte into every block of the range, racing
  // with the processes that write records through their mappings; here such
  // a file system is an EOPNOTSUPP Error instead (and refused at open).
  virtual int Fallocate(int fd, off_t offset, off_t length);
  // fstatfs(2). The library checks at open that the cache's root is not on a
  // network file system (NFS, SMB/CIFS, 9p, Ceph, AFS, Coda: their shared
  // mappings and byte-range locks are not coherent between machines).
  virtual int Fstatfs(int fd, struct statfs* st);
  // Writes all `length` bytes at `offset` (pwrite(2), resumed after a short
  // write or EINTR): 0, or -1/errno. A compactor writes the records it copies
  // this way, not through a mapping of the new file.
  virtual int PwriteAll(int fd, const void* buf, std::size_t length, off_t offset);
  // Appends all `length` bytes to fd, opened O_APPEND (write(2), resumed
  // after a short write or EINTR): 0, or -1/errno. The text log's lines.
  virtual int Append(int fd, const void* buf, std::size_t length);
  virtual int Fsync(int fd);
  virtual int Rename(const char* from, const char* to);
  virtual int Unlink(const char* path);
  virtual int Mkdir(const char* path, mode_t mode);
  virtual int FsyncDir(const char* path);  // open(O_DIRECTORY) + fsync + close
  // The names in directory `path` (opendir(3) + readdir(3), without "." and
  // ".."), in the order the file system returns them, into *names
  // (replacing what it held): 0, or -1/errno. How the library finds the
  // caches under a root and the stale files of a cache.
  virtual int ListDirectory(const char* path, std::vector<std::string>* names);

  // ---- memory maps ----
  // Mmap returns MAP_FAILED (not nullptr) on failure, as mmap(2) does.
  virtual void* Mmap(void* addr, std::size_t length, int prot, int flags, int fd, off_t offset);
  virtual int Munmap(void* addr, std::size_t length);
  virtual int Msync(void* addr, std::size_t length, int flags);

  // ---- open-file-description (OFD) byte-range locks, fcntl(F_OFD_*) ----
  // Locks [start, start+length) of fd: exclusive or shared; `wait` blocks
  // (F_OFD_SETLKW) instead of failing with EAGAIN/EACCES (F_OFD_SETLK).
  // The kernel releases them when the holder's descriptor closes, which is
  // how the library notices that a process died (docs/format.md, lock bytes).
  // In a fork child the library closes its copies of the locking descriptors
  // with close(2) directly, not through Close(): a pthread_atfork child
  // handler may only make async-signal-safe calls (docs/concurrency.md).
  virtual int Lock(int fd, off_t start, off_t length, bool exclusive, bool wait);
  virtual int Unlock(int fd, off_t start, off_t length);
  // F_OFD_GETLK: 1 if another open file description holds a lock that
  // conflicts with an exclusive lock on the range, 0 if not, -1 on error.
  virtual int IsLocked(int fd, off_t start, off_t length);

  // ---- clocks and identity ----
  // Wall-clock milliseconds since the Unix epoch (CLOCK_REALTIME): expiry
  // times are stored in it, so that every process agrees.
  virtual std::uint64_t NowMillis();
  // Monotonic nanoseconds (CLOCK_MONOTONIC), for intervals and timeouts.
  virtual std::uint64_t MonotonicNanos();
  // An id that changes at every boot (/proc/sys/kernel/random/boot_id; ""
  // if unreadable): a cache last used in another boot may have lost unsynced
  // pages, so its next lone opener replays its data file (docs/concurrency.md).
  virtual std::string BootId();
  // Sleeps about `micros` microseconds (backoff while waiting for a peer).
  virtual void SleepMicros(std::uint64_t micros);
  // 64 unpredictable bits (getrandom(2); if that fails, std::random_device
  // mixed with the monotonic clock): the hash salt of a new cache. A test
  // or fuzzing Env returns fixed bits to make a run repeatable.
  virtual std::uint64_t Random64();
};

}  // namespace lilcache
