// The RESTful front end as separate processes: `lilcache serve` ($LILCACHE_CLI)
// on port 0, driven by curl and by test/http_client.h, sharing its cache with
// library users in other processes; signals; usage errors; lilcache::start().
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "lilcache/lilcache.h"
#include "lilcache/server.h"
#include "programs/attack/attack.h"
#include "support/http_client.h"
#include "support/test_util.h"

namespace {

using lilcache::Cache;
using lilcache::test::Children;
using lilcache::test::Fetch;
using lilcache::test::HttpConn;
using lilcache::test::HttpReply;
using lilcache::test::MakeRequest;
using lilcache::test::read_file;
using lilcache::test::TempDir;
using namespace std::chrono_literals;

std::string CliPath() {
  const char* p = std::getenv("LILCACHE_CLI");
  if (p == nullptr || *p == '\0') throw std::runtime_error("LILCACHE_CLI is not set");
  return p;
}

// Starts argv with stdout and stderr going to files in `io`.
pid_t SpawnLogged(const std::vector<std::string>& argv, const TempDir& io) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  const std::string out = io.file("stdout"), err = io.file("stderr");
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error("posix_spawn " + argv[0] + " failed");
  return pid;
}

struct Result {
  int status = -1;
  std::string out, err;
};

// Runs argv to its end, capturing stdout and stderr.
Result Run(const std::vector<std::string>& argv) {
  TempDir io;
  const pid_t pid = SpawnLogged(argv, io);
  Result r;
  r.status = lilcache::test::wait_child(pid, 120s);
  r.out = read_file(io.file("stdout"));
  r.err = read_file(io.file("stderr"));
  return r;
}

// Waits for `text` to match `pattern` (polling `read`), up to 30 s.
std::smatch WaitFor(const std::function<std::string()>& read, const std::regex& pattern,
                    const std::function<bool()>& gave_up) {
  for (int i = 0; i < 600; ++i) {
    static std::string text;
    text = read();
    std::smatch m;
    if (std::regex_search(text, m, pattern)) return m;
    if (gave_up()) break;
    std::this_thread::sleep_for(50ms);
  }
  throw std::runtime_error("timed out waiting for " + read());
}

// `lilcache serve --port 0 ARGS...` over the cache `name` under `root`.
class Served {
 public:
  Served(Children& children, const std::string& root, std::vector<std::string> args = {},
         const std::string& name = "default")
      : children_(children) {
    std::vector<std::string> argv = {CliPath(), "serve", "--root", root,
                                     "--name",  name,    "--port", "0"};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_ = children.add(SpawnLogged(argv, io_));
    const std::smatch m =
        WaitFor([this] { return stdout_text(); },
                std::regex("serving cache \"[^\"]+\" \\((root|backend) [^)]*\\) on "
                           "http://127\\.0\\.0\\.1:([0-9]+)\n"),
                [this] { return lilcache::test::try_wait_child(pid_).has_value(); });
    port_ = static_cast<std::uint16_t>(std::stoi(m[2].str()));
  }
  ~Served() {
    if (pid_ > 0) children_.kill_and_wait(pid_);
  }
  Served(const Served&) = delete;
  Served& operator=(const Served&) = delete;

  std::uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string url(const std::string& target) const {
    return "http://127.0.0.1:" + std::to_string(port_) + target;
  }
  std::string stdout_text() const { return read_file(io_.file("stdout")); }
  std::string stderr_text() const { return read_file(io_.file("stderr")); }
  // Sends sig and waits for the exit status.
  int Signal(int sig) {
    ::kill(pid_, sig);
    const int status = children_.wait(pid_, 60s);
    pid_ = -1;
    return status;
  }

 private:
  Children& children_;
  TempDir io_;
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
};

Result Curl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"/usr/bin/curl", "-sS", "--max-time", "30"};
  argv.insert(argv.end(), args.begin(), args.end());
  return Run(argv);
}

}  // namespace

