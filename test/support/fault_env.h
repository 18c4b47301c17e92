// FaultEnv: an lilcache::Env that counts every file, map and lock call the
// library makes (per method and in total) and fails a chosen one with a
// chosen errno. Used by the fault-injection suites.
//
// Calls are numbered from 1 in the order the library makes them, counting
// only while counting is on (begin()/end()). arm(k, err) makes the k-th
// counted call fail with err: it returns -1 (MAP_FAILED for Mmap) with errno
// = err, without doing anything - except Close, Munmap and Unlock, which
// release their resource and then report the error (as Linux's close(2)
// does on EIO: the descriptor is gone either way). Clocks, the boot id and
// sleeps are never failed; BootId() can be overridden (a "reboot").
//
// It also keeps track of the address-space reservations the library makes
// (anonymous PROT_NONE maps, docs in lib/engine/mapping.h) and releases through it:
// reservations_held() must be 0 once every Cache using it is closed. (Counting
// big anonymous maps in /proc/self/maps cannot tell them apart from a
// sanitizer's allocator regions.) Tracking is on whether counting is or not.
//
// Thread-safe (one mutex); deterministic when one thread uses the cache.
#pragma once

#include <sys/mman.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "lilcache/env.h"

namespace lilcache::test {

class FaultEnv : public Env {
 public:
  enum Call {
    kOpen,
    kClose,
    kFstat,
    kFtruncate,
    kFallocate,
    kPwrite,
    kFsync,
    kRename,
    kUnlink,
    kMkdir,
    kFsyncDir,
    kMmap,
    kMunmap,
    kMsync,
    kLock,
    kUnlock,
    kIsLocked,
    kFstatfs,
    kListDirectory,
    kNumCalls
  };
  static const char* call_name(int c) {
    static const char* const names[kNumCalls] = {
        "open",   "close",  "fstat",     "ftruncate",  "fallocate",     "pwrite", "fsync",
        "rename", "unlink", "mkdir",     "fsync(dir)", "mmap",          "munmap", "msync",
        "lock",   "unlock", "is_locked", "fstatfs",    "list_directory"};
    return c >= 0 && c < kNumCalls ? names[c] : "?";
  }

  // Starts counting from zero (and disarms).
  void begin() {
    std::lock_guard<std::mutex> l(mu_);
    counting_ = true;
    total_ = 0;
    per_call_.fill(0);
    fail_at_ = 0;
    injected_.clear();
    injected_call_ = kNumCalls;
  }
  // Stops counting (and disarms).
  void end() {
    std::lock_guard<std::mutex> l(mu_);
    counting_ = false;
    fail_at_ = 0;
  }
  // Counts from zero and fails the k-th call (k >= 1) with `err`.
  void arm(std::uint64_t k, int err) {
    begin();
    std::lock_guard<std::mutex> l(mu_);
    fail_at_ = k;
    err_ = err;
  }
  // Calls counted since begin()/arm().
  std::uint64_t total() const {
    std::lock_guard<std::mutex> l(mu_);
    return total_;
  }
  std::uint64_t count(Call c) const {
    std::lock_guard<std::mutex> l(mu_);
    return per_call_[c];
  }
  // "fsync #2 (call 7)" once a call was failed, else "".
  std::string injected() const {
    std::lock_guard<std::mutex> l(mu_);
    return injected_;
  }
  // Counted calls so far as "open 3, fallocate 2, ..." (zero counts left out).
  std::string summary() const {
    std::lock_guard<std::mutex> l(mu_);
    std::string s;
    for (int c = 0; c < kNumCalls; ++c) {
      if (per_call_[c] == 0) continue;
      if (!s.empty()) s += ", ";
      s += std::string(call_name(c)) + " " + std::to_string(per_call_[c]);
    }
    return s.empty() ? "no calls" : s;
  }
  // The method whose call was failed (kNumCalls if none).
  int injected_call() const {
    std::lock_guard<std::mutex> l(mu_);
    return injected_call_;
  }
  std::uint64_t faults_injected() const {
    std::lock_guard<std::mutex> l(mu_);
    return faults_;
  }

  // "" = the real boot id.
  void set_boot_id(std::string id) {
    std::lock_guard<std::mutex> l(mu_);
    boot_id_ = std::move(id);
  }

