// The conditional writes (add, increment, compare-and-set, touch, persist,
// ttl), get_or_set and the batches, in one process. Races across processes
// are in test/process/update_race_test.cc.
#include <doctest/doctest.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "lilcache/env.h"
#include "lilcache/lilcache.h"
#include "support/fault_env.h"
#include "support/test_util.h"

using lilcache::Cache;
using lilcache::Error;
using lilcache::ErrorCode;
using lilcache::kNoExpiry;
using lilcache::test::FaultEnv;
using lilcache::test::TempDir;
using std::chrono::milliseconds;

using lilcache::test::FakeClockEnv;

TEST_CASE("add stores only when the key is absent, expired or purged") {
  TempDir dir;
  FakeClockEnv env;
  auto c = Cache::open("t", {.root = dir.path(), .env = &env});
  CHECK(c.add("k", "first"));
  CHECK(!c.add("k", "second"));
  CHECK(c.get("k") == "first");
  CHECK(c.erase("k"));
  CHECK(c.add("k", "after erase"));
  CHECK(c.get("k") == "after erase");
  c.set("t", "short", milliseconds(10));
  env.now += 10;
  CHECK(c.add("t", "after expiry", milliseconds(1000)));
  CHECK(c.get("t") == "after expiry");
  c.purge();
  CHECK(c.add("k", "after purge"));
  CHECK(c.get("k") == "after purge");
  CHECK_ERROR_CODE(c.add("", "v"), ErrorCode::invalid_argument);
  CHECK_ERROR_CODE(c.add("k", "v", milliseconds(0)), ErrorCode::invalid_argument);
}

TEST_CASE("racing adders of one key in many threads: exactly one wins") {
  TempDir dir;
  auto c = Cache::open("t", {.root = dir.path()});
  constexpr int kThreads = 8, kKeys = 300;
  std::atomic<int> wins{0};
  std::vector<std::atomic<int>> winner(kKeys);
  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int k = 0; k < kKeys; ++k) {
        if (c.add("key" + std::to_string(k), std::to_string(t))) {
          wins.fetch_add(1);
          winner[k].store(t + 1);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(wins.load() == kKeys);
  for (int k = 0; k < kKeys; ++k) {
    CHECK(c.get("key" + std::to_string(k)) == std::to_string(winner[k].load() - 1));
  }
}

TEST_CASE("increment counts from initial, stores decimal text and keeps the expiry") {
  TempDir dir;
  FakeClockEnv env;
  auto c = Cache::open("t", {.root = dir.path(), .env = &env});
  CHECK(c.increment("n") == 1);
  CHECK(c.increment("n") == 2);
  CHECK(c.increment("n", 40) == 42);
  CHECK(c.get("n") == "42");
  CHECK(c.decrement("n", 50) == -8);
  CHECK(c.get("n") == "-8");
  CHECK(c.increment("m", 5, 100) == 105);
  CHECK(c.decrement("d") == -1);
  CHECK(c.decrement("dt", 2, 10, milliseconds(500)) == 8);
  CHECK(c.ttl("dt") == milliseconds(500));
  c.set("s", "7");
  CHECK(c.increment("s") == 8);
  // The ttl applies when the increment creates the key; later ones keep it.
  CHECK(c.increment("e", 1, 0, milliseconds(1000)) == 1);
  env.now += 600;
  CHECK(c.increment("e") == 2);
  CHECK(c.ttl("e") == milliseconds(400));
  env.now += 400;
  CHECK(!c.get("e"));
  CHECK(c.increment("e") == 1);  // expired: starts again
  CHECK(c.ttl("e") == kNoExpiry);
}

TEST_CASE("increment of a value that is not a decimal int64 is an invalid_argument error") {
  TempDir dir;
  auto c = Cache::open("t", {.root = dir.path()});
  for (const char* bad : {"", "abc", "1.5", " 1", "1 ", "+1", "0x10", "99999999999999999999"}) {
    CAPTURE(bad);
    c.set("k", bad);
    CHECK_ERROR_CODE(c.increment("k"), ErrorCode::invalid_argument);
    CHECK(c.get("k") == bad);  // unchanged
  }
  c.set("k", std::string("1\0", 2));
  CHECK_ERROR_CODE(c.increment("k"), ErrorCode::invalid_argument);
}

TEST_CASE("increment past the int64 range is a limit error and leaves the value") {
  TempDir dir;
  auto c = Cache::open("t", {.root = dir.path()});
  c.set("k", std::to_string(INT64_MAX));
  CHECK_ERROR_CODE(c.increment("k"), ErrorCode::limit);
  CHECK(c.get("k") == std::to_string(INT64_MAX));
  c.set("k", std::to_string(INT64_MIN));
  CHECK_ERROR_CODE(c.decrement("k"), ErrorCode::limit);
  CHECK_ERROR_CODE(c.decrement("x", INT64_MIN), ErrorCode::limit);
  CHECK(c.increment("x", INT64_MAX) == INT64_MAX);
  CHECK(c.increment("x", INT64_MIN) == -1);
}

TEST_CASE("concurrent increments from threads add up exactly") {
  TempDir dir;
  auto c = Cache::open("t", {.root = dir.path()});
  constexpr int kThreads = 4, kEach = 5000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) c.increment("counter");
    });
  }
  for (auto& th : threads) th.join();
  CHECK(c.get("counter") == std::to_string(kThreads * kEach));
}

