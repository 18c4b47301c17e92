// The RESTful front end in-process: lilcache::Server on port 0 with real
// connections (test/http_client.h), every endpoint of docs/rest.md, every
// status code and limit, authentication, deadlines, the connection cap, a
// bounded fuzz, graceful stop; and HandleRawHttp(), the socket-free entry
// point that fuzz targets use.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "lilcache/env.h"
#include "lilcache/lilcache.h"
#include "lilcache/server.h"
#include "server/http_batch.h"
#include "server/http_connection.h"
#include "server/http_handler.h"
#include "server/http_limits.h"
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
using lilcache::test::PercentEncode;
using lilcache::test::TempDir;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// A Server on 127.0.0.1, port 0, over a fresh cache "default", run by a
// thread; stopped and joined on destruction. No $LILCACHE_TOKEN unless the
// test sets one.
class TestServer {
 public:
  explicit TestServer(ServerOptions so = {}, lilcache::Options co = {}) {
    if (so.threads == 0) so.threads = 2;
    co.root = dir_.path();
    cache_ = std::make_unique<Cache>(Cache::open("default", co));
    server_ = std::make_unique<Server>(*cache_, "127.0.0.1", 0, so);
    thread_ = std::thread([this] { server_->run(); });
  }
  ~TestServer() { Stop(); }
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  void Stop() {
    if (!thread_.joinable()) return;
    server_->stop();
    thread_.join();
  }
  std::uint16_t port() const { return server_->port(); }
  Cache& cache() { return *cache_; }
  Server& server() { return *server_; }
  const TempDir& dir() const { return dir_; }
  std::string log() const { return lilcache::test::read_file(dir_.file("default.log")); }

 private:
  TempDir dir_;
  std::unique_ptr<Cache> cache_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
};

struct NoEnvToken {
  NoEnvToken() { ::unsetenv("LILCACHE_TOKEN"); }
};

using lilcache::test::FakeClockEnv;

HttpReply Get(std::uint16_t port, const std::string& target, std::string_view headers = {}) {
  return Fetch(port, "GET", target, {}, headers);
}

// Every response in `bytes` must be well-formed enough to start with a
// status line; returns how many status lines there are.
int CountStatusLines(const std::string& bytes) {
  int n = 0;
  for (std::size_t at = bytes.find("HTTP/1.1 "); at != std::string::npos;
       at = bytes.find("HTTP/1.1 ", at + 1)) {
    ++n;
  }
  return n;
}

// A client that asks for `target` and never reads: a 4 KiB receive buffer
// (set before connecting, so the window stays small), closed on destruction.
class NonReader {
 public:
  NonReader(std::uint16_t port, const std::string& target) { Open(port, target); }
  ~NonReader() { Close(); }
  NonReader(const NonReader&) = delete;
  NonReader& operator=(const NonReader&) = delete;

  // Closes the connection and asks again on a new one.
  void Open(std::uint16_t port, const std::string& target) {
    Close();
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    int small = 4096;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    const std::string request = MakeRequest("GET", target);
    REQUIRE(::send(fd_, request.data(), request.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(request.size()));
  }
  void Close() {
    if (fd_ >= 0) ::close(fd_);  // unread data: a reset, the server's write fails
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

bool StartsWithStatusLine(const std::string& bytes) {
  if (bytes.size() < 12 || bytes.compare(0, 9, "HTTP/1.1 ") != 0) return false;
  const int status = std::atoi(bytes.substr(9, 3).c_str());
  return status >= 100 && status <= 599;
}

}  // namespace

// ---- the seed's endpoints ---------------------------------------------------------

TEST_CASE("GET /set stores a value that GET /get returns raw; a missing key is 404") {
  NoEnvToken no_token;
  TestServer s;
  HttpReply set = Get(s.port(), "/set?key=a&value=b");
  CHECK(set.status == 200);
  CHECK(set.body == "OK\n");
  HttpReply get = Get(s.port(), "/get?key=a");
  CHECK(get.status == 200);
  CHECK(get.body == "b");
  CHECK(get.header("content-type") == "application/octet-stream");
  CHECK(s.cache().get("a") == "b");  // the same data as the library's

  HttpReply miss = Get(s.port(), "/get?key=nope");
  CHECK(miss.status == 404);
  CHECK(miss.body == "not found\n");
}

TEST_CASE("a value set by the library is served, and the reverse") {
  NoEnvToken no_token;
  TestServer s;
  s.cache().set("lib", "from the library");
  CHECK(Get(s.port(), "/get?key=lib").body == "from the library");
  Cache other = Cache::open("default", {.root = s.dir().path()});
  CHECK(Get(s.port(), "/set?key=http&value=over+http").status == 200);
  CHECK(other.get("http") == "over http");
}

TEST_CASE("/pop returns the value once, then 404") {
  NoEnvToken no_token;
  TestServer s;
  s.cache().set("k", "v");
  HttpReply pop = Get(s.port(), "/pop?key=k");
  CHECK(pop.status == 200);
  CHECK(pop.body == "v");
  CHECK(Get(s.port(), "/pop?key=k").status == 404);
  CHECK(!s.cache().get("k"));
}

TEST_CASE("/delete answers 200 when it removed a value, 404 when there was none") {
  NoEnvToken no_token;
  TestServer s;
  s.cache().set("k", "v");
  HttpReply del = Get(s.port(), "/delete?key=k");
  CHECK(del.status == 200);
  CHECK(del.body == "OK\n");
  CHECK(!s.cache().contains("k"));
  CHECK(Get(s.port(), "/delete?key=k").status == 404);
}

TEST_CASE("/contains answers true or false") {
  NoEnvToken no_token;
  TestServer s;
  s.cache().set("k", "v");
  HttpReply yes = Get(s.port(), "/contains?key=k");
  CHECK(yes.status == 200);
  CHECK(yes.body == "true\n");
  HttpReply no = Get(s.port(), "/contains?key=other");
  CHECK(no.status == 200);
  CHECK(no.body == "false\n");
}

TEST_CASE("query values are percent-decoded; '+' is a space, %2B a plus") {
  NoEnvToken no_token;
  TestServer s;
  CHECK(Get(s.port(), "/set?key=greeting&value=hello%20world").status == 200);
  CHECK(s.cache().get("greeting") == "hello world");
  CHECK(Get(s.port(), "/set?key=plus&value=a+b").status == 200);
  CHECK(s.cache().get("plus") == "a b");
  CHECK(Get(s.port(), "/set?key=literal&value=a%2Bb").status == 200);
  CHECK(s.cache().get("literal") == "a+b");
  CHECK(Get(s.port(), "/set?key=my+key&value=x").status == 200);
  CHECK(s.cache().get("my key") == "x");

  // Any bytes, NUL included, round-trip when percent-encoded.
  const std::string key("k\0/&=?#%\xff", 9);
  const std::string value("v\0\r\n&=+%\x80 ", 11);
  CHECK(Get(s.port(), "/set?key=" + PercentEncode(key) + "&value=" + PercentEncode(value)).status ==
        200);
  CHECK(s.cache().get(key) == value);
  CHECK(Get(s.port(), "/get?key=" + PercentEncode(key)).body == value);

  // An empty value is a value.
  CHECK(Get(s.port(), "/set?key=empty&value=").status == 200);
  HttpReply empty = Get(s.port(), "/get?key=empty");
  CHECK(empty.status == 200);
  CHECK(empty.body.empty());
}

TEST_CASE("/set with ttl: the key expires; a bad ttl is 400") {
  NoEnvToken no_token;
  FakeClockEnv env;
  TestServer s({}, {.env = &env});
  CHECK(Get(s.port(), "/set?key=t&value=v&ttl=2s").status == 200);
  env.now += 1999;
  CHECK(Get(s.port(), "/get?key=t").status == 200);
  env.now += 1;
  CHECK(Get(s.port(), "/get?key=t").status == 404);

  HttpReply bad = Get(s.port(), "/set?key=t&value=v&ttl=12x");
  CHECK(bad.status == 400);
  CHECK(bad.body.find("bad ttl") != std::string::npos);
  HttpReply zero = Get(s.port(), "/set?key=t&value=v&ttl=0s");  // set() refuses it
  CHECK(zero.status == 400);
  CHECK(zero.header("lilcache-error") == "invalid_argument");
  CHECK(Get(s.port(), "/set?key=t&value=v&ttl=").status == 400);
}

// ---- resource style ---------------------------------------------------------------

TEST_CASE("PUT, GET and DELETE /keys/{key} store, read and remove binary values") {
  NoEnvToken no_token;
  FakeClockEnv env;
  TestServer s({}, {.env = &env});
  std::string value(1 << 20, '\0');  // 1 MiB, NULs and every byte value
  for (std::size_t i = 0; i < value.size(); ++i) value[i] = static_cast<char>(i * 7 % 251);

  HttpReply put = Fetch(s.port(), "PUT", "/keys/blob", value);
  CHECK(put.status == 201);
  CHECK(put.body.empty());
  CHECK(s.cache().get("blob") == value);
  HttpReply get = Get(s.port(), "/keys/blob");
  CHECK(get.status == 200);
  CHECK(get.body == value);
  CHECK(get.header("content-type") == "application/octet-stream");

  // The key is the rest of the path, percent-decoded; '+' is literal there.
  CHECK(Fetch(s.port(), "PUT", "/keys/a/b%20c+d%00e", "x").status == 201);
  CHECK(s.cache().get(std::string("a/b c+d\0e", 9)) == "x");

  CHECK(Fetch(s.port(), "PUT", "/keys/empty", "").status == 201);
  CHECK(s.cache().get("empty") == "");

  CHECK(Fetch(s.port(), "PUT", "/keys/short?ttl=1s", "v").status == 201);
  env.now += 1000;
  CHECK(Get(s.port(), "/keys/short").status == 404);
  CHECK(Fetch(s.port(), "PUT", "/keys/short", "v").status == 201);  // expired: created anew

  // A PUT that replaces a value is 204: no body, no Content-Type.
  HttpReply replaced = Fetch(s.port(), "PUT", "/keys/blob", "smaller");
  CHECK(replaced.status == 204);
  CHECK(replaced.body.empty());
  CHECK(replaced.header("content-type").empty());
  CHECK(s.cache().get("blob") == "smaller");

  CHECK(Fetch(s.port(), "DELETE", "/keys/blob").status == 200);
  CHECK(!s.cache().contains("blob"));
  CHECK(Fetch(s.port(), "DELETE", "/keys/blob").status == 404);
  CHECK(Get(s.port(), "/keys/blob").status == 404);
}

TEST_CASE("GET /keys lists keys as JSON, with prefix and limit") {
  NoEnvToken no_token;
  TestServer s;
  for (const char* k : {"user:1", "user:2", "user:3", "other"}) s.cache().set(k, "v");

  HttpReply all = Get(s.port(), "/keys");
  CHECK(all.status == 200);
  CHECK(all.header("content-type") == "application/json");
  std::set<std::string> keys;
  for (const auto& k : json::parse(all.body)) keys.insert(k.get<std::string>());
  CHECK(keys == std::set<std::string>{"user:1", "user:2", "user:3", "other"});

  json users = json::parse(Get(s.port(), "/keys?prefix=user%3A").body);
  CHECK(users.size() == 3);
  for (const auto& k : users) CHECK(k.get<std::string>().rfind("user:", 0) == 0);
  CHECK(json::parse(Get(s.port(), "/keys?prefix=user:&limit=2").body).size() == 2);
  CHECK(json::parse(Get(s.port(), "/keys?limit=0").body).empty());
  CHECK(Get(s.port(), "/keys?limit=ten").status == 400);
  CHECK(Get(s.port(), "/keys?limit=-1").status == 400);
}

TEST_CASE("GET /keys lists at most ServerOptions::keys_limit keys without ?limit=") {
  NoEnvToken no_token;
  TestServer s({.keys_limit = 5});
  for (int i = 0; i < 20; ++i) s.cache().set("k" + std::to_string(i), "v");
  CHECK(json::parse(Get(s.port(), "/keys").body).size() == 5);
  CHECK(json::parse(Get(s.port(), "/keys?limit=20").body).size() == 20);
}

// The target of a Link: <...>; rel="next" field; "" if none.
std::string NextLink(const HttpReply& r) {
  const std::string link = r.header("link");
  if (link.empty()) return "";
  REQUIRE(link.front() == '<');
  REQUIRE(link.find(">; rel=\"next\"") != std::string::npos);
  return link.substr(1, link.find('>') - 1);
}

// Every page of `first` and the pages its Link fields lead to, in order;
// each page's keys must sort strictly after the previous page's (decoded
// from base64 if `base64`).
std::vector<std::string> AllPages(std::uint16_t port, std::string target, int* pages = nullptr,
                                  bool base64 = false) {
  std::vector<std::string> keys;
  int n = 0;
  while (!target.empty()) {
    REQUIRE(++n < 100000);
    const HttpReply r = Get(port, target);
    REQUIRE(r.status == 200);
    for (const auto& k : json::parse(r.body)) {
      std::string key = k.get<std::string>();
      if (base64) {
        std::optional<std::string> bytes = lilcache::Base64Decode(key);
        REQUIRE(bytes);
        key = *bytes;
      }
      if (!keys.empty()) CHECK(keys.back() < key);  // byte order, none twice
      keys.push_back(key);
    }
    target = NextLink(r);
  }
  if (pages != nullptr) *pages = n;
  return keys;
}

TEST_CASE("GET /keys pages through every key in byte order: limit, after and Link: rel=next") {
  NoEnvToken no_token;
  TestServer s;  // keys_limit 1,000
  std::vector<std::string> all;
  for (int i = 0; i < 2500; ++i) all.push_back("k" + std::to_string(i));
  all.push_back(std::string("k\xff\x01", 3));  // above every ASCII key: bytes compare unsigned
  for (const std::string& k : all) s.cache().set(k, "v");
  s.cache().set("other", "v");
  std::sort(all.begin(), all.end());

  const HttpReply first = Get(s.port(), "/keys?prefix=k");
  CHECK(json::parse(first.body).size() == 1000);
  CHECK(NextLink(first) == "/keys?limit=1000&prefix=k&after=" +
                               PercentEncode(json::parse(first.body).back().get<std::string>()));
  int pages = 0;
  std::vector<std::string> listed = AllPages(s.port(), "/keys?prefix=k", &pages);
  CHECK(pages == 3);
  // The JSON of a non-UTF-8 key is lossy; compare the others.
  CHECK(listed.size() == all.size());
  CHECK(std::vector<std::string>(listed.begin(), listed.end() - 1) ==
        std::vector<std::string>(all.begin(), all.end() - 1));

  // A page that holds the rest has no Link; nor has one of limit 0.
  CHECK(NextLink(Get(s.port(), "/keys?prefix=k&limit=3000")).empty());
  CHECK(NextLink(Get(s.port(), "/keys?limit=0")).empty());
  // after: strictly after, anywhere in the order.
  const json after = json::parse(Get(s.port(), "/keys?after=k999&limit=2").body);
  CHECK(after.size() == 2);  // "k\xff\x01" (lossy), then "other"
  CHECK(after.back() == "other");
  CHECK(json::parse(Get(s.port(), "/keys?after=l").body) == json::array({"other"}));
  CHECK(json::parse(Get(s.port(), "/keys?after=other").body).empty());
  CHECK(Get(s.port(), "/keys?after=a&after=b").status == 400);
}

TEST_CASE("a page of GET /keys holds at most kMaxKeysPage keys and kMaxKeysPageBytes bytes") {
  NoEnvToken no_token;
  TestServer s({.keys_limit = 100000});
  std::vector<std::pair<std::string, std::string>> items;
  for (int i = 0; i < 300; ++i)
    items.emplace_back("big" + std::to_string(i) + std::string(4000, 'x'), "");
  // Short keys after them: one that would fit in the bytes left must not
  // join a page that left out a long key before it (it would be skipped).
  for (int i = 0; i < 100; ++i) items.emplace_back("bigz" + std::to_string(i), "");
  s.cache().set_many(items);
  HttpReply r = Get(s.port(), "/keys?prefix=big");
  std::size_t bytes = 0;
  for (const auto& k : json::parse(r.body)) {
    bytes += k.get<std::string>().size();
    CHECK(k.get<std::string>().size() > 4000);
  }
  CHECK(bytes <= lilcache::kMaxKeysPageBytes);
  CHECK(bytes > lilcache::kMaxKeysPageBytes - 4100);
  CHECK_FALSE(NextLink(r).empty());
  CHECK(AllPages(s.port(), "/keys?prefix=big").size() == 400);

  items.clear();
  for (std::size_t i = 0; i < lilcache::kMaxKeysPage + 1; ++i)
    items.emplace_back("n" + std::to_string(i), "");
  s.cache().set_many(items);
  r = Get(s.port(), "/keys?prefix=n");  // keys_limit over kMaxKeysPage
  CHECK(json::parse(r.body).size() == lilcache::kMaxKeysPage);
  CHECK(NextLink(r).rfind("/keys?limit=" + std::to_string(lilcache::kMaxKeysPage) + "&", 0) == 0);
  r = Get(s.port(), "/keys?prefix=n&limit=99999999");
  CHECK(json::parse(r.body).size() == lilcache::kMaxKeysPage);
  CHECK(AllPages(s.port(), "/keys?prefix=n").size() == lilcache::kMaxKeysPage + 1);
}

TEST_CASE(
    "paging /keys while others write and compact: each key present throughout is listed once") {
  NoEnvToken no_token;
  TestServer s({.threads = 2});
  std::set<std::string> stable;
  for (int i = 0; i < 1500; ++i) {
    stable.insert("s" + std::to_string(i));
    s.cache().set("s" + std::to_string(i), "v");
  }
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    // New and removed keys, overwrites of the stable ones, and compactions
    // (new generations, new index) while the pages are read.
    Cache other = Cache::open("default", {.root = s.dir().path()});
    for (int i = 0; !stop; ++i) {
      other.set("churn" + std::to_string(i), "v");
      other.erase("churn" + std::to_string(i - 50));
      other.set("s" + std::to_string(i % 1500), "w" + std::to_string(i));
      if (i % 500 == 0) other.compact();
    }
  });
  int pages = 0;
  const std::vector<std::string> listed = AllPages(s.port(), "/keys?limit=50", &pages);
  stop = true;
  writer.join();
  CHECK(pages >= 30);
  std::size_t found = 0;
  for (const std::string& k : listed) found += stable.count(k);  // AllPages: none twice
  CHECK(found == stable.size());
}