TEST_CASE("lilcache serve --port 0 prints its address; curl sets and gets") {
  ::unsetenv("LILCACHE_TOKEN");
  TempDir root;
  Children children;
  Served s(children, root.path(), {"--snapshot", "1s", "--expires", "1d"});
  CHECK(s.stdout_text() == "lilcache: serving cache \"default\" (root " + root.path() +
                               ") on http://127.0.0.1:" + std::to_string(s.port()) + "\n");

  Result set = Curl({s.url("/set?key=a&value=b")});
  CHECK(set.status == 0);
  CHECK(set.out == "OK\n");
  Result get = Curl({s.url("/get?key=a")});
  CHECK(get.out == "b");
  Result miss = Curl({"-o", "/dev/null", "-w", "%{http_code}", s.url("/get?key=zz")});
  CHECK(miss.out == "404");
  Result put =
      Curl({"-X", "PUT", "--data-binary", "raw body", "-w", "%{http_code}", s.url("/keys/r%20k")});
  CHECK(put.out == "201");
  CHECK(Curl({s.url("/keys/r%20k")}).out == "raw body");
  CHECK(Curl({"-o", "/dev/null", "-w", "%{http_code}", s.url("/purge")}).out == "405");
  CHECK(Curl({"-X", "POST", s.url("/purge")}).out == "OK\n");
  CHECK(Curl({s.url("/contains?key=a")}).out == "false\n");

  // --snapshot 1s: the server's handle takes periodic snapshots.
  bool snapshot = false;
  for (int i = 0; i < 300 && !snapshot; ++i) {
    auto stats = nlohmann::json::parse(Curl({s.url("/stats")}).out);
    snapshot = stats["snapshots"].get<std::uint64_t>() >= 1;
    if (!snapshot) std::this_thread::sleep_for(100ms);
  }
  CHECK(snapshot);
}

TEST_CASE("a value set over HTTP is at once visible to get in another process, and back") {
  ::unsetenv("LILCACHE_TOKEN");
  TempDir root;
  Children children;
  Served s(children, root.path());
  const std::string dir = root.path();
  for (int i = 0; i < 20; ++i) {
    const std::string k = "k" + std::to_string(i), v = "http value " + std::to_string(i);
    REQUIRE(Fetch(s.port(), "PUT", "/keys/" + k, v).status == 201);
    // A library user in another process reads it, then sets the reply.
    const pid_t child = children.add(lilcache::test::fork_child([&] {
      Cache c = Cache::open("default", {.root = dir});
      if (c.get(k) != v) return 1;
      c.set("reply-" + k, "library " + v);
      return 0;
    }));
    REQUIRE(children.wait(child) == 0);
    CHECK(Fetch(s.port(), "GET", "/get?key=reply-" + k).body == "library " + v);
  }
}

TEST_CASE("two servers in two processes and library users share one cache") {
  ::unsetenv("LILCACHE_TOKEN");
  TempDir root;
  Children children;
  Served a(children, root.path(), {}, "shared");
  Served b(children, root.path(), {}, "shared");
  Cache lib = Cache::open("shared", {.root = root.path()});
  CHECK(Fetch(a.port(), "GET", "/set?key=x&value=1").status == 200);
  CHECK(Fetch(b.port(), "GET", "/get?key=x").body == "1");
  CHECK(lib.get("x") == "1");
  lib.set("y", "2");
  CHECK(Fetch(a.port(), "GET", "/pop?key=y").body == "2");
  CHECK(Fetch(b.port(), "GET", "/pop?key=y").status == 404);
  CHECK(nlohmann::json::parse(Fetch(a.port(), "GET", "/stats").body)["processes"] >= 3);
}