TEST_CASE("get_versioned and compare_and_set: a version is one write of the key") {
  TempDir dir;
  auto c = Cache::open("t", {.root = dir.path()});
  CHECK(!c.get_versioned("k"));
  CHECK(!c.compare_and_set("k", 1, "x"));  // absent
  CHECK(!c.get("k"));
  c.set("k", "a");
  auto v1 = c.get_versioned("k");
  REQUIRE(v1);
  CHECK(v1->value == "a");
  CHECK(c.compare_and_set("k", v1->version, "b"));
  CHECK(c.get("k") == "b");
  CHECK(!c.compare_and_set("k", v1->version, "c"));  // stale version
  CHECK(c.get("k") == "b");
  auto v2 = c.get_versioned("k");
  REQUIRE(v2);
  CHECK(v2->version != v1->version);
  c.set("k", "b");  // the same value, a new write: a new version
  CHECK(!c.compare_and_set("k", v2->version, "d"));
  // A version survives a compaction.
  auto v3 = c.get_versioned("k");
  REQUIRE(v3);
  CHECK(c.compact().compacted);
  CHECK(c.get_versioned("k")->version == v3->version);
  CHECK(!c.compare_and_erase("k", v2->version));
  CHECK(c.compare_and_erase("k", v3->version));
  CHECK(!c.get("k"));
  CHECK(!c.compare_and_erase("k", v3->version));
}

TEST_CASE("racing compare_and_set calls with one version: exactly one wins") {
  TempDir dir;
  auto c = Cache::open("t", {.root = dir.path()});
  constexpr int kThreads = 4, kRounds = 300;
  for (int r = 0; r < kRounds; ++r) {
    c.set("k", "base");
    const std::uint64_t version = c.get_versioned("k")->version;
    std::atomic<int> wins{0}, winner{-1};
    std::barrier start(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        start.arrive_and_wait();
        if (c.compare_and_set("k", version, std::to_string(t))) {
          wins.fetch_add(1);
          winner.store(t);
        }
      });
    }
    for (auto& th : threads) th.join();
    REQUIRE(wins.load() == 1);
    REQUIRE(c.get("k") == std::to_string(winner.load()));
  }
}

