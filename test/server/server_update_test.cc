// The REST routes of issue 14 (docs/rest.md, "Conditional writes, counters,
// expiry, batches"): PUT If-None-Match: * (add), ETag and If-Match
// (compare-and-set, compare-and-erase), POST /keys/{key}/increment, GET
// /keys/{key}/ttl, POST touch and persist, POST /batch/get and /batch/set;
// their statuses, limits and browser protections, and the races that
// exactly one request wins. Against lilcache::Server on port 0.
#include <doctest/doctest.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "lilcache/env.h"
#include "lilcache/lilcache.h"
#include "lilcache/server.h"
#include "server/http_batch.h"
#include "server/http_handler.h"
#include "server/http_limits.h"
#include "server/http_preconditions.h"
#include "support/http_client.h"
#include "support/test_util.h"

namespace {

using lilcache::Cache;
using lilcache::Server;
using lilcache::ServerOptions;
using lilcache::test::Fetch;
using lilcache::test::HttpConn;
using lilcache::test::HttpReply;
using lilcache::test::MakeRequest;
using lilcache::test::TempDir;
using nlohmann::json;

// A Server on 127.0.0.1, port 0, over a fresh cache "default", run by a
// thread; stopped and joined on destruction. No $LILCACHE_TOKEN.
class TestServer {
 public:
  explicit TestServer(ServerOptions so = {}, lilcache::Options co = {}) {
    ::unsetenv("LILCACHE_TOKEN");
    if (so.threads == 0) so.threads = 2;
    co.root = dir_.path();
    cache_ = std::make_unique<Cache>(Cache::open("default", co));
    server_ = std::make_unique<Server>(*cache_, "127.0.0.1", 0, so);
    thread_ = std::thread([this] { server_->run(); });
  }
  ~TestServer() {
    server_->stop();
    thread_.join();
  }
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  std::uint16_t port() const { return server_->port(); }
  Cache& cache() { return *cache_; }

 private:
  TempDir dir_;
  std::unique_ptr<Cache> cache_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
};

using lilcache::test::FakeClockEnv;

constexpr const char* kJsonType = "Content-Type: application/json\r\n";

std::string ETag(Cache& cache, const std::string& key) {
  const std::optional<lilcache::Versioned> v = cache.get_versioned(key);
  REQUIRE(v);
  return "\"" + std::to_string(v->version) + "\"";
}

HttpReply Put(std::uint16_t port, const std::string& target, const std::string& body,
              const std::string& headers = {}) {
  return Fetch(port, "PUT", target, body, headers);
}

HttpReply Post(std::uint16_t port, const std::string& target, const std::string& body = {},
               const std::string& headers = {}) {
  return Fetch(port, "POST", target, body, headers);
}

}  // namespace

// ---- add: PUT with If-None-Match: * ----------------------------------------------

TEST_CASE("an add of an absent key over HTTP stores it; of a present key it is 412") {
  FakeClockEnv env;
  TestServer s({}, {.env = &env});
  HttpReply added = Put(s.port(), "/keys/k?ttl=1s", "first", "If-None-Match: *\r\n");
  CHECK(added.status == 201);  // Created
  CHECK(added.body.empty());
  CHECK(s.cache().get("k") == "first");

  HttpReply again = Put(s.port(), "/keys/k", "second", "If-None-Match: *\r\n");
  CHECK(again.status == 412);
  CHECK(again.body == "precondition failed: the key is present (If-None-Match: *)\n");
  CHECK(again.header("lilcache-error").empty());  // not an Error: the condition failed
  CHECK(s.cache().get("k") == "first");

  env.now += 1000;  // the ttl of the add: expired keys are absent
  CHECK(Put(s.port(), "/keys/k", "third", "If-None-Match: *\r\n").status == 201);
  CHECK(s.cache().get("k") == "third");
}

