#include "engine/lease.h"

#include <cerrno>
#include <string>

#include "engine/file_lock.h"
#include "engine/fork.h"
#include "lilcache/env.h"

namespace lilcache {

Lease::~Lease() {
  if (table_ != nullptr) table_->Release(*this);
}

bool LeaseTable::TryAcquire(const FileHandle& file, std::uint64_t index, Lease* out) {
  const int fd = file.fd();
  const std::uint64_t bit = 1ull << (index % 64);
  if ((Word(index).fetch_or(bit, std::memory_order_acq_rel) & bit) != 0) return false;
  const off_t byte = static_cast<off_t>(kLeaseBase + index);
  if (env_->Lock(fd, byte, 1, /*exclusive=*/true, /*wait=*/false) != 0) {
    const int e = errno;
    Word(index).fetch_and(~bit, std::memory_order_acq_rel);
    if (e == EAGAIN || e == EACCES) return false;
    errno = e;
    ThrowErrno("cannot lock lease byte " + std::to_string(byte) + " of", file.path());
  }
  out->table_ = this;
  out->index_ = index;
  out->fd_ = fd;
  out->fork_epoch_ = ForkEpoch();
  return true;
}

void LeaseTable::Release(Lease& lease) {
  // In a fork child the lock is the parent's, and the table was reset.
  if (lease.fork_epoch_ == ForkEpoch()) {
    env_->Unlock(lease.fd_, static_cast<off_t>(kLeaseBase + lease.index_), 1);
    Word(lease.index_).fetch_and(~(1ull << (lease.index_ % 64)), std::memory_order_acq_rel);
  }
  lease.table_ = nullptr;
}

void LeaseTable::ResetInChild() {
  // Relaxed: the child's only thread.
  for (auto& w : held_) w.store(0, std::memory_order_relaxed);
}

}  // namespace lilcache
