#include "inspect/audit.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <span>
#include <unordered_map>

#include "engine/file_lock.h"
#include "engine/index.h"
#include "format/data_header.h"
#include "format/index_header.h"
#include "format/meta_header.h"
#include "format/record.h"
#include "format/shared_atomic.h"
#include "lilcache/env.h"
#include "lilcache/lilcache.h"
#include "util/names.h"
#include "util/quote.h"

namespace lilcache {
namespace {

// A whole file opened O_RDONLY and mapped PROT_READ through an Env.
class MappedFile {
 public:
  MappedFile(Env* env, const std::string& path) : env_(env), path_(path) {
    fd_ = env->Open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0);
    if (fd_ < 0) ThrowErrno("cannot open", path);
    struct stat st;
    if (env->Fstat(fd_, &st) != 0) ThrowErrno("cannot stat", path);
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ == 0) return;  // the header validator refuses it
    void* p = env->Mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) ThrowErrno("cannot map", path);
    base_ = static_cast<char*>(p);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() {
    if (base_ != nullptr) env_->Munmap(base_, size_);
    if (fd_ >= 0) env_->Close(fd_);
  }
  template <typename T>
  T& As(std::size_t offset = 0) const {
    return *reinterpret_cast<T*>(base_ + offset);
  }
  // Loads an atomic field of the shared mapping. The page is PROT_READ: an
  // atomic_ref load never writes. Acquire: pairs with the release (or
  // acq_rel) stores of the writers, which are finished (quiescent cache).
  template <typename T>
  T Load(std::size_t offset) const {
    return Shared(As<T>(offset)).load(std::memory_order_acquire);
  }
  std::span<const char> bytes(std::size_t end) const { return {base_, std::min(end, size_)}; }
  std::size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  Env* env_;
  std::string path_;
  int fd_ = -1;
  char* base_ = nullptr;
  std::size_t size_ = 0;
};

// The newest valid record of a key (what a replay keeps) and its newest SET.
struct Newest {
  std::uint64_t offset = 0;
  std::uint64_t seq = 0;
  std::uint64_t set_offset = 0;  // 0: no SET
  std::uint64_t set_seq = 0;
  bool has_slot = false;
};

std::string Describe(const record::RecordView& r, std::uint64_t off) {
  return std::string(r.is_tombstone() ? "tombstone" : "value") + " at seq " +
         std::to_string(r.seq()) + " (offset " + std::to_string(off) + ")";
}

}  // namespace

std::string AuditReport::Describe() const {
  std::string s = "audit of generation " + std::to_string(generation) + ": " +
                  std::to_string(records) + " records, " + std::to_string(keys) + " keys, " +
                  std::to_string(slots) + " slots, " + std::to_string(damaged) +
                  " damaged regions; " + std::to_string(violations.size()) + " violations";
  for (const auto& v : violations) s += "\n  " + v;
  return s;
}

