// lilcache-cluster-bench: the routing overhead of lilcache's Redis Cluster
// backend (issue 18). The bench workload (workload.h: random sets and gets of
// self-checking values, then a 90/10 get/set mix in several processes) runs
// against the same cluster through
//   lilcache:       lilcache::Cache with Options::backend = the cluster's URL
//                   (lib/cluster/: slot routing, pools, the value header and
//                   the purge epoch);
//   routing layer:  lib/cluster/client.h alone sending hiredis-direct's plain
//                   GET/SET (the routing overhead, the target);
//   hiredis-direct: one redisContext per master and a slot table from CLUSTER
//                   SLOTS, plain GET/SET sent straight to the key's master
//                   (KeySlot of lib/cluster/slot.h), a refresh on MOVED/ASK:
//                   the least a client can do per operation.
// and prints ns/op, the mix's ops/s and the ratio lilcache / hiredis-direct
// (target: <= 1.1x for get and set, each printed MET or MISSED), and the
// client's own CPU per op (getrusage: what the routing layer costs, less
// sensitive than wall time to a machine whose cores the servers share).
//
//   lilcache-cluster-bench --cluster redis-cluster://127.0.0.1:P[,...]
//       [--keys N] [--ops N] [--reps N] [--value-sizes 100,1024]
//       [--processes N] [--seconds S]
//
// bench/cluster_bench.sh starts a cluster (test/cluster/with_cluster.sh) and
// runs this, redis-benchmark --cluster and two `lilcache serve --backend`
// under wrk.
#include <hiredis/hiredis.h>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "cluster/client.h"
#include "cluster/slot.h"
#include "lilcache/lilcache.h"
#include "os.h"
#include "store.h"
#include "workload.h"

namespace bench {
namespace {

// ---- hiredis-direct ---------------------------------------------------------------

struct RedisFree {
  void operator()(redisContext* ctx) const { redisFree(ctx); }
};
struct ReplyFree {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using ContextPtr = std::unique_ptr<redisContext, RedisFree>;
using ReplyPtr = std::unique_ptr<redisReply, ReplyFree>;

ContextPtr Connect(const std::string& host, int port) {
  timeval timeout{2, 0};
  ContextPtr ctx(redisConnectWithTimeout(host.c_str(), port, timeout));
  if (!ctx) throw std::runtime_error("hiredis: cannot allocate a context");
  if (ctx->err) throw std::runtime_error(fmt::format("connect {}:{}: {}", host, port, ctx->errstr));
  redisSetTimeout(ctx.get(), timeout);
  return ctx;
}

bool IsRedirection(const redisReply& reply) {
  if (reply.type != REDIS_REPLY_ERROR) return false;
  std::string_view text(reply.str, reply.len);
  return text.starts_with("MOVED ") || text.starts_with("ASK ") || text.starts_with("TRYAGAIN");
}

// A cluster client with its own minimal slot routing: plain GET/SET on the
// key's master, one connection per master, the map reloaded on a redirection.
class DirectHandle final : public Handle {
 public:
  DirectHandle(std::vector<lilcache::cluster::Endpoint> seeds, std::string prefix)
      : seeds_(std::move(seeds)), prefix_(std::move(prefix)) {
    Refresh();
  }

  std::optional<std::string> get(std::string_view key) override {
    const std::string k = Key(key);
    ReplyPtr reply = Call(k, {"GET", k});
    if (reply->type == REDIS_REPLY_NIL) return std::nullopt;
    Expect(*reply, REDIS_REPLY_STRING, "GET");
    return std::string(reply->str, reply->len);
  }

  bool get_into(std::string_view key, std::string& out) override {
    const std::string k = Key(key);
    ReplyPtr reply = Call(k, {"GET", k});
    if (reply->type == REDIS_REPLY_NIL) return false;
    Expect(*reply, REDIS_REPLY_STRING, "GET");
    out.assign(reply->str, reply->len);
    return true;
  }

  void set(std::string_view key, std::string_view value) override {
    const std::string k = Key(key);
    Expect(*Call(k, {"SET", k, value}), REDIS_REPLY_STATUS, "SET");
  }

