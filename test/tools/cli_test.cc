// The `lilcache` command-line tool ($LILCACHE_CLI), run as real processes:
// its exit statuses, its byte-exact output, stdin, terminals, that what it
// does is what the library sees, and the examples of its man page run by bash.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "lilcache/lilcache.h"
#include "support/test_util.h"

namespace {

using lilcache::Cache;
using lilcache::test::TempDir;
namespace fs = std::filesystem;

std::string CliPath() {
  const char* p = std::getenv("LILCACHE_CLI");
  if (p == nullptr || *p == '\0') throw std::runtime_error("LILCACHE_CLI is not set");
  return p;
}

// How to run the tool: what its stdin is, whether stdout is a terminal, and
// environment variables to add or replace (LILCACHE_ROOT is removed from the
// test's own environment unless given here).
struct Io {
  std::optional<std::string> stdin_bytes{};  // nullopt: /dev/null (unless stdin_tty)
  bool stdin_tty = false;
  bool stdout_tty = false;
  std::string stdout_path{};  // e.g. "/dev/full"; "" = captured
  std::vector<std::string> env{};
  std::string program{};  // "" = the tool; else an executable run with args, e.g. /bin/bash
};

struct Result {
  int status = -1;  // exit status, 128 + signal if killed, -1 if it hung
  std::string out, err;
};

// A pseudo-terminal: master held here, slave opened by the child by path.
class Pty {
 public:
  Pty() {
    master_ = ::posix_openpt(O_RDWR | O_NOCTTY);
    if (master_ < 0 || ::grantpt(master_) != 0 || ::unlockpt(master_) != 0) {
      throw std::runtime_error("cannot open a pseudo-terminal");
    }
    slave_path_ = ::ptsname(master_);
  }
  ~Pty() { ::close(master_); }
  Pty(const Pty&) = delete;
  Pty& operator=(const Pty&) = delete;
  const std::string& slave_path() const { return slave_path_; }
  // What the child wrote, once it has exited (the slave is closed).
  std::string drain() {
    ::fcntl(master_, F_SETFL, O_NONBLOCK);
    std::string out;
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(master_, buf, sizeof buf);
      if (n <= 0) break;  // EIO once drained and closed, EAGAIN if empty
      out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
  }

 private:
  int master_ = -1;
  std::string slave_path_;
};

// The tool running as a child process; wait() collects its result.
class Process {
 public:
  Process(const std::vector<std::string>& args, const Io& io) : stdout_tty_(io.stdout_tty) {
    if (io.stdin_tty || io.stdout_tty) pty_.emplace();
    if (io.stdin_bytes) {
      std::ofstream(dir_.file("stdin"), std::ios::binary) << *io.stdin_bytes;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    const std::string in = io.stdin_tty     ? pty_->slave_path()
                           : io.stdin_bytes ? dir_.file("stdin")
                                            : "/dev/null";
    posix_spawn_file_actions_addopen(&fa, 0, in.c_str(), O_RDWR | O_NOCTTY, 0);
    const std::string out = io.stdout_tty             ? pty_->slave_path()
                            : !io.stdout_path.empty() ? io.stdout_path
                                                      : dir_.file("stdout");
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOCTTY,
                                     0600);
    posix_spawn_file_actions_addopen(&fa, 2, dir_.file("stderr").c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);

    std::vector<std::string> argv{io.program.empty() ? CliPath() : io.program};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> cargv;
    for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    std::vector<std::string> env{};
    auto replaced = [&io](std::string_view var) {
      if (var.starts_with("LILCACHE_ROOT=")) return true;
      for (const std::string& e : io.env) {
        if (var.starts_with(e.substr(0, e.find('=') + 1))) return true;
      }
      return false;
    };
    for (char** e = environ; *e != nullptr; ++e) {
      if (!replaced(*e)) env.emplace_back(*e);
    }
    env.insert(env.end(), io.env.begin(), io.env.end());
    std::vector<char*> cenv;
    for (const std::string& e : env) cenv.push_back(const_cast<char*>(e.c_str()));
    cenv.push_back(nullptr);

    const int rc = posix_spawn(&pid_, cargv[0], &fa, nullptr, cargv.data(), cenv.data());
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw std::runtime_error("posix_spawn " + argv[0] + " failed");
  }
  ~Process() {
    if (pid_ > 0) lilcache::test::wait_child(pid_, std::chrono::milliseconds(0));  // kills it
  }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  Result wait() {
    Result r;
    r.status = lilcache::test::wait_child(pid_, std::chrono::seconds(60));
    pid_ = -1;
    r.out = stdout_tty_ ? pty_->drain() : lilcache::test::read_file(dir_.file("stdout"));
    r.err = lilcache::test::read_file(dir_.file("stderr"));
    return r;
  }