TEST_CASE("through two lilcache serve processes racing adds and If-Match PUTs have one winner") {
  ::unsetenv("LILCACHE_TOKEN");
  TempDir root;
  Children children;
  Served a(children, root.path(), {"--threads", "2"}, "shared");
  Served b(children, root.path(), {"--threads", "2"}, "shared");
  Cache lib = Cache::open("shared", {.root = root.path()});
  constexpr int kThreads = 6, kKeys = 20, kIncrements = 50;
  // Each thread sends to one of the two servers, every key's requests at once.
  std::atomic<int> add_wins[kKeys] = {}, cas_wins[kKeys] = {};
  std::atomic<int> unexpected{0};
  for (int k = 0; k < kKeys; ++k) lib.set("cas" + std::to_string(k), "base");
  std::vector<std::string> etags;
  for (int k = 0; k < kKeys; ++k) {
    etags.push_back("\"" + std::to_string(lib.get_versioned("cas" + std::to_string(k))->version) +
                    "\"");
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    const std::uint16_t port = t % 2 == 0 ? a.port() : b.port();
    threads.emplace_back([&, t, port] {
      const std::string mine = "t" + std::to_string(t);
      for (int k = 0; k < kKeys; ++k) {
        const std::string n = std::to_string(k);
        const HttpReply add = Fetch(port, "PUT", "/keys/add" + n, mine, "If-None-Match: *\r\n");
        if (add.status == 201) {
          ++add_wins[k];
        } else if (add.status != 412) {
          ++unexpected;
        }
        const HttpReply cas =
            Fetch(port, "PUT", "/keys/cas" + n, mine, "If-Match: " + etags[k] + "\r\n");
        if (cas.status == 204) {
          ++cas_wins[k];
        } else if (cas.status != 412) {
          ++unexpected;
        }
      }
      for (int i = 0; i < kIncrements; ++i) {
        if (Fetch(port, "POST", "/keys/count/increment").status != 200) ++unexpected;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  CHECK(unexpected == 0);
  for (int k = 0; k < kKeys; ++k) {
    CAPTURE(k);
    CHECK(add_wins[k] == 1);
    CHECK(cas_wins[k] == 1);
  }
  CHECK(lib.get("count") == std::to_string(kThreads * kIncrements));
}

TEST_CASE("--token and $LILCACHE_TOKEN make lilcache serve require the bearer token") {
  TempDir root;
  Children children;
  ::unsetenv("LILCACHE_TOKEN");
  {
    Served s(children, root.path(), {"--token", "opt-token"});
    Result none = Curl({"-o", "/dev/null", "-w", "%{http_code}", s.url("/health")});
    CHECK(none.out == "401");
    Result ok = Curl({"-H", "Authorization: Bearer opt-token", s.url("/health")});
    CHECK(ok.out == "OK\n");
  }
  ::setenv("LILCACHE_TOKEN", "env-token", 1);
  Served s(children, root.path());
  ::unsetenv("LILCACHE_TOKEN");
  CHECK(Curl({"-o", "/dev/null", "-w", "%{http_code}", s.url("/health")}).out == "401");
  CHECK(Curl({"-H", "Authorization: Bearer env-token", s.url("/health")}).out == "OK\n");
}

TEST_CASE("lilcache serve refuses the issue's web-page attacks with 4xx; curl's defaults work") {
  ::unsetenv("LILCACHE_TOKEN");
  TempDir root;
  Children children;
  Served s(children, root.path());
  const std::string port = std::to_string(s.port());
  Cache cache = Cache::open("default", {.root = root.path()});
  cache.set("password", "hunter2");
  cache.set("a", "b");

  // CSRF: a cross-site form POST to /purge, verbatim but for the port.
  Result purge =
      Curl({"-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-H",
            "Origin: https://evil.example", "-H", "Sec-Fetch-Site: cross-site", "-H",
            "Content-Type: application/x-www-form-urlencoded", "--data", "x=1", s.url("/purge")});
  CHECK(purge.out == "403");
  // <img src=".../set?..."> and /pop, /delete of another site.
  for (const char* target : {"/set?key=a&value=evil", "/pop?key=a", "/delete?key=a"}) {
    CAPTURE(target);
    CHECK(Curl({"-o", "/dev/null", "-w", "%{http_code}", "-H", "Sec-Fetch-Site: cross-site",
                s.url(target)})
              .out == "403");
  }
  // DNS rebinding, verbatim but for the port.
  Result rebind = Curl({"-w", " %{http_code}", "-H", "Host: rebind.evil.example:" + port, "-H",
                        "Origin: http://rebind.evil.example:" + port,
                        "127.0.0.1:" + port + "/get?key=password"});
  CHECK(rebind.out.ends_with(" 403"));
  CHECK(rebind.out.find("hunter2") == std::string::npos);
  CHECK(cache.get("password") == "hunter2");
  CHECK(cache.get("a") == "b");

  // curl's own Host (127.0.0.1:PORT, localhost:PORT) is served: the seed's
  // `curl localhost:5001/get?key=a`.
  CHECK(Curl({"localhost:" + port + "/get?key=a"}).out == "b");
  CHECK(Curl({"127.0.0.1:" + port + "/get?key=password"}).out == "hunter2");
  Result headers = Curl({"-D", "-", "-o", "/dev/null", s.url("/get?key=a")});
  CHECK(headers.out.find("Cache-Control: no-store\r\n") != std::string::npos);
  CHECK(headers.out.find("X-Content-Type-Options: nosniff\r\n") != std::string::npos);
}

TEST_CASE("lilcache serve --allow-host and --allow-origin let those clients in, and only those") {
  ::unsetenv("LILCACHE_TOKEN");
  TempDir root;
  Children children;
  Served s(children, root.path(),
           {"--allow-host", "cache.lan", "--allow-host", "box:8080", "--allow-origin",
            "https://app.example"});
  auto code = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"-o", "/dev/null", "-w", "%{http_code}"});
    args.push_back(s.url("/health"));
    return Curl(args).out;
  };
  CHECK(code({"-H", "Host: cache.lan:5001"}) == "200");
  CHECK(code({"-H", "Host: box:8080"}) == "200");
  CHECK(code({"-H", "Host: box:9090"}) == "403");
  CHECK(code({"-H", "Host: other.lan"}) == "403");
  CHECK(code({"-H", "Origin: https://app.example", "-H", "Sec-Fetch-Site: cross-site"}) == "200");
  CHECK(code({"-H", "Origin: https://other.example"}) == "403");
  Result preflight =
      Curl({"-D", "-", "-o", "/dev/null", "-X", "OPTIONS", "-H", "Origin: https://app.example",
            "-H", "Access-Control-Request-Method: PUT", s.url("/keys/a")});
  CHECK(preflight.out.starts_with("HTTP/1.1 200 "));
  CHECK(preflight.out.find("Access-Control-Allow-Origin: https://app.example\r\n") !=
        std::string::npos);
  CHECK(preflight.out.find("Access-Control-Allow-Methods: ") != std::string::npos);
}

TEST_CASE("lilcache serve with an empty --token or $LILCACHE_TOKEN exits 2 and serves nothing") {
  TempDir root;
  ::unsetenv("LILCACHE_TOKEN");
  Result empty_option =
      Run({CliPath(), "serve", "--root", root.path(), "--port", "0", "--token", ""});
  CHECK(empty_option.status == 2);
  CHECK(empty_option.err.starts_with("lilcache: serve: --token is empty"));
  CHECK(empty_option.err.find('\n') == empty_option.err.size() - 1);  // one line
  CHECK(empty_option.out.empty());                                    // never "serving ..."
  ::setenv("LILCACHE_TOKEN", "", 1);
  Result empty_env = Run({CliPath(), "serve", "--root", root.path(), "--port", "0"});
  ::unsetenv("LILCACHE_TOKEN");
  CHECK(empty_env.status == 2);
  CHECK(empty_env.err.starts_with("lilcache: serve: $LILCACHE_TOKEN is set but empty"));
  CHECK(empty_env.out.empty());
  for (const std::vector<std::string>& bad : std::vector<std::vector<std::string>>{
           {"--allow-host", "a b"}, {"--allow-origin", "*"}, {"--allow-origin", "null"}}) {
    std::vector<std::string> argv = {CliPath(), "serve", "--root", root.path(), "--port", "0"};
    argv.insert(argv.end(), bad.begin(), bad.end());
    Result r = Run(argv);
    CHECK_MESSAGE(r.status == 2, r.err);
    CHECK(r.out.empty());
  }
}

TEST_CASE("SIGTERM and SIGINT stop lilcache serve gracefully: the request in progress completes") {
  ::unsetenv("LILCACHE_TOKEN");
  TempDir root;
  Children children;
  for (int sig : {SIGTERM, SIGINT}) {
    Served s(children, root.path(), {"--threads", "1"});
    HttpConn idle(s.port());
    REQUIRE(idle.Send(MakeRequest("GET", "/health")));
    REQUIRE(idle.Read());
    HttpConn busy(s.port());
    REQUIRE(
        busy.Send("PUT /keys/sig HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 8\r\n\r\nhalf"));
    REQUIRE(Fetch(s.port(), "GET", "/health").status == 200);  // busy's header is in

    ::kill(s.pid(), sig);
    CHECK(idle.WaitClosed(30s));  // one thread: the stop has reached busy's connection too
    REQUIRE(busy.Send("done"));
    std::optional<HttpReply> r = busy.Read();
    REQUIRE(r);
    CHECK(r->status / 100 == 2);  // 201, or 204 once the first signal's PUT stored it
    CHECK(r->header("connection") == "close");
    CHECK(s.Signal(0) == 0);  // exits 0 by itself
    CHECK(Cache::open("default", {.root = root.path()}).get("sig") == "halfdone");
    CHECK(s.stderr_text().find("signal " + std::to_string(sig) + " received") != std::string::npos);
  }
}

TEST_CASE("lilcache serve: bad usage exits 2, an address in use exits 3, each with one line") {
  ::unsetenv("LILCACHE_TOKEN");
  TempDir root;
  Children children;
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"serve", "--port", "70000"},
           {"serve", "--snapshot", "12x"},
           {"serve", "--expires", "-1s"},
           {"serve", "--loglevel", "loud"},
           {"serve", "--name", "../x"},
           {"serve", "--no-such-option"},
           {},
       }) {
    std::vector<std::string> argv = {CliPath(), "--root", root.path()};
    argv.insert(argv.end(), args.begin(), args.end());
    Result r = Run(argv);
    CHECK_MESSAGE(r.status == 2, r.err);
    CHECK(r.err.starts_with("lilcache: "));
    CHECK(r.err.find('\n') == r.err.size() - 1);  // one line
    CHECK(r.out.empty());
  }
  Served s(children, root.path());
  Result busy =
      Run({CliPath(), "serve", "--root", root.path(), "--port", std::to_string(s.port())});
  CHECK(busy.status == 3);
  CHECK(busy.err.starts_with("lilcache: serve: cannot listen on 127.0.0.1:" +
                             std::to_string(s.port())));
  CHECK(busy.err.find('\n') == busy.err.size() - 1);  // one line
  CHECK(busy.err.find("in use") != std::string::npos);
  Result help = Run({CliPath(), "serve", "--help"});
  CHECK(help.status == 0);
  CHECK(help.out.find("--token") != std::string::npos);
}

