#include "engine/recovery.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <roaring/roaring64map.hh>
#include <string_view>
#include <unordered_map>
#include <vector>

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

// After a reboot, the data files of older generations replayed with g's
// (docs/concurrency.md, "Durability"): for each key, the newest record
// across all of them wins (seqs are cache-wide). Returns, for each older
// file, the records of it that win (offsets / kAlign), and removes g's
// records that lose from `candidates`.
std::vector<Roaring64Map> NewestAcross(const DataFile& data, const DataScan& scan,
                                       const std::vector<DataFile*>& older,
                                       const std::vector<DataScan>& older_scans,
                                       Roaring64Map& candidates) {
  struct Where {
    std::size_t file;  // 0: g's data file, i + 1: older[i]
    std::uint64_t off;
  };
  const auto record_at = [&](const Where& w) {
    return RecordAt(w.file == 0 ? data : *older[w.file - 1], w.off);
  };
  std::unordered_map<std::string_view, Where> newest;
  for (const auto& [key, off] : scan.latest) newest.emplace(key, Where{0, off});
  for (std::size_t i = 0; i < older.size(); ++i) {
    for (const auto& [key, off] : older_scans[i].latest) {
      const Where w{i + 1, off};
      auto [it, fresh] = newest.try_emplace(key, w);
      if (!fresh && record_at(it->second).seq() < record_at(w).seq()) it->second = w;
    }
  }
  std::vector<Roaring64Map> wins(older.size());
  for (const auto& [key, w] : newest) {
    if (w.file == 0) continue;
    wins[w.file - 1].add(w.off / record::kAlign);
    auto in_g = scan.latest.find(key);
    if (in_g != scan.latest.end()) candidates.remove(in_g->second / record::kAlign);
  }
  return wins;
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
  const std::string boot = env->BootId();
  if (!c_.meta().BootIdIs(boot)) {
    RecoverAfterReboot(boot);
    return;
  }
  std::uint64_t gen = Shared(meta.generation).load(std::memory_order_acquire);
  Generation g;
  g.number = gen;
  g.salt = c_.salt();
  // The data file first: it is the data. One that cannot be opened is an Error.
  g.data.Open(env, c_.paths().data(gen), gen, c_.salt());
  bool index_trusted = false;
  const std::string why = WhyRebuild(g, boot, &index_trusted);
  if (why.empty()) {
    // The boot id matches (else `why` would say so): nothing to record.
    RemoveStrayFiles(c_, gen, /*durably=*/false);
    return;
  }
  Rebuild(g, why, index_trusted, boot, {}, gen + 1);
}

