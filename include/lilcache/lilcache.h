// lilcache: an embedded key-value cache shared by any number of processes and
// threads on one machine, with no server and no coordinator process.
//
// A cache is a set of files under a root directory (see docs/format.md): an
// append-only log of set/delete records, mmapped MAP_SHARED by every process
// that opens it, and a shared hash index mapping each key to its newest record.
// Keys and values are arbitrary bytes (NULs included).
//
//   #include <lilcache/lilcache.h>
//
//   lilcache::Cache cache = lilcache::Cache::open("sessions", {.root = "/var/cache/app"});
//   cache.set("a", "b");                                  // visible to every process now
//   std::optional<std::string> v = cache.get("a");        // "b", in any process
//   std::optional<std::string> once = cache.pop("a");     // one caller in all gets "b"
//
// Thread-safety: every function in this header is safe to call from any
// number of threads at once (but a Cache must not be destroyed or assigned
// to while another thread uses it), and every Cache operation from any
// number of processes at once (each process opens the cache itself; handles
// are never shared across processes except by fork(), see Cache). No
// function is async-signal-safe.
//
// Guarantees (see README.md, "Guarantees", and docs/concurrency.md):
//  * Linearizable per key: once set() returns, every get() in any process
//    returns that value or a newer one. Concurrent sets of one key leave one of
//    the values, never a mix. pop() hands each value to exactly one caller.
//  * A process killed at any instruction (SIGKILL included) loses only its own
//    in-flight operation; every write acknowledged to any process survives and
//    the cache reopens. Power loss: a write survives once a snapshot
//    (Options::snapshot, Cache::snapshot()) or a sync() completed after it,
//    or as soon as it returns with Options::sync = "always".
//  * get(), contains() and size() take no lock and never wait for a writer.
//    set() and pop() take no lock on the hot path; they make a system call
//    only when the log must grow.
//
// Errors: every failure throws lilcache::Error, whose code() says what kind
// of failure it is (ErrorCode: bad argument, limit, no space, corrupt file,
// ...) and whose what() names the cause (the argument, the limit exceeded,
// the file and what is wrong with it, or the failing system call and errno).
// A "miss" (absent, expired or purged key) is not an error: it is an empty
// std::optional or false. std::bad_alloc may also escape, as from any C++
// library.
//
// Lifetimes: every value and key the library returns is an owning copy
// (std::string, std::vector), valid after the cache is closed and unaffected
// by later writes. The exceptions say so: the std::string_view arguments of
// for_each()'s callback (valid during that call), Cache::name() and root()
// (valid as long as the handle), default_cache() (until the next init()).
// The library keeps no pointer to any argument after a call returns, except
// Options::env.
//
// Logging: the library never prints. Each cache logs to <root>/<name>.log
// (spdlog; level Options::loglevel).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lilcache/export.h"

namespace lilcache {

class Env;

// What kind of failure an Error is: what a caller can do about it. The
// message (what()) says more and may change between versions; the kind does
// not (new kinds may be added: treat an unknown one like io). to_string()
// names each kind as spelled here ("no_space"); the HTTP front end answers
// with a status per kind (docs/rest.md, "Status codes").
enum class ErrorCode {
  // A bad argument or option: an invalid key (empty), cache name, duration,
  // ttl <= 0, Options or ServerOptions field (the message names it), a cache
  // root that is not a directory. Fix the caller; retrying cannot help.
  invalid_argument,
  // Over a hard limit: a key over kMaxKeyBytes, a value over kMaxValueBytes,
  // more keys than one index holds, a generation's log or a file's address
  // reservation full, the sequence numbers of a cache used up. Store less (a
  // shorter key, a smaller value); the cache stays usable. The last ones are
  // cleared by a compaction (compact()), the sequence numbers only by a new
  // cache.
  limit,
  // The cache does not exist (Options::create_if_missing = false). Create it,
  // or check the name and root.
  no_such_cache,
  // The file system is full (ENOSPC) or the user's quota is used up (EDQUOT).
  // The cache stays usable and keeps every earlier write; retry once space is
  // freed (a compaction, possibly on another disk, shrinks the files).
  no_space,
  // Another failing system call (EIO, EMFILE, ENOMEM, ...; the message names
  // the call, the file and errno). Maybe transient: retry, then look at the
  // system (the cache's log file has the details).
  io,
  // A cache file is damaged beyond what recovery repairs, or is not a
  // lilcache file (bad magic number, impossible header, a record failing its
  // checksum: the message names the file). A lone opener rebuilds what it can
  // on the next open; otherwise move the cache aside or delete it.
  corrupt,
  // A file of a format version this library does not know (written by a
  // newer lilcache), or a file system it cannot run on (network file
  // systems, no fallocate). Use the version that wrote the cache, or move the
  // root to a local file system such as ext4, xfs, btrfs or tmpfs.
  unsupported,
  // A root or cache file this user must not trust or cannot use: another
  // user's, writable by group or others, a symbolic link where none is
  // allowed (Options::root), or a system call refused with EACCES or EPERM.
  // Run as the owner or fix the mode (docs/operations.md, "Files and
  // permissions"); retrying cannot help.
  permission,
  // Others hold what the call needs: 1,024 handles already have the cache
  // open, or writers kept outrunning a compaction. Retry later.
  busy,
  // The object cannot do this now: a moved-from Cache was used, or
  // Server::run() called twice. A bug in the caller.
  invalid_state,
};

// The name of a kind as spelled in ErrorCode ("no_space"); "unknown" for a
// value that is none of them.
constexpr std::string_view to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::invalid_argument:
      return "invalid_argument";
    case ErrorCode::limit:
      return "limit";
    case ErrorCode::no_such_cache:
      return "no_such_cache";
    case ErrorCode::no_space:
      return "no_space";
    case ErrorCode::io:
      return "io";
    case ErrorCode::corrupt:
      return "corrupt";
    case ErrorCode::unsupported:
      return "unsupported";
    case ErrorCode::permission:
      return "permission";
    case ErrorCode::busy:
      return "busy";
    case ErrorCode::invalid_state:
      return "invalid_state";
  }
  return "unknown";
}