  // Pipelined per master.
  void load(std::span<const std::string> keys, std::span<const std::string> values) override {
    std::map<std::size_t, std::vector<std::size_t>> by_node;
    std::vector<std::string> full(keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) {
      full[i] = Key(keys[i]);
      by_node[owner_[lilcache::cluster::KeySlot(full[i])]].push_back(i);
    }
    for (const auto& [node, indexes] : by_node) {
      redisContext* ctx = nodes_[node].ctx.get();
      for (std::size_t i : indexes) {
        std::array<const char*, 3> argv{"SET", full[i].data(), values[i].data()};
        std::array<std::size_t, 3> lens{3, full[i].size(), values[i].size()};
        if (redisAppendCommandArgv(ctx, 3, argv.data(), lens.data()) != REDIS_OK) Fail(ctx, "SET");
      }
      for (std::size_t n = 0; n < indexes.size(); ++n) {
        void* raw = nullptr;
        if (redisGetReply(ctx, &raw) != REDIS_OK) Fail(ctx, "SET");
        Expect(*ReplyPtr(static_cast<redisReply*>(raw)), REDIS_REPLY_STATUS, "SET (load)");
      }
    }
  }

 private:
  struct Node {
    std::string host;
    int port;
    ContextPtr ctx;
  };

  std::string Key(std::string_view key) const { return prefix_ + std::string(key); }

  // The slot map from CLUSTER SLOTS of the first seed that answers.
  void Refresh() {
    std::string errors;
    for (const auto& seed : seeds_) {
      try {
        ContextPtr ctx = Connect(seed.host, seed.port);
        ReplyPtr slots(static_cast<redisReply*>(redisCommand(ctx.get(), "CLUSTER SLOTS")));
        if (!slots || slots->type != REDIS_REPLY_ARRAY) throw std::runtime_error("CLUSTER SLOTS");
        std::vector<Node> nodes;
        std::vector<std::size_t> owner(lilcache::cluster::kSlots, SIZE_MAX);
        for (std::size_t r = 0; r < slots->elements; ++r) {
          const redisReply& range = *slots->element[r];
          const redisReply& master = *range.element[2];
          const std::string host(master.element[0]->str, master.element[0]->len);
          const int port = static_cast<int>(master.element[1]->integer);
          auto it = std::find_if(nodes.begin(), nodes.end(),
                                 [&](const Node& n) { return n.host == host && n.port == port; });
          if (it == nodes.end()) {
            nodes.push_back(Node{host, port, Connect(host, port)});
            it = nodes.end() - 1;
          }
          for (long long s = range.element[0]->integer; s <= range.element[1]->integer; ++s) {
            owner[static_cast<std::size_t>(s)] = static_cast<std::size_t>(it - nodes.begin());
          }
        }
        if (std::count(owner.begin(), owner.end(), SIZE_MAX) != 0) {
          throw std::runtime_error("CLUSTER SLOTS leaves slots unassigned");
        }
        nodes_ = std::move(nodes);
        owner_ = std::move(owner);
        return;
      } catch (const std::exception& e) {
        errors += fmt::format(" {}:{}: {};", seed.host, seed.port, e.what());
      }
    }
    throw std::runtime_error("hiredis-direct: no seed gave the slot map:" + errors);
  }

  template <std::size_t N>
  ReplyPtr Call(const std::string& key, const std::array<std::string_view, N>& args) {
    std::array<const char*, N> argv{};
    std::array<std::size_t, N> lens{};
    for (std::size_t i = 0; i < N; ++i) {
      argv[i] = args[i].data();
      lens[i] = args[i].size();
    }
    for (int attempt = 0;; ++attempt) {
      redisContext* ctx = nodes_[owner_[lilcache::cluster::KeySlot(key)]].ctx.get();
      ReplyPtr reply(static_cast<redisReply*>(
          redisCommandArgv(ctx, static_cast<int>(N), argv.data(), lens.data())));
      if (!reply) Fail(ctx, args[0]);
      if (!IsRedirection(*reply) || attempt == 5) return reply;
      Refresh();  // the map changed (resharding, failover): not on the measured path
    }
  }
  ReplyPtr Call(const std::string& key, std::initializer_list<std::string_view> args) {
    if (args.size() == 2) return Call<2>(key, {*args.begin(), *(args.begin() + 1)});
    return Call<3>(key, {*args.begin(), *(args.begin() + 1), *(args.begin() + 2)});
  }

  [[noreturn]] static void Fail(redisContext* ctx, std::string_view what) {
    throw std::runtime_error(fmt::format("hiredis-direct {}: {}", what, ctx->errstr));
  }
  static void Expect(const redisReply& reply, int type, std::string_view what) {
    if (reply.type == type) return;
    if (reply.type == REDIS_REPLY_ERROR) {
      throw std::runtime_error(
          fmt::format("hiredis-direct {}: {}", what, std::string_view(reply.str, reply.len)));
    }
    throw std::runtime_error(fmt::format("hiredis-direct {}: reply of type {}", what, reply.type));
  }

