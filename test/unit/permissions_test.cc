// Trust nothing you did not create: a cache root or a cache file owned by
// another user, or open to other users, is refused (docs/operations.md,
// "Files and permissions"; lib/trust.h). The text log, NAME.log, is opened by
// lilcache itself (O_NOFOLLOW | O_CLOEXEC | O_APPEND), never through a
// symbolic link, and rotated at its cap by the processes that write to it
// (docs/operations.md, "Logs"). "Another user" is a forked child
// that drops to uid/gid 65534 (nobody) with setresgid/setresuid, so most
// cases need the suite to run as root; they are skipped with a message
// otherwise.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "lilcache/env.h"
#include "lilcache/lilcache.h"
#include "support/test_util.h"
#include "util/logging.h"

namespace {

using lilcache::Cache;
using lilcache::Error;
using lilcache::test::TempDir;
namespace fs = std::filesystem;

constexpr uid_t kNobody = 65534;

doctest::Contains Has(const std::string& s) {
  return doctest::Contains(doctest::String(s.c_str()));
}

bool IsRoot() { return ::geteuid() == 0; }

// Runs fn in a forked child as uid/gid kNobody; returns its exit status.
int AsNobody(const std::function<int()>& fn) {
  pid_t pid = lilcache::test::fork_child([&] {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(kNobody, kNobody, kNobody) != 0 ||
        ::setresuid(kNobody, kNobody, kNobody) != 0) {
      std::fprintf(stderr, "cannot become uid %d: %s\n", kNobody, std::strerror(errno));
      return 98;
    }
    return fn();
  });
  return lilcache::test::wait_child(pid);
}

struct stat StatOf(const std::string& path) {
  struct stat st;
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  return st;
}

// A directory that uid kNobody owns (0700), inside a TempDir it can reach.
struct NobodysDir {
  TempDir dir;
  std::string root = dir.file("nobodys");
  NobodysDir() {
    REQUIRE(::chmod(dir.path().c_str(), 0711) == 0);
    REQUIRE(::mkdir(root.c_str(), 0700) == 0);
    REQUIRE(::chown(root.c_str(), kNobody, kNobody) == 0);
  }
};

// Every file under `dir` is owned by `uid`.
void CheckAllOwnedBy(const std::string& dir, uid_t uid) {
  for (const auto& e : fs::directory_iterator(dir)) {
    CAPTURE(e.path().string());
    CHECK(StatOf(e.path()).st_uid == uid);
  }
}

bool AnyFileContains(const std::string& dir, const std::string& needle) {
  for (const auto& e : fs::directory_iterator(dir)) {
    if (lilcache::test::read_file(e.path()).find(needle) != std::string::npos) return true;
  }
  return false;
}

#define SKIP_UNLESS_ROOT()                                                      \
  if (!IsRoot()) {                                                              \
    MESSAGE("skipped: needs root to create files as another user (uid 65534)"); \
    return;                                                                     \
  }

}  // namespace

TEST_CASE("a cache root owned by another user is refused, naming the owner and what to do") {
  SKIP_UNLESS_ROOT();
  NobodysDir d;
  CHECK_THROWS_WITH_AS(Cache::open("c", {.root = d.root}),
                       Has("refusing cache root \"" + d.root + "\": it is owned by uid 65534"),
                       Error);
  CHECK_THROWS_WITH_AS(Cache::open("c", {.root = d.root}), doctest::Contains("sudo -u"), Error);
  CHECK(fs::is_empty(d.root));  // nothing created in it
}

TEST_CASE("a cache root writable by group or others is refused, even its owner's") {
  TempDir dir;
  Cache::open("c", {.root = dir.path()}).set("k", "v");
  for (mode_t mode : {0777, 0770, 01777, 0702}) {
    CAPTURE(mode);
    REQUIRE(::chmod(dir.path().c_str(), mode) == 0);
    CHECK_THROWS_WITH_AS(Cache::open("c", {.root = dir.path()}),
                         doctest::Contains("lets other users replace the cache's files"), Error);
    CHECK_ERROR_CODE(Cache::open("c", {.root = dir.path(), .create_if_missing = false}),
                     lilcache::ErrorCode::permission);
  }
  // Readable by others is the owner's choice; writable is not.
  REQUIRE(::chmod(dir.path().c_str(), 0755) == 0);
  CHECK(Cache::open("c", {.root = dir.path()}).get("k") == "v");
}