// Every failure of the library: its kind (code(), see ErrorCode) and what()
// naming the cause (the argument and limit, the file and what is wrong with
// it, or the failing system call and errno). Tell causes apart by code();
// the messages are for people.
class LILCACHE_EXPORT Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& what) : std::runtime_error(what), code_(code) {}
  Error(ErrorCode code, const char* what) : std::runtime_error(what), code_(code) {}

  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

// Hard limits. A key over kMaxKeyBytes bytes makes every keyed operation
// throw Error with code limit (an empty key: invalid_argument), naming the
// limit; so does a value over kMaxValueBytes in set(). Names are checked by
// validate_name() and Cache::open().
inline constexpr std::size_t kMaxKeyBytes = 4096;                 // 1..4096 bytes
inline constexpr std::size_t kMaxValueBytes = 64u * 1024 * 1024;  // 0..64 MiB
inline constexpr std::size_t kMaxNameBytes = 100;                 // cache names

// How a cache is opened. A plain aggregate: Options{.root = "/x", .expires = "1d"}.
// Options are per handle: two processes may open one cache with different
// `expires` or `loglevel`; they share the data. Cache::open() validates every
// field and throws Error naming the field on a bad value; it keeps no
// reference to the Options (but keeps `env`).
struct Options {
  // Directory holding the cache's files. Created (with parents) mode 0700 if
  // missing; files inside are created mode 0600.
  // "" (default) = $LILCACHE_ROOT, else $XDG_CACHE_HOME/lilcache, else
  // $HOME/.cache/lilcache (read at each open).
  // A cache belongs to the user who owns its root, and only that user uses
  // it: open() (the superuser's too) throws Error, naming the path, the owner
  // or mode found and what to do, on a root not owned by the effective uid or
  // writable by group or others, a root that is a symbolic link owned by
  // another user (one of yours or root's is followed, and its target
  // checked), and a cache file that is not a regular file of yours with mode
  // 0600. See docs/operations.md, "Files and permissions".
  std::string root{};

  // Interval between snapshots (durable, compacted points in time), e.g.
  // "120s" (at least "1s"). "" (default) = no periodic snapshot. Every
  // process that opens the cache with an interval runs a background thread;
  // per interval, exactly one of them (whichever takes the COMPACT lock
  // first once the last snapshot of any process is an interval old) writes
  // the snapshot. The first is due one interval after the open if the cache
  // never had one. The thread stops when the handle closes. Failures of a
  // background snapshot are logged (level error), not thrown.
  std::string snapshot{};

  // Durability against power loss and kernel crashes. (Against the crash or
  // SIGKILL of any process, every write is durable as soon as it returns,
  // whatever this says: the kernel owns the shared pages.)
  //   "" (default): a write is durable once a snapshot (periodic, snapshot()
  //       or compact()) or a sync() completed after it.
  //   "always": set/pop/erase write their record to disk (msync MS_SYNC of
  //       its pages) before they return, purge() the meta page; the first
  //       write after a compaction also the meta page naming the new
  //       generation. Costs a disk flush per write; bench/README.md has the
  //       measured cost.
  //   a duration, e.g. "100ms" (at least "1ms"): this handle's background
  //       thread calls sync() at that interval, so a write is durable at most
  //       about that long after it returns.
  // Applies to the writes of this handle (another handle's choice is its own).
  std::string sync{};

  // Default time-to-live of every key set through this handle without its own
  // ttl, e.g. "1d". "" (default) = keys never expire.
  // Durations: a sequence of <integer><unit> with unit one of w d h m s ms,
  // in that order, each at most once, lower case, no spaces, no fractions,
  // e.g. "500ms", "120s", "1h30m" (not "30m1h", "1.5s" or "5S"). A bad one
  // is an Error naming the field: "expires: invalid duration ...". Expiry
  // uses the wall clock (CLOCK_REALTIME) so that all processes agree on it:
  // setting the clock forward expires keys early, setting it back keeps them
  // longer.
  std::string expires{};

  // Log level of <root>/<name>.log: "trace" "debug" "info" "warn" "error"
  // "critical" "off", any case. "" (default) = "info" (or $LILCACHE_LOGLEVEL).
  // The log file is shared by every process and handle of the cache.
  std::string loglevel{};