TEST_CASE("?encoding=base64 lists any key so that it can be fetched back; bad base64 is 400") {
  NoEnvToken no_token;
  TestServer s;
  const std::string binary(
      "\xff\xfe"
      "bin\0",
      6);
  s.cache().set(binary, "raw");
  s.cache().set("text", "plain");

  // Without it, a non-UTF-8 key is listed lossily.
  CHECK(json::parse(Get(s.port(), "/keys").body).size() == 2);
  const json listed = json::parse(Get(s.port(), "/keys?encoding=base64").body);
  CHECK(listed == json::array({lilcache::Base64Encode("text"), lilcache::Base64Encode(binary)}));
  const std::string b64 = listed[1].get<std::string>();
  CHECK(b64 == "//5iaW4A");

  // Every endpoint taking a key takes it in base64 with encoding=base64.
  const std::string q = "key=" + PercentEncode(b64) + "&encoding=base64";
  CHECK(Get(s.port(), "/get?" + q).body == "raw");
  CHECK(Get(s.port(), "/contains?" + q).body == "true\n");
  CHECK(Get(s.port(), "/keys/" + PercentEncode(b64) + "?encoding=base64").body == "raw");
  CHECK(Fetch(s.port(), "PUT", "/keys/" + b64 + "?encoding=base64", "new").status == 204);
  CHECK(s.cache().get(binary) == "new");
  CHECK(Get(s.port(), "/set?" + q + "&value=set").status == 200);
  CHECK(s.cache().get(binary) == "set");
  CHECK(Get(s.port(), "/keys/" + PercentEncode(b64) + "/ttl?encoding=base64").body ==
        "{\"ttl_ms\":null}\n");
  CHECK(json::parse(Get(s.port(), "/keys?encoding=base64&prefix=" +
                                      PercentEncode(lilcache::Base64Encode("\xff")))
                        .body) == json::array({b64}));
  // An unescaped '+' of base64 arrives as a space in a query: taken as '+'.
  s.cache().set("\xfb\xef", "plus");
  CHECK(lilcache::Base64Encode("\xfb\xef") == "++8=");
  CHECK(Get(s.port(), "/get?key=++8=&encoding=base64").body == "plus");
  CHECK(Get(s.port(), "/pop?" + q).body == "set");
  CHECK(Get(s.port(),
            "/delete?key=" + PercentEncode(lilcache::Base64Encode("text")) + "&encoding=base64")
            .status == 200);
  CHECK_FALSE(s.cache().contains("text"));

  // Paging in base64: the Link carries the cursor in base64 too.
  for (int i = 0; i < 5; ++i) s.cache().set(std::string("\x80", 1) + std::to_string(i), "v");
  std::vector<std::string> paged =
      AllPages(s.port(), "/keys?encoding=base64&limit=2", nullptr, true);
  CHECK(paged.size() == 6);
  const HttpReply page = Get(s.port(), "/keys?encoding=base64&limit=2");
  CHECK(NextLink(page).find("&encoding=base64") != std::string::npos);

  const HttpReply bad = Get(s.port(), "/get?key=abc&encoding=base64");
  CHECK(bad.status == 400);
  CHECK(bad.body.find("not base64") != std::string::npos);
  CHECK(Get(s.port(), "/keys/a-b_?encoding=base64").status == 400);  // base64url is not taken
  const HttpReply other = Get(s.port(), "/get?key=abc&encoding=hex");
  CHECK(other.status == 400);
  CHECK(other.body == "bad encoding \"hex\": expected base64 (or no encoding parameter)\n");
  // Each is one line, whatever the text quoted.
  CHECK(Get(s.port(), "/get?key=a%0Ab&encoding=base64").body ==
        "bad key \"a?b\": not base64 (RFC 4648, standard alphabet, with = padding), as "
        "encoding=base64 asks\n");
  CHECK(Get(s.port(), "/keys?encoding=%0A").body.find('\n') ==
        Get(s.port(), "/keys?encoding=%0A").body.size() - 1);
  CHECK(Get(s.port(), "/keys?limit=1%0D%0A").body ==
        "bad limit \"1??\": expected a non-negative integer\n");
}

TEST_CASE("AcceptPrefersJson: JSON only when the client ranks it above text") {
  using lilcache::AcceptPrefersJson;
  CHECK(AcceptPrefersJson("application/json"));
  CHECK(AcceptPrefersJson("application/problem+json"));
  CHECK(AcceptPrefersJson("Application/JSON; charset=utf-8"));
  CHECK(AcceptPrefersJson("application/json, */*"));            // more specific than */*
  CHECK(AcceptPrefersJson("text/plain;q=0.5, application/*"));  // higher q
  CHECK(AcceptPrefersJson("application/json;q=0.9, text/*;q=0.8"));
  CHECK_FALSE(AcceptPrefersJson(""));
  CHECK_FALSE(AcceptPrefersJson("*/*"));  // curl's
  CHECK_FALSE(AcceptPrefersJson("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"));
  CHECK_FALSE(AcceptPrefersJson("application/json, text/plain, */*"));  // a tie: text
  CHECK_FALSE(AcceptPrefersJson("application/json;q=0, */*"));
  CHECK_FALSE(AcceptPrefersJson("application/json;q=0.5, text/plain"));
  CHECK_FALSE(AcceptPrefersJson("application/json;q=bogus"));
  CHECK_FALSE(AcceptPrefersJson("image/png"));
}

TEST_CASE("errors are application/problem+json when Accept prefers JSON, else one line of text") {
  NoEnvToken no_token;
  TestServer s({.token = "t"});
  const std::string auth = "Authorization: Bearer t\r\n";
  const std::string js = "Accept: application/json\r\n";

  HttpReply text = Get(s.port(), "/get?key=nope", auth + "Accept: */*\r\n");
  CHECK(text.status == 404);
  CHECK(text.header("content-type") == "text/plain; charset=utf-8");
  CHECK(text.body == "not found\n");

  HttpReply miss = Get(s.port(), "/get?key=nope", auth + js);
  CHECK(miss.status == 404);
  CHECK(miss.header("content-type") == "application/problem+json");
  CHECK(json::parse(miss.body) == json{{"type", "about:blank"},
                                       {"title", "Not Found"},
                                       {"status", 404},
                                       {"detail", "not found"}});
  // The cache's refusal: its kind as "error", as in Lilcache-Error.
  HttpReply empty = Get(s.port(), "/get?key=", auth + "Accept: application/problem+json\r\n");
  CHECK(empty.status == 400);
  CHECK(empty.header("lilcache-error") == "invalid_argument");
  const json problem = json::parse(empty.body);
  CHECK(problem["error"] == "invalid_argument");
  CHECK(problem["title"] == "Bad Request");
  CHECK(problem["detail"].get<std::string>().find("empty") != std::string::npos);
  // Refusals from the header alone: 401, 405 (its Allow kept), 404.
  HttpReply no_token_reply = Get(s.port(), "/stats", js);
  CHECK(no_token_reply.status == 401);
  CHECK(json::parse(no_token_reply.body)["status"] == 401);
  CHECK(no_token_reply.header("www-authenticate").find("Bearer") == 0);
  HttpReply wrong = Fetch(s.port(), "POST", "/get?key=a", "", auth + js);
  CHECK(wrong.status == 405);
  CHECK(wrong.header("allow") == "GET, HEAD");
  CHECK(json::parse(wrong.body)["title"] == "Method Not Allowed");
  CHECK(json::parse(Get(s.port(), "/nope", auth + js).body)["status"] == 404);
  // 412 too; successes are unchanged.
  s.cache().set("k", "v");
  HttpReply pre = Fetch(s.port(), "PUT", "/keys/k", "w", auth + js + "If-None-Match: *\r\n");
  CHECK(pre.status == 412);
  CHECK(json::parse(pre.body)["detail"] ==
        "precondition failed: the key is present (If-None-Match: *)");
  CHECK(Get(s.port(), "/get?key=k", auth + js).body == "v");
  CHECK(Get(s.port(), "/health", auth + js).body == "OK\n");
}

