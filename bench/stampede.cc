#include "stampede.h"

#include <lilcache/lilcache.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "os.h"
#include "report.h"

namespace bench {
namespace {

constexpr auto kOpenTimeout = std::chrono::seconds(60);
// Far above a stampede's length; get_or_set's own timeout is 30 s.
constexpr auto kFinishTimeout = std::chrono::seconds(120);

enum class Pattern { kGetOrSet, kGetThenSet };

const char* pattern_text(Pattern pattern) {
  return pattern == Pattern::kGetOrSet ? "get_or_set" : "get, then compute and set if absent";
}

// What each process reports, in one write (< PIPE_BUF).
struct StampedeReport {
  std::uint64_t computes = 0;
  std::uint64_t wrong = 0;
  std::int64_t last_done_ns = 0;  // steady clock (CLOCK_MONOTONIC, one for all processes)
  char error[512] = {};
};
static_assert(sizeof(StampedeReport) < 4096);

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

std::string value_for(const std::string& key) {
  std::string value = "the value of " + key + " ";
  value.resize(100, '.');
  return value;
}

// Blocks threads until open() (the start of the stampede in this process).
class Gate {
 public:
  void wait() {
    std::unique_lock lock(mutex_);
    ++waiting_;
    changed_.notify_all();
    changed_.wait(lock, [&] { return open_; });
  }
  void await_waiting(int n) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return waiting_ == n; });
  }
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    changed_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  int waiting_ = 0;
  bool open_ = false;
};

// One process of the stampede: `threads` threads that each ask for key once.
StampedeReport stampede_process(const StampedeConfig& config, const std::string& root,
                                const std::string& key, Pattern pattern, int ready_fd, int go_fd) {
  StampedeReport report;
  std::optional<lilcache::Cache> cache;
  try {
    lilcache::Options options;
    options.root = root;
    cache.emplace(lilcache::Cache::open("stampede", options));
  } catch (const std::exception& e) {
    std::snprintf(report.error, sizeof report.error, "open: %s", e.what());
  }
  std::atomic<std::uint64_t> computes{0}, wrong{0};
  std::atomic<std::int64_t> last_done{0};
  std::mutex error_mutex;
  std::string error;
  const std::string expected = value_for(key);
  auto compute = [&] {
    computes.fetch_add(1);
    std::this_thread::sleep_for(config.compute);
    return expected;
  };
  Gate gate;
  std::vector<std::thread> threads;
  for (int t = 0; t < config.threads && cache; ++t) {
    threads.emplace_back([&] {
      gate.wait();
      try {
        std::string value;
        if (pattern == Pattern::kGetOrSet) {
          value = cache->get_or_set(key, compute);
        } else if (std::optional<std::string> got = cache->get(key)) {
          value = *got;
        } else {
          value = compute();
          cache->set(key, value);
        }
        std::int64_t done = now_ns();
        std::int64_t seen = last_done.load();
        while (seen < done && !last_done.compare_exchange_weak(seen, done)) {
        }
        if (value != expected) wrong.fetch_add(1);
      } catch (const std::exception& e) {
        std::lock_guard lock(error_mutex);
        if (error.empty()) error = e.what();
      }
    });
  }
  if (cache) gate.await_waiting(config.threads);
  char byte = 1;
  write_all(ready_fd, &byte, 1);
  read_all(go_fd, &byte, 1);  // end of file: go
  gate.open();
  for (std::thread& thread : threads) thread.join();
  report.computes = computes.load();
  report.wrong = wrong.load();
  report.last_done_ns = last_done.load();
  if (!error.empty()) std::snprintf(report.error, sizeof report.error, "%s", error.c_str());
  return report;
}

struct Sample {
  std::uint64_t computes = 0;
  std::uint64_t wrong = 0;
  double ms = 0;  // from the start until the last caller had the value
};