TEST_CASE("a lost race is never revived by a replay of the log after a reboot") {
  // Losers of add, compare_and_set and pop races append a record before
  // they know they lost; those records are marked aborted, else a replay
  // (which takes each key's newest record) could bring a loser back.
  TempDir dir;
  constexpr int kThreads = 4, kKeys = 400;
  std::vector<std::string> expected(kKeys);
  {
    auto c = Cache::open("t", {.root = dir.path()});
    for (int k = 0; k < kKeys; ++k) c.set("k" + std::to_string(k), "base");
    std::barrier step(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        const std::string me = std::to_string(t);
        for (int k = 0; k < kKeys; ++k) {
          // In lock step, so that the calls of one key really race.
          const std::string key = "k" + std::to_string(k);
          const std::uint64_t version = c.get_versioned(key)->version;
          step.arrive_and_wait();
          (void)c.compare_and_set(key, version, "cas" + me);
          step.arrive_and_wait();
          (void)c.pop(key);
          step.arrive_and_wait();
          (void)c.add(key, "add" + me);
          step.arrive_and_wait();
          if (k % 2 == 0) (void)c.pop(key);  // half of them end absent
        }
      });
    }
    for (auto& th : threads) th.join();
    for (int k = 0; k < kKeys; ++k) {
      expected[k] = c.get("k" + std::to_string(k)).value_or("<absent>");
    }
  }
  FaultEnv rebooted;
  rebooted.set_boot_id("another-boot");
  auto c = Cache::open("t", {.root = dir.path(), .env = &rebooted});  // replays the log
  int differ = 0;
  for (int k = 0; k < kKeys; ++k) {
    differ += c.get("k" + std::to_string(k)).value_or("<absent>") != expected[k] ? 1 : 0;
  }
  CHECK(differ == 0);
}

TEST_CASE("touch gives a new expiry keeping the value; persist removes it; ttl reports it") {
  TempDir dir;
  FakeClockEnv env;
  auto c = Cache::open("t", {.root = dir.path(), .env = &env});
  CHECK(!c.ttl("k"));
  CHECK(!c.touch("k", milliseconds(10)));
  CHECK(!c.persist("k"));
  c.set("k", "v");
  CHECK(c.ttl("k") == kNoExpiry);
  CHECK(c.persist("k"));  // nothing to do, still true
  CHECK(c.touch("k", milliseconds(1000)));
  CHECK(c.get("k") == "v");
  CHECK(c.ttl("k") == milliseconds(1000));
  env.now += 250;
  CHECK(c.ttl("k") == milliseconds(750));
  CHECK(c.persist("k"));
  CHECK(c.ttl("k") == kNoExpiry);
  env.now += 10'000;
  CHECK(c.get("k") == "v");
  CHECK(c.touch("k", milliseconds(5)));
  env.now += 5;
  CHECK(!c.ttl("k"));
  CHECK(!c.get("k"));
  CHECK(!c.touch("k", milliseconds(5)));
  CHECK_ERROR_CODE(c.touch("k", milliseconds(-1)), ErrorCode::invalid_argument);
}

TEST_CASE("a get_or_set wait hook that throws ends the wait and stores nothing") {
  TempDir dir;
  auto computer = Cache::open("t", {.root = dir.path()});
  std::atomic<int> hook_calls{0};
  struct Interrupted {};
  auto waiter = Cache::open("t", {.root = dir.path(), .get_or_set_wait_hook = [&] {
                                    if (hook_calls.fetch_add(1) + 1 == 3) throw Interrupted{};
                                  }});
  std::atomic<bool> computing{false}, release{false};
  std::thread t([&] {
    CHECK(computer.get_or_set("k", [&] {
      computing = true;
      while (!release) std::this_thread::sleep_for(milliseconds(1));
      return std::string("v");
    }) == "v");
  });
  while (!computing) std::this_thread::sleep_for(milliseconds(1));
  bool interrupted = false;
  try {
    waiter.get_or_set("k", [] { return std::string("never"); });
  } catch (const Interrupted&) {
    interrupted = true;
  }
  CHECK(interrupted);
  CHECK(hook_calls == 3);                    // one call per poll, until it threw
  CHECK_FALSE(waiter.get("k").has_value());  // the computer is still at it
  release = true;
  t.join();
  CHECK(waiter.get("k") == "v");
  // A hit never calls the hook.
  CHECK(waiter.get_or_set("k", [] { return std::string("never"); }) == "v");
  CHECK(hook_calls == 3);
}

