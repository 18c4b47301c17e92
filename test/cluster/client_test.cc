// The routing layer (lib/cluster/client.cc, slot.cc, url.cc): hash slots,
// URLs, and the Client against the Redis Cluster of with_cluster.sh
// (test/meson.build runs this suite through it, with --single).
#include "cluster/client.h"

#include <doctest/doctest.h>
#include <signal.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cluster/slot.h"
#include "lilcache/lilcache.h"
#include "support/redis_cluster.h"
#include "support/test_util.h"

namespace lilcache::cluster {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using test::ClusterNodes;
using test::ClusterUrl;
using test::RedisNode;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// A logger at debug level whose lines the test reads.
struct CapturedLog {
  std::ostringstream out;
  std::shared_ptr<spdlog::logger> logger;
  CapturedLog() {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
    logger = std::make_shared<spdlog::logger>("cluster_test", sink);
    logger->set_level(spdlog::level::debug);
    logger->flush_on(spdlog::level::debug);
  }
  std::size_t Count(const std::string& needle) {
    logger->flush();
    const std::string text = out.str();
    std::size_t n = 0;
    for (std::size_t at = text.find(needle); at != std::string::npos;
         at = text.find(needle, at + 1)) {
      ++n;
    }
    return n;
  }
};

Reply Set(Client& client, const std::string& key, const std::string& value) {
  return client.Run(KeySlot(key), {"SET", key, value});
}
Reply Get(Client& client, const std::string& key) { return client.Run(KeySlot(key), {"GET", key}); }

// The masters of the cluster now, by port.
std::vector<RedisNode> Masters() {
  std::vector<RedisNode> out;
  for (const RedisNode& n : ClusterNodes()) {
    if (n.master && !n.failed && !n.slots.empty()) out.push_back(n);
  }
  return out;
}

// A key with a hash tag of its own whose slot holds no key and is served by
// `owner`.
std::string EmptySlotKey(const RedisNode& owner, const std::string& prefix) {
  for (int i = 0;; ++i) {
    const std::string key = "{" + prefix + std::to_string(i) + "}k";
    const std::uint16_t slot = KeySlot(key);
    if (!owner.serves(slot)) continue;
    const Reply n =
        test::NodeCommand(owner.port, {"CLUSTER", "COUNTKEYSINSLOT", std::to_string(slot)});
    if (n.integer == 0) return key;
  }
}

// CLUSTER SETSLOT slot NODE id on every master (the end of a migration).
void AssignSlot(std::uint16_t slot, const RedisNode& to) {
  // The new owner first, then the others (as redis-cli --cluster does).
  REQUIRE(
      test::NodeCommand(to.port, {"CLUSTER", "SETSLOT", std::to_string(slot), "NODE", to.id}).str ==
      "OK");
  for (const RedisNode& m : Masters()) {
    if (m.port == to.port) continue;
    const Reply r =
        test::NodeCommand(m.port, {"CLUSTER", "SETSLOT", std::to_string(slot), "NODE", to.id});
    REQUIRE_MESSAGE(r.str == "OK", r.str);
  }
}

}  // namespace

TEST_CASE("CRC16 is CRC16/XMODEM and KeySlot honours hash tags as the specification says") {
  CHECK(Crc16("123456789") == 0x31C3);
  CHECK(Crc16("") == 0);
  CHECK(KeySlot("123456789") == 12739);
  // Values from the Redis Cluster specification and CLUSTER KEYSLOT.
  CHECK(KeySlot("foo") == 12182);
  CHECK(KeySlot("bar") == 5061);
  CHECK(KeySlot("{user1000}.following") == KeySlot("{user1000}.followers"));
  CHECK(KeySlot("{user1000}.following") == KeySlot("user1000"));
  // An empty tag: the whole key.
  CHECK(KeySlot("foo{}{bar}") == (Crc16("foo{}{bar}") & 16383));
  CHECK(KeySlot("foo{}{bar}") != KeySlot("bar"));
  // The first '{' and the first '}' after it.
  CHECK(KeySlot("foo{{bar}}zap") == KeySlot("{bar"));
  CHECK(KeySlot("foo{bar}{zap}") == KeySlot("bar"));
  // No closing '}': the whole key.
  CHECK(KeySlot("foo{bar") == (Crc16("foo{bar") & 16383));
  CHECK(KeySlot(std::string("a\0b", 3)) == (Crc16(std::string("a\0b", 3)) & 16383));
}

