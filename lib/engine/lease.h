// lease: the get_or_set() leases of one cache handle (docs/format.md, "Lock
// bytes"): LEASE i is an OFD lock on byte kLeaseBase + i of NAME.meta, taken
// through the handle's lock descriptor, so that the kernel drops it when the
// holder's process dies. Threads sharing that descriptor do not exclude each
// other through it, so a table of the leases this handle's threads hold
// comes first.
//
// Concurrency contract: TryAcquire() and Lease's destructor may run on any
// threads at once. fork(): the child's table starts empty (ResetInChild,
// from the handle's fork hook); a Lease taken before the fork and released
// in the child neither unlocks (the lock is the parent's) nor touches the
// child's table.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace lilcache {

class Env;
class FileHandle;

inline constexpr std::uint64_t kLeaseBase = 1ull << 32;  // first LEASE byte of NAME.meta
inline constexpr std::uint64_t kLeaseCount = 1u << 16;   // LEASE bytes

// The lease byte of a key: the top 16 bits of its hash (record::HashKey).
constexpr std::uint64_t LeaseOf(std::uint64_t hash) { return hash >> 48; }

class LeaseTable;

// A held lease (or none: held() == false); released when destroyed.
class Lease {
 public:
  Lease() = default;
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  ~Lease();
  bool held() const { return table_ != nullptr; }

 private:
  friend class LeaseTable;
  LeaseTable* table_ = nullptr;
  std::uint64_t index_ = 0;
  int fd_ = -1;
  std::uint64_t fork_epoch_ = 0;
};

class LeaseTable {
 public:
  explicit LeaseTable(Env* env) : env_(env) {}
  LeaseTable(const LeaseTable&) = delete;
  LeaseTable& operator=(const LeaseTable&) = delete;

  // Tries once to take LEASE `index` through the lock descriptor `file` into
  // *out. False if another thread of this handle or another open file
  // description holds it; throws Error if the lock call fails otherwise.
  bool TryAcquire(const FileHandle& file, std::uint64_t index, Lease* out);

  // The fork child's only thread (fork.h): plain stores.
  void ResetInChild();

 private:
  friend class Lease;
  void Release(Lease& lease);
  std::atomic<std::uint64_t>& Word(std::uint64_t index) { return held_[index / 64]; }

  Env* const env_;
  // Bit i: a thread of this handle holds LEASE i (or is taking it). acq_rel
  // fetch_or/fetch_and: the bit hands the lease over between threads.
  std::array<std::atomic<std::uint64_t>, kLeaseCount / 64> held_{};
};

}  // namespace lilcache