TEST_CASE("lilcache::start() serves the cache init() selected until SIGTERM") {
  ::unsetenv("LILCACHE_TOKEN");
  TempDir root;
  Children children;
  const std::string dir = root.path();
  const pid_t child = children.add(lilcache::test::fork_child([&] {
    lilcache::init("foo_cache", {.root = dir});
    lilcache::start("127.0.0.1", 0);  // port 0: the log names the port
    return 0;
  }));
  const std::smatch m =
      WaitFor([&] { return read_file(root.file("foo_cache.log")); },
              std::regex("serving cache \"foo_cache\" .* on http://127\\.0\\.0\\.1:([0-9]+) "),
              [&] { return lilcache::test::try_wait_child(child).has_value(); });
  const auto port = static_cast<std::uint16_t>(std::stoi(m[1].str()));
  CHECK(Fetch(port, "GET", "/set?key=a&value=b").body == "OK\n");
  CHECK(Cache::open("foo_cache", {.root = dir}).get("a") == "b");
  ::kill(child, SIGTERM);
  CHECK(children.wait(child) == 0);
}

TEST_CASE("lilcache::start() takes allowed hosts and origins and refuses the others") {
  ::unsetenv("LILCACHE_TOKEN");
  TempDir root;
  Children children;
  const std::string dir = root.path();
  const pid_t child = children.add(lilcache::test::fork_child([&] {
    lilcache::init("foo_cache", {.root = dir});
    lilcache::start("127.0.0.1", 0,
                    {.allowed_hosts = {"cache.lan"}, .allowed_origins = {"https://app.example"}});
    return 0;
  }));
  const std::smatch m =
      WaitFor([&] { return read_file(root.file("foo_cache.log")); },
              std::regex("serving cache \"foo_cache\" .* on http://127\\.0\\.0\\.1:([0-9]+) "),
              [&] { return lilcache::test::try_wait_child(child).has_value(); });
  const auto port = static_cast<std::uint16_t>(std::stoi(m[1].str()));
  auto raw = [&](const std::string& fields) {
    HttpConn c(port);
    REQUIRE(c.Send("GET /set?key=a&value=b HTTP/1.1\r\n" + fields + "\r\n"));
    std::optional<HttpReply> r = c.Read();
    REQUIRE(r.has_value());
    return *r;
  };
  CHECK(raw("Host: rebind.evil.example\r\n").status == 403);
  CHECK(raw("Host: 127.0.0.1\r\nOrigin: https://evil.example\r\n").status == 403);
  CHECK_FALSE(Cache::open("foo_cache", {.root = dir}).contains("a"));
  CHECK(raw("Host: cache.lan:5001\r\n").status == 200);
  HttpReply cors = raw("Host: 127.0.0.1\r\nOrigin: https://app.example\r\n");
  CHECK(cors.status == 200);
  CHECK(cors.header("access-control-allow-origin") == "https://app.example");
  ::kill(child, SIGTERM);
  CHECK(children.wait(child) == 0);
}

