#include "ops_bench.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "os.h"
#include "report.h"
#include "workload.h"

namespace bench {
namespace {

constexpr std::array<int, 2> kProcesses{1, 4};
constexpr std::size_t kBatch = 100;
constexpr int kClockStride = 32;  // ops between clock reads
constexpr auto kOpenTimeout = std::chrono::seconds(60);
constexpr auto kFinishSlack = std::chrono::seconds(60);

bool has_ops(const Peer& peer) {
  return peer.id == "lilcache" || peer.id == "lmdb" || peer.id == "redis";
}

std::string processes_text(int processes) {
  return fmt::format("{} process{}", processes, processes == 1 ? "" : "es");
}

template <std::size_t N>
void copy_text(char (&out)[N], std::string_view text) {
  std::size_t n = std::min(text.size(), N - 1);
  std::memcpy(out, text.data(), n);
  out[n] = '\0';
}

// ---- Forked processes that run one body for a while ----------------------------

// What each forked process reports, in one write (< PIPE_BUF).
struct ProcessReport {
  std::uint64_t ops = 0;
  std::uint64_t nanos = 0;
  std::uint64_t wins = 0;   // add: new keys this process won
  std::uint64_t reach = 0;  // add: keys of the sequence it walked
  std::uint64_t checked = 0;
  std::uint64_t bad = 0;
  char error[512] = {};
  char first_bad[512] = {};

  void fail(std::string_view what) {
    if (bad++ == 0) copy_text(first_bad, what);
  }
};
static_assert(sizeof(ProcessReport) < 4096);

// Runs ops until `end` (reading the clock every kClockStride ops), filling
// report.ops and the body's own fields.
using Body =
    std::function<void(Handle& handle, int index, Clock::time_point end, ProcessReport& report)>;

// Forks `processes` processes that each open their own handle, start together
// and run body for `seconds`. Throws if one fails.
std::vector<ProcessReport> run_processes(Store& store, int processes, double seconds,
                                         const Body& body) {
  Pipe ready = Pipe::make(), go = Pipe::make(), reports = Pipe::make();
  auto child = [&](int index) {
    ready.read.reset();
    go.write.reset();
    reports.read.reset();
    ProcessReport report;
    std::unique_ptr<Handle> handle;
    try {
      handle = store.open();
    } catch (const std::exception& e) {
      copy_text(report.error, fmt::format("open: {}", e.what()));
    }
    char byte = 1;
    write_all(ready.write.get(), &byte, 1);
    read_all(go.read.get(), &byte, 1);  // end of file: the start signal
    if (handle) {
      try {
        auto start = Clock::now();
        auto end = start + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(seconds));
        body(*handle, index, end, report);
        report.nanos = static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count());
      } catch (const std::exception& e) {
        copy_text(report.error, e.what());
      } catch (const Interrupted&) {
        copy_text(report.error, "interrupted");
      }
    }
    write_all(reports.write.get(), &report, sizeof report);
    return 0;
  };
  std::vector<Child> children;
  for (int i = 0; i < processes; ++i) children.push_back(Child::fork([&, i] { return child(i); }));
  ready.write.reset();
  go.read.reset();
  reports.write.reset();
  std::vector<char> bytes(static_cast<std::size_t>(processes));
  read_from_children(ready.read.get(), bytes.data(), bytes.size(), Clock::now() + kOpenTimeout,
                     children);
  go.write.reset();
  auto finish =
      Clock::now() +
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds)) +
      kFinishSlack;
  std::vector<ProcessReport> out(static_cast<std::size_t>(processes));
  read_from_children(reports.read.get(), out.data(), out.size() * sizeof(ProcessReport), finish,
                     children);
  for (std::size_t i = 0; i < children.size(); ++i) {
    std::string how = children[i].wait();
    if (!how.empty()) throw std::runtime_error(fmt::format("process {} {}", i, how));
  }
  for (const ProcessReport& report : out) {
    if (report.error[0] != '\0') throw std::runtime_error(report.error);
  }
  return out;
}

double ops_per_second(const std::vector<ProcessReport>& reports) {
  double sum = 0;
  for (const ProcessReport& r : reports) {
    if (r.nanos > 0) sum += static_cast<double>(r.ops) * 1e9 / static_cast<double>(r.nanos);
  }
  return sum;
}

// ---- One part: a table of columns, one row per store ----------------------------

