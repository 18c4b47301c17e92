// lilcache: an embedded key-value cache shared by any number of processes and
// threads on one machine, with no server and no coordinator process.
//
// A cache is a set of files under a root directory (see docs/format.md): an
// append-only log of set/delete records, mmapped MAP_SHARED by every process
// that opens it, and a shared hash index mapping each key to its newest record.
// Every operation below is safe to call from any number of threads and
// processes at once.
//
// Guarantees (see README.md, "Guarantees", and docs/concurrency.md):
//  * Linearizable per key: once set() returns, every get() in any process
//    returns that value or a newer one. Concurrent sets of one key leave one of
//    the values, never a mix. pop() hands each value to exactly one caller.
//  * A process killed at any instruction (SIGKILL included) loses only its own
//    in-flight operation; every write acknowledged to any process survives and
//    the cache reopens. Power loss: a write survives once a snapshot
//    (Options::snapshot, Cache::snapshot()) or a sync() completed after it.
//  * get(), contains() and size() take no lock and never wait for a writer.
//    set() and pop() take no lock on the hot path; they make a system call
//    only when the log must grow.
//
// Errors: every failure throws lilcache::Error, whose what() names the cause
// (bad argument, the limit exceeded, the file and what is wrong with it, or
// the failing system call and errno).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace lilcache {

class Env;

// Every failure of the library: bad argument, I/O error, corruption, limits.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Hard limits, enforced by set() and pop() with an Error naming the limit.
inline constexpr std::size_t kMaxKeyBytes = 4096;                 // 1..4096 bytes
inline constexpr std::size_t kMaxValueBytes = 64u * 1024 * 1024;  // 0..64 MiB
inline constexpr std::size_t kMaxNameBytes = 100;                 // cache names

// How a cache is opened. A plain aggregate: Options{.root = "/x", .expires = "1d"}.
// Options are per handle: two processes may open one cache with different
// `expires` or `loglevel`; they share the data.
struct Options {
  // Directory holding the cache's files. Created (with parents) mode 0700 if
  // missing; files inside are created mode 0600.
  // "" (default) = $LILCACHE_ROOT, else $XDG_CACHE_HOME/lilcache, else
  // $HOME/.cache/lilcache.
  std::string root{};

  // Interval between snapshots (durable, compacted points in time), e.g.
  // "120s" (at least "1s"). "" (default) = no periodic snapshot. Every
  // process that opens the cache with an interval runs a background thread;
  // per interval, exactly one of them (whichever takes the COMPACT lock
  // first once the last snapshot of any process is an interval old) writes
  // the snapshot. The thread stops when the handle closes.
  std::string snapshot{};

  // Durability against power loss and kernel crashes. (Against the crash or
  // SIGKILL of any process, every write is durable as soon as it returns,
  // whatever this says: the kernel owns the shared pages.)
  //   "" (default): a write is durable once a snapshot (periodic, snapshot()
  //       or compact()) or a sync() completed after it.
  //   "always": set/pop/erase write their record to disk (msync MS_SYNC of
  //       its pages) before they return, purge() the meta page. Costs a disk
  //       flush per write; bench/README.md has the measured cost.
  //   a duration, e.g. "100ms" (at least "1ms"): this handle's background
  //       thread calls sync() at that interval, so a write is durable at most
  //       about that long after it returns.
  // Applies to the writes of this handle (another handle's choice is its own).
  std::string sync{};

  // Default time-to-live of every key set through this handle without its own
  // ttl, e.g. "1d". "" (default) = keys never expire.
  // Durations: a sequence of <integer><unit> with unit one of ms s m h d w,
  // e.g. "500ms", "120s", "1h30m". Expiry uses the wall clock (CLOCK_REALTIME)
  // so that all processes agree on it.
  std::string expires{};

  // Log level of <root>/<name>.log: "trace" "debug" "info" "warn" "error"
  // "critical" "off", any case. "" (default) = "info" (or $LILCACHE_LOGLEVEL).
  std::string loglevel{};

  // Size limit of the live data, in bytes of log records (key + value + 40
  // bytes of header, rounded up to 8). 0 (default) = unlimited. When the live
  // data of the log passes it, a background compaction evicts the least
  // recently stored keys (the head of the log) until it is 90% of the limit;
  // evictions are counted in Stats. This is a cache, not a database.
  std::uint64_t max_bytes = 0;