TEST_CASE("two PUTs with If-None-Match: * at once: exactly one is 2xx") {
  TestServer s({.threads = 2});
  constexpr int kThreads = 6, kKeys = 30;
  std::atomic<int> wins[kKeys] = {};
  std::atomic<int> others{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < kKeys; ++k) {
        const HttpReply r = Put(s.port(), "/keys/race" + std::to_string(k), "t" + std::to_string(t),
                                "If-None-Match: *\r\n");
        if (r.status == 201) {
          ++wins[k];
        } else if (r.status != 412) {
          ++others;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  CHECK(others == 0);
  for (int k = 0; k < kKeys; ++k) {
    CAPTURE(k);
    CHECK(wins[k] == 1);
  }
}

// ---- versions: ETag, If-Match ------------------------------------------------------

TEST_CASE("GET and HEAD /keys/{key} answer the key's version as a quoted decimal ETag") {
  TestServer s;
  s.cache().set("k", "value");
  const std::string etag = ETag(s.cache(), "k");
  HttpReply get = Fetch(s.port(), "GET", "/keys/k");
  CHECK(get.status == 200);
  CHECK(get.body == "value");
  CHECK(get.header("etag") == etag);

  HttpReply head = Fetch(s.port(), "HEAD", "/keys/k");
  CHECK(head.status == 200);
  CHECK(head.body.empty());
  CHECK(head.header("etag") == etag);
  CHECK(head.header("content-length") == "5");
  CHECK(Fetch(s.port(), "HEAD", "/keys/nope").status == 404);

  s.cache().set("k", "value");  // the same value, a new version
  CHECK(Fetch(s.port(), "GET", "/keys/k").header("etag") != etag);
  CHECK(Fetch(s.port(), "GET", "/keys/k").header("etag") == ETag(s.cache(), "k"));
}

TEST_CASE("PUT with If-Match of the current ETag stores; a stale or absent key is 412") {
  FakeClockEnv env;
  TestServer s({}, {.env = &env});
  s.cache().set("k", "v1");
  const std::string v1 = Fetch(s.port(), "GET", "/keys/k").header("etag");
  CHECK(Put(s.port(), "/keys/k?ttl=1s", "v2", "If-Match: " + v1 + "\r\n").status == 204);
  CHECK(s.cache().get("k") == "v2");

  HttpReply stale = Put(s.port(), "/keys/k", "v3", "If-Match: " + v1 + "\r\n");
  CHECK(stale.status == 412);
  CHECK(stale.body == "precondition failed: the key is absent or changed\n");
  CHECK(s.cache().get("k") == "v2");

  // A list: any of its tags; weak tags and tags that are no version never match.
  const std::string v2 = ETag(s.cache(), "k");
  CHECK(Put(s.port(), "/keys/k", "v3", "If-Match: " + v1 + ", W/" + v2 + ", \"x\"\r\n").status ==
        412);
  CHECK(Put(s.port(), "/keys/k", "v3", "If-Match: W/" + v2 + "\r\n").status == 412);
  CHECK(Put(s.port(), "/keys/k", "v3", "If-Match: \"abc\"\r\n").status == 412);
  CHECK(s.cache().get("k") == "v2");
  CHECK(Put(s.port(), "/keys/k", "v3", "If-Match: " + v1 + ", " + v2 + "\r\n").status == 204);
  CHECK(s.cache().get("k") == "v3");
  // Two If-Match lines are one list.
  const std::string v3 = ETag(s.cache(), "k");
  CHECK(Put(s.port(), "/keys/k", "v4", "If-Match: " + v1 + "\r\nIf-Match: " + v3 + "\r\n").status ==
        204);
  CHECK(s.cache().get("k") == "v4");

  // The ttl of the PUT that stored v2 went with v3 (a ttl-less set): no expiry now.
  env.now += 2000;
  CHECK(s.cache().get("k") == "v4");
  const std::string v4 = ETag(s.cache(), "k");
  CHECK(Fetch(s.port(), "DELETE", "/keys/k").status == 200);
  CHECK(Put(s.port(), "/keys/k", "v5", "If-Match: " + v4 + "\r\n").status == 412);
  CHECK_FALSE(s.cache().contains("k"));
}

TEST_CASE("If-Match: * stores or removes only a present key") {
  TestServer s;
  HttpReply absent = Put(s.port(), "/keys/k", "v", "If-Match: *\r\n");
  CHECK(absent.status == 412);
  CHECK_FALSE(s.cache().contains("k"));
  CHECK(Fetch(s.port(), "DELETE", "/keys/k", {}, "If-Match: *\r\n").status == 412);

  s.cache().set("k", "old");
  CHECK(Put(s.port(), "/keys/k", "new", "If-Match: *\r\n").status == 204);
  CHECK(s.cache().get("k") == "new");
  CHECK(Fetch(s.port(), "DELETE", "/keys/k", {}, "If-Match: *\r\n").status == 200);
  CHECK_FALSE(s.cache().contains("k"));
}

TEST_CASE("DELETE with If-Match removes only that version; else 412 and the key stays") {
  TestServer s;
  s.cache().set("k", "v1");
  const std::string v1 = ETag(s.cache(), "k");
  s.cache().set("k", "v2");
  HttpReply stale = Fetch(s.port(), "DELETE", "/keys/k", {}, "If-Match: " + v1 + "\r\n");
  CHECK(stale.status == 412);
  CHECK(s.cache().get("k") == "v2");
  const std::string v2 = ETag(s.cache(), "k");
  CHECK(Fetch(s.port(), "DELETE", "/keys/k", {}, "If-Match: " + v2 + "\r\n").status == 200);
  CHECK_FALSE(s.cache().contains("k"));
  CHECK(Fetch(s.port(), "DELETE", "/keys/k", {}, "If-Match: " + v2 + "\r\n").status == 412);
  // A list.
  s.cache().set("k", "v3");
  const std::string v3 = ETag(s.cache(), "k");
  CHECK(Fetch(s.port(), "DELETE", "/keys/k", {}, "If-Match: " + v1 + "\r\n").status == 412);
  CHECK(Fetch(s.port(), "DELETE", "/keys/k", {}, "If-Match: " + v1 + "," + v3 + "\r\n").status ==
        200);
  CHECK_FALSE(s.cache().contains("k"));
}

TEST_CASE("PUTs with If-Match of one ETag at once: exactly one is 2xx; with a list too") {
  TestServer s({.threads = 2});
  constexpr int kThreads = 6, kRounds = 20;
  for (int round = 0; round < kRounds; ++round) {
    s.cache().set("k", "base");
    // Odd rounds: a list (the server reads the version, then compares-and-sets).
    const std::string etag =
        round % 2 == 0 ? ETag(s.cache(), "k") : "\"1\", " + ETag(s.cache(), "k");
    std::atomic<int> wins{0}, others{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        const HttpReply r =
            Put(s.port(), "/keys/k", "t" + std::to_string(t), "If-Match: " + etag + "\r\n");
        if (r.status == 204) {
          ++wins;
        } else if (r.status != 412) {
          ++others;
        }
      });
    }
    for (std::thread& t : threads) t.join();
    CAPTURE(round);
    CHECK(wins == 1);
    CHECK(others == 0);
    CHECK(s.cache().get("k") != "base");
  }
}