Sample stampede(const StampedeConfig& config, const std::string& root, const std::string& key,
                Pattern pattern) {
  Pipe ready = Pipe::make(), go = Pipe::make(), reports = Pipe::make();
  std::vector<Child> children;
  for (int i = 0; i < config.processes; ++i) {
    children.push_back(Child::fork([&] {
      ready.read.reset();
      go.write.reset();
      reports.read.reset();
      StampedeReport report =
          stampede_process(config, root, key, pattern, ready.write.get(), go.read.get());
      write_all(reports.write.get(), &report, sizeof report);
      return 0;
    }));
  }
  ready.write.reset();
  go.read.reset();
  reports.write.reset();
  std::vector<char> bytes(static_cast<std::size_t>(config.processes));
  read_from_children(ready.read.get(), bytes.data(), bytes.size(), Clock::now() + kOpenTimeout,
                     children);
  std::int64_t start = now_ns();
  go.write.reset();
  std::vector<StampedeReport> out(static_cast<std::size_t>(config.processes));
  read_from_children(reports.read.get(), out.data(), out.size() * sizeof(StampedeReport),
                     Clock::now() + kFinishTimeout, children);
  for (std::size_t i = 0; i < children.size(); ++i) {
    std::string how = children[i].wait();
    if (!how.empty()) throw std::runtime_error(fmt::format("stampede process {} {}", i, how));
  }
  Sample sample;
  std::int64_t last = start;
  for (const StampedeReport& report : out) {
    if (report.error[0] != '\0') throw std::runtime_error(report.error);
    sample.computes += report.computes;
    sample.wrong += report.wrong;
    last = std::max(last, report.last_done_ns);
  }
  sample.ms = static_cast<double>(last - start) / 1e6;
  return sample;
}

}  // namespace

int run_stampede(const StampedeConfig& config) {
  const int callers = config.processes * config.threads;
  TempDir dir("stampede");
  std::vector<Pattern> patterns{Pattern::kGetOrSet, Pattern::kGetThenSet};
  std::vector<std::vector<Sample>> samples(patterns.size());
  int failures = 0;
  std::string first_failure;
  auto fail = [&](std::string what) {
    if (failures++ == 0) first_failure = std::move(what);
  };
  for (int rep = 0; rep < config.reps; ++rep) {
    for (std::size_t p = 0; p < patterns.size(); ++p) {
      std::string key = fmt::format("stampede-{}-{}", rep, p);
      Sample sample = stampede(config, dir.path().string(), key, patterns[p]);
      fmt::print(stderr, "[stampede rep {}/{}] {}: {} compute calls, {:.1f} ms\n", rep + 1,
                 config.reps, pattern_text(patterns[p]), sample.computes, sample.ms);
      if (sample.wrong > 0) {
        fail(fmt::format("{}: {} callers got a wrong value", pattern_text(patterns[p]),
                         sample.wrong));
      }
      if (patterns[p] == Pattern::kGetOrSet && sample.computes != 1) {
        fail(fmt::format("get_or_set computed {} times for {} callers (must be 1)", sample.computes,
                         callers));
      }
      samples[p].push_back(sample);
    }
  }
  fmt::print(
      "\n## get_or_set under a stampede (medians)\n\n{} callers ({} processes x {} threads, each "
      "process with its own handle) ask at once for one missing key whose computation sleeps {} "
      "ms; a fresh key per repetition. Time: from the start until the last caller has the "
      "value.\n\n",
      callers, config.processes, config.threads, config.compute.count());
  print_header("pattern", {"compute calls", "compute calls (max)", "ms until all have it"});
  for (std::size_t p = 0; p < patterns.size(); ++p) {
    std::vector<double> computes, ms;
    for (const Sample& s : samples[p]) {
      computes.push_back(static_cast<double>(s.computes));
      ms.push_back(s.ms);
    }
    auto max_computes = std::max_element(computes.begin(), computes.end());
    print_row(pattern_text(patterns[p]),
              {cell(median(computes), grouped),
               max_computes == computes.end() ? "n/a" : grouped(*max_computes),
               cell(median(ms), [](double v) { return fmt::format("{:.1f}", v); })});
  }
  if (failures > 0) fmt::print("\nERROR: stampede: {}\n", first_failure);
  std::fflush(stdout);
  return failures;
}

}  // namespace bench
