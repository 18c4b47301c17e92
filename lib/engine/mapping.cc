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
  if (base_ != nullptr) env_->Munmap(base_, reserve_);
  base_ = nullptr;
  reserve_ = 0;
  size_.store(0, std::memory_order_relaxed);
}

}  // namespace lilcache
