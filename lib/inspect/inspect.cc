#include "inspect/inspect.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "engine/index.h"
#include "format/data_header.h"
#include "format/file_header.h"
#include "format/index_header.h"
#include "format/meta_header.h"
#include "format/shared_atomic.h"
#include "lilcache/env.h"
#include "lilcache/lilcache.h"
#include "util/error_code.h"
#include "util/names.h"

namespace lilcache {
namespace {

constexpr int kOpenRetries = 10;  // generation switches raced while opening
constexpr std::size_t kMaxSlotProblems = 10;

// A file opened O_RDONLY and mapped PROT_READ, MAP_SHARED, in full, through
// an Env. Never written through. Move-only; unmaps and closes on destruction.
// Thread-safety: immutable after Open; its bytes may change under it when
// other processes write the file.
class ReadOnlyFile {
 public:
  ReadOnlyFile() = default;
  ReadOnlyFile(ReadOnlyFile&& o) noexcept { *this = std::move(o); }
  ReadOnlyFile& operator=(ReadOnlyFile&& o) noexcept {
    if (this != &o) {
      Reset();
      env_ = o.env_;
      fd_ = std::exchange(o.fd_, -1);
      base_ = std::exchange(o.base_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  ReadOnlyFile(const ReadOnlyFile&) = delete;
  ReadOnlyFile& operator=(const ReadOnlyFile&) = delete;
  ~ReadOnlyFile() { Reset(); }

  // Opens and maps path. Returns 0, or the errno of the call that failed.
  int Open(Env* env, const std::string& path) {
    Reset();
    env_ = env;
    fd_ = env->Open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0);
    if (fd_ < 0) return errno;
    struct stat st;
    if (env->Fstat(fd_, &st) != 0) return errno;
    if (!S_ISREG(st.st_mode)) return EINVAL;
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ == 0) return 0;
    void* p = env->Mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) {
      size_ = 0;
      return errno;
    }
    base_ = static_cast<const char*>(p);
    return 0;
  }

  // The size of the file now (it may have grown since it was mapped).
  std::uint64_t CurrentSize() const {
    struct stat st;
    return env_->Fstat(fd_, &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
  }

  std::span<const char> bytes() const { return {base_, size_}; }
  std::uint64_t size() const { return size_; }
  int fd() const { return fd_; }
  template <typename T>
  const T& As(std::size_t offset = 0) const {
    return *reinterpret_cast<const T*>(base_ + offset);
  }

 private:
  void Reset() {
    if (base_ != nullptr) env_->Munmap(const_cast<char*>(base_), size_);
    if (fd_ >= 0) env_->Close(fd_);
    fd_ = -1;
    base_ = nullptr;
    size_ = 0;
  }

  Env* env_ = nullptr;
  int fd_ = -1;
  const char* base_ = nullptr;
  std::size_t size_ = 0;
};

// Loads a field of a shared, read-only mapping that other processes update
// atomically (relaxed unless stated: a report, which synchronizes with
// nothing).
template <typename T>
T Load(const T& field, std::memory_order order = std::memory_order_relaxed) {
  return LoadShared(field, order);
}

std::string CString(const char* chars, std::size_t max) {
  return std::string(chars, strnlen(chars, max));
}

bool AllZero(std::span<const char> bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](char c) { return c == 0; });
}

// The record at `offset` if its header is plausible (CheckRecordHeader) and
// it lies inside `region` (no checksum: for following index slots cheaply).
const record::RecordHeader* PlausibleRecord(std::span<const char> region, std::uint64_t offset) {
  if (offset < kFirstRecordOffset || offset % record::kAlign != 0 || offset > region.size() ||
      region.size() - offset < record::kRecordHeaderSize) {
    return nullptr;
  }
  const auto* h = reinterpret_cast<const record::RecordHeader*>(region.data() + offset);
  if (record::CheckRecordHeader(*h) != record::Damage::kNone ||
      region.size() - offset < record::RecordSize(h->key_len, h->value_len)) {
    return nullptr;
  }
  return h;
}

}  // namespace

