// The conformance suite: the same test cases against every backend. meson
// runs this program twice: against the local engine
// (LILCACHE_TEST_BACKEND=local) and, under test/cluster/with_cluster.sh,
// against a Redis Cluster of 3 masters and 3 replicas
// (LILCACHE_TEST_BACKEND=cluster, URL in $LILCACHE_TEST_CLUSTER). What the
// backends do differently (docs/cluster.md) is tested elsewhere
// (redis_cache_test.cc, the local suites); what is here must hold on both.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "lilcache/env.h"
#include "lilcache/lilcache.h"
#include "support/test_util.h"

using namespace std::chrono_literals;
using lilcache::Cache;
using lilcache::Error;
using lilcache::ErrorCode;
using lilcache::Options;

namespace {

// The backend under test, as Options::backend.
std::string Backend() {
  const char* b = std::getenv("LILCACHE_TEST_BACKEND");
  const std::string which = b != nullptr ? b : "local";
  if (which == "local") return "local";
  const char* var = which == "redis" ? "LILCACHE_TEST_REDIS" : "LILCACHE_TEST_CLUSTER";
  const char* url = std::getenv(var);
  if (url == nullptr || *url == '\0') {
    FAIL("LILCACHE_TEST_BACKEND=" << which << " but $" << var
                                  << " is not set: run under test/cluster/with_cluster.sh");
  }
  return url;
}

bool OnRedis() { return Backend() != "local"; }

// A cache of its own for each test case: a fresh root (the local files, or
// the log) and a fresh name (a fresh key prefix on the cluster).
struct Fixture {
  lilcache::test::TempDir dir;
  std::string name = "conf_" + std::to_string(getpid()) + "_" +
                     std::to_string(lilcache::Env::Default()->Random64() % 1'000'000'000);
  Options options(Options o = {}) const {
    o.root = dir.path();
    o.backend = Backend();
    return o;
  }
  Cache open(Options o = {}) const { return Cache::open(name, options(std::move(o))); }
};

}  // namespace

TEST_CASE("set then get returns the value, and pop hands it out once") {
  Fixture f;
  Cache c = f.open();
  INFO("backend " << Backend());
  CHECK_FALSE(c.get("a").has_value());
  c.set("a", "b");
  CHECK(c.get("a") == "b");
  c.set("a", "c");
  CHECK(c.get("a") == "c");
  CHECK(c.contains("a"));
  CHECK(c.pop("a") == "c");
  CHECK_FALSE(c.pop("a").has_value());
  CHECK_FALSE(c.contains("a"));
  c.set("e", "");
  CHECK(c.get("e") == "");
  CHECK(c.erase("e"));
  CHECK_FALSE(c.erase("e"));
}

TEST_CASE("keys and values are bytes: NULs, braces, glob characters, 4 KiB keys") {
  Fixture f;
  Cache c = f.open();
  const std::string nul_key("k\0ey", 4), nul_val("v\0\xff\x01", 4);
  c.set(nul_key, nul_val);
  CHECK(c.get(nul_key) == nul_val);
  CHECK_FALSE(c.get(std::string("k", 1)).has_value());
  for (std::string k : {"{tag}a", "{tag}b", "*", "a?b", "[x]", "back\\slash", "{}", "}{"}) {
    c.set(k, "v" + k);
  }
  for (std::string k : {"{tag}a", "{tag}b", "*", "a?b", "[x]", "back\\slash", "{}", "}{"}) {
    CHECK(c.get(k) == "v" + k);
  }
  std::vector<std::string> star = c.keys("*");
  CHECK(star == std::vector<std::string>{"*"});
  CHECK(c.keys("[").size() == 1);
  const std::string big(lilcache::kMaxKeyBytes, 'k');
  c.set(big, "x");
  CHECK(c.get(big) == "x");
  std::string value(1 << 20, 'v');
  value[12345] = '\0';
  c.set("big value", value);
  CHECK(c.get("big value") == value);
}

TEST_CASE("bad keys and values are errors of a kind, before anything is stored") {
  Fixture f;
  Cache c = f.open();
  try {
    c.set("", "x");
    FAIL("an empty key was accepted");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::invalid_argument);
  }
  try {
    c.get(std::string(lilcache::kMaxKeyBytes + 1, 'k'));
    FAIL("a key over the limit was accepted");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::limit);
  }
  try {
    c.set_many({{"ok", "1"}, {"", "2"}});
    FAIL("a batch with an empty key was accepted");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::invalid_argument);
  }
  CHECK_FALSE(c.contains("ok"));  // nothing of the batch was written
  CHECK_THROWS_AS(c.set("k", "v", 0ms), Error);
}