 private:
  TempDir dir_;
  std::optional<Pty> pty_;
  bool stdout_tty_;
  pid_t pid_ = -1;
};

Result Run(const std::vector<std::string>& args, const Io& io = {}) {
  return Process(args, io).wait();
}

// Runs the tool on the cache root `root` (--root first).
Result At(const std::string& root, std::vector<std::string> args, const Io& io = {}) {
  args.insert(args.begin(), {"--root", root});
  return Run(args, io);
}

// "Not done" (absent, present, another version): exit 1, and nothing on
// stdout or stderr.
void CheckNotDone(const Result& r) {
  CHECK(r.status == 1);
  CHECK(r.out.empty());
  CHECK(r.err.empty());
}

// How to run bash (with the arguments {"-c", SCRIPT}) so that `lilcache` is
// the tool under test (first on PATH) with LILCACHE_ROOT=root.
Io BashIo(const std::string& root) {
  const char* path = std::getenv("PATH");
  return {.env = {"LILCACHE_ROOT=" + root, "PATH=" + fs::path(CliPath()).parent_path().string() +
                                               ":" + (path != nullptr ? path : "/usr/bin:/bin")},
          .program = "/bin/bash"};
}

// Runs the shell script `script` (see BashIo).
Result Bash(const std::string& root, const std::string& script) {
  return Run({"-c", script}, BashIo(root));
}

// Exactly one line on stderr, starting "lilcache: ".
bool OneErrorLine(const std::string& err) {
  return err.starts_with("lilcache: ") && err.find('\n') == err.size() - 1;
}

std::string AllBytes(std::size_t size) {
  std::string v(size, '\0');
  std::uint64_t state = 42;
  for (std::size_t i = 0; i < size; ++i) {
    v[i] = static_cast<char>(i < 512 ? i % 256 : lilcache::test::splitmix64(state) % 256);
  }
  return v;
}

TEST_CASE("the seed example works from three shells: set, then get, then pop") {
  TempDir root;
  Result set = At(root.path(), {"set", "a", "b"});
  CHECK(set.status == 0);
  CHECK(set.out.empty());
  CHECK(set.err.empty());

  Result get = At(root.path(), {"get", "a"});
  CHECK(get.status == 0);
  CHECK(get.out == "b");
  CHECK(get.err.empty());

  Result pop = At(root.path(), {"pop", "a"});
  CHECK(pop.status == 0);
  CHECK(pop.out == "b");

  Result again = At(root.path(), {"get", "a"});
  CheckNotDone(again);
  CHECK_FALSE(Cache::open("default", {.root = root.path()}).contains("a"));
}

TEST_CASE("of 8 racing pop commands, exactly one gets the value") {
  TempDir root;
  for (int round = 0; round < 5; ++round) {
    CAPTURE(round);
    const std::string value = "job " + std::to_string(round);
    REQUIRE(At(root.path(), {"set", "job", value}).status == 0);
    std::vector<std::unique_ptr<Process>> pops;
    for (int i = 0; i < 8; ++i) {
      pops.push_back(std::make_unique<Process>(
          std::vector<std::string>{"--root", root.path(), "pop", "job"}, Io{}));
    }
    int winners = 0;
    for (auto& p : pops) {
      Result r = p->wait();
      CHECK((r.status == 0 || r.status == 1));
      CHECK(r.err.empty());
      if (r.status == 0) {
        ++winners;
        CHECK(r.out == value);
      } else {
        CHECK(r.out.empty());
      }
    }
    CHECK(winners == 1);
  }
}

TEST_CASE("a binary value round-trips through stdin and stdout byte for byte") {
  TempDir root;
  const std::string value =
      AllBytes(3 * 1024 * 1024 + 7);  // every byte value, NULs, no final newline
  REQUIRE(At(root.path(), {"set", "blob", "-"}, {.stdin_bytes = value}).status == 0);
  CHECK(Cache::open("default", {.root = root.path()}).get("blob") == value);

  Result get = At(root.path(), {"get", "blob"});
  CHECK(get.status == 0);
  CHECK(get.out.size() == value.size());
  CHECK(get.out == value);

  Result pop = At(root.path(), {"pop", "blob"});
  CHECK(pop.status == 0);
  CHECK(pop.out == value);
}

TEST_CASE("set - stores an empty stdin as the empty value, and a value from argv is not read") {
  TempDir root;
  REQUIRE(At(root.path(), {"set", "empty", "-"}, {.stdin_bytes = ""}).status == 0);
  REQUIRE(At(root.path(), {"set", "arg", "x y\tz"}, {.stdin_bytes = "ignored"}).status == 0);
  auto cache = Cache::open("default", {.root = root.path()});
  CHECK(cache.get("empty") == "");
  CHECK(cache.get("arg") == "x y\tz");
  Result get = At(root.path(), {"get", "empty"});
  CHECK(get.status == 0);  // present, even though empty
  CHECK(get.out.empty());
}

TEST_CASE("get adds a newline only when stdout is a terminal: not to a file or a pipe") {
  TempDir root;
  Cache::open("default", {.root = root.path()}).set("k", "value");
  Result tty = At(root.path(), {"get", "k"}, {.stdout_tty = true});
  CHECK(tty.status == 0);
  CHECK(tty.out == "value\r\n");                        // the terminal turns \n into \r\n
  CHECK(At(root.path(), {"get", "k"}).out == "value");  // stdout is a file here
  Result pipe = Bash(root.path(), "lilcache get k | od -An -c | tr -s ' '");
  CHECK(pipe.status == 0);
  CHECK(pipe.out == " v a l u e\n");

  Result pop = At(root.path(), {"pop", "k"}, {.stdout_tty = true});
  CHECK(pop.out == "value\r\n");
}

TEST_CASE("get, pop and contains of a missing key exit 1 and print nothing") {
  TempDir root;
  Cache::open("default", {.root = root.path()}).set("present", "1");
  for (const char* command : {"get", "pop", "contains"}) {
    CAPTURE(command);
    Result r = At(root.path(), {command, "absent"});
    CheckNotDone(r);
  }
  Result present = At(root.path(), {"contains", "present"});
  CHECK(present.status == 0);
  CHECK(present.out.empty());
}

TEST_CASE("reading commands on a cache that does not exist create nothing") {
  TempDir base;
  const std::string root = base.file("not-yet");
  CHECK(At(root, {"get", "a"}).status == 1);
  CHECK(At(root, {"pop", "a"}).status == 1);
  CHECK(At(root, {"contains", "a"}).status == 1);
  CHECK(At(root, {"delete", "a"}).status == 1);
  Result keys = At(root, {"keys"});
  CHECK(keys.status == 0);
  CHECK(keys.out.empty());
  CHECK(At(root, {"purge"}).status == 0);
  Result stats = At(root, {"stats"});
  CHECK(stats.status == 3);
  CHECK(OneErrorLine(stats.err));
  CHECK(stats.err.find("no such cache") != std::string::npos);
  CHECK_FALSE(fs::exists(root));

  CHECK(At(root, {"set", "a", "b"}).status == 0);  // set creates it
  CHECK(fs::exists(root + "/default.meta"));
}

TEST_CASE("delete removes the key and exits 0, or 1 if it was not there (as erase() and REST)") {
  TempDir root;
  auto cache = Cache::open("default", {.root = root.path()});
  cache.set("k", "v");
  CHECK(At(root.path(), {"delete", "k"}).status == 0);
  CHECK_FALSE(cache.contains("k"));
  CheckNotDone(At(root.path(), {"delete", "k"}));
}

TEST_CASE("set --ttl gives the key a time to live") {
  TempDir root;
  REQUIRE(At(root.path(), {"set", "long", "1", "--ttl", "1h"}).status == 0);
  REQUIRE(At(root.path(), {"set", "short", "2", "--ttl", "1ms"}).status == 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(At(root.path(), {"get", "long"}).out == "1");
  CHECK(At(root.path(), {"get", "short"}).status == 1);
  CHECK(Cache::open("default", {.root = root.path()}).stats().expired >= 1);
}

TEST_CASE("keys lists the keys sorted, with --prefix, --limit and -0") {
  TempDir root;
  auto cache = Cache::open("default", {.root = root.path()});
  for (const char* k : {"user:2", "user:1", "item:1", "user:3"}) cache.set(k, "v");
  const std::string nl_key = std::string("new\nline\0key", 12);
  cache.set(nl_key, "v");

  Result all = At(root.path(), {"keys", "--prefix", "user:"});
  CHECK(all.status == 0);
  CHECK(all.out == "user:1\nuser:2\nuser:3\n");

  Result limited = At(root.path(), {"keys", "--prefix", "user:", "--limit", "2"});
  CHECK(limited.status == 0);
  CHECK(std::count(limited.out.begin(), limited.out.end(), '\n') == 2);

  Result nul = At(root.path(), {"keys", "-0"});
  CHECK(nul.status == 0);
  CHECK(nul.out ==
        std::string("item:1\0", 7) + nl_key + std::string("\0user:1\0user:2\0user:3\0", 22));

  for (const char* bad : {"0", "-1", "x"}) {
    CAPTURE(bad);
    Result r = At(root.path(), {"keys", "--limit", bad});
    CHECK(r.status == 2);
    CHECK(OneErrorLine(r.err));
  }
}

TEST_CASE("purge refuses without --yes when stdin is a terminal") {
  TempDir root;
  auto cache = Cache::open("default", {.root = root.path()});
  cache.set("a", "b");

  Result refused = At(root.path(), {"purge"}, {.stdin_tty = true});
  CHECK(refused.status == 2);
  CHECK(OneErrorLine(refused.err));
  CHECK(refused.err.find("--yes") != std::string::npos);
  CHECK(cache.get("a") == "b");

  Result yes = At(root.path(), {"purge", "--yes"}, {.stdin_tty = true});
  CHECK(yes.status == 0);
  CHECK_FALSE(cache.contains("a"));
}

TEST_CASE("purge from a script (stdin not a terminal) needs no --yes") {
  TempDir root;
  auto cache = Cache::open("default", {.root = root.path()});
  cache.set("a", "b");
  cache.set("c", "d");
  CHECK(At(root.path(), {"purge"}, {.stdin_bytes = ""}).status == 0);
  CHECK(cache.size() == 0);
}

TEST_CASE("stats --json is one JSON object with the cache's counters") {
  TempDir root;
  {
    auto cache = Cache::open("stats_cache", {.root = root.path()});
    cache.set("a", "1");
    cache.set("b", "2");
    cache.get("a");
    cache.get("zzz");
  }
  Result r = At(root.path(), {"--name", "stats_cache", "stats", "--json"});
  REQUIRE(r.status == 0);
  const nlohmann::json j = nlohmann::json::parse(r.out);
  CHECK(j["name"] == "stats_cache");
  CHECK(j["root"] == root.path());
  CHECK(j["keys"] == 2);
  CHECK(j["sets"] == 2);
  CHECK(j["hits"] == 1);
  CHECK(j["misses"] == 1);
  CHECK(j["processes"] == 1);  // the tool itself
  CHECK(j["generation"].is_number_unsigned());

  Result text = At(root.path(), {"--name", "stats_cache", "stats"});
  CHECK(text.status == 0);
  CHECK(text.out.find("keys              2\n") != std::string::npos);
}

TEST_CASE("--root, --name and LILCACHE_ROOT select the cache, before or after the command") {
  TempDir env_root, flag_root;
  const std::string env = "LILCACHE_ROOT=" + env_root.path();
  REQUIRE(Run({"set", "k", "from-env"}, {.env = {env}}).status == 0);
  REQUIRE(Run({"set", "k", "from-flag", "--root", flag_root.path()}, {.env = {env}}).status == 0);
  REQUIRE(Run({"--name", "other", "set", "k", "named"}, {.env = {env}}).status == 0);

  CHECK(Cache::open("default", {.root = env_root.path()}).get("k") == "from-env");
  CHECK(Cache::open("default", {.root = flag_root.path()}).get("k") == "from-flag");
  CHECK(Cache::open("other", {.root = env_root.path()}).get("k") == "named");
  CHECK(Run({"get", "k", "--name", "other"}, {.env = {env}}).out == "named");
}

TEST_CASE("usage errors exit 2 with one line on stderr") {
  TempDir root;
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"bogus"},
      {"--bogus"},
      {"get"},
      {"get", "a", "b"},
      {"get", "--bogus", "a"},
      {"set", "a"},
      {"get", ""},
      {"get", std::string(lilcache::kMaxKeyBytes + 1, 'k')},
      {"set", "a", "b", "--ttl", "soon"},
      {"set", "a", "b", "--ttl", "0s"},
      {"--name", "no/slash", "get", "a"},
      {"--name", "", "stats"},
      {"get", "a", "--version", "b"},
      {"add", "a"},
      {"add", "a", "b", "--ttl", "soon"},
      {"add", "", "b"},
      {"incr"},
      {"incr", "a", "--by", "x"},
      {"incr", "a", "--by", "1.5"},
      {"incr", "a", "--by", "+1"},
      {"incr", "a", "--by", ""},
      {"incr", "a", "--initial", "9223372036854775808"},
      {"incr", "a", "--ttl", "0s"},
      {"decr", "a", "--by", "1 "},
      {"decr", "a", "b"},
      {"cas", "a"},
      {"cas", "a", "1"},
      {"cas", "a", "x", "v"},
      {"cas", "a", "-1", "v"},
      {"cas", "a", "18446744073709551616", "v"},
      {"cas", "a", "1", "v", "--erase"},
      {"cas", "a", "1", "--erase", "--ttl", "1h"},
      {"cas", "a", "1", "v", "--ttl", "1x"},
      {"ttl"},
      {"ttl", "a", "b"},
      {"touch", "a"},
      {"touch", "a", "--ttl", "0s"},
      {"touch", "a", "1h"},
      {"persist", ""},
      {"--name", "no/slash", "incr", "a"},
  };
  for (const auto& args : cases) {
    std::string shown;
    for (const auto& a : args) shown += "[" + a.substr(0, 20) + "]";
    CAPTURE(shown);
    Result r = At(root.path(), args);
    CHECK(r.status == 2);
    CHECK(r.out.empty());
    CHECK(OneErrorLine(r.err));
  }
  CHECK_FALSE(fs::exists(root.file("default.meta")));  // nothing was created
}

