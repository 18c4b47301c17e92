// The operator tools, lilcache-dump and lilcache-compact, run as real
// processes ($LILCACHE_DUMP, $LILCACHE_COMPACT) on real caches: their output,
// their exit statuses, and that dump never modifies anything.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <new>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "engine/meta.h"
#include "format/record.h"
#include "lilcache/env.h"
#include "lilcache/lilcache.h"
#include "support/test_util.h"

namespace {

using lilcache::Cache;
using lilcache::test::SharedMemory;
using lilcache::test::TempDir;
using nlohmann::json;
namespace fs = std::filesystem;

// ---- running the tools ----------------------------------------------------------

std::string EnvPath(const char* var) {
  const char* p = std::getenv(var);
  if (p == nullptr || *p == '\0') throw std::runtime_error(std::string(var) + " is not set");
  return p;
}
std::string DumpPath() { return EnvPath("LILCACHE_DUMP"); }
std::string CompactPath() { return EnvPath("LILCACHE_COMPACT"); }

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Result {
  int status = -1;  // exit status, 128 + signal if killed
  std::string out, err;
};

// Runs argv (argv[0] = the program) with stdout and stderr captured.
Result Run(const std::vector<std::string>& argv) {
  TempDir io;
  const std::string out = io.file("stdout"), err = io.file("stderr");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error("posix_spawn " + argv[0] + " failed");
  Result r;
  r.status = lilcache::test::wait_child(pid, std::chrono::seconds(120));
  r.out = ReadAll(out);
  r.err = ReadAll(err);
  return r;
}

Result Dump(const std::vector<std::string>& args) {
  std::vector<std::string> argv{DumpPath()};
  argv.insert(argv.end(), args.begin(), args.end());
  return Run(argv);
}

Result Compact(const std::vector<std::string>& args) {
  std::vector<std::string> argv{CompactPath()};
  argv.insert(argv.end(), args.begin(), args.end());
  return Run(argv);
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// ---- caches and files -------------------------------------------------------------

const std::string kBinary("bin\0\xff\n\"\\", 8);
const std::string kNulKey("k\0ey", 4);

// A cache whose files are the same on every run but for the salt, the boot
// id and the creation times: every record state but expired and damaged.
void MakeDeterministicCache(const std::string& root, const std::string& name) {
  auto c = Cache::open(name, {.root = root});
  c.set("alpha", "1");                   // dead (overwritten below)
  c.set("beta", kBinary);                // dead (erased below)
  c.set("long", std::string(100, '7'));  // purged
  c.erase("beta");                       // tombstone
  c.set(kNulKey, "v");                   // purged
  c.purge();
  c.set("alpha", "2");          // live
  c.set("after", "the purge");  // live
}

// Offset of the n-th record (0-based) of MakeDeterministicCache's log.
std::uint64_t RecordOffset(int n) {
  const std::size_t sizes[] = {
      lilcache::record::RecordSize(5, 1), lilcache::record::RecordSize(4, 8),
      lilcache::record::RecordSize(4, 100), lilcache::record::RecordSize(4, 0),
      lilcache::record::RecordSize(4, 1)};
  std::uint64_t off = lilcache::kHeaderSize;
  for (int i = 0; i < n; ++i) off += sizes[i];
  return off;
}

// Every file of a directory with its bytes and modification time.
struct FileState {
  std::string bytes;
  std::int64_t mtime_ns = 0;
  bool operator==(const FileState&) const = default;
};

std::map<std::string, FileState> Snapshot(const std::string& dir) {
  std::map<std::string, FileState> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    struct stat st;
    REQUIRE(::stat(e.path().c_str(), &st) == 0);
    files[e.path().filename()] = {ReadAll(e.path()),
                                  st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec};
  }
  return files;
}

void CheckUnchanged(const std::map<std::string, FileState>& before, const std::string& dir) {
  auto after = Snapshot(dir);
  CHECK(after.size() == before.size());
  for (const auto& entry : before) {
    const std::string& name = entry.first;  // not a binding: INFO captures it (clang 14)
    const FileState& state = entry.second;
    INFO("file " << name);
    REQUIRE(after.count(name) == 1);
    CHECK(after.at(name).bytes == state.bytes);
    CHECK(after.at(name).mtime_ns == state.mtime_ns);
  }
}

void WriteAt(const std::string& path, std::uint64_t offset, const std::string& bytes) {
  int fd = ::open(path.c_str(), O_WRONLY);
  REQUIRE(fd >= 0);
  REQUIRE(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset)) ==
          static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

std::uint64_t Generation(const std::string& root, const std::string& name) {
  std::ifstream in(root + "/" + name + ".meta", std::ios::binary);
  lilcache::MetaHeader h{};
  in.read(reinterpret_cast<char*>(&h), sizeof h);
  return h.generation;
}

// Dump's text with what varies between runs replaced: the root, and the
// values of the salt, boot_id and created lines.
std::string Normalize(const std::string& text, const std::string& root) {
  std::istringstream in(text);
  std::string out, line;
  while (std::getline(in, line)) {
    for (std::size_t p; (p = line.find(root)) != std::string::npos;)
      line.replace(p, root.size(), "ROOT");
    for (const char* varying : {"  salt ", "  created ", "  boot_id "}) {
      if (line.starts_with(varying) && line.size() > 18) line = line.substr(0, 18) + "<varies>";
    }
    out += line + "\n";
  }
  return out;
}

// A forked child killed (SIGKILL) and reaped if the test ends without waiting for it.
class ChildGuard {
 public:
  explicit ChildGuard(pid_t pid) : pid_(pid) {}
  ~ChildGuard() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      lilcache::test::wait_child(pid_);
    }
  }
  ChildGuard(const ChildGuard&) = delete;
  ChildGuard& operator=(const ChildGuard&) = delete;
  int Wait() { return lilcache::test::wait_child(std::exchange(pid_, -1)); }

 private:
  pid_t pid_;
};

}  // namespace