TEST_CASE("GET /stats is the cache's Stats as JSON; GET /health is OK") {
  NoEnvToken no_token;
  TestServer s;
  s.cache().set("a", "1");
  s.cache().set("b", "2");
  Get(s.port(), "/get?key=a");
  Get(s.port(), "/get?key=zzz");
  HttpReply stats = Get(s.port(), "/stats");
  CHECK(stats.status == 200);
  CHECK(stats.header("content-type") == "application/json");
  json j = json::parse(stats.body);
  CHECK(j["name"] == "default");
  CHECK(j["keys"] == 2);
  CHECK(j["sets"] == 2);
  CHECK(j["hits"].get<std::uint64_t>() >= 1);
  CHECK(j["misses"].get<std::uint64_t>() >= 1);
  for (const char* field : {"deletes", "expired", "bytes_live", "bytes_dead", "bytes_file",
                            "generation", "index_slots", "index_used", "processes", "compactions",
                            "snapshots", "last_snapshot_ms", "evictions", "max_bytes"}) {
    CHECK_MESSAGE(j.contains(field), field);
  }
  HttpReply health = Get(s.port(), "/health");
  CHECK(health.status == 200);
  CHECK(health.body == "OK\n");
}

TEST_CASE("purge only by POST /purge or DELETE /keys; GET /purge is 405 and purges nothing") {
  NoEnvToken no_token;
  TestServer s;
  s.cache().set("a", "1");
  HttpReply get_purge = Get(s.port(), "/purge");
  CHECK(get_purge.status == 405);
  CHECK(get_purge.header("allow") == "POST");
  CHECK(s.cache().contains("a"));

  CHECK(Fetch(s.port(), "POST", "/purge").status == 200);
  CHECK(!s.cache().contains("a"));
  s.cache().set("b", "2");
  CHECK(Fetch(s.port(), "DELETE", "/keys").status == 200);
  CHECK(s.cache().size() == 0);
}

// ---- bad requests -------------------------------------------------------------------

TEST_CASE(
    "a missing or empty key is 400 with a message (the cache's invalid_argument for an empty "
    "one); a repeated parameter is 400") {
  NoEnvToken no_token;
  TestServer s;
  for (const char* target : {"/get", "/pop", "/delete", "/contains", "/set?value=v"}) {
    HttpReply r = Get(s.port(), target);
    CHECK_MESSAGE(r.status == 400, target);
    CHECK(r.body == "missing parameter: key\n");
  }
  HttpReply empty = Get(s.port(), "/get?key=");
  CHECK(empty.status == 400);
  CHECK(empty.body.starts_with("invalid key: empty"));
  CHECK(empty.header("lilcache-error") == "invalid_argument");
  CHECK(Get(s.port(), "/get?key").status == 400);
  CHECK(Get(s.port(), "/keys/").status == 400);
  CHECK(Fetch(s.port(), "PUT", "/keys/", "v").status == 400);
  HttpReply no_value = Get(s.port(), "/set?key=a");
  CHECK(no_value.status == 400);
  CHECK(no_value.body == "missing parameter: value\n");
  HttpReply twice = Get(s.port(), "/set?key=a&key=b&value=v");
  CHECK(twice.status == 400);
  CHECK(twice.body.find("twice") != std::string::npos);
  CHECK(s.cache().size() == 0);
  // Unknown parameters are ignored.
  CHECK(Get(s.port(), "/set?key=a&value=v&_=12345").status == 200);
}

TEST_CASE(
    "a key over kMaxKeyBytes or a value over kMaxValueBytes is 413: the cache's limit Error") {
  NoEnvToken no_token;
  // Bodies a little over the value limit are read, so that the cache's
  // limit (not the body limit) answers.
  TestServer s({.max_body_bytes = lilcache::kMaxValueBytes + 1024});
  const std::string long_key(lilcache::kMaxKeyBytes + 1, 'k');
  HttpReply r = Get(s.port(), "/get?key=" + long_key);
  CHECK(r.status == 413);
  CHECK(r.body.find("4096") != std::string::npos);
  CHECK(r.header("lilcache-error") == "limit");
  CHECK(Get(s.port(), "/set?key=" + long_key + "&value=v").status == 413);
  CHECK(Fetch(s.port(), "PUT", "/keys/" + long_key, "v").status == 413);
  const std::string max_key(lilcache::kMaxKeyBytes, 'k');
  CHECK(Fetch(s.port(), "PUT", "/keys/" + max_key, "v").status == 201);

  const std::string big(lilcache::kMaxValueBytes + 1, 'v');
  HttpReply too_big = Fetch(s.port(), "PUT", "/keys/big", big);
  CHECK(too_big.status == 413);
  CHECK(too_big.body.find("value too large") != std::string::npos);
  CHECK(too_big.header("lilcache-error") == "limit");
  CHECK(!s.cache().contains("big"));
}

TEST_CASE("a body over max_body_bytes is refused with 413 before it is sent") {
  NoEnvToken no_token;
  TestServer s({.max_body_bytes = 1000});
  HttpConn c(s.port());
  // Only the header: the answer must not wait for the 2000 bytes announced.
  REQUIRE(c.Send("PUT /keys/k HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2000\r\n\r\n"));
  std::optional<HttpReply> r = c.Read();
  REQUIRE(r);
  CHECK(r->status == 413);
  CHECK(r->header("connection") == "close");
  CHECK(c.WaitClosed(10s));
  CHECK(Fetch(s.port(), "PUT", "/keys/k", std::string(1000, 'x')).status == 201);

  // Chunked bodies too.
  HttpConn chunked(s.port());
  std::string req = "PUT /keys/c HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 3; ++i) req += "200\r\n" + std::string(512, 'y') + "\r\n";
  REQUIRE(chunked.Send(req));
  r = chunked.Read();
  REQUIRE(r);
  CHECK(r->status == 413);
  CHECK(!s.cache().contains("c"));
}

TEST_CASE("a request line over max_header_bytes is 414; header fields over it 431") {
  NoEnvToken no_token;
  TestServer s;
  HttpReply uri = Get(s.port(), "/get?key=" + std::string(9000, 'a'));
  CHECK(uri.status == 414);
  CHECK(uri.header("connection") == "close");
  HttpReply fields = Get(s.port(), "/get?key=a", "X-Big: " + std::string(9000, 'b') + "\r\n");
  CHECK(fields.status == 431);
  std::string many;
  for (int i = 0; i < 600; ++i) many += "X-" + std::to_string(i) + ": 0123456789\r\n";
  CHECK(Get(s.port(), "/get?key=a", many).status == 431);
  // Just under the limit is fine.
  CHECK(Get(s.port(), "/get?key=a", "X-Big: " + std::string(7000, 'b') + "\r\n").status == 404);
}

TEST_CASE("an unknown path is 404; a wrong method is 405 with Allow") {
  NoEnvToken no_token;
  TestServer s;
  CHECK(Get(s.port(), "/").status == 404);
  CHECK(Get(s.port(), "/nope?key=a").status == 404);
  CHECK(Get(s.port(), "/get/").status == 404);
  HttpReply post_get = Fetch(s.port(), "POST", "/get?key=a");
  CHECK(post_get.status == 405);
  CHECK(post_get.header("allow") == "GET, HEAD");
  CHECK(Fetch(s.port(), "PUT", "/keys", "x").header("allow") == "GET, HEAD, DELETE");
  CHECK(Fetch(s.port(), "POST", "/keys/k", "x").header("allow") == "GET, HEAD, PUT, DELETE");
  CHECK(Fetch(s.port(), "DELETE", "/stats").status == 405);
  CHECK(Fetch(s.port(), "BREW", "/health").status == 405);
}

TEST_CASE("HEAD of every reading GET answers its status and headers without the body") {
  NoEnvToken no_token;
  TestServer s;
  s.cache().set("a", "bbb");
  s.cache().set("t", "1", 60s);
  HttpConn c(s.port());
  for (const char* target : {"/get?key=a", "/get?key=nope", "/contains?key=a", "/stats", "/health",
                             "/keys?limit=1", "/keys/a", "/keys/nope", "/keys/t/ttl"}) {
    CAPTURE(target);
    const HttpReply get = Get(s.port(), target);
    REQUIRE(c.Send(MakeRequest("HEAD", target)));
    std::optional<HttpReply> head = c.Read(true);  // the connection goes on after each
    REQUIRE(head);
    CHECK(head->status == get.status);
    CHECK(head->body.empty());
    CHECK(head->header("content-type") == get.header("content-type"));
    CHECK(head->header("etag") == get.header("etag"));
    CHECK(head->header("link") == get.header("link"));
    if (std::string(target).find("stats") == std::string::npos) {  // counters move between them
      CHECK(head->header("content-length") == std::to_string(get.body.size()));
    }
  }
  // HEAD is safe: the seed's GETs that write are 405 for it, and write nothing.
  for (const char* target : {"/set?key=a&value=x", "/pop?key=a", "/delete?key=a"}) {
    CAPTURE(target);
    REQUIRE(c.Send(MakeRequest("HEAD", target)));
    std::optional<HttpReply> head = c.Read(true);
    REQUIRE(head);
    CHECK(head->status == 405);
    CHECK(head->header("allow") == "GET");
    CHECK(head->body.empty());
  }
  CHECK(s.cache().get("a") == "bbb");
  REQUIRE(c.Send(MakeRequest("GET", "/get?key=a")));
  std::optional<HttpReply> get = c.Read();
  REQUIRE(get);
  CHECK(get->body == "bbb");
}

TEST_CASE("malformed HTTP is 400 and closes the connection") {
  NoEnvToken no_token;
  TestServer s;
  for (const char* bytes : {
           "GARBAGE\r\n\r\n",
           "GET /health HTTP/9.9\r\n\r\n",
           "GET /health HTTP/1.1\r\nno colon here\r\n\r\n",
           "GET /health HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
           "GET /health HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
           "PUT /keys/k HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
           "GET  /health HTTP/1.1\r\n\r\n",
           "GET /health\rHTTP/1.1\r\n\r\n",
       }) {
    HttpConn c(s.port());
    REQUIRE(c.Send(bytes));
    std::optional<HttpReply> r = c.Read();
    REQUIRE_MESSAGE(r, bytes);
    CHECK_MESSAGE(r->status == 400, bytes);
    CHECK(r->header("connection") == "close");
    CHECK(c.WaitClosed(10s));
  }
  // A target that is not an origin-form URI, or a bad percent-escape.
  CHECK(Get(s.port(), "http://example.com/get?key=a").status == 400);
  CHECK(Get(s.port(), "/get?key=%zz").status == 400);
  CHECK(Get(s.port(), "*").status == 400);
  CHECK(Get(s.port(), "/health").status == 200);
}

// ---- bounded memory: chunk headers, trailers, the memory budget ----------------

TEST_CASE("Beast's header_limit bounds neither a chunk extension nor the trailer section") {
  // What the server must bound itself (see HttpConnection::Process): a bare
  // Beast request_parser with a 1 KiB header limit takes an 8 KiB chunk line
  // and an 8 KiB trailer section whole.
  namespace http = boost::beast::http;
  const std::string head = "PUT /k HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (const std::string& body : {"1;" + std::string(8192, 'a') + "\r\nx\r\n0\r\n\r\n",
                                  "1\r\nx\r\n0\r\nX-T: " + std::string(8192, 'b') + "\r\n\r\n"}) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(1024);
    const std::string all = head + body;
    boost::system::error_code ec;
    std::size_t used = 0;
    while (!ec && used < all.size() && !parser.is_done()) {
      used += parser.put(boost::asio::buffer(all.data() + used, all.size() - used), ec);
    }
    CHECK_MESSAGE(!ec, ec.message());
    CHECK(parser.is_done());
    CHECK(parser.get().body() == "x");
  }
}