TEST_CASE("other errors exit 3 with one line on stderr") {
  TempDir root;
  const std::string file = root.file("a-file");
  std::ofstream(file) << "not a directory";
  Result not_dir = At(file, {"set", "a", "b"});
  CHECK(not_dir.status == 3);
  CHECK(OneErrorLine(not_dir.err));
  CHECK(At(file, {"get", "a"}).status == 3);

  Result too_big = At(root.path(), {"set", "big", "-"},
                      {.stdin_bytes = std::string(lilcache::kMaxValueBytes + 1, 'x')});
  CHECK(too_big.status == 3);
  CHECK(OneErrorLine(too_big.err));
  CHECK(too_big.err.find("limit") != std::string::npos);

  Cache::open("default", {.root = root.path()}).set("k", "value");
  Result full = At(root.path(), {"get", "k"}, {.stdout_path = "/dev/full"});
  CHECK(full.status == 3);
  CHECK(OneErrorLine(full.err));
  for (const char* command : {"add", "incr", "decr", "ttl", "persist"}) {
    CAPTURE(command);
    std::vector<std::string> args{command, "k"};
    if (std::string(command) == "add") args.push_back("v");
    Result r = At(file, args);
    CHECK(r.status == 3);
    CHECK(OneErrorLine(r.err));
  }
  Result incr_full = At(root.path(), {"incr", "n"}, {.stdout_path = "/dev/full"});
  CHECK(incr_full.status == 3);
  CHECK(OneErrorLine(incr_full.err));

  // A root that others may write is refused (docs/operations.md), for root too.
  const std::string open_root = root.file("open-to-all");
  fs::create_directory(open_root);
  fs::permissions(open_root, fs::perms::all);
  for (const char* command : {"set", "add", "incr"}) {
    CAPTURE(command);
    std::vector<std::string> args{command, "k"};
    if (std::string(command) != "incr") args.push_back("v");
    Result r = At(open_root, args);
    CHECK(r.status == 3);
    CHECK(OneErrorLine(r.err));
    CHECK(r.err.find("refusing") != std::string::npos);
  }
}

TEST_CASE("--version and --help exit 0; --version prints the library's version") {
  Result v = Run({"--version"});
  CHECK(v.status == 0);
  CHECK(v.out == "lilcache " + std::string(lilcache::version()) + "\n");
  Result h = Run({"--help"});
  CHECK(h.status == 0);
  for (const char* command : {"get", "set", "pop", "delete", "contains", "keys", "purge", "stats",
                              "add", "incr", "decr", "cas", "ttl", "touch", "persist"}) {
    CHECK(h.out.find("\n  " + std::string(command) + " ") != std::string::npos);
  }
  CHECK(Run({"set", "--help"}).status == 0);
  Result get = Run({"get", "--help"});
  CHECK(get.status == 0);
  CHECK(get.out.find("--version") != std::string::npos);
  // The tool's own --version before the command, get's after it.
  CHECK(Run({"--version", "get", "k"}).out == v.out);
}

// ---- Conditional and read-modify-write commands -----------------------------

// Runs the tool with each of `commands` (on the cache root `root`) at once, as
// racing processes, and returns their results in order.
std::vector<Result> RaceAt(const std::string& root,
                           const std::vector<std::vector<std::string>>& commands) {
  std::vector<std::unique_ptr<Process>> running;
  for (std::vector<std::string> args : commands) {
    args.insert(args.begin(), {"--root", root});
    running.push_back(std::make_unique<Process>(args, Io{}));
  }
  std::vector<Result> results;
  for (auto& p : running) results.push_back(p->wait());
  return results;
}