  // Size limit of the cache's live data, in bytes of log records (key +
  // value + 40 bytes of header, rounded up to 8). The limit belongs to the
  // cache (it is stored in NAME.meta and applies to every process): 0
  // (default) leaves it as it is (no limit for a new cache); any other value
  // becomes the cache's limit (the last opener that gives one wins);
  // UINT64_MAX lifts a limit. When the live data passes it, a background
  // compaction (by whichever process writes next, a snapshot, or
  // lilcache-compact) evicts the least recently stored keys (the head of the
  // log) until it is 90% of the limit; evictions are counted in Stats. This
  // is a cache, not a database: between compactions the live data may exceed
  // the limit by what is written meanwhile.
  std::uint64_t max_bytes = 0;

  // Automatic compaction: starts when dead bytes (overwritten, deleted and
  // expired records) exceed this fraction of a log of more than 4 MiB, so the
  // file stays within about 1 / (1 - ratio) times the live data. 0 = never on
  // dead space (index growth and max_bytes still compact). Default 0.4: at
  // most ~1.7x plus what is written during the compaction. An automatic
  // compaction syncs nothing (only snapshots do; docs/concurrency.md,
  // "Durability"). Backpressure: once dead bytes pass max(0.3, ratio + 0.05)
  // of the log, a write (set, pop, erase; each item of a batch) sleeps ~50 us
  // after it is done with a probability rising to 1 at max(0.48, that +
  // 0.03), spread evenly over a thread's writes, so writers faster than
  // compaction are slowed just enough and the file stays within 2x the live
  // data; if no compaction can run (disk full, another process holding the
  // compaction lock for long), writers stay slowed until one does.
  double compact_dead_ratio = 0.4;

  // How long get_or_set() waits for another caller's computation of the same
  // key (in any process) before it throws Error (code busy), e.g. "30s"
  // (default, also for ""; at least "1ms"). A waiter whose computing caller dies or throws
  // does not wait for this: it takes over the computation at once.
  std::string get_or_set_timeout = "30s";

  // Called by get_or_set() of this handle between two polls while it waits
  // for another caller's computation (every 50 us at first, backing off to
  // 5 ms), in the waiting thread, holding no lock of the cache. An exception
  // it throws ends the wait and reaches get_or_set()'s caller (nothing is
  // stored): what a binding needs to let its user interrupt a wait (Python's
  // Ctrl-C). nullptr (default): none. Copied by open().
  std::function<void()> get_or_set_wait_hook{};

  // Whether open() creates a cache (and its root directory) that does not
  // exist. false: opening a missing cache is an Error "no such cache" and
  // creates no file at all (what tools that inspect or maintain existing
  // caches want). Default true.
  bool create_if_missing = true;

  // Whether this handle belongs to a short-lived process (one command of a
  // shell script: the lilcache tool's get, set...): its open is logged at
  // debug instead of info, so that a loop of such commands does not grow
  // NAME.log by a line each. Long-lived processes (servers, `lilcache
  // serve`) keep the default, false: their open is logged at info.
  bool one_shot = false;

  // Where the cache lives (docs/cluster.md):
  //   "" (default): $LILCACHE_BACKEND if set and not empty, else "local".
  //   "local": this machine's files under `root` (everything above).
  //   "redis-cluster://[[user]:password@]host:port[,host:port...][?opts]":
  //       a Redis Cluster (7.0 or later), reached through the seed nodes
  //       listed; the same API on many machines.
  //   "redis://[[user]:password@]host:port[?opts]": one Redis server.
  // opts: timeout=, connect_timeout=, retry_for= (durations), pool=<n>
  // (docs/cluster.md, "URLs"). With a Redis backend the cache `name` is a
  // key prefix on the servers; `root` holds only the text log
  // (<root>/<name>.log); what each operation does there, and the few it
  // refuses (Error unsupported), is listed op by op in docs/cluster.md. No
  // TLS. A bad URL is an Error (invalid_argument) naming it (without its
  // password).
  std::string backend{};

  // Operating-system seam: files, maps, locks and clocks (lilcache/env.h).
  // nullptr (default) = Env::Default(). Tests pass a fault-injecting Env or a
  // fake clock. Not owned: the Env must outlive every Cache opened with it.
  Env* env = nullptr;
};

// Counters of one cache, summed over every process that has used it since it
// was created (purge() does not reset them), plus sizes of the current log.
// A snapshot-free sum: counters of operations running during stats() may or
// may not be included.
// The counters (hits .. expired) are exact for the operations of the calling
// process's own handle that completed before stats() (whatever thread ran
// them). Another handle's counts (another process's, or another handle's in
// this process) lag: each handle counts in its own memory, per thread, and
// publishes to the shared meta file every 64 counts of a kind per thread and
// when the handle is closed (destroyed). So a process's operations are all
// counted once its handles are closed; a process that exits without closing
// them (killed, _exit) loses up to 63 per kind and thread.
struct Stats {
  std::uint64_t hits = 0;        // get/pop/contains that found a live key
  std::uint64_t misses = 0;      // ... that found nothing (or an expired key)
  std::uint64_t sets = 0;        // successful set() calls
  std::uint64_t deletes = 0;     // pop()/erase() that removed a live key
  std::uint64_t expired = 0;     // lookups that found a key past its TTL
  std::uint64_t keys = 0;        // live, unexpired keys now (like size())
  std::uint64_t bytes_live = 0;  // log bytes of the records those keys use
  std::uint64_t bytes_dead = 0;  // log bytes of overwritten/deleted/expired records
  std::uint64_t bytes_file =
      0;  // size of this generation's log up to its end (4 KiB header included)
  std::uint64_t generation = 0;        // log generation (bumped by compaction/rebuild)
  std::uint64_t index_slots = 0;       // capacity of the hash index
  std::uint64_t index_used = 0;        // occupied index slots (live + dead keys)
  std::uint64_t processes = 0;         // open handles now, in all processes (the caller's included)
  std::uint64_t compactions = 0;       // generation switches since the cache was created
  std::uint64_t snapshots = 0;         // snapshots (periodic or snapshot()/compact()) since then
  std::uint64_t last_snapshot_ms = 0;  // wall clock of the last one (0 = none)
  std::uint64_t evictions = 0;         // keys dropped to keep under Options::max_bytes
  std::uint64_t max_bytes = 0;         // the cache's size limit (Options::max_bytes; 0 = none)
};

