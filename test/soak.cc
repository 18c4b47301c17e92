// lilcache-soak: a bounded soak. P worker processes x T threads run a mixed
// load (get, set, set with TTL, pop, erase, now and then a purge; periodic
// snapshots) on one cache with a bounded key space for --seconds, while this
// process samples, every --interval seconds, for every worker: RSS (VmRSS
// and its anonymous part RssAnon, from /proc/PID/status), open descriptors
// (/proc/PID/fd), mappings (/proc/PID/maps lines) - both without the .tmp
// files of a compaction in progress; and the sizes of the
// cache's files. It prints them as a table, then judges whether they stayed
// flat after a warm-up (the first quarter of the run). Compactions in flight
// add descriptors and mappings for a moment, and the log's file grows and
// shrinks with each generation, so the verdict compares floors and peaks of
// the first and last thirds of the rest, per worker:
//  * descriptors: the floor of the last third no higher than the first's
//    (a leak of even one descriptor per generation raises the floor);
//  * mappings: floor at most 4 higher;
//  * RssAnon (the heap): floor at most 25% + 16 MiB higher;
//  * cache files (all workers): the peak of the last third at most twice
//    the peak of the first (compaction keeps the log bounded when the live
//    data is).
// Exit status 0 if all stayed flat, 1 if not (the verdict line says which),
// 2 bad usage. Every value read is checked (make_value); a bad one also
// fails the run.
//
//   lilcache-soak --processes 4 --threads 2 --seconds 300 --interval 15
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
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "lilcache/lilcache.h"
#include "test_util.h"

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
  std::string root;
};

struct Shared {
  std::uint64_t stop;
  std::uint64_t ops;
  std::uint64_t bad_values;
  std::uint64_t errors;
};
Shared* g_shared = nullptr;

template <typename T>
std::atomic_ref<T> A(T& x) {
  return std::atomic_ref<T>(x);
}

void worker(const Config& cfg, std::uint32_t p) {
  lilcache::Cache cache =
      lilcache::Cache::open("soak", {.root = cfg.root + "/cache", .snapshot = "5s"});
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
          if (dice < 500) {
            std::optional<std::string> v = cache.get(key);
            if (v && !lilcache::test::check_value(key, *v, nullptr)) {
              A(g_shared->bad_values).fetch_add(1);
            }
          } else if (dice < 800) {
            cache.set(key,
                      lilcache::test::make_value(key, writer, ++seq, 32 + rng() % cfg.max_value));
          } else if (dice < 850) {
            cache.set(key, lilcache::test::make_value(key, writer, ++seq, 32 + rng() % 256),
                      std::chrono::milliseconds(100 + rng() % 5000));
          } else if (dice < 950) {
            std::optional<std::string> v = cache.pop(key);
            if (v && !lilcache::test::check_value(key, *v, nullptr)) {
              A(g_shared->bad_values).fetch_add(1);
            }
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

struct ProcSample {
  std::uint64_t rss_kb = 0, anon_kb = 0, fds = 0, maps = 0;
};

ProcSample sample_process(pid_t pid) {
  ProcSample s;
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
  std::vector<pid_t> pids;
  for (std::uint32_t p = 0; p < cfg.processes; ++p) {
    std::fflush(nullptr);
    pid_t pid = fork();
    if (pid == 0) {
      int rc = 0;
      try {
        worker(cfg, p);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "lilcache-soak worker %u: %s\n", p, e.what());
        rc = 1;
      }
      std::fflush(nullptr);
      _exit(rc);
    }
    pids.push_back(pid);
  }
  // This process watches through a handle of its own (stats only).
  lilcache::Cache watcher = lilcache::Cache::open("soak", {.root = cfg.root + "/cache"});
  std::printf("%8s %10s %9s %9s %9s %9s %6s %6s %10s %10s %5s %8s %9s\n", "t(s)", "ops/s",
              "rss(MiB)", "rssmax", "anon(MiB)", "anonmax", "fds", "maps", "files(MiB)", "log(MiB)",
              "gen", "keys", "live(MiB)");
  std::vector<Row> rows;
  const auto t0 = Clock::now();
  std::uint64_t last_ops = 0;
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
    r.ops_per_s =
        static_cast<double>(ops - last_ops) / std::chrono::duration<double>(now - last_t).count();
    last_ops = ops;
    last_t = now;
    for (pid_t pid : pids) r.procs.push_back(sample_process(pid));
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
        "%8.0f %10.0f %9.1f %9.1f %9.1f %9.1f %6llu %6llu %10.1f %10.1f %5llu %8llu %9.2f\n", r.t,
        r.ops_per_s, rss / 1024.0, rss_max / 1024.0, anon / 1024.0, anon_max / 1024.0,
        static_cast<unsigned long long>(fds), static_cast<unsigned long long>(maps),
        mib(r.files_bytes), mib(r.data_bytes), static_cast<unsigned long long>(r.stats.generation),
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
      std::string who = "worker " + std::to_string(p);
      auto fds = [p](const Row& r) { return r.procs[p].fds; };
      auto maps = [p](const Row& r) { return r.procs[p].maps; };
      auto anon = [p](const Row& r) { return r.procs[p].anon_kb; };
      if (floor_of(b, fds) > floor_of(a, fds)) {
        problems.push_back(who + ": the floor of open descriptors rose from " +
                           std::to_string(floor_of(a, fds)) + " to " +
                           std::to_string(floor_of(b, fds)));
      }
      if (floor_of(b, maps) > floor_of(a, maps) + 4) {
        problems.push_back(who + ": the floor of mappings rose from " +
                           std::to_string(floor_of(a, maps)) + " to " +
                           std::to_string(floor_of(b, maps)));
      }
      if (floor_of(b, anon) > floor_of(a, anon) * 5 / 4 + 16 * 1024) {
        problems.push_back(who + ": the floor of RssAnon rose from " +
                           std::to_string(floor_of(a, anon)) + " kB to " +
                           std::to_string(floor_of(b, anon)) + " kB");
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
  std::uint64_t bad = A(g_shared->bad_values).load(), errors = A(g_shared->errors).load();
  if (bad != 0) problems.push_back(std::to_string(bad) + " bad values read");
  if (errors != 0) problems.push_back(std::to_string(errors) + " Errors from operations");
  if (worker_failures != 0) problems.push_back(std::to_string(worker_failures) + " workers failed");
  std::printf("soak: %u processes x %u threads, %.0f s, %llu ops, %zu samples: %s\n", cfg.processes,
              cfg.threads, rows.empty() ? 0.0 : rows.back().t,
              static_cast<unsigned long long>(A(g_shared->ops).load()), rows.size(),
              problems.empty() ? "descriptors, mappings, RssAnon and file sizes stayed flat => PASS"
                               : "NOT FLAT => FAIL");
  for (const auto& p : problems) std::printf("  %s\n", p.c_str());
  return problems.empty() ? 0 : 1;
}
