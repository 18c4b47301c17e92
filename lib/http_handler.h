// http_handler: what one HTTP request does to a Cache, independent of any
// socket: authentication, routing, parameters (Boost.URL, percent-decoding)
// and the cache operation, giving the status and body of the response.
// docs/rest.md is the specification of every endpoint.
//
// A request is handled in two steps so that a connection can refuse a
// request before reading its body: Route() looks at the header alone (401,
// 400 malformed target, 404, 405), Execute() does the rest once the body is
// there. Handle() does both. Thread-safe: one handler serves every thread.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/url/url_view.hpp>
#include <cstddef>
#include <string>
#include <string_view>
#include <variant>

#include "lilcache/lilcache.h"

namespace lilcache {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpRequestHeader = boost::beast::http::request_header<>;

inline constexpr std::string_view kTextPlain = "text/plain; charset=utf-8";
inline constexpr std::string_view kOctetStream = "application/octet-stream";
inline constexpr std::string_view kJson = "application/json";

// The status and content of a response; the connection adds the framing
// (status line, Content-Length, Connection, Date).
struct HttpResponse {
  unsigned status = 200;
  std::string body{};
  std::string_view content_type = kTextPlain;
  std::string_view allow{};  // 405: the methods the resource allows ("Allow")
  bool challenge = false;    // 401: send "WWW-Authenticate: Bearer"
};

// The endpoints of docs/rest.md.
enum class Endpoint {
  kGet,       // GET /get?key=
  kSet,       // GET /set?key=&value=[&ttl=]
  kPop,       // GET /pop?key=
  kDelete,    // GET /delete?key=
  kContains,  // GET /contains?key=
  kKey,       // GET | PUT | DELETE /keys/{key}
  kKeys,      // GET /keys?prefix=&limit=, DELETE /keys (purge)
  kStats,     // GET /stats
  kHealth,    // GET /health
  kPurge,     // POST /purge
};

// A request whose header was accepted: its endpoint and its parsed target
// (a view of the request's target: valid while the request is).
struct Route {
  Endpoint endpoint;
  boost::urls::url_view url;
};

class HttpHandler {
 public:
  // token: "" = no authentication. keys_limit: GET /keys without ?limit=.
  HttpHandler(Cache& cache, std::string token, std::size_t keys_limit);

  // Step 1, from the header alone: the endpoint, or the response refusing
  // the request (401 without the token, 400 for a target that is not an
  // origin-form URI, 404 unknown path, 405 method not allowed there).
  std::variant<Route, HttpResponse> RouteOf(const HttpRequestHeader& header) const;

  // Step 2: runs the request on the cache. 400 for a missing or invalid
  // parameter, 413 for a key or value over the cache's limits, 500 if the
  // cache throws (the message in the body).
  HttpResponse Execute(const Route& route, const HttpRequest& request) const;

  // Both steps.
  HttpResponse Handle(const HttpRequest& request) const;

  Cache& cache() const { return cache_; }

 private:
  HttpResponse Run(const Route& route, const HttpRequest& request) const;

  Cache& cache_;
  std::string token_;
  std::size_t keys_limit_;
};

// Whether a == b, in a time that depends only on b's length (the secret's).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// The reason phrase of an HTTP status ("Not Found"); "Unknown" if none.
std::string_view StatusReason(unsigned status);

}  // namespace lilcache
