#include "format/index_header.h"

#include <string>

namespace lilcache {

HeaderVerdict CheckIndexHeader(std::span<const char> file, std::uint64_t file_size,
                               std::uint64_t generation) {
  HeaderVerdict v = CheckFileHeader(FileKind::kIndex, file);
  if (!v.readable()) return v;
  const auto& h = *reinterpret_cast<const IndexHeader*>(file.data());
  if (h.generation != generation) {
    v.Add(HeaderFault::kWrongGeneration, "it says generation " + std::to_string(h.generation) +
                                             ", its name says " + std::to_string(generation));
  }
  const std::uint64_t n = h.slot_count;
  if (!ValidSlotCount(n)) {
    v.Add(HeaderFault::kBadField, "bad slot count " + std::to_string(n));
  } else if (IndexFileSize(n) > file_size) {
    v.Add(HeaderFault::kBadField, "truncated: " + std::to_string(file_size) +
                                      " bytes hold fewer than " + std::to_string(n) + " slots");
  }
  return v;
}

}  // namespace lilcache
