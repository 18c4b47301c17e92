// http_connection: the HTTP/1.1 protocol of one connection, independent of
// any socket: bytes in, responses out. It parses requests with Beast's
// request_parser under the header and body limits, refuses a request from
// its header alone when it can (so that a refused body is never read),
// answers "Expect: 100-continue", keeps the connection alive or not, frames
// the responses of HttpHandler, and logs each request.
//
// lib/server.cc feeds it what a socket reads; HandleRawHttp() feeds it a
// whole buffer at once (tests, and fuzz targets: any bytes are valid input).
// One HttpConnection per connection; not thread-safe (a connection lives on
// one thread).
#pragma once

#include <spdlog/logger.h>

#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "http_handler.h"

namespace lilcache {

struct HttpLimits {
  std::size_t max_header_bytes = 8 * 1024;      // request line + fields; 414 / 431 over it
  std::size_t max_body_bytes = kMaxValueBytes;  // 413 over it, before reading the body
};

// What the transport writes next, then does.
struct HttpOutput {
  std::string head;      // status line and fields, followed by the body when it is small
  std::string body;      // a large body, to write after head (no copy into head)
  bool close = false;    // close the connection once written
  bool linger = false;   // (with close) unread request bytes may follow: shut down sending,
                         // then read and discard for a while before closing, so that the
                         // client reads this response rather than a TCP reset
  bool interim = false;  // "100 Continue": the same request continues afterwards
};

class HttpConnection {
 public:
  // peer: how the log names the client (e.g. "127.0.0.1:40312").
  HttpConnection(const HttpHandler& handler, const HttpLimits& limits, spdlog::logger& log,
                 std::string peer);

  struct Step {
    std::size_t consumed = 0;  // bytes of `in` used; the caller drops them
    bool ready = false;        // out holds something to write
  };

  // Parses `in`, the bytes received and not yet consumed. When a request is
  // complete (or an error found, or 100 Continue is due) fills `out` and
  // returns ready; otherwise consumes what it can and returns !ready (read
  // more). After an output with close, do not call it again.
  Step Process(std::string_view in, HttpOutput& out);

  // Whether bytes of a request arrived whose response was not produced yet.
  bool in_request() const { return started_; }

  // Every later response closes the connection (graceful stop).
  void CloseAfterResponse() { closing_ = true; }

  // Logs (at warn) that the connection is dropped with a request unfinished.
  void LogDropped(std::string_view why) const;

 private:
  using Parser = boost::beast::http::request_parser<boost::beast::http::string_body>;

  void StartRequest();
  // The response to a request (or to a refused header); resets the parser.
  void Respond(HttpResponse response, bool keep_alive, bool protocol_error, HttpOutput& out);
  std::string LogPath() const;

  const HttpHandler& handler_;
  HttpLimits limits_;
  spdlog::logger& log_;
  std::string peer_;

  std::optional<Parser> parser_;
  std::optional<Route> route_;  // set once the header is accepted
  bool started_ = false;        // bytes of the current request arrived
  bool continued_ = false;      // 100 Continue sent for the current request
  bool closing_ = false;
  std::size_t header_bytes_ = 0;  // consumed while the header was incomplete
  std::chrono::steady_clock::time_point start_{};
};

// Serializes the status line and header fields of a response, and appends
// the body. keep_alive = false adds "Connection: close"; http10_keep_alive
// adds "Connection: keep-alive". head_only omits the body (HEAD requests).
void SerializeResponse(const HttpResponse& response, bool keep_alive, bool http10_keep_alive,
                       bool head_only, HttpOutput& out);

// Runs every request in `raw` through an HttpConnection, as if a client had
// sent these bytes and then closed its end; returns the bytes the server
// would have written (responses, and any "100 Continue"). Never throws for
// any input. For tests and fuzz targets.
std::string HandleRawHttp(const HttpHandler& handler, std::string_view raw,
                          const HttpLimits& limits = {});

// A logger that discards everything.
spdlog::logger& NullLogger();

}  // namespace lilcache