TEST_CASE("a ttl expires the key; ttl() reports it; persist() and touch() change it") {
  Fixture f;
  Cache c = f.open();
  c.set("short", "v", 300ms);
  c.set("forever", "v");
  std::optional<std::chrono::milliseconds> t = c.ttl("short");
  REQUIRE(t.has_value());
  CHECK(*t <= 300ms);
  CHECK(*t > 0ms);
  CHECK(c.ttl("forever") == lilcache::kNoExpiry);
  CHECK_FALSE(c.ttl("absent").has_value());
  c.set("persisted", "p", 300ms);
  CHECK(c.persist("persisted"));
  CHECK(c.ttl("persisted") == lilcache::kNoExpiry);
  CHECK(c.persist("forever"));
  CHECK_FALSE(c.persist("absent"));
  CHECK(c.touch("forever", 300ms));
  CHECK(c.ttl("forever") <= 300ms);
  CHECK_FALSE(c.touch("absent", 1s));
  std::this_thread::sleep_for(700ms);
  CHECK_FALSE(c.get("short").has_value());
  CHECK_FALSE(c.get("forever").has_value());
  CHECK(c.get("persisted") == "p");
}

TEST_CASE("Options::expires is the default ttl of a handle's writes") {
  Fixture f;
  Cache c = f.open({.expires = "300ms"});
  c.set("a", "1");
  c.set("b", "2", 1h);
  REQUIRE(c.ttl("a").has_value());
  CHECK(*c.ttl("a") <= 300ms);
  CHECK(*c.ttl("b") > 300ms);
  std::this_thread::sleep_for(600ms);
  CHECK_FALSE(c.contains("a"));
  CHECK(c.contains("b"));
  CHECK_THROWS_AS(f.open({.expires = "0s"}), Error);
}

TEST_CASE("add writes only an absent key") {
  Fixture f;
  Cache c = f.open();
  CHECK(c.add("a", "1"));
  CHECK_FALSE(c.add("a", "2"));
  CHECK(c.get("a") == "1");
  c.pop("a");
  CHECK(c.add("a", "3"));
  CHECK(c.get("a") == "3");
}

TEST_CASE("increment counts in int64 and refuses what is not a counter") {
  Fixture f;
  Cache c = f.open();
  CHECK(c.increment("n") == 1);
  CHECK(c.increment("n", 41) == 42);
  CHECK(c.decrement("n", 2) == 40);
  CHECK(c.increment("m", 5, 100) == 105);
  CHECK(c.get("n") == "40");
  c.set("big", std::to_string(INT64_MAX - 1));
  CHECK(c.increment("big") == INT64_MAX);
  try {
    c.increment("big");
    FAIL("an int64 overflow was accepted");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::limit);
  }
  CHECK(c.get("big") == std::to_string(INT64_MAX));
  c.set("text", "hello");
  try {
    c.increment("text");
    FAIL("a text was incremented");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::invalid_argument);
  }
  // A present key keeps its expiry.
  c.set("ttl", "1", 1h);
  c.increment("ttl");
  REQUIRE(c.ttl("ttl").has_value());
  CHECK(*c.ttl("ttl") != lilcache::kNoExpiry);
}

