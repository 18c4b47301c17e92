#include "server/http_connection.h"

#include <spdlog/sinks/null_sink.h>

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <charconv>
#include <cstdint>
#include <ctime>
#include <memory>
#include <utility>

#include "util/ascii.h"
#include "util/quote.h"

namespace lilcache {
namespace {

namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;

// Bodies up to this size are copied after the header fields (one buffer to
// write); larger ones are written from their own string.
constexpr std::size_t kInlineBody = 16 * 1024;
constexpr std::size_t kLogPathBytes = 200;

// The Date field value, formatted once per second per thread.
std::string_view HttpDate() {
  thread_local std::time_t cached_second = 0;
  thread_local char text[64] = {};
  thread_local std::size_t length = 0;
  const std::time_t now = std::time(nullptr);
  if (now != cached_second) {
    std::tm tm{};
    gmtime_r(&now, &tm);
    length = std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cached_second = now;
  }
  return {text, length};
}

void AppendNumber(std::string& s, std::uint64_t n) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, n);
  s.append(digits, end);
}

HttpResponse ProtocolError(const boost::system::error_code& ec, bool start_line_done) {
  HttpResponse r;
  if (ec == http::error::header_limit) {
    if (start_line_done) {
      r.status = 431;
      r.body = "request header fields too large\n";
    } else {
      r.status = 414;
      r.body = "request line (URI) too long\n";
    }
  } else if (ec == http::error::body_limit) {
    r.status = 413;
    r.body = "request body too large\n";
  } else {
    r.status = 400;
    r.body = "malformed HTTP request: " + ec.message() + "\n";
  }
  return r;
}

}  // namespace

void SerializeResponse(HttpResponse response, bool keep_alive, bool http10_keep_alive,
                       bool head_only, HttpOutput& out) {
  const bool inline_body = !head_only && response.body.size() <= kInlineBody;
  std::string& h = out.head;
  h.clear();
  h.reserve(200 + (inline_body ? response.body.size() : 0));
  h += "HTTP/1.1 ";
  AppendNumber(h, response.status);
  h += ' ';
  h += StatusReason(response.status);
  h += "\r\nServer: lilcache\r\nDate: ";
  h += HttpDate();
  if (response.status == 204) {
    // No content: neither Content-Type nor Content-Length (RFC 9110 8.6).
    response.body.clear();
  } else {
    h += "\r\nContent-Type: ";
    h += response.content_type;
    h += "\r\nContent-Length: ";
    AppendNumber(h, response.body.size());
  }
  // No answer is worth keeping in a cache (values, stats, errors), and none
  // is to be sniffed into HTML or script by a browser.
  h += "\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n";
  h += response.fields;
  if (!response.allow.empty()) {
    h += "Allow: ";
    h += response.allow;
    h += "\r\n";
  }
  if (response.challenge) h += "WWW-Authenticate: Bearer realm=\"lilcache\"\r\n";
  if (response.status == 503) h += "Retry-After: 1\r\n";
  if (!keep_alive) {
    h += "Connection: close\r\n";
  } else if (http10_keep_alive) {
    h += "Connection: keep-alive\r\n";
  }
  h += "\r\n";
  out.body.clear();
  if (head_only) return;
  if (inline_body) {
    h += response.body;
  } else {
    out.body = std::move(response.body);  // no copy of a large value
  }
}

HttpWarnings::HttpWarnings(spdlog::logger& log, unsigned per_second) : log_(log) {
  for (int k = 0; k < kKinds; ++k) limiters_.emplace_back(per_second);
}

void HttpWarnings::AppendSuppressed(std::string& line, std::uint64_t suppressed) {
  line += " (";
  AppendNumber(line, suppressed);
  line += " similar lines suppressed before this one)";
}