// ---- lilcache-dump --------------------------------------------------------------------

// After an intended change of dump's output (or of the format), rewrite the
// golden file with: LILCACHE_UPDATE_GOLDEN=1 meson test -C BUILD tools_test
// and review its diff.
TEST_CASE(
    "dump of a healthy cache prints headers, records and stats as in the golden file, "
    "and exits 0") {
  TempDir dir;
  MakeDeterministicCache(dir.path(), "golden");
  Result r = Dump({"--root", dir.path(), "golden", "--header", "--records", "--stats"});
  INFO("stderr: " << r.err);
  CHECK(r.status == 0);
  CHECK(r.err.empty());
  const std::string golden = EnvPath("LILCACHE_GOLDEN_DIR") + "/dump_healthy.txt";
  std::string actual = Normalize(r.out, dir.path());
  if (std::getenv("LILCACHE_UPDATE_GOLDEN") != nullptr) {
    std::ofstream(golden, std::ios::binary) << actual;
    MESSAGE("rewrote " << golden);
  }
  CHECK(actual == ReadAll(golden));
}

TEST_CASE("dump without section flags shows the header and the stats, not the records") {
  TempDir dir;
  MakeDeterministicCache(dir.path(), "c");
  Result r = Dump({"--root", dir.path(), "c"});
  CHECK(r.status == 0);
  CHECK(Contains(r.out, "meta   " + dir.path() + "/c.meta"));
  CHECK(Contains(r.out, "\nstats\n"));
  CHECK(Contains(r.out, "  live            2 records"));
  CHECK(!Contains(r.out, "\nrecords\n"));
  CHECK(Contains(r.out, "status: healthy"));
}

TEST_CASE("dump --json emits one JSON document with the header, every record and the stats") {
  TempDir dir;
  MakeDeterministicCache(dir.path(), "c");
  Result r = Dump({"--root", dir.path(), "c", "--json", "--header", "--records", "--stats"});
  REQUIRE(r.status == 0);
  json j = json::parse(r.out);  // throws unless stdout is exactly one JSON document
  CHECK(j["name"] == "c");
  CHECK(j["healthy"] == true);
  CHECK(j["header"]["meta"]["generation"] == 1);
  CHECK(j["header"]["data"]["tail"] == RecordOffset(5) + 48 + 56);
  const json& recs = j["records"];
  REQUIRE(recs.size() == 7);
  CHECK(recs[0]["key"] == "alpha");
  CHECK(recs[0]["state"] == "dead");
  CHECK(recs[0]["offset"] == lilcache::kHeaderSize);
  CHECK(recs[1]["value"] == "bin\\x00\\xff\\n\\\"\\\\");
  CHECK(recs[1]["value_len"] == 8);
  CHECK(recs[2]["value_shortened"] == true);
  CHECK(recs[2]["state"] == "purged");
  CHECK(recs[3]["type"] == "tombstone");
  CHECK(recs[4]["key"] == "k\\x00ey");
  CHECK(recs[6]["state"] == "live");
  CHECK(recs[6]["checksum_ok"] == true);
  CHECK(j["stats"]["states"]["live"]["records"] == 2);
  CHECK(j["stats"]["states"]["purged"]["records"] == 2);  // "long" and "k\0ey"
  CHECK(j["damage"].empty());
  CHECK(j["problems"].empty());
}

TEST_CASE("dump --index reports the load and a probe-length histogram covering every used slot") {
  TempDir dir;
  {
    auto c = Cache::open("c", {.root = dir.path()});
    for (int i = 0; i < 400; ++i) c.set("key" + std::to_string(i), "v");
  }
  Result r = Dump({"--root", dir.path(), "c", "--json", "--index", "--header"});
  REQUIRE(r.status == 0);
  json j = json::parse(r.out);
  const json& x = j["index"];
  CHECK(x["occupied"] == 400);
  CHECK(x["occupied"] == j["header"]["index"]["used_slots"]);
  CHECK(x["load"].get<double>() == doctest::Approx(400.0 / x["slot_count"].get<double>()));
  std::uint64_t slots = 0, max = 0;
  for (const auto& [len, n] : x["probe_histogram"].items()) {
    slots += n.get<std::uint64_t>();
    max = std::max<std::uint64_t>(max, std::stoull(len));
  }
  CHECK(slots == 400);
  CHECK(x["max_probe"] == max);
  CHECK(x["mean_probe"].get<double>() >= 1.0);
  Result text = Dump({"--root", dir.path(), "c", "--index"});
  CHECK(Contains(text.out, "  load            400 of "));
  CHECK(Contains(text.out, "  probe length    max "));
}