const char* RecordStateName(RecordState s) {
  switch (s) {
    case RecordState::kLive:
      return "live";
    case RecordState::kDead:
      return "dead";
    case RecordState::kExpired:
      return "expired";
    case RecordState::kTombstone:
      return "tombstone";
    case RecordState::kPurged:
      return "purged";
    case RecordState::kDamaged:
      return "damaged";
    case RecordState::kUnknown:
      return "unknown";
  }
  return "?";
}

// ---- Inspector::Impl ----------------------------------------------------------
// The state behind an Inspector: the three mapped files and what was read of
// their headers. Immutable after Open (see Inspector).
class Inspector::Impl {
 public:
  Impl(Env* env, std::string_view root, std::string_view name, std::uint64_t now_ms);

  LogSummary ScanLog(const Callbacks& cb) const;
  IndexStats ComputeIndexStats() const;

  Env* env;
  CachePaths paths;
  std::uint64_t now_ms;
  InspectHeader header;
  std::vector<InspectProblem> problems;

 private:
  void OpenMeta();
  void ReadMetaHeader();
  void CountProcesses();
  void OpenGeneration();
  void ReadDataHeader();
  void CheckDataSizes();
  void ReadIndexHeader();
  void Problem(const std::string& file, std::string what) {
    problems.push_back({file, std::move(what)});
  }
  // Reports every finding of a header validator; true if the header is
  // readable (HeaderVerdict::readable).
  bool Report(const std::string& file, const HeaderVerdict& v);

  // Scanning.
  std::span<const char> LogRegion() const;
  std::uint64_t SkipDamage(std::span<const char> region, std::uint64_t start, record::Damage d,
                           LogSummary& sum, const Callbacks& cb) const;
  InspectRecord Describe(const record::RecordHeader* h, std::uint64_t offset,
                         bool checksum_ok) const;
  RecordState StateOf(const record::RecordView& v, std::uint64_t offset, bool checksum_ok) const;
  // Offset of the record the index holds for key (nullopt: key absent).
  std::optional<std::uint64_t> CurrentOffset(std::string_view key) const;
  std::uint64_t Slot(std::uint64_t i) const;
  void ProbeSlot(std::uint64_t i, std::uint64_t v, IndexStats& st, std::uint64_t& sum) const;

  ReadOnlyFile meta_, data_, index_;
  Index index_view_;  // a view of index_'s mapping, once its header is valid
  std::uint64_t salt_ = 0;
};

Inspector::Impl::Impl(Env* e, std::string_view root, std::string_view name, std::uint64_t now)
    : env(e != nullptr ? e : Env::Default()), now_ms(now != 0 ? now : env->NowMillis()) {
  validate_name(name);
  paths.root = ResolveRoot(root);
  paths.name = std::string(name);
  OpenMeta();
  if (header.meta.valid) OpenGeneration();
}

bool Inspector::Impl::Report(const std::string& file, const HeaderVerdict& v) {
  for (const HeaderFinding& f : v.findings) {
    Problem(file, f.fault == HeaderFault::kTooShort ? "truncated: " + f.reason : f.reason);
  }
  return v.readable();
}

// ---- the meta file ----

void Inspector::Impl::OpenMeta() {
  InspectMeta& m = header.meta;
  m.path = paths.meta();
  if (int e = meta_.Open(env, m.path); e != 0) {
    throw Error(ErrorCodeOfErrno(e), "cannot open " + m.path + ": " + std::strerror(e));
  }
  m.file_size = meta_.size();
  const HeaderVerdict v = CheckMetaHeader(meta_.bytes());
  if (!v.ok() && v.findings.front().fault == HeaderFault::kTooShort) {
    v.ThrowIfBad(m.path);
  }
  ReadMetaHeader();
  m.valid = Report(m.path, v);
  if (m.valid) CountProcesses();
}

