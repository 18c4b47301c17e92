// mapping: a file mapped MAP_SHARED at a fixed address range that can grow in
// place. The range is reserved once (PROT_NONE, no memory committed); growing
// maps only the new part of the file after the old part, so pointers into
// the mapping stay valid and readers never see it move or vanish.
//
// Concurrency: size() may be read by any thread (acquire); Extend() must be
// serialized by the caller (DataFile holds a mutex around it).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "format/file_header.h"

namespace lilcache {

class Env;

// The granularity of the mappings the library makes: sizes and offsets of
// Map() and Extend() are multiples of it. 4 KiB, the page size of the hosts
// lilcache runs on (x86-64; arm64 with 4 KiB pages).
inline constexpr std::size_t kPageSize = 4096;
static_assert(kHeaderSize % kPageSize == 0, "records and index slots start on a page boundary");

inline constexpr std::uint64_t RoundUpToPage(std::uint64_t n) {
  return (n + kPageSize - 1) / kPageSize * kPageSize;
}

class Mapping {
 public:
  Mapping() = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping();

  // Reserves `reserve` bytes of address space and maps [0, size) of fd there.
  // `size` and `reserve` must be multiples of kPageSize. Throws Error.
  void Map(Env* env, int fd, const std::string& path, std::size_t size, std::size_t reserve);
  // Maps [size(), new_size) of the file right after the current end.
  void Extend(std::size_t new_size);
  // Unmaps everything now (also done by the destructor).
  void Unmap();

  char* data() const { return base_; }
  // Bytes of the file currently mapped. memory_order_acquire: a thread that
  // sees the new size also sees the mapping that Extend() installed.
  std::size_t size() const { return size_.load(std::memory_order_acquire); }
  std::size_t reserved() const { return reserve_; }

 private:
  Env* env_ = nullptr;
  int fd_ = -1;
  std::string path_;
  char* base_ = nullptr;
  std::size_t reserve_ = 0;
  std::atomic<std::size_t> size_{0};
};

}  // namespace lilcache
