#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>

#include "lilcache/lilcache.h"
#include "test_util.h"

using lilcache::Cache;
using lilcache::Error;
using lilcache::test::TempDir;

namespace {

// Raw access to a cache file, as a disk fault or a careless operator would.
struct RawFile {
  explicit RawFile(const std::string& path) : fd(::open(path.c_str(), O_RDWR)) {
    REQUIRE(fd >= 0);
  }
  ~RawFile() { ::close(fd); }
  std::uint64_t U64(off_t off) {
    std::uint64_t v = 0;
    REQUIRE(::pread(fd, &v, 8, off) == 8);
    return v;
  }
  void PutU64(off_t off, std::uint64_t v) { REQUIRE(::pwrite(fd, &v, 8, off) == 8); }
  void PutU32(off_t off, std::uint32_t v) { REQUIRE(::pwrite(fd, &v, 4, off) == 4); }
  void Flip(off_t off) {
    char c;
    REQUIRE(::pread(fd, &c, 1, off) == 1);
    c = static_cast<char>(c ^ 0x5a);
    REQUIRE(::pwrite(fd, &c, 1, off) == 1);
  }
  int fd;
};

constexpr off_t kTailField = 64;  // docs/format.md, NAME.G.data header

// Finds the offset of the record holding `value` (a unique marker).
off_t FindValue(const std::string& path, const std::string& value) {
  std::string bytes(std::filesystem::file_size(path), '\0');
  RawFile f(path);
  REQUIRE(::pread(f.fd, bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size()));
  auto pos = bytes.find(value);
  REQUIRE(pos != std::string::npos);
  return static_cast<off_t>(pos);
}

}  // namespace

TEST_CASE("torn tail record is ignored on reopen, losing only that record") {
  TempDir dir;
  {
    auto c = Cache::open("t", {.root = dir.path()});
    for (int i = 0; i < 100; ++i) c.set("k" + std::to_string(i), "v" + std::to_string(i));
    c.set("k5", "NEWEST-VALUE");
  }
  RawFile(dir.file("t.1.data")).Flip(FindValue(dir.file("t.1.data"), "NEWEST-VALUE") + 3);
  auto c = Cache::open("t", {.root = dir.path()});
  CHECK(c.get("k5") == "v5");  // the damaged write is lost, the one before it is back
  for (int i = 0; i < 100; ++i) {
    if (i != 5) CHECK(c.get("k" + std::to_string(i)) == "v" + std::to_string(i));
  }
  c.set("after", "works");
  CHECK(c.get("after") == "works");
}

TEST_CASE("a log cut mid-record is recovered on open") {
  TempDir dir;
  {
    auto c = Cache::open("t", {.root = dir.path()});
    for (int i = 0; i < 50; ++i) c.set("k" + std::to_string(i), std::string(300, 'a' + i % 26));
  }
  std::uint64_t tail = RawFile(dir.file("t.1.data")).U64(kTailField);
  REQUIRE(::truncate(dir.file("t.1.data").c_str(), static_cast<off_t>(tail - 100)) == 0);
  auto c = Cache::open("t", {.root = dir.path()});
  CHECK(!c.get("k49"));
  for (int i = 0; i < 49; ++i) CHECK(c.get("k" + std::to_string(i)) == std::string(300, 'a' + i % 26));
  c.set("k49", "again");
  CHECK(c.get("k49") == "again");
}

TEST_CASE("a hole left by a writer killed mid-append is skipped on reopen") {
  TempDir dir;
  {
    auto c = Cache::open("t", {.root = dir.path()});
    c.set("before", "1");
    RawFile f(dir.file("t.1.data"));
    f.PutU64(kTailField, f.U64(kTailField) + 256);  // space reserved, never written
    c.set("after", "2");
  }
  auto c = Cache::open("t", {.root = dir.path()});
  CHECK(c.get("before") == "1");
  CHECK(c.get("after") == "2");
  CHECK(c.stats().generation == 2);  // rebuilt from the log
}