  int Open(const char* path, int flags, mode_t mode) override {
    return hit(kOpen) ? -1 : Env::Open(path, flags, mode);
  }
  int Close(int fd) override { return release(kClose, Env::Close(fd)); }
  int Fstat(int fd, struct stat* st) override { return hit(kFstat) ? -1 : Env::Fstat(fd, st); }
  int Ftruncate(int fd, off_t length) override {
    return hit(kFtruncate) ? -1 : Env::Ftruncate(fd, length);
  }
  int Fallocate(int fd, off_t offset, off_t length) override {
    return hit(kFallocate) ? -1 : Env::Fallocate(fd, offset, length);
  }
  int Fstatfs(int fd, struct statfs* st) override {
    return hit(kFstatfs) ? -1 : Env::Fstatfs(fd, st);
  }
  int PwriteAll(int fd, const void* buf, std::size_t length, off_t offset) override {
    return hit(kPwrite) ? -1 : Env::PwriteAll(fd, buf, length, offset);
  }
  int Fsync(int fd) override { return hit(kFsync) ? -1 : Env::Fsync(fd); }
  int Rename(const char* from, const char* to) override {
    return hit(kRename) ? -1 : Env::Rename(from, to);
  }
  int Unlink(const char* path) override { return hit(kUnlink) ? -1 : Env::Unlink(path); }
  int Mkdir(const char* path, mode_t mode) override {
    return hit(kMkdir) ? -1 : Env::Mkdir(path, mode);
  }
  int FsyncDir(const char* path) override { return hit(kFsyncDir) ? -1 : Env::FsyncDir(path); }
  int ListDirectory(const char* path, std::vector<std::string>* names) override {
    return hit(kListDirectory) ? -1 : Env::ListDirectory(path, names);
  }
  void* Mmap(void* addr, std::size_t length, int prot, int flags, int fd, off_t offset) override {
    if (hit(kMmap)) return MAP_FAILED;
    void* p = Env::Mmap(addr, length, prot, flags, fd, offset);
    if (p != MAP_FAILED && prot == PROT_NONE && (flags & MAP_ANONYMOUS) != 0) {
      std::lock_guard<std::mutex> l(mu_);
      reservations_[p] = length;
    }
    return p;
  }
  int Munmap(void* addr, std::size_t length) override {
    int rc = Env::Munmap(addr, length);
    if (rc == 0) {
      std::lock_guard<std::mutex> l(mu_);
      auto it = reservations_.find(addr);
      if (it != reservations_.end() && it->second == length) reservations_.erase(it);
    }
    return release(kMunmap, rc);
  }
  // Reservations made through this Env and not unmapped yet.
  std::size_t reservations_held() const {
    std::lock_guard<std::mutex> l(mu_);
    return reservations_.size();
  }
  int Msync(void* addr, std::size_t length, int flags) override {
    return hit(kMsync) ? -1 : Env::Msync(addr, length, flags);
  }
  int Lock(int fd, off_t start, off_t length, bool exclusive, bool wait) override {
    return hit(kLock) ? -1 : Env::Lock(fd, start, length, exclusive, wait);
  }
  int Unlock(int fd, off_t start, off_t length) override {
    return release(kUnlock, Env::Unlock(fd, start, length));
  }
  int IsLocked(int fd, off_t start, off_t length) override {
    return hit(kIsLocked) ? -1 : Env::IsLocked(fd, start, length);
  }
  std::string BootId() override {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!boot_id_.empty()) return boot_id_;
    }
    return Env::BootId();
  }

 private:
  // Counts the call; true (errno set) if it is the one to fail.
  bool hit(Call c) {
    std::lock_guard<std::mutex> l(mu_);
    if (!counting_) return false;
    ++total_;
    ++per_call_[c];
    if (total_ != fail_at_) return false;
    injected_ = std::string(call_name(c)) + " #" + std::to_string(per_call_[c]) + " (call " +
                std::to_string(total_) + ")";
    injected_call_ = c;
    ++faults_;
    errno = err_;
    return true;
  }
  // A release call has already happened (rc); report the fault after it.
  int release(Call c, int rc) {
    int saved = errno;
    if (hit(c)) return -1;
    errno = saved;
    return rc;
  }

  mutable std::mutex mu_;
  bool counting_ = false;
  std::uint64_t total_ = 0;
  std::array<std::uint64_t, kNumCalls> per_call_{};
  std::uint64_t fail_at_ = 0;
  int err_ = EIO;
  std::string injected_;
  int injected_call_ = kNumCalls;
  std::uint64_t faults_ = 0;
  std::string boot_id_;
  std::map<void*, std::size_t> reservations_;
};

}  // namespace lilcache::test