  std::vector<lilcache::cluster::Endpoint> seeds_;
  std::string prefix_;
  std::vector<Node> nodes_;
  std::vector<std::size_t> owner_;  // slot -> index in nodes_
};

class DirectStore final : public Store {
 public:
  DirectStore(const std::string& url, std::string prefix)
      : seeds_(lilcache::cluster::ParseUrl(url).seeds), prefix_(std::move(prefix)) {}
  std::unique_ptr<Handle> open() override {
    return std::make_unique<DirectHandle>(seeds_, prefix_);
  }

 private:
  std::vector<lilcache::cluster::Endpoint> seeds_;
  std::string prefix_;
};

// ---- lilcache on the cluster --------------------------------------------------------

class ClusterCacheHandle final : public Handle {
 public:
  ClusterCacheHandle(const std::string& name, const std::filesystem::path& root,
                     const std::string& url)
      : cache_(lilcache::Cache::open(
            name, {.root = root.string(), .loglevel = "warn", .one_shot = true, .backend = url})) {}
  std::optional<std::string> get(std::string_view key) override { return cache_.get(key); }
  bool get_into(std::string_view key, std::string& out) override { return cache_.get(key, out); }
  void set(std::string_view key, std::string_view value) override { cache_.set(key, value); }
  // Batched (set_many: grouped per slot, pipelined), as the other peers' loads.
  void load(std::span<const std::string> keys, std::span<const std::string> values) override {
    std::vector<std::pair<std::string, std::string>> items;
    items.reserve(keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) items.emplace_back(keys[i], values[i]);
    cache_.set_many(items);
  }

 private:
  lilcache::Cache cache_;
};

class ClusterCacheStore final : public Store {
 public:
  ClusterCacheStore(std::string url, std::string name)
      : url_(std::move(url)), name_(std::move(name)) {}
  std::unique_ptr<Handle> open() override {
    return std::make_unique<ClusterCacheHandle>(name_, dir_.path(), url_);
  }

 private:
  std::string url_, name_;
  TempDir dir_{"cluster-bench"};  // the text log only
};

// ---- lilcache's routing layer alone -----------------------------------------------------

// lib/cluster/client.h with the commands hiredis-direct sends (plain GET and
// SET of the same keys): what the routing layer costs (slot map, pool,
// retries, reply conversion), without the backend's semantics (the purge
// epoch beside each value, the scripts of the writes, the header).
class RoutedHandle final : public Handle {
 public:
  RoutedHandle(const std::string& url, std::string prefix)
      : client_(lilcache::cluster::ParseUrl(url), nullptr), prefix_(std::move(prefix)) {}
  std::optional<std::string> get(std::string_view key) override {
    const std::string k = prefix_ + std::string(key);
    lilcache::cluster::Reply r = client_.Run(lilcache::cluster::KeySlot(k), {"GET", k});
    if (r.is_nil()) return std::nullopt;
    if (r.type != lilcache::cluster::Reply::Type::kString)
      throw std::runtime_error("GET: " + r.str);
    return std::move(r.str);
  }
  bool get_into(std::string_view key, std::string& out) override {
    std::optional<std::string> v = get(key);
    if (!v) return false;
    out.assign(*v);
    return true;
  }
  void set(std::string_view key, std::string_view value) override {
    const std::string k = prefix_ + std::string(key);
    lilcache::cluster::Reply r = client_.Run(lilcache::cluster::KeySlot(k), {"SET", k, value});
    if (r.is_error()) throw std::runtime_error("SET: " + r.str);
  }
  void load(std::span<const std::string> keys, std::span<const std::string> values) override {
    std::vector<std::string> full(keys.size());
    std::vector<std::pair<std::uint16_t, lilcache::cluster::Command>> cmds;
    for (std::size_t i = 0; i < keys.size(); ++i) full[i] = prefix_ + keys[i];
    for (std::size_t i = 0; i < keys.size(); ++i) {
      cmds.emplace_back(lilcache::cluster::KeySlot(full[i]),
                        lilcache::cluster::Command{"SET", full[i], values[i]});
    }
    for (const auto& r : client_.RunMany(cmds)) {
      if (r.is_error()) throw std::runtime_error("SET: " + r.str);
    }
  }

 private:
  lilcache::cluster::Client client_;
  std::string prefix_;
};

class RoutedStore final : public Store {
 public:
  RoutedStore(std::string url, std::string prefix)
      : url_(std::move(url)), prefix_(std::move(prefix)) {}
  std::unique_ptr<Handle> open() override { return std::make_unique<RoutedHandle>(url_, prefix_); }