TEST_CASE("ParseUrl reads both schemes, credentials, seeds, IPv6 hosts and options") {
  SUBCASE("a cluster with two seeds and no options") {
    const Config c = ParseUrl("redis-cluster://127.0.0.1:7000,node-2.example:7001");
    CHECK(c.cluster);
    REQUIRE(c.seeds.size() == 2);
    CHECK(c.seeds[0].host == "127.0.0.1");
    CHECK(c.seeds[0].port == 7000);
    CHECK(c.seeds[1].name() == "node-2.example:7001");
    CHECK(c.user.empty());
    CHECK(c.password.empty());
    CHECK(c.timeout == milliseconds(1000));
    CHECK(c.connect_timeout == milliseconds(1000));
    CHECK(c.retry_for == milliseconds(10000));
    CHECK(c.pool == 8);
    CHECK(c.display == "redis-cluster://127.0.0.1:7000,node-2.example:7001");
  }
  SUBCASE("a single server with a password, IPv6 and every option") {
    const Config c = ParseUrl(
        "redis://:s3cr%40t@[::1]:6379?timeout=300ms&connect_timeout=2s&retry_for=1m&pool=0");
    CHECK(!c.cluster);
    REQUIRE(c.seeds.size() == 1);
    CHECK(c.seeds[0].host == "::1");
    CHECK(c.seeds[0].port == 6379);
    CHECK(c.seeds[0].name() == "[::1]:6379");
    CHECK(c.user.empty());
    CHECK(c.password == "s3cr@t");
    CHECK(c.timeout == milliseconds(300));
    CHECK(c.connect_timeout == milliseconds(2000));
    CHECK(c.retry_for == milliseconds(60000));
    CHECK(c.pool == 0);
    CHECK(c.display.find("s3cr") == std::string::npos);
    CHECK(c.display ==
          "redis://:***@[::1]:6379?timeout=300ms&connect_timeout=2s&retry_for=1m&pool=0");
  }
  SUBCASE("a user and a password holding '@' and ','") {
    const Config c = ParseUrl("redis-cluster://app:p@ss,w@10.0.0.1:7000");
    CHECK(c.user == "app");
    CHECK(c.password == "p@ss,w");
    REQUIRE(c.seeds.size() == 1);
    CHECK(c.seeds[0].name() == "10.0.0.1:7000");
    CHECK(c.display == "redis-cluster://app:***@10.0.0.1:7000");
  }
}

TEST_CASE("ParseUrl refuses a bad URL with invalid_argument, quoting it without its password") {
  const char* bad[] = {
      "",
      "redis",
      "http://127.0.0.1:7000",
      "redis-cluster://",
      "redis-cluster://127.0.0.1",
      "redis-cluster://127.0.0.1:",
      "redis-cluster://127.0.0.1:0",
      "redis-cluster://127.0.0.1:65536",
      "redis-cluster://127.0.0.1:12ab",
      "redis-cluster://127.0.0.1:7000,",
      "redis-cluster://:7000",
      "redis-cluster://bad host:7000",
      "redis-cluster://[::1:7000",
      "redis-cluster://[::1]7000",
      "redis-cluster://[zz]:7000",
      "redis://127.0.0.1:7000,127.0.0.1:7001",
      "redis://127.0.0.1:7000?",
      "redis://127.0.0.1:7000?timeout",
      "redis://127.0.0.1:7000?timeout=1.5s",
      "redis://127.0.0.1:7000?timeout=0s",
      "redis://127.0.0.1:7000?timeout=1s&timeout=2s",
      "redis://127.0.0.1:7000?retry_for=-1s",
      "redis://127.0.0.1:7000?pool=many",
      "redis://127.0.0.1:7000?pool=100000",
      "redis://127.0.0.1:7000?tls=yes",
      "redis://127.0.0.1:7000?timeout=1s&",
  };
  for (const char* url : bad) {
    CAPTURE(url);
    try {
      ParseUrl(url);
      FAIL("accepted");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::invalid_argument);
      CHECK(std::string(e.what()).find("backend URL") != std::string::npos);
    }
  }
  // The password never shows, whatever is wrong.
  const char* secret[] = {
      "redis-cluster://user:hunter2@127.0.0.1", "redis-cluster://:hunter2@127.0.0.1:7000?pool=x",
      "redis://hunter2@127.0.0.1:7000",         "redis://:hunter2%zz@127.0.0.1:7000",
      "rediss://:hunter2@127.0.0.1:7000",       "redis://user:@127.0.0.1:7000?timeout=hunter2-no",
  };
  for (const char* url : secret) {
    CAPTURE(url);
    try {
      ParseUrl(url);
      FAIL("accepted");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::invalid_argument);
      const std::string what = e.what();
      CAPTURE(what);
      CHECK(what.find("hunter2@") == std::string::npos);
      CHECK(what.find(":hunter2") == std::string::npos);
    }
  }
}