// A part's state and measurements for one store.
class Part {
 public:
  virtual ~Part() = default;
  // Untimed, once, on the fresh store.
  virtual void prepare(Store&) {}
  // One repetition: one sample per column.
  virtual std::vector<double> measure(Store& store, int rep) = 0;
  Checks checks;
};

struct PartRow {
  const Peer* peer = nullptr;
  std::unique_ptr<Store> store;
  std::unique_ptr<Part> part;
  std::vector<std::vector<double>> samples;  // per column
  std::string skipped;
  std::string error;
};

struct PartSpec {
  std::string title;
  std::string what;  // the sentence under the title
  std::vector<std::string> columns;
  bool higher_is_better;          // ops/s (true) or ns (false)
  std::string (*format)(double);  // of the medians
  std::function<std::unique_ptr<Part>(const Peer&)> make;
};

std::optional<double> median_of(const PartRow& row, std::size_t column) {
  return row.error.empty() && row.skipped.empty() ? median(row.samples[column]) : std::nullopt;
}

void print_part(const PartSpec& spec, const std::vector<PartRow>& rows) {
  fmt::print("\n## {} (medians)\n\n{}\n\n", spec.title, spec.what);
  print_header("store", spec.columns);
  for (const PartRow& row : rows) {
    std::vector<std::string> cells;
    for (std::size_t c = 0; c < spec.columns.size(); ++c) {
      cells.push_back(cell(median_of(row, c), spec.format));
    }
    if (!row.skipped.empty()) cells.assign(spec.columns.size(), "skipped");
    if (!row.error.empty()) cells.assign(spec.columns.size(), "ERROR");
    print_row(row.peer->label, cells);
  }
  for (const PartRow& row : rows) {
    if (!row.skipped.empty()) fmt::print("\n{} skipped: {}\n", row.peer->label, row.skipped);
    if (!row.error.empty()) fmt::print("\n{} ERROR: {}\n", row.peer->label, row.error);
    if (row.part && row.part->checks.bad > 0) {
      fmt::print("\nERROR: {}: {} of {} checks failed; first: {}\n", row.peer->label,
                 row.part->checks.bad, row.part->checks.gets, row.part->checks.first_bad);
    }
  }
  const PartRow* lil = nullptr;
  for (const PartRow& row : rows) {
    if (row.peer->id == "lilcache" && median_of(row, 0)) lil = &row;
  }
  if (lil == nullptr) return;
  fmt::print("\nlilcache / peer ({}):\n\n", spec.higher_is_better
                                                ? "ops/s over ops/s, higher is better"
                                                : "ns over ns, lower is better");
  print_header("peer", spec.columns);
  for (const PartRow& row : rows) {
    if (&row == lil || !median_of(row, 0)) continue;
    std::vector<std::string> cells;
    for (std::size_t c = 0; c < spec.columns.size(); ++c) {
      std::optional<double> mine = median_of(*lil, c), theirs = median_of(row, c);
      if (spec.columns[c].ends_with("speedup")) {
        cells.push_back("-");  // a ratio of ratios says little
        continue;
      }
      cells.push_back(mine && theirs && *theirs > 0 ? ratio_text(*mine / *theirs) : "n/a");
    }
    print_row(row.peer->label, cells);
  }
}

// Runs a part on every store of `peers` that has the operations: repetitions
// interleaved across stores, as the get/set tables. Returns failures.
int run_part(const PartSpec& spec, const OpsConfig& config, const std::vector<Peer>& peers) {
  std::vector<PartRow> rows;
  for (const Peer& peer : peers) {
    if (!has_ops(peer)) continue;
    PartRow& row = rows.emplace_back();
    row.peer = &peer;
    row.samples.resize(spec.columns.size());
    fmt::print(stderr, "[{}] starting {}\n", spec.title, peer.label);
    try {
      row.store = peer.create(StoreShape{config.keys, 128});
      row.part = spec.make(peer);
      row.part->prepare(*row.store);
    } catch (const Unavailable& e) {
      row.skipped = e.what();
    } catch (const std::exception& e) {
      row.error = fmt::format("while starting: {}", e.what());
    }
  }
  for (int rep = 0; rep < config.reps; ++rep) {
    for (PartRow& row : rows) {
      if (!row.skipped.empty() || !row.error.empty()) continue;
      try {
        std::vector<double> samples = row.part->measure(*row.store, rep);
        std::string line;
        for (std::size_t c = 0; c < samples.size(); ++c) {
          row.samples[c].push_back(samples[c]);
          line += fmt::format(" {}", spec.format(samples[c]));
        }
        fmt::print(stderr, "[{} rep {}/{}] {}:{}\n", spec.title, rep + 1, config.reps,
                   row.peer->label, line);
      } catch (const std::exception& e) {
        row.error = fmt::format("in repetition {}: {}", rep + 1, e.what());
        fmt::print(stderr, "[{}] {} ERROR: {}\n", spec.title, row.peer->label, row.error);
      }
    }
  }
  print_part(spec, rows);
  int failures = 0;
  for (const PartRow& row : rows) {
    failures += row.error.empty() ? 0 : 1;
    if (row.part) failures += static_cast<int>(std::min<std::uint64_t>(row.part->checks.bad, 1000));
  }
  std::fflush(stdout);
  return failures;
}

