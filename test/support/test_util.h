// Helpers shared by the test suites: temporary roots and child processes.
#pragma once

#include <sys/mman.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "lilcache/env.h"
#include "lilcache/lilcache.h"

namespace lilcache::test {

// The OS seam with a wall clock the test moves by hand (NowMillis only).
class FakeClockEnv : public Env {
 public:
  std::uint64_t NowMillis() override { return now.load(); }
  std::atomic<std::uint64_t> now{1'700'000'000'000};
};

// A T in memory shared (MAP_SHARED | MAP_ANONYMOUS) by the test process and
// every process forked after its creation: counters and flags the children
// and the parent both see. T must be usable across processes without a
// constructor or destructor run in each (atomics, plain data).
template <typename T>
class SharedMemory {
 public:
  SharedMemory() {
    void* p = ::mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap of shared test memory failed");
    value_ = new (p) T();
  }
  ~SharedMemory() { ::munmap(value_, sizeof(T)); }
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;
  T* operator->() const { return value_; }
  T& operator*() const { return *value_; }

 private:
  T* value_;
};

// A fresh directory under `base` (default: $TMPDIR, or /tmp), removed with
// its contents on destruction. path() does not exist yet when `create` is
// false.
class TempDir {
 public:
  explicit TempDir(bool create = true, const std::string& base = {});
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A directory on tmpfs (/dev/shm) if there is a writable one, else "" (the
// TempDir default). For suites that open thousands of caches: fsync costs
// nothing there.
std::string tmpfs_dir();

// Runs fn in a forked child; the child exits with fn's return value (or 99 on
// an exception, after printing it to stderr). Returns the child's pid.
pid_t fork_child(const std::function<int()>& fn);

// Prints the stack of every thread of `pid` to stderr (gdb), if possible.
void dump_stacks(pid_t pid);

// Waits for pid; returns its exit status, 128+signal if it was killed, or -1
// if it did not end within `timeout` (then it is killed with SIGKILL).
int wait_child(pid_t pid, std::chrono::milliseconds timeout = std::chrono::seconds(60));

// Path of the lilcache-test-worker executable ($LILCACHE_TEST_WORKER).
std::string worker_path();

// fork + exec of `argv` (argv[0] is the program path). Returns the pid.
pid_t spawn(const std::vector<std::string>& argv);

// ---- Helpers of the process suites (multiprocess_test, crash_test) ----------

// Seconds a stress test runs: $LILCACHE_STRESS_SECONDS if set (> 0), else
// `default_seconds`. Tests scale their iteration counts with it.
double stress_seconds(double default_seconds);

// How many times slower than a plain build this build runs: $LILCACHE_SLOWDOWN
// (>= 1; ./build.sh test-asan and test-tsan set it, docs/testing.md), else 1.
// The process suites multiply their latency bounds by it, and the durations
// of runs that must get a given amount of work done.
double slowdown();

// Whether this build runs under ThreadSanitizer (clang: __has_feature; gcc:
// __SANITIZE_THREAD__).
constexpr bool under_tsan() {
#if defined(__SANITIZE_THREAD__)
  return true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
  return true;
#else
  return false;
#endif
#else
  return false;
#endif
}

// Exit status of pid if it has ended (as wait_child returns it), nullopt if it
// is still running. Never blocks.
std::optional<int> try_wait_child(pid_t pid);

// Owns child processes: every child still registered when the set is
// destroyed (a failed REQUIRE, an exception) is killed with SIGKILL and
// reaped, so that no test leaves processes behind.
class Children {
 public:
  Children() = default;
  ~Children();
  Children(const Children&) = delete;
  Children& operator=(const Children&) = delete;
  pid_t add(pid_t pid);
  // Waits for pid (see wait_child) and forgets it.
  int wait(pid_t pid, std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // SIGKILLs pid, reaps it and forgets it; returns its status (137 if the
  // kill ended it, or the status it had already exited with).
  int kill_and_wait(pid_t pid);
  // Forgets pid (already reaped by the caller, e.g. with try_wait_child).
  void forget(pid_t pid);
  void kill_all();
  std::size_t size() const { return pids_.size(); }

 private:
  std::vector<pid_t> pids_;
};

// A pipe for small messages between a parent and a forked child. Both ends
// are O_CLOEXEC, so exec'd workers never inherit them. After fork each side
// closes the end it does not use.
class Pipe {
 public:
  Pipe();
  ~Pipe();
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  void close_read();
  void close_write();
  // Writes one 8-byte message; throws on error.
  void send(std::uint64_t v);
  // Reads one 8-byte message; nullopt on EOF (every writer closed), throws
  // on timeout or error.
  std::optional<std::uint64_t> recv(std::chrono::milliseconds timeout = std::chrono::seconds(30));

 private:
  int fds_[2] = {-1, -1};
};

// Releases any number of forked children at once: children call wait(),
// which returns when the parent calls open(). Fork every child first.
class StartGate {
 public:
  StartGate() = default;
  void wait();  // in a child
  void open();  // in the parent

 private:
  Pipe pipe_;
};

// The whole content of a file ("" if it does not exist).
std::string read_file(const std::string& path);

// ---- The index-vs-log audit (lib/audit.h) -------------------------------------
// Audits the live generation of a quiescent cache: "" if the index agrees
// with the log, else the audit's report (every violation, one per line).
std::string audit_cache(const std::string& root, const std::string& name);

// Sets the needs_rebuild flag of a cache's NAME.meta (as a get that found a
// bad checksum does): the next process that opens the cache alone replays
// the log into a new generation instead of trusting the index.
void force_replay(const std::string& root, const std::string& name);

// Writes new keys (prefix + i, value "filler") to `c` until an automatic
// compaction (the index growing, run by the handle's background thread) has
// switched it to a newer generation, then until no further one follows for
// 200 ms (new keys written during a growth may ask for another); returns
// the generation (throws std::runtime_error if none came). Automatic compactions sync nothing
// (docs/concurrency.md, "Durability"); compact() is a snapshot.
std::uint64_t auto_compact(Cache& c, const std::string& prefix);

// ---- Resources of this process (/proc/self) -----------------------------------
// What a closed Cache must have given back: descriptors and mappings.
struct ProcessResources {
  std::size_t fds = 0;         // open descriptors (/proc/self/fd)
  std::size_t fds_under = 0;   // ... whose target lies under the directory asked about
  std::size_t maps = 0;        // mappings (/proc/self/maps lines)
  std::size_t maps_under = 0;  // ... of files under that directory (deleted ones too)
  std::string describe() const;
};
// Counts the resources of this process; `dir` ("" = none) selects the
// *_under counts.
ProcessResources process_resources(const std::string& dir = {});

// ---- Self-checking values ---------------------------------------------------
// Header-only (inline) so that lilcache-test-worker, which does not link
// test_util.cc, shares them.
//
// A test value is a 32-byte header then payload bytes, all derived from
// (writer, seq, length, key): anyone can rebuild the exact value a writer set
// and check that a value read is intact and belongs to the key it was read
// under. Payloads contain many NUL bytes.
//   0  u32 magic 0x5654434c ("LCTV")
//   4  u32 writer id
//   8  u64 sequence number of that writer
//  16  u32 total length
//  20  u32 hash of the key the value was set under
//  24  u64 checksum (value_checksum) of bytes [0, 24) and [32, length)
//  32  payload
inline constexpr std::uint32_t kValueMagic = 0x5654434c;
inline constexpr std::size_t kValueHeader = 32;

struct ValueInfo {
  std::uint32_t writer = 0;
  std::uint64_t seq = 0;
  std::uint32_t length = 0;
};

inline std::uint64_t fnv1a64(std::string_view bytes, std::uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

inline std::uint32_t key_hash32(std::string_view key) {
  std::uint64_t h = fnv1a64(key);
  return static_cast<std::uint32_t>(h ^ (h >> 32));
}

inline std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// A fast word-at-a-time hash (values reach megabytes); any change of any byte
// changes it with overwhelming probability.
inline std::uint64_t hash_words(std::string_view bytes, std::uint64_t h) {
  std::size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, bytes.data() + i, 8);
    h = (h ^ w) * 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
  }
  for (; i < bytes.size(); ++i) h = (h ^ static_cast<unsigned char>(bytes[i])) * 1099511628211ull;
  return h ^ bytes.size();
}

inline std::uint64_t value_checksum(std::string_view v) {
  return hash_words(v.substr(kValueHeader), fnv1a64(v.substr(0, 24)));
}

// The value `writer` sets as its `seq`-th write under `key`; length >= 32.
inline std::string make_value(std::string_view key, std::uint32_t writer, std::uint64_t seq,
                              std::size_t length) {
  if (length < kValueHeader) length = kValueHeader;
  std::string v(length, '\0');
  auto put32 = [&](std::size_t at, std::uint32_t x) { std::memcpy(v.data() + at, &x, 4); };
  auto put64 = [&](std::size_t at, std::uint64_t x) { std::memcpy(v.data() + at, &x, 8); };
  put32(0, kValueMagic);
  put32(4, writer);
  put64(8, seq);
  put32(16, static_cast<std::uint32_t>(length));
  put32(20, key_hash32(key));
  std::uint64_t state = (std::uint64_t{writer} << 40) ^ seq ^ 0x5a5a5a5a00000000ull;
  for (std::size_t i = kValueHeader; i < length; i += 8) {
    std::uint64_t r = splitmix64(state);
    r &= 0xffffff00ffff00ffull;  // bytes 1 and 4 of every 8 are NUL
    std::memcpy(v.data() + i, &r, length - i < 8 ? length - i : 8);
  }
  put64(24, value_checksum(v));
  return v;
}

// Decodes a value read under `key`. Returns nullopt and sets *why when it is
// not a complete, intact test value set under that key.
inline std::optional<ValueInfo> check_value(std::string_view key, std::string_view v,
                                            std::string* why) {
  auto fail = [&](const std::string& reason) -> std::optional<ValueInfo> {
    if (why != nullptr) {
      *why = reason + " (value of " + std::to_string(v.size()) + " bytes under a key of " +
             std::to_string(key.size()) + " bytes)";
    }
    return std::nullopt;
  };
  if (v.size() < kValueHeader) return fail("too short for a test value");
  std::uint32_t magic, writer, length, khash;
  std::uint64_t seq, sum;
  std::memcpy(&magic, v.data(), 4);
  std::memcpy(&writer, v.data() + 4, 4);
  std::memcpy(&seq, v.data() + 8, 8);
  std::memcpy(&length, v.data() + 16, 4);
  std::memcpy(&khash, v.data() + 20, 4);
  std::memcpy(&sum, v.data() + 24, 8);
  if (magic != kValueMagic) return fail("bad magic: not a test value");
  if (length != v.size()) {
    return fail("torn: header says " + std::to_string(length) + " bytes");
  }
  if (sum != value_checksum(v)) return fail("torn: checksum mismatch");
  if (khash != key_hash32(key)) return fail("value belongs to another key");
  if (v != make_value(key, writer, seq, length)) return fail("payload differs from its writer's");
  return ValueInfo{writer, seq, length};
}

// Key of slot `slot` of writer `writer` in the crash suites: "w<writer>\0-<slot>"
// (a NUL inside, since keys are arbitrary bytes).
inline std::string writer_key(std::uint32_t writer, std::uint64_t slot) {
  return "w" + std::to_string(writer) + std::string("\0-", 2) + std::to_string(slot);
}

// ---- Acknowledgement records ------------------------------------------------
// lilcache-test-worker appends one fixed-size record to its ack file (O_APPEND,
// one write(2), no buffering) after each operation returns, so that the
// parent knows exactly which operations were acknowledged before a SIGKILL.
enum class AckKind : std::uint32_t {
  kOpen = 1,       // Cache::open returned; latency_ns = its duration
  kSet = 2,        // set(key_name(writer, seq % keys), value(writer, seq, length)) returned
  kSharedSet = 3,  // popper: set(shared key, value(writer, seq, length)) returned
  kPop = 4,        // popper: pop returned the value (writer, seq, length)
  kDone = 5,       // the worker finished normally
};

struct AckRecord {
  std::uint32_t magic = 0x4b43414c;  // "LACK"
  AckKind kind = AckKind::kOpen;
  std::uint32_t writer = 0;
  std::uint32_t length = 0;
  std::uint64_t seq = 0;
  std::uint64_t latency_ns = 0;  // duration of the acknowledged operation
};
static_assert(sizeof(AckRecord) == 32);

// Every complete record of an ack file (a torn last record is ignored).
std::vector<AckRecord> read_acks(const std::string& path);

}  // namespace lilcache::test

// doctest: checks that `expr` throws lilcache::Error whose code() is `kind`
// (an ErrorCode), e.g. CHECK_ERROR_CODE(c.set("", "v"), ErrorCode::invalid_argument).
// A failure shows both kinds and the message. Another exception propagates
// (and fails the test case); no exception fails the check. For assertions
// where the kind is the specification and the message is not.
#define CHECK_ERROR_CODE(expr, kind)                                                          \
  do {                                                                                        \
    try {                                                                                     \
      static_cast<void>(expr);                                                                \
      FAIL_CHECK("no lilcache::Error thrown by " #expr);                                      \
    } catch (const ::lilcache::Error& check_error_code_e) {                                   \
      INFO(#expr " threw: ", check_error_code_e.what());                                      \
      CHECK(::lilcache::to_string(check_error_code_e.code()) == ::lilcache::to_string(kind)); \
    }                                                                                         \
  } while (false)