// What a value holds, as its writer said: stored with the value (docs/
// format.md, "KIND"), so that language bindings keep their types (Python's
// bytes, str and int round-trip). get() ignores it and returns the bytes;
// nothing checks a value against its kind.
enum class ValueKind : std::uint8_t {
  bytes = 0,       // set(), add(), ... without WriteOptions; the CLI and HTTP writes
  text = 1,        // UTF-8 text
  integer = 2,     // the decimal text of an int64: what increment() stores
  serialized = 3,  // a binding's own encoding of an object (e.g. Python's pickle)
};

// How a typed write stores its value (set, add, compare_and_set, get_or_set
// with WriteOptions).
struct WriteOptions {
  // Time to live; 0 (default) = Options::expires (or never). Negative: Error
  // (invalid_argument).
  std::chrono::milliseconds ttl{0};
  // What the value holds (default bytes).
  ValueKind kind = ValueKind::bytes;
};

// A value and its kind (the typed get_or_set()).
struct TypedValue {
  std::string value;
  ValueKind kind = ValueKind::bytes;
};

// A value and its version (Cache::get_versioned()). The version is opaque: it
// identifies one write of the key (set, add, increment, compare_and_set,
// touch, persist, ...) and changes with every write, compactions excepted.
// Compare versions only for equality, and only those of one cache.
struct Versioned {
  std::string value;
  std::uint64_t version = 0;
  ValueKind kind = ValueKind::bytes;  // what its writer stored (ValueKind)
};

// Cache::ttl() of a key that never expires.
inline constexpr std::chrono::milliseconds kNoExpiry = std::chrono::milliseconds::max();

// What one compaction did (Cache::compact()).
struct CompactionResult {
  bool compacted = false;                     // false: another process was compacting; nothing done
  std::uint64_t generation = 0;               // the generation now live
  std::uint64_t bytes_before = 0;             // log bytes of the old generation
  std::uint64_t bytes_after = 0;              // log bytes of the new one
  std::uint64_t keys_live = 0;                // records copied (live, unexpired keys)
  std::uint64_t keys_expired = 0;             // keys dropped because their TTL had passed
  std::uint64_t keys_deleted = 0;             // deleted (or purged) keys whose records were dropped
  std::uint64_t keys_evicted = 0;             // live keys dropped to keep under Options::max_bytes
  std::chrono::microseconds duration{0};      // whole compaction
  std::chrono::microseconds writer_pause{0};  // how long writers were held for the switch
};

// A handle to one named cache. Cheap to move, not copyable. Thread-safe: one
// Cache may be used by any number of threads at once (no external locking).
// Handles in different processes (or several in one process) share the same
// data; each open handle holds one of the cache's 1,024 process slots until it
// is destroyed.
//
// A moved-from Cache may only be destroyed or assigned to; any other call
// throws Error (code invalid_state).
//
// fork(): a child may keep using a Cache opened by its parent; the handle
// re-attaches (a descriptor, locks and a process slot of its own) on its
// first call in the child (which also restarts the snapshot thread of a
// handle opened with Options::snapshot, since threads do not survive fork()).
// A child that never calls it holds nothing of the parent's: it may destroy
// it (exit), exec, or outlive the parent without affecting anyone.
class Cache {
 public:
  // Opens the cache `name` under options.root: creates the root directory and
  // the files if missing (unless options.create_if_missing is false), maps
  // them, claims a process slot, and starts the background thread if
  // options.snapshot or an interval options.sync is set.
  // Names: 1..kMaxNameBytes of [A-Za-z0-9_.-], not "." or "..".
  //
  // If no other process has the cache open, open() first checks the log
  // written since the last check and, if needed, rebuilds the cache into a
  // new generation: from the index after a process was killed in the middle
  // of a write (its unfinished operation does not take effect), or by
  // replaying the log after a reboot, a truncated file or a reported checksum
  // error (a torn or corrupted record costs only itself). That takes time
  // proportional to the log size, once. open() may also wait while another
  // process initializes or rebuilds the cache.
  //
  // Throws Error (its code in brackets) on a bad name or option, naming it
  // (invalid_argument); "no such cache" when options.create_if_missing is
  // false and the cache does not exist (no_such_cache); on a root that is
  // not a directory (invalid_argument) or cannot be created (errno's kind);
  // on a root not to be trusted (Options::root) or a cache file of another
  // user or open to other users (permission); when 1,024 handles already
  // have the cache open (busy); on files that are corrupt or not lilcache
  // files (corrupt), of an unknown format version or on a network file
  // system (unsupported), the message naming the file and what is wrong;
  // and on a failing system call (no_space, permission or io by errno). Safe
  // to call concurrently from any threads and processes, for the same or
  // different caches.
  LILCACHE_EXPORT static Cache open(std::string_view name = "default", const Options& options = {});