TEST_CASE("a cache file with any group or other permission bit is refused") {
  TempDir dir;
  Cache::open("c", {.root = dir.path()}).set("k", "v");
  for (const char* f : {"c.meta", "c.1.data", "c.1.index", "c.log"}) {
    for (mode_t mode : {0644, 0660, 0604, 0666}) {
      CAPTURE(f);
      CAPTURE(mode);
      REQUIRE(::chmod(dir.file(f).c_str(), mode) == 0);
      CHECK_THROWS_WITH_AS(Cache::open("c", {.root = dir.path()}),
                           Has("refusing to use " + dir.file(f) + ": its mode"), Error);
      CHECK_ERROR_CODE(Cache::open("c", {.root = dir.path()}), lilcache::ErrorCode::permission);
    }
    REQUIRE(::chmod(dir.file(f).c_str(), 0600) == 0);
  }
  CHECK(Cache::open("c", {.root = dir.path()}).get("k") == "v");
}

TEST_CASE("a cache file owned by another user is refused") {
  SKIP_UNLESS_ROOT();
  TempDir dir;
  Cache::open("c", {.root = dir.path()}).set("k", "v");
  for (const char* f : {"c.meta", "c.1.data", "c.1.index", "c.log"}) {
    CAPTURE(f);
    REQUIRE(::chown(dir.file(f).c_str(), kNobody, kNobody) == 0);
    CHECK_THROWS_WITH_AS(Cache::open("c", {.root = dir.path()}),
                         Has("refusing to use " + dir.file(f) + ": it is owned by uid 65534"),
                         Error);
    REQUIRE(::chown(dir.file(f).c_str(), 0, 0) == 0);
  }
  CHECK(Cache::open("c", {.root = dir.path()}).get("k") == "v");
}

TEST_CASE(
    "a cache root that is a symbolic link of another user is refused; one of yours is followed") {
  TempDir dir;
  const std::string real = dir.file("real"), link = dir.file("link");
  REQUIRE(::mkdir(real.c_str(), 0700) == 0);
  REQUIRE(::symlink(real.c_str(), link.c_str()) == 0);
  Cache::open("c", {.root = link}).set("k", "v");
  CHECK(fs::exists(real + "/c.meta"));
  if (!IsRoot()) return;
  REQUIRE(::lchown(link.c_str(), kNobody, kNobody) == 0);
  CHECK_THROWS_WITH_AS(Cache::open("c", {.root = link}),
                       doctest::Contains("is a symbolic link owned by uid 65534"), Error);
}

TEST_CASE(
    "the superuser does not use a cache owned by another user, which stays usable by its owner") {
  // Issue 11: `sudo lilcache-compact` used to leave root-owned 0600 files in
  // the owner's cache, and every get/set of the owner then failed.
  SKIP_UNLESS_ROOT();
  NobodysDir d;
  REQUIRE(AsNobody([&] {
            auto c = Cache::open("owned", {.root = d.root});
            for (int i = 0; i < 100; ++i) c.set("k" + std::to_string(i), "v" + std::to_string(i));
            return 0;
          }) == 0);
  CHECK_THROWS_WITH_AS(Cache::open("owned", {.root = d.root, .create_if_missing = false}),
                       doctest::Contains("owned by uid 65534"), Error);
  CheckAllOwnedBy(d.root, kNobody);
  CHECK(AsNobody([&] {
          auto c = Cache::open("owned", {.root = d.root, .create_if_missing = false});
          c.compact();
          c.set("after", "yes");
          for (int i = 0; i < 100; ++i) {
            if (c.get("k" + std::to_string(i)) != "v" + std::to_string(i)) return 1;
          }
          return c.get("after") == "yes" ? 0 : 2;
        }) == 0);
  CheckAllOwnedBy(d.root, kNobody);
}

