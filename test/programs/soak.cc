// lilcache-soak: a bounded soak. P worker processes x T threads run a mixed
// load (get, set, set with TTL, pop, erase, now and then a purge; a tenth of
// it the operations of issue 14: increment of counter keys, add,
// get_versioned + compare_and_set, touch, get_or_set, get_many and
// set_many; periodic snapshots) on one cache with a bounded key space for --seconds; at the same
// time --rest-servers processes serve the cache over HTTP (lilcache::Server)
// and a client process with --rest-clients keep-alive connections runs the
// same mix through them (PUT/GET/DELETE /keys/{key}, GET /pop). This process
// samples, every --interval seconds, for every one of those processes: RSS (VmRSS
// and its anonymous part RssAnon, from /proc/PID/status), the heap (bytes
// malloc has handed out, mallinfo2, and the library's Generation objects,
// both published by the process itself every 100 ms), open descriptors
// (/proc/PID/fd), mappings (/proc/PID/maps lines) - both without the .tmp
// files of a compaction in progress; and the sizes of the
// cache's files. It prints them as a table, then judges whether they stayed
// flat after a warm-up (the first quarter of the run). Compactions in flight
// add descriptors and mappings for a moment, and the log's file grows and
// shrinks with each generation, so the verdict compares floors and peaks of
// the first and last thirds of the rest, per worker:
//  * descriptors: the floor of the last third at most 4 above the first's (a
//    process keeps a retired generation - 2 descriptors - open until its
//    next switch if one of its threads was using it at the last one; a leak
//    of a generation per switch raises the floor by hundreds);
//  * mappings: floor at most 8 higher;
//  * RssAnon: floor at most 25% + 16 MiB higher;
//  * the heap in use: floor at most 10% + 2 MiB higher (RssAnon hides a
//    small leak: ~650 bytes per generation switch was one, issue 11 item 10);
//  * Generation objects: floor at most 2 higher (one leaked per switch
//    raises it by hundreds);
//  * cache files (all workers): the peak of the last third at most twice
//    the peak of the first (compaction keeps the log bounded when the live
//    data is).
// Exit status 0 if all stayed flat, 1 if not (the verdict line says which),
// 2 bad usage. Every value read is checked (make_value); a bad one also
// fails the run.
//
//   lilcache-soak --processes 4 --threads 2 --seconds 300 --interval 15
#include <malloc.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/generation.h"
#include "lilcache/lilcache.h"
#include "lilcache/server.h"
#include "support/http_client.h"
#include "support/test_util.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Config {
  std::uint32_t processes = 4;
  std::uint32_t threads = 2;
  double seconds = 120;
  double interval = 10;
  std::uint32_t keys = 20000;
  std::uint32_t max_value = 4096;
  std::uint32_t rest_servers = 1;
  std::uint32_t rest_clients = 4;
  std::string root;
};

constexpr std::uint32_t kMaxServers = 16;
constexpr std::uint32_t kMaxProcs = 64 + kMaxServers + 1;  // workers, servers, clients

struct Shared {
  std::uint64_t stop;
  std::uint64_t ops;
  std::uint64_t bad_values;
  std::uint64_t errors;
  std::uint64_t rest_ops;
  std::uint64_t rest_failures;  // connections lost, unexpected statuses
  std::uint64_t ports[kMaxServers];
  // Published by each process (its index in the watcher's list) every 100 ms.
  std::uint64_t heap_bytes[kMaxProcs];          // mallinfo2: uordblks + hblkhd
  std::uint64_t generation_objects[kMaxProcs];  // lilcache::Generation::Objects()
};
Shared* g_shared = nullptr;

template <typename T>
std::atomic_ref<T> A(T& x) {
  return std::atomic_ref<T>(x);
}

lilcache::Options cache_options(const Config& cfg) {
  return {.root = cfg.root + "/cache", .snapshot = "5s"};
}