TEST_CASE("get_or_set computes a missing value once and returns a present one") {
  TempDir dir;
  FakeClockEnv env;
  auto c = Cache::open("t", {.root = dir.path(), .env = &env});
  int calls = 0;
  auto compute = [&] {
    ++calls;
    return std::string("computed");
  };
  CHECK(c.get_or_set("k", compute) == "computed");
  CHECK(c.get_or_set("k", compute) == "computed");
  CHECK(calls == 1);
  CHECK(c.get("k") == "computed");
  CHECK(c.get_or_set("e", compute, milliseconds(100)) == "computed");
  CHECK(c.ttl("e") == milliseconds(100));
  env.now += 100;
  CHECK(c.get_or_set("e", compute, milliseconds(100)) == "computed");
  CHECK(calls == 3);
}

TEST_CASE("get_or_set: an exception of compute reaches its caller and stores nothing") {
  TempDir dir;
  auto c = Cache::open("t", {.root = dir.path()});
  CHECK_THROWS_WITH_AS(c.get_or_set("k", []() -> std::string { throw std::runtime_error("boom"); }),
                       "boom", std::runtime_error);
  CHECK(!c.get("k"));
  // The lease was released: the next caller computes.
  CHECK(c.get_or_set("k", [] { return std::string("ok"); }) == "ok");
}

TEST_CASE("get_or_set from many threads runs compute once") {
  TempDir dir;
  auto c = Cache::open("t", {.root = dir.path()});
  constexpr int kThreads = 16;
  std::atomic<int> calls{0};
  std::barrier start(kThreads);
  std::vector<std::string> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      got[t] = c.get_or_set("k", [&] {
        calls.fetch_add(1);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        return std::string("v");
      });
    });
  }
  for (auto& th : threads) th.join();
  CHECK(calls.load() == 1);
  for (const auto& g : got) CHECK(g == "v");
}