void merge(Checks& checks, const std::vector<ProcessReport>& reports) {
  for (const ProcessReport& r : reports) {
    checks.merge(Checks{r.checked, r.bad, r.first_bad});
  }
}

// ---- increment -------------------------------------------------------------------

constexpr std::string_view kOneCounter = "counter";

class IncrementPart final : public Part {
 public:
  explicit IncrementPart(const OpsConfig& config)
      : config_(config), counters_(make_keys(config.keys)) {}

  // Columns: one key with 1 and 4 processes, then many keys likewise.
  std::vector<double> measure(Store& store, int rep) override {
    std::vector<double> samples;
    for (bool one : {true, false}) {
      for (int processes : kProcesses) {
        auto reports = run_processes(store, processes, config_.seconds,
                                     [&](Handle& h, int index, Clock::time_point end,
                                         ProcessReport& r) { body(h, one, rep, index, end, r); });
        samples.push_back(ops_per_second(reports));
        merge(checks, reports);
        for (const ProcessReport& r : reports) (one ? one_total_ : many_total_) += r.ops;
      }
    }
    verify(*store.open());
    return samples;
  }

 private:
  void body(Handle& handle, bool one, int rep, int index, Clock::time_point end,
            ProcessReport& report) {
    Rng rng(static_cast<std::uint64_t>(rep * 1000 + index) + 0x1c);
    std::int64_t last = 0;
    while (Clock::now() < end) {
      throw_if_interrupted();
      for (int k = 0; k < kClockStride; ++k) {
        std::string_view key =
            one ? kOneCounter
                : std::string_view(
                      counters_[static_cast<std::size_t>(rng.next() % counters_.size())]);
        std::int64_t value = handle.increment(key, 1);
        ++report.checked;
        // Of one key, every increment this process sees is above the last.
        if (value < 1 || (one && value <= last)) {
          report.fail(fmt::format("increment of {} returned {} after {}", key, value, last));
        }
        last = value;
      }
      report.ops += kClockStride;
    }
  }

  // The counters hold exactly the increments acknowledged so far.
  void verify(Handle& handle) {
    auto value_of = [&](const std::optional<std::string>& text, std::string_view key) {
      std::int64_t n = 0;
      if (!text) return n;
      auto parsed = std::from_chars(text->data(), text->data() + text->size(), n);
      if (parsed.ec != std::errc() || parsed.ptr != text->data() + text->size()) {
        checks.fail(fmt::format("counter {} holds '{}'", key, *text));
      }
      return n;
    };
    ++checks.gets;
    std::uint64_t one = static_cast<std::uint64_t>(value_of(handle.get(kOneCounter), kOneCounter));
    if (one != one_total_) {
      checks.fail(fmt::format("counter {} is {}, {} increments were acknowledged", kOneCounter, one,
                              one_total_));
    }
    std::uint64_t sum = 0;
    for (std::size_t start = 0; start < counters_.size(); start += 1000) {
      std::vector<std::string> chunk(counters_.begin() + static_cast<std::ptrdiff_t>(start),
                                     counters_.begin() + static_cast<std::ptrdiff_t>(std::min(
                                                             start + 1000, counters_.size())));
      std::vector<std::optional<std::string>> values = handle.get_many(chunk);
      for (std::size_t i = 0; i < chunk.size(); ++i) {
        sum += static_cast<std::uint64_t>(value_of(values[i], chunk[i]));
      }
    }
    ++checks.gets;
    if (sum != many_total_) {
      checks.fail(fmt::format("the {} counters add up to {}, {} increments were acknowledged",
                              counters_.size(), sum, many_total_));
    }
  }

