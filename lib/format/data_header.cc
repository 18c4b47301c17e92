#include "format/data_header.h"

namespace lilcache {

HeaderVerdict CheckDataHeader(std::span<const char> file, std::uint64_t generation,
                              std::uint64_t salt) {
  HeaderVerdict v = CheckFileHeader(FileKind::kData, file);
  if (!v.readable()) return v;
  const auto& h = *reinterpret_cast<const DataHeader*>(file.data());
  if (h.generation != generation) {
    v.Add(HeaderFault::kWrongGeneration, "it says generation " + std::to_string(h.generation) +
                                             ", its name says " + std::to_string(generation));
  }
  if (h.salt != salt) {
    v.Add(HeaderFault::kWrongSalt, "salt differs from the meta file's: every checksum fails");
  }
  return v;
}

}  // namespace lilcache
