// index_header: the layout of a generation's hash index, NAME.G.index
// (docs/format.md, "NAME.G.index"): the header, the slots after it, what a
// slot holds, and the one validator of the header.
//
// Concurrency: used_slots and the slots are shared by every process and
// only accessed atomically (format/shared_atomic.h; the orders are stated
// in engine/index.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "format/file_header.h"

namespace lilcache {

inline constexpr std::uint64_t kMinSlots = 1024;
inline constexpr std::uint64_t kMaxSlots = 1ull << 32;
inline constexpr std::size_t kIndexSlotSize = 8;

struct IndexHeader {
  char magic[8];
  std::uint32_t version;
  std::uint32_t header_size;
  std::uint64_t generation;
  std::uint64_t slot_count;
  std::uint64_t reserved0[4];
  std::uint64_t used_slots;  // atomic
};
static_assert(offsetof(IndexHeader, version) == offsetof(FileHeaderPrefix, version));
static_assert(offsetof(IndexHeader, used_slots) == 64);
static_assert(sizeof(IndexHeader) <= kHeaderSize);

// The size of an index of `slot_count` slots: the header, then the slots.
// (A multiple of kHeaderSize, one page, for every valid slot count.)
inline constexpr std::uint64_t IndexSlotOffset(std::uint64_t i) {
  return kHeaderSize + i * kIndexSlotSize;
}
inline constexpr std::uint64_t IndexFileSize(std::uint64_t slot_count) {
  return IndexSlotOffset(slot_count);
}
static_assert(kMinSlots * kIndexSlotSize % kHeaderSize == 0);

// A slot: 0 (empty) or tag << 40 | record_offset / 8, the tag being the top
// 24 bits of the key's hash.
inline constexpr unsigned kSlotTagShift = 40;
inline constexpr std::uint64_t PackSlot(std::uint64_t hash, std::uint64_t offset) {
  return (hash >> kSlotTagShift) << kSlotTagShift | (offset >> 3);
}
inline constexpr std::uint64_t SlotOffset(std::uint64_t slot) {
  return (slot & ((1ull << kSlotTagShift) - 1)) << 3;
}
inline constexpr bool SlotTagMatches(std::uint64_t slot, std::uint64_t hash) {
  return (slot >> kSlotTagShift) == (hash >> kSlotTagShift);
}

// Validates an index's header, `file` being its bytes from offset 0 (at
// least the header, if the file has one) and `file_size` its size:
// CheckFileHeader, then that it belongs to generation `generation`
// (kWrongGeneration), then that slot_count is a power of two in
// kMinSlots..kMaxSlots and the file holds that many slots (kBadField).
HeaderVerdict CheckIndexHeader(std::span<const char> file, std::uint64_t file_size,
                               std::uint64_t generation);

}  // namespace lilcache