TEST_CASE("a malformed If-Match or If-None-Match is 400 and changes nothing") {
  TestServer s;
  s.cache().set("k", "v");
  const std::string etag = ETag(s.cache(), "k");
  const std::vector<std::string> fields = {"If-Match: 5",
                                           "If-Match: \"5",
                                           "If-Match: *, " + etag,
                                           "If-Match: ,",
                                           "If-Match: " + etag + " x",
                                           "If-None-Match: " + etag,
                                           "If-None-Match: W/\"1\"",
                                           "If-Match: " + etag + "\r\nIf-None-Match: *"};
  for (const std::string& field : fields) {
    CAPTURE(field);
    HttpReply r = Put(s.port(), "/keys/k", "new", field + "\r\n");
    CHECK(r.status == 400);
    CHECK(s.cache().get("k") == "v");
  }
  CHECK(Fetch(s.port(), "DELETE", "/keys/k", {}, "If-Match: 5\r\n").status == 400);
  CHECK(Fetch(s.port(), "DELETE", "/keys/k", {}, "If-None-Match: *\r\n").status == 400);
  CHECK(s.cache().get("k") == "v");
}

TEST_CASE("ParseEntityTags reads *, lists, weak tags and several lines") {
  using lilcache::EntityTags;
  using lilcache::ParseEntityTags;
  namespace http = boost::beast::http;
  auto parse = [](const std::vector<std::string>& lines, bool* malformed) {
    lilcache::HttpRequestHeader h;
    for (const std::string& l : lines) h.insert(http::field::if_match, l);
    return ParseEntityTags(h, http::field::if_match, malformed);
  };
  bool malformed = true;
  CHECK_FALSE(parse({}, &malformed));
  CHECK_FALSE(malformed);
  std::optional<EntityTags> any = parse({" * "}, &malformed);
  REQUIRE(any);
  CHECK(any->any);
  std::optional<EntityTags> list =
      parse({"\"1\", W/\"2\",\"x\"", "\"18446744073709551615\""}, &malformed);
  REQUIRE(list);
  CHECK_FALSE(list->any);
  CHECK(list->versions == std::vector<std::uint64_t>{1, 18446744073709551615u});
  for (const char* bad : {"1", "\"1", "\"1\" \"2\"", "*, \"1\"", "\"a b\"", ""}) {
    CAPTURE(bad);
    CHECK_FALSE(parse({bad}, &malformed));
    CHECK(malformed);
  }
  CHECK(lilcache::ETagOf(42) == "\"42\"");
}