// ---- bounded resources under attack (issue 12; test/attack/attack.h) ---------------

namespace {

namespace attack = lilcache::attack;

struct AttackRun {
  attack::Memory before, peak;
  attack::NormalStats normal;
  int health = -1;
};

// Runs `pattern` for `seconds` against s while a normal client gets the key
// "small" every 20 ms; samples the server's memory meanwhile.
AttackRun RunAttack(const Served& s, double seconds,
                    const std::function<void(const std::atomic<bool>&)>& pattern) {
  AttackRun run;
  REQUIRE(Fetch(s.port(), "PUT", "/keys/small", "v").status / 100 == 2);
  run.before = attack::ReadMemory(s.pid());
  std::atomic<bool> stop{false};
  std::thread sampler([&] { attack::SampleMemory(s.pid(), stop, run.peak); });
  std::thread normal([&] {
    attack::NormalClient(attack::Target{s.port(), "", "127.0.0.1"}, "small", 20ms, stop,
                         run.normal);
  });
  std::thread attacker([&] { pattern(stop); });
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  attacker.join();
  normal.join();
  sampler.join();
  run.health = attack::Request(s.port(), MakeRequest("GET", "/health"), 10s);
  MESSAGE("server memory: before "
          << run.before.rss_kib / 1024 << " MiB RSS, " << run.before.anon_kib / 1024
          << " MiB anon; peak VmHWM " << run.peak.hwm_kib / 1024 << " MiB, peak RssAnon "
          << run.peak.anon_kib / 1024 << " MiB; normal client " << run.normal.ok << " ok, "
          << run.normal.errors << " errors, p99 " << run.normal.Percentile(99) / 1000 << " ms, max "
          << run.normal.Percentile(100) / 1000 << " ms");
  return run;
}

// In KiB, as /proc reports. The bounds hold for plain builds only (see
// attack::MemoryIsMeasurable); sanitized builds check the rest.
constexpr std::uint64_t kMiB = 1024;

}  // namespace

