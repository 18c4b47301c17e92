// PowerEnv: an lilcache::Env that emulates a power loss. It cannot stop the
// kernel from keeping writes, so it keeps track of what a disk would hold
// instead: the library writes its files through shared mappings and pwrite,
// and only what it made durable would survive the loss of the page cache.
//
// The durable image of each file (by inode) is updated when the library
// makes it durable:
//  * Fsync(fd): the whole file as it is now;
//  * Msync(addr, len, MS_SYNC): the synced pages of the mapped file (and its
//    size, as fdatasync does); bytes never synced read as zeros;
// and the durable names of a directory are its entries at the last
// FsyncDir: a new file, a Rename or an Unlink is not durable before that
// (an unlinked file that comes back may be replayed: lilcache unlinks only
// files it no longer needs, so the adversarial case is their return).
//
// crash_image(dir, to, meta_now) writes to `to` the files of `dir` as a
// power loss NOW would leave them. The meta file (NAME.meta) is special: the
// kernel writes its page back at any moment (writeback), not only when the
// library syncs it, so it is taken either as it is now (meta_now, the
// adversarial case for "the meta page names files that are not durable") or
// as last synced (the case for "a write is durable but not the meta page
// naming its generation").
//
// Calls are numbered from 1 from start(hook) on: the hook runs with the
// call's number and name before each counted call, on the calling thread,
// and the calls made inside the hook are neither counted nor hooked (so it
// may use a cache through this Env). Thread-safe (one mutex, not held while
// the hook runs).
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>

#include "lilcache/env.h"

namespace lilcache::test {

class PowerEnv : public Env {
 public:
  using Hook = std::function<void(std::uint64_t call, const char* name)>;

  ~PowerEnv() override {
    for (auto& [ino, fd] : fds_) ::close(fd);
  }

  // Makes every regular file of `dir` durable as it is now (as `sync` does).
  void checkpoint(const std::string& dir) {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& [name, ino] : list(dir)) {
      int fd = ::open((dir + "/" + name).c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) throw std::runtime_error("power_env: cannot open " + name);
      keep_fd(ino, fd);
      durable_[ino] = read_all(fds_.at(ino));
      ::close(fd);
    }
    names_[key(dir)] = list(dir);
  }

