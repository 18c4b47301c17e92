#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "lilcache/lilcache.h"
#include "support/fault_env.h"
#include "support/test_util.h"

using lilcache::Cache;
using lilcache::Error;
using lilcache::test::FaultEnv;
using lilcache::test::TempDir;

namespace {

// Raw access to a cache file, as a disk fault or a careless operator would.
struct RawFile {
  explicit RawFile(const std::string& path) : fd(::open(path.c_str(), O_RDWR)) { REQUIRE(fd >= 0); }
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
  for (int i = 0; i < 49; ++i)
    CHECK(c.get("k" + std::to_string(i)) == std::string(300, 'a' + i % 26));
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
    CHECK_ERROR_CODE(c.get("victim"), lilcache::ErrorCode::corrupt);
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
  CHECK_ERROR_CODE(Cache::open("t", {.root = dir.path()}), lilcache::ErrorCode::unsupported);
}

TEST_CASE("a meta file whose purge mark is not below its next sequence number is refused") {
  // Found by test/fuzz/fuzz_recovery: such a cache opened, and every set()
  // returned but was hidden at once by the purge mark.
  constexpr off_t kPurgeSeq = 40, kNextSeq = 64;  // docs/format.md, NAME.meta
  TempDir dir;
  { Cache::open("t", {.root = dir.path()}).set("a", "b"); }
  const std::uint64_t next = RawFile(dir.file("t.meta")).U64(kNextSeq);
  RawFile(dir.file("t.meta")).PutU64(kPurgeSeq, next);
  CHECK_ERROR_CODE(Cache::open("t", {.root = dir.path()}), lilcache::ErrorCode::corrupt);
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
    CHECK_ERROR_CODE(Cache::open("t", {.root = dir.path()}), lilcache::ErrorCode::corrupt);
  }
  RawFile(dir.file("t.meta")).PutU64(kNextSeq, (1ull << 63) - 1);  // one write left
  {
    auto c = Cache::open("t", {.root = dir.path()});
    c.set("a", "last");
    CHECK(c.get("a") == "last");
  }
  CHECK(Cache::open("t", {.root = dir.path()}).get("a") == "last");
}