void worker(const Config& cfg, std::uint32_t p) {
  lilcache::Cache cache = lilcache::Cache::open("soak", cache_options(cfg));
  std::vector<std::thread> threads;
  for (std::uint32_t t = 0; t < cfg.threads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(std::random_device{}() ^ (std::uint64_t{p} << 32) ^ t);
      const std::uint32_t writer = p * 64 + t + 1;
      std::uint64_t seq = 0, ops = 0;
      while (A(g_shared->stop).load(std::memory_order_relaxed) == 0) {
        std::string key = "k" + std::to_string(rng() % cfg.keys);
        std::uint64_t dice = rng() % 1000;
        try {
          auto check = [&](const std::string& k, const std::optional<std::string>& v) {
            if (v && !lilcache::test::check_value(k, *v, nullptr)) {
              A(g_shared->bad_values).fetch_add(1);
            }
          };
          auto value = [&](const std::string& k) {
            return lilcache::test::make_value(k, writer, ++seq, 32 + rng() % 256);
          };
          if (dice < 450) {
            check(key, cache.get(key));
          } else if (dice < 720) {
            cache.set(key,
                      lilcache::test::make_value(key, writer, ++seq, 32 + rng() % cfg.max_value));
          } else if (dice < 770) {
            cache.set(key, value(key), std::chrono::milliseconds(100 + rng() % 5000));
          } else if (dice < 850) {
            check(key, cache.pop(key));
          } else if (dice < 870) {
            // Counter keys hold decimal text, which check_value would refuse:
            // they are never read by the other operations.
            if (cache.increment("n" + std::to_string(rng() % 8)) <= 0) {
              A(g_shared->bad_values).fetch_add(1);
            }
          } else if (dice < 885) {
            if (!cache.add(key, value(key))) check(key, cache.get(key));
          } else if (dice < 905) {
            std::optional<lilcache::Versioned> v = cache.get_versioned(key);
            if (v) {
              check(key, v->value);
              if (!cache.compare_and_set(key, v->version, value(key))) check(key, cache.get(key));
            }
          } else if (dice < 915) {
            if (!cache.touch(key, std::chrono::milliseconds(100 + rng() % 5000))) {
              check(key, cache.get(key));
            }
          } else if (dice < 930) {
            check(key, cache.get_or_set(key, [&] { return value(key); }));
          } else if (dice < 942) {
            std::vector<std::string> keys;
            for (int i = 0; i < 4; ++i) keys.push_back("k" + std::to_string(rng() % cfg.keys));
            std::vector<std::optional<std::string>> got = cache.get_many(keys);
            for (std::size_t i = 0; i < got.size(); ++i) check(keys[i], got[i]);
          } else if (dice < 950) {
            std::vector<std::pair<std::string, std::string>> items;
            for (int i = 0; i < 4; ++i) {
              std::string k = "k" + std::to_string(rng() % cfg.keys);
              items.emplace_back(k, value(k));
            }
            cache.set_many(items);
          } else if (dice < 999 || rng() % 2000 != 0) {
            cache.erase(key);
          } else {
            cache.purge();
          }
        } catch (const lilcache::Error& e) {
          A(g_shared->errors).fetch_add(1);
          std::fprintf(stderr, "lilcache-soak worker %u: %s\n", p, e.what());
        }
        if (++ops % 256 == 0) A(g_shared->ops).fetch_add(256, std::memory_order_relaxed);
      }
    });
  }
  for (auto& th : threads) th.join();
}

