#include "engine/data_file.h"

#include <fcntl.h>
#include <sys/vfs.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "engine/meta.h"
#include "format/shared_atomic.h"
#include "lilcache/env.h"
#include "lilcache/lilcache.h"

namespace lilcache {
namespace {

std::uint64_t RoundUp(std::uint64_t n, std::uint64_t q) { return (n + q - 1) / q * q; }

[[noreturn]] void ThrowCannotAllocate(const std::string& what, const std::string& path) {
  if (errno == EOPNOTSUPP) {
    throw Error(ErrorCode::unsupported,
                what + " " + path + ": " + std::strerror(EOPNOTSUPP) +
                    " (its file system cannot allocate space with fallocate(2); lilcache needs a "
                    "local file system that can, such as ext4, xfs, btrfs or tmpfs)");
  }
  ThrowErrno(what, path);
}

// statfs f_type of the network file systems refused at open (linux/magic.h).
const char* NetworkFileSystem(std::uint64_t type) {
  switch (type) {
    case 0x6969:
      return "NFS";
    case 0x517B:
      return "SMB";
    case 0xFF534D42:
      return "CIFS";
    case 0xFE534D42:
      return "SMB2";
    case 0x01021997:
      return "9p";
    case 0x00c36400:
      return "Ceph";
    case 0x5346414F:
    case 0x6B414653:
      return "AFS";
    case 0x73757245:
      return "Coda";
    default:
      return nullptr;
  }
}

}  // namespace

void AllocateRange(Env* env, const FileHandle& file, std::uint64_t offset, std::uint64_t length,
                   const std::string& what) {
  if (env->Fallocate(file.fd(), static_cast<off_t>(offset), static_cast<off_t>(length)) != 0) {
    ThrowCannotAllocate(what, file.path());
  }
}

void CheckFileSystem(Env* env, const FileHandle& file, bool probe) {
  struct statfs st = {};
  if (env->Fstatfs(file.fd(), &st) != 0) ThrowErrno("fstatfs", file.path());
  if (const char* fs = NetworkFileSystem(static_cast<std::uint64_t>(st.f_type))) {
    throw Error(ErrorCode::unsupported,
                "refusing to open " + file.path() + ": it is on a network file system (" + fs +
                    "), whose shared memory maps and byte-range locks do not work between "
                    "machines; put the cache's root on a local file system");
  }
  if (probe) AllocateRange(env, file, 0, kHeaderSize, "cannot allocate");
}

void DataFile::Create(Env* env, const std::string& path, std::uint64_t generation,
                      std::uint64_t salt, std::uint64_t capacity, std::uint64_t now_ms) {
  env_ = env;
  capacity = std::max<std::uint64_t>(RoundUp(capacity, kGrowQuantum), kGrowQuantum);
  // New means new: a leftover of a crashed creator or compactor is removed,
  // and O_EXCL never truncates or writes through a file put there meanwhile.
  env->Unlink(path.c_str());
  file_ = FileHandle::Open(env, path, O_RDWR | O_CREAT | O_EXCL);
  AllocateRange(env, file_, 0, capacity, "cannot allocate");
  map_.Map(env, file_.fd(), path, capacity, kMaxDataBytes);
  file_size_ = capacity;
  DataHeader& h = header();
  h.version = kDataVersion;
  h.header_size = kHeaderSize;
  h.generation = generation;
  h.salt = salt;
  h.created_ms = now_ms;
  h.tail = kFirstRecordOffset;
  h.capacity = capacity;
  h.dead_bytes = 0;
  h.verified_upto = kFirstRecordOffset;
  std::memcpy(h.magic, kDataMagic, 8);
}

void DataFile::Open(Env* env, const std::string& path, std::uint64_t generation,
                    std::uint64_t salt) {
  env_ = env;
  file_ = FileHandle::Open(env, path, O_RDWR);
  auto size = static_cast<std::uint64_t>(file_.Size());
  file_size_ = size;
  // A file cut mid-page maps its last partial page too (bytes past the end
  // read as zero); nothing past file_size_ is touched until the file is repaired.
  map_.Map(env, file_.fd(), path, RoundUpToPage(size), kMaxDataBytes);
  CheckDataHeader({map_.data(), std::min<std::uint64_t>(size, kHeaderSize)}, generation, salt)
      .ThrowIfBad(path);
  // Acquire: pairs with the release store of a grower.
  std::uint64_t cap = Shared(header().capacity).load(std::memory_order_acquire);
  std::uint64_t tail = Shared(header().tail).load(std::memory_order_acquire);
  std::uint64_t verified = Shared(header().verified_upto).load(std::memory_order_relaxed);
  // Records start at multiples of 8 between the header and the tail: a header
  // saying otherwise is corrupt, and appending at its tail would misplace
  // every record after it.
  truncated_ = size < cap || cap < kHeaderSize || tail > std::max(cap, size) ||
               tail < kFirstRecordOffset || tail % record::kAlign != 0 || verified > tail ||
               verified % record::kAlign != 0;
}

std::uint64_t DataFile::Reserve(std::uint64_t len, const FileHandle* meta) {
  DataHeader& h = header();
  auto tail = Shared(h.tail);
  // Only space inside the capacity is reserved: a record that does not fit
  // grows the file first (under the GROW lock) and tries again, so a growth
  // that fails (a full disk, kMaxDataBytes) leaves the tail where it was and
  // the next write that fits succeeds. (Reserving first and growing after
  // left the tail past the end of the file for good when the growth failed.)
  // Relaxed: a first guess, which the compare-and-swap checks.
  std::uint64_t off = tail.load(std::memory_order_relaxed);
  for (;;) {
    const std::uint64_t end = off + len;
    // Acquire: pairs with the grower's release store; the file is allocated
    // up to any capacity we read.
    if (end > Shared(h.capacity).load(std::memory_order_acquire)) {
      Grow(end, meta);  // throws Error, and nothing was reserved
      off = tail.load(std::memory_order_relaxed);
      continue;
    }
    // seq_cst on success: a compactor reads `tail` and then the writers'
    // in-flight counters; the writer bumped its counter (seq_cst) before
    // this, and the single total order of seq_cst operations makes a record
    // reserved before the compactor's read visible to it as an in-flight
    // writer (docs/concurrency.md, "Generation switch"). The successful CAS
    // is one read-modify-write in that order, as the fetch_add it replaces
    // was; a failed one reserves nothing (relaxed: `off` is a new guess).
    if (tail.compare_exchange_weak(off, end, std::memory_order_seq_cst,
                                   std::memory_order_relaxed)) {
      break;
    }
  }
  EnsureMapped(off + len);
  return off;
}

void DataFile::Grow(std::uint64_t end, const FileHandle* meta) {
  if (end > kMaxDataBytes) {
    throw Error(ErrorCode::limit, "log " + path() + " is full: a generation holds at most " +
                                      std::to_string(kMaxDataBytes) +
                                      " bytes (compaction reclaims dead space)");
  }
  MutexLock in_process(&grow_mu_);
  FileLock lock;
  if (meta != nullptr) lock = FileLock::Acquire(env_, *meta, kGrowLockByte);
  DataHeader& h = header();
  std::uint64_t cap = Shared(h.capacity).load(std::memory_order_acquire);
  if (end <= cap) return;  // another thread or process grew it meanwhile
  std::uint64_t step = std::clamp<std::uint64_t>(cap, kGrowQuantum, kMaxGrowStep);
  std::uint64_t target = std::min(RoundUp(std::max(end, cap + step), kGrowQuantum), kMaxDataBytes);
  // Only the new range: the old one is allocated, and may be written by
  // other processes through their mappings right now.
  if (env_->Fallocate(file_.fd(), static_cast<off_t>(cap), static_cast<off_t>(target - cap)) != 0) {
    int e = errno;
    if (logger_ != nullptr)
      logger_->error("cannot grow {} to {} bytes: {}", path(), target, std::strerror(e));
    errno = e;
    ThrowCannotAllocate("cannot grow log to " + std::to_string(target) + " bytes:", path());
  }
  // Release: a process that reads the new capacity may map up to it; the
  // allocation above happened before (and under the GROW lock, so no other
  // grower can store a smaller value after us).
  Shared(h.capacity).store(target, std::memory_order_release);
  if (logger_ != nullptr) logger_->info("grew {} from {} to {} bytes", path(), cap, target);
}

void DataFile::EnsureMapped(std::uint64_t end) {
  if (end <= map_.size()) return;
  MutexLock in_process(&grow_mu_);
  if (end <= map_.size()) return;
  std::uint64_t cap = Shared(header().capacity).load(std::memory_order_acquire);
  if (end > cap) {
    throw Error(ErrorCode::corrupt, "corrupt cache: offset " + std::to_string(end) +
                                        " lies beyond the end of " + path() + " (" +
                                        std::to_string(cap) + " bytes)");
  }
  map_.Extend(cap);
}

void DataFile::Close() {
  map_.Unmap();
  file_.Reset();
}

}  // namespace lilcache
