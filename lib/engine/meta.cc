#include "engine/meta.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>

#include "engine/data_file.h"
#include "format/record.h"
#include "format/shared_atomic.h"
#include "lilcache/env.h"
#include "lilcache/lilcache.h"

namespace lilcache {

Meta::~Meta() { Close(); }

void Meta::Open(Env* env, const std::string& path, bool create) {
  env_ = env;
  if (!create) {
    int fd = env->Open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0);
    if (fd < 0 && errno == ENOENT) {
      throw Error(ErrorCode::no_such_cache, "no such cache (" + path + " does not exist)");
    }
    if (fd >= 0) env->Close(fd);
  }
  // Under ForkMutex(): a fork sees either no descriptor or a registered Meta
  // that the child handler closes (an unregistered copy would carry the
  // locks this process takes later into the child).
  MutexLock fork_lock(&ForkMutex());
  file_ = FileHandle::Open(env, path, O_RDWR | (create ? O_CREAT : 0));
  RegisterForkHookLocked(this);
  registered_ = true;
  off_t size = file_.Size();
  if (size == 0) {
    // Growing a zero-length file is idempotent, so racing creators are fine;
    // the header is written later under the INIT lock.
    CheckFileSystem(env, file_, /*probe=*/false);  // the allocation below probes
    AllocateRange(env, file_, 0, kMetaFileSize, "cannot allocate");
  } else if (HeaderVerdict v = CheckMetaSize(static_cast<std::uint64_t>(size)); !v.ok()) {
    v.ThrowIfBad(path);
  } else {
    // A cache moved onto a network file system or one without fallocate(2)
    // is refused here, not at its first growth. (Its header page is written,
    // so the probe needs no free space: reads never do.)
    CheckFileSystem(env, file_, /*probe=*/true);
  }
  // Mapped through a description of its own, closed once mapped: a mapping
  // holds its description, and with it that description's OFD locks. Mapped
  // through file_, the mapping a fork child inherits would keep the parent's
  // locks alive after the parent died (fork.h). The file never grows, so the
  // Mapping never uses the descriptor again.
  FileHandle for_map = FileHandle::Open(env, path, O_RDWR);
  map_.Map(env, for_map.fd(), path, kMetaFileSize, RoundUpToPage(kMetaFileSize + 1));
}

bool Meta::IsBlank() const {
  const MetaHeader& h = header();
  static const char zeros[8] = {};
  return std::memcmp(h.magic, zeros, 8) == 0 && h.version == 0;
}

void Meta::SetBootId(const std::string& boot_id) {
  MetaHeader& h = header();
  std::memset(h.boot_id, 0, sizeof(h.boot_id));
  std::memcpy(h.boot_id, boot_id.data(), std::min(boot_id.size(), sizeof(h.boot_id) - 1));
}

bool Meta::BootIdIs(const std::string& boot_id) const {
  const MetaHeader& h = header();
  return std::string_view(h.boot_id, strnlen(h.boot_id, sizeof(h.boot_id))) == boot_id;
}

void Meta::Initialize(std::uint64_t salt, std::uint64_t now_ms, const std::string& boot_id) {
  SetBootId(boot_id);
  MetaHeader& h = header();
  h.version = kMetaVersion;
  h.header_size = kHeaderSize;
  h.salt = salt;
  h.created_ms = now_ms;
  // Plain stores: every other opener waits for the INIT lock we hold, and the
  // lock (a system call) orders these stores before their loads.
  h.generation = 1;
  h.next_seq = 1;
  h.purge_seq = 0;
  // The magic last: a crash before this leaves a blank file, initialized again.
  std::memcpy(h.magic, kMetaMagic, 8);
}

void Meta::Validate() const { CheckMetaHeader({map_.data(), kMetaFileSize}).ThrowIfBad(path()); }

std::uint64_t Meta::DrawSeq() {
  auto next = Shared(header().next_seq);
  // Relaxed: only a first guess; the CAS below validates it.
  std::uint64_t s = next.load(std::memory_order_relaxed);
  do {
    if (s == 0 || s > record::kMaxSeq) {
      throw Error(ErrorCode::limit,
                  "the sequence numbers of " + path() + " are used up (next " + std::to_string(s) +
                      ", the last one is 2^63 - 1): the cache can be read but not written; " +
                      "delete it and create it again");
    }
    // seq_cst on success, as the fetch_add this replaces: seqs order records,
    // a slot only moves to a higher seq, and the linearization argument
    // (docs/concurrency.md) needs a seq to be drawn after its writer began.
    // A successful CAS is one read-modify-write in the single total order,
    // like fetch_add. Relaxed on failure: s is only a new guess.
  } while (
      !next.compare_exchange_weak(s, s + 1, std::memory_order_seq_cst, std::memory_order_relaxed));
  return s;
}

std::size_t Meta::ClaimSlot(std::uint64_t pid) {
  MetaHeader& h = header();
  for (std::size_t i = 0; i < kMaxProcesses; ++i) {
    FileLock lock = FileLock::TryAcquire(env_, file_, SlotLockByte(i));
    if (!lock.held()) continue;
    ProcessSlot& s = slot(i);
    // The previous owner is dead (its lock is gone): keep its counters. Relaxed:
    // counters are statistics, summed by whoever asks.
    const auto retire = [](std::uint64_t& from, std::uint64_t& into) {
      Shared(into).fetch_add(Shared(from).exchange(0, std::memory_order_relaxed),
                             std::memory_order_relaxed);
    };
    retire(s.hits, h.retired_hits);
    retire(s.misses, h.retired_misses);
    retire(s.sets, h.retired_sets);
    retire(s.deletes, h.retired_deletes);
    retire(s.expired, h.retired_expired);
    // A dead writer may have left its in-flight counts up; nobody else writes
    // this slot now. seq_cst: compactors read these in their drain protocol.
    Shared(s.inflight[0]).store(0, std::memory_order_seq_cst);
    Shared(s.inflight[1]).store(0, std::memory_order_seq_cst);
    s.pid = pid;
    slot_lock_ = std::move(lock);
    return i;
  }
  throw Error(ErrorCode::busy, "too many processes have " + path() + " open (limit " +
                                   std::to_string(kMaxProcesses) + ")");
}

bool Meta::OthersAlive() const {
  int r =
      env_->IsLocked(file_.fd(), SlotLockByte(0), static_cast<off_t>(kMaxProcesses * kSlotSize));
  if (r < 0) ThrowErrno("cannot test locks of", path());
  return r == 1;
}

bool Meta::SlotAlive(std::size_t i) const {
  int r = env_->IsLocked(file_.fd(), SlotLockByte(i), 1);
  if (r < 0) ThrowErrno("cannot test locks of", path());
  return r == 1;
}

void Meta::Sync() {
  if (env_->Msync(map_.data(), kMetaFileSize, MS_SYNC) != 0) ThrowErrno("msync", path());
}

void Meta::Close() {
  MutexLock fork_lock(&ForkMutex());
  slot_lock_.Release();
  map_.Unmap();
  file_.Reset();
  if (registered_) UnregisterForkHookLocked(this);
  registered_ = false;
}

void Meta::AfterForkInChild() {
  // The child's only thread; the parent's threads that held INIT, GROW or
  // COMPACT on this descriptor do not exist here, and their FileLocks are
  // never destroyed. Closing our copy of the descriptor drops no lock: the
  // parent still holds the description. Unlocking would drop the parent's.
  slot_lock_.Forget();
  int fd = file_.Detach();
  if (fd >= 0) ::close(fd);
}

}  // namespace lilcache