TEST_CASE("a record corrupted after it was checked makes get throw, and the next open repairs") {
  TempDir dir;
  {
    auto c = Cache::open("t", {.root = dir.path()});
    c.set("victim", "OLD-VALUE");
    c.set("victim", "CORRUPT-ME");
    c.set("other", "fine");
  }
  {
    auto c = Cache::open("t", {.root = dir.path()});  // checks the log: all good
    RawFile(dir.file("t.1.data")).Flip(FindValue(dir.file("t.1.data"), "CORRUPT-ME") + 1);
    CHECK_THROWS_WITH_AS(c.get("victim"), doctest::Contains("bad checksum"), Error);
    CHECK(c.get("other") == "fine");
  }
  auto c = Cache::open("t", {.root = dir.path()});
  CHECK(c.get("victim") == "OLD-VALUE");
  CHECK(c.get("other") == "fine");
}

TEST_CASE("files of an unknown format version are refused, naming the file") {
  TempDir dir;
  { Cache::open("t", {.root = dir.path()}).set("a", "b"); }
  RawFile(dir.file("t.meta")).PutU32(8, 99);
  const std::string expected = "version 99 in " + dir.file("t.meta");
  CHECK_THROWS_WITH_AS(Cache::open("t", {.root = dir.path()}), doctest::Contains(expected.c_str()),
                       Error);
}

TEST_CASE("a meta file whose purge mark is not below its next sequence number is refused") {
  // Found by test/fuzz/fuzz_recovery: such a cache opened, and every set()
  // returned but was hidden at once by the purge mark.
  constexpr off_t kPurgeSeq = 40, kNextSeq = 64;  // docs/format.md, NAME.meta
  TempDir dir;
  { Cache::open("t", {.root = dir.path()}).set("a", "b"); }
  const std::uint64_t next = RawFile(dir.file("t.meta")).U64(kNextSeq);
  RawFile(dir.file("t.meta")).PutU64(kPurgeSeq, next);
  const std::string expected = "corrupt meta file " + dir.file("t.meta") + ": purge mark";
  CHECK_THROWS_WITH_AS(Cache::open("t", {.root = dir.path()}), doctest::Contains(expected.c_str()),
                       Error);
  RawFile(dir.file("t.meta")).PutU64(kPurgeSeq, next - 1);  // a purge after the last write
  auto c = Cache::open("t", {.root = dir.path()});
  CHECK_FALSE(c.get("a").has_value());
  c.set("a", "after");
  CHECK(c.get("a") == "after");
}

TEST_CASE("a meta file whose next sequence number is beyond 2^63 is refused") {
  // Found by test/fuzz/fuzz_recovery: next_seq wrapped past 2^64 - 1 to 0
  // after a few writes, and the cache then hid or refused every write.
  constexpr off_t kNextSeq = 64;  // docs/format.md, NAME.meta
  TempDir dir;
  { Cache::open("t", {.root = dir.path()}).set("a", "b"); }
  for (std::uint64_t bad : {0ull, (1ull << 63) + 1, ~0ull}) {
    CAPTURE(bad);
    RawFile(dir.file("t.meta")).PutU64(kNextSeq, bad);
    const std::string expected = "corrupt meta file " + dir.file("t.meta") + ": next sequence";
    CHECK_THROWS_WITH_AS(Cache::open("t", {.root = dir.path()}),
                         doctest::Contains(expected.c_str()), Error);
  }
  RawFile(dir.file("t.meta")).PutU64(kNextSeq, (1ull << 63) - 1);  // one write left
  {
    auto c = Cache::open("t", {.root = dir.path()});
    c.set("a", "last");
    CHECK(c.get("a") == "last");
  }
  CHECK(Cache::open("t", {.root = dir.path()}).get("a") == "last");
}

TEST_CASE("a cache at the end of the sequence range refuses the write that would leave it, and reopens") {
  // Found by CI's fuzz_recovery: a meta file that open() accepted let the
  // counter run past 2^63, and the next open() refused the cache ("next
  // sequence number 9223372036854775809 is out of range"). Each write draws
  // one seq; the last one is 2^63 - 1.
  constexpr off_t kNextSeq = 64;  // docs/format.md, NAME.meta
  TempDir dir;
  { Cache::open("t", {.root = dir.path()}).set("a", "b"); }
  RawFile(dir.file("t.meta")).PutU64(kNextSeq, (1ull << 63) - 2);  // two seqs left
  {
    auto c = Cache::open("t", {.root = dir.path()});
    c.set("a", "next to last");
    c.set("b", "last");
    const char* used_up = "sequence numbers of";
    CHECK_THROWS_WITH_AS(c.set("c", "one too many"), doctest::Contains(used_up), Error);
    CHECK_THROWS_WITH_AS(c.pop("a"), doctest::Contains(used_up), Error);
    CHECK_THROWS_WITH_AS(c.erase("b"), doctest::Contains(used_up), Error);
    CHECK_THROWS_WITH_AS(c.purge(), doctest::Contains(used_up), Error);
    CHECK(c.get("a") == "next to last");
    CHECK(c.get("b") == "last");
    CHECK_FALSE(c.contains("c"));
    CHECK(RawFile(dir.file("t.meta")).U64(kNextSeq) == 1ull << 63);
  }
  auto c = Cache::open("t", {.root = dir.path()});  // a lone opener: checks and keeps the log
  CHECK(c.get("a") == "next to last");
  CHECK(c.get("b") == "last");
  CHECK(c.size() == 2);
}

