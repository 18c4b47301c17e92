#include "engine/mapping.h"

#include <sys/mman.h>

#include "engine/file_lock.h"
#include "lilcache/env.h"
#include "lilcache/lilcache.h"

namespace lilcache {

Mapping::~Mapping() { Unmap(); }

void Mapping::Map(Env* env, int fd, const std::string& path, std::size_t size,
                  std::size_t reserve) {
  env_ = env;
  fd_ = fd;
  path_ = path;
  void* p =
      env->Mmap(nullptr, reserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) ThrowErrno("cannot reserve address space for", path);
  base_ = static_cast<char*>(p);
  reserve_ = reserve;
  size_.store(0, std::memory_order_relaxed);
  if (size > 0) Extend(size);
}

void Mapping::Extend(std::size_t new_size) {
  std::size_t old = size_.load(std::memory_order_relaxed);
  if (new_size <= old) return;
  if (new_size > reserve_) {
    throw Error(ErrorCode::limit, "file " + path_ + " would outgrow its address reservation of " +
                                      std::to_string(reserve_) + " bytes");
  }
  void* p = env_->Mmap(base_ + old, new_size - old, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
                       fd_, static_cast<off_t>(old));
  if (p == MAP_FAILED) ThrowErrno("cannot mmap", path_);
  size_.store(new_size, std::memory_order_release);
}

void Mapping::Unmap() {
  if (base_ == nullptr) return;
  // The mapped part first, a piece at a time: munmap holds the process's
  // mmap lock for writing while it tears down the page tables, and every
  // other thread's page fault waits for it (a writer appending to a fresh
  // page): ~10-60 ms for a 30 MB log in one call on the dev VM, so a
  // compactor retiring a generation stalled the writers of its process.
  constexpr std::size_t kPiece = std::size_t{2} << 20;
  const std::size_t mapped = size_.load(std::memory_order_relaxed);
  for (std::size_t off = 0; off + kPiece < mapped; off += kPiece) env_->Munmap(base_ + off, kPiece);
  env_->Munmap(base_, reserve_);  // the rest, and the reservation
  base_ = nullptr;
  reserve_ = 0;
  size_.store(0, std::memory_order_relaxed);
}

}  // namespace lilcache