TEST_CASE("issue 12's attack: root does not write into a cache that nobody planted") {
  SKIP_UNLESS_ROOT();
  TempDir dir;
  REQUIRE(::chmod(dir.path().c_str(), 01777) == 0);  // a world-writable place, like /tmp
  const std::string r = dir.file("R");
  SUBCASE("files mode 0666 in a root of nobody's") {
    REQUIRE(AsNobody([&] {
              if (::mkdir(r.c_str(), 0755) != 0) return 1;
              for (const char* f :
                   {"default.meta", "default.1.data", "default.1.index", "default.log"}) {
                std::ofstream(r + "/" + f);
                if (::chmod((r + "/" + f).c_str(), 0666) != 0) return 2;
              }
              return 0;
            }) == 0);
  }
  SUBCASE("a cache of nobody's, files 0600") {
    REQUIRE(AsNobody([&] {
              Cache::open("default", {.root = r}).set("x", "y");
              return 0;
            }) == 0);
  }
  SUBCASE("a root of nobody's, mode 0777") {
    REQUIRE(AsNobody([&] {
              return ::mkdir(r.c_str(), 0777) == 0 && ::chmod(r.c_str(), 0777) == 0 ? 0 : 1;
            }) == 0);
  }
  CHECK_THROWS_AS(Cache::open("default", {.root = r}).set("password", "hunter2"), Error);
  CHECK(!AnyFileContains(r, "hunter2"));
  CheckAllOwnedBy(r, kNobody);
}

namespace {

// Lets another user (uid kNobody) create `dir` right before the library's
// mkdir of it: the race between finding the root missing and creating it.
class RootCreatedFirstByNobody : public lilcache::Env {
 public:
  explicit RootCreatedFirstByNobody(std::string dir) : dir_(std::move(dir)) {}
  int Mkdir(const char* path, mode_t mode) override {
    if (path == dir_ && ::mkdir(path, 0755) == 0 && ::chown(path, kNobody, kNobody) == 0) {
      errno = EEXIST;
      return -1;
    }
    return Env::Mkdir(path, mode);
  }

 private:
  std::string dir_;
};

}  // namespace

TEST_CASE("a root that another user creates just before our mkdir is refused, not adopted") {
  SKIP_UNLESS_ROOT();
  TempDir dir;
  const std::string root = dir.file("late/root");
  RootCreatedFirstByNobody env(root);
  CHECK_THROWS_WITH_AS(Cache::open("c", {.root = root, .env = &env}),
                       Has("refusing cache root \"" + root + "\": it is owned by uid 65534"),
                       Error);
  CHECK(fs::is_empty(root));
  CHECK((StatOf(root).st_mode & 07777) == 0755);  // no chmod of someone else's directory
}

TEST_CASE("a symbolic link in place of NAME.log is never written through") {
  TempDir dir;
  const std::string target = dir.file("target");
  std::ofstream(target) << "before\n";
  Cache::open("c", {.root = dir.path()}).set("k", "v");
  REQUIRE(::unlink(dir.file("c.log").c_str()) == 0);
  REQUIRE(::symlink(target.c_str(), dir.file("c.log").c_str()) == 0);
  CHECK_THROWS_WITH_AS(Cache::open("c", {.root = dir.path()}),
                       doctest::Contains("it is a symbolic link"), Error);
  CHECK_ERROR_CODE(Cache::open("c", {.root = dir.path()}), lilcache::ErrorCode::permission);
  CHECK(lilcache::test::read_file(target) == "before\n");
}