TEST_CASE("a seed that does not answer is an io Error naming it once retry_for has passed") {
  // A port that nobody listens on (bound, never listening).
  const Config config =
      ParseUrl("redis-cluster://127.0.0.1:1?retry_for=500ms&connect_timeout=200ms");
  Client client(config, nullptr);
  const auto start = Clock::now();
  try {
    client.Run(0, {"GET", "x"});
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::io);
    const std::string what = e.what();
    CAPTURE(what);
    CHECK(what.find("cannot connect to 127.0.0.1:1:") != std::string::npos);
  }
  const double took = Seconds(Clock::now() - start);
  INFO("took " << took << " s");
  CHECK(took < 0.5 + 5);
  CHECK_THROWS_AS(client.Masters(), Error);
}

TEST_CASE("Run sets and gets keys of every master, and Masters() names the three masters") {
  Client client(ParseUrl(ClusterUrl()), nullptr);
  std::set<std::string> masters;
  for (const std::string& m : client.Masters()) masters.insert(m);
  std::set<std::string> expected;
  for (const RedisNode& m : Masters()) expected.insert(m.name());
  CHECK(masters == expected);
  CHECK(masters.size() == 3);

  for (int i = 0; i < 1000; ++i) {
    const std::string key = "run:" + std::to_string(i);
    const Reply r = Set(client, key, "v" + std::to_string(i));
    REQUIRE(r.type == Reply::Type::kStatus);
    REQUIRE(r.str == "OK");
  }
  std::map<int, int> per_master;
  for (int i = 0; i < 1000; ++i) {
    const std::string key = "run:" + std::to_string(i);
    const Reply r = Get(client, key);
    REQUIRE(r.type == Reply::Type::kString);
    CHECK(r.str == "v" + std::to_string(i));
  }
  // Each key is on the master of its slot (read there directly).
  for (const RedisNode& m : Masters()) {
    const std::string key = test::KeyOn(m, "run");
    const Reply direct = test::NodeCommand(m.port, {"GET", key});
    CHECK(direct.type == Reply::Type::kString);
  }
  // Error replies that are not about routing come back as replies.
  CHECK(client.Run(KeySlot("run:0"), {"INCR", "run:0"}).is_error());
  const Reply wrong = client.Run(KeySlot("run:0"), {"LPUSH", "run:0", "x"});
  CHECK(wrong.is_error("WRONGTYPE"));
  CHECK(client.Run(KeySlot("absent:key"), {"GET", "absent:key"}).is_nil());
  // A key sent with the slot of another master: invalid_argument, at once.
  std::uint16_t wrong_slot = 0;
  const std::uint16_t right_slot = KeySlot("misrouted");
  for (const RedisNode& m : Masters()) {
    if (!m.serves(right_slot)) wrong_slot = static_cast<std::uint16_t>(m.slots.front().first);
  }
  const auto start = Clock::now();
  try {
    client.Run(wrong_slot, {"GET", "misrouted"});
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::invalid_argument);
    CHECK(std::string(e.what()).find("slot " + std::to_string(right_slot)) != std::string::npos);
  }
  INFO("misrouted call took " << Seconds(Clock::now() - start) << " s");
  CHECK(Seconds(Clock::now() - start) < 5);
  CHECK_THROWS_AS(client.Run(0, {}), Error);
  CHECK_THROWS_AS(client.Run(16384, {"GET", "x"}), Error);
}

TEST_CASE("RunGroup runs commands of one slot together and RunMany spans slots in order") {
  Client client(ParseUrl(ClusterUrl()), nullptr);
  const std::string a = "{group}a", b = "{group}b";
  const std::vector<Reply> tx =
      client.RunGroup(KeySlot(a), {{"MULTI"}, {"SET", a, "1"}, {"INCRBY", b, "5"}, {"EXEC"}});
  REQUIRE(tx.size() == 4);
  CHECK(tx[0].str == "OK");
  CHECK(tx[1].str == "QUEUED");
  CHECK(tx[2].str == "QUEUED");
  REQUIRE(tx[3].type == Reply::Type::kArray);
  REQUIRE(tx[3].elements.size() == 2);
  CHECK(tx[3].elements[1].integer == 5);
  const std::vector<Reply> both = client.RunGroup(KeySlot(a), {{"GET", a}, {"GET", b}});
  CHECK(both[0].str == "1");
  CHECK(both[1].str == "5");
  CHECK(client.RunGroup(0, {}).empty());

  std::vector<std::string> keys;
  for (int i = 0; i < 2000; ++i) keys.push_back("many:" + std::to_string(i));
  std::vector<std::pair<std::uint16_t, Command>> sets, gets;
  const std::string value = "value";
  for (const std::string& k : keys) {
    sets.push_back({KeySlot(k), {"SET", k, k}});
    gets.push_back({KeySlot(k), {"GET", k}});
  }
  const std::vector<Reply> set_replies = client.RunMany(sets);
  REQUIRE(set_replies.size() == keys.size());
  for (const Reply& r : set_replies) REQUIRE(r.str == "OK");
  const std::vector<Reply> get_replies = client.RunMany(gets);
  REQUIRE(get_replies.size() == keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) CHECK(get_replies[i].str == keys[i]);
  CHECK(client.RunMany({}).empty());
}

