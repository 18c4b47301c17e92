#include "data_file.h"

#include <fcntl.h>

#include <algorithm>
#include <cstring>

#include "lilcache/env.h"
#include "lilcache/lilcache.h"
#include "meta.h"
#include "shared_atomic.h"

namespace lilcache {
namespace {

std::uint64_t RoundUp(std::uint64_t n, std::uint64_t q) { return (n + q - 1) / q * q; }

}  // namespace

void DataFile::Create(Env* env, const std::string& path, std::uint64_t generation,
                      std::uint64_t salt, std::uint64_t capacity, std::uint64_t now_ms) {
  env_ = env;
  capacity = std::max<std::uint64_t>(RoundUp(capacity, kGrowQuantum), kGrowQuantum);
  // New means new: a leftover of a crashed creator or compactor is removed,
  // and O_EXCL never truncates or writes through a file put there meanwhile.
  env->Unlink(path.c_str());
  file_ = FileHandle::Open(env, path, O_RDWR | O_CREAT | O_EXCL);
  if (env->Fallocate(file_.fd(), 0, static_cast<off_t>(capacity)) != 0) {
    ThrowErrno("cannot allocate", path);
  }
  map_.Map(env, file_.fd(), path, capacity, kMaxDataBytes);
  file_size_ = capacity;
  DataHeader& h = header();
  h.version = kFormatVersion;
  h.header_size = kHeaderSize;
  h.generation = generation;
  h.salt = salt;
  h.created_ms = now_ms;
  h.tail = kHeaderSize;
  h.capacity = capacity;
  h.dead_bytes = 0;
  h.verified_upto = kHeaderSize;
  std::memcpy(h.magic, kDataMagic, 8);
}

void DataFile::Open(Env* env, const std::string& path, std::uint64_t generation,
                    std::uint64_t salt) {
  env_ = env;
  file_ = FileHandle::Open(env, path, O_RDWR);
  auto size = static_cast<std::uint64_t>(file_.Size());
  if (size < kHeaderSize) {
    throw Error("corrupt log " + path + ": " + std::to_string(size) +
                " bytes, shorter than its header");
  }
  file_size_ = size;
  // A file cut mid-page maps its last partial page too (bytes past the end
  // read as zero); nothing past file_size_ is touched until the file is repaired.
  map_.Map(env, file_.fd(), path, RoundUp(size, 4096), kMaxDataBytes);
  const DataHeader& h = header();
  if (std::memcmp(h.magic, kDataMagic, 8) != 0) {
    throw Error("not a lilcache log: " + path + " has a bad magic number");
  }
  if (h.version != kFormatVersion) {
    throw Error("unsupported format version " + std::to_string(h.version) + " in " + path);
  }
  if (h.generation != generation) {
    throw Error("corrupt log " + path + ": it says generation " + std::to_string(h.generation) +
                ", its name says " + std::to_string(generation));
  }
  if (h.salt != salt) throw Error("corrupt log " + path + ": salt does not match its meta file");
  // Acquire: pairs with the release store of a grower.
  std::uint64_t cap = Shared(header().capacity).load(std::memory_order_acquire);
  std::uint64_t tail = Shared(header().tail).load(std::memory_order_acquire);
  std::uint64_t verified = Shared(header().verified_upto).load(std::memory_order_relaxed);
  // Records start at multiples of 8 between the header and the tail: a header
  // saying otherwise is corrupt, and appending at its tail would misplace
  // every record after it.
  truncated_ = size < cap || cap < kHeaderSize || tail > std::max(cap, size) ||
               tail < kHeaderSize || tail % log::kAlign != 0 || verified > tail ||
               verified % log::kAlign != 0;
}

std::uint64_t DataFile::Reserve(std::uint64_t len, const FileHandle* meta) {
  DataHeader& h = header();
  // seq_cst: a compactor reads `tail` and then the writers' entered counters;
  // the writer bumped `entered` before this, and the total order of seq_cst
  // operations makes a record reserved before the compactor's read visible as
  // an in-flight writer to it (docs/concurrency.md, "Generation switch").
  std::uint64_t off = Shared(h.tail).fetch_add(len, std::memory_order_seq_cst);
  std::uint64_t end = off + len;
  if (end > Shared(h.capacity).load(std::memory_order_acquire)) Grow(end, meta);
  EnsureMapped(end);
  return off;
}

void DataFile::Grow(std::uint64_t end, const FileHandle* meta) {
  if (end > kMaxDataBytes) {
    throw Error("log " + path() + " is full: a generation holds at most " +
                std::to_string(kMaxDataBytes) + " bytes (compaction reclaims dead space)");
  }
  std::lock_guard<std::mutex> in_process(grow_mu_);
  FileLock lock;
  if (meta != nullptr) lock = FileLock::Acquire(env_, *meta, kGrowLockByte);
  DataHeader& h = header();
  std::uint64_t cap = Shared(h.capacity).load(std::memory_order_acquire);
  if (end <= cap) return;  // another thread or process grew it meanwhile
  std::uint64_t step = std::clamp<std::uint64_t>(cap, kGrowQuantum, kMaxGrowStep);
  std::uint64_t target = std::min(RoundUp(std::max(end, cap + step), kGrowQuantum), kMaxDataBytes);
  if (env_->Fallocate(file_.fd(), 0, static_cast<off_t>(target)) != 0) {
    int e = errno;
    if (logger_ != nullptr) logger_->error("cannot grow {} to {} bytes: {}", path(), target, std::strerror(e));
    errno = e;
    ThrowErrno("cannot grow log to " + std::to_string(target) + " bytes:", path());
  }
  // Release: a process that reads the new capacity may map up to it; the
  // allocation above happened before (and under the GROW lock, so no other
  // grower can store a smaller value after us).
  Shared(h.capacity).store(target, std::memory_order_release);
  if (logger_ != nullptr) logger_->info("grew {} from {} to {} bytes", path(), cap, target);
}

void DataFile::EnsureMapped(std::uint64_t end) {
  if (end <= map_.size()) return;
  std::lock_guard<std::mutex> in_process(grow_mu_);
  if (end <= map_.size()) return;
  std::uint64_t cap = Shared(header().capacity).load(std::memory_order_acquire);
  if (end > cap) {
    throw Error("corrupt cache: offset " + std::to_string(end) + " lies beyond the end of " +
                path() + " (" + std::to_string(cap) + " bytes)");
  }
  map_.Extend(cap);
}

void DataFile::Close() {
  map_.Unmap();
  file_.Reset();
}

}  // namespace lilcache
