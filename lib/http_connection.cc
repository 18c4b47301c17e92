#include "http_connection.h"

#include <spdlog/sinks/null_sink.h>

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <charconv>
#include <cstdint>
#include <ctime>
#include <memory>
#include <utility>

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

// Escapes bytes that are not printable ASCII, so that a log line is one line.
void AppendPrintable(std::string& s, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f && u != '\\') {
      s += c;
    } else {
      s += "\\x";
      s += kHex[u >> 4];
      s += kHex[u & 15];
    }
  }
}

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (x != b[i]) return false;
  }
  return true;
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

void SerializeResponse(const HttpResponse& response, bool keep_alive, bool http10_keep_alive,
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
  h += "\r\nContent-Type: ";
  h += response.content_type;
  h += "\r\nContent-Length: ";
  AppendNumber(h, response.body.size());
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
    out.body = response.body;
  }
}

HttpConnection::HttpConnection(const HttpHandler& handler, const HttpLimits& limits,
                               spdlog::logger& log, std::string peer)
    : handler_(handler), limits_(limits), log_(log), peer_(std::move(peer)) {}

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
    }
    boost::system::error_code ec;
    const std::size_t used = parser_->put(boost::asio::buffer(rest.data(), rest.size()), ec);
    step.consumed += used;
    if (!header_was_done && !parser_->is_header_done()) header_bytes_ += used;
    if (ec == http::error::need_more) return step;
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
      parser_->eager(true);
      if (!parser_->is_done() && !continued_ && parser_->get().version() >= 11 &&
          IEquals(parser_->get()[http::field::expect], "100-continue")) {
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
      HttpResponse response = handler_.Execute(*route_, parser_->get());
      Respond(std::move(response), parser_->keep_alive(), false, out);
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
  AppendPrintable(path, req.method_string());
  path += ' ';
  std::string_view target = req.target();
  target = target.substr(0, target.find('?'));  // never the query: it holds values
  if (target.size() > kLogPathBytes) {
    AppendPrintable(path, target.substr(0, kLogPathBytes));
    path += "...";
  } else {
    AppendPrintable(path, target);
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
  SerializeResponse(response, keep_alive, keep_alive && http10, head_only, out);
  out.close = !keep_alive;
  out.interim = false;

  const unsigned s = response.status;
  const bool warn =
      protocol_error || s >= 500 || s == 401 || s == 403 || s == 413 || s == 414 || s == 431;
  const auto level = warn ? spdlog::level::warn : spdlog::level::debug;
  if (log_.should_log(level)) {
    const auto us =
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start_).count();
    if (warn && s != 401) {
      std::string why;
      const std::string_view text = response.detail.empty() ? response.body : response.detail;
      AppendPrintable(why, text.substr(0, response.detail.empty() ? 200 : 1000));
      if (!why.empty() && why.size() >= 4 && why.substr(why.size() - 4) == "\\x0a") {
        why.resize(why.size() - 4);
      }
      log_.log(level, "http {} {} {} {}us: {}", peer_, LogPath(), s, us, why);
    } else {
      log_.log(level, "http {} {} {} {}us", peer_, LogPath(), s, us);
    }
  }

  parser_.reset();
  route_.reset();
  started_ = false;
  continued_ = false;
  header_bytes_ = 0;
}

void HttpConnection::LogDropped(std::string_view why) const {
  if (!log_.should_log(spdlog::level::warn)) return;
  if (!started_) {
    log_.warn("http {} dropped: {}", peer_, why);
    return;
  }
  const auto us =
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start_).count();
  log_.warn("http {} {} dropped after {}us: {}", peer_, LogPath(), us, why);
}

std::string HandleRawHttp(const HttpHandler& handler, std::string_view raw,
                          const HttpLimits& limits) {
  HttpConnection connection(handler, limits, NullLogger(), "raw");
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
