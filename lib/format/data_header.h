// data_header: the layout of a generation's log, NAME.G.data (docs/format.md,
// "NAME.G.data"): the header before the records, and its one validator.
//
// Concurrency: the fields marked atomic are shared by every process and only
// accessed through Shared()/LoadShared() (format/shared_atomic.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "format/file_header.h"

namespace lilcache {

struct DataHeader {
  char magic[8];
  std::uint32_t version;
  std::uint32_t header_size;
  std::uint64_t generation;
  std::uint64_t salt;
  std::uint64_t created_ms;
  std::uint64_t reserved0[3];
  std::uint64_t tail;           // atomic
  std::uint64_t capacity;       // atomic
  std::uint64_t dead_bytes;     // atomic
  std::uint64_t verified_upto;  // atomic
};
static_assert(offsetof(DataHeader, version) == offsetof(FileHeaderPrefix, version));
static_assert(offsetof(DataHeader, tail) == 64 && offsetof(DataHeader, verified_upto) == 88);
static_assert(sizeof(DataHeader) <= kHeaderSize);

// The first record starts right after the header.
inline constexpr std::uint64_t kFirstRecordOffset = kHeaderSize;

// Validates a log's header, `file` being its bytes from offset 0 (at least
// the header, if the file has one): CheckFileHeader, then that it belongs
// to generation `generation` (kWrongGeneration) of the cache whose salt is
// `salt` (kWrongSalt). Its tail and capacity are the engine's and the
// inspector's to judge (a truncated log is replayed, not refused).
HeaderVerdict CheckDataHeader(std::span<const char> file, std::uint64_t generation,
                              std::uint64_t salt);

}  // namespace lilcache
