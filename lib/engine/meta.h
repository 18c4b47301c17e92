// meta: NAME.meta, the one file of a cache that is never replaced. It holds
// the shared coordination state (live generation, sequence counter, purge
// mark, the writer-pause flag), the lock bytes, and one slot per process
// (docs/format.md, "NAME.meta"; the layout is format/meta_header.h).
//
// Concurrency: the header and slots are shared by every process; all mutable
// fields are accessed through Shared() (atomic_ref) with the order stated at
// each access. A Meta object itself is owned by one Cache handle; its
// methods are thread-safe except Create/Open/Close.
//
// fork(): the descriptor file() carries this process's OFD locks (its SLOT
// lock, and INIT, GROW or COMPACT while some thread holds them). A Meta is a
// ForkHook (lib/fork.h): in a fork child it closes its copy of that
// descriptor and forgets its slot lock, without unlocking anything, so that
// the child can neither drop the parent's locks nor keep them alive after the
// parent dies. The mapping stays (it is made through another description,
// which carries no lock): header() and slot() remain readable in the child,
// but the locking methods are not usable there; the Cache opens a new Meta.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/file_lock.h"
#include "engine/fork.h"
#include "engine/mapping.h"
#include "format/meta_header.h"

namespace lilcache {

class Env;

class Meta final : public ForkHook {
 public:
  Meta() = default;
  Meta(const Meta&) = delete;
  Meta& operator=(const Meta&) = delete;
  ~Meta();

  // Opens (or, with `create`, creates zero-filled and sized) NAME.meta and
  // maps it. Does not validate the header: the caller does that under the
  // INIT lock. Without `create`, a missing file is an Error "no such cache".
  // Called once per Meta.
  void Open(Env* env, const std::string& path, bool create);
  // True if the file was just created (all zero): the caller initializes it.
  bool IsBlank() const;
  // Writes a fresh header (generation 1). Caller holds the INIT lock.
  void Initialize(std::uint64_t salt, std::uint64_t now_ms, const std::string& boot_id);
  void SetBootId(const std::string& boot_id);
  bool BootIdIs(const std::string& boot_id) const;
  // Throws Error naming the file if it is not a lilcache meta file of our
  // version, or its values are impossible (CheckMetaHeader).
  void Validate() const;
  // Draws the next sequence number from next_seq (set, pop, erase, purge).
  // The one rule of the range: every seq is in 1..record::kMaxSeq, so next_seq
  // never passes kMaxSeq + 1, which is also the bound Validate() accepts at
  // open. When the range is used up, throws Error and leaves next_seq as it
  // is: the cache stays readable and reopens.
  std::uint64_t DrawSeq();

  MetaHeader& header() const { return *reinterpret_cast<MetaHeader*>(map_.data()); }
  ProcessSlot& slot(std::size_t i) const {
    return *reinterpret_cast<ProcessSlot*>(map_.data() + ProcessSlotOffset(i));
  }
  const FileHandle& file() const { return file_; }
  const std::string& path() const { return file_.path(); }
  Env* env() const { return env_; }

  // Claims the first free process slot: takes its SLOT lock (held until
  // Close), folds a dead predecessor's counters into retired_*, and resets
  // it. Throws Error if all kMaxProcesses slots are in use.
  std::size_t ClaimSlot(std::uint64_t pid);
  // True if some other open file description holds a process-slot lock.
  bool OthersAlive() const;
  // True if the process owning slot i is alive (holds its SLOT lock).
  bool SlotAlive(std::size_t i) const;

  // msync(MS_SYNC) of the whole file: makes the generation number durable.
  void Sync();
  // Releases the slot lock (if this process claimed it), unmaps, closes. In
  // a fork child, after AfterForkInChild(), only unmaps: nothing is unlocked.
  void Close();

  // ForkHook: in the child, closes the locking descriptor (close(2), not the
  // Env: see fork.h) and forgets the slot lock. The parent's description and
  // its locks stay the parent's.
  void AfterForkInChild() override;

 private:
  Env* env_ = nullptr;
  FileHandle file_;  // carries the OFD locks; changed under ForkMutex()
  Mapping map_;      // made through a descriptor of its own, closed at once
  FileLock slot_lock_;
  bool registered_ = false;  // a ForkHook; guarded by ForkMutex()
};

}  // namespace lilcache