TEST_CASE("compare_and_set and compare_and_erase act only on the version they saw") {
  Fixture f;
  Cache c = f.open();
  c.set("k", "v1");
  std::optional<lilcache::Versioned> v = c.get_versioned("k");
  REQUIRE(v.has_value());
  CHECK(v->value == "v1");
  CHECK(c.compare_and_set("k", v->version, "v2"));
  CHECK_FALSE(c.compare_and_set("k", v->version, "v3"));  // the version changed
  CHECK(c.get("k") == "v2");
  std::optional<lilcache::Versioned> w = c.get_versioned("k");
  REQUIRE(w.has_value());
  CHECK(w->version != v->version);
  CHECK_FALSE(c.compare_and_erase("k", v->version));
  CHECK(c.compare_and_erase("k", w->version));
  CHECK_FALSE(c.contains("k"));
  CHECK_FALSE(c.compare_and_set("k", w->version, "v4"));  // absent
  c.set("t", "1");
  std::uint64_t before = c.get_versioned("t")->version;
  CHECK(c.touch("t", 1h));
  CHECK(c.get_versioned("t")->version != before);  // touch is a write
}

TEST_CASE("typed values keep their kind") {
  Fixture f;
  Cache c = f.open();
  c.set("t", "text", lilcache::WriteOptions{.kind = lilcache::ValueKind::text});
  std::optional<lilcache::TypedValue> t = c.get_typed("t");
  REQUIRE(t.has_value());
  CHECK(t->kind == lilcache::ValueKind::text);
  c.increment("n");
  CHECK(c.get_typed("n")->kind == lilcache::ValueKind::integer);
  std::optional<lilcache::TypedValue> p = c.pop_typed("t");
  REQUIRE(p.has_value());
  CHECK(p->kind == lilcache::ValueKind::text);
  CHECK(p->value == "text");
}

TEST_CASE("batches: get_many, set_many and erase_many over many slots") {
  Fixture f;
  Cache c = f.open();
  std::vector<std::pair<std::string, std::string>> items;
  std::vector<std::string> keys;
  for (int i = 0; i < 500; ++i) {
    items.emplace_back("key" + std::to_string(i), "value" + std::to_string(i));
    keys.push_back("key" + std::to_string(i));
  }
  c.set_many(items);
  keys.push_back("absent");
  std::vector<std::optional<std::string>> got = c.get_many(keys);
  REQUIRE(got.size() == 501);
  for (int i = 0; i < 500; ++i)
    CHECK(got[static_cast<std::size_t>(i)] == items[static_cast<std::size_t>(i)].second);
  CHECK_FALSE(got[500].has_value());
  CHECK(c.erase_many({"key1", "key2", "absent", "key1"}) == 2);
  CHECK(c.size() == 498);
}

TEST_CASE("keys, size and for_each see exactly the live keys") {
  Fixture f;
  Cache c = f.open();
  std::set<std::string> want;
  for (int i = 0; i < 300; ++i) {
    std::string k = (i % 3 == 0 ? "user:" : "item:") + std::to_string(i);
    c.set(k, "v" + k);
    want.insert(k);
  }
  c.erase("user:0");
  want.erase("user:0");
  CHECK(c.size() == want.size());
  std::vector<std::string> all = c.keys();
  CHECK(std::set<std::string>(all.begin(), all.end()) == want);
  std::vector<std::string> users = c.keys("user:");
  CHECK(users.size() == 99);
  CHECK(c.keys("", 10).size() == 10);
  std::size_t visited = 0;
  c.for_each([&](std::string_view k, std::string_view v) {
    CHECK(v == "v" + std::string(k));
    ++visited;
    return true;
  });
  CHECK(visited == want.size());
  std::size_t first = 0;
  c.for_each_key("item:", [&](std::string_view) { return ++first < 5; });
  CHECK(first == 5);
}

TEST_CASE("purge hides every key at once, for every handle, and later writes stay") {
  Fixture f;
  Cache a = f.open();
  Cache b = f.open();
  std::vector<std::pair<std::string, std::string>> items;
  for (int i = 0; i < 200; ++i) items.emplace_back("k" + std::to_string(i), "v");
  a.set_many(items);
  CHECK(b.size() == 200);
  a.purge();
  for (int i = 0; i < 200; ++i) CHECK_FALSE(b.contains("k" + std::to_string(i)));
  CHECK(b.size() == 0);
  CHECK_FALSE(b.pop("k1").has_value());
  CHECK(b.add("k1", "new"));  // a purged key is absent for add too
  b.set("k2", "after");
  CHECK(a.get("k1") == "new");
  CHECK(a.get("k2") == "after");
  CHECK(a.size() == 2);
  a.purge();
  a.purge();
  CHECK(b.size() == 0);
}