TEST_CASE("lilcache serve's memory stays bounded under a chunk-extension or trailer flood") {
  ::unsetenv("LILCACHE_TOKEN");
  ::signal(SIGPIPE, SIG_IGN);
  TempDir root;
  Children children;
  Served s(children, root.path(), {"--threads", "2"});
  const attack::Target t{s.port(), "", "127.0.0.2"};
  // Before: 1.5 GB of chunk extension took the server from 6 MB to 1.54 GB.
  AttackRun run = RunAttack(s, 3 * lilcache::test::slowdown(), [&](const std::atomic<bool>& stop) {
    attack::Counters c;
    std::thread trailer([&] { attack::TrailerFlood(t, 1536u << 20, stop, c); });
    attack::ChunkExtensionFlood(t, 1536u << 20, stop, c);
    trailer.join();
    CHECK(c.cut > 0);  // the server cut them
  });
  if (attack::MemoryIsMeasurable()) {
    CHECK(run.peak.anon_kib < 64 * kMiB);
    CHECK(run.peak.hwm_kib < 128 * kMiB);
  }
  CHECK(run.health == 200);
  CHECK(run.normal.errors == 0);
}

TEST_CASE("lilcache serve's memory stays bounded with 16 unfinished 63 MiB bodies") {
  ::unsetenv("LILCACHE_TOKEN");
  ::signal(SIGPIPE, SIG_IGN);
  TempDir root;
  Children children;
  Served s(children, root.path(), {"--threads", "2"});  // memory budget 256 MiB
  // Before: 16 such connections held 1.1 GB. Now 4 fit in the budget; the
  // others get 503 before their body is read.
  attack::Counters c;
  AttackRun run = RunAttack(s, 4 * lilcache::test::slowdown(), [&](const std::atomic<bool>& stop) {
    attack::UnfinishedBodies(attack::Target{s.port(), "", "127.0.0.2"}, 16, 63u << 20, stop, c);
  });
  CHECK(c.answers_503 > 0);
  if (attack::MemoryIsMeasurable()) {
    CHECK(run.peak.anon_kib < (256 + 64) * kMiB);
    CHECK(run.peak.hwm_kib < (256 + 128) * kMiB);
  }
  CHECK(run.health == 200);
  CHECK(run.normal.errors == 0);
}

TEST_CASE("lilcache serve's memory stays bounded with 16 non-readers of a 60 MiB value") {
  ::unsetenv("LILCACHE_TOKEN");
  ::signal(SIGPIPE, SIG_IGN);
  TempDir root;
  Children children;
  Served s(children, root.path(), {"--threads", "2"});
  REQUIRE(Fetch(s.port(), "PUT", "/keys/big", std::string(60u << 20, 'v')).status == 201);
  // Before: 1.1 GB for 10 s per 40-byte request. Now at most 4 responses of
  // 60 MiB are held (the budget); each thread may copy one more value while
  // it answers, and the value's pages of the cache's mapping count in VmRSS.
  attack::Counters c;
  AttackRun run = RunAttack(s, 4 * lilcache::test::slowdown(), [&](const std::atomic<bool>& stop) {
    attack::NonReadingClients(attack::Target{s.port(), "", "127.0.0.2"}, 16, "big", 10s, stop, c);
  });
  CHECK(c.connections == 16);
  if (attack::MemoryIsMeasurable()) {
    CHECK(run.peak.anon_kib < (256 + 2 * 64 + 64) * kMiB);
    CHECK(run.peak.hwm_kib < (256 + 2 * 64 + 64 + 64) * kMiB);
  }
  CHECK(run.health == 200);
  CHECK(run.normal.errors == 0);
}