// ---- counters ------------------------------------------------------------------------

TEST_CASE("POST /keys/{key}/increment adds by (default 1) from initial (default 0)") {
  FakeClockEnv env;
  TestServer s({}, {.env = &env});
  HttpReply first = Post(s.port(), "/keys/n/increment");
  CHECK(first.status == 200);
  CHECK(first.body == "1");
  CHECK(first.header("content-type") == "text/plain; charset=utf-8");
  CHECK(Post(s.port(), "/keys/n/increment?by=5").body == "6");
  CHECK(Post(s.port(), "/keys/n/increment?by=-10").body == "-4");
  CHECK(Fetch(s.port(), "GET", "/keys/n").body == "-4");  // stored as decimal text
  CHECK(s.cache().get("n") == "-4");

  // initial and ttl apply to an absent key only.
  CHECK(Post(s.port(), "/keys/m/increment?initial=100&ttl=1s").body == "101");
  CHECK(Post(s.port(), "/keys/m/increment?initial=500&ttl=1h").body == "102");
  env.now += 1000;
  CHECK_FALSE(s.cache().contains("m"));
  CHECK(Post(s.port(), "/keys/m/increment?initial=500").body == "501");
  CHECK(s.cache().ttl("m") == lilcache::kNoExpiry);
}

TEST_CASE("an increment of a value that is not an integer is 409; an overflow 413") {
  TestServer s;
  s.cache().set("text", "abc");
  HttpReply conflict = Post(s.port(), "/keys/text/increment");
  CHECK(conflict.status == 409);
  CHECK(conflict.header("lilcache-error") == "invalid_argument");
  CHECK(conflict.body.find("is not a decimal int64") != std::string::npos);
  CHECK(s.cache().get("text") == "abc");

  s.cache().set("big", "9223372036854775807");
  HttpReply overflow = Post(s.port(), "/keys/big/increment");
  CHECK(overflow.status == 413);
  CHECK(overflow.header("lilcache-error") == "limit");
  CHECK(s.cache().get("big") == "9223372036854775807");

  // The request's own faults are 400.
  for (const char* target :
       {"/keys/n/increment?by=x", "/keys/n/increment?by=", "/keys/n/increment?by=1.5",
        "/keys/n/increment?by=99999999999999999999", "/keys/n/increment?initial=two",
        "/keys/n/increment?ttl=0s", "/keys/n/increment?ttl=soon", "/keys//increment"}) {
    CAPTURE(target);
    HttpReply r = Post(s.port(), target);
    CHECK(r.status == 400);
  }
  CHECK_FALSE(s.cache().contains("n"));
}