TEST_CASE("a chunk header or trailer section over max_header_bytes is refused, not buffered") {
  TempDir dir;
  Cache cache = Cache::open("default", {.root = dir.path()});
  lilcache::HttpHandler handler(cache, "", 100);
  const std::string head =
      "PUT /keys/k HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  // Unfinished: the old parser waited for the end of the line with all of it.
  std::string out = lilcache::HandleRawHttp(handler, head + "1;" + std::string(10000, 'a'));
  CHECK(out.rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0);
  CHECK(out.find("chunk header (size and extensions) over 8192 bytes\n") != std::string::npos);
  out = lilcache::HandleRawHttp(handler, head + "1\r\nx\r\n0\r\nX-T: " + std::string(10000, 'b'));
  CHECK(out.rfind("HTTP/1.1 431 ", 0) == 0);
  CHECK(out.find("trailer section over 8192 bytes\n") != std::string::npos);
  // Many short trailer fields count together.
  std::string fields;
  for (int i = 0; i < 1000; ++i) fields += "X-" + std::to_string(i) + ": v\r\n";
  out = lilcache::HandleRawHttp(handler, head + "1\r\nx\r\n0\r\n" + fields);
  CHECK(out.rfind("HTTP/1.1 431 ", 0) == 0);
  CHECK(!cache.contains("k"));
  // Within the limit both are fine.
  out = lilcache::HandleRawHttp(
      handler, head + "1;ext=" + std::string(4000, 'e') + "\r\nx\r\n0\r\nX-T: t\r\n\r\n");
  CHECK(out.rfind("HTTP/1.1 201 Created\r\n", 0) == 0);
  CHECK(cache.get("k") == "x");
}

TEST_CASE(
    "HandleRawHttp with an exhausted memory budget: 503 with Retry-After for what it charges") {
  TempDir dir;
  Cache cache = Cache::open("default", {.root = dir.path()});
  cache.set("a", "1");
  lilcache::HttpHandler handler(cache, "", 100);
  lilcache::MemoryBudget exhausted(0);
  const lilcache::HttpLimits limits{.budget = &exhausted};
  // Small bodies and answers are not charged; a pop is, whatever its size.
  std::string out = lilcache::HandleRawHttp(
      handler, MakeRequest("PUT", "/keys/s", "small") + MakeRequest("GET", "/pop?key=a"), limits);
  CHECK(out.rfind("HTTP/1.1 201 Created\r\n", 0) == 0);
  CHECK(out.find("HTTP/1.1 503 Service Unavailable\r\n") != std::string::npos);
  CHECK(out.find("Retry-After: 1\r\n") != std::string::npos);
  CHECK(cache.get("a") == "1");
  // A body announced over 64 KiB: refused from its header.
  out = lilcache::HandleRawHttp(
      handler, "PUT /keys/b HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 70000\r\n\r\n", limits);
  CHECK(out.rfind("HTTP/1.1 503 ", 0) == 0);
  CHECK(out.find("Connection: close\r\n") != std::string::npos);
  CHECK(exhausted.used() == 0);
}

TEST_CASE("an endless chunk extension or trailer is cut after max_header_bytes") {
  NoEnvToken no_token;
  TestServer s;
  const std::string head =
      "PUT /keys/x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (const std::string& start : {head + "1;", head + "1\r\nx\r\n0\r\nX-Trailer: "}) {
    // A little over the limit: the answer comes without waiting for more.
    HttpConn c(s.port(), 10s);
    REQUIRE(c.Send(start + std::string(12 * 1024, 'a')));
    std::optional<HttpReply> r = c.Read();
    REQUIRE(r);
    CHECK((r->status == 400 || r->status == 431));
    CHECK(r->header("connection") == "close");
    // A flood: the server stops reading it (it read 1.5 GB into memory before).
    HttpConn flood(s.port(), 10s);
    REQUIRE(flood.Send(start));
    const std::string block(64 * 1024, 'a');
    std::size_t sent = 0;
    while (sent < (256u << 20) && flood.Send(block)) sent += block.size();
    CHECK_MESSAGE(sent < (16u << 20), "sent " << sent << " bytes before the server closed");
  }
  CHECK(Get(s.port(), "/health").status == 200);
  CHECK(!s.cache().contains("x"));
}

TEST_CASE("the memory budget refuses a body it cannot take with 503 before reading it") {
  NoEnvToken no_token;
  TestServer s({.memory_budget = lilcache::kMaxValueBytes});  // 64 MiB
  const std::size_t big = 40u << 20;
  HttpConn first(s.port());
  REQUIRE(
      first.Send("PUT /keys/a HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
                 "Content-Length: " +
                 std::to_string(big) + "\r\n\r\n"));
  std::optional<HttpReply> r = first.Read();  // 100 Continue: its 40 MiB are held
  REQUIRE(r);
  REQUIRE(r->status == 100);
  REQUIRE(first.Send(std::string(1 << 20, 'a')));
  HttpConn second(s.port());
  REQUIRE(second.Send("PUT /keys/b HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " +
                      std::to_string(30u << 20) + "\r\n\r\n"));
  r = second.Read();
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK(r->header("retry-after") == "1");
  CHECK(r->header("connection") == "close");
  CHECK(r->body.find("memory budget") != std::string::npos);
  // Small bodies are not charged: they go on.
  CHECK(Fetch(s.port(), "PUT", "/keys/small", std::string(1000, 's')).status == 201);
  // Once the first body is stored, its share is free again.
  REQUIRE(first.Send(std::string(big - (1 << 20), 'a')));
  r = first.Read();
  REQUIRE(r);
  CHECK(r->status == 201);
  CHECK(Fetch(s.port(), "PUT", "/keys/b", std::string(30u << 20, 'b')).status == 201);

  // Chunked bodies are charged as they grow: two of 40 MiB do not both fit
  // (whichever passes what is free first is refused, or both).
  const std::string chunked =
      "PUT /keys/cK HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::string chunk = "100000\r\n" + std::string(1 << 20, 'c') + "\r\n";  // 1 MiB
  std::vector<std::unique_ptr<HttpConn>> chunked_conns;
  for (const char* k : {"c1", "c2"}) {
    chunked_conns.push_back(std::make_unique<HttpConn>(s.port()));
    std::string head = chunked;
    head.replace(head.find("cK"), 2, k);
    REQUIRE(chunked_conns.back()->Send(head));
  }
  for (int i = 0; i < 40; ++i) {
    for (auto& c : chunked_conns) c->Send(chunk);  // a refused one stops taking them
  }
  int stored = 0, refused = 0;
  for (auto& c : chunked_conns) {
    std::optional<HttpReply> done;
    if (c->Send("0\r\n\r\n")) done = c->Read();
    if (done && done->status == 201) ++stored;
    if (!done || done->status == 503) ++refused;
  }
  CHECK(refused >= 1);
  CHECK(stored + refused == 2);
  CHECK(static_cast<int>(s.cache().contains("c1")) + static_cast<int>(s.cache().contains("c2")) ==
        stored);
}

TEST_CASE("a large response the memory budget cannot take is 503; a pop waits for room") {
  NoEnvToken no_token;
  TestServer s({.memory_budget = lilcache::kMaxValueBytes});  // 64 MiB
  s.cache().set("big", std::string(40u << 20, 'v'));
  s.cache().set("small", "s");
  // A client that asks for the big value and never reads it holds 40 MiB
  // until its deadline.
  NonReader idle(s.port(), "/keys/big");
  // Once the server has answered it (asynchronously), another is refused.
  // (If the other was answered first, the non-reader got the 503: again.)
  HttpConn other(s.port());
  std::optional<HttpReply> r;
  for (int i = 0; i < 50; ++i) {
    std::this_thread::sleep_for(50ms);
    REQUIRE(other.Send(MakeRequest("GET", "/keys/big")));
    r = other.Read();
    REQUIRE(r);
    if (r->status == 503) break;
    idle.Open(s.port(), "/keys/big");
  }
  CHECK(r->status == 503);
  CHECK(r->header("retry-after") == "1");
  // The connection goes on; small answers are not charged.
  REQUIRE(other.Send(MakeRequest("GET", "/keys/small")));
  r = other.Read();
  REQUIRE(r);
  CHECK(r->body == "s");
  // A pop holds the largest value's size first: refused, and nothing popped.
  CHECK(Get(s.port(), "/pop?key=small").status == 503);
  CHECK(s.cache().get("small") == "s");
  // The client goes: its share is free, the pop and the big value are served.
  idle.Close();
  bool popped = false;
  for (int i = 0; i < 100 && !popped; ++i) {
    HttpReply pop = Get(s.port(), "/pop?key=small");
    popped = pop.status == 200 && pop.body == "s";
    if (!popped) std::this_thread::sleep_for(50ms);
  }
  CHECK(popped);
  CHECK(Get(s.port(), "/keys/big").body.size() == 40u << 20);
}

TEST_CASE("a response the client does not read is dropped at the deadline, freeing its budget") {
  NoEnvToken no_token;
  TestServer s({.request_timeout = 500ms, .memory_budget = lilcache::kMaxValueBytes});
  s.cache().set("big", std::string(40u << 20, 'v'));
  NonReader idle(s.port(), "/keys/big");
  // Past the deadline the response is dropped: its 40 MiB are free again.
  bool served = false;
  for (int i = 0; i < 100 && !served; ++i) {
    std::this_thread::sleep_for(100ms);
    served = Get(s.port(), "/keys/big").status == 200;
  }
  CHECK(served);
  CHECK(s.log().find("the response was not read within the deadline") != std::string::npos);
}

TEST_CASE("max_connections_per_client: one address cannot hold every connection") {
  NoEnvToken no_token;
  TestServer s({.max_connections = 10, .max_connections_per_client = 2});
  std::vector<std::unique_ptr<HttpConn>> open;
  for (int i = 0; i < 2; ++i) {
    open.push_back(std::make_unique<HttpConn>(s.port()));
    REQUIRE(open.back()->Send(MakeRequest("GET", "/health")));
    REQUIRE(open.back()->Read());
  }
  HttpConn third(s.port());
  third.Send(MakeRequest("GET", "/health"));
  std::optional<HttpReply> r = third.Read();
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK(r->body == "too many connections from your address; retry later\n");
  CHECK(third.WaitClosed(10s));
  open.pop_back();
  bool served = false;
  for (int i = 0; i < 100 && !served; ++i) {
    served = Get(s.port(), "/health").status == 200;
    if (!served) std::this_thread::sleep_for(50ms);
  }
  CHECK(served);
  CHECK(s.log().find("max_connections_per_client 2") != std::string::npos);
}

TEST_CASE("a flood of bad tokens writes at most 10 warn lines a second, then a count") {
  NoEnvToken no_token;
  TestServer s({.token = "right"});
  const auto start = Clock::now();
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&s] {
      HttpConn c(s.port());
      const std::string bad = MakeRequest("GET", "/health", {}, "Authorization: Bearer wrong\r\n");
      for (int i = 0; i < 500; ++i) {
        if (!c.Send(bad) || !c.Read()) return;
      }
    });
  }
  for (std::thread& t : clients) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::this_thread::sleep_for(1500ms);  // a window ends: the sweep writes the count
  s.Stop();
  const std::string log = s.log();
  std::size_t lines = 0;
  for (std::size_t at = log.find(" 401 "); at != std::string::npos;
       at = log.find(" 401 ", at + 1)) {
    ++lines;
  }
  CHECK(lines >= 1);
  CHECK_MESSAGE(lines <= 10 * (static_cast<std::size_t>(seconds) + 2),
                lines << " lines for 2,000 refusals in " << seconds << " s");
  CHECK(log.find("more refused (401, 403) lines suppressed") != std::string::npos);
}

TEST_CASE("LineLimiter allows N lines per window and counts the rest") {
  using lilcache::LineLimiter;
  LineLimiter limiter(3, 1s);
  const LineLimiter::Clock::time_point t0 = LineLimiter::Clock::now();
  std::uint64_t suppressed = 99;
  for (int i = 0; i < 3; ++i) {
    CHECK(limiter.Allow(t0, &suppressed));
    CHECK(suppressed == 0);
  }
  for (int i = 0; i < 5; ++i) CHECK(!limiter.Allow(t0 + 500ms, &suppressed));
  CHECK(limiter.TakeSuppressed(t0 + 900ms) == 0);                   // the window has not ended
  CHECK(limiter.Allow(t0 + 1s, &suppressed));                       // a new window
  CHECK(suppressed == 5);                                           // the line reports them
  CHECK(limiter.TakeSuppressed(t0 + 3s) == 0);                      // ... once
  for (int i = 0; i < 5; ++i) limiter.Allow(t0 + 3s, &suppressed);  // 3 allowed, 2 not
  CHECK(limiter.TakeSuppressed(t0 + 3500ms) == 0);
  CHECK(limiter.TakeSuppressed(t0 + 4s) == 2);  // the flood stopped: a summary
  CHECK(limiter.TakeSuppressed(t0 + 5s) == 0);
}

TEST_CASE("MemoryBudget and BudgetHold never pass the limit except by ForceTo") {
  lilcache::MemoryBudget budget(100);
  {
    lilcache::BudgetHold a(&budget), b(&budget);
    CHECK(a.GrowTo(60));
    CHECK(!b.GrowTo(50));
    CHECK(b.held() == 0);
    CHECK(b.GrowTo(40));
    CHECK(budget.used() == 100);
    a.ForceTo(10);
    CHECK(budget.used() == 50);
    b.ForceTo(150);  // what cannot be refused any more
    CHECK(budget.used() == 160);
    lilcache::BudgetHold c = std::move(b);
    CHECK(b.held() == 0);
    CHECK(c.held() == 150);
  }
  CHECK(budget.used() == 0);
  lilcache::BudgetHold none;  // no budget: no limit
  CHECK(none.GrowTo(SIZE_MAX));
}