TEST_CASE("serve --max-bytes sets the cache's limit; a cache without one gets 1 GiB at most") {
  ::unsetenv("LILCACHE_TOKEN");
  TempDir root;
  Children children;
  auto limit = [](std::uint16_t port) {
    return nlohmann::json::parse(Fetch(port, "GET", "/stats").body)["max_bytes"]
        .get<std::uint64_t>();
  };
  {
    Served s(children, root.path(), {"--max-bytes", "3MiB"}, "given");
    CHECK(limit(s.port()) == 3u << 20);
  }
  {
    // A cache without a limit gets min(1 GiB, a quarter of the free space).
    Served s(children, root.path(), {}, "fresh");
    struct statvfs vfs {};
    REQUIRE(::statvfs(root.path().c_str(), &vfs) == 0);
    const std::uint64_t quarter = std::uint64_t{vfs.f_bavail} * vfs.f_frsize / 4;
    const std::uint64_t got = limit(s.port());
    CHECK(got <= (1u << 30));
    CHECK(got >= std::min<std::uint64_t>(1u << 30, quarter) * 9 / 10);  // free space moves
  }
  {
    // A limit the cache keeps (set by another process) is not overridden.
    Cache::open("kept", {.root = root.path(), .max_bytes = 5u << 20});
    Served s(children, root.path(), {}, "kept");
    CHECK(limit(s.port()) == 5u << 20);
  }
  CHECK(Run({CliPath(), "serve", "--root", root.path(), "--max-bytes", "lots"}).status == 2);
}

TEST_CASE("start() derives the connection cap from RLIMIT_NOFILE, keeping descriptors in reserve") {
  ::unsetenv("LILCACHE_TOKEN");
  ::signal(SIGPIPE, SIG_IGN);
  TempDir root;
  Children children;
  const std::string dir = root.path();
  // 100 descriptors: 64 + 4 x 2 threads kept, 1 refusal slot, 27 connections.
  // Before, the cap stayed 1,000: accept() and then the cache failed (EMFILE).
  const pid_t child = children.add(lilcache::test::fork_child([&] {
    rlimit rl{100, 100};
    if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) return 98;
    lilcache::init("limited", {.root = dir});
    lilcache::start("127.0.0.1", 0, {.threads = 2, .max_connections_per_client = 1000});
    return 0;
  }));
  const std::smatch m =
      WaitFor([&] { return read_file(root.file("limited.log")); },
              std::regex("serving cache \"limited\" .* on http://127\\.0\\.0\\.1:([0-9]+) "),
              [&] { return lilcache::test::try_wait_child(child).has_value(); });
  const auto port = static_cast<std::uint16_t>(std::stoi(m[1].str()));
  CHECK(read_file(root.file("limited.log")).find("limits: 27 connections") != std::string::npos);

  // Take every slot, and more.
  std::vector<std::unique_ptr<HttpConn>> conns;
  int served = 0, refused = 0;
  for (int i = 0; i < 40; ++i) {
    auto c = std::make_unique<HttpConn>(port, 10s);
    std::optional<HttpReply> r;
    if (c->Send(MakeRequest("GET", "/health"))) r = c->Read();
    if (r && r->status == 200) {
      ++served;
      conns.push_back(std::move(c));
    } else {
      ++refused;
    }
  }
  CHECK(served == 27);
  CHECK(refused == 13);
  // The cache still has its descriptors: 3,000 keys through a held connection
  // grow the index, which takes compactions (new files) in this process.
  HttpConn& writer = *conns.front();
  for (int i = 0; i < 3000; ++i) {
    REQUIRE(writer.Send(MakeRequest("GET", "/set?key=k" + std::to_string(i) + "&value=v")));
    std::optional<HttpReply> r = writer.Read();
    REQUIRE(r);
    REQUIRE_MESSAGE(r->status == 200, r->body);
  }
  REQUIRE(writer.Send(MakeRequest("GET", "/stats")));
  std::optional<HttpReply> stats = writer.Read();
  REQUIRE(stats);
  CHECK(nlohmann::json::parse(stats->body)["compactions"].get<std::uint64_t>() >= 1);
  conns.clear();
  CHECK(read_file(root.file("limited.log")).find("accept failed") == std::string::npos);
  ::kill(child, SIGTERM);
  CHECK(children.wait(child) == 0);
}