TEST_CASE(
    "dump of a log with a corrupted record reports where the damage starts, keeps going, "
    "exits 1 and modifies nothing") {
  TempDir dir;
  MakeDeterministicCache(dir.path(), "c");
  const std::string data = dir.file("c.1.data");
  const std::uint64_t bad = RecordOffset(1);
  std::string expect;
  SUBCASE("a flipped byte in a value: bad checksum") {
    WriteAt(data, bad + 40 + 4 + 2, "X");
    expect = "damage at offset " + std::to_string(bad) +
             ": bad checksum; resynchronized at offset " + std::to_string(RecordOffset(2));
  }
  SUBCASE("a flipped byte in the record magic: bad magic") {
    WriteAt(data, bad + 8, "X");
    expect = "damage at offset " + std::to_string(bad) + ": bad magic; resynchronized at offset " +
             std::to_string(RecordOffset(2));
  }
  const auto before = Snapshot(dir.path());
  Result r = Dump({"--root", dir.path(), "c", "--records", "--stats"});
  CHECK(r.status == 1);
  CHECK(Contains(r.out, expect));
  // It kept going: the records after the damage are listed and intact.
  CHECK(Contains(r.out, "  " + std::to_string(RecordOffset(2)) + "  seq 3  set"));
  CHECK(Contains(r.out, "key \"after\"  value \"the purge\""));
  CHECK(Contains(r.out, "damaged regions 1,"));
  CHECK(Contains(r.out, "status: NOT healthy"));
  CHECK(Contains(r.err, "lilcache-dump: c: not healthy"));
  CheckUnchanged(before, dir.path());

  Result j = Dump({"--root", dir.path(), "c", "--json", "--stats"});
  CHECK(j.status == 1);
  json doc = json::parse(j.out);
  REQUIRE(doc["damage"].size() == 1);
  CHECK(doc["damage"][0]["offset"] == bad);
  CHECK(doc["healthy"] == false);
  CheckUnchanged(before, dir.path());
}

TEST_CASE(
    "dump of a truncated log reports the truncation and the cut record, exits 1 and "
    "modifies nothing") {
  TempDir dir;
  MakeDeterministicCache(dir.path(), "c");
  const std::uint64_t cut = RecordOffset(2) + 60;  // inside the third record
  REQUIRE(::truncate(dir.file("c.1.data").c_str(), static_cast<off_t>(cut)) == 0);
  const auto before = Snapshot(dir.path());
  Result r = Dump({"--root", dir.path(), "c", "--records", "--stats"});
  CHECK(r.status == 1);
  CHECK(Contains(r.out, "c.1.data: truncated: " + std::to_string(cut) + " bytes"));
  CHECK(Contains(r.out, "damage at offset " + std::to_string(RecordOffset(2)) + ": truncated"));
  CHECK(
      Contains(r.out, "  " + std::to_string(RecordOffset(1)) + "  seq 2  set"));  // before the cut
  CheckUnchanged(before, dir.path());
}

TEST_CASE("dump of a cache whose data or index file is missing prints what it can and exits 1") {
  TempDir dir;
  MakeDeterministicCache(dir.path(), "c");
  std::string gone, shown;
  SUBCASE("data: the header of the meta file is still shown") {
    gone = "c.1.data";
    shown = "  generation      1";
  }
  SUBCASE("index: the records are still shown, but whether they are current is unknown") {
    gone = "c.1.index";
    shown = "  unknown         2 records";  // "alpha" and "after"; the rest are purged or deleted
  }
  fs::remove(dir.file(gone));
  const auto before = Snapshot(dir.path());
  Result r = Dump({"--root", dir.path(), "c"});
  CHECK(r.status == 1);
  CHECK(Contains(r.out, shown));
  CHECK(Contains(r.out, gone + ": cannot open: No such file or directory"));
  CheckUnchanged(before, dir.path());
}

TEST_CASE("dump lists zeroed bytes that no index slot points at as a hole, which is not damage") {
  TempDir dir;
  MakeDeterministicCache(dir.path(), "c");
  WriteAt(dir.file("c.1.data"), RecordOffset(0), std::string(48, '\0'));  // "alpha", overwritten
  Result r = Dump({"--root", dir.path(), "c", "--records", "--stats"});
  CHECK(r.status == 0);
  CHECK(Contains(r.out, "  hole at offset 4096: 48 zero bytes\n  4144  seq 2  set"));
  CHECK(Contains(r.out, "  holes           1, 48 bytes"));
  CHECK(Contains(r.out, "status: healthy"));
}

TEST_CASE("dump counts the processes that have the cache open") {
  TempDir dir;
  auto c = Cache::open("c", {.root = dir.path()});
  c.set("k", "v");
  Result r = Dump({"--root", dir.path(), "c", "--header"});
  CHECK(r.status == 0);
  CHECK(Contains(r.out, "  processes       1\n"));
}

TEST_CASE(
    "dump of a meta file that is not a lilcache file reports it: damage (1) or unreadable (3)") {
  TempDir dir;
  SUBCASE("right size, bad magic: a problem, shown with the header") {
    std::ofstream(dir.file("c.meta"), std::ios::binary)
        << std::string(lilcache::kMetaFileSize, 'x');
    Result r = Dump({"--root", dir.path(), "c"});
    CHECK(r.status == 1);
    CHECK(Contains(r.out, "bad magic number"));
  }
  SUBCASE("shorter than its header: an error on stderr") {
    std::ofstream(dir.file("c.meta"), std::ios::binary) << "short";
    Result r = Dump({"--root", dir.path(), "c"});
    CHECK(r.status == 3);
    CHECK(r.out.empty());
    CHECK(Contains(r.err, "shorter than its 4096-byte header"));
  }
}