TEST_CASE("RunOn runs a command on the node named, with no redirection") {
  Client client(ParseUrl(ClusterUrl()), nullptr);
  for (const std::string& node : client.Masters()) {
    CHECK(client.RunOn(node, {"PING"}).str == "PONG");
    const Reply info = client.RunOn(node, {"INFO", "replication"});
    CHECK(info.str.find("role:master") != std::string::npos);
  }
  // A key of another master: MOVED comes back as a reply.
  const std::vector<RedisNode> masters = Masters();
  const std::string key = test::KeyOn(masters[0], "on");
  CHECK(client.RunOn(masters[1].name(), {"GET", key}).is_error("MOVED"));
  CHECK_THROWS_AS(client.RunOn("nonsense", {"PING"}), Error);
}

TEST_CASE("a MOVED reply updates the slot and the command succeeds") {
  CapturedLog log;
  Client client(ParseUrl(ClusterUrl()), log.logger);
  const std::vector<RedisNode> masters = Masters();
  const RedisNode& from = masters[0];
  const RedisNode& to = masters[1];
  const std::string key = EmptySlotKey(from, "moved");
  const std::uint16_t slot = KeySlot(key);
  REQUIRE(client.Run(slot, {"GET", key}).is_nil());  // the map says: `from`
  AssignSlot(slot, to);

  CHECK(client.Run(slot, {"SET", key, "there"}).str == "OK");
  CHECK(log.Count("MOVED slot " + std::to_string(slot)) == 1);
  CHECK(test::NodeCommand(to.port, {"GET", key}).str == "there");
  // The map knows now: no second redirection.
  CHECK(client.Run(slot, {"GET", key}).str == "there");
  CHECK(log.Count("MOVED slot " + std::to_string(slot)) == 1);

  // Back to where it was (empty first).
  CHECK(client.Run(slot, {"DEL", key}).integer == 1);
  AssignSlot(slot, from);
  test::WaitClusterOk();
}

TEST_CASE("a slot in migration: ASK is followed with ASKING, for a moved key and a new one") {
  CapturedLog log;
  Client client(ParseUrl(ClusterUrl()), log.logger);
  const std::vector<RedisNode> masters = Masters();
  const RedisNode& from = masters[1];
  const RedisNode& to = masters[2];
  const std::string key = EmptySlotKey(from, "ask");
  const std::string other = key + ":new";
  const std::uint16_t slot = KeySlot(key);
  const std::string s = std::to_string(slot);
  REQUIRE(client.Run(slot, {"SET", key, "migrated"}).str == "OK");

  REQUIRE(test::NodeCommand(to.port, {"CLUSTER", "SETSLOT", s, "IMPORTING", from.id}).str == "OK");
  REQUIRE(test::NodeCommand(from.port, {"CLUSTER", "SETSLOT", s, "MIGRATING", to.id}).str == "OK");
  const Reply migrate = test::NodeCommand(
      from.port, {"MIGRATE", "127.0.0.1", std::to_string(to.port), "", "0", "5000", "KEYS", key});
  REQUIRE_MESSAGE(migrate.str == "OK", migrate.str);

  // The key is on `to` now; `from` still owns the slot and answers ASK.
  CHECK(client.Run(slot, {"GET", key}).str == "migrated");
  CHECK(log.Count("ASK slot " + s) == 1);
  // A key absent from `from`: created on `to`, through ASK too.
  CHECK(client.Run(slot, {"SET", other, "new"}).str == "OK");
  CHECK(log.Count("ASK slot " + s) == 2);
  // A group through ASK.
  const std::vector<Reply> group = client.RunGroup(slot, {{"GET", key}, {"GET", other}});
  CHECK(group[0].str == "migrated");
  CHECK(group[1].str == "new");
  // A transaction through ASK: ASKING before MULTI holds for the whole
  // transaction (no ASKING inside it, whose reply would be in EXEC's).
  const std::vector<Reply> tx =
      client.RunGroup(slot, {{"MULTI"}, {"SET", other, "tx"}, {"GET", key}, {"EXEC"}});
  REQUIRE(tx.size() == 4);
  CHECK(tx[0].str == "OK");
  CHECK(tx[1].str == "QUEUED");
  CHECK(tx[2].str == "QUEUED");
  REQUIRE(tx[3].type == Reply::Type::kArray);
  REQUIRE(tx[3].elements.size() == 2);
  CHECK(tx[3].elements[0].str == "OK");
  CHECK(tx[3].elements[1].str == "migrated");
  // The map was not changed by ASK: still `from`.
  CHECK(log.Count("MOVED slot " + s) == 0);

  // The end of the migration: the slot is `to`'s.
  AssignSlot(slot, to);
  test::WaitClusterOk();
  CHECK(client.Run(slot, {"GET", other}).str == "tx");
  CHECK(log.Count("MOVED slot " + s) == 1);
}