TEST_CASE("purge at the end of the sequence range takes the last seq and the cache reopens") {
  constexpr off_t kNextSeq = 64;  // docs/format.md, NAME.meta
  TempDir dir;
  { Cache::open("t", {.root = dir.path()}).set("a", "b"); }
  RawFile(dir.file("t.meta")).PutU64(kNextSeq, (1ull << 63) - 1);  // one seq left
  {
    auto c = Cache::open("t", {.root = dir.path()});
    c.purge();
    CHECK_FALSE(c.contains("a"));
    CHECK_THROWS_AS(c.purge(), Error);
    CHECK_THROWS_AS(c.set("a", "c"), Error);
  }
  auto c = Cache::open("t", {.root = dir.path()});
  CHECK(c.size() == 0);
}

TEST_CASE("a log header whose tail is not a multiple of 8 is not trusted: the open replays") {
  // Found by test/fuzz/fuzz_recovery: such a header was trusted, the next
  // record was written at a misaligned offset (undefined behaviour), and the
  // index, which stores offsets / 8, pointed next to it: the write was lost.
  constexpr off_t kVerifiedField = 88;  // docs/format.md, NAME.G.data header
  TempDir dir;
  {
    auto c = Cache::open("t", {.root = dir.path()});
    for (int i = 0; i < 10; ++i) c.set("k" + std::to_string(i), "v" + std::to_string(i));
  }
  {
    RawFile f(dir.file("t.1.data"));
    const std::uint64_t tail = f.U64(kTailField);
    f.PutU64(kTailField, tail + 4);
    f.PutU64(kVerifiedField, tail + 4);
  }
  auto c = Cache::open("t", {.root = dir.path()});
  for (int i = 0; i < 10; ++i) CHECK(c.get("k" + std::to_string(i)) == "v" + std::to_string(i));
  c.set("after", "works");
  CHECK(c.get("after") == "works");
}

TEST_CASE("a log whose tail is past its capacity (failed growths of older versions) is replayed at open") {
  // Before reservations stayed inside the capacity, a growth that failed on a
  // full disk left the tail past the end of the file. Such a header is not
  // trusted: a lone opener replays the log, and nothing acknowledged is lost.
  constexpr off_t kCapacityField = 72;  // docs/format.md, NAME.G.data header
  TempDir dir;
  {
    auto c = Cache::open("t", {.root = dir.path()});
    c.set("a", "1");
    c.set("b", "2");
  }
  {
    RawFile f(dir.file("t.1.data"));
    f.PutU64(kTailField, f.U64(kCapacityField) + (52 << 20));
  }
  {
    auto c = Cache::open("t", {.root = dir.path()});
    CHECK(c.get("a") == "1");
    CHECK(c.get("b") == "2");
    c.set("c", "3");
    CHECK(c.get("c") == "3");
    CHECK(c.stats().bytes_file < (1 << 20));
  }
  auto c = Cache::open("t", {.root = dir.path()});
  CHECK(c.size() == 3);
  CHECK(c.get("c") == "3");
}