TEST_CASE("concurrent increments over HTTP add exactly their number") {
  TestServer s({.threads = 2});
  constexpr int kThreads = 4, kEach = 50;
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      HttpConn c(s.port());
      for (int i = 0; i < kEach; ++i) {
        if (!c.Send(MakeRequest("POST", "/keys/count/increment"))) {
          ++failed;
          return;
        }
        std::optional<HttpReply> r = c.Read();
        if (!r || r->status != 200) ++failed;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  CHECK(failed == 0);
  CHECK(s.cache().get("count") == std::to_string(kThreads * kEach));
}

// ---- expiry of one key --------------------------------------------------------------

TEST_CASE("GET /keys/{key}/ttl is the time left in JSON: ms or null; 404 if absent") {
  FakeClockEnv env;
  TestServer s({}, {.env = &env});
  s.cache().set("k", "v", std::chrono::seconds(10));
  s.cache().set("forever", "v");
  HttpReply left = Fetch(s.port(), "GET", "/keys/k/ttl");
  CHECK(left.status == 200);
  CHECK(left.header("content-type") == "application/json");
  CHECK(json::parse(left.body) == json{{"ttl_ms", 10000}});
  env.now += 2500;
  CHECK(json::parse(Fetch(s.port(), "GET", "/keys/k/ttl").body) == json{{"ttl_ms", 7500}});
  CHECK(json::parse(Fetch(s.port(), "GET", "/keys/forever/ttl").body) == json{{"ttl_ms", nullptr}});
  CHECK(Fetch(s.port(), "GET", "/keys/nope/ttl").status == 404);
  env.now += 7500;
  CHECK(Fetch(s.port(), "GET", "/keys/k/ttl").status == 404);
}

TEST_CASE("touch gives a present key a new ttl and persist removes it: 204; absent 404") {
  FakeClockEnv env;
  TestServer s({}, {.env = &env});
  s.cache().set("k", "value", std::chrono::seconds(1));
  HttpReply touched = Post(s.port(), "/keys/k/touch?ttl=1h");
  CHECK(touched.status == 204);
  CHECK(touched.body.empty());
  CHECK(touched.header("content-length").empty());  // RFC 9110 8.6: none on a 204
  env.now += 5000;
  CHECK(s.cache().get("k") == "value");
  CHECK(s.cache().ttl("k") == std::chrono::milliseconds(3'600'000 - 5000));

  CHECK(Post(s.port(), "/keys/k/persist").status == 204);
  CHECK(s.cache().ttl("k") == lilcache::kNoExpiry);
  CHECK(Post(s.port(), "/keys/k/persist").status == 204);  // already none: still done

  CHECK(Post(s.port(), "/keys/nope/touch?ttl=1h").status == 404);
  CHECK(Post(s.port(), "/keys/nope/persist").status == 404);
  CHECK_FALSE(s.cache().contains("nope"));
  CHECK(Post(s.port(), "/keys/k/touch").status == 400);  // the ttl is required
  CHECK(Post(s.port(), "/keys/k/touch?ttl=0s").status == 400);
  CHECK(s.cache().ttl("k") == lilcache::kNoExpiry);

  // The connection goes on after a 204 (it has no body to frame).
  HttpConn c(s.port());
  REQUIRE(c.Send(MakeRequest("POST", "/keys/k/persist") + MakeRequest("GET", "/keys/k")));
  std::optional<HttpReply> r1 = c.Read();
  std::optional<HttpReply> r2 = c.Read();
  REQUIRE(r1);
  REQUIRE(r2);
  CHECK(r1->status == 204);
  CHECK(r2->body == "value");
}

TEST_CASE("an operation suffix follows a literal slash: a key ending in /ttl is sent with %2F") {
  TestServer s;
  CHECK(Put(s.port(), "/keys/a%2Fttl", "x").status == 201);
  CHECK(s.cache().get("a/ttl") == "x");
  CHECK(Fetch(s.port(), "GET", "/keys/a%2Fttl").body == "x");
  CHECK(Fetch(s.port(), "GET", "/keys/a/ttl").status == 404);  // the ttl of "a"
  HttpReply put = Put(s.port(), "/keys/a/ttl", "y");
  CHECK(put.status == 405);
  CHECK(put.header("allow") == "GET, HEAD");
  CHECK(Fetch(s.port(), "GET", "/keys/a/increment").header("allow") == "POST");
  CHECK(Fetch(s.port(), "DELETE", "/keys/a/touch").status == 405);
  CHECK(Fetch(s.port(), "GET", "/keys/a/persist").status == 405);
  CHECK(s.cache().get("a/ttl") == "x");
  CHECK_FALSE(s.cache().contains("a"));
}

// ---- batches ------------------------------------------------------------------------

TEST_CASE("POST /batch/get answers each key's value in order; absent ones null") {
  TestServer s;
  const std::string binary_key("k\xff\x00", 3);
  const std::string binary_value("\x00\x01\xfe", 3);
  s.cache().set("a", "1");
  s.cache().set("é", "ü");
  s.cache().set(binary_key, binary_value);
  const json ask =
      json::array({"a", "missing", "é", {{"key_b64", lilcache::Base64Encode(binary_key)}}, "a"});
  HttpReply r = Post(s.port(), "/batch/get", ask.dump(), kJsonType);
  CHECK(r.status == 200);
  CHECK(r.header("content-type") == "application/json");
  const json expected = json::array({{{"key", "a"}, {"value", "1"}},
                                     {{"key", "missing"}, {"value", nullptr}},
                                     {{"key", "é"}, {"value", "ü"}},
                                     {{"key_b64", "a/8A"}, {"value_b64", "AAH+"}},
                                     {{"key", "a"}, {"value", "1"}}});
  CHECK(json::parse(r.body) == expected);
  CHECK(json::parse(Post(s.port(), "/batch/get", "[]", kJsonType).body) == json::array());
}

TEST_CASE("POST /batch/set stores every item in order with its ttl; binary items as base64") {
  FakeClockEnv env;
  TestServer s({}, {.env = &env});
  const json items = json::array({{{"key", "a"}, {"value", "1"}},
                                  {{"key", "b"}, {"value", "2"}, {"ttl", "1s"}},
                                  {{"key_b64", "/w=="}, {"value_b64", "AAE="}},
                                  {{"key", "a"}, {"value", "again"}, {"ttl", "1h"}}});
  HttpReply r = Post(s.port(), "/batch/set?ttl=10s", items.dump(), kJsonType);
  CHECK(r.status == 200);
  CHECK(json::parse(r.body) == json{{"stored", 4}});
  CHECK(s.cache().get("a") == "again");
  CHECK(s.cache().get("b") == "2");
  CHECK(s.cache().get("\xff") == std::string("\x00\x01", 2));
  CHECK(s.cache().ttl("a") == std::chrono::hours(1));
  CHECK(s.cache().ttl("b") == std::chrono::seconds(1));
  CHECK(s.cache().ttl("\xff") == std::chrono::seconds(10));  // ?ttl= for those without

  // The object form, without ttl: no expiry.
  HttpReply object = Post(s.port(), "/batch/set", R"({"x": "1", "y": ""})", kJsonType);
  CHECK(object.status == 200);
  CHECK(s.cache().get("x") == "1");
  CHECK(s.cache().get("y") == "");
  CHECK(s.cache().ttl("x") == lilcache::kNoExpiry);

  // What /batch/get answers is what /batch/set takes.
  const std::string got =
      Post(s.port(), "/batch/get", R"(["a", {"key_b64": "/w=="}])", kJsonType).body;
  s.cache().purge();
  CHECK(Post(s.port(), "/batch/set", got, kJsonType).status == 200);
  CHECK(s.cache().get("a") == "again");
  CHECK(s.cache().get("\xff") == std::string("\x00\x01", 2));
}

TEST_CASE("a malformed batch is 400 and stores nothing") {
  TestServer s;
  for (const char* body : {
           "not json",
           R"("a")",
           R"([{"key": "a", "value": "1"}, 5])",
           R"([{"key": "a"}])",
           R"([{"value": "1"}])",
           R"([{"key": "a", "key_b64": "YQ==", "value": "1"}])",
           R"([{"key": "a", "value": 1}])",
           R"([{"key": "a", "value": "1", "vaule": "2"}])",
           R"([{"key": "a", "value_b64": "AAE"}])",
           R"([{"key": "a", "value_b64": "AAF="}])",
           R"([{"key": "a", "value": "1", "ttl": "0s"}])",
           R"([{"key": "a", "value": "1", "ttl": 5}])",
           R"([{"key": "", "value": "1"}])",
           R"([{"key": "a", "value": ["1"]}])",
           R"({"a": 1})",
       }) {
    CAPTURE(body);
    HttpReply r = Post(s.port(), "/batch/set", body, kJsonType);
    CHECK(r.status == 400);
  }
  CHECK(s.cache().size() == 0);
  for (const char* body :
       {"{}", R"([["a"]])", R"([{"key": "a"}])", R"([5])", R"([""])", R"([{"key_b64": "!"}])"}) {
    CAPTURE(body);
    CHECK(Post(s.port(), "/batch/get", body, kJsonType).status == 400);
  }
  CHECK(Post(s.port(), "/batch/set?ttl=0s", "[]", kJsonType).status == 400);
}

TEST_CASE("a batch of more than kMaxBatchItems items or a key over kMaxKeyBytes is 413") {
  TestServer s;
  json many = json::array();
  for (std::size_t i = 0; i <= lilcache::kMaxBatchItems; ++i) {
    many.push_back({{"key", "k" + std::to_string(i)}, {"value", "v"}});
  }
  HttpReply r = Post(s.port(), "/batch/set", many.dump(), kJsonType);
  CHECK(r.status == 413);
  CHECK(r.body == "batch of more than 1000 items\n");
  CHECK(s.cache().size() == 0);
  many.erase(many.size() - 1);
  CHECK(Post(s.port(), "/batch/set", many.dump(), kJsonType).status == 200);
  CHECK(s.cache().size() == lilcache::kMaxBatchItems);

  json keys = json::array();
  for (std::size_t i = 0; i <= lilcache::kMaxBatchItems; ++i) keys.push_back("k");
  CHECK(Post(s.port(), "/batch/get", keys.dump(), kJsonType).status == 413);
  json object = json::object();
  for (std::size_t i = 0; i <= lilcache::kMaxBatchItems; ++i) object["o" + std::to_string(i)] = "";
  CHECK(Post(s.port(), "/batch/set", object.dump(), kJsonType).status == 413);

  const std::string long_key(lilcache::kMaxKeyBytes + 1, 'k');
  const json with_long =
      json::array({{{"key", "first"}, {"value", "1"}}, {{"key", long_key}, {"value", "1"}}});
  CHECK(Post(s.port(), "/batch/set", with_long.dump(), kJsonType).status == 413);
  CHECK_FALSE(s.cache().contains("first"));  // checked before anything is written
  CHECK(Post(s.port(), "/batch/get", json::array({long_key}).dump(), kJsonType).status == 413);
}

TEST_CASE("a batch body over kMaxBatchBodyBytes is 413 before it is read, chunked or not") {
  TestServer s;
  // Content-Length over the limit: refused from the header, the body never sent.
  HttpConn c(s.port());
  REQUIRE(
      c.Send("POST /batch/set HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
             "application/json\r\nContent-Length: " +
             std::to_string(lilcache::kMaxBatchBodyBytes + 1) + "\r\n\r\n"));
  std::optional<HttpReply> r = c.Read();
  REQUIRE(r);
  CHECK(r->status == 413);
  CHECK(r->header("connection") == "close");

  // Chunked: refused once the body passes the limit.
  HttpConn chunked(s.port());
  REQUIRE(chunked.Send(
      "POST /batch/set HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
      "Transfer-Encoding: chunked\r\n\r\n"));
  // Up to the limit exactly, then one byte more.
  const std::string chunk(1 << 20, ' ');
  for (std::size_t sent = 0; sent < lilcache::kMaxBatchBodyBytes; sent += chunk.size()) {
    REQUIRE(chunked.Send("100000\r\n" + chunk + "\r\n"));
  }
  REQUIRE(chunked.Send("1\r\n \r\n"));
  std::optional<HttpReply> cr = chunked.Read();
  REQUIRE(cr);
  CHECK(cr->status == 413);
  CHECK(s.cache().size() == 0);

  // A body within the limit but over what one PUT would be refused for is fine.
  const json big = json::array({{{"key", "big"}, {"value", std::string(1 << 20, 'v')}}});
  CHECK(Post(s.port(), "/batch/set", big.dump(), kJsonType).status == 200);
}

TEST_CASE("a /batch/get answer over kMaxBatchAnswerBytes is 413: ask for fewer keys") {
  TestServer s;
  const std::string half(lilcache::kMaxBatchAnswerBytes / 2, 'v');
  s.cache().set("a", half);
  s.cache().set("b", half);
  HttpReply one = Post(s.port(), "/batch/get", R"(["a"])", kJsonType);
  CHECK(one.status == 200);
  HttpReply both = Post(s.port(), "/batch/get", R"(["a", "b"])", kJsonType);
  CHECK(both.status == 413);
  CHECK(both.body.find("ask for fewer keys") != std::string::npos);
}

TEST_CASE("a batch body must be Content-Type application/json: else 415 and nothing runs") {
  TestServer s;
  const std::string body = R"({"a": "1"})";
  for (const char* type :
       {"", "Content-Type: text/plain\r\n", "Content-Type: application/x-www-form-urlencoded\r\n",
        "Content-Type: multipart/form-data; boundary=x\r\n",
        "Content-Type: application/jsonx\r\n"}) {
    CAPTURE(type);
    HttpReply r = Post(s.port(), "/batch/set", body, type);
    CHECK(r.status == 415);
  }
  CHECK_FALSE(s.cache().contains("a"));
  CHECK(Post(s.port(), "/batch/set", body, "Content-Type: Application/JSON; charset=utf-8\r\n")
            .status == 200);
  CHECK(s.cache().get("a") == "1");
  HttpReply get = Fetch(s.port(), "GET", "/batch/get");
  CHECK(get.status == 405);
  CHECK(get.header("allow") == "POST");
}

// ---- browsers -----------------------------------------------------------------------

TEST_CASE("a web page of another site cannot batch/set increment touch persist or PUT If-Match") {
  TestServer s;
  s.cache().set("k", "1", std::chrono::hours(1));
  const std::string etag = ETag(s.cache(), "k");
  // A cross-site form POST: Origin and Sec-Fetch-Site, form content types.
  const std::string form =
      "Origin: https://evil.example\r\nSec-Fetch-Site: cross-site\r\n"
      "Content-Type: application/x-www-form-urlencoded\r\n";
  const std::string json_post =
      "Origin: https://evil.example\r\nSec-Fetch-Site: cross-site\r\n" + std::string(kJsonType);
  CHECK(Post(s.port(), "/batch/set", R"({"k": "evil"})", form).status == 403);
  CHECK(Post(s.port(), "/batch/set", R"({"k": "evil"})", json_post).status == 403);
  CHECK(Post(s.port(), "/batch/get", R"(["k"])", json_post).status == 403);
  CHECK(Post(s.port(), "/keys/k/increment", {}, form).status == 403);
  CHECK(Post(s.port(), "/keys/k/touch?ttl=1s", {}, form).status == 403);
  CHECK(Post(s.port(), "/keys/k/persist", {}, form).status == 403);
  CHECK(
      Put(s.port(), "/keys/k", "evil", "Origin: https://evil.example\r\nIf-Match: *\r\n").status ==
      403);
  CHECK(Fetch(s.port(), "GET", "/keys/k/ttl", {}, "Sec-Fetch-Site: cross-site\r\n").status == 403);
  // Without Origin (a browser without it): Sec-Fetch-Site alone refuses.
  CHECK(Post(s.port(), "/batch/set", R"({"k": "evil"})",
             "Sec-Fetch-Site: cross-site\r\n" + std::string(kJsonType))
            .status == 403);
  CHECK(Post(s.port(), "/keys/k/increment", {}, "Sec-Fetch-Site: cross-site\r\n").status == 403);
  // And a form without either (an old browser) still cannot send JSON.
  CHECK(Post(s.port(), "/batch/set", R"({"k": "evil"})", "Content-Type: text/plain\r\n").status ==
        415);
  CHECK(s.cache().get("k") == "1");
  CHECK(ETag(s.cache(), "k") == etag);
  CHECK(s.cache().ttl("k") <= std::chrono::hours(1));
  CHECK(s.cache().ttl("k") != lilcache::kNoExpiry);
}

TEST_CASE("an allowed origin may send If-Match and read the ETag") {
  TestServer s({.allowed_origins = {"https://app.example"}});
  s.cache().set("k", "v");
  const std::string app = "Origin: https://app.example\r\n";
  HttpReply pre = Fetch(s.port(), "OPTIONS", "/keys/k", {},
                        app +
                            "Access-Control-Request-Method: PUT\r\n"
                            "Access-Control-Request-Headers: if-match, content-type\r\n");
  CHECK(pre.status == 200);
  CHECK(pre.header("access-control-allow-headers").find("If-Match") != std::string::npos);
  CHECK(pre.header("access-control-allow-headers").find("If-None-Match") != std::string::npos);
  HttpReply get = Fetch(s.port(), "GET", "/keys/k", {}, app);
  CHECK(get.header("etag") == ETag(s.cache(), "k"));
  CHECK(get.header("access-control-expose-headers") == "ETag");
  CHECK(Put(s.port(), "/keys/k", "w", app + "If-Match: " + get.header("etag") + "\r\n").status ==
        204);
  CHECK(s.cache().get("k") == "w");
  CHECK(Post(s.port(), "/batch/get", R"(["k"])", app + kJsonType).status == 200);
}

// ---- the wire format's pieces -------------------------------------------------------

TEST_CASE("Base64 round-trips every byte and refuses what it would not produce") {
  using lilcache::Base64Decode;
  using lilcache::Base64Encode;
  CHECK(Base64Encode("") == "");
  CHECK(Base64Encode("f") == "Zg==");
  CHECK(Base64Encode("fo") == "Zm8=");
  CHECK(Base64Encode("foo") == "Zm9v");
  CHECK(Base64Encode("foobar") == "Zm9vYmFy");
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (std::size_t n = 0; n <= all.size(); n += 37) {
    CAPTURE(n);
    CHECK(Base64Decode(Base64Encode(all.substr(0, n))) == all.substr(0, n));
  }
  for (const char* bad :
       {"Zg=", "Zg", "Z===", "Zh==", "Zm9=", "Zm9v!", "Zg==Zg==", "Zm 9v", "=Zg="}) {
    CAPTURE(bad);
    CHECK_FALSE(Base64Decode(bad));
  }
}

TEST_CASE("IsUtf8 accepts well-formed UTF-8 only") {
  using lilcache::IsUtf8;
  CHECK(IsUtf8(""));
  CHECK(IsUtf8("plain"));
  CHECK(IsUtf8("é ü € 𝄞"));
  CHECK(IsUtf8(std::string("a\0b", 3)));
  for (const std::string& bad :
       {std::string("\xff"), std::string("\xc0\xaf"),              // overlong '/'
        std::string("\xe0\x80\xaf"), std::string("\xed\xa0\x80"),  // surrogate
        std::string("\xf4\x90\x80\x80"),                           // over U+10FFFF
        std::string("\xc3"), std::string("\x80")}) {
    CAPTURE(bad.size());
    CHECK_FALSE(IsUtf8(bad));
  }
}