  // What BootId() reports ("" = the real boot id): a reboot after the loss.
  void set_boot_id(std::string id) {
    std::lock_guard<std::mutex> l(mu_);
    boot_id_ = std::move(id);
  }
  std::string BootId() override {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!boot_id_.empty()) return boot_id_;
    }
    return Env::BootId();
  }

  // Counts calls from 1 and runs `hook` before each.
  void start(Hook hook) {
    std::lock_guard<std::mutex> l(mu_);
    hook_ = std::move(hook);
    calls_ = 0;
  }
  // Stops counting; returns the number of calls counted.
  std::uint64_t stop() {
    std::lock_guard<std::mutex> l(mu_);
    hook_ = nullptr;
    return calls_;
  }

  // See the file comment. `to` is created (mode 0700); files get mode 0600.
  void crash_image(const std::string& dir, const std::string& to, bool meta_now) {
    std::lock_guard<std::mutex> l(mu_);
    if (::mkdir(to.c_str(), 0700) != 0) throw std::runtime_error("power_env: mkdir " + to);
    for (const auto& [name, ino] : names_[key(dir)]) {
      if (name.ends_with(".log")) continue;  // the text log: not the cache's data
      std::string bytes;
      if (meta_now && name.ends_with(".meta") && fds_.count(ino) != 0) {
        bytes = read_all(fds_.at(ino));
      } else if (auto it = durable_.find(ino); it != durable_.end()) {
        bytes = it->second;
      }
      int fd = ::open((to + "/" + name).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      if (fd < 0 ||
          ::pwrite(fd, bytes.data(), bytes.size(), 0) != static_cast<ssize_t>(bytes.size())) {
        throw std::runtime_error("power_env: cannot write the image of " + name);
      }
      ::close(fd);
    }
  }

  int Open(const char* path, int flags, mode_t mode) override {
    counted("open");
    int fd = Env::Open(path, flags, mode);
    if (fd >= 0) {
      struct stat st;
      std::lock_guard<std::mutex> l(mu_);
      if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) keep_fd(st.st_ino, fd);
    }
    return fd;
  }
  int Close(int fd) override {
    counted("close");
    return Env::Close(fd);
  }
  int Fallocate(int fd, off_t offset, off_t length) override {
    counted("fallocate");
    return Env::Fallocate(fd, offset, length);
  }
  int PwriteAll(int fd, const void* buf, std::size_t length, off_t offset) override {
    counted("pwrite");
    return Env::PwriteAll(fd, buf, length, offset);
  }
  int Fsync(int fd) override {
    counted("fsync");
    int rc = Env::Fsync(fd);
    struct stat st;
    if (rc == 0 && ::fstat(fd, &st) == 0) {
      std::lock_guard<std::mutex> l(mu_);
      keep_fd(st.st_ino, fd);
      durable_[st.st_ino] = read_all(fds_.at(st.st_ino));
    }
    return rc;
  }
  int Rename(const char* from, const char* to) override {
    counted("rename");
    return Env::Rename(from, to);
  }
  int Unlink(const char* path) override {
    counted("unlink");
    return Env::Unlink(path);
  }
  int FsyncDir(const char* path) override {
    counted("fsync(dir)");
    int rc = Env::FsyncDir(path);
    if (rc == 0) {
      std::lock_guard<std::mutex> l(mu_);
      names_[key(path)] = list(path);
    }
    return rc;
  }
  void* Mmap(void* addr, std::size_t length, int prot, int flags, int fd, off_t offset) override {
    counted("mmap");
    void* p = Env::Mmap(addr, length, prot, flags, fd, offset);
    struct stat st;
    if (p != MAP_FAILED && fd >= 0 && (flags & MAP_SHARED) != 0 && ::fstat(fd, &st) == 0) {
      std::lock_guard<std::mutex> l(mu_);
      keep_fd(st.st_ino, fd);
      auto start = reinterpret_cast<std::uintptr_t>(p);
      forget_maps(start, length);
      maps_[start] = Region{length, st.st_ino, offset};
    }
    return p;
  }
  int Munmap(void* addr, std::size_t length) override {
    counted("munmap");
    {
      std::lock_guard<std::mutex> l(mu_);
      forget_maps(reinterpret_cast<std::uintptr_t>(addr), length);
    }
    return Env::Munmap(addr, length);
  }
  int Msync(void* addr, std::size_t length, int flags) override {
    counted("msync");
    int rc = Env::Msync(addr, length, flags);
    if (rc != 0 || (flags & MS_SYNC) == 0) return rc;
    const std::uintptr_t page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
    const auto begin = reinterpret_cast<std::uintptr_t>(addr);
    const std::uintptr_t end = (begin + length + page - 1) / page * page;
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& [start, r] : maps_) {
      const std::uintptr_t lo = std::max(begin, start), hi = std::min(end, start + r.length);
      if (lo >= hi) continue;
      const int fd = fds_.at(r.ino);
      struct stat st;
      if (::fstat(fd, &st) != 0) continue;
      const auto size = static_cast<std::uint64_t>(st.st_size);
      std::string& image = durable_[r.ino];
      image.resize(size, '\0');  // fdatasync makes the size durable
      const std::uint64_t from = static_cast<std::uint64_t>(r.offset) + (lo - start);
      const std::uint64_t to = std::min<std::uint64_t>(from + (hi - lo), size);
      if (from < to && ::pread(fd, image.data() + from, to - from, static_cast<off_t>(from)) !=
                           static_cast<ssize_t>(to - from)) {
        throw std::runtime_error("power_env: cannot read a synced range");
      }
    }
    return rc;
  }

 private:
  struct Region {
    std::size_t length;
    ino_t ino;
    off_t offset;
  };

  void counted(const char* name) {
    if (in_hook_) return;
    Hook hook;
    std::uint64_t n;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!hook_) return;
      hook = hook_;
      n = ++calls_;
    }
    in_hook_ = true;
    hook(n, name);
    in_hook_ = false;
  }

  // Our own descriptor of the inode, to read it after the library closed,
  // renamed or unlinked it.
  void keep_fd(ino_t ino, int fd) {
    if (fds_.count(ino) != 0) return;
    // A read-only description of our own (the library's may be write-only).
    const std::string self = "/proc/self/fd/" + std::to_string(fd);
    int mine = ::open(self.c_str(), O_RDONLY | O_CLOEXEC);
    if (mine < 0) throw std::runtime_error("power_env: cannot open " + self);
    fds_[ino] = mine;
  }

  void forget_maps(std::uintptr_t start, std::size_t length) {
    for (auto it = maps_.begin(); it != maps_.end();) {
      bool inside = it->first >= start && it->first < start + length;
      it = inside ? maps_.erase(it) : std::next(it);
    }
  }

  static std::string read_all(int fd) {
    struct stat st;
    if (::fstat(fd, &st) != 0) throw std::runtime_error("power_env: fstat failed");
    std::string bytes(static_cast<std::size_t>(st.st_size), '\0');
    if (::pread(fd, bytes.data(), bytes.size(), 0) != static_cast<ssize_t>(bytes.size())) {
      throw std::runtime_error("power_env: short read");
    }
    return bytes;
  }

  static std::string key(const std::string& dir) {
    return std::filesystem::weakly_canonical(dir).string();
  }

  // Regular files of dir: name -> inode.
  static std::map<std::string, ino_t> list(const std::string& dir) {
    std::map<std::string, ino_t> out;
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) throw std::runtime_error("power_env: cannot list " + dir);
    while (const dirent* e = ::readdir(d)) {
      struct stat st;
      std::string name = e->d_name;
      if (::fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) {
        out[name] = st.st_ino;
      }
    }
    ::closedir(d);
    return out;
  }

  static inline thread_local bool in_hook_ = false;
  std::mutex mu_;
  Hook hook_;
  std::uint64_t calls_ = 0;
  std::string boot_id_;
  std::map<ino_t, int> fds_;                                   // our descriptors, by inode
  std::map<ino_t, std::string> durable_;                       // durable content, by inode
  std::map<std::string, std::map<std::string, ino_t>> names_;  // durable entries, by directory
  std::map<std::uintptr_t, Region> maps_;                      // shared file maps, by address
};

}  // namespace lilcache::test