// ---- On a Redis Cluster ($LILCACHE_TEST_CLUSTER, test/cluster/with_cluster.sh) -------
// These cases pass without doing anything when the variable is unset; the
// meson test server_cluster_test runs them under with_cluster.sh.

namespace {

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
  return "http_" + std::string(what) + "_" + std::to_string(::getpid()) + "_" +
         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 1000000);
}

// Only the text log under root: the server kept no state of its own there.
void CheckOnlyLogs(const std::string& root) {
  for (const auto& entry : std::filesystem::directory_iterator(root)) {
    CAPTURE(entry.path().string());
    CHECK(entry.path().string().find(".log") != std::string::npos);
  }
}

}  // namespace

TEST_CASE("on a Redis Cluster: a value set through one lilcache serve is read through another") {
  const std::string url = TestCluster();
  if (url.empty()) return;
  ::unsetenv("LILCACHE_TOKEN");
  TempDir root_a, root_b;  // two machines, as far as the servers can tell
  Children children;
  const std::string name = ClusterCacheName("share");
  Served a(children, root_a.path(), {"--backend", url}, name);
  Served b(children, root_b.path(), {"--backend", url}, name);
  CHECK(a.stdout_text().find("(backend redis") != std::string::npos);
  CHECK(Fetch(a.port(), "GET", "/set?key=a&value=b").status == 200);
  const HttpReply got = Fetch(b.port(), "GET", "/get?key=a");
  CHECK(got.status == 200);
  CHECK(got.body == "b");
  // The library on the same cluster sees it, and writes the other way.
  Cache lib = Cache::open(name, {.root = root_a.path(), .backend = url});
  CHECK(lib.get("a") == "b");
  lib.set("c", "d");
  CHECK(Fetch(a.port(), "GET", "/get?key=c").body == "d");
  CHECK(Fetch(b.port(), "GET", "/pop?key=c").body == "d");
  CHECK(Fetch(a.port(), "GET", "/get?key=c").status == 404);
  CHECK(Fetch(b.port(), "PUT", "/keys/e", "f").status == 201);
  CHECK(Fetch(a.port(), "GET", "/keys/e").body == "f");
  CheckOnlyLogs(root_a.path());
  CheckOnlyLogs(root_b.path());
}

TEST_CASE("on a Redis Cluster: racing pops through two lilcache serve give the value once") {
  const std::string url = TestCluster();
  if (url.empty()) return;
  ::unsetenv("LILCACHE_TOKEN");
  TempDir root_a, root_b;
  Children children;
  const std::string name = ClusterCacheName("pop");
  Served a(children, root_a.path(), {"--backend", url, "--threads", "2"}, name);
  Served b(children, root_b.path(), {"--backend", url, "--threads", "2"}, name);
  constexpr int kRounds = 10, kThreads = 6, kIncrements = 20;
  for (int round = 0; round < kRounds; ++round) {
    CAPTURE(round);
    const std::string value = "job" + std::to_string(round);
    REQUIRE(Fetch(a.port(), "GET", "/set?key=job&value=" + value).status == 200);
    std::atomic<int> winners{0}, misses{0}, unexpected{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      const std::uint16_t port = t % 2 == 0 ? a.port() : b.port();
      threads.emplace_back([&, port] {
        const HttpReply r = Fetch(port, "GET", "/pop?key=job");
        if (r.status == 200 && r.body == value) {
          ++winners;
        } else if (r.status == 404) {
          ++misses;
        } else {
          ++unexpected;
        }
      });
    }
    for (std::thread& t : threads) t.join();
    CHECK(winners == 1);
    CHECK(misses == kThreads - 1);
    CHECK(unexpected == 0);
  }
  // Increments through both servers at once sum exactly.
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    const std::uint16_t port = t % 2 == 0 ? a.port() : b.port();
    threads.emplace_back([&, port] {
      for (int i = 0; i < kIncrements; ++i) {
        if (Fetch(port, "POST", "/keys/count/increment").status != 200) ++failed;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  CHECK(failed == 0);
  CHECK(Fetch(b.port(), "GET", "/get?key=count").body == std::to_string(kThreads * kIncrements));
}