namespace {

// Swaps NAME.log for a symlink to `target` right after the library opened
// it: the window between a check and a second open by path (issue 12: spdlog
// reopened NAME.log with fopen after lilcache had checked it).
class SwapLogAfterOpen : public lilcache::Env {
 public:
  SwapLogAfterOpen(std::string log, std::string target)
      : log_(std::move(log)), target_(std::move(target)) {}
  int Open(const char* path, int flags, mode_t mode) override {
    int fd = Env::Open(path, flags, mode);
    if (fd >= 0 && path == log_ && (flags & O_APPEND) != 0 && !swapped_) {
      swapped_ = true;
      ::unlink(log_.c_str());
      if (::symlink(target_.c_str(), log_.c_str()) != 0) std::abort();
    }
    return fd;
  }

 private:
  std::string log_, target_;
  bool swapped_ = false;
};

}  // namespace

TEST_CASE("NAME.log swapped for a symbolic link after it was opened is not written through") {
  TempDir dir;
  const std::string target = dir.file("target");
  std::ofstream(target) << "before\n";
  SwapLogAfterOpen env(dir.file("c.log"), target);
  {
    auto c = Cache::open("c", {.root = dir.path(), .loglevel = "debug", .env = &env});
    c.set("k", "v");
  }
  CHECK(lilcache::test::read_file(target) == "before\n");
}

TEST_CASE("the text log's descriptor is close-on-exec") {
  TempDir dir;
  auto c = Cache::open("c", {.root = dir.path()});
  int found = 0;
  for (const auto& e : fs::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    fs::path to = fs::read_symlink(e.path(), ec);
    if (ec || to != fs::path(dir.file("c.log"))) continue;
    ++found;
    int fd = std::stoi(e.path().filename().string());
    CHECK((::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
  }
  CHECK(found >= 1);
}

TEST_CASE("the text log is rotated to NAME.log.1 at its cap by one process at a time") {
  // Four processes log whole lines through loggers capped at 16 KiB: the log
  // and its one old file stay near the cap, no line is torn or mixed, and
  // nothing else is created.
  TempDir dir;
  const std::string log = dir.file("c.log");
  constexpr std::uint64_t kCap = 16 << 10;
  constexpr int kProcesses = 4, kLines = 2000;
  lilcache::test::Children children;
  lilcache::test::StartGate gate;
  std::vector<pid_t> pids;
  for (int p = 0; p < kProcesses; ++p) {
    pids.push_back(children.add(lilcache::test::fork_child([&, p] {
      auto logger =
          lilcache::MakeCacheLogger(lilcache::Env::Default(), log, "c", spdlog::level::info, kCap);
      gate.wait();
      for (int i = 0; i < kLines; ++i) {
        logger->info("process {} line {} {}", p, i, std::string(40, 'x'));
      }
      return 0;
    })));
  }
  gate.open();
  for (pid_t pid : pids) CHECK(children.wait(pid) == 0);
  // A line is about 100 bytes; a file may pass the cap by the lines that
  // the other processes were writing when it filled.
  const std::uint64_t slack = kProcesses * 200;
  for (const std::string& f : {log, log + ".1"}) {
    CAPTURE(f);
    const std::string text = lilcache::test::read_file(f);
    CHECK(text.size() <= kCap + slack);
    CHECK(text.size() > 0);
    std::size_t start = 0, lines = 0;
    while (start < text.size()) {
      std::size_t end = text.find('\n', start);
      REQUIRE(end != std::string::npos);  // the last line is whole too
      std::string line = text.substr(start, end - start);
      CAPTURE(line);
      CHECK(line.find("info lilcache.c: process ") != std::string::npos);
      CHECK(line.ends_with(" " + std::string(40, 'x')));
      CHECK(line.find("process ", line.find("process ") + 1) == std::string::npos);
      start = end + 1;
      ++lines;
    }
    CHECK(lines > 0);
  }
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir.path())) files.push_back(e.path().filename());
  std::sort(files.begin(), files.end());
  CHECK(files == std::vector<std::string>{"c.log", "c.log.1"});
  CHECK((StatOf(log + ".1").st_mode & 0777) == 0600);
}