 private:
  std::string url_, prefix_;
};

// ---- the run ---------------------------------------------------------------------------

struct Config {
  std::string url;
  std::size_t keys = 20'000;
  std::size_t ops = 20'000;  // per get or set measurement
  int reps = 5;
  std::vector<std::size_t> value_sizes{100, 1024};
  int processes = 4;
  double seconds = 2.0;
};

constexpr const char* kUsage = R"(usage: lilcache-cluster-bench --cluster URL [options]
  --cluster URL       redis-cluster://host:port[,host:port...] (default: $LILCACHE_TEST_CLUSTER)
  --keys N            keys per value size (default 20,000)
  --ops N             operations per get or set measurement (default 20,000)
  --reps N            repetitions, interleaved; medians are reported (default 5)
  --value-sizes LIST  comma-separated value sizes in bytes, each >= 32 (default 100,1024)
  --processes N       processes of the 90/10 mix (default 4)
  --seconds S         duration of each mix (default 2)
)";

template <typename T>
T Positive(std::string_view text, std::string_view option) {
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || !(value > T{0})) {
    throw std::invalid_argument(fmt::format("{} needs a positive number, not '{}'", option, text));
  }
  return value;
}

Config Parse(int argc, char** argv) {
  Config c;
  if (const char* env = std::getenv("LILCACHE_TEST_CLUSTER")) c.url = env;
  for (int i = 1; i < argc; ++i) {
    const std::string_view name = argv[i];
    if (name == "--help" || name == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (i + 1 >= argc) throw std::invalid_argument(fmt::format("{} needs a value", name));
    const std::string_view value = argv[++i];
    if (name == "--cluster") {
      c.url = value;
    } else if (name == "--keys") {
      c.keys = Positive<std::size_t>(value, name);
    } else if (name == "--ops") {
      c.ops = Positive<std::size_t>(value, name);
    } else if (name == "--reps") {
      c.reps = Positive<int>(value, name);
    } else if (name == "--processes") {
      c.processes = Positive<int>(value, name);
    } else if (name == "--seconds") {
      c.seconds = Positive<double>(value, name);
    } else if (name == "--value-sizes") {
      c.value_sizes.clear();
      std::string_view rest = value;
      while (!rest.empty()) {
        const std::size_t comma = rest.find(',');
        const std::size_t size = Positive<std::size_t>(rest.substr(0, comma), name);
        if (size < Values::kMinSize) {
          throw std::invalid_argument(fmt::format("{}: at least {} bytes", name, Values::kMinSize));
        }
        c.value_sizes.push_back(size);
        rest = comma == std::string_view::npos ? "" : rest.substr(comma + 1);
      }
    } else {
      throw std::invalid_argument(fmt::format("unknown option '{}'", name));
    }
  }
  if (c.url.empty()) throw std::invalid_argument("--cluster URL is needed");
  lilcache::cluster::ParseUrl(c.url);  // a bad URL is reported before anything runs
  return c;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct Figures {
  std::vector<double> set_ns, get_ns, mix_ops;
  std::vector<double> set_cpu_ns, get_cpu_ns;  // this process's CPU (user + system) per op
};

// CPU time of this process so far (every thread: the backend's too), in ns.
double CpuNanos() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  auto ns = [](const timeval& t) { return t.tv_sec * 1e9 + t.tv_usec * 1e3; };
  return ns(u.ru_utime) + ns(u.ru_stime);
}

int Run(const Config& c) {
  install_signal_handlers();
  const std::string run =
      fmt::format("{:x}", std::chrono::steady_clock::now().time_since_epoch().count() & 0xffffff);
  fmt::print("lilcache-cluster-bench: {}; load average {}\n", describe_machine(), load_average());
  fmt::print(
      "- cluster {} ({} masters); {} keys, {} ops per measurement, {} reps (interleaved, "
      "medians), mix: {} processes x {} s, 90% gets\n",
      lilcache::cluster::ParseUrl(c.url).display,
      lilcache::cluster::Client(lilcache::cluster::ParseUrl(c.url), nullptr).Masters().size(),
      c.keys, c.ops, c.reps, c.processes, c.seconds);
  const std::vector<std::string> keys = make_keys(c.keys);
  bool all_met = true;
  bool all_right = true;
  fmt::print(
      "\n| store | value bytes | set ns/op | get ns/op | mix ops/s ({} proc.) | client CPU ns/set "
      "| client CPU ns/get |\n",
      c.processes);
  fmt::print("|---|--:|--:|--:|--:|--:|--:|\n");
  std::vector<std::string> verdicts;
  for (std::size_t size : c.value_sizes) {
    ClusterCacheStore lilcache_store(c.url, fmt::format("bench_{}_{}", run, size));
    RoutedStore routed_store(c.url, fmt::format("rt:{}:{}:", run, size));
    DirectStore direct_store(c.url, fmt::format("hd:{}:{}:", run, size));
    constexpr int kStores = 3;
    constexpr int kDirect = 2;  // the reference
    std::array<Store*, kStores> stores{&lilcache_store, &routed_store, &direct_store};
    std::array<const char*, kStores> labels{"lilcache (backend=redis-cluster)",
                                            "lilcache routing layer (cluster::Client, GET/SET)",
                                            "hiredis-direct"};
    std::array<std::unique_ptr<Handle>, kStores> handles;
    std::vector<Dataset> data;
    data.reserve(kStores);
    for (int s = 0; s < kStores; ++s) {
      handles[s] = stores[s]->open();
      data.emplace_back(keys, size, 42 + s);
      data.back().load(*handles[s]);
    }
    std::array<Figures, kStores> fig;
    for (int rep = 0; rep < c.reps; ++rep) {
      for (int s = 0; s < kStores; ++s) {  // interleaved: all see the same machine
        double cpu = CpuNanos();
        fig[s].set_ns.push_back(data[s].time_sets(*handles[s], c.ops));
        fig[s].set_cpu_ns.push_back((CpuNanos() - cpu) / static_cast<double>(c.ops));
        cpu = CpuNanos();
        fig[s].get_ns.push_back(data[s].time_gets_into(*handles[s], c.ops));
        fig[s].get_cpu_ns.push_back((CpuNanos() - cpu) / static_cast<double>(c.ops));
      }
    }
    for (int s = 0; s < kStores; ++s) {
      data[s].verify(*handles[s], keys.size());
      fig[s].mix_ops.push_back(data[s].time_mix(*stores[s], c.processes, c.seconds));
      if (data[s].checks().bad != 0) {
        all_right = false;
        fmt::print(stderr, "{}: {} wrong gets of {}, first: {}\n", labels[s], data[s].checks().bad,
                   data[s].checks().gets, data[s].checks().first_bad);
      }
    }
    for (int s = 0; s < kStores; ++s) {
      fmt::print("| {} | {} | {:.0f} | {:.0f} | {:.0f} | {:.0f} | {:.0f} |\n", labels[s], size,
                 Median(fig[s].set_ns), Median(fig[s].get_ns), Median(fig[s].mix_ops),
                 Median(fig[s].set_cpu_ns), Median(fig[s].get_cpu_ns));
    }
    for (int s = 0; s < kDirect; ++s) {
      const double set_ratio = Median(fig[s].set_ns) / Median(fig[kDirect].set_ns);
      const double get_ratio = Median(fig[s].get_ns) / Median(fig[kDirect].get_ns);
      const double mix_ratio = Median(fig[kDirect].mix_ops) / Median(fig[s].mix_ops);
      const double set_cpu_ratio = Median(fig[s].set_cpu_ns) / Median(fig[kDirect].set_cpu_ns);
      const double get_cpu_ratio = Median(fig[s].get_cpu_ns) / Median(fig[kDirect].get_cpu_ns);
      const char* who = s == 0 ? "lilcache" : "routing layer";
      fmt::print(
          "| ratio {} / hiredis-direct | {} | {:.2f}x | {:.2f}x | {:.2f}x (time per op) | "
          "{:.2f}x | {:.2f}x |\n",
          who, size, set_ratio, get_ratio, mix_ratio, set_cpu_ratio, get_cpu_ratio);
      for (auto [what, ratio] : {std::pair{"set", set_ratio}, std::pair{"get", get_ratio}}) {
        const bool met = ratio <= 1.1;
        // The target is the routing layer's; the backend's full cost is
        // reported beside it.
        if (s == 1) all_met = all_met && met;
        verdicts.push_back(fmt::format("{} {}-byte {} time {} <= 1.1x hiredis-direct: {:.2f}x: {}",
                                       s == 1 ? "target" : "(report)", size, what, who, ratio,
                                       met ? "MET" : "MISSED"));
      }
    }
  }
  fmt::print("\n");
  for (const std::string& v : verdicts) fmt::print("{}\n", v);
  fmt::print("load average at the end: {}\n", load_average());
  // A missed target is a finding, not a failure of the run; a wrong value is.
  fmt::print("targets: {}\n", all_met ? "all MET" : "some MISSED");
  return all_right ? 0 : 1;
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) {
  bench::Config config;
  try {
    config = bench::Parse(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lilcache-cluster-bench: %s\n%s", e.what(), bench::kUsage);
    return 2;
  }
  try {
    return bench::Run(config);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lilcache-cluster-bench: %s\n", e.what());
    return 1;
  }
}