TEST_CASE("dump --limit shows at most N records but still counts them all") {
  TempDir dir;
  MakeDeterministicCache(dir.path(), "c");
  Result r = Dump({"--root", dir.path(), "c", "--records", "--stats", "--limit", "2"});
  CHECK(r.status == 0);
  CHECK(Contains(r.out, "  ... 5 more records not shown (--limit)"));
  CHECK(Contains(r.out, "  live            2 records"));
  json j =
      json::parse(Dump({"--root", dir.path(), "c", "--json", "--records", "--limit", "2"}).out);
  CHECK(j["records"].size() == 2);
}

TEST_CASE(
    "dump of a missing cache exits 3, not 1 (damage), with the reason on stderr and creates "
    "nothing") {
  TempDir dir;
  Result r = Dump({"--root", dir.path(), "nope"});
  CHECK(r.status == 3);
  CHECK(Contains(r.err, "lilcache-dump: nope: cannot open " + dir.path() + "/nope.meta"));
  CHECK(fs::is_empty(dir.path()));
}

TEST_CASE("dump escapes a boot id of invalid UTF-8 and terminal escapes, and --json stays valid") {
  // Issue 12: --json aborted (uncaught type_error 316) and text mode printed
  // the bytes as they were (terminal escape injection).
  TempDir dir;
  { Cache::open("c", {.root = dir.path()}).set("k", "v"); }
  const std::string forged("\x1b]0;pwned\x07\xff\xfe\x1b[2J", 16);
  WriteAt(dir.file("c.meta"), offsetof(lilcache::MetaHeader, boot_id), forged + '\0');
  Result text = Dump({"--root", dir.path(), "c", "--header"});
  CHECK(text.status == 0);
  CHECK(text.out.find('\x1b') == std::string::npos);
  CHECK(text.out.find('\xff') == std::string::npos);
  CHECK(Contains(text.out, "  boot_id         \\x1b]0;pwned\\x07\\xff\\xfe\\x1b[2J\n"));
  Result j = Dump({"--root", dir.path(), "c", "--header", "--json"});
  CHECK(j.status == 0);
  json doc = json::parse(j.out);  // throws if it is not JSON
  CHECK(doc["header"]["meta"]["boot_id"] == "\\x1b]0;pwned\\x07\\xff\\xfe\\x1b[2J");
}

TEST_CASE("dump of a cache under a --root of invalid UTF-8 and control bytes prints it escaped") {
  TempDir dir;
  const std::string root = dir.file(std::string("r\xff\x1b[31m", 7));
  { Cache::open("c", {.root = root}).set("k", "v"); }
  Result text = Dump({"--root", root, "c"});
  CHECK(text.status == 0);
  CHECK(text.out.find('\x1b') == std::string::npos);
  CHECK(text.out.find('\xff') == std::string::npos);
  CHECK(Contains(text.out, "r\\xff\\x1b[31m/c.meta"));
  Result j = Dump({"--root", root, "c", "--json", "--records"});
  CHECK(j.status == 0);
  json doc = json::parse(j.out);
  CHECK(doc["records"].size() == 1);
  CHECK(doc["root"] == dir.path() + "/r\xef\xbf\xbd\x1b[31m");  // U+FFFD for the bad byte
  SUBCASE("and the error of a missing cache there too") {
    Result missing = Dump({"--root", root, "nope", "--json"});
    CHECK(missing.status == 3);
    json parsed;
    CHECK_NOTHROW(parsed = json::parse(missing.out));
    CHECK(missing.err.find('\x1b') == std::string::npos);
  }
}

TEST_CASE("dump exits 2 on bad usage and prints its version with --version") {
  CHECK(Dump({"--bogus", "c"}).status == 2);
  CHECK(Dump({}).status == 2);
  CHECK(Dump({"c", "--limit", "many"}).status == 2);
  Result bad_name = Dump({"a/b"});
  CHECK(bad_name.status == 2);
  CHECK(Contains(bad_name.err, "invalid cache name"));
  Result v = Dump({"--version"});
  CHECK(v.status == 0);
  CHECK(v.out == "lilcache-dump " + std::string(lilcache::version()) + "\n");
  Result help = Dump({"--help"});
  CHECK(help.status == 0);
  CHECK(Contains(help.out, "Exit status"));
}

// ---- lilcache-compact -------------------------------------------------------------------

TEST_CASE("compact compacts a cache, reports its sizes and keys, exits 0 and keeps every value") {
  TempDir dir;
  {
    auto c = Cache::open("c", {.root = dir.path()});
    for (int round = 0; round < 10; ++round) {
      for (int i = 0; i < 100; ++i) c.set("k" + std::to_string(i), "v" + std::to_string(round));
    }
    c.erase("k0");
  }
  Result r = Compact({"--root", dir.path(), "c"});
  INFO("stderr: " << r.err);
  CHECK(r.status == 0);
  CHECK(Contains(r.out, "c: compacted: generation 1 -> 2, "));
  CHECK(Contains(r.out, " 99 live, 0 expired, 1 deleted, 0 evicted keys, "));
  CHECK(Generation(dir.path(), "c") == 2);
  auto c = Cache::open("c", {.root = dir.path()});
  CHECK(!c.get("k0"));
  for (int i = 1; i < 100; ++i) CHECK(c.get("k" + std::to_string(i)) == "v9");
}

