// The board of the increment torture (test/process/update_race_test.cc): a
// file that the test and every lilcache-test-worker `incrementer` map
// (MAP_SHARED), where each caller (a thread of a worker) records, per call
// of Cache::increment(key, 1), "started" before the call and "acknowledged"
// after it returned, plus the value it returned. Stores to a shared file
// mapping survive the SIGKILL of the storing process, so after a kill the
// test knows exactly which calls were acknowledged and which were in doubt
// (started, never acknowledged: at most one per caller and key).
//
// Header-only: lilcache-test-worker does not link test_util.cc.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

namespace lilcache::test {

struct IncrementBoard {
  static constexpr std::uint32_t kMaxCallers = 64;  // worker slot * threads + thread
  static constexpr std::uint32_t kMaxKeys = 4;
  static constexpr std::uint64_t kSeenBits = 1u << 24;  // values checked for duplicates

  struct Caller {
    // Calls of increment(counter_key(k), 1) by this caller, over every
    // incarnation of its worker slot: started is raised before the call,
    // acked after it returned. seq_cst, like every other test-side store.
    std::atomic<std::uint64_t> started[kMaxKeys];
    std::atomic<std::uint64_t> acked[kMaxKeys];
  };
  Caller callers[kMaxCallers];
  // Bit v of seen[k]: an acknowledged increment of key k returned v. Each
  // increment by 1 that took effect made the counter a value no other one
  // made, so a bit found already set is a lost update.
  std::atomic<std::uint64_t> seen[kMaxKeys][kSeenBits / 64];
  std::atomic<std::uint64_t> duplicates;  // returned values already seen
  std::atomic<std::uint64_t> unchecked;   // returned values >= kSeenBits (not checked)
};

// Key k of the increment torture (a NUL inside, as keys are arbitrary bytes).
inline std::string counter_key(std::uint32_t k) {
  return std::string("ctr\0", 4) + std::to_string(k);
}

// Maps the board file `path` (created zero-filled at the board's size if
// `create`). Throws std::runtime_error on failure. Never unmapped: the
// caller keeps it for the life of the process (or calls unmap_board).
inline IncrementBoard* map_board(const std::string& path, bool create) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0), 0600);
  if (fd < 0) throw std::runtime_error("open " + path + ": " + std::strerror(errno));
  if (create && ::ftruncate(fd, sizeof(IncrementBoard)) != 0) {
    ::close(fd);
    throw std::runtime_error("ftruncate " + path + ": " + std::strerror(errno));
  }
  void* p = ::mmap(nullptr, sizeof(IncrementBoard), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) throw std::runtime_error("mmap " + path + ": " + std::strerror(errno));
  // A zero-filled file is a board of zero counters (lock-free atomics).
  static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
  return static_cast<IncrementBoard*>(p);
}

inline void unmap_board(IncrementBoard* b) { ::munmap(b, sizeof(IncrementBoard)); }

}  // namespace lilcache::test
