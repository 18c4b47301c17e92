// http_connection: the HTTP/1.1 protocol of one connection, independent of
// any socket: bytes in, responses out. It parses requests with Beast's
// request_parser under the header and body limits, refuses a request from
// its header alone when it can (so that a refused body is never read),
// answers "Expect: 100-continue", keeps the connection alive or not, frames
// the responses of HttpHandler, and logs each request.
//
// Memory: the bytes it leaves unconsumed (an unfinished header, chunk header
// or trailer section) never exceed max_header_bytes (else 414, 431 or 400);
// a body or response of more than kUnchargedBytes is held from the server's
// MemoryBudget for as long as it lives, and one that the budget cannot take
// is refused with 503 and Retry-After (a body before it is read).
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
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "server/http_handler.h"
#include "server/http_limits.h"

namespace lilcache {

struct HttpLimits {
  std::size_t max_header_bytes = 8 * 1024;      // request line + fields; 414 / 431 over it;
                                                // also a chunk header and the trailer section
  std::size_t max_body_bytes = kMaxValueBytes;  // 413 over it, before reading the body
  MemoryBudget* budget = nullptr;               // bodies and responses; nullptr = no limit
};

// The warn lines of the HTTP layer, at most `per_second` of each kind per
// second (LineLimiter); an allowed line says how many of its kind were
// suppressed before it, and Flush() writes a summary line for the kinds
// whose floods stopped. Thread-safe: one per server.
class HttpWarnings {
 public:
  enum Kind {
    kAuth,         // 401, 403 (a token, Host or Origin refused)
    kProtocol,     // malformed requests, 413, 414, 431
    kBusy,         // 503: the memory budget
    kServerError,  // 5xx from the cache
    kDropped,      // requests dropped at their deadline or cut by the client
    kRefused,      // connections refused: the server's cap, the per-client cap
    kAccept,       // accept() failures
    kKinds,
  };

  explicit HttpWarnings(spdlog::logger& log, unsigned per_second = 10);
  HttpWarnings(const HttpWarnings&) = delete;
  HttpWarnings& operator=(const HttpWarnings&) = delete;

  spdlog::logger& log() const { return log_; }

  template <typename... Args>
  void Warn(Kind kind, fmt::format_string<Args...> format, Args&&... args) {
    if (!log_.should_log(spdlog::level::warn)) return;
    std::uint64_t suppressed = 0;
    if (!limiters_[kind].Allow(LineLimiter::Clock::now(), &suppressed)) return;
    std::string line = fmt::format(format, std::forward<Args>(args)...);
    if (suppressed > 0) AppendSuppressed(line, suppressed);
    log_.warn("{}", line);
  }

  // "http: N more lines of KIND suppressed" for each kind whose window ended
  // with lines suppressed and not reported yet. Call it periodically.
  void Flush();

 private:
  static void AppendSuppressed(std::string& line, std::uint64_t suppressed);

  spdlog::logger& log_;
  std::deque<LineLimiter> limiters_;  // one per Kind (a deque: LineLimiter cannot move)
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
  BudgetHold hold;       // the budget held for `body`: reset it once written
};

class HttpConnection {
 public:
  // peer: how the log names the client (e.g. "127.0.0.1:40312").
  HttpConnection(const HttpHandler& handler, const HttpLimits& limits, HttpWarnings& warnings,
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
  // 503 with Retry-After: the memory budget cannot take `what`.
  void RespondBusy(std::string_view what, bool keep_alive, HttpOutput& out);
  // The refusal of input left unconsumed over max_header_bytes in the body
  // phase: an endless chunk header (extensions) or trailer section.
  void RespondPendingTooLong(std::string_view pending, HttpOutput& out);
  // Holds enough budget for a chunked body that `incoming` more bytes may
  // extend; false if the budget cannot give it.
  bool HoldChunkedBody(std::size_t incoming);
  // The response to a request (or to a refused header); resets the parser.
  void Respond(HttpResponse response, bool keep_alive, bool protocol_error, HttpOutput& out);
  std::string LogPath() const;

  const HttpHandler& handler_;
  HttpLimits limits_;
  HttpWarnings& warnings_;
  spdlog::logger& log_;
  std::string peer_;

  std::optional<Parser> parser_;
  std::optional<Route> route_;  // set once the header is accepted
  BudgetHold body_hold_;        // the budget held for the body being received
  bool started_ = false;        // bytes of the current request arrived
  bool continued_ = false;      // 100 Continue sent for the current request
  bool closing_ = false;
  std::size_t header_bytes_ = 0;  // consumed while the header was incomplete
  std::chrono::steady_clock::time_point start_{};
};

// Serializes the status line and header fields of a response, and appends
// the body (moved into out.body when it is large). keep_alive = false adds
// "Connection: close"; http10_keep_alive adds "Connection: keep-alive".
// head_only omits the body (HEAD requests). A 503 gets "Retry-After: 1".
void SerializeResponse(HttpResponse response, bool keep_alive, bool http10_keep_alive,
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
