#include "threads_bench.h"

#include <lilcache/lilcache.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "os.h"
#include "report.h"
#include "workload.h"

namespace bench {
namespace {

constexpr auto kOpenTimeout = std::chrono::seconds(60);
constexpr auto kFinishSlack = std::chrono::seconds(30);

// What one thread (or process) did.
struct GetReport {
  std::uint64_t ops = 0;
  std::uint64_t nanos = 0;
  std::uint64_t cpu_nanos = 0;  // of the thread that ran the gets
  std::uint64_t wrong = 0;
  char error[256] = {};
};

std::uint64_t thread_cpu_nanos() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

lilcache::Options options_at(const std::filesystem::path& root) {
  lilcache::Options options;
  options.root = root.string();
  return options;
}

// Random gets of existing keys into one reused buffer for `seconds`; each
// value's length and key prefix are checked (the values start with their key).
GetReport get_loop(lilcache::Cache& cache, const std::vector<std::string>& keys,
                   std::size_t value_size, std::uint64_t seed, double seconds) {
  GetReport report;
  Rng rng(seed);
  std::string buffer;
  const std::uint64_t cpu_start = thread_cpu_nanos();
  const auto start = Clock::now();
  const auto end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  auto now = start;
  while (now < end) {
    for (int i = 0; i < 1024; ++i) {
      const std::string& key = keys[rng.next() % keys.size()];
      if (!cache.get(key, buffer) || buffer.size() != value_size ||
          std::memcmp(buffer.data(), key.data(), key.size()) != 0) {
        ++report.wrong;
      }
    }
    report.ops += 1024;
    now = Clock::now();
  }
  report.nanos = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(now - start).count());
  report.cpu_nanos = thread_cpu_nanos() - cpu_start;
  return report;
}

double per_second(const GetReport& r) {
  return r.nanos == 0 ? 0 : static_cast<double>(r.ops) * 1e9 / static_cast<double>(r.nanos);
}

// CPU nanoseconds per get of the threads that ran them: what a get costs
// the core it runs on, whatever else the machine runs (a line bouncing
// between cores makes it grow with the number of threads).
double cpu_ns_per_get(const std::vector<GetReport>& reports) {
  std::uint64_t ops = 0, cpu = 0;
  for (const GetReport& r : reports) {
    ops += r.ops;
    cpu += r.cpu_nanos;
  }
  return ops == 0 ? 0 : static_cast<double>(cpu) / static_cast<double>(ops);
}

struct Result {
  double gets_per_second = 0;
  double cpu_ns_per_get = 0;
  std::uint64_t wrong = 0;
};

// n threads of this process on one shared handle, started together.
Result in_threads(lilcache::Cache& cache, const std::vector<std::string>& keys,
                  const ThreadsConfig& config, int n, std::uint64_t seed) {
  std::vector<GetReport> reports(static_cast<std::size_t>(n));
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < n; ++t) {
    threads.emplace_back([&, t] {
      // Relaxed/acquire: only a start line; the reports are read after join().
      ready.fetch_add(1, std::memory_order_relaxed);
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      reports[static_cast<std::size_t>(t)] = get_loop(
          cache, keys, config.value_size, seed + static_cast<std::uint64_t>(t), config.seconds);
    });
  }
  while (ready.load(std::memory_order_relaxed) < n) std::this_thread::yield();
  go.store(true, std::memory_order_release);
  for (auto& th : threads) th.join();
  Result result;
  for (const GetReport& r : reports) {
    result.gets_per_second += per_second(r);
    result.wrong += r.wrong;
  }
  result.cpu_ns_per_get = cpu_ns_per_get(reports);
  return result;
}

// n forked processes, each with a handle of its own, started together.
Result in_processes(const std::filesystem::path& root, const std::vector<std::string>& keys,
                    const ThreadsConfig& config, int n, std::uint64_t seed) {
  Pipe ready = Pipe::make(), go = Pipe::make(), reports_pipe = Pipe::make();
  std::vector<Child> children;
  for (int i = 0; i < n; ++i) {
    children.push_back(Child::fork([&, i] {
      ready.read.reset();
      go.write.reset();
      reports_pipe.read.reset();
      GetReport report;
      std::optional<lilcache::Cache> cache;
      try {
        cache.emplace(lilcache::Cache::open("bench", options_at(root)));
      } catch (const std::exception& e) {
        fmt::format_to_n(report.error, sizeof(report.error) - 1, "open: {}", e.what());
      }
      char byte = 1;
      write_all(ready.write.get(), &byte, 1);
      read_all(go.read.get(), &byte, 1);  // end of file: the start signal
      if (cache) {
        report = get_loop(*cache, keys, config.value_size, seed + static_cast<std::uint64_t>(i),
                          config.seconds);
      }
      write_all(reports_pipe.write.get(), &report, sizeof(report));
      return 0;
    }));
  }
  ready.write.reset();
  go.read.reset();
  reports_pipe.write.reset();
  std::vector<char> bytes(static_cast<std::size_t>(n));
  read_from_children(ready.read.get(), bytes.data(), bytes.size(), Clock::now() + kOpenTimeout,
                     children);
  go.write.reset();  // go
  std::vector<GetReport> reports(static_cast<std::size_t>(n));
  const auto finish =
      Clock::now() +
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(config.seconds)) +
      kFinishSlack;
  read_from_children(reports_pipe.read.get(), reports.data(), reports.size() * sizeof(GetReport),
                     finish, children);
  for (std::size_t i = 0; i < children.size(); ++i) {
    std::string how = children[i].wait();
    if (!how.empty()) throw std::runtime_error(fmt::format("get process {} {}", i, how));
  }
  Result result;
  for (const GetReport& r : reports) {
    if (r.error[0] != 0) throw std::runtime_error(fmt::format("get process: {}", r.error));
    result.gets_per_second += per_second(r);
    result.wrong += r.wrong;
  }
  result.cpu_ns_per_get = cpu_ns_per_get(reports);
  return result;
}

}  // namespace

