#include "engine/recovery.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <roaring/roaring64map.hh>
#include <string_view>
#include <unordered_map>

#include "engine/builder.h"
#include "engine/trust.h"
#include "format/shared_atomic.h"
#include "lilcache/env.h"

namespace lilcache {
namespace {

// The newest valid record of each key in a data file (the whole file, not just to
// its recorded tail: after a power loss the header may be older than the
// records). Keys are views into the mapped file.
struct DataScan {
  std::unordered_map<std::string_view, std::uint64_t> latest;  // key -> offset
  std::uint64_t max_seq = 0;
  std::uint64_t records = 0;
  std::uint64_t damaged = 0;  // damaged regions skipped
};

record::RecordView RecordAt(const DataFile& d, std::uint64_t off) {
  record::RecordView r;
  r.header = reinterpret_cast<const record::RecordHeader*>(d.base() + off);
  return r;
}

DataScan ScanDataFile(DataFile& d, std::uint64_t salt) {
  DataScan s;
  const std::uint64_t end = d.file_size();
  std::span<const char> region(d.base(), end);
  s.damaged = record::ForEachValidRecord(region, kHeaderSize, end, salt,
                                         [&](std::uint64_t off, record::RecordView r) {
                                           ++s.records;
                                           s.max_seq = std::max(s.max_seq, r.seq());
                                           // A conditional write that lost its race
                                           // (docs/format.md, "Record").
                                           if (r.is_aborted()) return;
                                           auto [it, fresh] = s.latest.try_emplace(r.key(), off);
                                           if (!fresh && RecordAt(d, it->second).seq() < r.seq()) {
                                             it->second = off;
                                           }
                                         });
  return s;
}

// The records the index publishes, each checked (inside the data file, a valid
// record, of the key the slot's tag says). False if any is not: the index
// cannot be trusted and the caller replays the data file instead.
bool PublishedRecords(Generation& g, Roaring64Map* out) {
  const std::uint64_t tail = Shared(g.data.header().tail).load(std::memory_order_relaxed);
  std::span<const char> region = g.data.Region(std::min(tail, g.data.mapped()));
  for (std::uint64_t i = 0; i < g.index.slot_count(); ++i) {
    std::uint64_t v = g.index.slot(i).load(std::memory_order_relaxed);
    if (v == 0) continue;
    std::uint64_t off = Index::OffsetOf(v);
    record::RecordView r;
    if (off < kHeaderSize ||
        record::CheckRecord(region, off, g.salt, &r) != record::Damage::kNone ||
        !Index::TagMatches(v, record::HashKey(r.key(), g.salt))) {
      return false;
    }
    out->add(off / record::kAlign);
  }
  return true;
}

// The previous generation's data file, when a power loss cut its compaction
// short (docs/concurrency.md, "Durability"): its newest record of a key wins
// where g has none or an older one (seqs are cache-wide). Returns those
// records (offsets / kAlign in `previous`) and removes the older ones of g
// from `candidates`.
Roaring64Map NewerInPrevious(const DataFile& data, const DataScan& scan, const DataFile& previous,
                             const DataScan& prev_scan, Roaring64Map& candidates) {
  Roaring64Map newer;
  for (const auto& [key, off] : prev_scan.latest) {
    auto it = scan.latest.find(key);
    if (it != scan.latest.end()) {
      if (RecordAt(data, it->second).seq() >= RecordAt(previous, off).seq()) continue;
      candidates.remove(it->second / record::kAlign);
    }
    newer.add(off / record::kAlign);
  }
  return newer;
}

// The records of `from` (offsets / kAlign in d) that a new generation keeps
// (VisibleForCopy at `now`); adds their size to *bytes.
Roaring64Map VisibleRecords(CacheCore& c, const DataFile& d, const Roaring64Map& from,
                            std::uint64_t now, std::uint64_t* bytes) {
  Roaring64Map live;
  for (std::uint64_t off8 : from) {
    record::RecordView r = RecordAt(d, off8 * record::kAlign);
    if (!VisibleForCopy(c, r, now)) continue;
    live.add(off8);
    *bytes += r.size();
  }
  return live;
}

}  // namespace

void Recovery::RecoverAlone() {
  Env* env = c_.env();
  auto& meta = c_.meta().header();
  // Nobody else is here: any pause is a dead compactor's.
  Shared(meta.writer_state).store(0, std::memory_order_seq_cst);
  std::uint64_t gen = Shared(meta.generation).load(std::memory_order_acquire);
  Generation g;
  g.number = gen;
  g.salt = c_.salt();
  // The data file first: it is the data. One that cannot be opened is an Error.
  g.data.Open(env, c_.paths().data(gen), gen, c_.salt());
  const std::string boot = env->BootId();
  bool index_trusted = false;
  const std::string why = WhyRebuild(g, boot, &index_trusted);
  if (why.empty()) {
    // The boot id matches (else `why` would say so): nothing to record.
    RemoveStrayFiles(c_, gen, /*live_durable=*/false);
    return;
  }
  DataFile previous;
  const bool have_previous = !c_.meta().BootIdIs(boot) && OpenPrevious(gen, previous);
  // The boot id is stored by Rebuild, with the rebuilt generation, once that
  // is durable: an opener killed before (a slow replay, Ctrl-C) leaves the
  // old one, and the next opener replays again instead of trusting an index
  // that the power loss left stale.
  Rebuild(g, why, index_trusted, boot, have_previous ? &previous : nullptr);
  previous.Close();
}

std::string Recovery::WhyRebuild(Generation& g, const std::string& boot, bool* index_trusted) {
  auto& meta = c_.meta().header();
  // The index is derived from the data file: one that cannot be opened or
  // validated (missing, too short, bad magic, wrong generation or slot
  // count) is a reason to replay the data file, never an unopenable cache.
  try {
    g.index.Open(c_.env(), c_.paths().index(g.number), g.number);
  } catch (const UntrustedFile&) {
    throw;  // another user's file, or one others can write: refused, not rebuilt over
  } catch (const Error& e) {
    return std::string("the index cannot be used (") + e.what() + ")";
  }
  if (!c_.meta().BootIdIs(boot)) return "first open since a reboot";
  if ((Shared(meta.flags).load(std::memory_order_relaxed) & kFlagNeedsRebuild) != 0) {
    return "a checksum error was reported";
  }
  if (g.data.truncated()) return "the log file is shorter than its header says (truncated)";
  // Only a damaged record of a process killed this boot leaves the index
  // trustworthy: the kernel kept every store to the shared mappings.
  auto& dh = g.data.header();
  const std::uint64_t tail = Shared(dh.tail).load(std::memory_order_relaxed);
  std::uint64_t off = Shared(dh.verified_upto).load(std::memory_order_relaxed);
  if (tail > g.data.mapped()) g.data.EnsureMapped(tail);
  std::span<const char> region = g.data.Region(tail);
  while (off < tail) {
    record::RecordView r;
    record::Damage d = record::CheckRecord(region, off, c_.salt(), &r);
    if (d != record::Damage::kNone) {
      *index_trusted = true;
      return std::string("damaged record (") + record::DamageName(d) + ") at offset " +
             std::to_string(off);
    }
    off += r.size();
  }
  Shared(dh.verified_upto).store(tail, std::memory_order_relaxed);
  return "";
}

bool Recovery::OpenPrevious(std::uint64_t gen, DataFile& previous) {
  // After a reboot, the previous generation's data file is replayed too if
  // it is still there: a compaction does not sync the last records it copies
  // before the meta page may name the new generation, and it unlinks the
  // old data file (durably) only once the new one is synced (docs/
  // concurrency.md, "Durability"). One that cannot be opened is left out.
  if (gen <= 1) return false;
  Env* env = c_.env();
  const std::string path = c_.paths().data(gen - 1);
  const int fd = env->Open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0);
  if (fd < 0 && errno != ENOENT) ThrowErrno("cannot open", path);  // it may be needed
  if (fd < 0) return false;
  env->Close(fd);
  try {
    previous.Open(env, path, gen - 1, c_.salt());
    return true;
  } catch (const Error& e) {
    c_.logger().warn("recovery: leaving out the previous generation's log: {}", e.what());
    return false;
  }
}