  const OpsConfig& config_;
  std::vector<std::string> counters_;
  std::uint64_t one_total_ = 0;
  std::uint64_t many_total_ = 0;
};

// ---- add -------------------------------------------------------------------------

class AddPart final : public Part {
 public:
  explicit AddPart(const OpsConfig& config) : config_(config), value_(100, 'a') {}

  std::vector<double> measure(Store& store, int rep) override {
    std::vector<double> samples;
    for (int processes : kProcesses) {
      std::string prefix = fmt::format("add-{}-{}-", rep, processes);
      auto reports =
          run_processes(store, processes, config_.seconds,
                        [&](Handle& h, int index, Clock::time_point end, ProcessReport& r) {
                          body(h, prefix, static_cast<std::uint64_t>(rep * 1000 + index), end, r);
                        });
      samples.push_back(ops_per_second(reports));
      merge(checks, reports);
      std::uint64_t wins = 0, reach = 0;
      for (const ProcessReport& r : reports) {
        wins += r.wins;
        reach = std::max(reach, r.reach);
      }
      // Every key of the sequence up to the furthest reached was tried by at
      // least one process, and exactly one of them won it.
      ++checks.gets;
      if (wins != reach) {
        checks.fail(
            fmt::format("{} racing processes won {} of {} new keys", processes, wins, reach));
      }
    }
    return samples;
  }

 private:
  // Even calls: the next key of the sequence (new, unless another process
  // added it first); odd calls: a key this process tried before (present).
  void body(Handle& handle, const std::string& prefix, std::uint64_t seed, Clock::time_point end,
            ProcessReport& report) {
    Rng rng(seed);
    std::string key = prefix;
    auto key_of = [&](std::uint64_t k) -> const std::string& {
      key.resize(prefix.size());
      key += fmt::format("{:x}", k);
      return key;
    };
    std::uint64_t next = 0;
    while (Clock::now() < end) {
      throw_if_interrupted();
      for (int k = 0; k < kClockStride; ++k) {
        if (k % 2 == 0) {
          if (handle.add(key_of(next), value_)) ++report.wins;
          ++next;
        } else {
          std::uint64_t old = rng.next() % next;
          ++report.checked;
          if (handle.add(key_of(old), value_)) {
            report.fail(fmt::format("add of the present key {} returned true", key));
          }
        }
      }
      report.ops += kClockStride;
    }
    report.reach = next;
  }

  const OpsConfig& config_;
  std::string value_;
};

// ---- batches ---------------------------------------------------------------------