int run_threads(const ThreadsConfig& config) {
  fmt::print(
      "\n## Gets from threads and processes (lilcache, {} keys, {} values)\n\n"
      "Random gets into a reused std::string (`get(key, std::string&)`) for {} s: 1 thread; 2 "
      "threads of one process sharing one handle; 2 processes with a handle each. Aggregate "
      "gets/s, and CPU time per get of the threads that ran them (what a get costs its core, "
      "whatever else runs: a cache line bouncing between cores makes it grow with 2 threads); "
      "medians of {} interleaved repetitions (the order of the three rotates). Load average "
      "at the start: {}.\n\n",
      grouped(static_cast<double>(config.keys)), size_text(config.value_size), config.seconds,
      config.reps, load_average());
  std::fflush(stdout);
  TempDir dir("threads");
  std::vector<std::string> keys = make_keys(config.keys);
  auto cache = lilcache::Cache::open("bench", options_at(dir.path()));
  {
    Values values(config.value_size);
    for (std::size_t i = 0; i < keys.size(); ++i) cache.set(keys[i], values.make(keys[i], 1));
  }
  const char* const names[] = {"1 thread", "2 threads, 1 process", "2 processes"};
  std::vector<double> samples[3], cpu[3];
  std::uint64_t wrong = 0;
  int failures = 0;
  for (int rep = 0; rep < config.reps; ++rep) {
    for (int k = 0; k < 3; ++k) {
      const int mode = (k + rep) % 3;
      const std::uint64_t seed = static_cast<std::uint64_t>(rep * 16 + mode * 4 + 1);
      throw_if_interrupted();
      Result r;
      try {
        r = mode == 0   ? in_threads(cache, keys, config, 1, seed)
            : mode == 1 ? in_threads(cache, keys, config, 2, seed)
                        : in_processes(dir.path(), keys, config, 2, seed);
      } catch (const std::exception& e) {
        fmt::print("ERROR: {}: {}\n", names[mode], e.what());
        ++failures;
        continue;
      }
      samples[mode].push_back(r.gets_per_second);
      cpu[mode].push_back(r.cpu_ns_per_get);
      wrong += r.wrong;
      fmt::print(stderr, "[threads rep {}/{}] {}: {} gets/s, {:.0f} CPU ns/get\n", rep + 1,
                 config.reps, names[mode], si(r.gets_per_second), r.cpu_ns_per_get);
    }
  }
  print_header("gets of", {"gets/s (median)", "every repetition", "CPU ns per get (median)"});
  std::optional<double> med[3];
  for (int mode = 0; mode < 3; ++mode) {
    med[mode] = median(samples[mode]);
    std::string all;
    for (double s : samples[mode]) all += (all.empty() ? "" : ", ") + si(s);
    print_row(names[mode], {cell(med[mode], si), all, cell(median(cpu[mode]), grouped)});
  }
  fmt::print("\n");
  if (med[0] && med[1] && *med[0] > 0) {
    const double r = *med[1] / *med[0];
    fmt::print("- 2 threads / 1 thread >= 1.8x: {} ({})\n", r >= 1.8 ? "MET" : "MISSED",
               ratio_text(r));
  }
  if (med[1] && med[2] && *med[2] > 0) {
    const double r = *med[1] / *med[2];
    fmt::print("- 2 threads / 2 processes equal within 10%: {} ({})\n",
               r >= 0.9 && r <= 1.1 ? "MET" : "MISSED", ratio_text(r));
  }
  fmt::print(
      "- load average at the end: {} (above 2 on this 2-core machine, two threads cannot "
      "both run all the time, and the gets/s ratios say little)\n",
      load_average());
  if (wrong > 0) {
    fmt::print("\nERROR: {} gets returned a wrong value\n", wrong);
    ++failures;
  }
  std::fflush(stdout);
  return failures;
}

}  // namespace bench