void Inspector::Impl::ReadMetaHeader() {
  InspectMeta& m = header.meta;
  const auto& h = meta_.As<MetaHeader>();
  m.version = h.version;
  m.salt = h.salt;
  m.created_ms = h.created_ms;
  m.generation = Load(h.generation, std::memory_order_acquire);
  m.next_seq = Load(h.next_seq);
  m.purge_seq = Load(h.purge_seq, std::memory_order_acquire);
  m.writer_state = Load(h.writer_state);
  m.flags = Load(h.flags);
  m.last_snapshot_ms = Load(h.last_snapshot_ms);
  m.boot_id = CString(h.boot_id, sizeof(h.boot_id));
  m.compactions = Load(h.compactions);
  m.snapshots = Load(h.snapshots);
  m.evictions = Load(h.evictions);
  m.max_bytes = Load(h.max_bytes);
  m.durable_gen = Load(h.durable_gen);
  salt_ = m.salt;
}

void Inspector::Impl::CountProcesses() {
  for (std::size_t i = 0; i < kMaxProcesses; ++i) {
    const auto& slot = meta_.As<ProcessSlot>(ProcessSlotOffset(i));
    if (slot.pid == 0) continue;  // never used
    // F_OFD_GETLK only asks; it takes no lock.
    if (env->IsLocked(meta_.fd(), SlotLockByte(i), 1) == 1) ++header.meta.processes;
  }
}

// ---- the generation's files ----

void Inspector::Impl::OpenGeneration() {
  const auto& mh = meta_.As<MetaHeader>();
  for (int attempt = 1;; ++attempt) {
    std::uint64_t gen = Load(mh.generation, std::memory_order_acquire);
    header.meta.generation = gen;
    header.data.path = paths.data(gen);
    header.index.path = paths.index(gen);
    int de = data_.Open(env, header.data.path);
    int ie = index_.Open(env, header.index.path);
    // A compaction may have replaced the generation between our reads.
    bool raced = (de != 0 || ie != 0) && Load(mh.generation, std::memory_order_acquire) != gen;
    if (raced && attempt < kOpenRetries) continue;
    if (de != 0) Problem(header.data.path, std::string("cannot open: ") + std::strerror(de));
    if (ie != 0) Problem(header.index.path, std::string("cannot open: ") + std::strerror(ie));
    if (de == 0) ReadDataHeader();
    if (ie == 0) ReadIndexHeader();
    return;
  }
}

void Inspector::Impl::ReadDataHeader() {
  InspectData& d = header.data;
  d.file_size = data_.size();
  const HeaderVerdict v = CheckDataHeader(data_.bytes(), header.meta.generation, salt_);
  d.present = d.file_size >= kHeaderSize;
  if (d.present) {
    const auto& h = data_.As<DataHeader>();
    d.version = h.version;
    d.generation = h.generation;
    d.salt = h.salt;
    d.created_ms = h.created_ms;
    d.tail = Load(h.tail, std::memory_order_acquire);
    d.capacity = Load(h.capacity, std::memory_order_acquire);
    d.dead_bytes = Load(h.dead_bytes);
    d.verified_upto = Load(h.verified_upto);
  }
  d.valid = Report(d.path, v);
  if (d.valid) CheckDataSizes();
}

void Inspector::Impl::CheckDataSizes() {
  InspectData& d = header.data;
  // A live cache grows its log (fallocate, then capacity); only a file that
  // is still shorter than its header says has been truncated.
  if (d.capacity > d.file_size && data_.CurrentSize() < d.capacity) {
    Problem(d.path, "truncated: " + std::to_string(d.file_size) + " bytes, its header says " +
                        std::to_string(d.capacity));
  }
  if (d.tail < kFirstRecordOffset || d.tail % record::kAlign != 0) {
    Problem(d.path, "bad tail " + std::to_string(d.tail) + " (scanning the whole file)");
  } else if (d.tail > d.file_size && data_.CurrentSize() < d.tail) {
    Problem(d.path, "tail " + std::to_string(d.tail) + " lies beyond the end of the file (" +
                        std::to_string(d.file_size) + " bytes)");
  }
}