  // Automatic compaction: starts when dead bytes (overwritten, deleted and
  // expired records) exceed this fraction of a log of more than 4 MiB, so the
  // file stays within about 1 / (1 - ratio) times the live data. 0 = never on
  // dead space (index growth and max_bytes still compact). Default 0.4: at
  // most ~1.7x plus what is written during the compaction; while the log is
  // over 1.5x its live data, a compaction throttles writers (~50 us per
  // write) so that they cannot outrun it.
  double compact_dead_ratio = 0.4;

  // Whether open() creates a cache (and its root directory) that does not
  // exist. false: opening a missing cache is an Error "no such cache" and
  // creates no file at all (what tools that inspect or maintain existing
  // caches want). Default true.
  bool create_if_missing = true;

  // Operating-system seam: files, maps, locks and clocks. nullptr (default) =
  // Env::Default(). Tests pass a fault-injecting Env or a fake clock. The Env
  // must outlive every Cache opened with it.
  Env* env = nullptr;
};

// Counters of one cache, summed over every process that has used it since it
// was created (purge() does not reset them), plus sizes of the current log.
struct Stats {
  std::uint64_t hits = 0;        // get/pop/contains that found a live key
  std::uint64_t misses = 0;      // ... that found nothing (or an expired key)
  std::uint64_t sets = 0;        // successful set() calls
  std::uint64_t deletes = 0;     // pop()/erase() that removed a live key
  std::uint64_t expired = 0;     // lookups that found a key past its TTL
  std::uint64_t keys = 0;        // live, unexpired keys now (like size())
  std::uint64_t bytes_live = 0;  // log bytes of the records those keys use
  std::uint64_t bytes_dead = 0;  // log bytes of overwritten/deleted/expired records
  std::uint64_t bytes_file = 0;  // size of this generation's log up to its end (4 KiB header included)
  std::uint64_t generation = 0;  // log generation (bumped by compaction/rebuild)
  std::uint64_t index_slots = 0;  // capacity of the hash index
  std::uint64_t index_used = 0;   // occupied index slots (live + dead keys)
  std::uint64_t processes = 0;    // processes that have the cache open now
  std::uint64_t compactions = 0;  // generation switches since the cache was created
  std::uint64_t snapshots = 0;    // snapshots (periodic or snapshot()/compact()) since then
  std::uint64_t last_snapshot_ms = 0;  // wall clock of the last one (0 = none)
  std::uint64_t evictions = 0;    // keys dropped to keep under Options::max_bytes
};

// What one compaction did (Cache::compact()).
struct CompactionResult {
  bool compacted = false;            // false: another process was compacting; nothing done
  std::uint64_t generation = 0;      // the generation now live
  std::uint64_t bytes_before = 0;    // log bytes of the old generation
  std::uint64_t bytes_after = 0;     // log bytes of the new one
  std::uint64_t keys_live = 0;       // records copied (live, unexpired keys)
  std::uint64_t keys_expired = 0;    // keys dropped because their TTL had passed
  std::uint64_t keys_deleted = 0;    // deleted (or purged) keys whose records were dropped
  std::uint64_t keys_evicted = 0;    // live keys dropped to keep under Options::max_bytes
  std::chrono::microseconds duration{0};      // whole compaction
  std::chrono::microseconds writer_pause{0};  // how long writers were held for the switch
};

// A handle to one named cache. Cheap to move, not copyable. Thread-safe: one
// Cache may be used by any number of threads at once. Handles in different
// processes (or several in one process) share the same data.
//
// fork(): a child may keep using a Cache opened by its parent; the handle
// notices the new pid and re-attaches (new descriptors and locks) on its
// first call in the child.
class Cache {
 public:
  // Opens (creating if needed) the cache `name` under options.root.
  // Names: 1..kMaxNameBytes of [A-Za-z0-9_.-], not "." or "..".
  // Throws Error on a bad name or option, on an unusable root, and on files
  // that are corrupt, of an unknown format version or not lilcache files (the
  // message names the file and what is wrong). A damaged log tail (a torn or
  // corrupted last record) is repaired, losing only the damaged record.
  static Cache open(std::string_view name = "default", const Options& options = {});