TEST_CASE(
    "a cache at the end of the sequence range refuses the write that would leave it, and reopens") {
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
    CHECK_ERROR_CODE(c.set("c", "one too many"), lilcache::ErrorCode::limit);
    CHECK_ERROR_CODE(c.pop("a"), lilcache::ErrorCode::limit);
    CHECK_ERROR_CODE(c.erase("b"), lilcache::ErrorCode::limit);
    CHECK_ERROR_CODE(c.purge(), lilcache::ErrorCode::limit);
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

TEST_CASE(
    "a log whose tail is past its capacity (failed growths of older versions) is replayed at "
    "open") {
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
  CHECK_ERROR_CODE(Cache::open("t", {.root = dir.path()}), lilcache::ErrorCode::corrupt);
  CHECK(std::filesystem::file_size(dir.file("t.meta")) == 16);
  { Cache::open("u", {.root = dir.path()}).set("a", "b"); }
  RawFile(dir.file("u.1.data")).PutU64(0, 0x1234);
  CHECK_THROWS_WITH_AS(Cache::open("u", {.root = dir.path()}),
                       doctest::Contains("u.1.data has a bad magic"), Error);
  CHECK_ERROR_CODE(Cache::open("u", {.root = dir.path()}), lilcache::ErrorCode::corrupt);
}

TEST_CASE("a missing log file is an Error naming it") {
  TempDir dir;
  { Cache::open("t", {.root = dir.path()}).set("a", "b"); }
  std::filesystem::remove(dir.file("t.1.data"));
  CHECK_THROWS_WITH_AS(Cache::open("t", {.root = dir.path()}), doctest::Contains("t.1.data"),
                       Error);
  CHECK_ERROR_CODE(Cache::open("t", {.root = dir.path()}), lilcache::ErrorCode::io);  // ENOENT
}

TEST_CASE("symbolic links in place of cache files are refused") {
  TempDir dir;
  std::filesystem::create_symlink("/etc/passwd", dir.file("t.meta"));
  CHECK_ERROR_CODE(Cache::open("t", {.root = dir.path()}), lilcache::ErrorCode::permission);
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

TEST_CASE(
    "a recovery that fails mid-rebuild is not recorded: the next opener replays the log again") {
  // A power loss kept the log's last record (written with sync = "always")
  // but not the index page pointing at it. The first open after the reboot
  // must replay the log; if it is interrupted (a failure here, SIGKILL or
  // Ctrl-C alike), the next opener must not take the stale index for a
  // recovered one. Every Env call of that first open fails in turn.
  TempDir base;
  {
    auto c = Cache::open("t", {.root = base.path()});
    c.set("k", "OLD");
    for (int i = 0; i < 20; ++i) c.set("other" + std::to_string(i), "x");
  }
  const std::filesystem::path index = base.file("t.1.index");
  std::filesystem::copy_file(index, base.file("index.before"));
  { Cache::open("t", {.root = base.path(), .sync = "always"}).set("k", "NEW"); }
  std::filesystem::copy_file(base.file("index.before"), index,
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::remove(base.file("index.before"));
  std::uint64_t calls = 0;
  {
    TempDir dir;
    std::filesystem::copy(base.path(), dir.path(), std::filesystem::copy_options::recursive);
    FaultEnv env;
    env.set_boot_id("after-power-loss");
    env.begin();
    CHECK(Cache::open("t", {.root = dir.path(), .env = &env}).get("k") == "NEW");
    calls = env.total();
  }
  REQUIRE(calls > 10);
  int failed_opens = 0;
  for (std::uint64_t k = 1; k <= calls; ++k) {
    CAPTURE(k);
    TempDir dir;
    std::filesystem::copy(base.path(), dir.path(), std::filesystem::copy_options::recursive);
    FaultEnv env;
    env.set_boot_id("after-power-loss");
    env.arm(k, EIO);
    try {
      Cache::open("t", {.root = dir.path(), .env = &env});
    } catch (const Error&) {
      ++failed_opens;
    }
    CAPTURE(env.injected());
    env.end();
    // The next opener, in the same boot.
    auto c = Cache::open("t", {.root = dir.path(), .env = &env});
    CHECK(c.get("k") == "NEW");
    CHECK(c.get("other7") == "x");
  }
  CHECK(failed_opens > 0);
}

TEST_CASE("a damaged or missing index is rebuilt from the log: the cache opens with all its data") {
  // The index is derived data (docs/concurrency.md, "Crashes").
  constexpr off_t kIndexGeneration = 16, kIndexSlotCount = 24;  // docs/format.md
  struct Damage {
    std::string what;
    std::function<void(const std::string& path)> apply;
  };
  const std::vector<Damage> damages = {
      {"truncated to 0 bytes",
       [](const std::string& p) { REQUIRE(::truncate(p.c_str(), 0) == 0); }},
      {"truncated to 100 bytes",
       [](const std::string& p) { REQUIRE(::truncate(p.c_str(), 100) == 0); }},
      {"cut in the middle of its slots",
       [](const std::string& p) { REQUIRE(::truncate(p.c_str(), 4096 + 4000) == 0); }},
      {"zeroed",
       [](const std::string& p) {
         const auto size = static_cast<off_t>(std::filesystem::file_size(p));
         REQUIRE(::truncate(p.c_str(), 0) == 0);
         REQUIRE(::truncate(p.c_str(), size) == 0);
       }},
      {"bad magic", [](const std::string& p) { RawFile(p).Flip(0); }},
      {"wrong generation", [](const std::string& p) { RawFile(p).PutU64(kIndexGeneration, 7); }},
      {"bad slot count", [](const std::string& p) { RawFile(p).PutU64(kIndexSlotCount, 1000); }},
      {"slot count beyond the file",
       [](const std::string& p) { RawFile(p).PutU64(kIndexSlotCount, 1 << 20); }},
      {"missing", [](const std::string& p) { REQUIRE(std::filesystem::remove(p)); }},
      {"a directory",
       [](const std::string& p) {
         REQUIRE(std::filesystem::remove(p));
         REQUIRE(std::filesystem::create_directory(p));
       }},
  };
  for (const Damage& d : damages) {
    CAPTURE(d.what);
    TempDir dir;
    {
      auto c = Cache::open("t", {.root = dir.path()});
      for (int i = 0; i < 100; ++i) c.set("k" + std::to_string(i), "v" + std::to_string(i));
      c.set("k3", "newer");
      CHECK(c.pop("k4") == "v4");
    }
    d.apply(dir.file("t.1.index"));
    {
      auto c = Cache::open("t", {.root = dir.path()});
      CHECK(c.stats().generation == 2);  // replayed into a new generation
      CHECK(c.size() == 99);
      CHECK(c.get("k3") == "newer");
      CHECK_FALSE(c.get("k4").has_value());
      for (int i = 5; i < 100; ++i)
        CHECK(c.get("k" + std::to_string(i)) == "v" + std::to_string(i));
      c.set("after", "works");
    }
    // The damaged file is gone (a directory there is left alone: not ours).
    CHECK(std::filesystem::exists(dir.file("t.1.index")) == (d.what == "a directory"));
    auto c = Cache::open("t", {.root = dir.path()});
    CHECK(c.get("after") == "works");
    CHECK(c.get("k99") == "v99");
  }
}

TEST_CASE(
    "a log truncated under a running process kills it with SIGBUS at its next access; the next "
    "open recovers") {
  // Inherent to mmap (docs/operations.md): a mapped page past the end of
  // its file raises SIGBUS. Under ASan its SIGBUS handler would report it.
#if defined(__SANITIZE_ADDRESS__)
  constexpr bool asan = true;
#elif defined(__has_feature)
  constexpr bool asan = __has_feature(address_sanitizer);
#else
  constexpr bool asan = false;
#endif
  if (asan || lilcache::test::under_tsan()) {
    MESSAGE("skipped under a sanitizer (its SIGBUS handler reports the signal)");
    return;
  }
  TempDir dir;
  int ready[2], go[2];
  REQUIRE(::pipe(ready) == 0);
  REQUIRE(::pipe(go) == 0);
  pid_t pid = lilcache::test::fork_child([&] {
    auto c = Cache::open("t", {.root = dir.path()});
    c.set("small", "1");
    c.set("big", std::string(10000, 'v'));  // ends near offset 14,200
    char b = 'r';
    if (::write(ready[1], &b, 1) != 1 || ::read(go[0], &b, 1) != 1) return 2;
    ::signal(SIGBUS, SIG_DFL);
    return c.get("big") ? 3 : 4;  // not reached
  });
  char b;
  REQUIRE(::read(ready[0], &b, 1) == 1);
  REQUIRE(::truncate(dir.file("t.1.data").c_str(), 8192) == 0);  // an operator's mistake
  REQUIRE(::write(go[1], &b, 1) == 1);
  CHECK(lilcache::test::wait_child(pid) == 128 + SIGBUS);
  for (int fd : {ready[0], ready[1], go[0], go[1]}) ::close(fd);
  auto c = Cache::open("t", {.root = dir.path()});  // alone: replays what is left of the log
  CHECK(c.get("small") == "1");
  CHECK_FALSE(c.get("big").has_value());
}

TEST_CASE(
    "an index with garbage slots behind an intact header: reads throw, and removing the file "
    "repairs it") {
  // docs/operations.md: not detected at open (checking every slot at every
  // open would read the whole log); the operator's repair is to remove the
  // index while no process has the cache open.
  TempDir dir;
  {
    auto c = Cache::open("t", {.root = dir.path()});
    for (int i = 0; i < 100; ++i) c.set("k" + std::to_string(i), "v" + std::to_string(i));
  }
  {
    RawFile f(dir.file("t.1.index"));
    for (off_t slot = 0; slot < 1024; ++slot)
      f.PutU64(4096 + 8 * slot, 0x0123456789abcdefull * (slot + 1));
  }
  {
    auto c = Cache::open("t", {.root = dir.path()});
    CHECK_THROWS_AS(c.size(), Error);
  }
  std::filesystem::remove(dir.file("t.1.index"));
  auto c = Cache::open("t", {.root = dir.path()});
  CHECK(c.size() == 100);
  for (int i = 0; i < 100; ++i) CHECK(c.get("k" + std::to_string(i)) == "v" + std::to_string(i));
}

TEST_CASE(
    "after a reboot, the logs of every generation from the durable one on are replayed "
    "together") {
  // What a power loss after automatic compactions (which sync nothing) can
  // leave (docs/concurrency.md, "Durability"): generation 1's log, durable
  // (a sync()) and kept for that, and generation 2's, whose copy of k never
  // reached the disk. The meta page may name either.
  TempDir dir;
  std::uint64_t gen = 0;
  {
    auto c = Cache::open("t", {.root = dir.path()});
    c.set("a", "1");
    c.set("k", std::string(5000, 'K'));
    c.sync();
    gen = lilcache::test::auto_compact(c, "fill");
    c.set("b", "2");
  }
  REQUIRE(std::filesystem::exists(dir.file("t.1.data")));
  const std::string live = dir.file("t." + std::to_string(gen) + ".data");
  // k's copy in the live generation lost (it is copied first, in log order).
  REQUIRE(::truncate(live.c_str(), 4096 + 2000) == 0);
  FaultEnv rebooted;
  rebooted.set_boot_id("after-a-power-loss");
  {
    auto c = Cache::open("t", {.root = dir.path(), .env = &rebooted});
    CHECK(c.get("a") == "1");
    CHECK(c.get("k") == std::string(5000, 'K'));
    CHECK(c.stats().generation == gen + 1);
  }
  CHECK(!std::filesystem::exists(dir.file("t.1.data")));  // gen + 1 is durable
  CHECK(!std::filesystem::exists(live));
  CHECK(Cache::open("t", {.root = dir.path(), .env = &rebooted}).get("k") ==
        std::string(5000, 'K'));
}

TEST_CASE("after a reboot, a log older than the durable generation is not replayed") {
  // A delete made durable by sync() in generation 2, whose tombstone an
  // automatic compaction then dropped: generation 1's log, still there,
  // must not bring the key back (Bitcask's bug).
  TempDir dir;
  {
    auto c = Cache::open("t", {.root = dir.path()});
    c.set("doomed", "old");
    c.sync();
    lilcache::test::auto_compact(c, "fill");
    REQUIRE(c.erase("doomed"));
    lilcache::test::auto_compact(c, "more");
    c.sync();
  }
  REQUIRE(std::filesystem::exists(dir.file("t.1.data")));
  FaultEnv rebooted;
  rebooted.set_boot_id("after-a-power-loss");
  auto c = Cache::open("t", {.root = dir.path(), .env = &rebooted});
  CHECK(c.get("doomed") == std::nullopt);
  CHECK(c.get("fill0") == "filler");
  CHECK(!std::filesystem::exists(dir.file("t.1.data")));
}

TEST_CASE("after a reboot, a cache whose logs all vanished opens empty") {
  // Nothing was ever synced, and no page of the logs reached the disk.
  TempDir dir;
  { Cache::open("t", {.root = dir.path()}).set("a", "1"); }
  std::filesystem::remove(dir.file("t.1.data"));
  std::filesystem::remove(dir.file("t.1.index"));
  FaultEnv rebooted;
  rebooted.set_boot_id("after-a-power-loss");
  auto c = Cache::open("t", {.root = dir.path(), .env = &rebooted});
  CHECK(c.get("a") == std::nullopt);
  c.set("b", "2");
  CHECK(c.get("b") == "2");
}