TEST_CASE("a redis:// URL runs every command on the one server") {
  Client client(ParseUrl(test::SingleRedisUrl()), nullptr);
  const std::vector<std::string> masters = client.Masters();
  REQUIRE(masters.size() == 1);
  CHECK(test::SingleRedisUrl().find(masters[0]) != std::string::npos);
  for (int i = 0; i < 100; ++i) {
    const std::string key = "single:" + std::to_string(i);
    REQUIRE(Set(client, key, key).str == "OK");
  }
  std::vector<std::pair<std::uint16_t, Command>> gets;
  std::vector<std::string> keys;
  for (int i = 0; i < 100; ++i) keys.push_back("single:" + std::to_string(i));
  for (const std::string& k : keys) gets.push_back({KeySlot(k), {"GET", k}});
  const std::vector<Reply> replies = client.RunMany(gets);
  for (std::size_t i = 0; i < keys.size(); ++i) CHECK(replies[i].str == keys[i]);
  // Keys of different slots in one group: one server, so it works.
  const std::vector<Reply> group = client.RunGroup(0, {{"GET", keys[0]}, {"GET", keys[1]}});
  CHECK(group[1].str == keys[1]);
  CHECK(client.RunOn(masters[0], {"DBSIZE"}).integer == 100);
}

TEST_CASE("the pool keeps at most `pool` idle connections per node, whatever the threads") {
  const std::string url = test::SingleRedisUrl();
  const int port = std::stoi(url.substr(url.rfind(':') + 1));
  auto connected = [&] {
    const Reply info = test::NodeCommand(port, {"INFO", "clients"});
    const std::size_t at = info.str.find("connected_clients:");
    REQUIRE(at != std::string::npos);
    return std::stoi(info.str.substr(at + std::strlen("connected_clients:")));
  };
  // Clients of earlier cases are gone once the server has seen them close.
  const int before = [&] {
    int n = connected();
    for (int i = 0; i < 100 && n > 1; ++i) {
      std::this_thread::sleep_for(milliseconds(50));
      n = connected();
    }
    return n - 1;  // not counting NodeCommand's own connection
  }();
  Client client(ParseUrl(url + "?pool=2"), nullptr);
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) {
        const std::string key = "pool:" + std::to_string(t) + ":" + std::to_string(i);
        if (Set(client, key, key).str != "OK" || Get(client, key).str != key) ++wrong;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  CHECK(wrong.load() == 0);
  // The server may not have seen the surplus connections close yet.
  int idle = connected() - 1 - before;
  for (int i = 0; i < 100 && idle > 2; ++i) {
    std::this_thread::sleep_for(milliseconds(50));
    idle = connected() - 1 - before;
  }
  CHECK(idle >= 1);
  CHECK(idle <= 2);
}

TEST_CASE("AUTH: a refused or missing password is a permission Error that never shows it") {
  const std::string url = test::SingleRedisUrl();
  const std::string hosts = url.substr(std::string("redis://").size());
  const int port = std::stoi(hosts.substr(hosts.rfind(':') + 1));
  REQUIRE(
      test::NodeCommand(port, {"ACL", "SETUSER", "app", "on", ">app-secret", "~*", "+@all"}).str ==
      "OK");
  REQUIRE(test::NodeCommand(port, {"CONFIG", "SET", "requirepass", "hunter2"}).str == "OK");
  Client admin(ParseUrl("redis://:hunter2@" + hosts), nullptr);
  struct Restore {
    Client& admin;
    std::string node;
    ~Restore() {
      try {
        admin.RunOn(node, {"CONFIG", "SET", "requirepass", ""});
        admin.RunOn(node, {"ACL", "DELUSER", "app"});
      } catch (...) {
      }
    }
  } restore{admin, hosts};

  auto refused = [&](const std::string& u, const std::string& secret) {
    CAPTURE(u);
    Client client(ParseUrl(u), nullptr);
    try {
      client.Run(0, {"SET", "auth", "x"});
      FAIL("no error");
    } catch (const Error& e) {
      const std::string what = e.what();
      CAPTURE(what);
      CHECK(e.code() == ErrorCode::permission);
      CHECK(what.find(hosts) != std::string::npos);
      if (!secret.empty()) CHECK(what.find(secret) == std::string::npos);
    }
  };
  refused("redis://" + hosts, "");                        // NOAUTH
  refused("redis://:wrong-pass@" + hosts, "wrong-pass");  // WRONGPASS
  refused("redis://app:hunter2@" + hosts, "hunter2");     // the user's password is another
  refused("redis://nobody:app-secret@" + hosts, "app-secret");

  CHECK(admin.Run(0, {"SET", "auth", "default"}).str == "OK");
  Client app(ParseUrl("redis://app:app-secret@" + hosts), nullptr);
  CHECK(app.Run(0, {"GET", "auth"}).str == "default");
  CHECK(app.RunOn(hosts, {"ACL", "WHOAMI"}).str == "app");
}