  Cache(Cache&&) noexcept;
  Cache& operator=(Cache&&) noexcept;
  ~Cache();

  // Stores value under key, replacing any previous value. The key lives for
  // Options::expires (if set) or forever. Keys are 1..kMaxKeyBytes arbitrary
  // bytes, values 0..kMaxValueBytes arbitrary bytes. Throws Error on a limit
  // or when the log cannot grow (the message says "no space left" on ENOSPC).
  // When it returns, the value is visible to every process.
  void set(std::string_view key, std::string_view value);

  // As above, expiring after ttl (> 0; rounded to whole milliseconds).
  void set(std::string_view key, std::string_view value, std::chrono::milliseconds ttl);

  // The value of key, or nullopt if absent or expired.
  std::optional<std::string> get(std::string_view key);

  // Removes key and returns its value, or nullopt if it was absent. Among any
  // number of racing pop() calls, in any processes, exactly one gets a value.
  std::optional<std::string> pop(std::string_view key);

  // Removes key. Returns whether a live value was removed.
  bool erase(std::string_view key);

  // Whether key holds a live, unexpired value.
  bool contains(std::string_view key);

  // Removes every key, for every process, at once: a get() that starts after
  // purge() returns, in any process, finds nothing older than the purge.
  void purge();

  // Number of live, unexpired keys. O(index size): it scans the index.
  std::size_t size();

  // Keys with the given prefix (all keys for ""), at most `limit`, in no
  // particular order. A snapshot-free scan: keys set or removed during the
  // call may or may not be listed.
  std::vector<std::string> keys(std::string_view prefix = {},
                                std::size_t limit = SIZE_MAX);

  // Calls fn(key, value) for every live key until fn returns false. The views
  // are valid only during that call of fn. Same consistency as keys().
  void for_each(const std::function<bool(std::string_view key, std::string_view value)>& fn);

  // Counters and sizes (see Stats). O(index size).
  Stats stats();

  // Compacts the log now, in the calling thread: copies the live records into
  // a new generation and switches every process to it (docs/concurrency.md).
  // Other processes keep reading and writing meanwhile; writers pause only
  // for the final switch. Waits for a compaction by another thread of this
  // process; returns compacted=false at once if another process is compacting. Throws Error on I/O failure, leaving the cache
  // as it was.
  CompactionResult compact();

  // Takes a snapshot now: a compaction whose result, and everything written
  // before it, is on disk (fsync) when it returns. The same as what the
  // periodic snapshots of Options::snapshot do. Returns compacted=false if
  // another process is compacting (its result is not yet known durable).
  CompactionResult snapshot();

  // Makes every write that returned before this call durable (msync of the
  // log, fsync of the index and meta file) without compacting. Throws Error.
  void sync();

  // The cache's name and the directory holding its files.
  const std::string& name() const;
  const std::string& root() const;

  class Impl;  // lib/cache_impl.h

 private:
  explicit Cache(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// ---- Module-level functions mirroring the seed design ------------------------
// A process-wide default cache. init() selects it (closing any previous one);
// without init(), the first call opens the cache "default" under the default
// root. Thread-safe. Errors as in Cache.
void init(std::string_view name = "default", const Options& options = {});
void set(std::string_view key, std::string_view value);
void set(std::string_view key, std::string_view value, std::chrono::milliseconds ttl);
std::optional<std::string> get(std::string_view key);
std::optional<std::string> pop(std::string_view key);
bool contains(std::string_view key);
void purge();
// The default cache itself (opening it if needed), for everything else.
Cache& default_cache();

// Parses a duration such as "500ms", "120s", "5m", "2h", "1d", "1w", "1h30m".
// Throws Error quoting the input on anything else ("", "12x", "-1s", overflow).
std::chrono::milliseconds parse_duration(std::string_view text);

// Throws Error if `name` is not a valid cache name (see Cache::open).
void validate_name(std::string_view name);

// Names of the caches under `root` ("" = the default root, as in Options),
// sorted: every valid name N with a file N.meta there. Throws Error if the
// directory cannot be read.
std::vector<std::string> list_caches(std::string_view root = {});

// The library's version, e.g. "0.1.0".
std::string_view version();

}  // namespace lilcache