TEST_CASE("get_or_set waiters whose computing thread throws compute themselves, once") {
  TempDir dir;
  auto c = Cache::open("t", {.root = dir.path()});
  constexpr int kThreads = 6;
  std::atomic<int> calls{0}, thrown{0};
  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      try {
        c.get_or_set("k", [&] {
          const int n = calls.fetch_add(1);
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
          if (n == 0) throw std::runtime_error("first compute fails");
          return std::string("second");
        });
      } catch (const std::runtime_error&) {
        thrown.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(thrown.load() == 1);
  CHECK(calls.load() == 2);
  CHECK(c.get("k") == "second");
}

TEST_CASE("get_or_set gives up after Options::get_or_set_timeout with a busy error") {
  TempDir dir;
  auto slow = Cache::open("t", {.root = dir.path()});
  auto waiter = Cache::open("t", {.root = dir.path(), .get_or_set_timeout = "50ms"});
  std::atomic<bool> computing{false}, release{false};
  std::thread t([&] {
    slow.get_or_set("k", [&] {
      computing = true;
      while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      return std::string("late");
    });
  });
  while (!computing) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK_ERROR_CODE(waiter.get_or_set("k", [] { return std::string("never"); }), ErrorCode::busy);
  release = true;
  t.join();
  CHECK(waiter.get("k") == "late");
  CHECK_ERROR_CODE(Cache::open("t", {.root = dir.path(), .get_or_set_timeout = "0s"}),
                   ErrorCode::invalid_argument);
  CHECK_ERROR_CODE(Cache::open("t", {.root = dir.path(), .get_or_set_timeout = "soon"}),
                   ErrorCode::invalid_argument);
  // "" is the default, as for the other options.
  CHECK(Cache::open("t", {.root = dir.path(), .get_or_set_timeout = ""}).get("k") == "late");
}

TEST_CASE("get_many set_many and erase_many act like single calls in order") {
  TempDir dir;
  FakeClockEnv env;
  auto c = Cache::open("t", {.root = dir.path(), .env = &env});
  CHECK(c.get_many({}).empty());
  c.set_many({{"a", "1"}, {"b", "2"}, {"a", "3"}});
  auto got = c.get_many({"a", "b", "missing", "a"});
  REQUIRE(got.size() == 4);
  CHECK(got[0] == "3");
  CHECK(got[1] == "2");
  CHECK(!got[2]);
  CHECK(got[3] == "3");
  CHECK(c.erase_many({"a", "missing", "a"}) == 1);
  CHECK(!c.get("a"));
  c.set_many({{"t", "x"}}, milliseconds(10));
  CHECK(c.ttl("t") == milliseconds(10));
  // A bad item fails the whole batch before anything is written.
  CHECK_ERROR_CODE(c.set_many({{"ok", "1"}, {"", "2"}}), ErrorCode::invalid_argument);
  CHECK(!c.get("ok"));
  CHECK_ERROR_CODE(c.get_many({"a", std::string(lilcache::kMaxKeyBytes + 1, 'k')}),
                   ErrorCode::limit);
}

TEST_CASE("set_many of more keys than the index holds grows it midway") {
  TempDir dir;
  auto c = Cache::open("t", {.root = dir.path()});
  std::vector<std::pair<std::string, std::string>> items;
  std::vector<std::string> keys;
  for (int i = 0; i < 5000; ++i) {
    items.emplace_back("key" + std::to_string(i), "value" + std::to_string(i));
    keys.push_back("key" + std::to_string(i));
  }
  c.set_many(items);
  auto got = c.get_many(keys);
  int wrong = 0;
  for (int i = 0; i < 5000; ++i) wrong += got[i] != "value" + std::to_string(i) ? 1 : 0;
  CHECK(wrong == 0);
  CHECK(c.size() == 5000);
  CHECK(c.erase_many(keys) == 5000);
  CHECK(c.size() == 0);
}

TEST_CASE("the module-level functions reach the new operations on the default cache") {
  TempDir dir;
  lilcache::init("mod", {.root = dir.path()});
  CHECK(lilcache::add("k", "v"));
  CHECK(!lilcache::add("k", "w"));
  CHECK(lilcache::increment("n") == 1);
  CHECK(lilcache::decrement("n") == 0);
  auto v = lilcache::get_versioned("k");
  REQUIRE(v);
  CHECK(lilcache::compare_and_set("k", v->version, "x"));
  CHECK(lilcache::touch("k", milliseconds(60'000)));
  CHECK(lilcache::ttl("k").has_value());
  CHECK(lilcache::persist("k"));
  CHECK(lilcache::ttl("k") == kNoExpiry);
  CHECK(lilcache::get_or_set("g", [] { return std::string("c"); }) == "c");
  lilcache::set_many({{"a", "1"}, {"b", "2"}});
  CHECK(lilcache::get_many({"a", "b"}).size() == 2);
  CHECK(lilcache::erase_many({"a", "b"}) == 2);
  CHECK(lilcache::compare_and_erase("k", lilcache::get_versioned("k")->version));
  CHECK(!lilcache::get("k"));
}

TEST_CASE("a get_or_set counts one lookup in stats however long it waits") {
  TempDir dir;
  auto c = Cache::open("t", {.root = dir.path()});
  std::thread waiter;
  const std::string v = c.get_or_set("k", [&] {
    waiter =
        std::thread([&] { CHECK(c.get_or_set("k", [] { return std::string("no"); }) == "v"); });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the waiter polls meanwhile
    return std::string("v");
  });
  waiter.join();
  CHECK(v == "v");
  const lilcache::Stats st = c.stats();
  // One miss per get_or_set (its first get); the waiter's polls are not counted.
  CHECK(st.misses == 2);
  CHECK(st.hits == 0);
}

TEST_CASE("a set racing increments of the key is never lost to one that did not see it") {
  // A set draws its seq, appends, then publishes. An increment that read the
  // key before that publication draws a higher seq and may publish first.
  // The set must then take effect after it: it may not count as overwritten
  // "just before" the increment, which computed its value without it. So
  // once set() returns a value that is not an integer (every increment
  // then fails), the key holds that value.
  TempDir dir(true, lilcache::test::tmpfs_dir());
  auto c = Cache::open("t", {.root = dir.path()});
  const std::string text(32 * 1024, 'x');  // not an integer, and slow to copy
  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> counted{0};
  std::atomic<int> errors{0};
  std::vector<std::thread> incrementers;
  for (int t = 0; t < 2; ++t) {
    incrementers.emplace_back([&] {
      while (!stop.load()) {
        try {
          counted.store(c.increment("k"));
        } catch (const Error& e) {
          if (e.code() != ErrorCode::invalid_argument) ++errors;
        }
      }
    });
  }
  int rounds = 0, lost = 0;
  std::string seen;
  for (; rounds < 4000 && lost == 0; ++rounds) {
    c.set("k", "0");
    c.set("k", text);
    std::optional<std::string> v = c.get("k");
    if (v != text) {
      ++lost;
      seen = v ? v->substr(0, 20) : "nothing";
    }
  }
  stop = true;
  for (auto& t : incrementers) t.join();
  INFO("after ", rounds, " rounds the key held ", seen, " instead of the value set");
  CHECK(lost == 0);
  CHECK(errors == 0);
  CHECK(counted.load() > 0);
}

TEST_CASE("a value's kind is stored with it and kept by touch persist compaction and replay") {
  TempDir dir;
  using lilcache::ValueKind;
  using lilcache::WriteOptions;
  {
    auto c = Cache::open("t", {.root = dir.path()});
    c.set("text", "héllo", WriteOptions{.kind = ValueKind::text});
    c.set("plain", "raw");
    CHECK(c.add("pickled", "\x80\x04", WriteOptions{.kind = ValueKind::serialized}));
    c.increment("n");
    CHECK(c.get_versioned("text")->kind == ValueKind::text);
    CHECK(c.get("text") == "héllo");  // get() returns the bytes
    CHECK(c.get_versioned("plain")->kind == ValueKind::bytes);
    CHECK(c.get_versioned("pickled")->kind == ValueKind::serialized);
    CHECK(c.get_versioned("n")->kind == ValueKind::integer);
    c.set("n2", "5", WriteOptions{.kind = ValueKind::text});
    CHECK(c.increment("n2") == 6);  // an increment makes it an integer
    CHECK(c.get_versioned("n2")->kind == ValueKind::integer);
    CHECK(c.touch("text", milliseconds(60'000)));
    CHECK(c.get_versioned("text")->kind == ValueKind::text);
    CHECK(c.persist("text"));
    CHECK(c.get_versioned("text")->kind == ValueKind::text);
    auto v = c.get_versioned("plain");
    CHECK(
        c.compare_and_set("plain", v->version, "now text", WriteOptions{.kind = ValueKind::text}));
    CHECK(c.get_versioned("plain")->kind == ValueKind::text);
    CHECK(c.compact().compacted);
    CHECK(c.get_versioned("pickled")->kind == ValueKind::serialized);
    // The typed get_or_set stores compute's kind and returns the kind found.
    auto computed = c.get_or_set(
        "g",
        [] {
          return lilcache::TypedValue{"7", ValueKind::integer};
        },
        WriteOptions{});
    CHECK(computed.kind == ValueKind::integer);
    auto found = c.get_or_set(
        "text",
        [] {
          return lilcache::TypedValue{"no", ValueKind::bytes};
        },
        WriteOptions{});
    CHECK(found.value == "héllo");
    CHECK(found.kind == ValueKind::text);
    CHECK_ERROR_CODE(c.set("k", "v", WriteOptions{.ttl = milliseconds(-1)}),
                     ErrorCode::invalid_argument);
    CHECK_ERROR_CODE(c.set("k", "v", WriteOptions{.kind = static_cast<ValueKind>(7)}),
                     ErrorCode::invalid_argument);
  }
  FaultEnv rebooted;
  rebooted.set_boot_id("another-boot");
  auto c = Cache::open("t", {.root = dir.path(), .env = &rebooted});  // replays the log
  CHECK(c.get_versioned("text")->kind == ValueKind::text);
  CHECK(c.get_versioned("pickled")->kind == ValueKind::serialized);
  CHECK(c.get_versioned("n")->kind == ValueKind::integer);
  CHECK(c.get_versioned("g")->kind == ValueKind::integer);
}

TEST_CASE("get_typed and pop_typed return the value with its kind") {
  TempDir dir;
  using lilcache::ValueKind;
  using lilcache::WriteOptions;
  auto c = Cache::open("t", {.root = dir.path()});
  c.set("text", "h\xc3\xa9", WriteOptions{.kind = ValueKind::text});
  c.set("raw", std::string("\0\xff", 2));
  c.increment("n", 41);
  auto t = c.get_typed("text");
  REQUIRE(t.has_value());
  CHECK(t->value == "h\xc3\xa9");
  CHECK(t->kind == ValueKind::text);
  CHECK(c.get_typed("raw")->kind == ValueKind::bytes);
  CHECK(c.get_typed("raw")->value == std::string("\0\xff", 2));
  auto n = c.pop_typed("n");
  REQUIRE(n.has_value());
  CHECK(n->value == "41");
  CHECK(n->kind == ValueKind::integer);
  CHECK_FALSE(c.pop_typed("n").has_value());  // popped once
  CHECK_FALSE(c.get_typed("n").has_value());
  auto p = c.pop_typed("text");
  REQUIRE(p.has_value());
  CHECK(p->kind == ValueKind::text);
  CHECK_ERROR_CODE(c.get_typed(""), ErrorCode::invalid_argument);
}

TEST_CASE("get into a caller's buffer reuses its capacity and reports the kind") {
  TempDir dir;
  using lilcache::ValueKind;
  auto c = Cache::open("t", {.root = dir.path()});
  c.set("big", std::string(1000, 'x'), lilcache::WriteOptions{.kind = ValueKind::text});
  c.set("small", "abc");
  std::string buf;
  ValueKind kind = ValueKind::integer;
  REQUIRE(c.get("big", buf, &kind));
  CHECK(buf == std::string(1000, 'x'));
  CHECK(kind == ValueKind::text);
  const char* data = buf.data();
  REQUIRE(c.get("small", buf, &kind));
  CHECK(buf == "abc");
  CHECK(kind == ValueKind::bytes);
  CHECK(buf.data() == data);  // no new allocation
  CHECK_FALSE(c.get("absent", buf));
  CHECK(c.get("small", buf));  // kind is optional
  CHECK_ERROR_CODE(c.get("", buf), ErrorCode::invalid_argument);
  // Counted as a get: one hit per found key, one miss.
  CHECK(c.stats().misses == 1);
}

TEST_CASE("WriteOptions with a ttl expires the value; 0 means Options::expires") {
  TempDir dir;
  FakeClockEnv env;
  auto c = Cache::open("t", {.root = dir.path(), .expires = "10s", .env = &env});
  c.set("a", "v", lilcache::WriteOptions{.ttl = milliseconds(100)});
  c.set("b", "v", lilcache::WriteOptions{});
  CHECK(c.ttl("a") == milliseconds(100));
  CHECK(c.ttl("b") == milliseconds(10'000));
}