TEST_CASE("a child process after fork() uses the parent's Client with connections of its own") {
  Client client(ParseUrl(ClusterUrl()), nullptr);
  // Connections to every master in the pool before the fork.
  for (int i = 0; i < 100; ++i)
    REQUIRE(Set(client, "fork:warm:" + std::to_string(i), "w").str == "OK");
  constexpr int kOps = 2000;
  test::Children children;
  const pid_t pid = children.add(test::fork_child([&]() -> int {
    for (int i = 0; i < kOps; ++i) {
      const std::string key = "fork:child:" + std::to_string(i);
      if (Set(client, key, key + "=c").str != "OK") return 1;
      if (Get(client, key).str != key + "=c") return 2;
    }
    return 0;
  }));
  int wrong = 0;
  for (int i = 0; i < kOps; ++i) {
    const std::string key = "fork:parent:" + std::to_string(i);
    if (Set(client, key, key + "=p").str != "OK") ++wrong;
    if (Get(client, key).str != key + "=p") ++wrong;
  }
  CHECK(wrong == 0);
  CHECK(children.wait(pid, std::chrono::seconds(120)) == 0);
  for (int i = 0; i < kOps; i += 97) {
    const std::string key = "fork:child:" + std::to_string(i);
    CHECK(Get(client, key).str == key + "=c");
  }
}

TEST_CASE("resharding during load loses no acknowledged write: MOVED and ASK are followed") {
  CapturedLog log;
  Client client(ParseUrl(ClusterUrl()), log.logger);
  const std::vector<RedisNode> masters = Masters();
  const RedisNode& from = masters[0];
  const RedisNode& to = masters[2];
  // Keys in the slots that move, so that the migration has keys to move.
  std::vector<std::pair<std::uint16_t, Command>> prefill;
  std::vector<std::string> prefill_keys;
  for (int i = 0; i < 5000; ++i) prefill_keys.push_back("reshard:pre:" + std::to_string(i));
  for (const std::string& k : prefill_keys) prefill.push_back({KeySlot(k), {"SET", k, k}});
  for (const Reply& r : client.RunMany(prefill)) REQUIRE(r.str == "OK");

  constexpr int kThreads = 4;
  std::atomic<bool> stop{false};
  std::atomic<long> threw{0}, error_replies{0};
  std::atomic<long long> slowest_us{0};
  std::vector<std::vector<std::string>> acked(kThreads);
  std::mutex errors_mu;
  std::string first_error;
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; !stop.load(); ++i) {
        const std::string key = "reshard:" + std::to_string(t) + ":" + std::to_string(i);
        const auto start = Clock::now();
        try {
          const Reply r = Set(client, key, key);
          if (r.str == "OK") {
            acked[t].push_back(key);
          } else {
            ++error_replies;
            std::lock_guard<std::mutex> lock(errors_mu);
            if (first_error.empty()) first_error = r.str;
          }
        } catch (const Error& e) {
          ++threw;
          std::lock_guard<std::mutex> lock(errors_mu);
          if (first_error.empty()) first_error = e.what();
        }
        const long long us =
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
        long long prev = slowest_us.load();
        while (us > prev && !slowest_us.compare_exchange_weak(prev, us)) {
        }
      }
    });
  }
  test::Children children;
  const auto reshard_start = Clock::now();
  const pid_t reshard = children.add(test::StartReshard(from, to, 2000));
  const int status = children.wait(reshard, std::chrono::seconds(300));
  const double reshard_s = Seconds(Clock::now() - reshard_start);
  stop = true;
  for (std::thread& w : writers) w.join();
  CHECK_MESSAGE(status == 0, "redis-cli --cluster reshard failed: see reshard.log in "
                                 << std::getenv("LILCACHE_TEST_CLUSTER_DIR"));
  test::WaitClusterOk();

  std::size_t total = 0;
  for (const auto& keys : acked) total += keys.size();
  const std::size_t moved = log.Count("MOVED slot "), asked = log.Count("ASK slot ");
  MESSAGE("resharding 2000 slots took "
          << reshard_s << " s; " << total << " acknowledged writes, " << threw.load() << " threw, "
          << error_replies.load() << " error replies; " << moved << " MOVED and " << asked
          << " ASK followed; slowest write " << slowest_us.load() / 1000.0 << " ms");
  CHECK_MESSAGE(error_replies.load() == 0, first_error);
  CHECK_MESSAGE(threw.load() == 0, first_error);
  CHECK(total > 0);
  CHECK(moved > 0);
  // The slots moved.
  int slots_to = 0;
  for (const RedisNode& m : Masters()) {
    if (m.port != to.port) continue;
    for (const auto& [lo, hi] : m.slots) slots_to += hi - lo + 1;
  }
  CHECK(slots_to >= 2000 + 5000);

  // Every acknowledged write is there (read through a fresh client).
  Client reader(ParseUrl(ClusterUrl()), nullptr);
  std::size_t lost = 0;
  std::string first_lost;
  auto verify = [&](const std::vector<std::string>& keys) {
    for (std::size_t at = 0; at < keys.size(); at += 1000) {
      std::vector<std::pair<std::uint16_t, Command>> gets;
      for (std::size_t i = at; i < std::min(keys.size(), at + 1000); ++i) {
        gets.push_back({KeySlot(keys[i]), {"GET", keys[i]}});
      }
      const std::vector<Reply> replies = reader.RunMany(gets);
      for (std::size_t i = 0; i < replies.size(); ++i) {
        if (replies[i].str != keys[at + i]) {
          if (lost++ == 0) first_lost = keys[at + i];
        }
      }
    }
  };
  verify(prefill_keys);
  for (const auto& keys : acked) verify(keys);
  CHECK_MESSAGE(lost == 0, "first lost: " << first_lost);
}