// Writes generation g+1 holding the live records of g: those its index
// publishes when `index_trusted` (a record a killed writer wrote but never
// published must not take effect), else the newest valid record of each key
// in the data file (replay).
void Recovery::Rebuild(Generation& g, const std::string& why, bool index_trusted,
                       const std::string& boot, DataFile* previous) {
  Env* env = c_.env();
  DataScan scan = ScanDataFile(g.data, g.salt);
  Roaring64Map candidates;
  if (index_trusted && !PublishedRecords(g, &candidates)) {
    c_.logger().warn("recovery: the index of {} points at a damaged record; replaying the log",
                     g.data.path());
    candidates.clear();
    index_trusted = false;
  }
  c_.logger().warn("recovering {}: {}; rebuilding from the {}", g.data.path(), why,
                   index_trusted ? "index" : "log");
  std::uint64_t unpublished = 0;
  if (index_trusted) {
    for (std::uint64_t off8 : candidates) {
      record::RecordView r = g.Record(off8 * record::kAlign);
      auto it = scan.latest.find(r.key());
      if (it != scan.latest.end() && it->second != off8 * record::kAlign) ++unpublished;
    }
  } else {
    for (const auto& [key, off] : scan.latest) candidates.add(off / record::kAlign);
  }
  DataScan prev_scan;
  Roaring64Map prev_candidates;
  if (previous != nullptr && !index_trusted) {
    prev_scan = ScanDataFile(*previous, g.salt);
    prev_candidates = NewerInPrevious(g.data, scan, *previous, prev_scan, candidates);
  }
  std::uint64_t bytes = 0;
  const std::uint64_t now = env->NowMillis();
  Roaring64Map live = VisibleRecords(c_, g.data, candidates, now, &bytes);
  Roaring64Map prev_live;
  if (previous != nullptr) prev_live = VisibleRecords(c_, *previous, prev_candidates, now, &bytes);
  Builder b(c_, g.number + 1, Index::SlotsFor(live.cardinality() + prev_live.cardinality()),
            NewDataCapacity(bytes));
  {
    RunCopier copier(b, c_.salt());
    for (std::uint64_t off8 : live)
      copier.Add(off8 * record::kAlign, g.Record(off8 * record::kAlign));
    copier.Flush();
  }
  if (previous != nullptr) {  // keys distinct from the ones above
    RunCopier copier(b, c_.salt());
    for (std::uint64_t off8 : prev_live) {
      copier.Add(off8 * record::kAlign, RecordAt(*previous, off8 * record::kAlign));
    }
    copier.Flush();
  }
  Publish(g, b, std::max(scan.max_seq, prev_scan.max_seq), boot);
  c_.logger().warn(
      "recovered: {} valid records, {} damaged regions skipped, {} live keys kept, {} keys "
      "whose newest record was never published (a killed writer's) kept their published one, "
      "{} keys taken from the previous generation's log",
      scan.records + prev_scan.records, scan.damaged + prev_scan.damaged, b.records(), unpublished,
      prev_live.cardinality());
}

void Recovery::Publish(Generation& g, Builder& b, std::uint64_t max_seq, const std::string& boot) {
  auto& meta = c_.meta().header();
  b.Seal();
  b.Rename();
  b.Sync();
  auto next = Shared(meta.next_seq);
  if (next.load(std::memory_order_relaxed) <= max_seq) {
    next.store(max_seq + 1, std::memory_order_relaxed);
  }
  // The files of g+1 are durable (Sync above) before the meta page names
  // them. What recovery did is recorded only now that it is done: the new
  // generation, the flag cleared, the boot id of this boot, all in the one
  // meta page, synced at once (if it never reaches the disk, the next boot
  // replays g again: the same result).
  Shared(meta.generation).store(g.number + 1, std::memory_order_release);
  Shared(meta.flags).fetch_and(~kFlagNeedsRebuild, std::memory_order_relaxed);
  c_.meta().SetBootId(boot);
  c_.SyncMeta();
  const std::uint64_t old = g.number;
  g.Close();
  RemoveStrayFiles(c_, old + 1, /*live_durable=*/true);
}

}  // namespace lilcache
