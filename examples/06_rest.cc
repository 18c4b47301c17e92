// Seed requirement 6: a RESTful server.
//
//   lilcache.init('foo_cache')
//   lilcache.start('127.0.0.1', 5001)
//
// lilcache::start() serves the default cache until SIGINT or SIGTERM; this
// example uses lilcache::Server directly, on a free port (0) and in a thread,
// so that it can talk to it and stop it. Any number of servers and programs
// share the cache: what a client sets over HTTP, Cache::get() sees at once in
// every process, and the reverse. Every endpoint: docs/rest.md.
//
// Link with liblilcache_server (meson: lilcache_server_dep).
//
// Usage: 06_rest [ROOT]   (default: a temporary directory)
#include <arpa/inet.h>
#include <lilcache/lilcache.h>
#include <lilcache/server.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <system_error>
#include <thread>

#include "example.h"

namespace {

struct Response {
  int status = 0;
  std::string body;
};

// One HTTP/1.1 request to 127.0.0.1:port with a plain socket, as any client
// (curl, a browser, another language) would send it.
Response Http(std::uint16_t port, const std::string& method, const std::string& target,
              const std::string& body = "") {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    throw std::system_error(errno, std::generic_category(), "connect");
  }
  std::string request = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
                        "Content-Length: " + std::to_string(body.size()) +
                        "\r\nConnection: close\r\n\r\n" + body;
  for (std::size_t sent = 0; sent < request.size();) {
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      ::close(fd);
      throw std::system_error(errno, std::generic_category(), "send");
    }
    sent += static_cast<std::size_t>(n);
  }
  std::string raw;  // the server closes the connection after its answer
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;)
    raw.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  // "HTTP/1.1 200 OK\r\n" headers "\r\n\r\n" body
  const std::size_t header_end = raw.find("\r\n\r\n");
  example::check(raw.starts_with("HTTP/1.1 ") && header_end != std::string::npos,
                 "a well-formed HTTP response");
  return {std::stoi(raw.substr(9, 3)), raw.substr(header_end + 4)};
}

// What a client does, checked against the library's view of the cache.
void Exercise(lilcache::Cache& cache, std::uint16_t port) {
  // Set over HTTP; the library sees it.
  Response set = Http(port, "GET", "/set?key=a&value=b");
  example::check(set.status == 200, "GET /set answers 200");
  example::check(cache.get("a") == "b", "Cache::get sees what HTTP set");

  // Get over HTTP what the library set: the body is the value, byte for byte.
  cache.set("greeting", std::string("hi\0there", 8));
  Response get = Http(port, "GET", "/get?key=greeting");
  example::check(get.status == 200 && get.body == std::string("hi\0there", 8),
                 "GET /get returns the raw value");

  // The resource form: PUT the raw body, then pop it, once.
  Response put = Http(port, "PUT", "/keys/job", "payload");
  example::check(put.status == 201, "PUT /keys/job answers 201 Created");
  Response pop = Http(port, "GET", "/pop?key=job");
  example::check(pop.status == 200 && pop.body == "payload", "GET /pop returns the value");
  example::check(Http(port, "GET", "/get?key=job").status == 404,
                 "after the pop, GET /get answers 404");
  std::printf("GET /set -> %d, GET /get -> %d (%zu bytes), PUT + GET /pop -> '%s', then 404\n",
              set.status, get.status, get.body.size(), pop.body.c_str());
}

}  // namespace

int main(int argc, char** argv) try {
  const example::Root root(argc, argv);
  lilcache::Cache cache = lilcache::Cache::open("foo_cache", {.root = root.str()});

  // Port 0: the system picks a free port; server.port() says which.
  lilcache::Server server(cache, "127.0.0.1", 0);
  std::thread serving([&] { server.run(); });
  std::printf("serving foo_cache on %s\n", server.url().c_str());
  try {
    Exercise(cache, server.port());
  } catch (...) {
    server.stop();
    serving.join();
    throw;
  }
  server.stop();  // graceful: run() returns once the open connections are done
  serving.join();
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "06_rest: %s\n", e.what());
  return 1;
}