  LILCACHE_EXPORT Cache(Cache&&) noexcept;
  LILCACHE_EXPORT Cache& operator=(Cache&&) noexcept;

  // Closes the handle: stops this handle's background thread (waiting for a
  // compaction, snapshot or sync it is running to finish), unmaps the files and
  // releases its process slot and locks. The data stays: other handles and
  // later opens see every write. Must not run while another thread is still
  // calling this handle. Never throws.
  LILCACHE_EXPORT ~Cache();

  // Stores value under key, replacing any previous value. The key lives for
  // Options::expires (if set) or forever. Keys are 1..kMaxKeyBytes arbitrary
  // bytes, values 0..kMaxValueBytes arbitrary bytes; both are copied.
  // When it returns, the value is visible to every process, and survives the
  // crash of any process; it survives power loss once on disk (see
  // Options::sync: with "always", set() writes its record to disk before it
  // returns).
  //
  // Usually returns without waiting for anyone; it waits while a compaction
  // switches generations (the writer pause, see CompactionResult), sleeps
  // about 50 us while a compaction that is not keeping up throttles writers,
  // and, when the index is full, waits while it is grown.
  //
  // Throws Error on a key or value outside the limits (limit; an empty key:
  // invalid_argument), when the log cannot grow (no_space on ENOSPC or
  // EDQUOT, the message says "no space left"; the cache stays usable and
  // holds every earlier write), and on a failing system call (io) (with
  // Options::sync = "always", a failed msync: the value is then visible but
  // maybe not on disk).
  LILCACHE_EXPORT void set(std::string_view key, std::string_view value);

  // As above, expiring after ttl (> 0; rounded to whole milliseconds) instead
  // of Options::expires. Also throws Error (invalid_argument) if ttl <= 0.
  LILCACHE_EXPORT void set(std::string_view key, std::string_view value,
                           std::chrono::milliseconds ttl);
  // As above, with a kind and a ttl (WriteOptions).
  LILCACHE_EXPORT void set(std::string_view key, std::string_view value, const WriteOptions& w);

  // The value of key (a copy), or nullopt if it is absent, expired or purged.
  // Never waits for writers. Throws Error on a key outside the limits, and
  // if the record's checksum does not match (corrupt: the message
  // names it; the next open by a lone process rebuilds the cache from the log).
  LILCACHE_EXPORT std::optional<std::string> get(std::string_view key);

  // Removes key and returns its value (a copy), or nullopt if it was absent
  // (or expired, or purged). Among any number of racing pop() calls, in any
  // processes and threads, exactly one gets a given value. Errors as set()
  // (a pop appends a tombstone to the log) and get(); with Options::sync =
  // "always", a failed msync throws after the key was removed.
  LILCACHE_EXPORT std::optional<std::string> pop(std::string_view key);

  // As get(), into a caller's buffer: returns whether key holds a live value
  // and, if so, assigns it to `value` (whose capacity is reused: no
  // allocation once the buffer is large enough) and its kind to *kind (if
  // not null). If it returns false, `value` holds unspecified contents.
  // Same costs otherwise, guarantees and errors as get(). For read loops that
  // keep one buffer (a thread's, say: a buffer must not be shared by threads).
  LILCACHE_EXPORT bool get(std::string_view key, std::string& value, ValueKind* kind = nullptr);

  // As get() and pop(), with the kind its writer stored (ValueKind): what
  // language bindings that keep types call. Same costs, guarantees and errors.
  LILCACHE_EXPORT std::optional<TypedValue> get_typed(std::string_view key);
  LILCACHE_EXPORT std::optional<TypedValue> pop_typed(std::string_view key);

  // Removes key. Returns whether a live value was removed (false: it was
  // absent, expired or purged). Errors as pop().
  LILCACHE_EXPORT bool erase(std::string_view key);

  // Whether key holds a live, unexpired value. Like get() without copying
  // (or checksumming) the value. Throws Error on a key outside the limits.
  LILCACHE_EXPORT bool contains(std::string_view key);

  // ---- Conditional and read-modify-write operations -------------------------
  // Each is atomic across all threads and processes, takes no lock (a
  // compare-and-swap of the key's index slot, retried when another writer
  // changed the key meanwhile), and behaves like set() for limits, errors,
  // durability (Options::sync) and waiting. "Absent" means absent, expired or
  // purged, as for get(). Concurrent with purge(), one of them may still act
  // on the value from before the purge (docs/concurrency.md, "Conditional
  // writes").