// Checks that each racer of RaceAt either did it (exit 0) or was told it was
// not done (exit 1), silently on stderr; returns the indexes of those that
// did it.
std::vector<std::size_t> Winners(const std::vector<Result>& results) {
  std::vector<std::size_t> winners;
  for (std::size_t i = 0; i < results.size(); ++i) {
    CHECK((results[i].status == 0 || results[i].status == 1));
    CHECK(results[i].err.empty());
    if (results[i].status == 0) winners.push_back(i);
  }
  return winners;
}

// The first line of `text`, without its newline.
std::string FirstLine(const std::string& text) { return text.substr(0, text.find('\n')); }

TEST_CASE("add stores an absent key and exits 1 leaving a present key alone") {
  TempDir root;
  Result first = At(root.path(), {"add", "k", "first"});
  CHECK(first.status == 0);
  CHECK(first.out.empty());
  CHECK(first.err.empty());

  Result second = At(root.path(), {"add", "k", "second"});
  CheckNotDone(second);
  auto cache = Cache::open("default", {.root = root.path()});
  CHECK(cache.get("k") == "first");

  const std::string blob = AllBytes(70000);
  CHECK(At(root.path(), {"add", "blob", "-"}, {.stdin_bytes = blob}).status == 0);
  CHECK(cache.get("blob") == blob);
  CHECK(At(root.path(), {"add", "blob", "-"}, {.stdin_bytes = "other"}).status == 1);
  CHECK(cache.get("blob") == blob);
}