void HttpWarnings::Flush() {
  static constexpr const char* kNames[kKinds] = {
      "refused (401, 403)", "malformed-request",  "memory-budget (503)", "server-error",
      "dropped-request",    "refused-connection", "accept-failure"};
  const auto now = LineLimiter::Clock::now();
  for (int k = 0; k < kKinds; ++k) {
    const std::uint64_t n = limiters_[k].TakeSuppressed(now);
    if (n > 0) log_.warn("http: {} more {} lines suppressed", n, kNames[k]);
  }
}

HttpConnection::HttpConnection(const HttpHandler& handler, const HttpLimits& limits,
                               HttpWarnings& warnings, std::string peer)
    : handler_(handler),
      limits_(limits),
      warnings_(warnings),
      log_(warnings.log()),
      peer_(std::move(peer)),
      body_hold_(limits.budget) {}

void HttpConnection::StartRequest() {
  parser_.emplace();
  parser_->body_limit(limits_.max_body_bytes);
  parser_->eager(false);  // stop after the header: RouteOf() sees it before the body
  route_.reset();
  started_ = false;
  continued_ = false;
  header_bytes_ = 0;
}

HttpConnection::Step HttpConnection::Process(std::string_view in, HttpOutput& out) {
  Step step;
  out.interim = false;
  if (!parser_) StartRequest();
  if (in.empty()) return step;
  if (!started_) {
    started_ = true;
    start_ = Clock::now();
  }
  for (;;) {
    const std::string_view rest = in.substr(step.consumed);
    if (rest.empty()) return step;  // read more
    const bool header_was_done = parser_->is_header_done();
    if (!header_was_done) {
      // Beast checks its limit per call; keep the total under ours.
      const std::size_t left =
          limits_.max_header_bytes > header_bytes_ ? limits_.max_header_bytes - header_bytes_ : 1;
      parser_->header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(left, UINT32_MAX)));
    } else if (parser_->chunked() && !HoldChunkedBody(rest.size())) {
      RespondBusy("a chunked request body", false, out);
      out.linger = true;
      step.ready = true;
      return step;
    }
    boost::system::error_code ec;
    const std::size_t used = parser_->put(boost::asio::buffer(rest.data(), rest.size()), ec);
    step.consumed += used;
    if (!header_was_done && !parser_->is_header_done()) header_bytes_ += used;
    if (ec == http::error::need_more) {
      // Beast bounds the header (header_limit) but neither a chunk header
      // (size and extensions) nor the trailer section: it waits for their
      // end with everything unconsumed. Bound them here.
      const std::size_t pending = in.size() - step.consumed;
      if (parser_->is_header_done() && pending > limits_.max_header_bytes) {
        RespondPendingTooLong(in.substr(step.consumed), out);
        step.ready = true;
        return step;
      }
      return step;
    }
    if (ec) {
      const bool start_line_done = header_bytes_ > 0 || parser_->is_header_done();
      Respond(ProtocolError(ec, start_line_done), false, true, out);
      out.linger = true;
      step.ready = true;
      return step;
    }
    if (parser_->is_header_done() && !route_) {
      std::variant<Route, HttpResponse> routed = handler_.RouteOf(parser_->get().base());
      if (auto* refused = std::get_if<HttpResponse>(&routed)) {
        // The body was not read: the connection can go on only if there is
        // none (and the request's framing can be trusted).
        const bool complete = parser_->is_done() && !refused->close;
        Respond(std::move(*refused), complete && parser_->keep_alive(), false, out);
        out.linger = !complete;
        step.ready = true;
        return step;
      }
      route_ = std::get<Route>(routed);
      // An endpoint that takes less than max_body_bytes (a batch): 413 from
      // the Content-Length, or as a chunked body grows (Beast's body_limit,
      // which may change until the first body byte is parsed: none is yet).
      if (route_->max_body_bytes < limits_.max_body_bytes) {
        const boost::optional<std::uint64_t> length = parser_->content_length();
        if (length && *length > route_->max_body_bytes) {
          Respond(ProtocolError(http::error::body_limit, true), false, true, out);
          out.linger = true;
          step.ready = true;
          return step;
        }
        parser_->body_limit(route_->max_body_bytes);
      }
      // A body of known length is held from the budget before it is read.
      if (const boost::optional<std::uint64_t> length = parser_->content_length();
          length && *length > kUnchargedBytes && !body_hold_.GrowTo(*length)) {
        RespondBusy("a request body of " + std::to_string(*length) + " bytes", false, out);
        out.linger = true;
        step.ready = true;
        return step;
      }
      parser_->eager(true);
      if (!parser_->is_done() && !continued_ && parser_->get().version() >= 11 &&
          EqualsIgnoreCase(parser_->get()[http::field::expect], "100-continue")) {
        continued_ = true;
        out.head = "HTTP/1.1 100 Continue\r\n\r\n";
        out.body.clear();
        out.close = false;
        out.linger = false;
        out.interim = true;
        step.ready = true;
        return step;
      }
    }
    if (parser_->is_done()) {
      const bool keep_alive = parser_->keep_alive();
      // A popped value cannot be put back: its largest size is held first.
      BudgetHold hold(limits_.budget);
      const bool pop = route_->endpoint == Endpoint::kPop;
      if (pop && !hold.GrowTo(kMaxValueBytes)) {
        RespondBusy("a pop's value", keep_alive, out);
        out.linger = false;
        step.ready = true;
        return step;
      }
      HttpResponse response = handler_.Execute(*route_, parser_->get());
      if (response.body.size() <= kUnchargedBytes) {
        hold.Reset();
      } else if (pop) {
        hold.ForceTo(response.body.size());
      } else if (!hold.GrowTo(response.body.size())) {
        const std::size_t size = response.body.size();
        response = HttpResponse();  // frees the value now
        RespondBusy("a response of " + std::to_string(size) + " bytes", keep_alive, out);
        out.linger = false;
        step.ready = true;
        return step;
      }
      Respond(std::move(response), keep_alive, false, out);
      out.hold = std::move(hold);
      out.linger = false;
      step.ready = true;
      return step;
    }
    if (used == 0) return step;  // read more
  }
}

