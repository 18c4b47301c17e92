// A small HTTP/1.1 client for the server tests: blocking POSIX sockets with
// timeouts, responses parsed by Beast's response_parser. It sends whatever
// bytes it is given (so that tests can send malformed or slow requests) and
// reads responses one at a time (keep-alive, pipelining).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace lilcache::test {

struct HttpReply {
  unsigned status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // names in lower case
  bool keep_alive = false;                     // the connection may be reused

  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

class HttpConn {
 public:
  // Connects to 127.0.0.1:port; reads and writes time out after `timeout`.
  explicit HttpConn(std::uint16_t port,
                    std::chrono::milliseconds timeout = std::chrono::seconds(30));
  ~HttpConn();
  HttpConn(const HttpConn&) = delete;
  HttpConn& operator=(const HttpConn&) = delete;

  // Sends all of bytes; false if the peer closed or reset the connection.
  bool Send(std::string_view bytes);
  void ShutdownWrite();

  // Reads one complete response. nullopt if the connection ended (EOF, reset
  // or timeout) before one was complete. head: the response to a HEAD request.
  std::optional<HttpReply> Read(bool head = false);

  // Reads until EOF, reset or timeout; returns every byte received (after
  // what Read() had buffered).
  std::string ReadAll();

  // Whether the server closed the connection (EOF or reset) within `timeout`,
  // discarding anything it sends meanwhile.
  bool WaitClosed(std::chrono::milliseconds timeout);

 private:
  int fd_ = -1;
  std::string buffered_;
};

// "METHOD target HTTP/1.1" with Host, Content-Length (when body is not
// empty or the method is PUT/POST), the extra header lines (each ending in
// \r\n), then the body.
std::string MakeRequest(std::string_view method, std::string_view target,
                        std::string_view body = {}, std::string_view extra_headers = {});

// One request on a new connection; throws std::runtime_error if no complete
// response arrives.
HttpReply Fetch(std::uint16_t port, std::string_view method, std::string_view target,
                std::string_view body = {}, std::string_view extra_headers = {});

// Percent-encodes every byte except unreserved ones (RFC 3986).
std::string PercentEncode(std::string_view bytes);

}  // namespace lilcache::test