TEST_CASE("the connection cap leaves descriptors for the cache: 1,024 allow 893 connections") {
  // 64 + 4 per thread kept; refusals a 16th of the rest, at most 64.
  auto caps = lilcache::CapsForDescriptors(1024, 2);
  CHECK(caps.refusals == 59);
  CHECK(caps.connections == 893);
  CHECK(caps.connections + caps.refusals + lilcache::ReservedDescriptors(2) == 1024);
  caps = lilcache::CapsForDescriptors(1 << 20, 8);
  CHECK(caps.refusals == 64);
  caps = lilcache::CapsForDescriptors(50, 2);  // less than the reserve: still one
  CHECK(caps.connections == 1);
  CHECK(caps.refusals == 0);
}

// ---- authentication --------------------------------------------------------------

TEST_CASE("with a token every request needs 'Authorization: Bearer <token>', else 401") {
  NoEnvToken no_token;
  TestServer s({.token = "s3cret-token"});
  for (const std::string target :
       {"/get?key=a", "/set?key=a&value=b", "/health", "/stats", "/keys", "/nope", "/purge"}) {
    HttpReply none = Get(s.port(), target);
    CHECK_MESSAGE(none.status == 401, target);
    CHECK(none.header("www-authenticate").rfind("Bearer", 0) == 0);
  }
  CHECK(Get(s.port(), "/health", "Authorization: Bearer wrong\r\n").status == 401);
  CHECK(Get(s.port(), "/health", "Authorization: Bearer s3cret-token-and-more\r\n").status == 401);
  CHECK(Get(s.port(), "/health", "Authorization: Bearer s3cret-toke\r\n").status == 401);
  CHECK(Get(s.port(), "/health", "Authorization: Basic czNjcmV0LXRva2Vu\r\n").status == 401);
  CHECK(Get(s.port(), "/health", "Authorization: s3cret-token\r\n").status == 401);
  CHECK(s.cache().size() == 0);

  const std::string auth = "Authorization: Bearer s3cret-token\r\n";
  CHECK(Get(s.port(), "/set?key=a&value=b", auth).status == 200);
  CHECK(Get(s.port(), "/get?key=a", auth).body == "b");
  CHECK(Get(s.port(), "/health", "authorization: bearer  s3cret-token\r\n").status == 200);
  // A refused request with a body is answered without reading the body.
  HttpConn c(s.port());
  REQUIRE(c.Send("PUT /keys/k HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n"));
  std::optional<HttpReply> r = c.Read();
  REQUIRE(r);
  CHECK(r->status == 401);
  CHECK(!s.cache().contains("k"));
}

TEST_CASE("without ServerOptions::token, $LILCACHE_TOKEN is the token") {
  ::setenv("LILCACHE_TOKEN", "from-env", 1);
  TestServer s;
  ::unsetenv("LILCACHE_TOKEN");
  CHECK(Get(s.port(), "/health").status == 401);
  CHECK(Get(s.port(), "/health", "Authorization: Bearer from-env\r\n").status == 200);
}

TEST_CASE("ConstantTimeEquals compares whole strings") {
  using lilcache::ConstantTimeEquals;
  CHECK(ConstantTimeEquals("abc", "abc"));
  CHECK(ConstantTimeEquals("", ""));
  CHECK(!ConstantTimeEquals("abc", "abd"));
  CHECK(!ConstantTimeEquals("ab", "abc"));
  CHECK(!ConstantTimeEquals("abcd", "abc"));
  CHECK(!ConstantTimeEquals("", "abc"));
  CHECK(!ConstantTimeEquals("abc", ""));
  CHECK(!ConstantTimeEquals(std::string("ab\0", 3), "ab"));
}

// ---- connections -----------------------------------------------------------------