void Inspector::Impl::ReadIndexHeader() {
  InspectIndex& x = header.index;
  x.file_size = index_.size();
  const HeaderVerdict v = CheckIndexHeader(index_.bytes(), x.file_size, header.meta.generation);
  x.present = x.file_size >= kHeaderSize;
  if (x.present) {
    const auto& h = index_.As<IndexHeader>();
    x.version = h.version;
    x.generation = h.generation;
    x.slot_count = h.slot_count;
    x.used_slots = Load(h.used_slots);
  }
  x.valid = Report(x.path, v);
  if (x.valid) index_view_.OpenView(index_.bytes());
}

// ---- the index ----

std::uint64_t Inspector::Impl::Slot(std::uint64_t i) const {
  // Acquire: pairs with the writer's CAS that published the slot, so the
  // record it points at is complete.
  return index_view_.slot(i).load(std::memory_order_acquire);
}

std::optional<std::uint64_t> Inspector::Impl::CurrentOffset(std::string_view key) const {
  const Index::Probe p = index_view_.Find(record::HashKey(key, salt_), [&](std::uint64_t offset) {
    const record::RecordHeader* h = PlausibleRecord(data_.bytes(), offset);
    return h != nullptr && record::RecordView{h}.key() == key;
  });
  if (p.value == 0) return std::nullopt;  // absent, or not found in a full table
  return Index::OffsetOf(p.value);
}

void Inspector::Impl::ProbeSlot(std::uint64_t i, std::uint64_t v, IndexStats& st,
                                std::uint64_t& sum) const {
  const std::uint64_t off = Index::OffsetOf(v);
  const record::RecordHeader* h = PlausibleRecord(data_.bytes(), off);
  std::uint64_t hash = h != nullptr ? record::HashKey(record::RecordView{h}.key(), salt_) : 0;
  if (h == nullptr || !Index::TagMatches(v, hash)) {
    if (++st.bad_slots <= kMaxSlotProblems) {
      st.problems.push_back({header.index.path, "slot " + std::to_string(i) + " points at offset " +
                                                    std::to_string(off) + ", which holds " +
                                                    (h == nullptr ? "no record" : "another key")});
    }
    return;
  }
  std::uint64_t len = IndexProbeDistance(IndexHome(hash, st.slot_count), i, st.slot_count) + 1;
  ++st.probe_histogram[len];
  st.max_probe = std::max(st.max_probe, len);
  sum += len;
}

IndexStats Inspector::Impl::ComputeIndexStats() const {
  IndexStats st;
  if (!header.index.valid) return st;
  st.slot_count = header.index.slot_count;
  std::uint64_t sum = 0;
  for (std::uint64_t i = 0; i < st.slot_count; ++i) {
    std::uint64_t v = Slot(i);
    if (v == 0) continue;
    ++st.occupied;
    if (header.data.valid) ProbeSlot(i, v, st, sum);
  }
  if (st.bad_slots > kMaxSlotProblems) {
    st.problems.push_back(
        {header.index.path, std::to_string(st.bad_slots - kMaxSlotProblems) + " more bad slots"});
  }
  st.load = static_cast<double>(st.occupied) / static_cast<double>(st.slot_count);
  std::uint64_t probed = st.occupied - st.bad_slots;
  st.mean_probe = probed == 0 ? 0 : static_cast<double>(sum) / static_cast<double>(probed);
  return st;
}

// ---- the log ----

std::span<const char> Inspector::Impl::LogRegion() const {
  if (!header.data.valid) return {};
  std::uint64_t end = data_.size();
  std::uint64_t tail = header.data.tail;
  if (tail >= kFirstRecordOffset && tail % record::kAlign == 0) end = std::min(end, tail);
  return data_.bytes().first(end);
}

RecordState Inspector::Impl::StateOf(const record::RecordView& v, std::uint64_t offset,
                                     bool checksum_ok) const {
  if (!checksum_ok) return RecordState::kDamaged;
  if (v.is_aborted()) return RecordState::kDead;  // a conditional write that lost its race
  if (v.is_tombstone()) return RecordState::kTombstone;
  std::optional<bool> current;
  if (header.index.valid) current = CurrentOffset(v.key()) == offset;
  if (current == false) return RecordState::kDead;
  if (v.seq() <= header.meta.purge_seq) return RecordState::kPurged;
  if (v.expired_at(now_ms)) return RecordState::kExpired;
  return current ? RecordState::kLive : RecordState::kUnknown;
}