// A process serving the cache over HTTP until the soak stops.
void rest_server(const Config& cfg, std::uint32_t i) {
  lilcache::Cache cache = lilcache::Cache::open("soak", cache_options(cfg));
  lilcache::Server server(cache, "127.0.0.1", 0, {.threads = 2});
  std::thread serving([&] { server.run(); });
  A(g_shared->ports[i]).store(server.port());
  while (A(g_shared->stop).load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  server.stop();
  serving.join();
}

void rest_failure(const std::string& what) {
  if (A(g_shared->rest_failures).fetch_add(1) < 10) {
    std::fprintf(stderr, "lilcache-soak REST client: %s\n", what.c_str());
  }
}

// A process with cfg.rest_clients threads, each with a keep-alive connection
// to one of the servers, running the mix over HTTP.
void rest_clients(const Config& cfg) {
  std::vector<std::uint16_t> ports;
  auto deadline = Clock::now() + std::chrono::seconds(60);
  for (std::uint32_t i = 0; i < cfg.rest_servers; ++i) {
    while (A(g_shared->ports[i]).load() == 0) {
      if (Clock::now() > deadline) throw std::runtime_error("a REST server did not start");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ports.push_back(static_cast<std::uint16_t>(A(g_shared->ports[i]).load()));
  }
  std::vector<std::thread> threads;
  for (std::uint32_t t = 0; t < cfg.rest_clients; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(std::random_device{}() ^ t);
      const std::uint32_t writer = 10000 + t;
      const std::uint16_t port = ports[t % ports.size()];
      std::optional<lilcache::test::HttpConn> conn;
      std::uint64_t seq = 0, ops = 0;
      while (A(g_shared->stop).load(std::memory_order_relaxed) == 0) {
        std::string key = "k" + std::to_string(rng() % cfg.keys);
        std::uint64_t dice = rng() % 100;
        std::string request;
        int kind;  // 0 get, 1 put, 2 pop, 3 delete
        if (dice < 50) {
          kind = 0;
          request = lilcache::test::MakeRequest("GET", "/keys/" + key);
        } else if (dice < 80) {
          kind = 1;
          request = lilcache::test::MakeRequest(
              "PUT", "/keys/" + key,
              lilcache::test::make_value(key, writer, ++seq, 32 + rng() % cfg.max_value));
        } else if (dice < 90) {
          kind = 2;
          request = lilcache::test::MakeRequest("GET", "/pop?key=" + key);
        } else {
          kind = 3;
          request = lilcache::test::MakeRequest("DELETE", "/keys/" + key);
        }
        try {
          if (!conn) conn.emplace(port);
        } catch (const std::exception& e) {
          rest_failure(e.what());
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
          continue;
        }
        std::optional<lilcache::test::HttpReply> reply;
        if (conn->Send(request)) reply = conn->Read();
        if (!reply) {
          rest_failure("connection to port " + std::to_string(port) + " lost");
          conn.reset();
          continue;
        }
        // A PUT is 201 (created) or 204 (replaced); the others 200 or 404.
        bool ok = kind == 1 ? reply->status == 201 || reply->status == 204
                            : reply->status == 200 || reply->status == 404;
        if (!ok) rest_failure("status " + std::to_string(reply->status) + ": " + reply->body);
        if (reply->status == 200 && (kind == 0 || kind == 2) &&
            !lilcache::test::check_value(key, reply->body, nullptr)) {
          A(g_shared->bad_values).fetch_add(1);
        }
        if (!reply->keep_alive) conn.reset();
        if (++ops % 64 == 0) A(g_shared->rest_ops).fetch_add(64, std::memory_order_relaxed);
      }
    });
  }
  for (auto& th : threads) th.join();
}

struct ProcSample {
  std::uint64_t rss_kb = 0, anon_kb = 0, fds = 0, maps = 0, heap_kb = 0, generations = 0;
};