  // Stores value under key only if the key is absent. Returns whether it
  // did. Among any number of racing add() calls of one absent key, in any
  // processes, exactly one returns true. The key expires after ttl (> 0), or
  // after Options::expires without one.
  LILCACHE_EXPORT bool add(std::string_view key, std::string_view value);
  LILCACHE_EXPORT bool add(std::string_view key, std::string_view value,
                           std::chrono::milliseconds ttl);
  LILCACHE_EXPORT bool add(std::string_view key, std::string_view value, const WriteOptions& w);

  // Adds delta to the integer stored under key and returns the new value. A
  // value is an integer when it is the decimal text of an int64 ("42",
  // "-7"; no sign "+", no spaces), and is stored so: get() returns "43". An
  // absent key starts at `initial` (so the first increment(k) returns 1) and
  // then expires after ttl (> 0) or Options::expires; a present key keeps
  // its expiry. The value's kind becomes ValueKind::integer. Throws Error (invalid_argument) if the
  // value is not such an integer, and (limit) if the result would overflow an int64; the key is
  // then unchanged. N concurrent increments of one key by 1 add exactly N.
  LILCACHE_EXPORT std::int64_t increment(std::string_view key, std::int64_t delta = 1,
                                         std::int64_t initial = 0);
  LILCACHE_EXPORT std::int64_t increment(std::string_view key, std::int64_t delta,
                                         std::int64_t initial, std::chrono::milliseconds ttl);
  // increment(key, -delta, initial[, ttl]); delta = INT64_MIN throws (limit).
  LILCACHE_EXPORT std::int64_t decrement(std::string_view key, std::int64_t delta = 1,
                                         std::int64_t initial = 0);
  LILCACHE_EXPORT std::int64_t decrement(std::string_view key, std::int64_t delta,
                                         std::int64_t initial, std::chrono::milliseconds ttl);

  // The value of key and its version, or nullopt if absent. For a
  // read-modify-write loop with compare_and_set().
  LILCACHE_EXPORT std::optional<Versioned> get_versioned(std::string_view key);

  // Stores value under key only if the key is present with this version
  // (from get_versioned()), i.e. nobody wrote it since. Returns whether it
  // did; false also if the key expired, was removed or purged. Among racing
  // calls with one version, at most one returns true. Expiry as set().
  LILCACHE_EXPORT bool compare_and_set(std::string_view key, std::uint64_t version,
                                       std::string_view value);
  LILCACHE_EXPORT bool compare_and_set(std::string_view key, std::uint64_t version,
                                       std::string_view value, std::chrono::milliseconds ttl);
  LILCACHE_EXPORT bool compare_and_set(std::string_view key, std::uint64_t version,
                                       std::string_view value, const WriteOptions& w);

  // Removes key only if it is present with this version. Returns whether it did.
  LILCACHE_EXPORT bool compare_and_erase(std::string_view key, std::uint64_t version);

  // ---- Expiry of one key ------------------------------------------------------
  // Gives a present key a new expiry, ttl (> 0) from now, keeping its value
  // (and kind).
  // Returns false if the key is absent. Rewrites the record (key and value are
  // appended to the log again: the cost of a set() of the same value) and
  // changes its version.
  LILCACHE_EXPORT bool touch(std::string_view key, std::chrono::milliseconds ttl);

  // Removes the expiry of a present key (it lives until removed), keeping its
  // value. Returns false if the key is absent. Cost as touch(). A key that
  // already has no expiry is left alone (true, no write).
  LILCACHE_EXPORT bool persist(std::string_view key);

  // The time key has left to live (rounded down to milliseconds, at least
  // 0ms), kNoExpiry if it never expires, or nullopt if it is absent. Takes no
  // lock, like get().
  LILCACHE_EXPORT std::optional<std::chrono::milliseconds> ttl(std::string_view key);

  // ---- Get or compute, once --------------------------------------------------
  // The value of key if present. Otherwise exactly ONE caller among all the
  // threads and processes asking for the key at once runs compute(), stores
  // its result (expiring after ttl, or Options::expires) and returns it; the
  // others wait for it and return that value without computing. The
  // computing caller holds a lease: an OFD lock on a byte of NAME.meta, one
  // of 65,536 per cache chosen by the key's hash (docs/format.md), which the
  // kernel drops if its process dies; a waiter then takes over at once. If
  // compute() throws, the exception reaches its caller (nothing is stored)
  // and a waiter computes instead.
  //
  // Costs: a hit costs a get(). A miss costs a lock system call, two get()s
  // and a set() around compute(). Waiters poll the key (every 50 us at
  // first, backing off to 5 ms), so a waiter returns within ~5 ms of the
  // value being stored. Two keys sharing a lease byte (1 in 65,536 pairs)
  // wait for each other's computation. Waits at most
  // Options::get_or_set_timeout, then throws Error (busy). compute() must not
  // call get_or_set() of a key that shares its lease (it would wait for
  // itself until the timeout); calling other operations of the cache is
  // fine. Errors as get() and set(), and whatever compute() throws.
  LILCACHE_EXPORT std::string get_or_set(std::string_view key,
                                         const std::function<std::string()>& compute);
  LILCACHE_EXPORT std::string get_or_set(std::string_view key,
                                         const std::function<std::string()>& compute,
                                         std::chrono::milliseconds ttl);
  // The same with kinds: compute says the kind of its value (stored with
  // WriteOptions::ttl; WriteOptions::kind is not used), and the value
  // returned, computed or found, comes with its kind.
  LILCACHE_EXPORT TypedValue get_or_set(std::string_view key,
                                        const std::function<TypedValue()>& compute,
                                        const WriteOptions& w);

