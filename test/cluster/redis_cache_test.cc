// The Redis backend where it differs from the local engine, or where only it
// can fail (docs/cluster.md): backend selection, refused options, the
// layout on the servers, the purge sweep, get_or_set's lease across
// processes. Runs under test/cluster/with_cluster.sh ($LILCACHE_TEST_CLUSTER).
#include <doctest/doctest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "cluster/client.h"
#include "cluster/redis_cache.h"
#include "cluster/slot.h"
#include "lilcache/env.h"
#include "lilcache/lilcache.h"
#include "support/test_util.h"

using namespace std::chrono_literals;
using lilcache::Cache;
using lilcache::Error;
using lilcache::ErrorCode;
using lilcache::Options;
namespace cluster = lilcache::cluster;

namespace {

std::string Url() {
  const char* url = std::getenv("LILCACHE_TEST_CLUSTER");
  if (url == nullptr || *url == '\0')
    FAIL("$LILCACHE_TEST_CLUSTER is not set: run under with_cluster.sh");
  return url;
}

std::string FreshName() {
  return "rc_" + std::to_string(getpid()) + "_" +
         std::to_string(lilcache::Env::Default()->Random64() % 1'000'000'000);
}

// A raw connection to the cluster, to look at (and tamper with) the keys.
cluster::Client& Raw() {
  static cluster::Client client(cluster::ParseUrl(Url()), nullptr);
  return client;
}

cluster::Reply RawRun(std::initializer_list<std::string_view> args, std::string_view key) {
  return Raw().Run(cluster::KeySlot(key), cluster::Command(args));
}

ErrorCode CodeOf(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    MESSAGE("Error: " << std::string(e.what()));
    return e.code();
  }
  FAIL("no Error thrown");
  return ErrorCode::io;
}

}  // namespace

TEST_CASE("a bad backend URL is invalid_argument and never shows the password") {
  lilcache::test::TempDir dir;
  for (std::string bad :
       {"redis-cluster://", "redis://:s3cret@", "redis-cluster://h:notaport",
        "redis://:s3cret@h:99999", "memcached://h:1", "redis-cluster://h:1?timeout=soon"}) {
    INFO(bad);
    try {
      Cache::open("x", {.root = dir.path(), .backend = bad});
      FAIL("accepted");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::invalid_argument);
      CHECK(std::string(e.what()).find("s3cret") == std::string::npos);
    }
  }
}

TEST_CASE(
    "$LILCACHE_BACKEND is the backend when Options::backend is empty; \"local\" overrides it") {
  lilcache::test::TempDir dir;
  const std::string name = FreshName();
  ::setenv("LILCACHE_BACKEND", Url().c_str(), 1);
  {
    Cache c = Cache::open(name, {.root = dir.path()});
    c.set("via-env", "yes");
  }
  ::unsetenv("LILCACHE_BACKEND");
  Cache explicit_ = Cache::open(name, {.root = dir.path(), .backend = Url()});
  CHECK(explicit_.get("via-env") == "yes");
  ::setenv("LILCACHE_BACKEND", Url().c_str(), 1);
  Cache local = Cache::open(name, {.root = dir.path(), .backend = "local"});
  CHECK_FALSE(local.get("via-env").has_value());
  ::setenv("LILCACHE_BACKEND", "bogus://x", 1);
  CHECK(CodeOf([&] { Cache::open(name, {.root = dir.path()}); }) == ErrorCode::invalid_argument);
  ::unsetenv("LILCACHE_BACKEND");
}

TEST_CASE("what Redis does itself is refused at open as unsupported, and sync() too") {
  lilcache::test::TempDir dir;
  const std::string name = FreshName();
  Options base{.root = dir.path(), .backend = Url()};
  Options o = base;
  o.snapshot = "120s";
  CHECK(CodeOf([&] { Cache::open(name, o); }) == ErrorCode::unsupported);
  o = base;
  o.sync = "always";
  CHECK(CodeOf([&] { Cache::open(name, o); }) == ErrorCode::unsupported);
  o = base;
  o.max_bytes = 1 << 20;
  CHECK(CodeOf([&] { Cache::open(name, o); }) == ErrorCode::unsupported);
  Cache c = Cache::open(name, base);
  CHECK(CodeOf([&] { c.sync(); }) == ErrorCode::unsupported);
  lilcache::CompactionResult r = c.snapshot();  // BGSAVE on every master
  MESSAGE("snapshot compacted=" << r.compacted);
}

TEST_CASE("create_if_missing = false opens only a cache that exists on the cluster") {
  lilcache::test::TempDir dir;
  const std::string name = FreshName();
  Options o{.root = dir.path(), .backend = Url()};
  o.create_if_missing = false;
  CHECK(CodeOf([&] { Cache::open(name, o); }) == ErrorCode::no_such_cache);
  CHECK(::access(dir.file(name + ".log").c_str(), F_OK) != 0);  // left nothing behind
  Cache::open(name, {.root = dir.path(), .backend = Url()});
  CHECK(::access(dir.file(name + ".log").c_str(), F_OK) == 0);
  Cache again = Cache::open(name, o);
  again.set("a", "b");
  CHECK(again.get("a") == "b");
}