std::string HttpConnection::LogPath() const {
  std::string path;
  if (!parser_ || !parser_->is_header_done()) return "-";
  const HttpRequest& req = parser_->get();
  AppendEscaped(path, req.method_string());
  path += ' ';
  std::string_view target = req.target();
  target = target.substr(0, target.find('?'));  // never the query: it holds values
  if (target.size() > kLogPathBytes) {
    AppendEscaped(path, target.substr(0, kLogPathBytes));
    path += "...";
  } else {
    AppendEscaped(path, target);
  }
  return path;
}

void HttpConnection::Respond(HttpResponse response, bool keep_alive, bool protocol_error,
                             HttpOutput& out) {
  keep_alive = keep_alive && !closing_;
  bool head_only = false, http10 = false;
  if (parser_->is_header_done()) {
    head_only = parser_->get().method() == http::verb::head;
    http10 = parser_->get().version() < 11;
  }
  // The status, and the reason of an error for its log line (the body is moved
  // out): the detail if the handler gave one (a 500's whole error, which the
  // body gives without paths), else the body.
  const unsigned s = response.status;
  const std::string body_for_log = s < 400                   ? std::string()
                                   : response.detail.empty() ? response.body.substr(0, 200)
                                                             : response.detail.substr(0, 1000);
  SerializeResponse(std::move(response), keep_alive, keep_alive && http10, head_only, out);
  out.hold.Reset();
  out.close = !keep_alive;
  out.interim = false;

  const bool warn =
      protocol_error || s >= 500 || s == 401 || s == 403 || s == 413 || s == 414 || s == 431;
  const auto level = warn ? spdlog::level::warn : spdlog::level::debug;
  if (log_.should_log(level)) {
    const auto us =
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start_).count();
    if (!warn) {
      log_.log(level, "http {} {} {} {}us", peer_, LogPath(), s, us);
    } else if (s == 401) {
      warnings_.Warn(HttpWarnings::kAuth, "http {} {} {} {}us", peer_, LogPath(), s, us);
    } else {
      std::string_view reason = body_for_log;
      if (reason.ends_with('\n')) reason.remove_suffix(1);  // the body's own line end
      const std::string why = Escape(reason);               // one log line, printable ASCII
      const HttpWarnings::Kind kind = s == 503   ? HttpWarnings::kBusy
                                      : s >= 500 ? HttpWarnings::kServerError
                                      : s == 403 ? HttpWarnings::kAuth
                                                 : HttpWarnings::kProtocol;
      warnings_.Warn(kind, "http {} {} {} {}us: {}", peer_, LogPath(), s, us, why);
    }
  }

  parser_.reset();  // frees the request body: its hold goes too
  body_hold_.Reset();
  route_.reset();
  started_ = false;
  continued_ = false;
  header_bytes_ = 0;
}

