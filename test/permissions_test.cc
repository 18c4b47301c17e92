// The text log, NAME.log: opened by lilcache itself (O_NOFOLLOW | O_CLOEXEC |
// O_APPEND), never through a symbolic link, and rotated at its cap by the
// processes that write to it (docs/operations.md, "Logs").
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "lilcache/env.h"
#include "lilcache/lilcache.h"
#include "logging.h"
#include "test_util.h"

namespace {

using lilcache::Cache;
using lilcache::Error;
using lilcache::test::TempDir;
namespace fs = std::filesystem;

struct stat StatOf(const std::string& path) {
  struct stat st;
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  return st;
}

}  // namespace

TEST_CASE("a symbolic link in place of NAME.log is never written through") {
  TempDir dir;
  const std::string target = dir.file("target");
  std::ofstream(target) << "before\n";
  Cache::open("c", {.root = dir.path()}).set("k", "v");
  REQUIRE(::unlink(dir.file("c.log").c_str()) == 0);
  REQUIRE(::symlink(target.c_str(), dir.file("c.log").c_str()) == 0);
  CHECK_THROWS_WITH_AS(Cache::open("c", {.root = dir.path()}),
                       doctest::Contains("it is a symbolic link"), Error);
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
      auto logger = lilcache::MakeCacheLogger(lilcache::Env::Default(), log, "c",
                                              spdlog::level::info, kCap);
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