class BatchPart final : public Part {
 public:
  BatchPart(const OpsConfig& config, const Peer& peer)
      : keys_(make_keys(config.keys)),
        values_(100),
        expected_(keys_.size(), 0),
        rng_(0xba7c4),
        batches_(std::max<std::size_t>(1, std::min(peer.ops, std::size_t{20'000}) / kBatch)) {}

  void prepare(Store& store) override {
    std::unique_ptr<Handle> handle = store.open();
    for (std::size_t start = 0; start < keys_.size(); start += kBatch) {
      std::size_t n = std::min(kBatch, keys_.size() - start);
      std::vector<std::string> values;
      for (std::size_t i = start; i < start + n; ++i) values.emplace_back(next_value(i));
      handle->load(std::span<const std::string>(keys_).subspan(start, n), values);
    }
  }

  // Columns: get, get_many, set, set_many (ns per key).
  std::vector<double> measure(Store& store, int) override {
    std::unique_ptr<Handle> handle = store.open();
    Clock::duration get{}, get_many{}, set{}, set_many{};
    for (std::size_t b = 0; b < batches_; ++b) {
      throw_if_interrupted();
      std::vector<std::size_t> picks = pick_batch();
      std::vector<std::string> keys;
      for (std::size_t i : picks) keys.push_back(keys_[i]);
      std::vector<std::optional<std::string>> got(kBatch);

      auto start = Clock::now();
      for (std::size_t j = 0; j < kBatch; ++j) got[j] = handle->get(keys[j]);
      get += Clock::now() - start;
      check(picks, got);

      start = Clock::now();
      got = handle->get_many(keys);
      get_many += Clock::now() - start;
      check(picks, got);

      std::vector<std::pair<std::string, std::string>> items = make_items(pick_batch());
      start = Clock::now();
      for (const auto& item : items) handle->set(item.first, item.second);
      set += Clock::now() - start;

      items = make_items(pick_batch());
      start = Clock::now();
      handle->set_many(items);
      set_many += Clock::now() - start;
    }
    double keys = static_cast<double>(batches_ * kBatch);
    auto per_key = [&](Clock::duration d) {
      return std::chrono::duration<double, std::nano>(d).count() / keys;
    };
    std::vector<double> samples{per_key(get), per_key(get_many), 0,
                                per_key(set), per_key(set_many), 0};
    samples[2] = samples[0] / samples[1];
    samples[5] = samples[3] / samples[4];
    return samples;
  }

 private:
  std::vector<std::size_t> pick_batch() {
    std::vector<std::size_t> picks(kBatch);
    for (std::size_t& i : picks) i = static_cast<std::size_t>(rng_.next() % keys_.size());
    return picks;
  }

  std::string next_value(std::size_t i) {
    std::string value(values_.make(keys_[i], ++version_));
    expected_[i] = Values::tag_of(value);
    return value;
  }

  std::vector<std::pair<std::string, std::string>> make_items(
      const std::vector<std::size_t>& picks) {
    std::vector<std::pair<std::string, std::string>> items;
    for (std::size_t i : picks) items.emplace_back(keys_[i], next_value(i));
    return items;
  }

  void check(const std::vector<std::size_t>& picks,
             const std::vector<std::optional<std::string>>& got) {
    if (got.size() != picks.size()) {
      checks.fail(fmt::format("{} values for {} keys", got.size(), picks.size()));
      return;
    }
    for (std::size_t j = 0; j < picks.size(); ++j) {
      ++checks.gets;
      const std::string& key = keys_[picks[j]];
      if (got[j] && values_.looks_right(key, *got[j], expected_[picks[j]])) continue;
      checks.fail(
          fmt::format("key {}: {}", key, values_.diagnose(key, got[j], expected_[picks[j]])));
    }
  }

  std::vector<std::string> keys_;
  Values values_;
  std::vector<std::uint64_t> expected_;  // tag per key
  std::uint32_t version_ = 0;
  Rng rng_;
  std::size_t batches_;
};

std::string speedup_or_ns(double value) {
  return value < 100 ? fmt::format("{:.1f}", value) : grouped(value);
}

}  // namespace

int run_increment(const OpsConfig& config, const std::vector<Peer>& peers) {
  std::vector<std::string> columns;
  std::string many = fmt::format("{} keys", grouped(static_cast<double>(config.keys)));
  for (const std::string& keys : {std::string("1 key"), many}) {
    for (int processes : kProcesses) {
      columns.push_back(fmt::format("{}, {} ops/s", keys, processes_text(processes)));
    }
  }
  PartSpec spec{
      "increment",
      fmt::format(
          "increment(key, 1) for {} s in forked processes that each open their own handle "
          "(aggregate ops/s); LMDB: a write transaction that gets, adds and puts; Redis: INCRBY.",
          config.seconds),
      columns,
      true,
      si,
      [&](const Peer&) { return std::make_unique<IncrementPart>(config); }};
  return run_part(spec, config, peers);
}

int run_add(const OpsConfig& config, const std::vector<Peer>& peers) {
  std::vector<std::string> columns;
  for (int processes : kProcesses) {
    columns.push_back(fmt::format("{} ops/s", processes_text(processes)));
  }
  PartSpec spec{"add",
                fmt::format("add(key, 100 B) for {} s: half new keys (with 4 processes, all race "
                            "for the same sequence of new keys), half keys already present; "
                            "LMDB: mdb_put with MDB_NOOVERWRITE; Redis: SETNX.",
                            config.seconds),
                columns,
                true,
                si,
                [&](const Peer&) { return std::make_unique<AddPart>(config); }};
  return run_part(spec, config, peers);
}

int run_batches(const OpsConfig& config, const std::vector<Peer>& peers) {
  PartSpec spec{
      "batches",
      fmt::format("Batches of {} random keys out of {} (100 B values), one process: {} single "
                  "calls against one get_many/set_many (Redis: MGET/MSET; LMDB: one "
                  "transaction); ns per key, and single / batch (the speedup).",
                  kBatch, grouped(static_cast<double>(config.keys)), kBatch),
      {"get ns", "get_many ns", "get speedup", "set ns", "set_many ns", "set speedup"},
      false,
      speedup_or_ns,
      [&](const Peer& peer) { return std::make_unique<BatchPart>(config, peer); }};
  return run_part(spec, config, peers);
}

}  // namespace bench
