// record: the record layout of the log, NAME.G.data (docs/format.md,
// "Record"): encoding, validation and the key hash. Pure functions over
// bytes; no I/O.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

#include "lilcache/lilcache.h"  // kMaxKeyBytes, kMaxValueBytes

namespace lilcache::record {

inline constexpr std::uint32_t kRecordMagic = 0x4352434C;  // "LCRC"
inline constexpr std::size_t kRecordHeaderSize = 40;
inline constexpr std::size_t kAlign = 8;
// Sequence numbers are 1..kMaxSeq (2^63 - 1: 292 years at 10^9 writes per
// second), so that next_seq never wraps around; a record claiming a larger
// one is corrupt.
inline constexpr std::uint64_t kMaxSeq = (1ull << 63) - 1;

enum class RecordType : std::uint8_t { kSet = 1, kTombstone = 2 };

// Record flags (docs/format.md, "Record"). ABORTED: a conditional write that
// lost its race and was never published; valid, but a replay ignores it.
inline constexpr std::uint8_t kFlagAborted = 1;
// Bits 1-2: the KIND of the value (lilcache::ValueKind: 0 bytes, 1 text, 2
// integer, 3 serialized); a tombstone's is 0.
inline constexpr unsigned kKindShift = 1;
inline constexpr std::uint8_t kKindMask = 3u << kKindShift;
inline constexpr std::uint8_t kKnownFlags = kFlagAborted | kKindMask;

// The 40-byte record header exactly as stored (little-endian host only).
struct RecordHeader {
  std::uint64_t checksum;
  std::uint32_t magic;
  std::uint8_t type;
  std::uint8_t flags;
  std::uint16_t reserved;
  std::uint32_t key_len;
  std::uint32_t value_len;
  std::uint64_t seq;
  std::uint64_t expires_ms;
};
static_assert(sizeof(RecordHeader) == kRecordHeaderSize);
static_assert(offsetof(RecordHeader, seq) == 24 && offsetof(RecordHeader, expires_ms) == 32);

inline constexpr std::size_t AlignUp(std::size_t n) { return (n + kAlign - 1) & ~(kAlign - 1); }

// Bytes a record with these lengths occupies, padding included.
inline constexpr std::size_t RecordSize(std::size_t key_len, std::size_t value_len) {
  return AlignUp(kRecordHeaderSize + key_len + value_len);
}

// A read-only view of a record in a mapping. Valid while the mapping is.
struct RecordView {
  const RecordHeader* header = nullptr;
  std::string_view key() const {
    return {reinterpret_cast<const char*>(header) + kRecordHeaderSize, header->key_len};
  }
  std::string_view value() const {
    return {reinterpret_cast<const char*>(header) + kRecordHeaderSize + header->key_len,
            header->value_len};
  }
  RecordType type() const { return static_cast<RecordType>(header->type); }
  bool is_tombstone() const {
    return header->type == static_cast<std::uint8_t>(RecordType::kTombstone);
  }
  std::uint64_t seq() const { return header->seq; }
  bool is_aborted() const { return (header->flags & kFlagAborted) != 0; }
  // The KIND of the value (docs/format.md): 0..3, as lilcache::ValueKind.
  std::uint8_t kind() const { return (header->flags & kKindMask) >> kKindShift; }
  std::uint64_t expires_ms() const { return header->expires_ms; }
  std::size_t size() const { return RecordSize(header->key_len, header->value_len); }
  bool expired_at(std::uint64_t now_ms) const {
    return header->expires_ms != 0 && now_ms >= header->expires_ms;
  }
};

// XXH3 of the key, seeded with the cache's salt: the index hash.
std::uint64_t HashKey(std::string_view key, std::uint64_t salt);

// Checksum of a record: XXH3 over bytes [8, 40 + key_len + value_len).
std::uint64_t RecordChecksum(const RecordHeader* header, std::uint64_t salt);

struct NewRecord {
  RecordType type = RecordType::kSet;
  std::string_view key;
  std::string_view value;
  std::uint64_t seq = 0;
  std::uint64_t expires_ms = 0;
  std::uint8_t kind = 0;  // KIND of the value (0..3); 0 for a tombstone
};

// Writes `rec` (header, key, value, zero padding, checksum last) into `out`,
// which must hold RecordSize(key, value) bytes.
void EncodeRecord(const NewRecord& rec, std::uint64_t salt, std::span<char> out);

// Marks the record in `rec` (as written by EncodeRecord, never published)
// ABORTED and rewrites its checksum.
void MarkAborted(std::span<char> rec, std::uint64_t salt);

// Why a record at some offset is not valid.
enum class Damage {
  kNone,         // valid
  kTruncated,    // the header or the body runs past the end of the region
  kBadMagic,     // not a record start (zeros of a hole, or garbage)
  kBadHeader,    // bad type, flags, lengths or sequence number
  kBadChecksum,  // torn or corrupted
};
const char* DamageName(Damage d);

// "Is this a record?", short of its checksum: the one check of a record
// header's fields, for every reader that meets a header (a scan, a get
// following an index slot, the inspector). kNone if the magic, type, flags,
// lengths and seq are possible (a tombstone has no value); else kBadMagic or
// kBadHeader. Does not look past the header: the caller checks that the
// RecordSize() bytes are there.
// Inline: every get runs it on the record it reads.
inline Damage CheckRecordHeader(const RecordHeader& h) {
  if (h.magic != kRecordMagic) [[unlikely]] {
    return Damage::kBadMagic;
  }
  const bool type_ok = h.type == static_cast<std::uint8_t>(RecordType::kSet) ||
                       h.type == static_cast<std::uint8_t>(RecordType::kTombstone);
  if (!type_ok || (h.flags & ~kKnownFlags) != 0 || h.reserved != 0 || h.key_len == 0 ||
      h.key_len > kMaxKeyBytes || h.value_len > kMaxValueBytes || h.seq > kMaxSeq ||
      (h.type == static_cast<std::uint8_t>(RecordType::kTombstone) &&
       (h.value_len != 0 || (h.flags & kKindMask) != 0))) [[unlikely]] {
    return Damage::kBadHeader;
  }
  return Damage::kNone;
}

// Validates the record starting at region[offset] (offset multiple of 8)
// without reading outside `region`: the header fits, CheckRecordHeader, the
// record fits, the checksum. On kNone, *out views it.
Damage CheckRecord(std::span<const char> region, std::size_t offset, std::uint64_t salt,
                   RecordView* out);

// Calls fn(offset, record) for each valid record in region[from, to), in log
// order. Damage (a hole or torn record left by a writer that died, or a
// corrupt one) is skipped by resynchronizing on the next 8-byte boundary, so
// it costs only itself. Returns the number of damaged regions passed over:
// stretches between valid records that hold a non-zero byte (all-zero
// stretches are unused or never-written space, not damage).
template <typename Fn>
std::uint64_t ForEachValidRecord(std::span<const char> region, std::size_t from, std::size_t to,
                                 std::uint64_t salt, Fn&& fn) {
  std::uint64_t damaged = 0;
  bool garbage = false;  // the stretch since the last valid record holds non-zero bytes
  for (std::size_t off = from; off < to;) {
    RecordView r;
    if (CheckRecord(region, off, salt, &r) != Damage::kNone) {
      std::size_t n = std::min<std::size_t>(kAlign, region.size() - off);
      garbage = garbage || std::any_of(region.data() + off, region.data() + off + n,
                                       [](char c) { return c != 0; });
      off += kAlign;
      continue;
    }
    damaged += garbage ? 1 : 0;
    garbage = false;
    fn(off, r);
    off += r.size();
  }
  return damaged + (garbage ? 1 : 0);
}

}  // namespace lilcache::record
