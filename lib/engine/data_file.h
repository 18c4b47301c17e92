// data_file: one generation's data file, NAME.G.data (docs/format.md; the
// layout is format/data_header.h and format/record.h). Records are
// appended by reserving space inside the capacity with a compare-and-swap on
// the shared `tail`, then written in place; the file grows first (fallocate
// of the new range) under the GROW lock, and every process extends its own
// mapping when it meets an offset beyond it.
//
// Concurrency: Reserve(), EnsureMapped() and the accessors are safe from any
// thread of any process. Growth is serialized by an in-process mutex plus the
// GROW OFD lock of NAME.meta (threads sharing one descriptor share its locks).
#pragma once

#include <spdlog/logger.h>

#include <cstdint>
#include <span>
#include <string>

#include "engine/file_lock.h"
#include "engine/mapping.h"
#include "format/data_header.h"
#include "format/record.h"
#include "util/mutex.h"

namespace lilcache {

class Env;

inline constexpr std::uint64_t kGrowQuantum = 1 << 20;        // capacity: multiples of 1 MiB
inline constexpr std::uint64_t kMaxDataBytes = 256ull << 30;  // one generation's data file
inline constexpr std::uint64_t kMaxGrowStep = 1ull << 30;

// Allocates [offset, offset + length) of `file` (Env::Fallocate, fallocate(2)
// mode 0), extending it as needed. Throws Error "<what> <path>: <strerror>",
// saying so when the disk is full or the file system cannot allocate
// (EOPNOTSUPP: lilcache needs a local file system with fallocate).
void AllocateRange(Env* env, const FileHandle& file, std::uint64_t offset, std::uint64_t length,
                   const std::string& what);

// Throws Error if `file` (in the cache's root) lies on a file system lilcache
// cannot work on: a network file system (fstatfs(2): NFS, SMB/CIFS, 9p,
// Ceph, AFS, Coda), whose shared mappings and byte-range locks are not
// coherent between machines, or, with `probe`, one without fallocate(2):
// probed over the file's header (kHeaderSize bytes), which was written
// (allocated) already, so that the probe needs no free space. Any error of the probe is
// an Error.
void CheckFileSystem(Env* env, const FileHandle& file, bool probe);

class DataFile {
 public:
  DataFile() = default;
  DataFile(const DataFile&) = delete;
  DataFile& operator=(const DataFile&) = delete;

  // Creates a new, empty data file at path with `capacity` bytes (a file already
  // there is unlinked first; the new one is created O_EXCL).
  void Create(Env* env, const std::string& path, std::uint64_t generation, std::uint64_t salt,
              std::uint64_t capacity, std::uint64_t now_ms);
  // Opens an existing data file and checks its header (CheckDataHeader:
  // throws Error naming the file). A file shorter than its
  // recorded capacity (truncated) is mapped as far as it goes; truncated() says
  // so, and also when the header's tail or verified_upto is impossible (not a
  // multiple of 8, before the first record, past the end): either way the
  // header cannot be trusted, and a lone opener replays the whole file.
  void Open(Env* env, const std::string& path, std::uint64_t generation, std::uint64_t salt);

  DataHeader& header() const { return *reinterpret_cast<DataHeader*>(map_.data()); }
  char* base() const { return map_.data(); }
  const std::string& path() const { return file_.path(); }
  const FileHandle& file() const { return file_; }
  std::uint64_t mapped() const { return map_.size(); }
  bool truncated() const { return truncated_; }
  // Size of the file when opened (for scanning a truncated data file).
  std::uint64_t file_size() const { return file_size_; }

  // Reserves `len` bytes (a multiple of 8) at the end of the data file and returns
  // their offset, growing the file first if they do not fit: the tail never
  // passes the capacity. `meta` (may be null for a file no other process can
  // see yet) provides the GROW lock. Throws Error when the disk is full or
  // the data file reached kMaxDataBytes; then nothing was reserved (the tail did
  // not move), so a later write that fits succeeds.
  std::uint64_t Reserve(std::uint64_t len, const FileHandle* meta);

  // Makes sure [0, end) is mapped in this process. Throws Error if `end` lies
  // beyond the file's capacity (a corrupt offset).
  void EnsureMapped(std::uint64_t end);

  // The mapped part of the data file as bytes, for scanning: [0, min(tail, mapped)).
  std::span<const char> Region(std::uint64_t end) const { return {map_.data(), end}; }

  // Sets the capacity to at least `end` (rounded up), under the GROW lock.
  void Grow(std::uint64_t end, const FileHandle* meta);

  void Close();
  // In a fork child (Cache::Impl's fork handler): the parent thread that may
  // have held grow_mu_ (growing, or extending its mapping) does not exist
  // here. The descriptor carries no lock (GROW is taken on NAME.meta's).
  void ResetAfterFork() { grow_mu_.ResetAfterFork(); }
  // Where growth is logged (info); null = nowhere.
  void set_logger(spdlog::logger* logger) { logger_ = logger; }

 private:
  Env* env_ = nullptr;
  FileHandle file_;
  Mapping map_;
  Mutex grow_mu_;  // serializes growth and mapping extension in this process
  bool truncated_ = false;
  std::uint64_t file_size_ = 0;
  spdlog::logger* logger_ = nullptr;
};

}  // namespace lilcache