AuditReport AuditIndex(std::string_view root, std::string_view name, std::uint64_t now_ms,
                       Env* env) {
  if (env == nullptr) env = Env::Default();
  if (now_ms == 0) now_ms = env->NowMillis();
  validate_name(name);
  CachePaths paths{ResolveRoot(root), std::string(name)};
  MappedFile meta(env, paths.meta());
  CheckMetaHeader(meta.bytes(meta.size())).ThrowIfBad(meta.path());
  const std::uint64_t salt = meta.As<MetaHeader>().salt;
  const auto gen = meta.Load<std::uint64_t>(offsetof(MetaHeader, generation));
  const auto purge_seq = meta.Load<std::uint64_t>(offsetof(MetaHeader, purge_seq));
  MappedFile data(env, paths.data(gen));
  CheckDataHeader(data.bytes(kHeaderSize), gen, salt).ThrowIfBad(data.path());
  MappedFile index(env, paths.index(gen));
  CheckIndexHeader(index.bytes(kHeaderSize), index.size(), gen).ThrowIfBad(index.path());

  AuditReport rep;
  rep.generation = gen;
  std::uint64_t violations = 0;
  auto violation = [&](std::string what) {
    if (++violations <= AuditReport::kMaxMessages) rep.violations.push_back(std::move(what));
  };
  auto key_name = [](std::string_view k) { return Quote(k.substr(0, 64)); };

  // The log below the tail: the newest valid record of each key (what a
  // replay keeps).
  std::uint64_t tail = data.Load<std::uint64_t>(offsetof(DataHeader, tail));
  if (tail < kFirstRecordOffset || tail % record::kAlign != 0 || tail > data.size()) {
    violation("the log's tail " + std::to_string(tail) + " is not within its " +
              std::to_string(data.size()) + "-byte file");
    tail = std::min<std::uint64_t>(std::max<std::uint64_t>(tail, kFirstRecordOffset), data.size()) /
           record::kAlign * record::kAlign;
  }
  const std::span<const char> region = data.bytes(tail);
  std::unordered_map<std::string_view, Newest> newest;
  rep.damaged = record::ForEachValidRecord(
      region, kFirstRecordOffset, tail, salt, [&](std::uint64_t off, const record::RecordView& r) {
        ++rep.records;
        if (r.is_aborted()) return;  // never published; a replay ignores it too
        Newest& n = newest[r.key()];
        if (n.offset == 0 || r.seq() > n.seq) {
          n.offset = off;
          n.seq = r.seq();
        }
        if (!r.is_tombstone() && (n.set_offset == 0 || r.seq() > n.set_seq)) {
          n.set_offset = off;
          n.set_seq = r.seq();
        }
      });
  rep.keys = newest.size();

  // Every slot against it.
  const std::uint64_t slot_count = index.As<IndexHeader>().slot_count;  // checked above
  auto slot = [&](std::uint64_t i) { return index.Load<std::uint64_t>(IndexSlotOffset(i)); };
  for (std::uint64_t i = 0; i < slot_count; ++i) {
    const std::uint64_t v = slot(i);
    if (v == 0) continue;
    ++rep.slots;
    const std::uint64_t off = Index::OffsetOf(v);
    record::RecordView r;
    record::Damage d = off < kFirstRecordOffset ? record::Damage::kBadMagic
                                                : record::CheckRecord(region, off, salt, &r);
    if (d != record::Damage::kNone) {
      violation("slot " + std::to_string(i) + " points at offset " + std::to_string(off) +
                ", which holds no valid record below the tail (" + record::DamageName(d) + ")");
      continue;
    }
    const std::uint64_t hash = record::HashKey(r.key(), salt);
    if (!Index::TagMatches(v, hash)) {
      violation("slot " + std::to_string(i) + " points at a record of key " + key_name(r.key()) +
                " whose hash does not carry the slot's tag");
      continue;
    }
    // Linear probing: no empty slot between the key's home and its slot.
    for (std::uint64_t p = IndexHome(hash, slot_count); p != i;
         p = p + 1 == slot_count ? 0 : p + 1) {
      if (slot(p) == 0) {
        violation("slot " + std::to_string(i) + " of key " + key_name(r.key()) +
                  " cannot be found: slot " + std::to_string(p) + " of its chain is empty");
        break;
      }
    }
    auto it = newest.find(r.key());
    if (it == newest.end() || it->second.seq < r.seq()) {
      violation("slot " + std::to_string(i) + " of key " + key_name(r.key()) + " points at a " +
                Describe(r, off) + " that a scan of the log does not reach");
      continue;
    }
    Newest& n = it->second;
    if (n.has_slot) {
      violation("key " + key_name(r.key()) + " has two slots (the second is slot " +
                std::to_string(i) + ")");
      continue;
    }
    n.has_slot = true;
    if (n.offset == off) continue;
    auto at = [&](std::uint64_t o) {
      return record::RecordView{reinterpret_cast<const record::RecordHeader*>(region.data() + o)};
    };
    if (n.set_seq > r.seq()) {
      // A value newer than the slot's record: the slot moved back past it
      // (every SET is published or superseded by a newer record).
      violation("key " + key_name(r.key()) + ": its slot points at a " + Describe(r, off) +
                " but the log holds a newer " + Describe(at(n.set_offset), n.set_offset) +
                (n.set_offset == n.offset
                     ? ": a replay would bring back a value the index does not hold"
                     : ": the slot moved back past it"));
      continue;
    }
    // Only newer tombstones: those of pops that lost their race (to another
    // pop, or to an expiry or purge) are expected, and a replay says
    // "absent" too, unless the slot holds a visible value.
    const bool slot_visible = !r.is_tombstone() && r.seq() > purge_seq && !r.expired_at(now_ms);
    if (!slot_visible) continue;
    violation("key " + key_name(r.key()) + ": its slot points at a " + Describe(r, off) +
              " but the log holds a newer " + Describe(at(n.offset), n.offset) +
              ": a replay would delete the value the index holds");
  }
  for (const auto& [key, n] : newest) {
    if (n.has_slot) continue;
    record::RecordView nr{reinterpret_cast<const record::RecordHeader*>(region.data() + n.offset)};
    violation("key " + key_name(key) + " has no slot; its newest record is a " +
              Describe(nr, n.offset));
  }
  if (violations > AuditReport::kMaxMessages) {
    rep.violations.push_back(std::to_string(violations - AuditReport::kMaxMessages) +
                             " more violations");
  }
  return rep;
}

}  // namespace lilcache