TEST_CASE(
    "a master that stops answering (SIGSTOP): calls on its slots throw io within about retry_for") {
  const std::vector<RedisNode> masters = Masters();
  const RedisNode victim = masters[0];
  // No failover (its replica must not take over) and the other masters
  // keep serving their slots while it is out.
  for (const RedisNode& r : test::ReplicasOf(victim)) {
    REQUIRE(
        test::NodeCommand(r.port, {"CONFIG", "SET", "cluster-replica-no-failover", "yes"}).str ==
        "OK");
  }
  test::AllNodesCommand({"CONFIG", "SET", "cluster-require-full-coverage", "no"});
  const Config config = ParseUrl(ClusterUrl() + "?retry_for=2s&timeout=300ms");
  Client client(config, nullptr);
  std::vector<std::string> keys;
  for (const RedisNode& m : masters) {
    keys.push_back(test::KeyOn(m, "stall"));
    REQUIRE(Set(client, keys.back(), "before").str == "OK");
  }
  struct Resume {
    const RedisNode& node;
    bool stopped = false;
    ~Resume() {
      if (stopped) test::ContinueNode(node);
    }
  } resume{victim};
  test::StopNode(victim);
  resume.stopped = true;
  const double bound = Seconds(config.retry_for + config.timeout) + 5;
  for (int round = 0; round < 2; ++round) {
    const auto start = Clock::now();
    try {
      Set(client, keys[0], "during");
      FAIL("a write to a stopped master succeeded");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::io);
      const std::string what = e.what();
      CAPTURE(what);
      CHECK(what.find(victim.name()) != std::string::npos);
      CHECK(what.find("slot " + std::to_string(KeySlot(keys[0]))) != std::string::npos);
    }
    const double took = Seconds(Clock::now() - start);
    MESSAGE("a write to the stopped master threw after " << took
                                                         << " s (retry_for 2 s, timeout 300 ms)");
    CHECK(took < bound);
    // The other masters answer meanwhile.
    for (std::size_t i = 1; i < keys.size(); ++i) {
      const auto t0 = Clock::now();
      CHECK(Set(client, keys[i], "during").str == "OK");
      CHECK(Seconds(Clock::now() - t0) < bound);
    }
  }
  test::ContinueNode(victim);
  resume.stopped = false;
  test::WaitClusterOk();
  const auto t0 = Clock::now();
  CHECK(Set(client, keys[0], "after").str == "OK");
  MESSAGE("first write after SIGCONT took " << Seconds(Clock::now() - t0) << " s");
  CHECK(Get(client, keys[0]).str == "after");
  for (const RedisNode& r : test::ReplicasOf(victim)) {
    test::NodeCommand(r.port, {"CONFIG", "SET", "cluster-replica-no-failover", "no"});
  }
  test::AllNodesCommand({"CONFIG", "SET", "cluster-require-full-coverage", "yes"});
}