  // ---- Batches ---------------------------------------------------------------
  // As that many get() calls, in order, with one pin of the current
  // generation for the whole batch (cheaper per key than single calls;
  // bench/README.md has the figures). Each key is read atomically; the
  // batch is not a snapshot (keys written meanwhile may be old or new).
  // Errors as get(); a bad key fails the whole batch before any is read.
  LILCACHE_EXPORT std::vector<std::optional<std::string>> get_many(
      const std::vector<std::string>& keys);

  // As that many set() calls, in order, in one writer section per up to 256
  // items. Each item is atomic; the batch is not (a reader may see some of
  // it, and a failure midway, e.g. no space, leaves the items before it
  // stored). Every key and value is checked before anything is written.
  // Backpressure (Options::compact_dead_ratio) applies per item: ~50 us
  // each, slept after each group of up to 256.
  LILCACHE_EXPORT void set_many(const std::vector<std::pair<std::string, std::string>>& items);
  LILCACHE_EXPORT void set_many(const std::vector<std::pair<std::string, std::string>>& items,
                                std::chrono::milliseconds ttl);

  // As that many erase() calls; returns how many live keys it removed.
  LILCACHE_EXPORT std::size_t erase_many(const std::vector<std::string>& keys);

  // Removes every key, for every process, at once: a get() that starts after
  // purge() returns, in any process, finds nothing older than the purge.
  // O(1): the space is reclaimed by the next compaction. Keys set
  // concurrently with purge() may or may not survive it.
  LILCACHE_EXPORT void purge();

  // Number of live, unexpired keys. O(index size): it scans the index, with
  // the consistency of keys().
  LILCACHE_EXPORT std::size_t size();

  // Keys with the given prefix (all keys for ""), at most `limit`, in no
  // particular order (which `limit` keys is unspecified). A snapshot-free
  // scan: keys set or removed during the call may or may not be listed.
  // O(index size). Returns copies.
  LILCACHE_EXPORT std::vector<std::string> keys(std::string_view prefix = {},
                                                std::size_t limit = SIZE_MAX);

  // Calls fn(key) for every live key with the given prefix (all keys for ""),
  // in no particular order, until fn returns false: keys() without copying
  // them, in bounded memory. Reads no values (verifies no checksum). The
  // view is valid only during that call of fn. Same consistency as keys():
  // a key present throughout the call is visited exactly once. fn may call
  // any method of this Cache; an exception thrown by fn stops the scan and
  // propagates.
  LILCACHE_EXPORT void for_each_key(std::string_view prefix,
                                    const std::function<bool(std::string_view key)>& fn);

  // Calls fn(key, value) for every live key, in no particular order, until fn
  // returns false. The views are valid only during that call of fn: copy what
  // you keep. Same consistency as keys(). fn may call any method of this
  // Cache, writes included (keys it writes may or may not be visited).
  // Throws Error if a visited record fails its checksum (see get()); an
  // exception thrown by fn stops the scan and propagates.
  LILCACHE_EXPORT void for_each(
      const std::function<bool(std::string_view key, std::string_view value)>& fn);

  // Counters and sizes (see Stats). O(index size). Throws Error on a failing
  // system call.
  LILCACHE_EXPORT Stats stats();

  // Compacts the log now, in the calling thread: copies the live records into
  // a new generation and switches every process to it (docs/concurrency.md).
  // Other processes keep reading and writing meanwhile; writers pause only
  // for the final switch. The new generation is on disk (fsync) when it
  // returns: a compaction is also a snapshot. Waits for a compaction by
  // another thread of this process; returns compacted=false at once if
  // another process is compacting. Throws Error on I/O failure (e.g. ENOSPC
  // for the new files), leaving the cache as it was.
  LILCACHE_EXPORT CompactionResult compact();

  // Takes a snapshot now: a compaction whose result, and everything written
  // before it, is on disk (fsync) when it returns. The same as what the
  // periodic snapshots of Options::snapshot do. Returns compacted=false if
  // another process is compacting (its result is not yet known durable).
  // Errors as compact().
  LILCACHE_EXPORT CompactionResult snapshot();

  // Makes every write that returned before this call durable (fsync of the
  // log and index, of the directory after an automatic compaction, msync of
  // the meta file) without compacting. Cost proportional to the dirty pages
  // (after an automatic compaction, which syncs nothing: the whole log).
  // Throws Error if a sync fails (EIO).
  LILCACHE_EXPORT void sync();

  // The cache's name and the directory holding its files (Options::root
  // resolved). The references are valid as long as the handle.
  LILCACHE_EXPORT const std::string& name() const;
  LILCACHE_EXPORT const std::string& root() const;

  // The Env this handle makes its system calls through (Options::env, or
  // Env::Default()). Whatever serves or maintains this cache in the process
  // (lilcache::Server's log file) uses it too, so that an Env injecting
  // faults sees every file access made for the cache.
  LILCACHE_EXPORT Env* env() const;

  class Backend;  // lib/engine/backend.h: what a Cache forwards to
  class Impl;     // lib/engine/cache_impl.h: the local engine