TEST_CASE("add --ttl gives the key a time to live and an expired key counts as absent") {
  TempDir root;
  REQUIRE(At(root.path(), {"add", "short", "1", "--ttl", "1ms"}).status == 0);
  REQUIRE(At(root.path(), {"add", "long", "2", "--ttl", "1h"}).status == 0);
  auto cache = Cache::open("default", {.root = root.path()});
  const auto left = cache.ttl("long");
  REQUIRE(left.has_value());
  CHECK(*left <= std::chrono::hours(1));
  CHECK(*left > std::chrono::minutes(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(At(root.path(), {"add", "short", "again"}).status == 0);
  CHECK(cache.get("short") == "again");
  CHECK(cache.ttl("short") == lilcache::kNoExpiry);
}

TEST_CASE("of 8 racing add commands of one key exactly one wins and its value stays") {
  TempDir root;
  for (int round = 0; round < 3; ++round) {
    CAPTURE(round);
    const std::string key = "lock" + std::to_string(round);
    std::vector<std::vector<std::string>> commands;
    for (int i = 0; i < 8; ++i) commands.push_back({"add", key, "owner " + std::to_string(i)});
    std::vector<std::size_t> winners = Winners(RaceAt(root.path(), commands));
    REQUIRE(winners.size() == 1);
    CHECK(Cache::open("default", {.root = root.path()}).get(key) ==
          "owner " + std::to_string(winners[0]));
  }
}

TEST_CASE("incr and decr print the new value and store it as decimal text") {
  TempDir root;
  auto at = [&root](std::vector<std::string> args) { return At(root.path(), std::move(args)); };
  Result first = at({"incr", "n"});
  CHECK(first.status == 0);
  CHECK(first.out == "1\n");
  CHECK(first.err.empty());
  CHECK(at({"incr", "n", "--by", "10"}).out == "11\n");
  CHECK(at({"decr", "n"}).out == "10\n");
  CHECK(at({"decr", "n", "--by", "25"}).out == "-15\n");
  CHECK(at({"incr", "n", "--by", "-5"}).out == "-20\n");
  CHECK(at({"decr", "n", "--by=-21"}).out == "1\n");
  CHECK(at({"get", "n"}).out == "1");
  CHECK(Cache::open("default", {.root = root.path()}).get("n") == "1");

  CHECK(at({"incr", "fresh", "--initial", "100"}).out == "101\n");
  CHECK(at({"decr", "down", "--initial", "5", "--by", "2"}).out == "3\n");
  CHECK(at({"decr", "neg"}).out == "-1\n");
  CHECK(at({"incr", "same", "--by", "0", "--initial", "7"}).out == "7\n");
  CHECK(at({"get", "same"}).out == "7");

  auto cache = Cache::open("default", {.root = root.path()});
  cache.set("text", "41");
  CHECK(at({"incr", "text"}).out == "42\n");
}

TEST_CASE(
    "incr of a value that is not an integer exits 3 with one error line and changes nothing") {
  TempDir root;
  auto cache = Cache::open("default", {.root = root.path()});
  for (const std::string value : {"abc", "12 ", "+1", "", "1.5", "99999999999999999999"}) {
    CAPTURE(value);
    cache.set("k", value);
    for (const char* command : {"incr", "decr"}) {
      CAPTURE(command);
      Result r = At(root.path(), {command, "k"});
      CHECK(r.status == 3);
      CHECK(r.out.empty());
      CHECK(OneErrorLine(r.err));
      CHECK(r.err.starts_with("lilcache: " + std::string(command) + ": "));
      CHECK(r.err.find("not a decimal int64") != std::string::npos);
      CHECK(cache.get("k") == value);
    }
  }
}

TEST_CASE("incr and decr past the int64 range exit 3 with one error line and change nothing") {
  TempDir root;
  auto cache = Cache::open("default", {.root = root.path()});
  cache.set("max", "9223372036854775807");
  cache.set("min", "-9223372036854775808");
  const std::vector<std::vector<std::string>> cases = {
      {"incr", "max"},
      {"decr", "max", "--by", "-1"},
      {"decr", "min"},
      {"incr", "min", "--by", "-9223372036854775808"},
      {"decr", "max", "--by", "-9223372036854775808"},
      {"decr", "max", "--by", "-9223372036854775808", "--ttl", "1h"},
      {"incr", "new", "--initial", "9223372036854775807"},
  };
  for (const auto& args : cases) {
    CAPTURE(args.size());
    CAPTURE(args[0]);
    CAPTURE(args[args.size() - 1]);
    Result r = At(root.path(), args);
    CHECK(r.status == 3);
    CHECK(r.out.empty());
    CHECK(OneErrorLine(r.err));
    CHECK(r.err.find("overflows") != std::string::npos);
  }
  CHECK(cache.get("max") == "9223372036854775807");
  CHECK(cache.get("min") == "-9223372036854775808");
  CHECK_FALSE(cache.contains("new"));
  CHECK(At(root.path(), {"decr", "max", "--by", "9223372036854775807"}).out == "0\n");
}

TEST_CASE("incr and decr --ttl expire a key they create and keep a present key's expiry") {
  TempDir root;
  auto cache = Cache::open("default", {.root = root.path()});
  cache.set("forever", "5");
  for (const char* command : {"incr", "decr"}) {
    CAPTURE(command);
    const std::string key = std::string("new-") + command;
    REQUIRE(At(root.path(), {command, key, "--ttl", "1h"}).status == 0);
    const auto left = cache.ttl(key);
    REQUIRE(left.has_value());
    CHECK(*left <= std::chrono::hours(1));
    CHECK(*left > std::chrono::minutes(1));
    REQUIRE(At(root.path(), {command, "forever", "--ttl", "1h"}).status == 0);
    CHECK(cache.ttl("forever") == lilcache::kNoExpiry);
  }
  CHECK(cache.get("forever") == "5");  // one incr, one decr
  REQUIRE(At(root.path(), {"incr", "short", "--ttl", "1ms"}).status == 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(At(root.path(), {"incr", "short"}).out == "1\n");  // expired: started again
}

TEST_CASE("racing incr commands lose no increment and each prints a different value") {
  TempDir root;
  constexpr int kRounds = 4, kProcesses = 8;
  std::vector<std::string> printed;
  for (int round = 0; round < kRounds; ++round) {
    std::vector<std::vector<std::string>> commands(kProcesses, {"incr", "hits"});
    for (const Result& r : RaceAt(root.path(), commands)) {
      CHECK(r.status == 0);
      CHECK(r.err.empty());
      printed.push_back(r.out);
    }
  }
  std::vector<std::string> expected;
  for (int i = 1; i <= kRounds * kProcesses; ++i) expected.push_back(std::to_string(i) + "\n");
  std::sort(printed.begin(), printed.end());
  std::sort(expected.begin(), expected.end());
  CHECK(printed == expected);
  CHECK(Cache::open("default", {.root = root.path()}).get("hits") ==
        std::to_string(kRounds * kProcesses));
}

TEST_CASE("ttl prints the milliseconds left or none and exits 1 for an absent key") {
  TempDir root;
  auto cache = Cache::open("default", {.root = root.path()});
  cache.set("hour", "v", std::chrono::hours(1));
  cache.set("forever", "v");

  Result hour = At(root.path(), {"ttl", "hour"});
  CHECK(hour.status == 0);
  CHECK(hour.err.empty());
  REQUIRE(hour.out.ends_with("\n"));
  const std::string digits = hour.out.substr(0, hour.out.size() - 1);
  REQUIRE(!digits.empty());
  REQUIRE(digits.find_first_not_of("0123456789") == std::string::npos);
  CHECK(std::stoll(digits) <= 3600000);
  CHECK(std::stoll(digits) > 60000);

  Result forever = At(root.path(), {"ttl", "forever"});
  CHECK(forever.status == 0);
  CHECK(forever.out == "none\n");

  Result absent = At(root.path(), {"ttl", "absent"});
  CheckNotDone(absent);
}

TEST_CASE("touch gives a present key a new time to live and exits 1 for an absent key") {
  TempDir root;
  auto cache = Cache::open("default", {.root = root.path()});
  cache.set("k", "value");
  Result touched = At(root.path(), {"touch", "k", "--ttl", "1h"});
  CHECK(touched.status == 0);
  CHECK(touched.out.empty());
  CHECK(touched.err.empty());
  const auto left = cache.ttl("k");
  REQUIRE(left.has_value());
  CHECK(*left <= std::chrono::hours(1));
  CHECK(*left > std::chrono::minutes(1));
  CHECK(cache.get("k") == "value");

  Result absent = At(root.path(), {"touch", "absent", "--ttl", "1h"});
  CheckNotDone(absent);
  CHECK_FALSE(cache.contains("absent"));

  REQUIRE(At(root.path(), {"touch", "k", "--ttl", "1ms"}).status == 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(At(root.path(), {"get", "k"}).status == 1);
  CHECK(At(root.path(), {"touch", "k", "--ttl", "1h"}).status == 1);  // expired: absent
}

TEST_CASE("persist drops the expiry and exits 1 for an absent key") {
  TempDir root;
  auto cache = Cache::open("default", {.root = root.path()});
  cache.set("k", "value", std::chrono::hours(1));
  Result persisted = At(root.path(), {"persist", "k"});
  CHECK(persisted.status == 0);
  CHECK(persisted.out.empty());
  CHECK(persisted.err.empty());
  CHECK(cache.ttl("k") == lilcache::kNoExpiry);
  CHECK(cache.get("k") == "value");
  CHECK(At(root.path(), {"ttl", "k"}).out == "none\n");
  CHECK(At(root.path(), {"persist", "k"}).status == 0);  // already without expiry

  Result absent = At(root.path(), {"persist", "absent"});
  CheckNotDone(absent);
}

TEST_CASE(
    "commands that change a key do nothing and create nothing on a cache that does not exist") {
  TempDir base;
  const std::string root = base.file("not-yet");
  const std::vector<std::vector<std::string>> cases = {
      {"ttl", "a"},           {"touch", "a", "--ttl", "1h"}, {"persist", "a"},
      {"cas", "a", "1", "v"}, {"cas", "a", "1", "--erase"},  {"get", "a", "--version"},
  };
  for (const auto& args : cases) {
    CAPTURE(args[0]);
    Result r = At(root, args);
    CheckNotDone(r);
  }
  CHECK_FALSE(fs::exists(root));
  CHECK(At(root, {"incr", "a"}).status == 0);  // incr, decr and add create it, as set
  CHECK(fs::exists(root + "/default.meta"));
}

TEST_CASE("get --version prints the version on a line of its own and then the value") {
  TempDir root;
  auto cache = Cache::open("default", {.root = root.path()});
  const std::string blob = AllBytes(70000) + "\n\n";
  cache.set("blob", blob);
  const auto v = cache.get_versioned("blob");
  REQUIRE(v.has_value());

  Result r = At(root.path(), {"get", "blob", "--version"});
  CHECK(r.status == 0);
  CHECK(r.err.empty());
  CHECK(r.out == std::to_string(v->version) + "\n" + blob);

  Result before = At(root.path(), {"get", "--version", "blob"});
  CHECK(before.out == r.out);

  cache.set("short", "value");
  const auto sv = cache.get_versioned("short");
  REQUIRE(sv.has_value());
  Result term = At(root.path(), {"get", "short", "--version"}, {.stdout_tty = true});
  CHECK(term.status == 0);
  CHECK(term.out == std::to_string(sv->version) + "\r\nvalue\r\n");

  cache.set("short", "value");  // the same value, another write: another version
  Result again = At(root.path(), {"get", "short", "--version"});
  CHECK(FirstLine(again.out) != std::to_string(sv->version));

  Result absent = At(root.path(), {"get", "absent", "--version"});
  CheckNotDone(absent);
}

TEST_CASE("cas stores only at the version get --version printed") {
  TempDir root;
  auto cache = Cache::open("default", {.root = root.path()});
  cache.set("k", "v1");
  const std::string version = FirstLine(At(root.path(), {"get", "k", "--version"}).out);

  Result stored = At(root.path(), {"cas", "k", version, "v2"});
  CHECK(stored.status == 0);
  CHECK(stored.out.empty());
  CHECK(stored.err.empty());
  CHECK(cache.get("k") == "v2");
  CHECK(cache.ttl("k") == lilcache::kNoExpiry);

  Result stale = At(root.path(), {"cas", "k", version, "v3"});  // the key changed since
  CheckNotDone(stale);
  CHECK(cache.get("k") == "v2");

  const std::string v2 = FirstLine(At(root.path(), {"get", "k", "--version"}).out);
  const std::string blob = AllBytes(70000);
  CHECK(At(root.path(), {"cas", "k", v2, "-", "--ttl", "1h"}, {.stdin_bytes = blob}).status == 0);
  CHECK(cache.get("k") == blob);
  const auto left = cache.ttl("k");
  REQUIRE(left.has_value());
  CHECK(*left <= std::chrono::hours(1));

  const std::string v3 = FirstLine(At(root.path(), {"get", "k", "--version"}).out);
  CHECK(At(root.path(), {"cas", "k", v3, ""}).status == 0);  // the empty value is a value
  CHECK(cache.get("k") == "");

  Result absent = At(root.path(), {"cas", "absent", version, "v"});
  CHECK(absent.status == 1);
  CHECK(absent.err.empty());
  CHECK_FALSE(cache.contains("absent"));
}

TEST_CASE("cas --erase removes the key only at its version") {
  TempDir root;
  auto cache = Cache::open("default", {.root = root.path()});
  cache.set("k", "v1");
  const std::string old_version = FirstLine(At(root.path(), {"get", "k", "--version"}).out);
  cache.set("k", "v2");

  Result stale = At(root.path(), {"cas", "k", old_version, "--erase"});
  CheckNotDone(stale);
  CHECK(cache.get("k") == "v2");

  const std::string version = FirstLine(At(root.path(), {"get", "k", "--version"}).out);
  Result erased = At(root.path(), {"cas", "k", version, "--erase"});
  CHECK(erased.status == 0);
  CHECK(erased.out.empty());
  CHECK(erased.err.empty());
  CHECK_FALSE(cache.contains("k"));
  CHECK(At(root.path(), {"cas", "k", version, "--erase"}).status == 1);
}

TEST_CASE("of 8 racing cas commands with one version exactly one wins") {
  TempDir root;
  auto cache = Cache::open("default", {.root = root.path()});
  for (int round = 0; round < 3; ++round) {
    CAPTURE(round);
    cache.set("k", "start");
    const std::string version = FirstLine(At(root.path(), {"get", "k", "--version"}).out);
    std::vector<std::vector<std::string>> commands;
    for (int i = 0; i < 8; ++i) commands.push_back({"cas", "k", version, std::to_string(i)});
    std::vector<std::size_t> winners = Winners(RaceAt(root.path(), commands));
    REQUIRE(winners.size() == 1);
    CHECK(cache.get("k") == std::to_string(winners[0]));
  }
}

// ---- The examples of the man page (docs/lilcache.1, EXAMPLES), as written ----

TEST_CASE(
    "the man page's compute-once example has every racing shell print the one stored report") {
  TempDir root;
  // make_report takes a while, so that the four shells all miss the key.
  const std::string script = R"(
make_report() { sleep 0.5; echo "report of shell $$"; }
lilcache get report || {
  tmp=$(mktemp) && make_report > "$tmp" &&
    lilcache add report - < "$tmp"   # exit 1: another shell added its report first
  rm -f "$tmp"
  lilcache get report                 # every shell prints the report stored first
}
)";
  std::vector<std::unique_ptr<Process>> shells;
  for (int i = 0; i < 4; ++i) {
    shells.push_back(
        std::make_unique<Process>(std::vector<std::string>{"-c", script}, BashIo(root.path())));
  }
  std::vector<Result> results;
  for (auto& s : shells) results.push_back(s->wait());
  const auto stored = Cache::open("default", {.root = root.path()}).get("report");
  REQUIRE(stored.has_value());
  CHECK(stored->starts_with("report of shell "));
  for (const Result& r : results) {
    CHECK(r.status == 0);
    CHECK(r.err.empty());
    CHECK(r.out == *stored);
  }
}

TEST_CASE("the man page's read-modify-write loop loses no update from 4 racing shells") {
  TempDir root;
  std::vector<std::unique_ptr<Process>> shells;
  constexpr int kShells = 4, kItems = 8;
  for (int i = 0; i < kShells; ++i) {
    const std::string script = "for n in $(seq " + std::to_string(kItems) +
                               "); do\n  item=" + std::to_string(i) + "." + R"($n
  while :; do
    if out=$(lilcache get list --version); then
      version=${out%%$'\n'*} value=${out#*$'\n'}
      lilcache cas list "$version" "$value $item"
    else
      lilcache add list "$item"
    fi
    case $? in 0) break ;; 1) ;; *) exit 1 ;; esac   # 1: changed meanwhile, again
  done
done
)";
    shells.push_back(
        std::make_unique<Process>(std::vector<std::string>{"-c", script}, BashIo(root.path())));
  }
  for (auto& s : shells) {
    Result r = s->wait();
    INFO("stderr: " << r.err);
    CHECK(r.status == 0);
    CHECK(r.err.empty());
  }
  const auto list = Cache::open("default", {.root = root.path()}).get("list");
  REQUIRE(list.has_value());
  std::vector<std::string> items, expected;
  std::istringstream in(*list);
  for (std::string item; in >> item;) items.push_back(item);
  for (int i = 0; i < kShells; ++i) {
    for (int n = 1; n <= kItems; ++n)
      expected.push_back(std::to_string(i) + "." + std::to_string(n));
  }
  std::sort(items.begin(), items.end());
  std::sort(expected.begin(), expected.end());
  CHECK(items == expected);
}

}  // namespace