TEST_CASE("an index whose used-slot counter exceeds its slot count opens and compacts") {
  // Found by test/fuzz/fuzz_index: compaction sized its new index from the
  // counter, and a huge one overflowed (undefined behaviour) in SlotsFor.
  constexpr off_t kUsedSlotsField = 64;  // docs/format.md, NAME.G.index header
  TempDir dir;
  {
    auto c = Cache::open("t", {.root = dir.path()});
    for (int i = 0; i < 10; ++i) c.set("k" + std::to_string(i), "v" + std::to_string(i));
  }
  RawFile(dir.file("t.1.index")).PutU64(kUsedSlotsField, 0x4000000000000000ull);
  auto c = Cache::open("t", {.root = dir.path()});
  for (int i = 0; i < 10; ++i) CHECK(c.get("k" + std::to_string(i)) == "v" + std::to_string(i));
  c.set("after", "works");
  lilcache::CompactionResult r = c.compact();
  CHECK(r.compacted);
  for (int i = 0; i < 10; ++i) CHECK(c.get("k" + std::to_string(i)) == "v" + std::to_string(i));
  CHECK(c.get("after") == "works");
  CHECK(RawFile(dir.file("t." + std::to_string(r.generation) + ".index")).U64(kUsedSlotsField) ==
        11);
}

TEST_CASE("files that are not lilcache's are refused, never overwritten") {
  TempDir dir;
  {
    std::FILE* f = std::fopen(dir.file("t.meta").c_str(), "w");
    std::fputs("my precious data", f);
    std::fclose(f);
  }
  // Private, so that it is its content that is refused, not its mode.
  REQUIRE(::chmod(dir.file("t.meta").c_str(), 0600) == 0);
  CHECK_THROWS_WITH_AS(Cache::open("t", {.root = dir.path()}), doctest::Contains("not a lilcache"),
                       Error);
  CHECK(std::filesystem::file_size(dir.file("t.meta")) == 16);
  { Cache::open("u", {.root = dir.path()}).set("a", "b"); }
  RawFile(dir.file("u.1.data")).PutU64(0, 0x1234);
  CHECK_THROWS_WITH_AS(Cache::open("u", {.root = dir.path()}),
                       doctest::Contains("u.1.data has a bad magic"), Error);
}

TEST_CASE("a missing log file is an Error naming it") {
  TempDir dir;
  { Cache::open("t", {.root = dir.path()}).set("a", "b"); }
  std::filesystem::remove(dir.file("t.1.data"));
  CHECK_THROWS_WITH_AS(Cache::open("t", {.root = dir.path()}), doctest::Contains("t.1.data"),
                       Error);
}

TEST_CASE("symbolic links in place of cache files are refused") {
  TempDir dir;
  std::filesystem::create_symlink("/etc/passwd", dir.file("t.meta"));
  CHECK_THROWS_WITH_AS(Cache::open("t", {.root = dir.path()}), doctest::Contains("symbolic link"),
                       Error);
}

TEST_CASE("leftovers of a crashed compaction are removed at the next lone open") {
  TempDir dir;
  { Cache::open("t", {.root = dir.path()}).set("a", "b"); }
  for (const char* f : {"t.2.data.tmp", "t.2.index.tmp", "t.0.data"}) {
    std::FILE* fp = std::fopen(dir.file(f).c_str(), "w");
    std::fclose(fp);
  }
  auto c = Cache::open("t", {.root = dir.path()});
  CHECK(c.get("a") == "b");
  CHECK(!std::filesystem::exists(dir.file("t.2.data.tmp")));
  CHECK(!std::filesystem::exists(dir.file("t.2.index.tmp")));
  CHECK(!std::filesystem::exists(dir.file("t.0.data")));
}

TEST_CASE("a writer pause or throttle left by a compactor that died is cleared by the writers") {
  constexpr off_t kWriterState = 48;  // docs/format.md, NAME.meta header
  constexpr std::uint32_t kSwitching = 2, kThrottle = 4;
  TempDir dir;
  auto c = Cache::open("t", {.root = dir.path()});
  c.set("k", "before");
  for (std::uint32_t bits : {kThrottle, kSwitching, kSwitching | kThrottle}) {
    CAPTURE(bits);
    RawFile meta(dir.file("t.meta"));
    std::uint32_t state = 0;
    REQUIRE(::pread(meta.fd, &state, 4, kWriterState) == 4);
    meta.PutU32(kWriterState, state | bits);  // as a compactor killed mid-switch leaves it
    // Throttled writes sleep ~50 us each and check for a live compactor every
    // 5 ms; a paused one checks after 1 ms: a few hundred writes clear it.
    for (int i = 0; i < 2000; ++i) c.set("k" + std::to_string(i), "v");
    REQUIRE(::pread(meta.fd, &state, 4, kWriterState) == 4);
    CHECK((state & (kSwitching | kThrottle)) == 0);
  }
  CHECK(c.get("k1999") == "v");
  CHECK(c.get("k") == "before");
}
