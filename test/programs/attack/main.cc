// lilcache-attack: the resource attacks of issue 12, all at once, against a
// `lilcache serve` it starts on 127.0.0.1 (a fresh root, a token, 2 threads),
// for a bounded time; then prints the server's peak memory, the answers a
// normal client got meanwhile and the growth of the log, and with --check
// exits 1 if a bound is passed. Loopback only; every attacker bounded in
// connections and bytes per connection.
//
//   build/test/lilcache-attack --cli build/tools/lilcache --seconds 60
//
// Attackers (each from its own 127.0.0.x address, as distinct clients):
//   .2 chunk-extension flood: "1;" then up to 1.5 GB of 'a' per connection
//   .3 endless trailer: the last chunk, then an endless trailer field
//   .4 16 connections sending 63 MiB bodies, held unfinished
//   .5 16 connections asking for a 60 MiB value, never reading (again every 2 s)
//   .6 1,000 idle connections, the closed ones re-opened every 5 s
//   .7 a flood of requests with a wrong token (2 connections, pipelined)
// The normal client (127.0.0.1) gets a small value every 10 ms.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "attack.h"
#include "support/test_util.h"

namespace {

using namespace lilcache::attack;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::uint64_t FileSize(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
}

// Starts `lilcache serve` with stdout to `out` and stderr to /dev/null.
pid_t StartServer(const std::vector<std::string>& argv, const std::string& out) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int n = ::open("/dev/null", O_WRONLY);
    ::dup2(o, 1);
    ::dup2(n, 2);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("lilcache-attack: issue 12's resource attacks against lilcache serve");
  std::string cli = std::getenv("LILCACHE_CLI") != nullptr ? std::getenv("LILCACHE_CLI") : "";
  double seconds = 60;
  bool check = false;
  std::uint64_t max_rss_mib = 768, max_log_kib_per_s = 64;
  std::vector<std::string> extra;
  app.add_option("--cli", cli, "the lilcache executable (default $LILCACHE_CLI)");
  app.add_option("--seconds", seconds, "how long the attack runs")->capture_default_str();
  app.add_flag("--check", check, "exit 1 if a bound below is passed");
  app.add_option("--max-rss-mib", max_rss_mib, "bound of the server's peak VmRSS")
      ->capture_default_str();
  app.add_option("--max-log-kib-per-s", max_log_kib_per_s, "bound of the log's growth")
      ->capture_default_str();
  app.add_option("--serve-arg", extra, "an extra argument for lilcache serve (repeatable)");
  CLI11_PARSE(app, argc, argv);
  if (cli.empty()) {
    std::fprintf(stderr, "lilcache-attack: --cli or $LILCACHE_CLI is required\n");
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);

  lilcache::test::TempDir root, io;
  const std::string token = "attack-test-token";
  std::vector<std::string> serve = {cli, "serve",     "--root", root.path(), "--port",
                                    "0", "--threads", "2",      "--token",   token};
  serve.insert(serve.end(), extra.begin(), extra.end());
  const pid_t server = StartServer(serve, io.file("stdout"));
  std::uint16_t port = 0;
  for (int i = 0; i < 600 && port == 0; ++i) {
    std::smatch m;
    const std::string text = lilcache::test::read_file(io.file("stdout"));
    static const std::regex kLine("on http://127\\.0\\.0\\.1:([0-9]+)");
    if (std::regex_search(text, m, kLine)) port = static_cast<std::uint16_t>(std::stoi(m[1]));
    if (port == 0) std::this_thread::sleep_for(50ms);
  }
  if (port == 0) {
    std::fprintf(stderr, "lilcache-attack: the server did not start\n");
    ::kill(server, SIGKILL);
    ::waitpid(server, nullptr, 0);
    return 1;
  }

  const std::string auth = "Authorization: Bearer " + token + "\r\n";
  const std::size_t big = 60u << 20;
  const int put_big =
      Request(port,
              "PUT /keys/big HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth +
                  "Content-Length: " + std::to_string(big) + "\r\n\r\n" + std::string(big, 'v'),
              30s);
  const int put_small = Request(
      port,
      "PUT /keys/small HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth + "Content-Length: 5\r\n\r\nsmall",
      30s);
  if (put_big / 100 != 2 || put_small / 100 != 2) {  // 201 created (204 replaced)
    std::fprintf(stderr, "lilcache-attack: storing the values failed (%d, %d)\n", put_big,
                 put_small);
    ::kill(server, SIGKILL);
    ::waitpid(server, nullptr, 0);
    return 1;
  }