// ---- one predictable interface (issue 17) ----------------------------------------

TEST_CASE("an empty option value or $LILCACHE_* variable is a usage error, not the default") {
  TempDir root;
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--root", "", "get", "a"},
        std::vector<std::string>{"--root", root.path(), "--name", "", "get", "a"},
        std::vector<std::string>{"--root", root.path(), "set", "k", "v", "--ttl", ""},
        std::vector<std::string>{"--root", root.path(), "keys", "--prefix", ""},
        std::vector<std::string>{"--root", root.path(), "serve", "--expires", ""}}) {
    Result r = Run(args);
    CHECK(r.status == 2);
    CHECK(OneErrorLine(r.err));
    CHECK(r.err.find(" is empty; omit it for its default (see 'lilcache ") != std::string::npos);
  }
  for (const char* var : {"LILCACHE_ROOT=", "LILCACHE_LOGLEVEL="}) {
    CAPTURE(var);
    Result r = At(root.path(), {"get", "a"}, {.env = {var}});
    CHECK(r.status == 2);
    CHECK(r.err == std::string("lilcache: $") + std::string(var).substr(0, std::strlen(var) - 1) +
                       " is set but empty; unset it for the default (see 'lilcache --help')\n");
  }
  CHECK(fs::is_empty(root.path()));  // nothing was stored
}

TEST_CASE("LILCACHE_LOGLEVEL=bogus is a usage error naming the variable") {
  TempDir root;
  Result r = At(root.path(), {"get", "a"}, {.env = {"LILCACHE_LOGLEVEL=bogus"}});
  CHECK(r.status == 2);
  CHECK(OneErrorLine(r.err));
  CHECK(r.err.starts_with("lilcache: $LILCACHE_LOGLEVEL: invalid log level \"bogus\""));
  CHECK(At(root.path(), {"get", "a"}, {.env = {"LILCACHE_LOGLEVEL=WARN"}}).status == 1);
}

TEST_CASE("a bad duration is a usage error saying what is wrong at which character") {
  TempDir root;
  Result r = At(root.path(), {"set", "k", "v", "--ttl", "30m1h"});
  CHECK(r.status == 2);
  CHECK(OneErrorLine(r.err));
  CHECK(r.err.starts_with(
      "lilcache: set: --ttl: invalid duration \"30m1h\": unit \"h\" after a smaller unit"));
  CHECK(r.err.find("at character 5") != std::string::npos);
  Result fraction = At(root.path(), {"touch", "k", "--ttl", "1.5s"});
  CHECK(fraction.status == 2);
  CHECK(fraction.err.find("fractions are not supported") != std::string::npos);
}

TEST_CASE("an unknown option is reported by whoever it was given to: the program or the command") {
  Result global = Run({"--frob", "get", "a"});
  CHECK(global.status == 2);
  CHECK(global.err == "lilcache: unknown option \"--frob\" (see 'lilcache --help')\n");
  Result command = Run({"get", "--frob", "a"});
  CHECK(command.status == 2);
  CHECK(command.err == "lilcache: get: unknown option \"--frob\" (see 'lilcache get --help')\n");
  Result none = Run({});
  CHECK(none.status == 2);
  CHECK(none.err == "lilcache: missing command (see 'lilcache --help')\n");
}

