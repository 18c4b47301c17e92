// The `lilcache` command-line tool ($LILCACHE_CLI), run as real processes:
// its exit statuses, its byte-exact output, stdin, terminals, and that what
// it does is what the library sees.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
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
// environment variables to add (LILCACHE_ROOT is removed from the test's own
// environment unless given here).
struct Io {
  std::optional<std::string> stdin_bytes{};  // nullopt: /dev/null (unless stdin_tty)
  bool stdin_tty = false;
  bool stdout_tty = false;
  std::string stdout_path{};  // e.g. "/dev/full"; "" = captured
  std::vector<std::string> env{};
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

    std::vector<std::string> argv{CliPath()};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> cargv;
    for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    std::vector<std::string> env{};
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::string_view(*e).starts_with("LILCACHE_ROOT=")) continue;
      env.emplace_back(*e);
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
  CHECK(again.status == 1);
  CHECK(again.out.empty());
  CHECK(again.err.empty());
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

TEST_CASE("get adds a newline only when stdout is a terminal") {
  TempDir root;
  Cache::open("default", {.root = root.path()}).set("k", "value");
  Result tty = At(root.path(), {"get", "k"}, {.stdout_tty = true});
  CHECK(tty.status == 0);
  CHECK(tty.out == "value\r\n");  // the terminal turns \n into \r\n
  CHECK(At(root.path(), {"get", "k"}).out == "value");
}

TEST_CASE("get, pop and contains of a missing key exit 1 and print nothing") {
  TempDir root;
  Cache::open("default", {.root = root.path()}).set("present", "1");
  for (const char* command : {"get", "pop", "contains"}) {
    CAPTURE(command);
    Result r = At(root.path(), {command, "absent"});
    CHECK(r.status == 1);
    CHECK(r.out.empty());
    CHECK(r.err.empty());
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
  CHECK(At(root, {"delete", "a"}).status == 0);
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

TEST_CASE("delete removes the key and exits 0 whether or not it was there") {
  TempDir root;
  auto cache = Cache::open("default", {.root = root.path()});
  cache.set("k", "v");
  CHECK(At(root.path(), {"delete", "k"}).status == 0);
  CHECK_FALSE(cache.contains("k"));
  Result again = At(root.path(), {"delete", "k"});
  CHECK(again.status == 0);
  CHECK(again.out.empty());
  CHECK(again.err.empty());
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
}

TEST_CASE("--version and --help exit 0; --version prints the library's version") {
  Result v = Run({"--version"});
  CHECK(v.status == 0);
  CHECK(v.out == "lilcache " + std::string(lilcache::version()) + "\n");
  Result h = Run({"--help"});
  CHECK(h.status == 0);
  for (const char* command :
       {"get", "set", "pop", "delete", "contains", "keys", "purge", "stats"}) {
    CHECK(h.out.find(command) != std::string::npos);
  }
  CHECK(Run({"set", "--help"}).status == 0);
}

}  // namespace