TEST_CASE("values are stored under lc:NAME:k: with the header; a foreign value is corrupt") {
  lilcache::test::TempDir dir;
  const std::string name = FreshName();
  Cache c = Cache::open(name, {.root = dir.path(), .backend = Url()});
  c.set("a", "hello", 1h);
  const std::string dk = "lc:" + name + ":k:a";
  cluster::Reply raw = RawRun({"GET", dk}, dk);
  REQUIRE(raw.type == cluster::Reply::Type::kString);
  REQUIRE(raw.str.size() == 34 + 5);
  CHECK(raw.str[0] == 'L');
  CHECK(raw.str.substr(34) == "hello");
  cluster::Reply pttl = RawRun({"PTTL", dk}, dk);
  CHECK(pttl.integer > 3'500'000);
  const std::string foreign = "lc:" + name + ":k:foreign";
  RawRun({"SET", foreign, "not ours"}, foreign);
  CHECK(CodeOf([&] { c.get("foreign"); }) == ErrorCode::corrupt);
  const std::string list = "lc:" + name + ":k:list";
  RawRun({"RPUSH", list, "x"}, list);
  CHECK(CodeOf([&] { c.pop("list"); }) == ErrorCode::corrupt);
}

TEST_CASE("after a purge, the hidden values are deleted in the background") {
  lilcache::test::TempDir dir;
  const std::string name = FreshName();
  Cache c = Cache::open(name, {.root = dir.path(), .backend = Url()});
  std::vector<std::pair<std::string, std::string>> items;
  for (int i = 0; i < 2000; ++i) items.emplace_back("k" + std::to_string(i), "v");
  c.set_many(items);
  c.purge();
  c.set("k7", "after");  // written after the purge: kept by the sweep
  const std::string k1 = "lc:" + name + ":k:k1";
  const std::string k1999 = "lc:" + name + ":k:k1999";
  bool gone = false;
  for (int i = 0; i < 300 && !gone; ++i) {
    gone = RawRun({"EXISTS", k1}, k1).integer == 0 && RawRun({"EXISTS", k1999}, k1999).integer == 0;
    if (!gone) std::this_thread::sleep_for(100ms);
  }
  CHECK(gone);
  CHECK(c.get("k7") == "after");
  CHECK(c.size() == 1);
}

TEST_CASE("get_or_set: when the computing process is killed, a waiter elsewhere takes over") {
  lilcache::test::TempDir dir;
  const std::string name = FreshName();
  Options o{.root = dir.path(), .backend = Url()};
  lilcache::test::SharedMemory<std::atomic<int>> computing;
  pid_t holder = lilcache::test::fork_child([&] {
    Cache c = Cache::open(name, o);
    c.get_or_set("slow", [&] {
      computing->store(1);
      std::this_thread::sleep_for(60s);  // killed first
      return std::string("never");
    });
    return 1;
  });
  while (computing->load() == 0) std::this_thread::sleep_for(10ms);
  Cache c = Cache::open(name, o);
  std::thread killer([&] {
    std::this_thread::sleep_for(300ms);
    ::kill(holder, SIGKILL);
  });
  const auto start = std::chrono::steady_clock::now();
  std::string v = c.get_or_set("slow", [] { return std::string("taken over"); });
  const auto waited = std::chrono::steady_clock::now() - start;
  killer.join();
  int status = 0;
  ::waitpid(holder, &status, 0);
  CHECK(v == "taken over");
  MESSAGE(
      "took over after " << std::chrono::duration_cast<std::chrono::milliseconds>(waited).count()
                         << " ms");
  CHECK(waited < 20s);  // the lease (3 s) expired; generous bound against a hang
}

TEST_CASE("an unreachable backend fails the open with io within retry_for, no hang") {
  lilcache::test::TempDir dir;
  // A port nobody listens on (bound, never listening, then closed: refused).
  const auto start = std::chrono::steady_clock::now();
  CHECK(CodeOf([&] {
          Cache::open("x", {.root = dir.path(),
                            .backend = "redis-cluster://127.0.0.1:1?retry_for=1s&timeout=200ms"});
        }) == ErrorCode::io);
  CHECK(std::chrono::steady_clock::now() - start < 15s);
}