  const std::string log = root.file("default.log");
  const std::uint64_t log_before = FileSize(log);
  const Memory before = ReadMemory(server);
  std::atomic<bool> stop{false};
  Memory peak;
  NormalStats normal;
  Counters chunk, trailer, bodies, readers, idle, tokens;
  auto from = [&](const char* source) { return Target{port, token, source}; };
  const Target bad_token{port, "", "127.0.0.7"};
  std::vector<std::thread> threads;
  threads.emplace_back([&] { SampleMemory(server, stop, peak); });
  threads.emplace_back([&] {
    NormalClient(Target{port, token, "127.0.0.1"}, "small", 10ms, stop, normal);
  });
  threads.emplace_back([&] { ChunkExtensionFlood(from("127.0.0.2"), 1536u << 20, stop, chunk); });
  threads.emplace_back([&] { TrailerFlood(from("127.0.0.3"), 1536u << 20, stop, trailer); });
  threads.emplace_back([&] { UnfinishedBodies(from("127.0.0.4"), 16, 63u << 20, stop, bodies); });
  threads.emplace_back([&] { NonReadingClients(from("127.0.0.5"), 16, "big", 2s, stop, readers); });
  threads.emplace_back([&] { IdleConnections(from("127.0.0.6"), 1000, 5s, stop, idle); });
  for (int i = 0; i < 2; ++i) threads.emplace_back([&] { BadTokenFlood(bad_token, stop, tokens); });

  const Clock::time_point start = Clock::now();
  while (Clock::now() - start < std::chrono::duration<double>(seconds)) {
    if (lilcache::test::try_wait_child(server).has_value()) break;  // died
    std::this_thread::sleep_for(100ms);
  }
  stop = true;
  for (std::thread& t : threads) t.join();
  const double ran = std::chrono::duration<double>(Clock::now() - start).count();

  const bool alive = !lilcache::test::try_wait_child(server).has_value();
  const int health =
      alive ? Request(port, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth + "\r\n", 10s)
            : -1;
  const Memory after = alive ? ReadMemory(server) : Memory{};
  const std::uint64_t log_growth = FileSize(log) - log_before;
  int exit_status = -1;
  if (alive) {
    ::kill(server, SIGTERM);
    exit_status = lilcache::test::wait_child(server, 60s);
  }

  auto mib = [](std::uint64_t kib) { return static_cast<double>(kib) / 1024.0; };
  auto line = [&](const char* name, const Counters& c) {
    std::printf("  %-28s %8llu connections %10.1f MiB sent %7llu cut %6llu 503\n", name,
                static_cast<unsigned long long>(c.connections.load()),
                static_cast<double>(c.bytes_sent.load()) / (1 << 20),
                static_cast<unsigned long long>(c.cut.load()),
                static_cast<unsigned long long>(c.answers_503.load()));
  };
  std::printf("lilcache-attack: %.1f s against lilcache serve (pid %d, port %u)\n", ran,
              static_cast<int>(server), port);
  line("chunk-extension flood", chunk);
  line("endless trailer", trailer);
  line("16 unfinished 63 MiB bodies", bodies);
  line("16 non-readers of 60 MiB", readers);
  line("1,000 idle connections", idle);
  line("bad-token flood", tokens);
  std::printf(
      "server memory: before %.1f MiB RSS (%.1f anon); peak VmHWM %.1f MiB, peak RssAnon "
      "%.1f MiB; after %.1f MiB RSS (%.1f anon)\n",
      mib(before.rss_kib), mib(before.anon_kib), mib(peak.hwm_kib), mib(peak.anon_kib),
      mib(after.rss_kib), mib(after.anon_kib));
  std::printf(
      "normal client: %llu ok, %llu errors (%llu 503)%s%s; latency p50 %.2f ms, p99 "
      "%.2f ms, max %.2f ms\n",
      static_cast<unsigned long long>(normal.ok), static_cast<unsigned long long>(normal.errors),
      static_cast<unsigned long long>(normal.answers_503), normal.errors > 0 ? ", last: " : "",
      normal.last_error.c_str(), normal.Percentile(50) / 1000, normal.Percentile(99) / 1000,
      normal.Percentile(100) / 1000);
  std::printf("log: grew %.1f KiB (%.2f KiB/s)\n", static_cast<double>(log_growth) / 1024,
              static_cast<double>(log_growth) / 1024 / ran);
  std::printf("after the attack: /health %d; SIGTERM exit status %d\n", health, exit_status);

  if (!check) return 0;
  bool ok = true;
  auto fail = [&](const std::string& why) {
    std::printf("FAILED: %s\n", why.c_str());
    ok = false;
  };
  if (!alive) fail("the server died");
  if (health != 200) fail("the server does not answer after the attack");
  if (!MemoryIsMeasurable()) {
    std::printf("(a sanitized build: the memory bound is not checked)\n");
  } else if (mib(peak.hwm_kib) > static_cast<double>(max_rss_mib)) {
    fail("peak VmHWM over " + std::to_string(max_rss_mib) + " MiB");
  }
  const std::uint64_t requests = normal.ok + normal.errors;
  if (requests == 0 || normal.errors * 100 > requests) fail("over 1% of normal requests failed");
  if (static_cast<double>(log_growth) / 1024 > static_cast<double>(max_log_kib_per_s) * ran + 16) {
    fail("the log grew over " + std::to_string(max_log_kib_per_s) + " KiB/s");
  }
  if (exit_status != 0) fail("lilcache serve did not stop gracefully");
  return ok ? 0 : 1;
}
