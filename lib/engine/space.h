// space: how the bytes of a data file divide (docs/format.md): its header,
// the live records, and dead ones (replaced, deleted, expired, evicted, or
// never published). One formula, used by stats(), the write heuristics and
// lilcache-compact --dry-run.
#pragma once

#include <algorithm>
#include <cstdint>

#include "engine/meta.h"

namespace lilcache {

// The bytes of a data file of `file_bytes` (its tail) that are neither its
// header nor `known` bytes of records: dead ones if `known` counts the live,
// live ones if it counts the dead. 0 if `known` and the header fill the file.
inline std::uint64_t OtherRecordBytes(std::uint64_t file_bytes, std::uint64_t known) {
  return file_bytes - std::min(file_bytes, known + kHeaderSize);
}

inline std::uint64_t DeadBytes(std::uint64_t file_bytes, std::uint64_t live_bytes) {
  return OtherRecordBytes(file_bytes, live_bytes);
}

inline std::uint64_t LiveBytes(std::uint64_t file_bytes, std::uint64_t dead_bytes) {
  return OtherRecordBytes(file_bytes, dead_bytes);
}

}  // namespace lilcache