// In each process of the soak: publishes what only the process itself can
// see (its heap, its Generation objects) until the soak stops or `done`.
void publish_heap(std::size_t index, const std::atomic<bool>& done) {
  while (A(g_shared->stop).load(std::memory_order_relaxed) == 0 && !done.load()) {
    struct mallinfo2 mi = mallinfo2();
    A(g_shared->heap_bytes[index]).store(mi.uordblks + mi.hblkhd, std::memory_order_relaxed);
    A(g_shared->generation_objects[index])
        .store(static_cast<std::uint64_t>(lilcache::Generation::Objects()),
               std::memory_order_relaxed);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

ProcSample sample_process(pid_t pid, std::size_t index) {
  ProcSample s;
  s.heap_kb = A(g_shared->heap_bytes[index]).load(std::memory_order_relaxed) / 1024;
  s.generations = A(g_shared->generation_objects[index]).load(std::memory_order_relaxed);
  std::string base = "/proc/" + std::to_string(pid);
  std::ifstream status(base + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) s.rss_kb = std::stoull(line.substr(6));
    if (line.rfind("RssAnon:", 0) == 0) s.anon_kb = std::stoull(line.substr(8));
  }
  // A compaction in progress holds the new generation's .tmp files open and
  // mapped for a while: not counted (they come and go with it).
  std::error_code ec;
  for (auto it = fs::directory_iterator(base + "/fd", ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    std::error_code lec;
    std::string target = fs::read_symlink(it->path(), lec).string();
    if (target.find(".tmp") == std::string::npos) ++s.fds;
  }
  std::ifstream maps(base + "/maps");
  while (std::getline(maps, line)) s.maps += line.find(".tmp") == std::string::npos;
  return s;
}

struct Row {
  double t = 0;
  double ops_per_s = 0;
  double rest_per_s = 0;
  std::vector<ProcSample> procs;
  std::uint64_t files_bytes = 0, data_bytes = 0;
  lilcache::Stats stats{};
};

double mib(std::uint64_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  CLI::App app("lilcache-soak: a mixed load for a bounded time; resources sampled and judged flat");
  app.add_option("--processes", cfg.processes, "worker processes")->check(CLI::Range(1u, 64u));
  app.add_option("--threads", cfg.threads, "threads per worker")->check(CLI::Range(1u, 64u));
  app.add_option("--seconds", cfg.seconds, "duration")->check(CLI::PositiveNumber);
  app.add_option("--interval", cfg.interval, "seconds between samples")->check(CLI::PositiveNumber);
  app.add_option("--keys", cfg.keys, "key space (bounds the live data)")
      ->check(CLI::Range(1u, 100'000'000u));
  app.add_option("--max-value", cfg.max_value, "largest value, bytes")
      ->check(CLI::Range(32u, 1u << 26));
  app.add_option("--rest-servers", cfg.rest_servers,
                 "processes serving the cache over HTTP (0 = none)")
      ->check(CLI::Range(0u, kMaxServers));
  app.add_option("--rest-clients", cfg.rest_clients, "HTTP client connections (one process)")
      ->check(CLI::Range(1u, 256u));
  app.add_option("--root", cfg.root,
                 "directory for the cache (default: a new temporary one, removed)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  bool temporary = cfg.root.empty();
  std::optional<lilcache::test::TempDir> tmp;
  if (temporary) {
    tmp.emplace();
    cfg.root = tmp->path();
  }
  fs::create_directories(cfg.root + "/cache");
  g_shared = static_cast<Shared*>(
      mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  std::memset(g_shared, 0, sizeof(Shared));
  // Every process of the soak: the library's workers, the REST servers and
  // the REST client process.
  std::vector<pid_t> pids;
  std::vector<std::string> roles;
  auto spawn = [&](const std::string& role, const std::function<void()>& body) {
    std::fflush(nullptr);
    const std::size_t index = pids.size();
    pid_t pid = fork();
    if (pid == 0) {
      int rc = 0;
      std::atomic<bool> done{false};
      std::thread publisher([index, &done] { publish_heap(index, done); });
      try {
        body();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "lilcache-soak %s: %s\n", role.c_str(), e.what());
        rc = 1;
      }
      done = true;
      publisher.join();
      std::fflush(nullptr);
      _exit(rc);
    }
    pids.push_back(pid);
    roles.push_back(role);
  };
  for (std::uint32_t p = 0; p < cfg.processes; ++p) {
    spawn("worker " + std::to_string(p), [&, p] { worker(cfg, p); });
  }
  for (std::uint32_t i = 0; i < cfg.rest_servers; ++i) {
    spawn("REST server " + std::to_string(i), [&, i] { rest_server(cfg, i); });
  }
  if (cfg.rest_servers != 0) spawn("REST clients", [&] { rest_clients(cfg); });
  // This process watches through a handle of its own (stats only).
  lilcache::Cache watcher = lilcache::Cache::open("soak", {.root = cfg.root + "/cache"});
  std::printf("%8s %10s %8s %9s %9s %9s %9s %6s %6s %10s %10s %5s %8s %9s\n", "t(s)", "lib ops/s",
              "rest/s", "rss(MiB)", "rssmax", "anon(MiB)", "anonmax", "fds", "maps", "files(MiB)",
              "log(MiB)", "gen", "keys", "live(MiB)");
  std::vector<Row> rows;
  const auto t0 = Clock::now();
  std::uint64_t last_ops = 0, last_rest = 0;
  auto last_t = t0;
  const std::size_t samples =
      std::max<std::size_t>(1, static_cast<std::size_t>(cfg.seconds / cfg.interval));
  for (std::size_t i = 1; i <= samples; ++i) {
    std::this_thread::sleep_until(
        t0 + std::chrono::milliseconds(static_cast<std::int64_t>(i * cfg.interval * 1000)));
    Row r;
    auto now = Clock::now();
    r.t = std::chrono::duration<double>(now - t0).count();
    std::uint64_t ops = A(g_shared->ops).load();
    const double dt = std::chrono::duration<double>(now - last_t).count();
    r.ops_per_s = static_cast<double>(ops - last_ops) / dt;
    std::uint64_t rest = A(g_shared->rest_ops).load();
    r.rest_per_s = static_cast<double>(rest - last_rest) / dt;
    last_ops = ops;
    last_rest = rest;
    last_t = now;
    for (std::size_t p = 0; p < pids.size(); ++p) r.procs.push_back(sample_process(pids[p], p));
    for (const auto& e : fs::directory_iterator(cfg.root + "/cache")) {
      if (!e.is_regular_file()) continue;
      r.files_bytes += e.file_size();
      if (e.path().extension() == ".data") r.data_bytes += e.file_size();
    }
    r.stats = watcher.stats();
    std::uint64_t rss = 0, rss_max = 0, anon = 0, anon_max = 0, fds = 0, maps = 0;
    for (const auto& s : r.procs) {
      rss += s.rss_kb;
      anon += s.anon_kb;
      rss_max = std::max(rss_max, s.rss_kb);
      anon_max = std::max(anon_max, s.anon_kb);
      fds += s.fds;
      maps += s.maps;
    }
    std::printf(
        "%8.0f %10.0f %8.0f %9.1f %9.1f %9.1f %9.1f %6llu %6llu %10.1f %10.1f %5llu %8llu %9.2f\n",
        r.t, r.ops_per_s, r.rest_per_s, rss / 1024.0, rss_max / 1024.0, anon / 1024.0,
        anon_max / 1024.0, static_cast<unsigned long long>(fds),
        static_cast<unsigned long long>(maps), mib(r.files_bytes), mib(r.data_bytes),
        static_cast<unsigned long long>(r.stats.generation),
        static_cast<unsigned long long>(r.stats.keys), mib(r.stats.bytes_live));
    std::fflush(stdout);
    rows.push_back(std::move(r));
  }
  A(g_shared->stop).store(1);
  int worker_failures = 0;
  for (pid_t pid : pids) {
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++worker_failures;
  }
  // The verdict: floors and peaks of the first and last thirds after the
  // warm-up.
  std::vector<std::string> problems;
  const std::size_t warm = rows.size() / 4;
  const std::size_t n = rows.size() - warm;
  if (n < 6) {
    problems.push_back(
        "too few samples to judge (need 8; use a longer --seconds or a shorter "
        "--interval)");
  } else {
    const std::size_t third = n / 3;
    auto floor_of = [&](std::size_t from, auto field) {
      std::uint64_t m = UINT64_MAX;
      for (std::size_t i = from; i < from + third; ++i) m = std::min(m, field(rows[i]));
      return m;
    };
    const std::size_t a = warm, b = rows.size() - third;
    for (std::size_t p = 0; p < pids.size(); ++p) {
      const std::string& who = roles[p];
      auto fds = [p](const Row& r) { return r.procs[p].fds; };
      auto maps = [p](const Row& r) { return r.procs[p].maps; };
      auto anon = [p](const Row& r) { return r.procs[p].anon_kb; };
      auto heap = [p](const Row& r) { return r.procs[p].heap_kb; };
      auto gens = [p](const Row& r) { return r.procs[p].generations; };
      if (floor_of(b, fds) > floor_of(a, fds) + 4) {
        problems.push_back(who + ": the floor of open descriptors rose from " +
                           std::to_string(floor_of(a, fds)) + " to " +
                           std::to_string(floor_of(b, fds)));
      }
      if (floor_of(b, maps) > floor_of(a, maps) + 8) {
        problems.push_back(who + ": the floor of mappings rose from " +
                           std::to_string(floor_of(a, maps)) + " to " +
                           std::to_string(floor_of(b, maps)));
      }
      if (floor_of(b, anon) > floor_of(a, anon) * 5 / 4 + 16 * 1024) {
        problems.push_back(who + ": the floor of RssAnon rose from " +
                           std::to_string(floor_of(a, anon)) + " kB to " +
                           std::to_string(floor_of(b, anon)) + " kB");
      }
      if (floor_of(b, heap) > floor_of(a, heap) * 11 / 10 + 2 * 1024) {
        problems.push_back(who + ": the floor of the heap in use rose from " +
                           std::to_string(floor_of(a, heap)) + " kB to " +
                           std::to_string(floor_of(b, heap)) + " kB");
      }
      if (floor_of(b, gens) > floor_of(a, gens) + 2) {
        problems.push_back(who + ": the floor of Generation objects rose from " +
                           std::to_string(floor_of(a, gens)) + " to " +
                           std::to_string(floor_of(b, gens)));
      }
    }
    std::uint64_t first = 0, last = 0;
    for (std::size_t i = a; i < a + third; ++i) first = std::max(first, rows[i].files_bytes);
    for (std::size_t i = b; i < rows.size(); ++i) last = std::max(last, rows[i].files_bytes);
    if (last > 2 * first) {
      problems.push_back("the cache files' peak grew from " + std::to_string(first) + " bytes to " +
                         std::to_string(last));
    }
  }
  if (rows.size() > warm) {
    std::printf("%-16s %22s %22s %22s %10s %14s %14s\n", "process", "rss MiB (warm -> end)",
                "anon MiB (warm -> end)", "heap MiB (warm -> end)", "gen objs", "fds", "maps");
    for (std::size_t p = 0; p < pids.size(); ++p) {
      const ProcSample& x = rows[warm].procs[p];
      const ProcSample& y = rows.back().procs[p];
      std::printf(
          "%-16s %10.1f -> %8.1f %10.1f -> %8.1f %10.2f -> %8.2f %4llu -> %3llu %6llu -> %4llu "
          "%6llu -> %4llu\n",
          roles[p].c_str(), x.rss_kb / 1024.0, y.rss_kb / 1024.0, x.anon_kb / 1024.0,
          y.anon_kb / 1024.0, x.heap_kb / 1024.0, y.heap_kb / 1024.0,
          static_cast<unsigned long long>(x.generations),
          static_cast<unsigned long long>(y.generations), static_cast<unsigned long long>(x.fds),
          static_cast<unsigned long long>(y.fds), static_cast<unsigned long long>(x.maps),
          static_cast<unsigned long long>(y.maps));
    }
  }
  std::uint64_t bad = A(g_shared->bad_values).load(), errors = A(g_shared->errors).load();
  if (bad != 0) problems.push_back(std::to_string(bad) + " bad values read");
  if (errors != 0) problems.push_back(std::to_string(errors) + " Errors from operations");
  if (worker_failures != 0)
    problems.push_back(std::to_string(worker_failures) + " processes failed");
  std::uint64_t rest_failures = A(g_shared->rest_failures).load();
  if (rest_failures != 0) {
    problems.push_back(std::to_string(rest_failures) +
                       " REST requests failed (lost connection or "
                       "unexpected status)");
  }
  std::printf(
      "soak: %u processes x %u threads + %u REST servers with %u connections, %.0f s, %llu "
      "library ops, %llu REST requests, %zu samples: %s\n",
      cfg.processes, cfg.threads, cfg.rest_servers, cfg.rest_servers ? cfg.rest_clients : 0,
      rows.empty() ? 0.0 : rows.back().t, static_cast<unsigned long long>(A(g_shared->ops).load()),
      static_cast<unsigned long long>(A(g_shared->rest_ops).load()), rows.size(),
      problems.empty()
          ? "descriptors, mappings, RssAnon, heap, Generation objects and file sizes stayed flat "
            "=> PASS"
          : "NOT FLAT => FAIL");
  for (const auto& p : problems) std::printf("  %s\n", p.c_str());
  return problems.empty() ? 0 : 1;
}