 private:
  explicit Cache(std::unique_ptr<Backend> impl);
  std::unique_ptr<Backend> impl_;
};

// ---- Module-level functions mirroring the seed design ------------------------
// A process-wide default cache. init() opens the cache `name` and makes it
// the default (closing the previous default once no call is still using it);
// errors as Cache::open(), after which the previous default stays. Without
// init(), the first call opens the cache "default" under the default root.
// set/get/pop/contains/erase/keys/size/purge, add, increment, decrement,
// get_versioned, compare_and_set, compare_and_erase, touch, persist, ttl,
// get_or_set, get_many, set_many and erase_many behave and fail as the Cache
// methods of the same name, on the default cache. All are thread-safe;
// init() may run while other threads use the default cache (their calls
// finish on the old one).
LILCACHE_EXPORT void init(std::string_view name = "default", const Options& options = {});
LILCACHE_EXPORT void set(std::string_view key, std::string_view value);
LILCACHE_EXPORT void set(std::string_view key, std::string_view value,
                         std::chrono::milliseconds ttl);
LILCACHE_EXPORT std::optional<std::string> get(std::string_view key);
LILCACHE_EXPORT std::optional<std::string> pop(std::string_view key);
LILCACHE_EXPORT bool contains(std::string_view key);
LILCACHE_EXPORT bool erase(std::string_view key);
LILCACHE_EXPORT std::vector<std::string> keys(std::string_view prefix = {},
                                              std::size_t limit = SIZE_MAX);
LILCACHE_EXPORT std::size_t size();
LILCACHE_EXPORT void purge();
LILCACHE_EXPORT bool add(std::string_view key, std::string_view value);
LILCACHE_EXPORT bool add(std::string_view key, std::string_view value,
                         std::chrono::milliseconds ttl);
LILCACHE_EXPORT std::int64_t increment(std::string_view key, std::int64_t delta = 1,
                                       std::int64_t initial = 0);
LILCACHE_EXPORT std::int64_t decrement(std::string_view key, std::int64_t delta = 1,
                                       std::int64_t initial = 0);
LILCACHE_EXPORT std::optional<Versioned> get_versioned(std::string_view key);
LILCACHE_EXPORT bool compare_and_set(std::string_view key, std::uint64_t version,
                                     std::string_view value);
LILCACHE_EXPORT bool compare_and_erase(std::string_view key, std::uint64_t version);
LILCACHE_EXPORT bool touch(std::string_view key, std::chrono::milliseconds ttl);
LILCACHE_EXPORT bool persist(std::string_view key);
LILCACHE_EXPORT std::optional<std::chrono::milliseconds> ttl(std::string_view key);
LILCACHE_EXPORT std::string get_or_set(std::string_view key,
                                       const std::function<std::string()>& compute);
LILCACHE_EXPORT std::string get_or_set(std::string_view key,
                                       const std::function<std::string()>& compute,
                                       std::chrono::milliseconds ttl);
LILCACHE_EXPORT std::vector<std::optional<std::string>> get_many(
    const std::vector<std::string>& keys);
LILCACHE_EXPORT void set_many(const std::vector<std::pair<std::string, std::string>>& items);
LILCACHE_EXPORT std::size_t erase_many(const std::vector<std::string>& keys);
// The default cache itself (opening it if needed), for everything else. The
// reference is valid until the next init() in any thread: do not keep it
// across an init().
LILCACHE_EXPORT Cache& default_cache();

// Parses a duration such as "500ms", "120s", "5m", "2h", "1d", "1w", "1h30m":
// digits and a unit, units in descending order (w d h m s ms), each once.
// Throws Error quoting the input and saying what is wrong at which character
// on anything else ("", "12x", "-1s", "1.5s", "5S", " 5s", "30m1h", "1s1s",
// overflow).
// "0s" parses to 0, which set() and Options refuse.
LILCACHE_EXPORT std::chrono::milliseconds parse_duration(std::string_view text);

// Throws Error if `name` is not a valid cache name (see Cache::open).
LILCACHE_EXPORT void validate_name(std::string_view name);

// Names of the caches under `root` ("" = the default root, as in Options),
// sorted: every valid name N with a file N.meta there. Opens no cache.
// Throws Error if the directory cannot be read (e.g. it does not exist).
LILCACHE_EXPORT std::vector<std::string> list_caches(std::string_view root = {});

// Whether the cache `name` exists under `root` ("" = the default root): whether
// its file NAME.meta is there (docs/format.md). Opens and creates nothing.
// Throws Error on an invalid name, on no default root, and if the file cannot
// be looked at for a reason other than its absence (e.g. a root that is a
// file, or one without search permission).
LILCACHE_EXPORT bool cache_exists(std::string_view name, std::string_view root = {});

// The directory Options::root = `root` names: `root` if not empty, else
// $LILCACHE_ROOT, else $XDG_CACHE_HOME/lilcache, else $HOME/.cache/lilcache.
// Throws Error if none is set. Creates nothing.
LILCACHE_EXPORT std::string resolve_root(std::string_view root = {});

// The library's version, e.g. "0.1.0" (the project version in meson.build).
// The view refers to static storage: valid for the life of the program.
LILCACHE_EXPORT std::string_view version();

}  // namespace lilcache