TEST_CASE("compact of a cache another process keeps writing exits 0 and loses no write") {
  TempDir dir;
  struct Progress {
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> rounds{0};  // complete rounds of writes
  };
  SharedMemory<Progress> progress;
  auto value = [](int i, std::uint64_t round) {
    return "value " + std::to_string(i) + " of round " + std::to_string(round);
  };
  ChildGuard writer(lilcache::test::fork_child([&] {
    auto c = Cache::open("busy", {.root = dir.path()});
    for (std::uint64_t round = 0; !progress->stop.load(); ++round) {
      for (int i = 0; i < 200; ++i) c.set("k" + std::to_string(i), value(i, round));
      progress->rounds.store(round + 1);
    }
    return 0;
  }));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (progress->rounds.load() < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  REQUIRE(progress->rounds.load() >= 3);
  const std::uint64_t rounds_before = progress->rounds.load();
  int compacted = 0;
  for (int n = 0; n < 5; ++n) {
    Result r = Compact({"--root", dir.path(), "busy"});
    INFO("stdout: " << r.out << "stderr: " << r.err);
    CHECK(r.status == 0);
    compacted += Contains(r.out, "busy: compacted: ") ? 1 : 0;
  }
  CHECK(compacted >= 1);  // (a background compaction of the writer may have made some skip)
  CHECK(progress->rounds.load() > rounds_before);  // the writer kept writing meanwhile
  progress->stop.store(true);
  REQUIRE(writer.Wait() == 0);
  const std::uint64_t last = progress->rounds.load() - 1;
  {
    auto c = Cache::open("busy", {.root = dir.path()});
    for (int i = 0; i < 200; ++i) CHECK(c.get("k" + std::to_string(i)) == value(i, last));
  }
  Result check = Dump({"--root", dir.path(), "busy", "--stats"});
  CHECK(check.status == 0);
}

TEST_CASE("compact skips, with exit 0, a cache whose COMPACT lock another process holds") {
  TempDir dir;
  {
    auto c = Cache::open("c", {.root = dir.path()});
    c.set("k", "v0");  // dead space: something to compact
    c.set("k", "v");
  }
  int fd = ::open(dir.file("c.meta").c_str(), O_RDWR | O_CLOEXEC);
  REQUIRE(fd >= 0);
  REQUIRE(lilcache::Env::Default()->Lock(fd, lilcache::kCompactLockByte, 1, true, false) == 0);
  Result r = Compact({"--root", dir.path(), "c"});
  ::close(fd);
  CHECK(r.status == 0);
  CHECK(r.out == "c: skipped: another process is compacting it\n");
  CHECK(Generation(dir.path(), "c") == 1);
}

TEST_CASE(
    "compact of a missing cache exits 3, names it on stderr, does not create it, and "
    "still compacts the others") {
  TempDir dir;
  {
    auto c = Cache::open("there", {.root = dir.path()});
    c.set("k", "v0");
    c.set("k", "v");
  }
  Result r = Compact({"--root", dir.path(), "nope", "there"});
  CHECK(r.status == 3);
  CHECK(r.err ==
        "lilcache-compact: nope: no such cache (" + dir.path() + "/nope.meta does not exist)\n");
  CHECK(Contains(r.out, "there: compacted: "));
  CHECK(!fs::exists(dir.file("nope.meta")));
  CHECK(!fs::exists(dir.file("nope.log")));
}

TEST_CASE("compact with an unreadable root exits 3 with the reason on stderr") {
  TempDir dir;
  SUBCASE("--all under a root that does not exist") {
    Result r = Compact({"--root", dir.file("missing"), "--all"});
    CHECK(r.status == 3);
    CHECK(Contains(r.err, "lilcache-compact: cannot read cache root"));
    CHECK(!fs::exists(dir.file("missing")));
  }
  SUBCASE("a name under a root that is a file") {
    std::ofstream(dir.file("file")) << "x";
    Result r = Compact({"--root", dir.file("file"), "c"});
    CHECK(r.status == 3);
    CHECK(Contains(r.err, "lilcache-compact: c: cannot open "));
    CHECK(Contains(r.err, "Not a directory"));
  }
  if (::geteuid() != 0) {  // root reads any directory
    SUBCASE("--all under a root without read permission") {
      fs::create_directory(dir.file("locked"));
      fs::permissions(dir.file("locked"), fs::perms::none);
      Result r = Compact({"--root", dir.file("locked"), "--all"});
      fs::permissions(dir.file("locked"), fs::perms::owner_all);
      CHECK(r.status == 3);
      CHECK(Contains(r.err, "Permission denied"));
    }
  }
}

TEST_CASE(
    "compact run by root on another user's cache exits 3 naming the owner, and changes nothing") {
  // Issue 11: `sudo lilcache-compact` left root-owned 0600 files behind, and
  // the owner's every get and set failed "Permission denied" after it.
  if (::geteuid() != 0) {
    MESSAGE("skipped: needs root to create a cache as another user (uid 65534)");
    return;
  }
  TempDir dir;
  REQUIRE(::chmod(dir.path().c_str(), 0711) == 0);
  const std::string root = dir.file("nobodys");
  REQUIRE(::mkdir(root.c_str(), 0700) == 0);
  REQUIRE(::chown(root.c_str(), 65534, 65534) == 0);
  auto as_nobody = [](const std::function<int()>& fn) {
    return lilcache::test::wait_child(lilcache::test::fork_child([&] {
      if (::setgroups(0, nullptr) != 0 || ::setresgid(65534, 65534, 65534) != 0 ||
          ::setresuid(65534, 65534, 65534) != 0) {
        return 98;
      }
      return fn();
    }));
  };
  REQUIRE(as_nobody([&] {
            auto c = Cache::open("c", {.root = root});
            for (int i = 0; i < 50; ++i) c.set("k" + std::to_string(i), "v");
            return 0;
          }) == 0);
  auto before = Snapshot(root);
  for (const std::vector<std::string>& args : {std::vector<std::string>{"--root", root, "c"},
                                               std::vector<std::string>{"--root", root, "--all"}}) {
    Result r = Compact(args);
    CHECK(r.status == 3);
    CHECK(Contains(r.err, "lilcache-compact: c: refusing "));
    CHECK(Contains(r.err, "owned by uid 65534"));
  }
  CheckUnchanged(before, root);
  CHECK(as_nobody([&] {
          auto c = Cache::open("c", {.root = root, .create_if_missing = false});
          c.set("after", "yes");
          return c.get("k7") == "v" && c.compact().compacted ? 0 : 1;
        }) == 0);
}

TEST_CASE("compact exits 2 on bad usage: an unknown flag, no name, names with --all, a bad name") {
  TempDir dir;
  CHECK(Compact({"--root", dir.path(), "--bogus", "c"}).status == 2);
  Result none = Compact({"--root", dir.path()});
  CHECK(none.status == 2);
  CHECK(Contains(none.err, "name a cache (--name NAME) or give --all"));
  CHECK(Compact({"--root", dir.path(), "--all", "c"}).status == 2);
  CHECK(Compact({"--root", dir.path(), "a/b"}).status == 2);
  CHECK(fs::is_empty(dir.path()));
  Result v = Compact({"--version"});
  CHECK(v.status == 0);
  CHECK(v.out == "lilcache-compact " + std::string(lilcache::version()) + "\n");
}

TEST_CASE("compact --all compacts every cache under the root") {
  TempDir dir;
  for (const char* name : {"a", "b", "c"}) {
    auto c = Cache::open(name, {.root = dir.path()});
    c.set("k", name);
    c.set("k", std::string(name) + "2");
  }
  Result r = Compact({"--root", dir.path(), "--all"});
  CHECK(r.status == 0);
  for (const char* name : {"a", "b", "c"}) {
    CHECK(Contains(r.out, std::string(name) + ": compacted: generation 1 -> 2"));
    CHECK(Generation(dir.path(), name) == 2);
    CHECK(Cache::open(name, {.root = dir.path()}).get("k") == std::string(name) + "2");
  }
}

TEST_CASE("compact --dry-run prints the sizes it would reclaim and changes nothing") {
  TempDir dir;
  {
    auto c = Cache::open("c", {.root = dir.path()});
    c.set("k", "v1");
    c.set("k", "v2");
    c.set("gone", "x");
    c.erase("gone");
  }
  const auto before = Snapshot(dir.path());
  Result r = Compact({"--root", dir.path(), "c", "--dry-run"});
  CHECK(r.status == 0);
  CHECK(r.out ==
        "c: would compact generation 1: 4288 bytes of log: 48 bytes live (1 key), 144 bytes "
        "dead\n");
  CheckUnchanged(before, dir.path());
  CHECK(Generation(dir.path(), "c") == 1);
  Result all = Compact({"--root", dir.path(), "--all", "--dry-run"});
  CHECK(all.status == 0);
  CheckUnchanged(before, dir.path());
}

TEST_CASE("compact --quiet prints nothing on success and only the errors otherwise") {
  TempDir dir;
  {
    auto c = Cache::open("c", {.root = dir.path()});
    c.set("k", "v");
  }
  Result ok = Compact({"--root", dir.path(), "c", "--quiet"});
  CHECK(ok.status == 0);
  CHECK(ok.out.empty());
  CHECK(ok.err.empty());
  Result bad = Compact({"--root", dir.path(), "c", "nope", "-q"});
  CHECK(bad.status == 3);
  CHECK(bad.out.empty());
  CHECK(bad.err ==
        "lilcache-compact: nope: no such cache (" + dir.path() + "/nope.meta does not exist)\n");
}

namespace {
// Cache "c" under root: keys k00..k99 of 1,000 bytes each, records of
// 40 + 4 + 1000 bytes, rounded up: 1,048 bytes each.
void WriteHundredKeys(const std::string& root) {
  auto c = Cache::open("c", {.root = root});
  for (int i = 0; i < 100; ++i)
    c.set("k" + std::string(i < 10 ? "0" : "") + std::to_string(i), std::string(1000, 'x'));
}
}  // namespace

TEST_CASE("compact --max-bytes evicts the least recently stored keys and reports them") {
  TempDir dir;
  WriteHundredKeys(dir.path());
  Result r = Compact({"--root", dir.path(), "c", "--max-bytes", "20960"});
  INFO("stderr: " << r.err);
  CHECK(r.status == 0);
  // 90% of 20,960 bytes holds 18 records: the 82 oldest go.
  CHECK(Contains(r.out, " 18 live, 0 expired, 0 deleted, 82 evicted keys, "));
  auto c = Cache::open("c", {.root = dir.path()});
  CHECK(c.size() == 18);
  CHECK(!c.get("k00"));
  CHECK(!c.get("k81"));
  CHECK(c.get("k82"));
  CHECK(c.get("k99"));
  CHECK(c.stats().evictions == 82);
  CHECK(Compact({"--root", dir.path(), "c", "--max-bytes", "0"}).status == 2);
  CHECK(Compact({"--root", dir.path(), "c", "--max-bytes", "lots"}).status == 2);
}

// ---- what the three tools share (issue 17) ------------------------------------------

TEST_CASE("dump and compact name a cache with --name or positionally, and list the caches") {
  TempDir dir;
  for (const char* name : {"b", "a"}) {
    auto c = Cache::open(name, {.root = dir.path()});
    c.set("k", "v0");
    c.set("k", "v");
  }
  Result named = Dump({"--root", dir.path(), "--name", "a", "--header"});
  CHECK(named.status == 0);
  CHECK(Contains(named.out, "cache \"a\" in "));
  CHECK(Dump({"--root", dir.path(), "a", "--header"}).out == named.out);
  Result list = Dump({"--root", dir.path(), "--list"});
  CHECK(list.status == 0);
  CHECK(list.out == "a\nb\n");
  CHECK(Compact({"--root", dir.path(), "--list"}).out == "a\nb\n");
  Result compacted = Compact({"--root", dir.path(), "--name", "a", "--name", "b"});
  CHECK(compacted.status == 0);
  CHECK(Contains(compacted.out, "a: compacted: generation 1 -> 2"));
  CHECK(Contains(compacted.out, "b: compacted: generation 1 -> 2"));
  CHECK(Dump({"--root", dir.path(), "--list", "a"}).status == 2);
  Result missing_root = Dump({"--root", dir.file("nowhere"), "--list"});
  CHECK(missing_root.status == 3);
  CHECK(Contains(missing_root.err, "lilcache-dump: "));
}

TEST_CASE("dump and compact print lilcache's one-line usage errors, naming the option") {
  TempDir dir;
  Result limit = Dump({"--root", dir.path(), "c", "--limit", "x"});
  CHECK(limit.status == 2);
  CHECK(limit.err ==
        "lilcache-dump: --limit: expected a whole number, got \"x\" (see 'lilcache-dump "
        "--help')\n");
  Result unknown = Compact({"--root", dir.path(), "--frob", "c"});
  CHECK(unknown.status == 2);
  CHECK(unknown.err ==
        "lilcache-compact: unknown option \"--frob\" (see 'lilcache-compact --help')\n");
  Result missing_value = Dump({"c", "--root"});
  CHECK(missing_value.status == 2);
  CHECK(missing_value.err == "lilcache-dump: --root: missing value (see 'lilcache-dump --help')\n");
}

TEST_CASE("an empty option value or $LILCACHE_* variable is a usage error in dump and compact") {
  TempDir dir;
  {
    auto c = Cache::open("c", {.root = dir.path()});
    c.set("k", "v");
  }
  for (const auto& tool : {std::function<Result(const std::vector<std::string>&)>(Dump),
                           std::function<Result(const std::vector<std::string>&)>(Compact)}) {
    Result root = tool({"--root", "", "c"});
    CHECK(root.status == 2);
    CHECK(Contains(root.err, ": --root is empty; omit it for its default (see "));
    CHECK(root.err.find('\n') == root.err.size() - 1);
    CHECK(tool({"--root", dir.path(), "--name", ""}).status == 2);
  }
  CHECK(Compact({"--root", dir.path(), "c", "--max-bytes", ""}).status == 2);
  for (const char* var : {"LILCACHE_ROOT=", "LILCACHE_LOGLEVEL=", "LILCACHE_LOGLEVEL=bogus"}) {
    CAPTURE(var);
    for (const std::string& tool : {DumpPath(), CompactPath()}) {
      // Through env(1), so that only this run sees the variable.
      Result r = Run({"/usr/bin/env", var, tool, "--root", dir.path(), "c"});
      CHECK(r.status == 2);
      CHECK(Contains(r.err, "$LILCACHE_"));
      CHECK(r.err.find('\n') == r.err.size() - 1);
    }
  }
}

TEST_CASE("compact --max-bytes takes a size with a unit, or none, and refuses 0 in one line") {
  TempDir dir;
  WriteHundredKeys(dir.path());
  Result r = Compact({"--root", dir.path(), "c", "--max-bytes", "40KiB"});
  CHECK(r.status == 0);
  CHECK(Contains(r.out, " evicted keys, "));
  CHECK(Cache::open("c", {.root = dir.path()}).stats().max_bytes == 40 * 1024);
  Result header = Dump({"--root", dir.path(), "c", "--header"});
  CHECK(Contains(header.out, "  max_bytes       40960\n"));
  // none lifts the limit: every place shows "none" (JSON: null).
  CHECK(Compact({"--root", dir.path(), "c", "--max-bytes", "none", "--force"}).status == 0);
  CHECK(Cache::open("c", {.root = dir.path()}).stats().max_bytes == 0);
  header = Dump({"--root", dir.path(), "c", "--header"});
  CHECK(Contains(header.out, "  max_bytes       none\n"));
  json j = json::parse(Dump({"--root", dir.path(), "c", "--header", "--json"}).out);
  CHECK(j["header"]["meta"]["max_bytes"].is_null());
  for (const char* bad : {"0", "-1", "1.5G", "99999999999999999999999", "lots"}) {
    CAPTURE(bad);
    Result e = Compact({"--root", dir.path(), "c", "--max-bytes", bad});
    CHECK(e.status == 2);
    CHECK(e.err.starts_with("lilcache-compact: --max-bytes: invalid size \"" + std::string(bad) +
                            "\": "));
    CHECK(e.err.find('\n') == e.err.size() - 1);
    CHECK(e.err.size() < 300);  // not CLI11's 300-digit range
  }
}

TEST_CASE("compact skips a cache with no dead space and nothing to evict, unless --force") {
  TempDir dir;
  {
    auto c = Cache::open("c", {.root = dir.path()});
    c.set("k", "v");
  }
  const auto before = Snapshot(dir.path());
  Result dry = Compact({"--root", dir.path(), "c", "--dry-run"});
  CHECK(dry.status == 0);
  CHECK(dry.out ==
        "c: skipped: no dead space and nothing to evict (48 bytes live); --force would compact "
        "it anyway\n");
  Result skipped = Compact({"--root", dir.path(), "c"});
  CHECK(skipped.status == 0);
  CHECK(skipped.out ==
        "c: skipped: no dead space and nothing to evict (48 bytes live); --force compacts it "
        "anyway\n");
  CHECK(Generation(dir.path(), "c") == 1);
  CHECK(Contains(Compact({"--root", dir.path(), "c", "--dry-run", "--force"}).out,
                 "c: would compact generation 1: "));
  Result forced = Compact({"--root", dir.path(), "c", "--force"});
  CHECK(forced.status == 0);
  CHECK(Contains(forced.out, "c: compacted: generation 1 -> 2"));
  CHECK(Generation(dir.path(), "c") == 2);
  (void)before;
}

TEST_CASE("compact --dry-run predicts the evictions under --max-bytes as compact then does") {
  TempDir dir;
  WriteHundredKeys(dir.path());
  const auto before = Snapshot(dir.path());
  Result dry = Compact({"--root", dir.path(), "c", "--max-bytes", "20960", "--dry-run"});
  CHECK(dry.status == 0);
  CHECK(dry.out ==
        "c: would compact generation 1: 108896 bytes of log: 104800 bytes live (100 keys), 0 "
        "bytes dead; max_bytes 20960: would evict the oldest 82 keys (85936 bytes), leaving "
        "18864 bytes live\n");
  CheckUnchanged(before, dir.path());
  Result r = Compact({"--root", dir.path(), "c", "--max-bytes", "20960"});
  CHECK(Contains(r.out, " 18 live, 0 expired, 0 deleted, 82 evicted keys, "));
  Result within = Compact({"--root", dir.path(), "c", "--dry-run", "--force"});
  CHECK(Contains(within.out, "; max_bytes 20960: no evictions\n"));
}

TEST_CASE("dump --full shows whole keys and values, and --json their exact bytes in base64") {
  TempDir dir;
  const std::string value = std::string(40, 'v') + kBinary;
  {
    auto c = Cache::open("c", {.root = dir.path()});
    c.set(kNulKey, value);
  }
  Result cut = Dump({"--root", dir.path(), "c", "--records"});
  CHECK(Contains(cut.out, "value \"" + std::string(32, 'v') + "...\" (48 bytes)"));
  Result full = Dump({"--root", dir.path(), "c", "--records", "--full"});
  CHECK(full.status == 0);
  CHECK(Contains(full.out, "value \"" + std::string(40, 'v') + "bin\\x00\\xff\\n\\\"\\\\\"\n"));
  json j = json::parse(Dump({"--root", dir.path(), "c", "--records", "--json", "--full"}).out);
  REQUIRE(j["records"].size() == 1);
  CHECK(j["records"][0]["value_shortened"] == false);
  CHECK(j["records"][0]["key_base64"] == "awBleQ==");  // "k\0ey"
  CHECK(j["records"][0]["value_base64"] ==
        "dnZ2dnZ2dnZ2dnZ2dnZ2dnZ2dnZ2dnZ2dnZ2dnZ2dnZ2dnZ2dnZ2dmJpbgD/CiJc");
  json shortened = json::parse(Dump({"--root", dir.path(), "c", "--records", "--json"}).out);
  CHECK(shortened["records"][0]["value_shortened"] == true);
  CHECK_FALSE(shortened["records"][0].contains("value_base64"));
}

// ---- Backends ---------------------------------------------------------------------------

TEST_CASE("dump and compact refuse a Redis backend with exit 2 and one line: they read files") {
  TempDir root;
  Cache::open("c", {.root = root.path()}).set("k", "v");
  const std::string url = "redis-cluster://:hunter2@127.0.0.1:7000";
  for (const std::string& program : {DumpPath(), CompactPath()}) {
    CAPTURE(program);
    const std::string name = fs::path(program).filename().string();
    Result option = Run({program, "--root", root.path(), "--backend", url, "c"});
    CHECK(option.status == 2);
    CHECK(option.err.starts_with(name + ": works on local caches only"));
    CHECK(option.err.find('\n') == option.err.size() - 1);
    CHECK_FALSE(Contains(option.err, "hunter2"));
    CHECK(option.out.empty());
    ::setenv("LILCACHE_BACKEND", url.c_str(), 1);
    Result env = Run({program, "--root", root.path(), "c"});
    Result local = Run({program, "--root", root.path(), "--backend", "local", "c"});
    ::unsetenv("LILCACHE_BACKEND");
    CHECK(env.status == 2);
    CHECK(Contains(env.err, "from $LILCACHE_BACKEND; unset it or pass --backend local"));
    CHECK(env.err.find('\n') == env.err.size() - 1);
    CHECK(local.status == 0);  // --backend local: the files, whatever the variable says
    CHECK(local.err.empty());
  }
  CHECK(Cache::open("c", {.root = root.path()}).get("k") == "v");
}
