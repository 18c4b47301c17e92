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

inline constexpr std::size_t kIndexSlotSize = 8;
// Slot counts are multiples of one page of slots (512), from kMinSlots to
// kMaxSlots (the home of a key scales 32 bits of its hash: IndexHome).
inline constexpr std::uint64_t kSlotsPerPage = kHeaderSize / kIndexSlotSize;
inline constexpr std::uint64_t kMinSlots = 1024;
inline constexpr std::uint64_t kMaxSlots = 1ull << 32;
static_assert(kMinSlots % kSlotsPerPage == 0 && kMaxSlots % kSlotsPerPage == 0);
inline constexpr bool ValidSlotCount(std::uint64_t n) {
  return n >= kMinSlots && n <= kMaxSlots && n % kSlotsPerPage == 0;
}

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
static_assert(kSlotsPerPage * kIndexSlotSize == kHeaderSize);

// The home of a key of hash `hash` in an index of `slot_count` slots
// (ValidSlotCount): the low 32 bits of the hash scaled to 0..slot_count-1
// by multiply-shift (slot_count <= 2^32: the product fits in 64 bits). The
// probe goes on at home + 1, wrapping from slot_count - 1 to 0. The low bits
// are independent of the tag's (the top 24) and the lease's (the top 16).
inline constexpr std::uint64_t IndexHome(std::uint64_t hash, std::uint64_t slot_count) {
  return ((hash & 0xffff'ffffull) * slot_count) >> 32;
}
// The probe distance of a key found in slot `pos` from its home `home`: 0
// at home.
inline constexpr std::uint64_t IndexProbeDistance(std::uint64_t home, std::uint64_t pos,
                                                  std::uint64_t slot_count) {
  return pos >= home ? pos - home : pos + slot_count - home;
}

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
// (kWrongGeneration), then that slot_count is valid (ValidSlotCount) and the
// file holds that many slots (kBadField).
HeaderVerdict CheckIndexHeader(std::span<const char> file, std::uint64_t file_size,
                               std::uint64_t generation);

}  // namespace lilcache