TEST_CASE("a subcommand's help names the global options and the exit statuses") {
  Result keys = Run({"keys", "--help"});
  CHECK(keys.status == 0);
  CHECK(keys.out.find("--prefix P ") != std::string::npos);
  CHECK(keys.out.find("--limit N ") != std::string::npos);
  CHECK(keys.out.find("Global options (before or after the command): --root DIR") !=
        std::string::npos);
  CHECK(keys.out.find("--name NAME") != std::string::npos);
  CHECK(keys.out.find("Exit status") != std::string::npos);
}

TEST_CASE("caches lists the caches under the root, and nothing under a root that does not exist") {
  TempDir root;
  CHECK(At(root.path(), {"--name", "b", "set", "k", "v"}).status == 0);
  CHECK(At(root.path(), {"--name", "a", "set", "k", "v"}).status == 0);
  Result r = At(root.path(), {"caches"});
  CHECK(r.status == 0);
  CHECK(r.out == "a\nb\n");
  Result none = At(root.file("nowhere"), {"caches"});
  CHECK(none.status == 0);
  CHECK(none.out.empty());
  CHECK_FALSE(fs::exists(root.file("nowhere")));
}

TEST_CASE("stats shows max_bytes none when the cache has no limit, and after a lift") {
  TempDir root;
  { Cache::open("default", {.root = root.path()}).set("k", "v"); }
  Result text = At(root.path(), {"stats"});
  CHECK(text.out.find("\nmax_bytes         none\n") != std::string::npos);
  CHECK(nlohmann::json::parse(At(root.path(), {"stats", "--json"}).out)["max_bytes"].is_null());
  { Cache::open("default", {.root = root.path(), .max_bytes = 1 << 20}); }
  CHECK(nlohmann::json::parse(At(root.path(), {"stats", "--json"}).out)["max_bytes"] == 1 << 20);
  { Cache::open("default", {.root = root.path(), .max_bytes = UINT64_MAX}); }
  CHECK(At(root.path(), {"stats"}).out.find("\nmax_bytes         none\n") != std::string::npos);
}

TEST_CASE("one-shot commands log their open at debug, so a loop does not grow the log") {
  TempDir root;
  for (int i = 0; i < 3; ++i) REQUIRE(At(root.path(), {"set", "k", "v"}).status == 0);
  REQUIRE(At(root.path(), {"get", "k"}).status == 0);
  const std::string log = lilcache::test::read_file(root.file("default.log"));
  CHECK(log.find("opened") == std::string::npos);
  REQUIRE(At(root.path(), {"get", "k"}, {.env = {"LILCACHE_LOGLEVEL=debug"}}).status == 0);
  CHECK(lilcache::test::read_file(root.file("default.log")).find("opened") != std::string::npos);
}

TEST_CASE("serve refuses bad values before opening anything, in the user's terms, with exit 2") {
  TempDir root;
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {{"--max-connections", "0"}, "serve: --max-connections: must be at least 1, got 0"},
      {{"--max-connections-per-client", "0"}, "serve: --max-connections-per-client: must be"},
      {{"--expires", "0s"}, "serve: --expires: must be at least 1ms"},
      {{"--snapshot", "500ms"}, "serve: --snapshot: must be at least 1s"},
      {{"--request-timeout", "0ms"}, "serve: --request-timeout: must be at least 1ms"},
      {{"--max-bytes", "0"}, "serve: --max-bytes: invalid size \"0\": a limit must be"},
      {{"--memory-budget", "1k"}, "serve: --memory-budget: must be at least 64MiB"},
      {{"--threads", "2000"}, "serve: --threads: at most 1024"},
      {{"--loglevel", "loud"}, "serve: --loglevel: invalid log level \"loud\""},
      {{"--port", "x"}, "serve: --port: expected a whole number, got \"x\""},
  };
  // Not structured bindings: clang 14 cannot capture them in CAPTURE's lambda.
  for (const auto& entry : cases) {
    const std::vector<std::string>& args = entry.first;
    const std::string& message = entry.second;
    CAPTURE(message);
    std::vector<std::string> argv{"serve"};
    argv.insert(argv.end(), args.begin(), args.end());
    if (args.front() != "--port") argv.insert(argv.end(), {"--port", "0"});  // if it did serve
    Result r = At(root.path(), argv);
    CHECK(r.status == 2);
    CHECK(OneErrorLine(r.err));
    CHECK(r.err.starts_with("lilcache: " + message));
    CHECK(r.err.find("ServerOptions") == std::string::npos);
  }
  CHECK(fs::is_empty(root.path()));
}

// ---- Backends (--backend, $LILCACHE_BACKEND) ----------------------------------------

TEST_CASE("caches refuses a Redis backend with exit 2 and one line: it lists local files") {
  TempDir root;
  for (const Io& io : {Io{}, Io{.env = {"LILCACHE_BACKEND=redis-cluster://127.0.0.1:7000"}}}) {
    std::vector<std::string> args{"caches"};
    if (io.env.empty()) args = {"--backend", "redis://:hunter2@127.0.0.1:7000", "caches"};
    Result r = At(root.path(), args, io);
    CAPTURE(r.err);
    CHECK(r.status == 2);
    CHECK(OneErrorLine(r.err));
    CHECK(r.err.starts_with("lilcache: caches: works on local caches only"));
    CHECK(r.err.find("hunter2") == std::string::npos);  // the password is never shown
    CHECK(r.out.empty());
  }
  // --backend local overrides the variable.
  CHECK(At(root.path(), {"--name", "a", "set", "k", "v"}).status == 0);
  Result local = At(root.path(), {"--backend", "local", "caches"},
                    {.env = {"LILCACHE_BACKEND=redis://127.0.0.1:7000"}});
  CHECK(local.status == 0);
  CHECK(local.out == "a\n");
}

TEST_CASE("a malformed --backend or $LILCACHE_BACKEND is a usage error naming it") {
  TempDir root;
  for (const char* url : {"redis", "http://127.0.0.1:7000", "redis-cluster://", "Local"}) {
    CAPTURE(url);
    Result option = At(root.path(), {"--backend", url, "set", "k", "v"});
    CHECK(option.status == 2);
    CHECK(OneErrorLine(option.err));
    CHECK(option.err.starts_with("lilcache: set: --backend: invalid backend \""));
    Result serve = At(root.path(), {"serve", "--port", "0", "--backend", url});
    CHECK(serve.status == 2);
    CHECK(OneErrorLine(serve.err));
    CHECK(serve.err.starts_with("lilcache: serve: --backend: invalid backend \""));
    Result env = At(root.path(), {"get", "k"}, {.env = {std::string("LILCACHE_BACKEND=") + url}});
    CHECK(env.status == 2);
    CHECK(OneErrorLine(env.err));
    CHECK(env.err.starts_with("lilcache: $LILCACHE_BACKEND: invalid backend \""));
  }
  // What a Redis backend leaves to the servers, refused before connecting.
  for (const auto& option_value : {std::pair{"--snapshot", "2s"}, std::pair{"--max-bytes", "1G"}}) {
    // (No structured binding: clang 14 cannot capture one in CAPTURE.)
    const char* option = option_value.first;
    const char* value = option_value.second;
    CAPTURE(option);
    Result r = At(root.path(), {"--backend", "redis://:hunter2@127.0.0.1:1", "serve", "--port", "0",
                                option, value});
    CHECK(r.status == 2);
    CHECK(OneErrorLine(r.err));
    CHECK(r.err.starts_with("lilcache: serve: " + std::string(option) + ": "));
    CHECK(r.err.find("hunter2") == std::string::npos);
  }
  Result empty = At(root.path(), {"get", "k"}, {.env = {"LILCACHE_BACKEND="}});
  CHECK(empty.status == 2);
  CHECK(empty.err ==
        "lilcache: $LILCACHE_BACKEND is set but empty; unset it for the default (see 'lilcache "
        "--help')\n");
  CHECK(fs::is_empty(root.path()));  // nothing was opened
}

