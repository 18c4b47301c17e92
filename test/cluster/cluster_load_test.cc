// The Cache API on a Redis Cluster that changes under load: slots moved by
// `redis-cli --cluster reshard`, a master killed (failover), a master that
// stops answering. Each case runs on a cluster of its own (test/meson.build
// selects it with -tc), under test/cluster/with_cluster.sh.
#include <doctest/doctest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "cluster/slot.h"
#include "lilcache/env.h"
#include "lilcache/lilcache.h"
#include "support/redis_cluster.h"
#include "support/test_util.h"

using namespace std::chrono_literals;
using lilcache::Cache;
using lilcache::Error;
using lilcache::ErrorCode;
using lilcache::Options;
using lilcache::test::RedisNode;
using Clock = std::chrono::steady_clock;

namespace {

std::int64_t Ms(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

// A key of cache `name` whose slot `master` serves.
std::string KeyServedBy(const std::string& name, const RedisNode& master, const std::string& p) {
  for (int i = 0;; ++i) {
    std::string k = p + std::to_string(i);
    if (master.serves(lilcache::cluster::KeySlot("lc:" + name + ":k:" + k))) return k;
  }
}

// What one writer process did, in memory shared with the test.
struct WriterLog {
  std::atomic<std::uint64_t> acked{0};       // keys w<p>-0 .. acked-1 were set
  std::atomic<std::uint64_t> increments{0};  // increments that returned
  std::atomic<std::uint64_t> uncertain{0};   // increments that threw (may have applied)
  std::atomic<std::uint64_t> errors{0};
  std::atomic<std::uint64_t> max_call_ms{0};  // the longest call
};

}  // namespace

TEST_CASE("resharding while processes write through the Cache loses no acknowledged write") {
  lilcache::test::TempDir dir;
  const std::string name = "reshard_" + std::to_string(getpid());
  const Options o{.root = dir.path(), .backend = lilcache::test::ClusterUrl()};
  {
    Cache c = Cache::open(name, o);
    c.set("old", "x");
    c.purge();  // every slot now has an epoch key: the scripts touch two keys of a moving slot
  }
  constexpr int kWriters = 3;
  lilcache::test::SharedMemory<std::array<WriterLog, kWriters>> logs;
  lilcache::test::SharedMemory<std::atomic<bool>> stop;
  std::vector<pid_t> kids;
  for (int p = 0; p < kWriters; ++p) {
    kids.push_back(lilcache::test::fork_child([&, p] {
      Cache c = Cache::open(name, o);
      WriterLog& log = (*logs)[static_cast<std::size_t>(p)];
      for (std::uint64_t i = 0; !stop->load(); ++i) {
        const auto start = Clock::now();
        try {
          c.set("w" + std::to_string(p) + "-" + std::to_string(i), std::to_string(i * 7));
          log.acked.store(i + 1);
        } catch (const Error& e) {
          log.errors.fetch_add(1);
          return 2;  // the keys must stay contiguous: stop at the first failure
        }
        try {
          c.increment("counter");
          log.increments.fetch_add(1);
        } catch (const Error&) {
          log.uncertain.fetch_add(1);
        }
        const std::uint64_t ms = static_cast<std::uint64_t>(Ms(Clock::now() - start));
        log.max_call_ms.store(std::max(log.max_call_ms.load(), ms));
      }
      return 0;
    }));
  }
  std::this_thread::sleep_for(500ms);
  std::vector<RedisNode> masters;
  for (const RedisNode& n : lilcache::test::ClusterNodes()) {
    if (n.master) masters.push_back(n);
  }
  REQUIRE(masters.size() == 3);
  const auto reshard_start = Clock::now();
  pid_t reshard = lilcache::test::StartReshard(masters[0], masters[1], 1500);
  CHECK(lilcache::test::wait_child(reshard, 300s) == 0);
  const auto reshard_ms = Ms(Clock::now() - reshard_start);
  std::this_thread::sleep_for(300ms);
  stop->store(true);
  for (pid_t k : kids) CHECK(lilcache::test::wait_child(k) == 0);

  Cache c = Cache::open(name, o);
  std::uint64_t total = 0, increments = 0, uncertain = 0;
  for (int p = 0; p < kWriters; ++p) {
    const WriterLog& log = (*logs)[static_cast<std::size_t>(p)];
    CHECK(log.errors.load() == 0);
    MESSAGE("writer " << p << ": " << log.acked.load() << " sets acknowledged, longest call "
                      << log.max_call_ms.load() << " ms");
    std::vector<std::string> keys;
    for (std::uint64_t i = 0; i < log.acked.load(); ++i) {
      keys.push_back("w" + std::to_string(p) + "-" + std::to_string(i));
    }
    std::vector<std::optional<std::string>> got = c.get_many(keys);
    std::uint64_t missing = 0;
    for (std::uint64_t i = 0; i < got.size(); ++i) {
      if (got[i] != std::to_string(i * 7)) ++missing;
    }
    CHECK(missing == 0);
    total += log.acked.load();
    increments += log.increments.load();
    uncertain += log.uncertain.load();
  }
  MESSAGE("resharding 1500 slots took " << reshard_ms << " ms while " << total
                                        << " sets were acknowledged");
  CHECK(total > 0);
  const std::int64_t counter = std::stoll(c.get("counter").value_or("0"));
  CHECK(counter >= static_cast<std::int64_t>(increments));
  CHECK(counter <= static_cast<std::int64_t>(increments + uncertain));
  CHECK_FALSE(c.contains("old"));  // the purge still holds on the moved slots
}

TEST_CASE("a master is killed: writes resume on the promoted replica, no surviving write is lost") {
  lilcache::test::TempDir dir;
  const std::string name = "failover_" + std::to_string(getpid());
  const std::string url = lilcache::test::ClusterUrl() + "?retry_for=20s&timeout=500ms";
  const Options o{.root = dir.path(), .backend = url};
  Cache c = Cache::open(name, o);
  const RedisNode victim = lilcache::test::MasterOf(0);
  const std::string victim_key = KeyServedBy(name, victim, "v");
  // Writers: one thread per key space, each writing its own keys in order.
  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> killed_at_ms{-1};
  std::atomic<std::int64_t> first_ok_after_kill_ms{-1};
  std::atomic<std::uint64_t> max_call_ms{0};
  std::atomic<std::uint64_t> errors{0};
  const auto t0 = Clock::now();
  std::vector<std::vector<std::string>> acked(2);
  std::vector<std::thread> writers;
  for (int t = 0; t < 2; ++t) {
    writers.emplace_back([&, t] {
      for (std::uint64_t i = 0; !stop.load(); ++i) {
        const std::string k = "t" + std::to_string(t) + "-" + std::to_string(i);
        const auto start = Clock::now();
        try {
          c.set(k, k);
          acked[static_cast<std::size_t>(t)].push_back(k);
          c.set(victim_key, k);  // a key of the victim's slots
          const std::int64_t killed = killed_at_ms.load();
          if (killed >= 0) {
            std::int64_t expected = -1;
            first_ok_after_kill_ms.compare_exchange_strong(expected, Ms(Clock::now() - t0));
          }
        } catch (const Error& e) {
          errors.fetch_add(1);
        }
        const std::uint64_t ms = static_cast<std::uint64_t>(Ms(Clock::now() - start));
        max_call_ms.store(std::max(max_call_ms.load(), ms));
      }
    });
  }
  std::this_thread::sleep_for(1s);
  lilcache::test::KillNode(victim);
  killed_at_ms.store(Ms(Clock::now() - t0));
  for (int i = 0; i < 300 && first_ok_after_kill_ms.load() < 0; ++i)
    std::this_thread::sleep_for(100ms);
  std::this_thread::sleep_for(1s);
  stop.store(true);
  for (auto& w : writers) w.join();
  REQUIRE(first_ok_after_kill_ms.load() >= 0);
  const std::int64_t unavailable = first_ok_after_kill_ms.load() - killed_at_ms.load();
  MESSAGE("writes to the killed master's slots resumed "
          << unavailable << " ms after the kill; longest call " << max_call_ms.load() << " ms; "
          << errors.load() << " calls failed");
  CHECK(max_call_ms.load() < 30'000);  // retry_for (20 s) + timeout + slack: no hang
  // Every acknowledged write of a key whose master survived is there.
  std::uint64_t lost_elsewhere = 0, lost_on_victim = 0, checked = 0;
  for (const auto& keys : acked) {
    std::vector<std::optional<std::string>> got = c.get_many(keys);
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (got[i] == keys[i]) continue;
      const int slot = lilcache::cluster::KeySlot("lc:" + name + ":k:" + keys[i]);
      (victim.serves(slot) ? lost_on_victim : lost_elsewhere)++;
    }
    checked += keys.size();
  }
  MESSAGE(checked << " acknowledged writes checked; " << lost_on_victim
                  << " lost on the killed master (asynchronous replication)");
  CHECK(lost_elsewhere == 0);
  CHECK(checked > 0);
}

TEST_CASE("a master that stops answering: its slots fail with io within retry_for, others work") {
  lilcache::test::TempDir dir;
  const std::string name = "stall_" + std::to_string(getpid());
  const std::string url = lilcache::test::ClusterUrl() + "?retry_for=2s&timeout=300ms";
  Cache c = Cache::open(name, {.root = dir.path(), .backend = url});
  const RedisNode stalled = lilcache::test::MasterOf(0);
  RedisNode other;
  for (const RedisNode& n : lilcache::test::ClusterNodes()) {
    if (n.master && n.id != stalled.id) other = n;
  }
  REQUIRE(other.port != 0);
  const std::string on_stalled = KeyServedBy(name, stalled, "s");
  const std::string on_other = KeyServedBy(name, other, "o");
  c.set(on_stalled, "before");
  c.pop(on_other);  // the pop script is loaded (on another master)
  lilcache::test::StopNode(stalled);
  // A pop is never sent twice (the first may have run once the node wakes
  // up): no reply is an Error saying so, not a retry that finds nothing.
  try {
    c.pop(on_stalled);
    MESSAGE("the pop went through (a failover happened first)");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::io);
    CHECK(std::string(e.what()).find("may or may not have run") != std::string::npos);
    MESSAGE("pop: " << std::string(e.what()));
  }
  const auto start = Clock::now();
  try {
    c.set(on_stalled, "during");
    MESSAGE("the set went through (a failover happened first)");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::io);
    MESSAGE("failed after " << Ms(Clock::now() - start) << " ms: " << std::string(e.what()));
  }
  CHECK(Clock::now() - start < 10s);  // retry_for 2 s + timeout: no hang
  c.set(on_other, "fine");
  CHECK(c.get(on_other) == "fine");
  lilcache::test::ContinueNode(stalled);
  lilcache::test::WaitClusterOk();
  c.set(on_stalled, "after");
  CHECK(c.get(on_stalled) == "after");
}
