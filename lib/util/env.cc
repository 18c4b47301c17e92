#include "lilcache/env.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <random>
#include <string_view>

namespace lilcache {

namespace {
// Restarts a call that a signal interrupted (-1 with EINTR).
template <typename F>
int RestartOnEintr(F call) {
  int rc;
  do {
    rc = call();
  } while (rc < 0 && errno == EINTR);
  return rc;
}

// Writes all `length` bytes of buf with write_some(p, n) (a write(2) or
// pwrite(2) of at most n bytes from p, returning what it does), resumed after
// a short write or EINTR: 0, or -1 with errno (EIO for a write of nothing).
template <typename F>
int WriteAll(const void* buf, std::size_t length, F write_some) {
  const char* p = static_cast<const char*>(buf);
  while (length > 0) {
    const ssize_t n = write_some(p, length);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (n == 0) {
      errno = EIO;
      return -1;
    }
    p += n;
    length -= static_cast<std::size_t>(n);
  }
  return 0;
}
}  // namespace

Env* Env::Default() {
  static Env env;
  return &env;
}

int Env::Open(const char* path, int flags, mode_t mode) {
  int fd;
  do {
    fd = ::open(path, flags, mode);
  } while (fd < 0 && errno == EINTR);
  return fd;
}
int Env::Close(int fd) { return ::close(fd); }
int Env::Fstat(int fd, struct stat* st) { return ::fstat(fd, st); }
int Env::Ftruncate(int fd, off_t length) {
  return RestartOnEintr([&] { return ::ftruncate(fd, length); });
}

int Env::PwriteAll(int fd, const void* buf, std::size_t length, off_t offset) {
  return WriteAll(buf, length, [&](const char* p, std::size_t n) {
    ssize_t r = ::pwrite(fd, p, n, offset);
    if (r > 0) offset += r;
    return r;
  });
}

int Env::Append(int fd, const void* buf, std::size_t length) {
  return WriteAll(buf, length, [&](const char* p, std::size_t n) { return ::write(fd, p, n); });
}

int Env::Fallocate(int fd, off_t offset, off_t length) {
  return RestartOnEintr([&] { return ::fallocate(fd, 0, offset, length); });
}

int Env::Fstatfs(int fd, struct statfs* st) {
  return RestartOnEintr([&] { return ::fstatfs(fd, st); });
}

int Env::Fsync(int fd) {
  return RestartOnEintr([&] { return ::fsync(fd); });
}
int Env::Rename(const char* from, const char* to) { return ::rename(from, to); }
int Env::Unlink(const char* path) { return ::unlink(path); }
int Env::Mkdir(const char* path, mode_t mode) { return ::mkdir(path, mode); }

int Env::ListDirectory(const char* path, std::vector<std::string>* names) {
  names->clear();
  DIR* dir = ::opendir(path);
  if (dir == nullptr) return -1;
  for (;;) {
    errno = 0;
    const dirent* e = ::readdir(dir);
    if (e == nullptr) break;
    std::string_view n = e->d_name;
    if (n != "." && n != "..") names->emplace_back(n);
  }
  const int saved = errno;  // 0 at the end of the directory
  ::closedir(dir);
  errno = saved;
  return saved == 0 ? 0 : -1;
}

int Env::FsyncDir(const char* path) {
  int fd = RestartOnEintr([&] { return ::open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC); });
  if (fd < 0) return -1;
  int rc = RestartOnEintr([&] { return ::fsync(fd); });
  int saved = errno;
  ::close(fd);
  errno = saved;
  return rc;
}

void* Env::Mmap(void* addr, std::size_t length, int prot, int flags, int fd, off_t offset) {
  return ::mmap(addr, length, prot, flags, fd, offset);
}
int Env::Munmap(void* addr, std::size_t length) { return ::munmap(addr, length); }
int Env::Msync(void* addr, std::size_t length, int flags) { return ::msync(addr, length, flags); }

static struct flock MakeFlock(short type, off_t start, off_t length) {
  struct flock fl = {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = start;
  fl.l_len = length;
  fl.l_pid = 0;  // must be 0 for OFD locks
  return fl;
}

int Env::Lock(int fd, off_t start, off_t length, bool exclusive, bool wait) {
  struct flock fl = MakeFlock(exclusive ? F_WRLCK : F_RDLCK, start, length);
  int rc;
  do {
    rc = ::fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl);
  } while (rc < 0 && errno == EINTR);
  return rc;
}

int Env::Unlock(int fd, off_t start, off_t length) {
  struct flock fl = MakeFlock(F_UNLCK, start, length);
  return RestartOnEintr([&] { return ::fcntl(fd, F_OFD_SETLK, &fl); });
}

int Env::IsLocked(int fd, off_t start, off_t length) {
  struct flock fl = MakeFlock(F_WRLCK, start, length);
  if (RestartOnEintr([&] { return ::fcntl(fd, F_OFD_GETLK, &fl); }) < 0) return -1;
  return fl.l_type == F_UNLCK ? 0 : 1;
}

std::uint64_t Env::NowMillis() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000 +
         static_cast<std::uint64_t>(ts.tv_nsec) / 1000000;
}

std::uint64_t Env::MonotonicNanos() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

std::string Env::BootId() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id;
}

void Env::SleepMicros(std::uint64_t micros) {
  struct timespec ts;
  ts.tv_sec = static_cast<time_t>(micros / 1000000);
  ts.tv_nsec = static_cast<long>((micros % 1000000) * 1000);
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

std::uint64_t Env::Random64() {
  std::uint64_t bits = 0;
  if (::getrandom(&bits, sizeof bits, GRND_NONBLOCK) == static_cast<ssize_t>(sizeof bits)) {
    return bits;
  }
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) ^ rd() ^ MonotonicNanos();
}

}  // namespace lilcache
