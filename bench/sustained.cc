#include "sustained.h"

#include <fmt/core.h>
#include <lilcache/lilcache.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "os.h"
#include "report.h"
#include "store.h"
#include "workload.h"

namespace bench {
namespace {

// lilcache's data file is sampled (stats(): file and live bytes) every this
// many sets, outside the timing.
constexpr std::size_t kSampleEvery = 50'000;

struct Run {
  double ns_per_set = 0;
  double p99_ns = 0;
  double max_ns = 0;
  double max_file_ratio = 0;  // lilcache: the largest data file / live data sampled
  std::uint64_t compactions = 0;
};

// One store under test: sets, and (lilcache only) its file sizes.
class Target {
 public:
  virtual ~Target() = default;
  virtual void set(std::string_view key, std::string_view value) = 0;
  virtual std::optional<std::string> get(std::string_view key) = 0;
  // data file / live data now; 0 if the store does not say.
  virtual double file_ratio() { return 0; }
  virtual std::uint64_t compactions() { return 0; }
};

class LilcacheTarget : public Target {
 public:
  LilcacheTarget()
      : dir_("sustained"), cache_(lilcache::Cache::open("bench", {.root = dir_.path()})) {}
  void set(std::string_view key, std::string_view value) override { cache_.set(key, value); }
  std::optional<std::string> get(std::string_view key) override { return cache_.get(key); }
  double file_ratio() override {
    lilcache::Stats st = cache_.stats();
    return st.bytes_live == 0
               ? 0
               : static_cast<double>(st.bytes_file) / static_cast<double>(st.bytes_live);
  }
  std::uint64_t compactions() override { return cache_.stats().compactions; }

 private:
  TempDir dir_;
  lilcache::Cache cache_;
};

class LmdbTarget : public Target {
 public:
  explicit LmdbTarget(const StoreShape& shape)
      : store_(make_lmdb_store(shape)), handle_(store_->open()) {}
  void set(std::string_view key, std::string_view value) override { handle_->set(key, value); }
  std::optional<std::string> get(std::string_view key) override { return handle_->get(key); }

 private:
  std::unique_ptr<Store> store_;
  std::unique_ptr<Handle> handle_;
};

// Loads every key at version 1 (untimed), then runs config.ops random
// overwrites, each timed. Checks every key's last version at the end.
Run overwrite(Target& t, const SustainedConfig& config, std::size_t value_size,
              std::uint64_t seed) {
  const std::vector<std::string> keys = make_keys(config.keys);
  Values values(value_size);
  std::vector<std::uint32_t> version(keys.size(), 1);
  for (std::size_t i = 0; i < keys.size(); ++i) t.set(keys[i], values.make(keys[i], 1));
  const std::uint64_t compactions0 = t.compactions();
  std::vector<std::uint32_t> lat(config.ops);
  Rng rng(seed);
  Run run;
  double timed_ns = 0;
  for (std::size_t done = 0; done < config.ops;) {
    const std::size_t batch = std::min(kSampleEvery, config.ops - done);
    const auto t0 = Clock::now();
    for (std::size_t i = 0; i < batch; ++i) {
      const std::size_t k = rng.next() % keys.size();
      const std::string_view v = values.make(keys[k], ++version[k]);
      const auto a = Clock::now();
      t.set(keys[k], v);
      lat[done + i] = static_cast<std::uint32_t>(std::min<std::int64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - a).count(),
          UINT32_MAX));
    }
    timed_ns += std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
    done += batch;
    run.max_file_ratio = std::max(run.max_file_ratio, t.file_ratio());
    throw_if_interrupted();
  }
  run.ns_per_set = timed_ns / static_cast<double>(config.ops);
  run.compactions = t.compactions() - compactions0;
  std::sort(lat.begin(), lat.end());
  run.p99_ns = lat[lat.size() * 99 / 100];
  run.max_ns = lat.back();
  for (std::size_t k = 0; k < keys.size(); ++k) {
    const std::optional<std::string> got = t.get(keys[k]);
    const std::string why =
        values.diagnose(keys[k], got, Values::tag_of(values.make(keys[k], version[k])));
    if (!why.empty()) throw std::runtime_error("key " + keys[k] + ": " + why);
  }
  return run;
}