TEST_CASE("when a master is killed during load, writes resume on its replica") {
  CapturedLog log;
  const Config config = ParseUrl(ClusterUrl());
  Client client(config, log.logger);
  const std::vector<RedisNode> masters = Masters();
  const RedisNode victim = masters[1];
  const std::vector<RedisNode> replicas = test::ReplicasOf(victim);
  REQUIRE(replicas.size() == 1);
  // Keys of the surviving masters, written before: all must survive.
  std::vector<std::string> survivors;
  for (int i = 0; survivors.size() < 3000; ++i) {
    const std::string key = "failover:pre:" + std::to_string(i);
    if (!victim.serves(KeySlot(key))) survivors.push_back(key);
  }
  std::vector<std::pair<std::uint16_t, Command>> prefill;
  for (const std::string& k : survivors) prefill.push_back({KeySlot(k), {"SET", k, k}});
  for (const Reply& r : client.RunMany(prefill)) REQUIRE(r.str == "OK");
  // Let the replica catch up (WAIT on the victim: replicated before the kill).
  REQUIRE(test::NodeCommand(victim.port, {"WAIT", "1", "2000"}).integer == 1);

  constexpr int kThreads = 3;
  std::atomic<bool> stop{false};
  std::atomic<long> threw{0};
  std::atomic<long long> slowest_us{0};
  std::vector<std::vector<std::string>> acked(kThreads);
  std::mutex errors_mu;
  std::string first_error;
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; !stop.load(); ++i) {
        const std::string key = "failover:" + std::to_string(t) + ":" + std::to_string(i);
        const auto start = Clock::now();
        try {
          if (Set(client, key, key).str == "OK") acked[t].push_back(key);
        } catch (const Error& e) {
          ++threw;
          std::lock_guard<std::mutex> lock(errors_mu);
          if (first_error.empty()) first_error = e.what();
        }
        const long long us =
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
        long long prev = slowest_us.load();
        while (us > prev && !slowest_us.compare_exchange_weak(prev, us)) {
        }
      }
    });
  }
  std::this_thread::sleep_for(milliseconds(500));
  const std::string probe_prefix = "failover:probe";
  const auto killed_at = Clock::now();
  test::KillNode(victim);
  // The first write of a key of the victim's slots that succeeds after the kill.
  double unavailable_s = -1;
  for (int i = 0; unavailable_s < 0 && Seconds(Clock::now() - killed_at) < 60; ++i) {
    const std::string key = test::KeyOn(victim, probe_prefix + std::to_string(i));
    try {
      if (Set(client, key, "probe").str == "OK") unavailable_s = Seconds(Clock::now() - killed_at);
    } catch (const Error& e) {
      MESSAGE("probe write threw: " << std::string(e.what()));
    }
  }
  std::this_thread::sleep_for(milliseconds(1000));
  stop = true;
  for (std::thread& w : writers) w.join();
  MESSAGE("failover: writes to the killed master's slots were unavailable for "
          << unavailable_s << " s; writers: " << threw.load() << " threw, slowest write "
          << slowest_us.load() / 1000.0 << " ms");
  REQUIRE(unavailable_s >= 0);
  CHECK_MESSAGE(threw.load() == 0, first_error);
  CHECK(slowest_us.load() / 1e6 < Seconds(config.retry_for + config.timeout) + 5);
  CHECK(log.Count("failed") > 0);

  test::WaitClusterOk();
  // The replica serves the victim's slots now.
  CHECK(test::MasterOf(victim.slots.front().first).port == replicas[0].port);
  // Nothing of the surviving masters was lost: the keys written before and
  // every acknowledged write of their slots.
  Client reader(ParseUrl(ClusterUrl()), nullptr);
  std::vector<std::string> check = survivors;
  for (const auto& keys : acked) {
    for (const std::string& k : keys) {
      if (!victim.serves(KeySlot(k))) check.push_back(k);
    }
  }
  std::size_t lost = 0;
  for (std::size_t at = 0; at < check.size(); at += 1000) {
    std::vector<std::pair<std::uint16_t, Command>> gets;
    for (std::size_t i = at; i < std::min(check.size(), at + 1000); ++i) {
      gets.push_back({KeySlot(check[i]), {"GET", check[i]}});
    }
    const std::vector<Reply> replies = reader.RunMany(gets);
    for (std::size_t i = 0; i < replies.size(); ++i) lost += replies[i].str != check[at + i];
  }
  CHECK(lost == 0);
  INFO(check.size() << " keys of surviving masters checked");
}

}  // namespace lilcache::cluster
