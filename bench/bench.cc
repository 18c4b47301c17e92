// lilcache-bench: measures lilcache and its peers (std::unordered_map, LMDB,
// SQLite, Redis, memcached) side by side in one run, on the workload of
// /work/shared/baseline.md, and prints markdown tables, ratios and targets;
// then the conditional and batch operations (increment, add, get_many/set_many
// against LMDB and Redis; get_or_set under a stampede).
//
//   lilcache-bench [--quick] [--reps N] [--keys N] [--seconds S]
//                  [--remote-ops N] [--stores id,id,...] [--parts part,part,...]
//                  [--op-seconds S]
#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "ops_bench.h"
#include "os.h"
#include "report.h"
#include "stampede.h"
#include "store.h"
#include "sustained.h"
#include "threads_bench.h"
#include "workload.h"

namespace bench {
namespace {

constexpr std::array<std::size_t, 2> kValueSizes{100, 1024};

struct Config {
  std::size_t keys = 100'000;
  int reps = 5;
  double seconds = 1.0;  // of each mix
  std::size_t sqlite_ops = 20'000;
  std::size_t remote_ops = 5'000;  // Redis, memcached
  bool quick = false;
  std::vector<std::string> stores;  // ids; empty = all
  std::vector<std::string> parts;   // empty = all
  double op_seconds = 0.25;         // of each increment/add run
  std::size_t op_keys = 10'000;     // counters and batch keys (at most --keys)
  std::size_t sustained_ops = 1'500'000;
};

constexpr std::array<std::string_view, 7> kParts{"getset",   "increment", "add",    "batch",
                                                 "stampede", "sustained", "threads"};

constexpr const char* kUsage = R"(usage: lilcache-bench [options]
  --quick           smoke run in a few seconds (5,000 keys, 1 rep, 0.1 s mixes)
  --reps N          repetitions; medians are reported (default 5)
  --keys N          number of keys (default 100,000)
  --seconds S       duration of each get/set mix (default 1)
  --remote-ops N    ops per get/set measurement for Redis/memcached (default 5,000)
  --stores LIST     comma-separated subset of: lilcache,unordered_map,lmdb,sqlite,redis,memcached
  --parts LIST      comma-separated subset of: getset,increment,add,batch,stampede,sustained,
                    threads (default all)
  --sustained-ops N overwrites per sustained run (default 1,500,000; at most 3 reps)
  --op-seconds S    duration of each increment/add run (default 0.25)
)";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct HelpRequested {};

template <typename T>
T parse_number(std::string_view text, std::string_view option) {
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || !(value > T{0})) {
    throw UsageError(fmt::format("{} needs a positive number, not '{}'", option, text));
  }
  return value;
}

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> out;
  for (std::size_t start = 0; start <= text.size();) {
    std::size_t comma = std::min(text.find(',', start), text.size());
    if (comma > start) out.emplace_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

Config parse_args(std::span<char*> args) {
  Config config;
  std::optional<std::size_t> keys, remote_ops, sustained_ops;
  std::optional<int> reps;
  std::optional<double> seconds, op_seconds;
  for (std::size_t i = 1; i < args.size(); ++i) {
    std::string_view arg = args[i];
    std::size_t eq = arg.find('=');
    std::string_view name = arg.substr(0, eq);
    auto value = [&]() -> std::string_view {
      if (eq != std::string_view::npos) return arg.substr(eq + 1);
      if (i + 1 >= args.size()) throw UsageError(fmt::format("{} needs a value", name));
      return args[++i];
    };
    if (name == "--help" || name == "-h") {
      throw HelpRequested{};
    } else if (name == "--quick") {
      config.quick = true;
    } else if (name == "--reps") {
      reps = parse_number<int>(value(), name);
    } else if (name == "--keys") {
      keys = parse_number<std::size_t>(value(), name);
    } else if (name == "--seconds") {
      seconds = parse_number<double>(value(), name);
    } else if (name == "--remote-ops") {
      remote_ops = parse_number<std::size_t>(value(), name);
    } else if (name == "--stores") {
      config.stores = split_list(value());
    } else if (name == "--parts") {
      config.parts = split_list(value());
      for (const std::string& part : config.parts) {
        if (std::find(kParts.begin(), kParts.end(), part) == kParts.end()) {
          throw UsageError(fmt::format("unknown part '{}'", part));
        }
      }
    } else if (name == "--op-seconds") {
      op_seconds = parse_number<double>(value(), name);
    } else if (name == "--sustained-ops") {
      sustained_ops = parse_number<std::size_t>(value(), name);
      if (*sustained_ops == 0) throw UsageError("--sustained-ops must be positive");
    } else {
      throw UsageError(fmt::format("unknown argument '{}'", arg));
    }
  }
  if (config.quick) {
    config.keys = 5'000;
    config.reps = 1;
    config.seconds = 0.1;
    config.remote_ops = 500;
    config.op_seconds = 0.05;
    config.sustained_ops = 60'000;
  }
  config.keys = keys.value_or(config.keys);
  config.reps = reps.value_or(config.reps);
  config.seconds = seconds.value_or(config.seconds);
  config.remote_ops = remote_ops.value_or(config.remote_ops);
  config.op_seconds = op_seconds.value_or(config.op_seconds);
  config.sustained_ops = sustained_ops.value_or(config.sustained_ops);
  config.op_keys = std::min(config.op_keys, config.keys);
  return config;
}

std::vector<Peer> make_peers(const Config& config) {
  const std::string remote_reason = "a loopback round trip costs ~120 us on this VM";
  std::vector<Peer> all{
      {"lilcache", "lilcache", true, SIZE_MAX, "", make_lilcache_store},
      {"unordered_map", "std::unordered_map", false, SIZE_MAX, "", make_map_store},
      {"lmdb", "LMDB", true, SIZE_MAX, "", make_lmdb_store},
      {"sqlite", "SQLite", true, config.sqlite_ops, "~35 us per set", make_sqlite_store},
      {"redis", "Redis", true, config.remote_ops, remote_reason, make_redis_store},
      {"memcached", "memcached", true, config.remote_ops, remote_reason, make_memcached_store},
  };
  if (config.stores.empty()) return all;
  std::vector<Peer> chosen;
  for (const std::string& id : config.stores) {
    auto it = std::find_if(all.begin(), all.end(), [&](const Peer& p) { return p.id == id; });
    if (it == all.end()) throw UsageError(fmt::format("unknown store '{}'", id));
    chosen.push_back(*it);
  }
  return chosen;
}

std::size_t ops_for(const Peer& peer, const Config& config) {
  return std::min(config.keys, peer.ops);
}

bool selected(const Config& config, std::string_view part) {
  return config.parts.empty() ||
         std::find(config.parts.begin(), config.parts.end(), part) != config.parts.end();
}

void print_header(const Config& config, const std::vector<Peer>& peers, std::span<char*> args) {
  std::string command;
  for (const char* arg : args) command += (command.empty() ? "" : " ") + std::string(arg);
  fmt::print("# lilcache-bench\n\n");
  fmt::print("- command: `{}`\n", command);
  fmt::print("- machine: {}; load average at start {}\n", describe_machine(), load_average());
  fmt::print("- libraries: {}, {}\n", local_peer_versions(), remote_peer_versions());
  fmt::print(
      "- workload: {} keys of 16 bytes (hex); values of 100 B and 1 KiB; random gets of existing "
      "keys (value copied out into a std::string) and random overwrites, timed in batches of up "
      "to 10,000 ops; a 90/10 get/set mix for {} s in {} forked processes (each opens its own "
      "handle; aggregate ops/s); medians of {} repetition(s)\n",
      grouped(static_cast<double>(config.keys)), config.seconds, "1, 2 and 4", config.reps);
  for (const Peer& peer : peers) {
    if (ops_for(peer, config) < config.keys) {
      fmt::print("- {}: {} ops per get/set measurement ({})\n", peer.label,
                 grouped(static_cast<double>(ops_for(peer, config))), peer.ops_reason);
    }
  }
  std::string parts;
  for (std::string_view part : kParts) {
    if (selected(config, part)) parts += (parts.empty() ? "" : ", ") + std::string(part);
  }
  fmt::print("- parts: {}; increment and add runs of {} s, {} counter/batch keys\n", parts,
             config.op_seconds, grouped(static_cast<double>(config.op_keys)));
  fmt::print("- noise: medians on this VM move up to ~1.5x between runs; compare within one run\n");
  if (config.quick) fmt::print("- QUICK smoke run: the numbers mean little\n");
  std::fflush(stdout);
}

// A store being measured for one value size.
struct Active {
  Row& row;
  std::unique_ptr<Store> store;
  Dataset data;
};

std::optional<Active> start(Row& row, const std::vector<std::string>& keys, std::size_t size) {
  fmt::print(stderr, "[{} B] starting {}\n", size, row.peer->label);
  try {
    Active active{row, row.peer->create(StoreShape{keys.size(), size}), Dataset(keys, size, size)};
    active.data.load(*active.store->open());
    return active;
  } catch (const Unavailable& e) {
    row.skipped = e.what();
    fmt::print(stderr, "[{} B] {} skipped: {}\n", size, row.peer->label, e.what());
  } catch (const std::exception& e) {
    row.error = fmt::format("while starting and loading: {}", e.what());
  }
  return std::nullopt;
}

void measure_rep(Active& a, const Config& config) {
  Row& row = a.row;
  std::size_t ops = ops_for(*row.peer, config);
  {
    std::unique_ptr<Handle> handle = a.store->open();
    row.set_ns.push_back(a.data.time_sets(*handle, ops));
    row.get_ns.push_back(a.data.time_gets(*handle, ops));
    row.getbuf_ns.push_back(a.data.time_gets_into(*handle, ops));
    if (!row.peer->multiprocess) {
      row.mix_ops[0].push_back(a.data.time_mix_here(*handle, config.seconds));
    }
  }  // closed: the mix processes open their own
  for (std::size_t c = 0; c < kMixProcesses.size() && row.peer->multiprocess; ++c) {
    row.mix_ops[c].push_back(a.data.time_mix(*a.store, kMixProcesses[c], config.seconds));
  }
}

void progress(const Active& a, std::size_t size, int rep, int reps) {
  const Row& row = a.row;
  std::string mix;
  for (const auto& samples : row.mix_ops) {
    if (!samples.empty()) mix += fmt::format(" {:.0f}", samples.back());
  }
  fmt::print(
      stderr,
      "[{} B rep {}/{}] {}: set {:.0f} ns, get {:.0f} ns, get into buffer {:.0f} ns, mix ops/s{}\n",
      size, rep + 1, reps, row.peer->label, row.set_ns.back(), row.get_ns.back(),
      row.getbuf_ns.back(), mix);
}

// Every repetition measures every store in turn, so that slow drifts of the
// machine affect all stores alike.
SizeResult run_size(const Config& config, const std::vector<Peer>& peers,
                    const std::vector<std::string>& keys, std::size_t size) {
  SizeResult result{size, {}};
  for (const Peer& peer : peers) {
    result.rows.emplace_back();
    result.rows.back().peer = &peer;
  }
  std::vector<Active> active;
  for (Row& row : result.rows) {
    if (auto started = start(row, keys, size)) active.push_back(std::move(*started));
  }
  for (int rep = 0; rep < config.reps; ++rep) {
    for (Active& a : active) {
      if (!a.row.error.empty()) continue;
      try {
        measure_rep(a, config);
        progress(a, size, rep, config.reps);
      } catch (const std::exception& e) {
        a.row.error = fmt::format("in repetition {}: {}", rep + 1, e.what());
        fmt::print(stderr, "[{} B] {} ERROR: {}\n", size, a.row.peer->label, a.row.error);
      }
    }
  }
  for (Active& a : active) {
    try {
      a.data.verify(*a.store->open(), ops_for(*a.row.peer, config));
    } catch (const std::exception& e) {
      if (a.row.error.empty()) a.row.error = fmt::format("in the final check: {}", e.what());
    }
    a.row.checks = a.data.checks();
  }
  return result;
}

// The conditional and batch operations (issue 14). Returns the failures.
int run_ops(const Config& config, const std::vector<Peer>& peers) {
  OpsConfig ops{config.reps, config.op_seconds, config.op_keys, config.remote_ops};
  int failures = 0;
  if (selected(config, "increment")) failures += run_increment(ops, peers);
  if (selected(config, "add")) failures += run_add(ops, peers);
  if (selected(config, "batch")) failures += run_batches(ops, peers);
  bool lilcache = std::any_of(peers.begin(), peers.end(),
                              [](const Peer& peer) { return peer.id == "lilcache"; });
  if (selected(config, "threads") && lilcache) {
    ThreadsConfig threads;
    threads.reps = config.reps;
    threads.seconds = config.seconds;
    threads.keys = config.keys;
    try {
      failures += run_threads(threads);
    } catch (const std::exception& e) {
      fmt::print("\nERROR: threads: {}\n", e.what());
      ++failures;
    }
  }
  if (selected(config, "stampede") && lilcache) {
    StampedeConfig stampede;
    stampede.reps = config.reps;
    try {
      failures += run_stampede(stampede);
    } catch (const std::exception& e) {
      fmt::print("\nERROR: stampede: {}\n", e.what());
      ++failures;
    }
  }
  return failures;
}

int run(std::span<char*> args) {
  Config config = parse_args(args);
  std::vector<Peer> peers = make_peers(config);
  install_signal_handlers();
  print_header(config, peers, args);
  std::vector<std::string> keys = make_keys(config.keys);
  std::vector<SizeResult> results;
  for (std::size_t size : kValueSizes) {
    if (!selected(config, "getset")) break;
    results.push_back(run_size(config, peers, keys, size));
    print_tables(results.back());
    std::fflush(stdout);
  }
  int op_failures = run_ops(config, peers);
  const auto has = [&](std::string_view id) {
    return std::any_of(peers.begin(), peers.end(), [&](const Peer& p) { return p.id == id; });
  };
  if (selected(config, "sustained") && has("lilcache") && has("lmdb")) {
    try {
      op_failures += run_sustained(
          {.reps = std::min(config.reps, 3), .keys = config.keys, .ops = config.sustained_ops});
    } catch (const Unavailable& e) {
      fmt::print("\nsustained overwrites skipped: {}\n", e.what());
    }
    std::fflush(stdout);
  }
  fmt::print("\nLoad average at the end: {} (other work on the machine skews all stores).\n",
             load_average());
  std::uint64_t wrong = 0;
  if (!results.empty()) {
    print_targets(results);
    wrong = print_checks(results);
  }
  bool errors = false;
  for (const SizeResult& result : results) {
    for (const Row& row : result.rows) errors = errors || !row.error.empty();
  }
  if (errors) fmt::print("\nERROR: some stores failed (see above).\n");
  if (op_failures > 0)
    fmt::print("\nERROR: {} failures in the operations (see above).\n", op_failures);
  return wrong > 0 || errors || op_failures > 0 ? 1 : 0;
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) {
  std::span<char*> args(argv, static_cast<std::size_t>(argc));
  try {
    return bench::run(args);
  } catch (const bench::HelpRequested&) {
    fmt::print("{}", bench::kUsage);
    return 0;
  } catch (const bench::UsageError& e) {
    fmt::print(stderr, "lilcache-bench: {}\n{}", e.what(), bench::kUsage);
    return 2;
  } catch (const bench::Interrupted&) {
    fmt::print(stderr, "lilcache-bench: interrupted\n");
    return 130;
  } catch (const std::exception& e) {
    fmt::print(stderr, "lilcache-bench: {}\n", e.what());
    return 1;
  }
}
