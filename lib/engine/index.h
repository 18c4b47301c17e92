// index: one generation's shared hash index, NAME.G.index (docs/format.md;
// the layout is format/index_header.h).
// Open addressing with linear probing over 8-byte slots, each 0 (empty) or
// tag<<40 | offset/8, any multiple of 512 of them (a key's home is
// IndexHome: multiply-shift, no power of two needed). A slot, once claimed by a key, stays that
// key's for the life of the generation (deletes point it at a tombstone record), so chains are
// never broken and lookups need no lock.
//
// Concurrency: lock-free. Slots are read with acquire loads and changed only
// by compare-exchange (acq_rel), so a reader that sees a slot also sees the
// record bytes written before it was published. The rule that a slot only
// moves to a record with a higher seq is enforced by the callers (Cache::Impl,
// Compactor), which know the records.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "engine/file_lock.h"
#include "engine/mapping.h"
#include "format/index_header.h"
#include "format/shared_atomic.h"

namespace spdlog {
class logger;
}

namespace lilcache {

class Env;

// Debug builds (no NDEBUG): called after every successful move of a slot
// from one record to another (SetIn's and PopIn's CAS, the compactor's
// Install), with the seqs of the record replaced and the record installed.
// Unless installed > replaced, logs "index invariant violated" at error
// level (with `where` and the key) and aborts: the rule of
// docs/concurrency.md, "The one invariant", was broken, and a replay of the
// log would no longer agree with the index. Release builds: nothing.
#ifdef NDEBUG
inline void CheckSlotMove(spdlog::logger&, const char*, std::string_view, std::uint64_t,
                          std::uint64_t) {}
#else
void CheckSlotMove(spdlog::logger& logger, const char* where, std::string_view key,
                   std::uint64_t replaced_seq, std::uint64_t installed_seq);
#endif

class Index {
 public:
  Index() = default;
  Index(const Index&) = delete;
  Index& operator=(const Index&) = delete;

  static std::uint64_t Pack(std::uint64_t hash, std::uint64_t offset) {
    return PackSlot(hash, offset);
  }
  static std::uint64_t OffsetOf(std::uint64_t slot) { return SlotOffset(slot); }
  static bool TagMatches(std::uint64_t slot, std::uint64_t hash) {
    return SlotTagMatches(slot, hash);
  }
  // The load an index is sized for: SlotsFor(k) slots hold k keys at most
  // this full (docs/format.md, "Sizing"): 14.5 bytes per key.
  static constexpr double kSizingLoad = 0.55;
  // Slots needed to hold `keys` keys at a load of at most kSizingLoad: a
  // multiple of kSlotsPerPage, at least kMinSlots. Throws Error (limit)
  // above kMaxSlots.
  static std::uint64_t SlotsFor(std::uint64_t keys);
  // Whether a generation's index is full enough to grow: more than 3/4 of
  // its slots claimed. The growth is a compaction whose new index has at
  // least GrownSlots(slots).
  static bool NeedsGrowth(std::uint64_t used, std::uint64_t slots) { return used * 4 > slots * 3; }
  // The least size of an index grown from one of `slots` slots: 1.45 times
  // as many, in whole pages (rounded down; more than 4/3 as many, rounded
  // up, for small ones; at most kMaxSlots). Not SlotsFor(live keys): keys keep arriving while the
  // growth compaction copies (up to `slots` of them: the old index takes no
  // more), and an index sized for those it counted at the start would be
  // crowded again at once. 1.45: a grown index is at least 0.75 / 1.45 =
  // 0.52 full (at most 15.5 B per key) and, even if the old one filled up
  // meanwhile, at most 1 / 1.45 = 0.69 full: below NeedsGrowth, and below
  // TooFullToBuild during the catch-up.
  static std::uint64_t GrownSlots(std::uint64_t slots);
  // Whether an index being built by a compaction is too full to finish
  // (builder.h, NewIndexFull): more than 4/5 of its slots claimed. Above
  // NeedsGrowth's 3/4, so that a compaction that had to take in more keys
  // than it was sized for still finishes, and the next one grows.
  static bool TooFullToBuild(std::uint64_t used, std::uint64_t slots) {
    return used * 5 > slots * 4;
  }

  void Create(Env* env, const std::string& path, std::uint64_t generation,
              std::uint64_t slot_count);
  // Opens an index and checks its header (CheckIndexHeader: throws Error
  // naming the file).
  void Open(Env* env, const std::string& path, std::uint64_t generation);
  // A read-only view of an index that someone else mapped (the inspector's
  // PROT_READ mapping): `file` is the whole file, whose header
  // CheckIndexHeader found readable. Only Find(), slot_count() and loads of
  // slot() may be used; header() and used() may not, nor Claim(). The view
  // is valid while the mapping is; Close() forgets it.
  void OpenView(std::span<const char> file);
  void Close();

  const std::string& path() const { return file_.path(); }
  const FileHandle& file() const { return file_; }
  IndexHeader& header() const { return *reinterpret_cast<IndexHeader*>(map_.data()); }
  std::uint64_t slot_count() const { return n_; }
  // Slots claimed so far (a heuristic: when to grow, how big a compaction's
  // index must be). Never more than slot_count(), even if a damaged file says
  // so: a compaction rebuilds the counter from the slots it copies.
  std::uint64_t used() const {
    return std::min(Shared(header().used_slots).load(std::memory_order_relaxed), slot_count());
  }
  // Slot i, to load (acquire) or compare-exchange (acq_rel).
  std::atomic_ref<std::uint64_t> slot(std::uint64_t i) const { return Shared(slots_[i]); }

  struct Probe {
    std::uint64_t pos = 0;    // slot holding the key, or the empty slot ending its chain
    std::uint64_t value = 0;  // that slot's value when read (0 = empty: key absent)
    bool full = false;        // every slot was probed: the table is full
  };

  // Walks the chain of `hash`. key_matches(offset) says whether the record at
  // that offset holds the key being looked for.
  template <typename KeyMatches>
  Probe Find(std::uint64_t hash, KeyMatches&& key_matches) const {
    Probe p;
    p.pos = IndexHome(hash, n_);
    for (std::uint64_t k = 0; k < n_; ++k) {
      // Acquire: pairs with the acq_rel CAS that published the slot, so the
      // record it points to is fully visible.
      p.value = slot(p.pos).load(std::memory_order_acquire);
      if (p.value == 0) return p;
      if (TagMatches(p.value, hash) && key_matches(OffsetOf(p.value))) return p;
      if (++p.pos == n_) p.pos = 0;  // wrap: n_ need not be a power of two
    }
    p.full = true;
    p.value = 0;
    return p;
  }

  // Claims the empty slot `pos` for a new key: CAS 0 -> value. On failure
  // (another writer claimed it first) returns false with *seen updated.
  bool Claim(std::uint64_t pos, std::uint64_t value, std::uint64_t* seen) const;

 private:
  Env* env_ = nullptr;
  FileHandle file_;
  Mapping map_;
  std::uint64_t* slots_ = nullptr;
  std::uint64_t n_ = 0;  // slot_count
};

}  // namespace lilcache
