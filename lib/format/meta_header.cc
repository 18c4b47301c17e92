#include "format/meta_header.h"

#include "format/record.h"
#include "format/shared_atomic.h"

namespace lilcache {

HeaderVerdict CheckMetaSize(std::uint64_t size) {
  HeaderVerdict v;
  v.kind = FileKind::kMeta;
  if (size != kMetaFileSize) {
    v.Add(HeaderFault::kBadSize,
          "size " + std::to_string(size) + " bytes, expected " + std::to_string(kMetaFileSize));
  }
  return v;
}

HeaderVerdict CheckMetaHeader(std::span<const char> file) {
  HeaderVerdict v = CheckFileHeader(FileKind::kMeta, file);
  if (!v.readable()) return v;
  if (HeaderVerdict size = CheckMetaSize(file.size()); !size.ok()) {
    v.findings.push_back(size.findings.front());
    return v;
  }
  const auto& h = *reinterpret_cast<const MetaHeader*>(file.data());
  if (h.header_size != kHeaderSize) {
    v.Add(HeaderFault::kBadField, "header_size " + std::to_string(h.header_size));
    return v;
  }
  // Acquire: pairs with the compactor's release of a new generation.
  if (LoadShared(h.generation, std::memory_order_acquire) == 0) {
    v.Add(HeaderFault::kBadValue, "generation 0");
  }
  // Purge() draws its mark from next_seq, so the mark is always below it;
  // otherwise every write would be hidden by the purge as soon as it returns.
  // Acquire, purge_seq first: both only grow, so this order never sees a
  // false violation while other processes purge and write.
  const std::uint64_t purge = LoadShared(h.purge_seq, std::memory_order_acquire);
  const std::uint64_t next = LoadShared(h.next_seq, std::memory_order_acquire);
  if (next == 0 || next > record::kMaxSeq + 1) {
    v.Add(HeaderFault::kBadValue,
          "next sequence number " + std::to_string(next) + " is out of range");
  } else if (purge >= next) {
    v.Add(HeaderFault::kBadValue, "purge mark " + std::to_string(purge) +
                                      " is not below the next sequence number " +
                                      std::to_string(next));
  }
  return v;
}

}  // namespace lilcache