TEST_CASE("named caches are separate") {
  Fixture f;
  Cache one = f.open();
  Cache two = Cache::open(f.name + "_2", f.options());
  one.set("k", "one");
  two.set("k", "two");
  CHECK(one.get("k") == "one");
  CHECK(two.get("k") == "two");
  two.purge();
  CHECK(one.get("k") == "one");
  CHECK(one.size() == 1);
}

TEST_CASE("get_or_set computes once among racing threads, and an exception lets another compute") {
  Fixture f;
  Cache c = f.open();
  std::atomic<int> computed{0};
  std::vector<std::thread> threads;
  std::vector<std::string> got(6);
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      got[static_cast<std::size_t>(t)] = c.get_or_set("slow", [&] {
        computed.fetch_add(1);
        std::this_thread::sleep_for(200ms);
        return std::string("computed");
      });
    });
  }
  for (auto& t : threads) t.join();
  CHECK(computed.load() == 1);
  for (const auto& g : got) CHECK(g == "computed");
  CHECK_THROWS_AS(c.get_or_set("fails", []() -> std::string { throw std::runtime_error("no"); }),
                  std::runtime_error);
  CHECK(c.get_or_set("fails", [] { return std::string("second"); }) == "second");
}

TEST_CASE("racing processes: each popped value goes to one, increments all count") {
  Fixture f;
  {
    Cache c = f.open();
    for (int i = 0; i < 200; ++i) c.set("p" + std::to_string(i), std::to_string(i));
  }
  lilcache::test::SharedMemory<std::array<std::atomic<int>, 200>> popped;
  std::vector<pid_t> kids;
  for (int p = 0; p < 4; ++p) {
    kids.push_back(lilcache::test::fork_child([&] {
      Cache c = f.open();
      for (int i = 0; i < 200; ++i) {
        if (c.pop("p" + std::to_string(i))) (*popped)[static_cast<std::size_t>(i)].fetch_add(1);
        c.increment("counter");
      }
      return 0;
    }));
  }
  for (pid_t k : kids) CHECK(lilcache::test::wait_child(k) == 0);
  for (int i = 0; i < 200; ++i) CHECK((*popped)[static_cast<std::size_t>(i)].load() == 1);
  Cache c = f.open();
  CHECK(c.get("counter") == "800");
  CHECK(c.size() == 1);
}

TEST_CASE("a handle keeps working in a fork child, alongside its parent") {
  Fixture f;
  Cache c = f.open();
  c.set("before", "fork");
  pid_t kid = lilcache::test::fork_child([&] {
    for (int i = 0; i < 100; ++i) c.set("child" + std::to_string(i), "c");
    return c.get("before") == "fork" ? 0 : 1;
  });
  for (int i = 0; i < 100; ++i) c.set("parent" + std::to_string(i), "p");
  CHECK(lilcache::test::wait_child(kid) == 0);
  CHECK(c.size() == 201);
  CHECK(c.get("child99") == "c");
}

TEST_CASE("the module-level functions work on the default cache") {
  Fixture f;
  lilcache::init(f.name, f.options());
  lilcache::set("a", "b");
  CHECK(lilcache::get("a") == "b");
  CHECK(lilcache::pop("a") == "b");
  CHECK_FALSE(lilcache::get("a").has_value());
  lilcache::init("default", {.root = f.dir.path(), .backend = "local"});
}

TEST_CASE("a moved-from handle is invalid_state on every backend") {
  Fixture f;
  Cache c = f.open();
  Cache d = std::move(c);
  try {
    c.get("a");  // NOLINT(bugprone-use-after-move)
    FAIL("a moved-from handle answered");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::invalid_state);
  }
  d.set("a", "b");
  CHECK(d.get("a") == "b");
  (void)OnRedis();
}