TEST_CASE("keep-alive: many requests on one connection; HTTP/1.0 closes unless asked") {
  NoEnvToken no_token;
  TestServer s;
  HttpConn c(s.port());
  for (int i = 0; i < 100; ++i) {
    const std::string k = std::to_string(i);
    REQUIRE(c.Send(MakeRequest("GET", "/set?key=" + k + "&value=v" + k)));
    std::optional<HttpReply> set = c.Read();
    REQUIRE(set);
    CHECK(set->keep_alive);
    REQUIRE(c.Send(MakeRequest("GET", "/get?key=" + k)));
    std::optional<HttpReply> get = c.Read();
    REQUIRE(get);
    CHECK(get->body == "v" + k);
  }
  HttpConn old(s.port());
  REQUIRE(old.Send("GET /health HTTP/1.0\r\n\r\n"));
  std::optional<HttpReply> r = old.Read();
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->header("connection") == "close");
  CHECK(old.WaitClosed(10s));

  HttpConn old_alive(s.port());
  REQUIRE(old_alive.Send("GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  r = old_alive.Read();
  REQUIRE(r);
  CHECK(r->header("connection") == "keep-alive");
  REQUIRE(old_alive.Send("GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  CHECK(old_alive.Read());

  HttpConn close(s.port());
  REQUIRE(close.Send(MakeRequest("GET", "/health", {}, "Connection: close\r\n")));
  r = close.Read();
  REQUIRE(r);
  CHECK(r->header("connection") == "close");
  CHECK(close.WaitClosed(10s));
}

TEST_CASE("pipelined requests are answered in order") {
  NoEnvToken no_token;
  TestServer s;
  HttpConn c(s.port());
  std::string batch;
  for (int i = 0; i < 20; ++i) {
    batch += MakeRequest("GET", "/set?key=p" + std::to_string(i) + "&value=" + std::to_string(i));
    batch += MakeRequest("GET", "/get?key=p" + std::to_string(i));
  }
  batch += MakeRequest("PUT", "/keys/body", "payload");
  batch += MakeRequest("GET", "/keys/body");
  REQUIRE(c.Send(batch));
  for (int i = 0; i < 20; ++i) {
    std::optional<HttpReply> set = c.Read();
    REQUIRE(set);
    CHECK(set->body == "OK\n");
    std::optional<HttpReply> get = c.Read();
    REQUIRE(get);
    CHECK(get->body == std::to_string(i));
  }
  REQUIRE(c.Read());
  std::optional<HttpReply> body = c.Read();
  REQUIRE(body);
  CHECK(body->body == "payload");
}

TEST_CASE("thousands of pipelined requests are answered whole and in order") {
  // The server writes the answers of requests read together in one write
  // (up to a bound), each write straight to the socket, and what the socket
  // does not take later: small, inline and large answers mixed, more than
  // any socket buffer holds, while the client is still sending.
  NoEnvToken no_token;
  TestServer s;
  const std::string big(300 * 1024, 'b');  // written from its own buffer, not copied
  const std::string mid(10 * 1024, 'm');   // copied after the header
  s.cache().set("big", big);
  s.cache().set("mid", mid);
  s.cache().set("small", "s");
  std::string burst;
  std::vector<const std::string*> expected;
  const std::string small = "s";
  for (int i = 0; i < 3000; ++i) {
    const bool is_big = i % 100 == 99, is_mid = i % 10 == 5;
    burst += MakeRequest("GET", is_big   ? "/get?key=big"
                                : is_mid ? "/get?key=mid"
                                         : "/get?key=small");
    expected.push_back(is_big ? &big : is_mid ? &mid : &small);
  }
  HttpConn c(s.port());
  bool sent = false;
  std::thread sender([&] { sent = c.Send(burst); });
  std::size_t whole = 0;  // answers read whole and in order
  for (; whole < expected.size(); ++whole) {
    std::optional<HttpReply> r = c.Read();
    if (!r || r->status != 200 || r->body != *expected[whole]) break;
  }
  CHECK(whole == expected.size());
  sender.join();  // if the answers went wrong, Send() ends at the connection's timeout
  CHECK(sent);
  // The connection goes on.
  REQUIRE(c.Send(MakeRequest("GET", "/get?key=small")));
  std::optional<HttpReply> last = c.Read();
  REQUIRE(last);
  CHECK(last->body == "s");
}

TEST_CASE("Expect: 100-continue is answered before the body is sent") {
  NoEnvToken no_token;
  TestServer s({.token = "t"});
  HttpConn c(s.port());
  REQUIRE(
      c.Send("PUT /keys/k HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer t\r\nExpect: "
             "100-continue\r\n"
             "Content-Length: 5\r\n\r\n"));
  std::optional<HttpReply> interim = c.Read();
  REQUIRE(interim);
  CHECK(interim->status == 100);
  REQUIRE(c.Send("hello"));
  std::optional<HttpReply> done = c.Read();
  REQUIRE(done);
  CHECK(done->status == 201);
  CHECK(s.cache().get("k") == "hello");

  // Without the token: 401 at once, no 100.
  HttpConn refused(s.port());
  REQUIRE(
      refused.Send("PUT /keys/k HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: "
                   "100-continue\r\nContent-Length: 5\r\n\r\n"));
  std::optional<HttpReply> r = refused.Read();
  REQUIRE(r);
  CHECK(r->status == 401);
}

TEST_CASE("many clients on many threads at once see their own writes") {
  NoEnvToken no_token;
  TestServer s({.threads = 2});
  std::atomic<int> failures{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&, t] {
      try {
        HttpConn c(s.port());
        for (int i = 0; i < 100; ++i) {
          const std::string k = "t" + std::to_string(t) + "-" + std::to_string(i % 10);
          const std::string v = std::to_string(t * 1000 + i);
          if (!c.Send(MakeRequest("PUT", "/keys/" + k, v))) ++failures;
          auto put = c.Read();
          if (!put || put->status != (i < 10 ? 201 : 204)) ++failures;
          if (!c.Send(MakeRequest("GET", "/keys/" + k))) ++failures;
          auto get = c.Read();
          if (!get || get->body != v) ++failures;
        }
      } catch (const std::exception&) {
        ++failures;
      }
    });
  }
  for (auto& t : clients) t.join();
  CHECK(failures == 0);
  CHECK(s.cache().size() == 80);
}

TEST_CASE("a slowloris client is dropped at the deadline without delaying other clients") {
  NoEnvToken no_token;
  const auto deadline = 2s;
  TestServer s({.threads = 2, .request_timeout = deadline});
  s.cache().set("a", "b");
  // More slow clients than threads: a thread-per-connection server would starve.
  constexpr int kSlow = 8;
  std::atomic<int> dropped{0};
  std::atomic<long> longest_ms{0};
  std::vector<std::thread> slow;
  for (int i = 0; i < kSlow; ++i) {
    slow.emplace_back([&] {
      HttpConn c(s.port());
      const std::string req = MakeRequest("GET", "/get?key=a", {}, "X-Padding: 0123456789\r\n");
      const auto start = Clock::now();
      for (char byte : req) {  // one byte a second
        if (!c.Send(std::string_view(&byte, 1))) break;
        if (c.WaitClosed(1s)) {
          ++dropped;
          const long ms = static_cast<long>(
              std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
          long prev = longest_ms.load();
          while (ms > prev && !longest_ms.compare_exchange_weak(prev, ms)) {
          }
          return;
        }
      }
    });
  }
  std::this_thread::sleep_for(300ms);  // the slow clients are connected and trickling
  // Meanwhile other clients are served, each well within the deadline.
  long worst_ms = 0;
  for (int i = 0; i < 40; ++i) {
    const auto start = Clock::now();
    HttpReply r = Get(s.port(), "/get?key=a");
    const long ms = static_cast<long>(
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
    worst_ms = std::max(worst_ms, ms);
    CHECK(r.status == 200);
    std::this_thread::sleep_for(50ms);
  }
  for (auto& t : slow) t.join();
  CHECK(dropped == kSlow);
  MESSAGE("slowest other request: " << worst_ms << " ms; slow clients dropped after at most "
                                    << longest_ms.load() << " ms (deadline 2000 ms)");
  CHECK(worst_ms < 2000);                  // never held up until the slow clients' deadline
  CHECK(longest_ms.load() < 2000 + 8000);  // dropped at the deadline (+ generous slack)
  CHECK(s.log().find("request deadline (2000 ms) passed") != std::string::npos);
}

TEST_CASE("idle keep-alive connections, and connections that never send, are closed") {
  NoEnvToken no_token;
  TestServer s({.idle_timeout = 300ms});
  HttpConn used(s.port());
  REQUIRE(used.Send(MakeRequest("GET", "/health")));
  REQUIRE(used.Read());
  HttpConn silent(s.port());
  CHECK(used.WaitClosed(10s));
  CHECK(silent.WaitClosed(10s));
}

TEST_CASE("over max_connections a connection gets 503; a freed slot is reused") {
  NoEnvToken no_token;
  TestServer s({.max_connections = 3, .max_connections_per_client = 3});
  std::vector<std::unique_ptr<HttpConn>> open;
  for (int i = 0; i < 3; ++i) {
    open.push_back(std::make_unique<HttpConn>(s.port()));
    REQUIRE(open.back()->Send(MakeRequest("GET", "/health")));
    REQUIRE(open.back()->Read());
  }
  HttpConn extra(s.port());
  extra.Send(MakeRequest("GET", "/health"));
  std::optional<HttpReply> r = extra.Read();
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK(extra.WaitClosed(10s));
  // The open ones still work.
  REQUIRE(open[0]->Send(MakeRequest("GET", "/health")));
  REQUIRE(open[0]->Read());
  // Free one slot: a new connection is served (once the server has seen the close).
  open.pop_back();
  bool served = false;
  for (int i = 0; i < 100 && !served; ++i) {
    served = Get(s.port(), "/health").status == 200;
    if (!served) std::this_thread::sleep_for(50ms);
  }
  CHECK(served);
  CHECK(s.log().find("refusing connection") != std::string::npos);
}

TEST_CASE("1,000 random malformed requests leave the server answering") {
  NoEnvToken no_token;
  TestServer s({.request_timeout = 2s});
  s.cache().set("a", "b");
  std::mt19937_64 rng(20261124);
  auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  const std::vector<std::string> seeds = {
      MakeRequest("GET", "/get?key=a"),
      MakeRequest("GET", "/set?key=f&value=hello%20world&ttl=10s"),
      MakeRequest("PUT", "/keys/f", "body bytes"),
      MakeRequest("DELETE", "/keys/f"),
      MakeRequest("POST", "/purge"),
      "PUT /keys/c HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n0\r\n\r\n",
      MakeRequest("GET", "/keys?prefix=a&limit=3", {}, "Expect: 100-continue\r\n"),
      MakeRequest("OPTIONS", "/keys/f", {},
                  "Origin: http://app.example\r\nAccess-Control-Request-Method: PUT\r\n"),
      MakeRequest("GET", "/get?key=a", {}, "Origin: http://app.example\r\n"),
  };
  const std::string alphabet =
      "\r\n :/?&=%+#\0\x7f\xff"
      "0123456789abcdefGET";
  int answered = 0, failures = 0;
  for (int i = 0; i < 1000; ++i) {
    std::string req = seeds[pick(seeds.size())];
    switch (pick(4)) {
      case 0:  // random bytes
        req.assign(pick(300), '\0');
        for (char& c : req) c = static_cast<char>(rng());
        break;
      case 1:  // a few random byte flips
        for (std::size_t n = 1 + pick(4); n > 0; --n)
          req[pick(req.size())] = static_cast<char>(rng());
        break;
      case 2:  // insertions of protocol-ish characters, a truncation
        for (std::size_t n = 1 + pick(6); n > 0; --n) {
          req.insert(pick(req.size() + 1), 1, alphabet[pick(alphabet.size())]);
        }
        req.resize(pick(req.size() + 1));
        break;
      default:  // hostile framing
        req = std::vector<std::string>{
            "GET /get?key=a HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            "GET /get?key=a HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "PUT /keys/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
            "PUT /keys/x HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /get?key=" + std::string(pick(20000), '%') + " HTTP/1.1\r\n\r\n",
            "GET /" + std::string(1, '\0') + " HTTP/1.1\r\n\r\n",
            std::string(pick(10000), '\n'),
            "GET /get?key=a HTTP/1.1\r\n" + std::string(pick(3000), ' ') + "\r\n\r\n",
            "PUT /keys/x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip\r\n\r\n" +
                MakeRequest("POST", "/purge"),
            "PUT /keys/x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip\r\n"
            "Content-Length: 5\r\n\r\nhello",
            MakeRequest("GET", "/get?key=a", {}, "Host: rebind.example\r\n"),
        }[pick(11)];
    }
    try {
      HttpConn c(s.port(), 10s);
      c.Send(req);
      c.ShutdownWrite();
      const std::string out = c.ReadAll();
      if (!out.empty()) {
        ++answered;
        if (!StartsWithStatusLine(out)) {
          ++failures;
          MESSAGE("bad answer to request " << i << ": " << out.substr(0, 80));
        }
      }
    } catch (const std::exception& e) {
      ++failures;
      MESSAGE("request " << i << ": " << e.what());
    }
    if (i % 100 == 99) {  // (the seeds include purges)
      REQUIRE(Get(s.port(), "/set?key=probe&value=" + std::to_string(i)).status == 200);
      REQUIRE(Get(s.port(), "/get?key=probe").body == std::to_string(i));
    }
  }
  MESSAGE(answered << " of 1000 malformed requests were answered");
  CHECK(failures == 0);
  CHECK(answered > 500);
  CHECK(Get(s.port(), "/health").status == 200);
}

TEST_CASE("stop() is graceful: idle connections close, a request in progress completes") {
  NoEnvToken no_token;
  TestServer s({.threads = 1});
  HttpConn idle(s.port());
  REQUIRE(idle.Send(MakeRequest("GET", "/health")));
  REQUIRE(idle.Read());
  HttpConn busy(s.port());
  REQUIRE(busy.Send(
      "PUT /keys/inflight HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\nhalf-"));
  std::this_thread::sleep_for(200ms);  // the server has read the first half

  s.server().stop();
  CHECK(idle.WaitClosed(10s));       // one thread: the stop has reached busy's too
  CHECK_THROWS(HttpConn(s.port()));  // no longer accepting
  REQUIRE(busy.Send("done!"));
  std::optional<HttpReply> r = busy.Read();
  REQUIRE(r);
  CHECK(r->status == 201);
  CHECK(r->header("connection") == "close");
  s.Stop();  // run() returns
  CHECK(s.cache().get("inflight") == "half-done!");
}

TEST_CASE("stop() before run() makes run() return at once; run() twice throws") {
  NoEnvToken no_token;
  TempDir dir;
  Cache cache = Cache::open("default", {.root = dir.path()});
  Server server(cache, "127.0.0.1", 0, {.threads = 2});
  CHECK(server.port() != 0);
  server.stop();
  server.run();
  CHECK_THROWS_AS(server.run(), lilcache::Error);
}

TEST_CASE("port 0 picks a free port; a port in use throws Error naming the address") {
  NoEnvToken no_token;
  TestServer s;
  CHECK(s.port() != 0);
  CHECK(s.server().address() == "127.0.0.1");
  CHECK(s.server().url() == "http://127.0.0.1:" + std::to_string(s.port()));
  try {
    Server second(s.cache(), "127.0.0.1", s.port());
    FAIL("bound a port in use");
  } catch (const lilcache::Error& e) {
    const std::string what = e.what();
    CHECK(what.find("127.0.0.1:" + std::to_string(s.port())) != std::string::npos);
    CHECK(what.find("in use") != std::string::npos);
  }
  CHECK_THROWS_AS(Server(s.cache(), "no-such-host.invalid", 0), lilcache::Error);
  CHECK_THROWS_AS(Server(s.cache(), "127.0.0.1", 0, {.memory_budget = 1 << 20}), lilcache::Error);
  CHECK_THROWS_AS(Server(s.cache(), "127.0.0.1", 0, {.loglevel = "loud"}), lilcache::Error);
  Server v6(s.cache(), "::1", 0);
  CHECK(v6.url() == "http://[::1]:" + std::to_string(v6.port()));
}

TEST_CASE("a non-loopback address without a token logs a loud warning") {
  NoEnvToken no_token;
  TempDir dir;
  Cache cache = Cache::open("default", {.root = dir.path()});
  const std::string log = dir.file("default.log");
  { Server local(cache, "127.0.0.1", 0); }
  CHECK(lilcache::test::read_file(log).find("WITHOUT A TOKEN") == std::string::npos);
  { Server open(cache, "0.0.0.0", 0, {.token = "t"}); }
  CHECK(lilcache::test::read_file(log).find("WITHOUT A TOKEN") == std::string::npos);
  { Server open(cache, "0.0.0.0", 0); }
  const std::string text = lilcache::test::read_file(log);
  const std::size_t warning = text.find("WITHOUT A TOKEN");
  REQUIRE(warning != std::string::npos);
  CHECK(text.rfind(" warning lilcache.default.http: ", warning) != std::string::npos);
}

TEST_CASE("each request is logged at debug without its query; errors at warn") {
  NoEnvToken no_token;
  TestServer s({.loglevel = "debug"});
  Get(s.port(), "/set?key=the-key&value=supersecret");
  Fetch(s.port(), "PUT", "/keys/k2", "secretbody");
  HttpConn bad(s.port());
  bad.Send("NOT HTTP\r\n\r\n");
  bad.Read();
  s.Stop();
  const std::string log = s.log();
  CHECK(log.find("debug lilcache.default.http: http 127.0.0.1:") != std::string::npos);
  CHECK(log.find("GET /set 200 ") != std::string::npos);
  CHECK(log.find("PUT /keys/k2 201 ") != std::string::npos);
  CHECK(log.find("us") != std::string::npos);
  CHECK(log.find("supersecret") == std::string::npos);
  CHECK(log.find("the-key") == std::string::npos);
  CHECK(log.find("secretbody") == std::string::npos);
  CHECK(log.find("warning lilcache.default.http: http 127.0.0.1:") != std::string::npos);
  CHECK(log.find(" 400 ") != std::string::npos);
}

// ---- browsers and other web pages (docs/rest.md, "Browsers") -----------------------

namespace {

// One raw request (bytes as given, so that Host can be left out or repeated)
// on a new connection; its answer.
HttpReply Raw(std::uint16_t port, const std::string& bytes) {
  HttpConn c(port);
  REQUIRE(c.Send(bytes));
  std::optional<HttpReply> r = c.Read();
  REQUIRE(r.has_value());
  return *r;
}

// "GET target HTTP/1.1" with exactly the header lines given.
std::string RawGet(const std::string& target, const std::string& fields) {
  return "GET " + target + " HTTP/1.1\r\n" + fields + "\r\n";
}

}  // namespace

TEST_CASE("a cross-site form POST to /purge is 403 and purges nothing") {
  NoEnvToken no_token;
  TestServer s;
  s.cache().set("keep", "me");
  // The curl -X POST -H 'Origin: https://evil.example' -H 'Sec-Fetch-Site: cross-site'
  // -H 'Content-Type: application/x-www-form-urlencoded' --data x=1 .../purge
  HttpReply r = Fetch(s.port(), "POST", "/purge", "x=1",
                      "Origin: https://evil.example\r\nSec-Fetch-Site: cross-site\r\n"
                      "Content-Type: application/x-www-form-urlencoded\r\n");
  CHECK(r.status == 403);
  CHECK(r.header("access-control-allow-origin").empty());
  CHECK(s.cache().get("keep") == "me");
  // The same with an Origin alone, or Sec-Fetch-Site alone (no Origin).
  CHECK(Fetch(s.port(), "POST", "/purge", "x=1", "Origin: https://evil.example\r\n").status == 403);
  CHECK(Fetch(s.port(), "DELETE", "/keys", {}, "Origin: null\r\n").status == 403);
  CHECK(Fetch(s.port(), "POST", "/purge", "x=1", "Sec-Fetch-Site: cross-site\r\n").status == 403);
  CHECK(s.cache().get("keep") == "me");
}

TEST_CASE("<img src=.../set|pop|delete> from another site is 403 and changes nothing") {
  NoEnvToken no_token;
  TestServer s;
  s.cache().set("a", "1");
  // What a browser sends for an image of another site: no Origin, Sec-Fetch-Site.
  const std::string img = "Sec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: no-cors\r\n";
  CHECK(Get(s.port(), "/set?key=a&value=evil", img).status == 403);
  CHECK(Get(s.port(), "/set?key=b&value=evil", img).status == 403);
  CHECK(Get(s.port(), "/pop?key=a", img).status == 403);
  CHECK(Get(s.port(), "/delete?key=a", img).status == 403);
  CHECK(Get(s.port(), "/get?key=a", img).status == 403);
  CHECK(Fetch(s.port(), "PUT", "/keys/a", "evil", img).status == 403);
  CHECK(s.cache().get("a") == "1");
  CHECK_FALSE(s.cache().contains("b"));
  // The user's own requests: typed in the address bar (none), or from a page
  // of the same site (a local tool on another port) or origin, are served.
  for (const char* site : {"none", "same-origin", "same-site", "Same-Site"}) {
    const std::string fields = std::string("Sec-Fetch-Site: ") + site + "\r\n";
    CHECK(Get(s.port(), "/get?key=a", fields).status == 200);
  }
  CHECK(Get(s.port(), "/set?key=a&value=2", "Sec-Fetch-Site: none\r\n").status == 200);
  CHECK(s.cache().get("a") == "2");
}

TEST_CASE("a DNS-rebinding Host is 403 and reads nothing; HTTP/1.1 without Host is 400") {
  NoEnvToken no_token;
  TestServer s;
  s.cache().set("password", "hunter2");
  const std::string port = std::to_string(s.port());
  // The curl -H 'Host: rebind.evil.example:5001'
  // -H 'Origin: http://rebind.evil.example:5001' '127.0.0.1:5001/get?key=password'
  HttpReply rebound = Raw(
      s.port(),
      RawGet("/get?key=password", "Host: rebind.evil.example:" + port +
                                      "\r\nOrigin: http://rebind.evil.example:" + port + "\r\n"));
  CHECK(rebound.status == 403);
  CHECK(rebound.body.find("hunter2") == std::string::npos);
  HttpReply no_origin =
      Raw(s.port(), RawGet("/get?key=password", "Host: rebind.evil.example:" + port + "\r\n"));
  CHECK(no_origin.status == 403);
  CHECK(no_origin.body.find("hunter2") == std::string::npos);
  CHECK(Raw(s.port(), RawGet("/set?key=password&value=x", "Host: evil.example\r\n")).status == 403);
  CHECK(Raw(s.port(), RawGet("/get?key=password", "Host: localhost.evil.example\r\n")).status ==
        403);
  // No Host, two Hosts, a malformed one: 400 (RFC 9112 3.2).
  CHECK(Raw(s.port(), RawGet("/get?key=password", "")).status == 400);
  CHECK(Raw(s.port(), RawGet("/get?key=password", "Host:\r\n")).status == 400);
  CHECK(Raw(s.port(), RawGet("/get?key=password", "Host: 127.0.0.1\r\nHost: evil.example\r\n"))
            .status == 400);
  CHECK(Raw(s.port(), RawGet("/get?key=password", "Host: user@127.0.0.1\r\n")).status == 400);
  CHECK(Raw(s.port(), RawGet("/get?key=password", "Host: 127.0.0.1:99999\r\n")).status == 400);
  CHECK(s.cache().get("password") == "hunter2");
  // HTTP/1.0 has no Host (and no browser sends it).
  CHECK(Raw(s.port(), "GET /get?key=password HTTP/1.0\r\n\r\n").body == "hunter2");
}

TEST_CASE(
    "loopback names and the bound address are allowed Hosts on any port; allowed_hosts adds") {
  NoEnvToken no_token;
  {
    TestServer s;
    for (const char* host :
         {"localhost", "localhost:5001", "LocalHost:1", "localhost.", "127.0.0.1", "127.0.0.1:5001",
          "[::1]", "[::1]:5001", "[0:0:0:0:0:0:0:1]:80"}) {
      CAPTURE(host);
      CHECK(Raw(s.port(), RawGet("/health", std::string("Host: ") + host + "\r\n")).status == 200);
    }
    // An address this server is not bound to, and other names, are not.
    for (const char* host : {"10.1.2.3", "[fe80::1]", "cache.lan", "0x7f.1"}) {
      CAPTURE(host);
      CHECK(Raw(s.port(), RawGet("/health", std::string("Host: ") + host + "\r\n")).status == 403);
    }
  }
  {
    TestServer s({.allowed_hosts = {"cache.lan", "box:8080", "10.1.2.3"}});
    CHECK(Raw(s.port(), RawGet("/health", "Host: cache.lan:5001\r\n")).status == 200);
    CHECK(Raw(s.port(), RawGet("/health", "Host: CACHE.LAN\r\n")).status == 200);
    CHECK(Raw(s.port(), RawGet("/health", "Host: box:8080\r\n")).status == 200);
    CHECK(Raw(s.port(), RawGet("/health", "Host: box:8081\r\n")).status == 403);
    CHECK(Raw(s.port(), RawGet("/health", "Host: box\r\n")).status == 403);
    CHECK(Raw(s.port(), RawGet("/health", "Host: 10.1.2.3\r\n")).status == 200);
    CHECK(Raw(s.port(), RawGet("/health", "Host: localhost\r\n")).status == 200);
    CHECK(Raw(s.port(), RawGet("/health", "Host: evil.example\r\n")).status == 403);
  }
  {
    TestServer s({.allowed_hosts = {"*"}});
    CHECK(Raw(s.port(), RawGet("/health", "Host: anything.example\r\n")).status == 200);
    CHECK(Raw(s.port(), RawGet("/health", "")).status == 400);  // still required
  }
}

TEST_CASE("a Host that only begins with an allowed host is judged whole: 400 or 403") {
  // The check takes a Host equal to an allowed host, with or without a
  // decimal port, without parsing it: a longer value must not pass as one.
  NoEnvToken no_token;
  TestServer s({.allowed_hosts = {"box:8080"}});
  for (const std::string host :
       {"127.0.0.1:5001x", "127.0.0.1:+5001", "127.0.0.1:-1", "127.0.0.1:65536", "127.0.0.1:5001:1",
        "localhost:80 x", "[::1]:5001]", "box:8080x", "box:80800", "127.0.0.1.evil.example"}) {
    CAPTURE(host);
    CHECK(Raw(s.port(), RawGet("/health", "Host: " + host + "\r\n")).status == 400);
  }
  for (const std::string host : {"127.0.0.10", "localhostx:80", "box:808"}) {
    CAPTURE(host);
    CHECK(Raw(s.port(), RawGet("/health", "Host: " + host + "\r\n")).status == 403);
  }
  for (const std::string host : {"127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65535", "localhost:000001",
                                 "box:8080", "box:08080"}) {
    CAPTURE(host);
    CHECK(Raw(s.port(), RawGet("/health", "Host: " + host + "\r\n")).status == 200);
  }
}

TEST_CASE("bound to 0.0.0.0, every IP-address Host is allowed, names only if allowed") {
  TempDir dir;
  Cache cache = Cache::open("default", {.root = dir.path(), .loglevel = "off"});
  Server server(cache, "0.0.0.0", 0, {.token = "t", .threads = 1, .loglevel = "off"});
  std::thread t([&] { server.run(); });
  const std::string auth = "Authorization: Bearer t\r\n";
  for (const char* host :
       {"10.1.2.3:5001", "192.168.7.7", "[fe80::1]:5001", "127.0.0.1", "localhost"}) {
    CAPTURE(host);
    CHECK(Raw(server.port(), RawGet("/health", std::string("Host: ") + host + "\r\n" + auth))
              .status == 200);
  }
  CHECK(Raw(server.port(), RawGet("/health", "Host: myhost.lan\r\n" + auth)).status == 403);
  CHECK(Raw(server.port(), RawGet("/health", "Host: rebind.evil.example\r\n" + auth)).status ==
        403);
  server.stop();
  t.join();
}

TEST_CASE("an allowed origin gets CORS answers and preflights; the token still applies") {
  NoEnvToken no_token;
  TestServer s({.token = "t", .allowed_origins = {"https://app.example", "http://localhost:3000"}});
  const std::string app = "Origin: https://app.example\r\n";
  // The preflight of a PUT with Authorization: no token needed, CORS fields.
  HttpReply pre = Fetch(s.port(), "OPTIONS", "/keys/a", {},
                        app +
                            "Access-Control-Request-Method: PUT\r\n"
                            "Access-Control-Request-Headers: authorization, content-type\r\n");
  CHECK(pre.status == 200);
  CHECK(pre.header("access-control-allow-origin") == "https://app.example");
  CHECK(pre.header("access-control-allow-methods").find("PUT") != std::string::npos);
  CHECK(pre.header("access-control-allow-headers").find("Authorization") != std::string::npos);
  CHECK(pre.header("access-control-max-age") == "600");
  CHECK(pre.header("vary") == "Origin");
  CHECK(pre.header("access-control-allow-private-network").empty());
  HttpReply pna = Fetch(s.port(), "OPTIONS", "/keys/a", {},
                        app +
                            "Access-Control-Request-Method: GET\r\n"
                            "Access-Control-Request-Private-Network: true\r\n");
  CHECK(pna.header("access-control-allow-private-network") == "true");

  // The request itself: the browser sends Sec-Fetch-Site: cross-site.
  const std::string sent = app + "Sec-Fetch-Site: cross-site\r\n";
  HttpReply put = Fetch(s.port(), "PUT", "/keys/a", "v", sent + "Authorization: Bearer t\r\n");
  CHECK(put.status == 201);
  CHECK(put.header("access-control-allow-origin") == "https://app.example");
  CHECK(put.header("vary") == "Origin");
  CHECK(s.cache().get("a") == "v");
  HttpReply unauthorized = Fetch(s.port(), "PUT", "/keys/a", "w", sent);
  CHECK(unauthorized.status == 401);
  CHECK(unauthorized.header("access-control-allow-origin") == "https://app.example");
  CHECK(s.cache().get("a") == "v");
  // The page may read the kind of a cache's Error.
  HttpReply empty_key = Get(s.port(), "/get?key=", app + "Authorization: Bearer t\r\n");
  CHECK(empty_key.status == 400);
  CHECK(empty_key.header("lilcache-error") == "invalid_argument");
  CHECK(empty_key.header("access-control-expose-headers") == "Lilcache-Error");
  // Equal origins are equal (case of scheme and host, default port).
  CHECK(
      Get(s.port(), "/get?key=a", "Origin: HTTPS://App.Example:443\r\nAuthorization: Bearer t\r\n")
          .status == 200);
  CHECK(Get(s.port(), "/get?key=a", "Origin: http://localhost:3000\r\nAuthorization: Bearer t\r\n")
            .status == 200);

  // Other origins: their preflights and requests are 403, without CORS fields.
  for (const char* other : {"http://app.example", "https://app.example:8443",
                            "https://evil.example", "http://localhost:3001", "null"}) {
    CAPTURE(other);
    const std::string origin = std::string("Origin: ") + other + "\r\n";
    HttpReply refused = Fetch(s.port(), "OPTIONS", "/keys/a", {},
                              origin + "Access-Control-Request-Method: PUT\r\n");
    CHECK(refused.status == 403);
    CHECK(refused.header("access-control-allow-origin").empty());
    CHECK(Fetch(s.port(), "PUT", "/keys/a", "x", origin + "Authorization: Bearer t\r\n").status ==
          403);
  }
  CHECK(Fetch(s.port(), "PUT", "/keys/a", "x",
              "Origin: https://app.example\r\nOrigin: https://evil.example\r\n"
              "Authorization: Bearer t\r\n")
            .status == 403);
  CHECK(s.cache().get("a") == "v");
  // OPTIONS that is no preflight (no Origin) is an ordinary method: 405.
  CHECK(Fetch(s.port(), "OPTIONS", "/keys/a", {}, "Authorization: Bearer t\r\n").status == 405);
}

TEST_CASE("every answer has Cache-Control: no-store and X-Content-Type-Options: nosniff") {
  NoEnvToken no_token;
  TestServer s({.max_header_bytes = 1024});
  s.cache().set("a", "<script>alert(1)</script>");
  std::vector<HttpReply> replies = {
      Get(s.port(), "/get?key=a"),                                    // 200, a value
      Get(s.port(), "/stats"),                                        // 200, JSON
      Get(s.port(), "/get?key=nope"),                                 // 404
      Get(s.port(), "/get"),                                          // 400
      Fetch(s.port(), "GET", "/purge"),                               // 405
      Get(s.port(), "/get?key=a", "Sec-Fetch-Site: cross-site\r\n"),  // 403
      Raw(s.port(), "NOT HTTP\r\n\r\n"),                              // 400 malformed
      Get(s.port(), "/get?key=" + std::string(2000, 'k')),            // 414
  };
  for (const HttpReply& r : replies) {
    CAPTURE(r.status);
    CHECK(r.header("cache-control") == "no-store");
    CHECK(r.header("x-content-type-options") == "nosniff");
  }
}

TEST_CASE("malformed allowed_hosts or allowed_origins, and origins null or *, throw Error") {
  NoEnvToken no_token;
  TempDir dir;
  Cache cache = Cache::open("default", {.root = dir.path(), .loglevel = "off"});
  for (const char* host : {"", "a b", "user@host", "host:99999", "host:port", "http://x"}) {
    CAPTURE(host);
    CHECK_THROWS_AS(Server(cache, "127.0.0.1", 0, {.allowed_hosts = {host}}), lilcache::Error);
  }
  for (const char* origin : {"null", "*", "", "app.example", "https://app.example/path",
                             "https://app.example?q", "https://user@app.example", "https://"}) {
    CAPTURE(origin);
    CHECK_THROWS_AS(Server(cache, "127.0.0.1", 0, {.allowed_origins = {origin}}), lilcache::Error);
  }
  CHECK_NOTHROW(Server(cache, "127.0.0.1", 0,
                       {.allowed_hosts = {"::1", "[::1]:5001", "h.example:80", "*"},
                        .allowed_origins = {"https://app.example/", "http://[::1]:3000"}}));
}

TEST_CASE("an empty token, in ServerOptions or $LILCACHE_TOKEN, is an Error, never no auth") {
  TempDir dir;
  Cache cache = Cache::open("default", {.root = dir.path(), .loglevel = "off"});
  ::unsetenv("LILCACHE_TOKEN");
  CHECK_THROWS_WITH_AS(Server(cache, "127.0.0.1", 0, {.token = ""}), doctest::Contains("empty"),
                       lilcache::Error);
  CHECK_ERROR_CODE(Server(cache, "127.0.0.1", 0, {.token = ""}),
                   lilcache::ErrorCode::invalid_argument);
  ::setenv("LILCACHE_TOKEN", "", 1);
  CHECK_THROWS_WITH_AS(Server(cache, "127.0.0.1", 0), doctest::Contains("LILCACHE_TOKEN"),
                       lilcache::Error);
  // An explicit token wins over the empty variable.
  CHECK_NOTHROW(Server(cache, "127.0.0.1", 0, {.token = "t"}));
  ::unsetenv("LILCACHE_TOKEN");
  CHECK_NOTHROW(Server(cache, "127.0.0.1", 0));  // unset: no authentication
}

TEST_CASE("Transfer-Encoding not ending in chunked is 400 and closes: its body never runs") {
  TempDir dir;
  Cache cache = Cache::open("default", {.root = dir.path()});
  lilcache::HttpHandler handler(cache, "", 100);
  cache.set("keep", "me");
  // Behind a proxy that frames by the other rule, the "body" is a second
  // request: here a purge. It must never run.
  const std::string smuggled = MakeRequest("POST", "/purge");
  const std::string head = "PUT /keys/x HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  struct Case {
    std::string fields;
    unsigned status;
  };
  for (const Case& c : std::vector<Case>{
           {"Transfer-Encoding: gzip\r\n", 400},
           {"Transfer-Encoding: chunked, gzip\r\n", 400},
           {"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n", 400},
           {"Transfer-Encoding: chunked, chunked\r\n", 400},
           {"Transfer-Encoding: ,\r\n", 400},
           {"Transfer-Encoding: gzip\r\nContent-Length: " + std::to_string(smuggled.size()) +
                "\r\n",
            400},
           {"Transfer-Encoding: gzip, chunked\r\n", 501},
           {"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", 501},
       }) {
    CAPTURE(c.fields);
    const std::string out = lilcache::HandleRawHttp(handler, head + c.fields + "\r\n" + smuggled);
    CHECK(out.rfind("HTTP/1.1 " + std::to_string(c.status) + " ", 0) == 0);
    CHECK(CountStatusLines(out) == 1);
    CHECK(out.find("Connection: close\r\n") != std::string::npos);
    CHECK(cache.get("keep") == "me");
    CHECK_FALSE(cache.contains("x"));
  }
  // HTTP/1.0 with Transfer-Encoding: faulty framing (RFC 9112 6.1).
  const std::string old = lilcache::HandleRawHttp(
      handler, "PUT /keys/x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled);
  CHECK(old.rfind("HTTP/1.1 400 ", 0) == 0);
  CHECK(CountStatusLines(old) == 1);
  // Plain chunked still works (any case), and the connection goes on.
  const std::string ok = lilcache::HandleRawHttp(
      handler, head + "Transfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" +
                   MakeRequest("GET", "/keys/x"));
  CHECK(CountStatusLines(ok) == 2);
  CHECK(cache.get("x") == "abc");
  CHECK(cache.get("keep") == "me");
}

TEST_CASE("a smuggled request behind Transfer-Encoding: gzip gets no answer over a socket") {
  NoEnvToken no_token;
  TestServer s;
  s.cache().set("keep", "me");
  HttpConn c(s.port());
  REQUIRE(c.Send("POST /purge HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip\r\n\r\n" +
                 MakeRequest("POST", "/purge")));
  std::optional<HttpReply> r = c.Read();
  REQUIRE(r.has_value());
  CHECK(r->status == 400);
  CHECK_FALSE(r->keep_alive);
  CHECK(c.WaitClosed(
      std::chrono::milliseconds(static_cast<int>(10000 * lilcache::test::slowdown()))));
  CHECK(s.cache().get("keep") == "me");
}

namespace {
// posix_fallocate fails with ENOSPC while `full` is set (a full disk).
class FullDiskEnv : public lilcache::Env {
 public:
  int Fallocate(int fd, off_t offset, off_t length) override {
    if (full.load()) {
      errno = ENOSPC;
      return -1;
    }
    return Env::Fallocate(fd, offset, length);
  }
  std::atomic<bool> full{false};
};
}  // namespace

TEST_CASE(
    "a full disk is 507 (no_space); the answer says the cause without file paths, the log "
    "has the whole error") {
  NoEnvToken no_token;
  FullDiskEnv env;
  TestServer s({}, {.env = &env});
  REQUIRE(Get(s.port(), "/set?key=a&value=b").status == 200);
  env.full = true;
  const std::string big(256 << 10, 'x');
  HttpReply r;
  for (int i = 0; i < 20 && r.status != 507; ++i) {  // the first 1 MiB of log fills up
    r = Fetch(s.port(), "PUT", "/keys/big" + std::to_string(i), big);
  }
  env.full = false;
  REQUIRE(r.status == 507);
  CHECK(r.header("lilcache-error") == "no_space");
  CHECK(r.body.starts_with("cache error: "));
  CHECK(r.body.find(s.dir().path()) == std::string::npos);
  CHECK(r.body.find('/') == std::string::npos);
  CHECK(r.body.find("<path>") != std::string::npos);
  CHECK(r.body.find("no space left") != std::string::npos);
  CHECK(r.body.find('\n') == r.body.size() - 1);
  s.Stop();
  const std::string log = s.log();
  const std::size_t at = log.find(" 507 ");
  REQUIRE(at != std::string::npos);
  CHECK(log.find(s.dir().path(), at) != std::string::npos);  // the log has the paths
}

TEST_CASE("a cache Error's code gives the status: the client's fault 4xx, the server's 5xx") {
  using lilcache::ErrorCode;
  using lilcache::StatusOf;
  CHECK(StatusOf(ErrorCode::invalid_argument) == 400);
  CHECK(StatusOf(ErrorCode::limit) == 413);
  CHECK(StatusOf(ErrorCode::no_such_cache) == 404);
  CHECK(StatusOf(ErrorCode::no_space) == 507);
  CHECK(StatusOf(ErrorCode::busy) == 503);
  for (ErrorCode c : {ErrorCode::io, ErrorCode::corrupt, ErrorCode::unsupported,
                      ErrorCode::permission, ErrorCode::invalid_state}) {
    CAPTURE(lilcache::to_string(c));
    CHECK(StatusOf(c) == 500);
  }
}

TEST_CASE(
    "Server errors: a bad option is invalid_argument, a port in use busy, a second run() "
    "invalid_state") {
  TempDir dir;
  Cache cache = Cache::open("default", {.root = dir.path(), .loglevel = "off"});
  ::unsetenv("LILCACHE_TOKEN");
  CHECK_ERROR_CODE(Server(cache, "127.0.0.1", 0, {.threads = 1025}),
                   lilcache::ErrorCode::invalid_argument);
  CHECK_ERROR_CODE(Server(cache, "127.0.0.1", 0, {.allowed_origins = {"*"}}),
                   lilcache::ErrorCode::invalid_argument);
  Server s(cache, "127.0.0.1", 0);
  CHECK_ERROR_CODE(Server(cache, "127.0.0.1", s.port()), lilcache::ErrorCode::busy);
  s.stop();
  s.run();  // returns at once: stopped
  CHECK_ERROR_CODE(s.run(), lilcache::ErrorCode::invalid_state);
}

TEST_CASE("WithoutPaths replaces absolute paths, the root's spaces included") {
  using lilcache::WithoutPaths;
  CHECK(WithoutPaths("open /home/me/.cache/lilcache/a.meta: Permission denied", "") ==
        "open <path>: Permission denied");
  CHECK(WithoutPaths("no such cache (/r/x.meta was never initialized)", "/r") ==
        "no such cache (<path> was never initialized)");
  CHECK(WithoutPaths("log /my root/a.data is full", "/my root") == "log <path> is full");
  CHECK(WithoutPaths("corrupt log \"/a/b\", \"/c d/e\"", "/c d") ==
        "corrupt log \"<path>\", \"<path>\"");
  CHECK(WithoutPaths("value too large: 5 bytes (limit 1/2)", "") ==
        "value too large: 5 bytes (limit 1/2)");
  CHECK(WithoutPaths("/x", "") == "<path>");
}

// ---- HandleRawHttp: the socket-free entry point --------------------------------

TEST_CASE("HandleRawHttp answers every complete request of a buffer, in order") {
  TempDir dir;
  Cache cache = Cache::open("default", {.root = dir.path()});
  lilcache::HttpHandler handler(cache, "", 100);
  const std::string out = lilcache::HandleRawHttp(
      handler, MakeRequest("GET", "/set?key=a&value=b") + MakeRequest("GET", "/get?key=a") +
                   "GET /get?key=a HTTP/1.1\r\n");  // the last one is incomplete
  CHECK(CountStatusLines(out) == 2);
  CHECK(out.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(out.size() >= 1);
  CHECK(out.substr(out.size() - 1) == "b");
  CHECK(cache.get("a") == "b");

  const std::string bad =
      lilcache::HandleRawHttp(handler, "BAD\r\n\r\n" + MakeRequest("GET", "/health"));
  CHECK(CountStatusLines(bad) == 1);  // the connection closes after the 400
  CHECK(bad.rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0);
  CHECK(bad.find("Connection: close\r\n") != std::string::npos);
  CHECK(lilcache::HandleRawHttp(handler, "").empty());
}

TEST_CASE("HandleRawHttp survives 20,000 random inputs with well-formed answers") {
  TempDir dir;
  Cache cache = Cache::open("default", {.root = dir.path()});
  lilcache::HttpHandler handler(cache, "tok", 100);
  std::mt19937_64 rng(7);
  const std::string base =
      MakeRequest("PUT", "/keys/k?ttl=5s", "value", "Authorization: Bearer tok\r\n") +
      MakeRequest("GET", "/get?key=k", {}, "Authorization: Bearer tok\r\n");
  int answered = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string in = base;
    for (int n = 1 + static_cast<int>(rng() % 5); n > 0; --n) {
      const std::size_t at = rng() % (in.size() + 1);
      switch (rng() % 3) {
        case 0:
          if (at < in.size()) in[at] = static_cast<char>(rng());
          break;
        case 1:
          in.insert(at, 1, static_cast<char>(rng()));
          break;
        default:
          in.erase(at, rng() % 8);
      }
    }
    const std::string out =
        lilcache::HandleRawHttp(handler, in, {.max_header_bytes = 512, .max_body_bytes = 64});
    if (!out.empty()) {
      ++answered;
      REQUIRE_MESSAGE(StartsWithStatusLine(out), out.substr(0, 60));
    }
  }
  CHECK(answered > 10000);
}

// Counts the opens of the text log (<root>/<name>.log) and, once told to,
// fails them.
class LogOpenEnv : public lilcache::Env {
 public:
  std::atomic<bool> fail_log_opens{false};
  std::atomic<int> log_opens{0};
  int Open(const char* path, int flags, mode_t mode) override {
    if (std::string_view(path).ends_with(".log")) {
      ++log_opens;
      if (fail_log_opens) {
        errno = EACCES;
        return -1;
      }
    }
    return Env::Open(path, flags, mode);
  }
};

TEST_CASE("a Server opens the cache's log file through the cache's Env, where faults reach it") {
  NoEnvToken no_token;
  TempDir dir;
  CHECK(Cache::open("plain", {.root = dir.path()}).env() == lilcache::Env::Default());
  LogOpenEnv env;
  Cache cache = Cache::open("c", {.root = dir.path(), .env = &env});
  CHECK(cache.env() == &env);
  const int by_cache = env.log_opens;
  {
    Server server(cache, "127.0.0.1", 0);
    CHECK(env.log_opens == by_cache + 1);
  }
  env.fail_log_opens = true;
  CHECK_THROWS_AS(Server(cache, "127.0.0.1", 0), lilcache::Error);
  CHECK(cache.contains("k") == false);  // the cache itself goes on
}

TEST_CASE("validate_server_options refuses what Server's constructor refuses, binding nothing") {
  NoEnvToken no_token;
  CHECK_NOTHROW(lilcache::validate_server_options({}));
  CHECK_THROWS_AS(lilcache::validate_server_options({.token = ""}), lilcache::Error);
  CHECK_THROWS_AS(lilcache::validate_server_options({.allowed_hosts = {"a b"}}), lilcache::Error);
  CHECK_THROWS_AS(lilcache::validate_server_options({.allowed_origins = {"*"}}), lilcache::Error);
  CHECK_THROWS_AS(lilcache::validate_server_options({.memory_budget = 1}), lilcache::Error);
  CHECK_THROWS_AS(lilcache::validate_server_options({.loglevel = "loud"}), lilcache::Error);
  CHECK(lilcache::raise_file_limit() > 0);
}