std::string met(bool ok) { return ok ? "MET" : "MISSED"; }

}  // namespace

int run_sustained(const SustainedConfig& config) {
  int failures = 0;
  fmt::print(
      "\n## Sustained overwrites (issue 16, target 1)\n\n"
      "{} random overwrites of {} keys per run, default options, every automatic compaction "
      "inside the timing (each set timed; lilcache's file sampled every {} sets, outside it); "
      "LMDB as in the get/set table. Medians of {} interleaved repetitions.\n\n",
      grouped(static_cast<double>(config.ops)), grouped(static_cast<double>(config.keys)),
      grouped(static_cast<double>(kSampleEvery)), config.reps);
  fmt::print(
      "| value | LMDB ns/set | lilcache ns/set | ratio | compactions | max file/live | "
      "lilcache p99 | lilcache max |\n|---|--:|--:|--:|--:|--:|--:|--:|\n");
  std::vector<std::string> targets;
  for (std::size_t value_size : {std::size_t{100}, std::size_t{1024}}) {
    std::vector<double> lmdb_ns, lil_ns, p99, max_ns, ratio, compactions;
    try {
      for (int rep = 0; rep < config.reps; ++rep) {
        {
          LmdbTarget lmdb({config.keys, value_size});
          lmdb_ns.push_back(overwrite(lmdb, config, value_size, 1000 + rep).ns_per_set);
        }
        LilcacheTarget lil;
        const Run r = overwrite(lil, config, value_size, 1000 + rep);
        lil_ns.push_back(r.ns_per_set);
        p99.push_back(r.p99_ns);
        max_ns.push_back(r.max_ns);
        ratio.push_back(r.max_file_ratio);
        compactions.push_back(static_cast<double>(r.compactions));
      }
    } catch (const Unavailable& e) {
      fmt::print("| {} | skipped: {} |\n", size_text(value_size), e.what());
      continue;
    } catch (const std::exception& e) {
      fmt::print("\nERROR: sustained overwrites of {}: {}\n", size_text(value_size), e.what());
      ++failures;
      continue;
    }
    const double l = *median(lmdb_ns), c = *median(lil_ns);
    // The worst repetition for the bounds (a bound holds in every run or not).
    const double worst_ratio = *std::max_element(ratio.begin(), ratio.end());
    const double worst_max = *std::max_element(max_ns.begin(), max_ns.end());
    const double p = *median(p99);
    fmt::print("| {} | {} | {} | {} | {} | {:.2f}x | {} us | {} ms |\n", size_text(value_size),
               grouped(l), grouped(c), ratio_text(c / l), grouped(*median(compactions)),
               worst_ratio, fmt::format("{:.1f}", p / 1000),
               fmt::format("{:.2f}", worst_max / 1e6));
    const std::string v = size_text(value_size);
    targets.push_back(fmt::format("- {}: sustained set <= 0.5x LMDB: {} ({})", v, met(c <= 0.5 * l),
                                  ratio_text(c / l)));
    targets.push_back(fmt::format("- {}: data file <= 2x live throughout: {} (max {:.2f}x)", v,
                                  met(worst_ratio <= 2.0), worst_ratio));
    targets.push_back(
        fmt::format("- {}: writer p99 <= 20 us: {} ({:.1f} us)", v, met(p <= 20'000), p / 1000));
    targets.push_back(fmt::format("- {}: writer max <= 5 ms: {} ({:.2f} ms, worst run)", v,
                                  met(worst_max <= 5e6), worst_max / 1e6));
  }
  fmt::print("\nTargets:\n");
  for (const std::string& line : targets) fmt::print("{}\n", line);
  return failures;
}

}  // namespace bench
