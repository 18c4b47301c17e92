#include "format/record.h"

#define XXH_INLINE_ALL  // inline XXH3 into the hot paths (measurably faster than the .so)
#include <xxhash.h>

#include "lilcache/lilcache.h"

namespace lilcache::record {

static_assert(std::endian::native == std::endian::little,
              "lilcache's file format is little-endian; big-endian hosts are not supported");

std::uint64_t HashKey(std::string_view key, std::uint64_t salt) {
  return XXH3_64bits_withSeed(key.data(), key.size(), salt);
}

std::uint64_t RecordChecksum(const RecordHeader* header, std::uint64_t salt) {
  const char* p = reinterpret_cast<const char*>(header) + 8;
  std::size_t n = kRecordHeaderSize - 8 + header->key_len + header->value_len;
  return XXH3_64bits_withSeed(p, n, salt);
}

void EncodeRecord(const NewRecord& rec, std::uint64_t salt, std::span<char> out) {
  std::size_t body = kRecordHeaderSize + rec.key.size() + rec.value.size();
  auto* h = reinterpret_cast<RecordHeader*>(out.data());
  h->magic = kRecordMagic;
  h->type = static_cast<std::uint8_t>(rec.type);
  // A tombstone has no value, so no KIND.
  const unsigned kind = rec.type == RecordType::kSet ? rec.kind : 0;
  h->flags = static_cast<std::uint8_t>((kind << kKindShift) & kKindMask);
  h->reserved = 0;
  h->key_len = static_cast<std::uint32_t>(rec.key.size());
  h->value_len = static_cast<std::uint32_t>(rec.value.size());
  h->seq = rec.seq;
  h->expires_ms = rec.expires_ms;
  char* p = out.data() + kRecordHeaderSize;
  if (!rec.key.empty()) std::memcpy(p, rec.key.data(), rec.key.size());
  if (!rec.value.empty()) std::memcpy(p + rec.key.size(), rec.value.data(), rec.value.size());
  std::memset(out.data() + body, 0, AlignUp(body) - body);
  h->checksum = RecordChecksum(h, salt);
}

void MarkAborted(std::span<char> rec, std::uint64_t salt) {
  auto* h = reinterpret_cast<RecordHeader*>(rec.data());
  h->flags |= kFlagAborted;
  h->checksum = RecordChecksum(h, salt);
}

const char* DamageName(Damage d) {
  switch (d) {
    case Damage::kNone:
      return "ok";
    case Damage::kTruncated:
      return "truncated";
    case Damage::kBadMagic:
      return "bad magic";
    case Damage::kBadHeader:
      return "bad header";
    case Damage::kBadChecksum:
      return "bad checksum";
  }
  return "?";
}

Damage CheckRecord(std::span<const char> region, std::size_t offset, std::uint64_t salt,
                   RecordView* out) {
  if (offset > region.size() || region.size() - offset < kRecordHeaderSize) {
    return Damage::kTruncated;
  }
  const auto* h = reinterpret_cast<const RecordHeader*>(region.data() + offset);
  if (Damage d = CheckRecordHeader(*h); d != Damage::kNone) return d;
  if (region.size() - offset < RecordSize(h->key_len, h->value_len)) return Damage::kTruncated;
  if (RecordChecksum(h, salt) != h->checksum) return Damage::kBadChecksum;
  if (out != nullptr) out->header = h;
  return Damage::kNone;
}

}  // namespace lilcache::record