TEST_CASE("processes killed at random points: no acknowledged write lost, no value popped twice") {
  lilcache::test::TempDir dir;
  const std::string name = FreshName();
  const Options o{.root = dir.path(), .backend = Url()};
  constexpr int kWorkers = 3;
  constexpr int kPool = 3000;
  {
    Cache c = Cache::open(name, o);
    std::vector<std::pair<std::string, std::string>> items;
    for (int j = 0; j < kPool; ++j) items.emplace_back("pool-" + std::to_string(j), "x");
    c.set_many(items);
  }
  struct Shared {
    std::atomic<std::uint64_t> acked[kWorkers];       // w<p>-0 .. acked-1 were set
    std::atomic<std::uint64_t> increments[kWorkers];  // increments that returned
    std::atomic<int> popped[kPool];                   // deliveries of each pool key
    std::atomic<std::uint64_t> kills;
  };
  lilcache::test::SharedMemory<Shared> shared;
  auto worker = [&](int p) {
    return lilcache::test::fork_child([&, p] {
      Cache c = Cache::open(name, o);
      std::uint64_t state = static_cast<std::uint64_t>(getpid()) * 0x9e3779b97f4a7c15ull;
      for (std::uint64_t i = shared->acked[p].load();; ++i) {
        c.set("w" + std::to_string(p) + "-" + std::to_string(i), std::to_string(i));
        shared->acked[p].store(i + 1);
        c.increment("counter");
        shared->increments[p].fetch_add(1);
        const int j = static_cast<int>(lilcache::test::splitmix64(state) % kPool);
        if (c.pop("pool-" + std::to_string(j))) shared->popped[j].fetch_add(1);
      }
      return 0;
    });
  };
  std::vector<pid_t> pids;
  for (int p = 0; p < kWorkers; ++p) pids.push_back(worker(p));
  std::uint64_t rng = 12345;
  const auto end = std::chrono::steady_clock::now() + 4s;
  while (std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(
        std::chrono::milliseconds(50 + lilcache::test::splitmix64(rng) % 150));
    const int p = static_cast<int>(lilcache::test::splitmix64(rng) % kWorkers);
    ::kill(pids[static_cast<std::size_t>(p)], SIGKILL);
    ::waitpid(pids[static_cast<std::size_t>(p)], nullptr, 0);
    shared->kills.fetch_add(1);
    pids[static_cast<std::size_t>(p)] = worker(p);
  }
  for (pid_t pid : pids) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    shared->kills.fetch_add(1);
  }
  Cache c = Cache::open(name, o);  // the cache always reopens
  std::uint64_t acked = 0, increments = 0;
  for (int p = 0; p < kWorkers; ++p) {
    std::vector<std::string> keys;
    for (std::uint64_t i = 0; i < shared->acked[p].load(); ++i) {
      keys.push_back("w" + std::to_string(p) + "-" + std::to_string(i));
    }
    std::vector<std::optional<std::string>> got = c.get_many(keys);
    std::uint64_t lost = 0;
    for (std::size_t i = 0; i < got.size(); ++i) lost += got[i] == std::to_string(i) ? 0 : 1;
    CHECK(lost == 0);
    acked += keys.size();
    increments += shared->increments[p].load();
  }
  const std::uint64_t kills = shared->kills.load();
  const auto counter = static_cast<std::uint64_t>(std::stoll(c.get("counter").value_or("0")));
  MESSAGE(kills << " SIGKILLs; " << acked << " sets and " << increments
                << " increments acknowledged; counter " << counter);
  CHECK(counter >= increments);
  CHECK(counter <= increments + kills);  // at most one in flight per killed process
  int twice = 0, delivered = 0;
  for (int j = 0; j < kPool; ++j) {
    twice += shared->popped[j].load() > 1 ? 1 : 0;
    delivered += shared->popped[j].load();
  }
  CHECK(twice == 0);
  // Every pool key is either still there or was popped (by one, or by a
  // process killed before it could record it).
  std::vector<std::string> pool;
  for (int j = 0; j < kPool; ++j) pool.push_back("pool-" + std::to_string(j));
  std::vector<std::optional<std::string>> left = c.get_many(pool);
  int vanished = 0;
  for (int j = 0; j < kPool; ++j) {
    if (!left[static_cast<std::size_t>(j)] && shared->popped[j].load() == 0) ++vanished;
  }
  MESSAGE(delivered << " pops delivered; " << vanished << " popped by a process killed first");
  CHECK(static_cast<std::uint64_t>(vanished) <= kills);
}

TEST_CASE("get_or_set: the lease is renewed while a compute runs longer than the lease") {
  lilcache::test::TempDir dir;
  const std::string name = FreshName();
  const Options o{.root = dir.path(), .backend = Url()};
  Cache a = Cache::open(name, o);
  Cache b = Cache::open(name, o);
  std::atomic<int> computed{0};
  std::atomic<bool> started{false};
  std::thread slow([&] {
    a.get_or_set("long", [&] {
      started.store(true);
      computed.fetch_add(1);
      // Longer than the lease (3 s): only its renewal keeps the others waiting.
      std::this_thread::sleep_for(
          std::chrono::milliseconds(lilcache::cluster::RedisCache::kLeaseMs + 1500));
      return std::string("slow");
    });
  });
  while (!started.load()) std::this_thread::sleep_for(5ms);
  std::this_thread::sleep_for(
      std::chrono::milliseconds(lilcache::cluster::RedisCache::kLeaseMs + 500));
  const std::string v = b.get_or_set("long", [&] {
    computed.fetch_add(1);
    return std::string("second");
  });
  slow.join();
  CHECK(v == "slow");
  CHECK(computed.load() == 1);
}