InspectRecord Inspector::Impl::Describe(const record::RecordHeader* h, std::uint64_t offset,
                                        bool checksum_ok) const {
  record::RecordView v{h};
  return InspectRecord{.offset = offset,
                       .size = v.size(),
                       .seq = v.seq(),
                       .type = v.type(),
                       .key = v.key(),
                       .value = v.value(),
                       .expires_ms = v.expires_ms(),
                       .checksum_ok = checksum_ok,
                       .state = StateOf(v, offset, checksum_ok)};
}

std::uint64_t Inspector::Impl::SkipDamage(std::span<const char> region, std::uint64_t start,
                                          record::Damage d, LogSummary& sum,
                                          const Callbacks& cb) const {
  // Resynchronize (docs/format.md): 8 bytes at a time, up to the next record
  // whose header is plausible (valid, or damaged itself and then reported).
  std::uint64_t off = start + record::kAlign;
  for (; off < region.size(); off += record::kAlign) {
    record::Damage next = record::CheckRecord(region, off, salt_, nullptr);
    if (next == record::Damage::kNone || next == record::Damage::kBadChecksum) break;
  }
  off = std::min<std::uint64_t>(off, region.size());
  DamagedRegion r{.offset = start,
                  .end = off,
                  .damage = d,
                  .zeros = AllZero(region.subspan(start, off - start))};
  (r.zeros ? sum.holes : sum.damaged_regions) += 1;
  (r.zeros ? sum.hole_bytes : sum.damaged_bytes) += off - start;
  if (cb.on_damage) cb.on_damage(r);
  return off;
}

LogSummary Inspector::Impl::ScanLog(const Callbacks& cb) const {
  LogSummary sum;
  const std::span<const char> region = LogRegion();
  if (region.empty()) return sum;
  sum.scanned_from = kFirstRecordOffset;
  sum.scanned_to = region.size();
  for (std::uint64_t off = kFirstRecordOffset; off < region.size();) {
    record::Damage d = record::CheckRecord(region, off, salt_, nullptr);
    if (d == record::Damage::kNone || d == record::Damage::kBadChecksum) {
      // A bad checksum passed every other check: the header is plausible.
      const auto* h = reinterpret_cast<const record::RecordHeader*>(region.data() + off);
      InspectRecord r = Describe(h, off, d == record::Damage::kNone);
      sum.records[static_cast<std::size_t>(r.state)] += 1;
      sum.bytes[static_cast<std::size_t>(r.state)] += r.size;
      if (cb.on_record && !cb.on_record(r)) return sum;
      if (d == record::Damage::kNone) {
        off += r.size;
        continue;
      }
    }
    off = SkipDamage(region, off, d, sum, cb);
  }
  return sum;
}

// ---- Inspector -------------------------------------------------------------------

Inspector::Inspector(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Inspector::Inspector(Inspector&&) noexcept = default;
Inspector& Inspector::operator=(Inspector&&) noexcept = default;
Inspector::~Inspector() = default;

Inspector Inspector::Open(std::string_view root, std::string_view name, std::uint64_t now_ms,
                          Env* env) {
  return Inspector(std::make_unique<Impl>(env, root, name, now_ms));
}

const std::string& Inspector::root() const { return impl_->paths.root; }
const std::string& Inspector::name() const { return impl_->paths.name; }
const InspectHeader& Inspector::header() const { return impl_->header; }
const std::vector<InspectProblem>& Inspector::problems() const { return impl_->problems; }
bool Inspector::log_readable() const { return impl_->header.data.valid; }
LogSummary Inspector::ScanLog(const Callbacks& callbacks) const {
  return impl_->ScanLog(callbacks);
}
IndexStats Inspector::ComputeIndexStats() const { return impl_->ComputeIndexStats(); }

}  // namespace lilcache