TEST_CASE("a backend URL the library refuses is a usage error, servers that do not answer exit 3") {
  TempDir root;
  for (const char* bad : {"redis-cluster://127.0.0.1:notaport", "redis://127.0.0.1:7000?pool=x"}) {
    CAPTURE(bad);
    Result r = At(root.path(), {"--backend", bad, "get", "k"});
    CHECK(r.status == 2);
    CHECK(OneErrorLine(r.err));
    CHECK(r.err.starts_with("lilcache: get: --backend: "));
    Result serve = At(root.path(), {"--backend", bad, "serve", "--port", "0"});
    CHECK(serve.status == 2);
    CHECK(OneErrorLine(serve.err));
    CHECK(serve.err.starts_with("lilcache: serve: --backend: "));
  }
  // Nothing listens on port 1: the command gives up after retry_for.
  const auto start = std::chrono::steady_clock::now();
  Result dead = At(
      root.path(),
      {"--backend", "redis://127.0.0.1:1?retry_for=500ms&connect_timeout=200ms", "set", "k", "v"});
  const auto took = std::chrono::steady_clock::now() - start;
  MESSAGE("set on a dead server took "
          << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
  CHECK(dead.status == 3);
  CHECK(OneErrorLine(dead.err));
  CHECK(took < std::chrono::seconds(30));  // retry_for + timeouts, generously: no hang
  // serve opens the cache (its marker key) before it listens: the same.
  Result serve =
      At(root.path(),
         {"--backend", "redis-cluster://127.0.0.1:1?retry_for=500ms&connect_timeout=200ms", "serve",
          "--port", "0"});
  CHECK(serve.status == 3);
  CHECK(OneErrorLine(serve.err));
  CHECK(serve.err.starts_with("lilcache: serve: "));
  CHECK(serve.out.empty());
}

// ---- On a Redis Cluster ($LILCACHE_TEST_CLUSTER, test/cluster/with_cluster.sh) -------
// These cases pass without doing anything when the variable is unset; the
// meson test cli_cluster_test runs them under with_cluster.sh.

// The cluster's URL, or "" (the case then says it is skipped).
std::string TestCluster() {
  const char* url = std::getenv("LILCACHE_TEST_CLUSTER");
  if (url == nullptr || *url == '\0') {
    MESSAGE("skipped: LILCACHE_TEST_CLUSTER is unset (run under test/cluster/with_cluster.sh)");
    return "";
  }
  return url;
}

// A cache name of its own for each case and run: the cluster outlives the cases.
std::string ClusterCacheName(std::string_view what) {
  return "cli_" + std::string(what) + "_" + std::to_string(::getpid()) + "_" +
         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 1000000);
}

// The tool with --backend url --name name, and --root root (which then holds
// only the text log).
std::vector<std::string> OnCluster(const std::string& url, const std::string& name,
                                   const std::string& root, std::vector<std::string> args) {
  args.insert(args.begin(), {"--backend", url, "--name", name, "--root", root});
  return args;
}

// No cache files under root: the values went to the cluster.
void CheckNoCacheFiles(const std::string& root) {
  for (const auto& entry : fs::directory_iterator(root)) {
    CAPTURE(entry.path().string());
    CHECK(entry.path().extension() == ".log");
  }
}

TEST_CASE("on a Redis Cluster: the seed example works from three shells with --backend") {
  const std::string url = TestCluster();
  if (url.empty()) return;
  TempDir root;
  const std::string name = ClusterCacheName("seed");
  Result set = Run(OnCluster(url, name, root.path(), {"set", "a", "b"}));
  CHECK(set.status == 0);
  CHECK(set.err.empty());
  Result get = Run(OnCluster(url, name, root.path(), {"get", "a"}));
  CHECK(get.status == 0);
  CHECK(get.out == "b");
  CHECK(get.err.empty());
  // The library sees it, and so does a process that names the cluster in
  // $LILCACHE_BACKEND only, with another root.
  CHECK(Cache::open(name, {.root = root.path(), .backend = url}).get("a") == "b");
  TempDir other;
  Result env = Run({"--name", name, "--root", other.path(), "get", "a"},
                   {.env = {"LILCACHE_BACKEND=" + url}});
  CHECK(env.status == 0);
  CHECK(env.out == "b");
  Result pop = Run(OnCluster(url, name, root.path(), {"pop", "a"}));
  CHECK(pop.status == 0);
  CHECK(pop.out == "b");
  CheckNotDone(Run(OnCluster(url, name, root.path(), {"get", "a"})));
  CheckNoCacheFiles(root.path());
  CheckNoCacheFiles(other.path());
}

TEST_CASE("on a Redis Cluster: of 8 racing pop commands exactly one gets the value") {
  const std::string url = TestCluster();
  if (url.empty()) return;
  TempDir root;
  const std::string name = ClusterCacheName("pop");
  for (int round = 0; round < 5; ++round) {
    CAPTURE(round);
    const std::string value = "job " + std::to_string(round);
    REQUIRE(Run(OnCluster(url, name, root.path(), {"set", "job", value})).status == 0);
    std::vector<std::unique_ptr<Process>> pops;
    for (int i = 0; i < 8; ++i) {
      pops.push_back(
          std::make_unique<Process>(OnCluster(url, name, root.path(), {"pop", "job"}), Io{}));
    }
    std::vector<Result> results;
    for (auto& p : pops) results.push_back(p->wait());
    const std::vector<std::size_t> winners = Winners(results);
    REQUIRE(winners.size() == 1);
    CHECK(results[winners[0]].out == value);
  }
  CheckNoCacheFiles(root.path());
}

TEST_CASE("on a Redis Cluster: racing incr commands lose no increment") {
  const std::string url = TestCluster();
  if (url.empty()) return;
  TempDir root;
  const std::string name = ClusterCacheName("incr");
  constexpr int kRounds = 3, kProcesses = 8;
  std::vector<std::string> printed;
  for (int round = 0; round < kRounds; ++round) {
    std::vector<std::unique_ptr<Process>> racers;
    for (int i = 0; i < kProcesses; ++i) {
      racers.push_back(
          std::make_unique<Process>(OnCluster(url, name, root.path(), {"incr", "hits"}), Io{}));
    }
    for (auto& p : racers) {
      Result r = p->wait();
      CHECK(r.status == 0);
      CHECK(r.err.empty());
      printed.push_back(r.out);
    }
  }
  std::vector<std::string> expected;
  for (int i = 1; i <= kRounds * kProcesses; ++i) expected.push_back(std::to_string(i) + "\n");
  std::sort(printed.begin(), printed.end());
  std::sort(expected.begin(), expected.end());
  CHECK(printed == expected);
  CHECK(Cache::open(name, {.root = root.path(), .backend = url}).get("hits") ==
        std::to_string(kRounds * kProcesses));
  CheckNoCacheFiles(root.path());
}
