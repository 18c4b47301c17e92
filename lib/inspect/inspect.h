// inspect: a read-only inspector of one cache's files (docs/format.md), for
// operator tools such as lilcache-dump and lilcache-compact --dry-run.
//
// It never modifies anything, even a corrupt file: files are opened
// O_RDONLY | O_NOFOLLOW | O_CLOEXEC and mapped PROT_READ (through an Env,
// like every system call of the library), no lock is taken
// (lock bytes are only queried, with F_OFD_GETLK, to count live processes),
// and nothing is repaired. Everything that is wrong with the files (missing,
// bad magic, wrong version, truncated, damaged records) is reported as data,
// so that a caller can show as much as can be read. Only a meta file that
// cannot be opened or read at all is an Error. The headers are judged by the
// engine's validators (format/meta_header.h, data_header.h, index_header.h),
// each of their findings being one problem; the index is read through the
// engine's Index (a read-only view).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "format/record.h"

namespace lilcache {

class Env;

// Something wrong with a file: which file, and what.
struct InspectProblem {
  std::string file;
  std::string what;
};

// NAME.meta's header (docs/format.md, "NAME.meta").
struct InspectMeta {
  std::string path;
  std::uint64_t file_size = 0;
  bool valid = false;  // right size, magic, version, header_size: the fields below mean something
  std::uint32_t version = 0;
  std::uint64_t salt = 0;
  std::uint64_t created_ms = 0;
  std::uint64_t generation = 0;
  std::uint64_t durable_gen = 0;  // the newest generation known durable (0 = none)
  std::uint64_t next_seq = 0;
  std::uint64_t purge_seq = 0;
  std::uint32_t writer_state = 0;
  std::uint32_t flags = 0;
  std::uint64_t last_snapshot_ms = 0;
  std::string boot_id;
  std::uint64_t compactions = 0;
  std::uint64_t snapshots = 0;
  std::uint64_t evictions = 0;
  std::uint64_t max_bytes = 0;  // the cache's size limit (0 = none)
  std::uint64_t processes = 0;  // process slots whose owner holds its SLOT lock now
};

// NAME.G.data's header (docs/format.md, "NAME.G.data").
struct InspectData {
  std::string path;
  bool present = false;  // opened and at least a header long
  bool valid = false;    // magic and version right: records can be scanned
  std::uint64_t file_size = 0;
  std::uint32_t version = 0;
  std::uint64_t generation = 0;
  std::uint64_t salt = 0;
  std::uint64_t created_ms = 0;
  std::uint64_t tail = 0;
  std::uint64_t capacity = 0;
  std::uint64_t dead_bytes = 0;
  std::uint64_t verified_upto = 0;
};

// NAME.G.index's header (docs/format.md, "NAME.G.index").
struct InspectIndex {
  std::string path;
  bool present = false;  // opened and at least a header long
  bool valid = false;    // magic, version and slot count right: slots can be read
  std::uint64_t file_size = 0;
  std::uint32_t version = 0;
  std::uint64_t generation = 0;
  std::uint64_t slot_count = 0;
  std::uint64_t used_slots = 0;
};

struct InspectHeader {
  InspectMeta meta;
  InspectData data;
  InspectIndex index;
};

// What a record of the log is worth now.
enum class RecordState {
  kLive,       // the index points at it; a SET, not purged, not expired
  kDead,       // a newer record of its key replaced it (the index points elsewhere),
               // or an aborted one (a conditional write that lost its race)
  kExpired,    // current, but its expiry time has passed
  kTombstone,  // a delete (pop/erase) record
  kPurged,     // current, but its seq is <= purge_seq
  kDamaged,    // plausible header, bad checksum
  kUnknown,    // the index is unreadable, so current or not cannot be told
};
inline constexpr std::size_t kRecordStates = 7;
const char* RecordStateName(RecordState s);

// One record of the log. key and value view the mapped file: valid only
// during the ScanLog callback that receives them.
struct InspectRecord {
  std::uint64_t offset = 0;
  std::uint64_t size = 0;  // bytes in the log, padding included
  std::uint64_t seq = 0;
  record::RecordType type = record::RecordType::kSet;
  std::string_view key;
  std::string_view value;
  std::uint64_t expires_ms = 0;  // 0 = never
  bool checksum_ok = true;
  RecordState state = RecordState::kLive;
};

// A run of bytes of the log holding no valid record: from the first invalid
// position to where scanning resynchronized (the next valid or plausible
// record, or the end of the scan).
struct DamagedRegion {
  std::uint64_t offset = 0;                           // where the damage starts
  std::uint64_t end = 0;                              // where scanning resumed
  record::Damage damage = record::Damage::kBadMagic;  // why the record at `offset` is invalid
  bool zeros = false;  // all zero: a hole left by a writer killed mid-write, not corruption
};

// Totals of a scan of the log.
struct LogSummary {
  std::uint64_t scanned_from = 0, scanned_to = 0;        // byte range scanned
  std::array<std::uint64_t, kRecordStates> records{};    // per RecordState
  std::array<std::uint64_t, kRecordStates> bytes{};      // per RecordState
  std::uint64_t damaged_regions = 0, damaged_bytes = 0;  // corruption (not zeros)
  std::uint64_t holes = 0, hole_bytes = 0;               // zero regions
  std::uint64_t count(RecordState s) const { return records[static_cast<std::size_t>(s)]; }
  std::uint64_t bytes_of(RecordState s) const { return bytes[static_cast<std::size_t>(s)]; }
};

// The index's load and probe lengths (1 = the key sits in its home slot).
struct IndexStats {
  std::uint64_t slot_count = 0;
  std::uint64_t occupied = 0;   // non-empty slots counted (the header says used_slots)
  std::uint64_t bad_slots = 0;  // slots pointing at no record of their key
  double load = 0;              // occupied / slot_count
  std::uint64_t max_probe = 0;
  double mean_probe = 0;
  std::map<std::uint64_t, std::uint64_t> probe_histogram;  // probe length -> slots
  std::vector<InspectProblem> problems;                    // the first few bad slots
};

// A read-only view of the files of one cache: NAME.meta and the generation it
// names. The files are mapped at Open; later changes by live processes show
// through the shared mappings (the live generation may even be replaced
// meanwhile: the files stay readable through our descriptors).
//
// Thread-safety: an Inspector is immutable after Open, and its const methods
// may be called from any number of threads. It takes no lock, so what it
// reports of a cache in use is not a consistent snapshot: records being
// written may show as torn (damaged) or as zero holes at the tail.
class Inspector {
 public:
  struct Callbacks {
    // Called for each record in log order; return false to stop the scan.
    std::function<bool(const InspectRecord&)> on_record;
    // Called for each damaged region or hole, in log order.
    std::function<void(const DamagedRegion&)> on_damage;
  };

  // Opens the cache `name` under `root` ("" = the default root, as in
  // Options). now_ms (0 = the env's wall clock) decides what is expired.
  // Every system call goes through `env` (nullptr = Env::Default()), which
  // must outlive the Inspector. Throws Error if NAME.meta cannot be opened or
  // is shorter than its header; everything else is recorded in problems().
  static Inspector Open(std::string_view root, std::string_view name, std::uint64_t now_ms = 0,
                        Env* env = nullptr);

  Inspector(Inspector&&) noexcept;
  Inspector& operator=(Inspector&&) noexcept;
  ~Inspector();

  const std::string& root() const;
  const std::string& name() const;
  const InspectHeader& header() const;
  // Problems with the files found by Open.
  const std::vector<InspectProblem>& problems() const;
  // True when the data file can be scanned (ScanLog finds records).
  bool log_readable() const;

  // Scans the log from its header to its tail (or the end of a truncated
  // file), resynchronizing past damage 8 bytes at a time (docs/format.md).
  LogSummary ScanLog(const Callbacks& callbacks = {}) const;

  // Load and probe lengths of the index (empty if it is unreadable).
  IndexStats ComputeIndexStats() const;

  class Impl;

 private:
  explicit Inspector(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace lilcache
