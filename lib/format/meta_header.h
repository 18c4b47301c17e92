// meta_header: the layout of NAME.meta (docs/format.md, "NAME.meta"): its
// header, its lock bytes and its process slots, and the one validator of
// its header.
//
// Concurrency: the file is mapped MAP_SHARED by every process; the fields
// marked atomic are only accessed through Shared()/LoadShared()
// (format/shared_atomic.h), with the order stated at each access.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include "format/file_header.h"

namespace lilcache {

inline constexpr std::size_t kMaxProcesses = 1024;
inline constexpr std::size_t kSlotSize = 128;
inline constexpr std::size_t kMetaFileSize = kHeaderSize + kMaxProcesses * kSlotSize;

// Where process slot i (0 <= i < kMaxProcesses) lies in NAME.meta.
inline constexpr std::size_t ProcessSlotOffset(std::size_t i) {
  return kHeaderSize + i * kSlotSize;
}

// Lock bytes of NAME.meta (OFD locks, docs/format.md "Lock bytes"). A
// process's SLOT lock is the first byte of its slot.
inline constexpr off_t kInitLockByte = 0;
inline constexpr off_t kGrowLockByte = 1;
inline constexpr off_t kCompactLockByte = 2;
inline constexpr off_t SlotLockByte(std::size_t i) {
  return static_cast<off_t>(ProcessSlotOffset(i));
}

struct MetaHeader {
  // Cache line 0: read by every get (generation, purge_seq), rarely written.
  char magic[8];
  std::uint32_t version;
  std::uint32_t header_size;
  std::uint64_t salt;
  std::uint64_t created_ms;
  std::uint64_t generation;        // atomic
  std::uint64_t purge_seq;         // atomic
  std::uint32_t writer_state;      // atomic: bit 0 epoch, bit 1 kSwitchingBit, bit 2 kThrottleBit
  std::uint32_t flags;             // atomic
  std::uint64_t last_snapshot_ms;  // atomic; written under the COMPACT lock
  // Cache line 1: drawn from by every write; alone so that it does not
  // evict line 0 from the readers' caches.
  std::uint64_t next_seq;  // atomic
  std::uint64_t reserved1[7];
  // Cold.
  char boot_id[40];
  std::uint64_t retired_hits, retired_misses, retired_sets, retired_deletes, retired_expired;
  std::uint64_t compactions;  // atomic
  std::uint64_t snapshots;    // atomic
  std::uint64_t evictions;    // atomic
  std::uint64_t max_bytes;    // atomic: the cache's size limit (0 = none)
  // atomic: the newest generation whose data file (and its name) is known
  // durable; only raised, after the fsync (docs/concurrency.md "Durability").
  std::uint64_t durable_gen;
};
static_assert(offsetof(MetaHeader, version) == offsetof(FileHeaderPrefix, version));
static_assert(offsetof(MetaHeader, generation) == 32 && offsetof(MetaHeader, purge_seq) == 40);
static_assert(offsetof(MetaHeader, writer_state) == 48 && offsetof(MetaHeader, next_seq) == 64);
static_assert(offsetof(MetaHeader, boot_id) == 128 && offsetof(MetaHeader, compactions) == 208);
static_assert(offsetof(MetaHeader, last_snapshot_ms) == 56 &&
              offsetof(MetaHeader, snapshots) == 216);
static_assert(offsetof(MetaHeader, evictions) == 224 && offsetof(MetaHeader, max_bytes) == 232);
static_assert(offsetof(MetaHeader, durable_gen) == 240);
static_assert(sizeof(MetaHeader) <= kHeaderSize);
inline constexpr std::uint32_t kFlagNeedsRebuild = 1;
inline constexpr std::uint32_t kEpochBit = 1;
inline constexpr std::uint32_t kSwitchingBit = 2;
inline constexpr std::uint32_t kThrottleBit = 4;

struct ProcessSlot {
  std::uint64_t inflight[2];  // atomic: writes in flight per writer epoch
  std::uint64_t pid;
  std::uint64_t reserved0[5];
  std::uint64_t hits, misses, sets, deletes, expired;  // atomic
  std::uint64_t reserved1[3];
};
static_assert(sizeof(ProcessSlot) == kSlotSize && offsetof(ProcessSlot, hits) == 64);

// Whether a NAME.meta of `size` bytes has its fixed size (kMetaFileSize):
// kBadSize "size S bytes, expected E" if not.
HeaderVerdict CheckMetaSize(std::uint64_t size);

// Validates NAME.meta, `file` being its bytes from offset 0 as mapped (the
// whole file, or as much as there is): CheckFileHeader, the size
// (CheckMetaSize), header_size, then the values every opener relies on: the
// generation is not 0, next_seq is in 1..record::kMaxSeq + 1, purge_seq is
// below next_seq (kBadValue). The atomic fields are loaded with acquire,
// purge_seq before next_seq: both only grow, so the check never sees a
// false violation while other processes purge and write.
HeaderVerdict CheckMetaHeader(std::span<const char> file);

}  // namespace lilcache