void Recovery::RecoverAfterReboot(const std::string& boot) {
  // A power loss (or a crash of the kernel) may have cut anything short that
  // was not synced; the index cannot be trusted. The data files of every
  // generation from durable_gen on that are still there are replayed,
  // whatever generation the meta page names: it may name one whose file
  // never reached the disk, or an older one than a file that did
  // (docs/concurrency.md, "Durability"). The boot id is stored by Publish,
  // with the rebuilt generation, once that is durable: an opener killed
  // before (a slow replay, Ctrl-C) leaves the old one, and the next opener
  // replays again.
  Env* env = c_.env();
  auto& meta = c_.meta().header();
  const std::uint64_t named = Shared(meta.generation).load(std::memory_order_acquire);
  const std::uint64_t durable = Shared(meta.durable_gen).load(std::memory_order_acquire);
  std::vector<CacheFile> files;
  if (!ListCacheFiles(env, c_.paths().root, &files)) ThrowErrno("cannot list", c_.paths().root);
  std::vector<std::uint64_t> gens;
  for (const CacheFile& f : files) {
    if (f.cache == c_.paths().name && f.kind == CacheFile::Kind::kData && !f.tmp &&
        f.generation >= durable && f.generation != 0) {
      gens.push_back(f.generation);
    }
  }
  std::sort(gens.rbegin(), gens.rend());  // newest first
  if (durable != 0 && std::find(gens.begin(), gens.end(), durable) == gens.end()) {
    c_.logger().error(
        "recovery: the log of generation {}, the last durable one, is missing: "
        "replaying what is left",
        durable);
  }
  const std::uint64_t next = std::max(named, gens.empty() ? 0 : gens.front()) + 1;
  // The newest file that opens is g's; the older ones are replayed with it.
  Generation g;
  g.salt = c_.salt();
  std::vector<std::unique_ptr<DataFile>> older;
  for (std::uint64_t gen : gens) {
    DataFile* d = g.number == 0 ? &g.data : older.emplace_back(std::make_unique<DataFile>()).get();
    try {
      d->Open(env, c_.paths().data(gen), gen, c_.salt());
    } catch (const UntrustedFile&) {
      throw;  // another user's file, or one others can write: refused
    } catch (const Error& e) {
      // A file of a generation newer than durable_gen whose header never
      // reached the disk holds nothing durable: left out. Any other failure
      // (an I/O error, the durable generation's file) is the caller's: the
      // data may be there.
      if (e.code() != ErrorCode::corrupt || gen == durable) throw;
      c_.logger().warn("recovery: leaving out the log of generation {}: {}", gen, e.what());
      d->Close();
      if (d != &g.data) older.pop_back();
      continue;
    }
    if (g.number == 0) g.number = gen;
  }
  if (g.number == 0) {
    // Nothing durable and nothing written back: the cache starts empty.
    c_.logger().warn("recovery: no log of generation {} or later survived; starting empty",
                     durable);
    g.number = next - 1;
    Builder b(c_, next, kMinSlots, NewDataCapacity(0));
    Publish(g, b, 0, boot);
    return;
  }
  std::vector<DataFile*> replayed;
  for (auto& d : older) replayed.push_back(d.get());
  Rebuild(g, "first open since a reboot", /*index_trusted=*/false, boot, replayed, next);
  for (auto& d : older) d->Close();
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

// Writes generation g+1 holding the live records of g: those its index
// publishes when `index_trusted` (a record a killed writer wrote but never
// published must not take effect), else the newest valid record of each key
// in the data file (replay).
void Recovery::Rebuild(Generation& g, const std::string& why, bool index_trusted,
                       const std::string& boot, const std::vector<DataFile*>& older,
                       std::uint64_t next) {
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
  std::vector<DataScan> older_scans;
  std::vector<Roaring64Map> older_candidates;
  if (!older.empty() && !index_trusted) {
    for (DataFile* d : older) older_scans.push_back(ScanDataFile(*d, g.salt));
    older_candidates = NewestAcross(g.data, scan, older, older_scans, candidates);
  }
  std::uint64_t bytes = 0;
  const std::uint64_t now = env->NowMillis();
  Roaring64Map live = VisibleRecords(c_, g.data, candidates, now, &bytes);
  std::vector<Roaring64Map> older_live;
  std::uint64_t keys = live.cardinality(), from_older = 0;
  for (std::size_t i = 0; i < older_candidates.size(); ++i) {
    older_live.push_back(VisibleRecords(c_, *older[i], older_candidates[i], now, &bytes));
    from_older += older_live.back().cardinality();
  }
  keys += from_older;
  Builder b(c_, next, Index::SlotsFor(keys), NewDataCapacity(bytes));
  {
    RunCopier copier(b, c_.salt());
    for (std::uint64_t off8 : live)
      copier.Add(off8 * record::kAlign, g.Record(off8 * record::kAlign));
    copier.Flush();
  }
  for (std::size_t i = 0; i < older_live.size(); ++i) {  // keys distinct from the ones above
    RunCopier copier(b, c_.salt());
    for (std::uint64_t off8 : older_live[i]) {
      copier.Add(off8 * record::kAlign, RecordAt(*older[i], off8 * record::kAlign));
    }
    copier.Flush();
  }
  std::uint64_t max_seq = scan.max_seq, records = scan.records, damaged = scan.damaged;
  for (const DataScan& o : older_scans) {
    max_seq = std::max(max_seq, o.max_seq);
    records += o.records;
    damaged += o.damaged;
  }
  Publish(g, b, max_seq, boot);
  c_.logger().warn(
      "recovered: {} valid records, {} damaged regions skipped, {} live keys kept, {} keys "
      "whose newest record was never published (a killed writer's) kept their published one, "
      "{} keys taken from {} older generations' logs",
      records, damaged, b.records(), unpublished, from_older, older.size());
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
  // The files of the new generation are durable (Sync above) before the
  // meta page names them. What recovery did is recorded only now that it is
  // done: the new generation, durable_gen, the flag cleared, the boot id of
  // this boot, all in the one meta page, synced at once (if it never reaches
  // the disk, the next boot replays the same files again: the same result).
  Shared(meta.generation).store(b.number(), std::memory_order_release);
  c_.RaiseDurableGen(b.number());
  Shared(meta.flags).fetch_and(~kFlagNeedsRebuild, std::memory_order_relaxed);
  c_.meta().SetBootId(boot);
  c_.SyncMeta();
  g.Close();
  RemoveStrayFiles(c_, b.number(), /*durably=*/true);
}

}  // namespace lilcache