bool HttpConnection::HoldChunkedBody(std::size_t incoming) {
  // Parsing `incoming` bytes adds at most that many to the body.
  const std::size_t need = parser_->get().body().size() + incoming;
  if (need <= kUnchargedBytes || need <= body_hold_.held()) return true;
  constexpr std::size_t kStep = 1 << 20;  // fewer reservations than one per read
  const std::size_t stepped = (need + kStep - 1) / kStep * kStep;
  return body_hold_.GrowTo(std::max(need, std::min(stepped, limits_.max_body_bytes)));
}

void HttpConnection::RespondBusy(std::string_view what, bool keep_alive, HttpOutput& out) {
  HttpResponse r;
  r.status = 503;
  r.body = "server busy: its memory budget for bodies and responses cannot take ";
  r.body += what;
  r.body += " now; retry later\n";
  Respond(std::move(r), keep_alive, false, out);
}

void HttpConnection::RespondPendingTooLong(std::string_view pending, HttpOutput& out) {
  // A chunk header is one line: pending holds no line end (past the CRLF
  // that ends the previous chunk's data). Past the last chunk's line, it is
  // the trailer section.
  if (pending.starts_with("\r\n")) pending.remove_prefix(2);
  HttpResponse r;
  const std::string limit = std::to_string(limits_.max_header_bytes);
  if (pending.find("\r\n") != std::string_view::npos) {
    r.status = 431;
    r.body = "trailer section over " + limit + " bytes\n";
  } else {
    r.status = 400;
    r.body = "chunk header (size and extensions) over " + limit + " bytes\n";
  }
  Respond(std::move(r), false, true, out);
  out.linger = true;
}

void HttpConnection::LogDropped(std::string_view why) const {
  if (!log_.should_log(spdlog::level::warn)) return;
  if (!started_) {
    warnings_.Warn(HttpWarnings::kDropped, "http {} dropped: {}", peer_, why);
    return;
  }
  const auto us =
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start_).count();
  warnings_.Warn(HttpWarnings::kDropped, "http {} {} dropped after {}us: {}", peer_, LogPath(), us,
                 why);
}

std::string HandleRawHttp(const HttpHandler& handler, std::string_view raw,
                          const HttpLimits& limits) {
  static HttpWarnings warnings(NullLogger());
  HttpConnection connection(handler, limits, warnings, "raw");
  std::string written;
  for (;;) {
    HttpOutput out;
    const HttpConnection::Step step = connection.Process(raw, out);
    raw.remove_prefix(step.consumed);
    if (!step.ready) break;
    written += out.head;
    written += out.body;
    if (out.close) break;
  }
  return written;
}

spdlog::logger& NullLogger() {
  static const std::shared_ptr<spdlog::logger> logger = [] {
    auto l = std::make_shared<spdlog::logger>("lilcache.null",
                                              std::make_shared<spdlog::sinks::null_sink_mt>());
    l->set_level(spdlog::level::off);
    return l;
  }();
  return *logger;
}

}  // namespace lilcache
