// Shared by the libFuzzer targets of test/fuzz/ (docs/testing.md): a private
// cache root per process, a deterministic Env, builders of the files of a
// cache (docs/format.md) and the checks every opened cache must pass.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "lilcache/env.h"
#include "lilcache/lilcache.h"

namespace lilcache::fuzz {

// Every cache file the targets write uses this salt (docs/format.md's example).
inline constexpr std::uint64_t kSalt = 0x0123456789abcdefull;
// The clock of FuzzEnv: a fixed instant, so that expiry is deterministic.
inline constexpr std::uint64_t kNowMs = 1'700'000'000'000ull;
inline constexpr char kBootId[] = "fuzz-boot-0000-0000-0000-000000000000";
inline constexpr char kName[] = "f";

// The default Env with a fixed wall clock, boot id and random bits (so that
// "first open since a reboot" is the input's choice, not the machine's, and
// a new cache's salt, hence its index layout, is the same in every run).
class FuzzEnv : public Env {
 public:
  std::uint64_t NowMillis() override { return kNowMs; }
  std::string BootId() override { return kBootId; }
  void SleepMicros(std::uint64_t) override {}
  std::uint64_t Random64() override { return 0x5eed5eed5eed5eedull; }  // a repeatable salt
};
Env* env();

// A directory private to this process ($TMPDIR or /tmp), emptied by Reset()
// and removed at exit.
const std::string& Root();
void ResetRoot();
std::string PathOf(std::string_view file);  // Root() + "/" + file
void WriteFile(std::string_view file, std::string_view bytes);

// The bytes of NAME.meta with a valid header for generation `generation`.
struct MetaFields {
  std::uint64_t generation = 1;
  std::uint64_t next_seq = 1;
  std::uint64_t purge_seq = 0;
  std::uint32_t flags = 0;
  std::string boot_id = kBootId;
};
std::string MakeMeta(const MetaFields& m);

// A data file (4096-byte header then `records`, zero padded to a multiple of
// 4096) of generation `gen` with tail and verified_upto at the end of records.
std::string MakeData(std::uint64_t gen, std::string_view records);
// One encoded record (log_format.h) with kSalt.
std::string Record(bool tombstone, std::string_view key, std::string_view value, std::uint64_t seq,
                   std::uint64_t expires_ms = 0);
// An index of generation `gen` with `slots` slots pointing each key of the
// valid records of `data` (a MakeData file) at its highest-seq record, as a
// replay would (docs/format.md, "NAME.G.index").
std::string MakeIndex(std::uint64_t gen, std::string_view data, std::uint64_t slots = 1024);

// Rewrites the checksum of every record-looking header (magic, sane lengths,
// body inside `bytes`) at a multiple of 8 from `from` on: lets the fuzzer
// reach what lies behind a valid checksum.
void FixChecksums(std::string& bytes, std::size_t from);

// What a cache may hold: for each key, every value ever set for it.
using Written = std::map<std::string, std::set<std::string>>;

// Reads everything (for_each, keys, size, stats, get/contains of every key
// listed and of `probe`), then writes (set, get back, pop, erase). Traps
// (abort, which libFuzzer reports) when a value read is not one written for
// its key (when `written` is given) or when the cache contradicts itself.
// lilcache::Error from any call ends the exercise (corrupt input may be
// detected late, but must be detected as an Error) and returns false.
bool Exercise(Cache& cache, const Written* written, const std::vector<std::string>& probe);

// Every live key and its value (for_each).
std::map<std::string, std::string> Contents(Cache& cache);

// The data file of fuzz_index (generation 1): a dozen keys, some overwritten,
// deleted, expired, binary or empty-valued; next_seq for its meta file; and
// every value written per key.
struct IndexFixture {
  std::string data;
  // The same log with a torn record (bad checksum) after the others, past
  // verified_upto, as a writer killed mid-append leaves it: the next lone open
  // rebuilds from the index it trusts.
  std::string data_torn;
  std::uint64_t next_seq = 0;
  Written written;
  std::vector<std::string> keys;
};
const IndexFixture& IndexData();

// Aborts with a message (a finding).
[[noreturn]] void Fail(const std::string& what);

}  // namespace lilcache::fuzz
