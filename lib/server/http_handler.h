// http_handler: what one HTTP request does to a Cache, independent of any
// socket: authentication, routing, parameters (Boost.URL, percent-decoding)
// and the cache operation, giving the status and body of the response.
// docs/rest.md is the specification of every endpoint.
//
// A request is handled in two steps so that a connection can refuse a
// request before reading its body: RouteOf() looks at the header alone
// (framing, Host, Origin and Fetch-Metadata, CORS preflight, token, 400
// malformed target, 404, 405), Execute() does the rest once the body is
// there. Handle() does both. Thread-safe: one handler serves every thread;
// it is immutable once constructed.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/url/url_view.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "lilcache/lilcache.h"

namespace lilcache {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpRequestHeader = boost::beast::http::request_header<>;

inline constexpr std::string_view kTextPlain = "text/plain; charset=utf-8";
inline constexpr std::string_view kOctetStream = "application/octet-stream";
inline constexpr std::string_view kJson = "application/json";
inline constexpr std::string_view kProblemJson = "application/problem+json";

// One page of GET /keys holds at most this many keys, whatever ?limit= or
// HttpPolicy::keys_limit ask, and at most kMaxKeysPageBytes bytes of keys
// (so its JSON stays under ~6 MiB even for keys of control characters);
// the Link header then names the next page (docs/rest.md, "Listing keys").
inline constexpr std::size_t kMaxKeysPage = 10000;
inline constexpr std::size_t kMaxKeysPageBytes = std::size_t{1} << 20;

// The status and content of a response; the connection adds the framing
// (status line, Content-Length, Connection, Date) and the fields every
// answer carries (Cache-Control: no-store, X-Content-Type-Options: nosniff).
struct HttpResponse {
  unsigned status = 200;
  std::string body{};
  std::string_view content_type = kTextPlain;
  std::string_view allow{};       // 405: the methods the resource allows ("Allow")
  bool challenge = false;         // 401: send "WWW-Authenticate: Bearer"
  std::string fields{};           // more header fields, each "Name: value\r\n" (CORS)
  std::string detail{};           // what the log says instead of the body (500: the full
                                  // error, paths included, which the body never shows)
  bool close = false;             // close the connection after it, even if the request was
                                  // complete (faulty framing: the bytes after it are no request)
  std::string_view error_kind{};  // the cache's ErrorCode (to_string), when it refused:
                                  // the "error" member of a problem+json body
};

// The endpoints of docs/rest.md.
enum class Endpoint {
  kGet,        // GET /get?key=
  kSet,        // GET /set?key=&value=[&ttl=]
  kPop,        // GET /pop?key=
  kDelete,     // GET /delete?key=
  kContains,   // GET /contains?key=
  kKey,        // GET | HEAD | PUT | DELETE /keys/{key}, with If-Match / If-None-Match;
               // ?encoding=base64 on every endpoint that takes a key
  kIncrement,  // POST /keys/{key}/increment?by=&initial=&ttl=
  kTtl,        // GET /keys/{key}/ttl
  kTouch,      // POST /keys/{key}/touch?ttl=
  kPersist,    // POST /keys/{key}/persist
  kBatchGet,   // POST /batch/get (application/json)
  kBatchSet,   // POST /batch/set[?ttl=] (application/json)
  kKeys,       // GET /keys?prefix=&limit=&after=, DELETE /keys (purge)
  kStats,      // GET /stats
  kHealth,     // GET /health
  kPurge,      // POST /purge
};

// A request whose header was accepted: its endpoint, its parsed target and
// the Origin its answer names in CORS fields ("" = none). Both are views of
// the request's header: valid while the request is.
struct Route {
  Endpoint endpoint;
  boost::urls::url_view url;
  std::string_view cors_origin{};
  // The largest body this endpoint takes (the connection refuses a larger
  // one with 413 before reading it); SIZE_MAX = the server's max_body_bytes.
  std::size_t max_body_bytes = SIZE_MAX;
};

// Who may drive the cache (docs/rest.md, "Browsers and other web pages").
struct HttpPolicy {
  std::string token{};            // "" = no authentication
  std::size_t keys_limit = 1000;  // GET /keys without ?limit= (at most kMaxKeysPage)
  // Host values accepted besides the defaults (ServerOptions::allowed_hosts);
  // "*" accepts any Host.
  std::vector<std::string> allowed_hosts{};
  // Origins whose pages may send requests and read the answers (CORS).
  std::vector<std::string> allowed_origins{};
  // The address the server listens on, as bound ("127.0.0.1", "::", ...): a
  // Host naming it is accepted; a wildcard (0.0.0.0, ::) accepts every IP
  // literal. "" = none (only the loopback defaults).
  std::string bound_address{};
  // The host the server was asked to bind, when it is a name ("myhost.lan"):
  // accepted as a Host too. "" or an address: nothing more.
  std::string bound_name{};
};

class HttpHandler {
 public:
  // Throws Error for an entry of allowed_hosts or allowed_origins that is
  // not a host or an origin (the message names it).
  HttpHandler(Cache& cache, HttpPolicy policy);
  // The loopback defaults alone. token: "" = no authentication.
  HttpHandler(Cache& cache, std::string token, std::size_t keys_limit);

  // Step 1, from the header alone: the endpoint, or the response refusing
  // the request, in this order: faulty framing (400 for Transfer-Encoding
  // whose last coding is not chunked, or with Content-Length, or in
  // HTTP/1.0; 501 for a coding before chunked: either closes the
  // connection), Host (400 missing in HTTP/1.1, repeated or malformed; 403
  // not allowed), 403 for an Origin not allowed or, without an allowed
  // Origin, Sec-Fetch-Site: cross-site; the answer to a CORS preflight (200);
  // 401 without the token; 400 for a target that is not an origin-form URI,
  // 404 unknown path, 405 method not allowed there (HEAD is allowed where
  // GET is, except on the seed's writing GETs /set, /pop and /delete), 415
  // for a batch whose Content-Type is not application/json. Every refusal
  // (4xx, 5xx) is one line of text, or application/problem+json (RFC 9457)
  // when the request's Accept prefers JSON (ErrorAsProblem).
  std::variant<Route, HttpResponse> RouteOf(const HttpRequestHeader& header) const;

  // Step 2: runs the request on the cache. 400 for a missing or malformed
  // parameter (a malformed If-Match or batch body included); 412 when the
  // condition of If-Match or If-None-Match does not hold; 409 (with
  // Lilcache-Error: invalid_argument) for an increment of a value that is
  // no integer; 413 for a batch over its limits (http_limits.h); if the cache throws Error, the
  // status of its code (StatusOf: 400 for an invalid key or ttl, 413 for a key or value over the
  // cache's limits, 507 for a full disk, ...) with a "Lilcache-Error: <code>" field; the body is
  // the message without file paths (a 5xx's prefixed "cache error: ", and its whole message in
  // detail, for the log). Another exception is a 500. Error bodies as
  // RouteOf's: text or problem+json by the Accept field.
  HttpResponse Execute(const Route& route, const HttpRequest& request) const;

  // Both steps.
  HttpResponse Handle(const HttpRequest& request) const;

  Cache& cache() const { return cache_; }

 private:
  struct HostPattern {
    std::string host;  // lower case; IPv6 in brackets, in its canonical form
    int port = -1;     // -1: any port
  };

  HttpResponse Run(const Route& route, const HttpRequest& request) const;
  // RouteOf() before an error body becomes problem+json.
  std::variant<Route, HttpResponse> Admit(const HttpRequestHeader& header) const;
  // nullopt if the request may go on; else the refusal.
  std::optional<HttpResponse> CheckFraming(const HttpRequestHeader& header) const;
  std::optional<HttpResponse> CheckHost(const HttpRequestHeader& header) const;
  // Whether a Host value is exactly a listed host ("127.0.0.1", "[::1]:80"):
  // CheckHost()'s fast path. false means "parse it", not "refuse it".
  bool HostListed(std::string_view value) const;
  // RouteOf() after the Host and Origin checks: preflight, token, routing.
  std::variant<Route, HttpResponse> Dispatch(const HttpRequestHeader& header, bool cors) const;
  bool OriginAllowed(std::string_view origin) const;

  Cache& cache_;
  std::string token_;
  std::size_t keys_limit_;
  std::vector<HostPattern> hosts_;
  std::vector<std::string> origins_;  // normalized: scheme://host[:port], lower case
  bool any_host_ = false;             // "*" allowed
  bool any_ip_literal_ = false;       // bound to a wildcard address
};

// Checks one entry of ServerOptions::allowed_hosts ("name", "name:port",
// "127.0.0.1:5001", "[::1]", "::1", "*"); throws Error naming it if it is
// none of these forms.
void CheckAllowedHost(std::string_view host);

// Checks one entry of ServerOptions::allowed_origins ("https://app.example",
// "http://localhost:3000"): a scheme, a host and an optional port, nothing
// else; "null" and "*" are refused. Throws Error naming it.
void CheckAllowedOrigin(std::string_view origin);

// An error message with every absolute file path in it replaced by "<path>"
// (root: the cache's root directory, replaced first, since it may hold
// spaces). For the bodies of 500 answers, which a client reads.
std::string WithoutPaths(std::string_view message, std::string_view root);
// Whether a == b, in a time that depends only on b's length (the secret's).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// Whether an Accept field value prefers JSON to text for an error body: the
// best q of application/problem+json or application/json over that of
// text/plain (each from its most specific matching range), or equal to it
// and from a more specific range ("application/json, */*"). No Accept, "*/*"
// or a tie of equally specific ranges: text.
bool AcceptPrefersJson(std::string_view accept);

// Makes an error answer (status >= 400 with a text body) an RFC 9457
// problem: {"type": "about:blank", "title": <reason phrase>, "status": N,
// "detail": <the text line>[, "error": <Lilcache-Error code>]} as
// application/problem+json. Other answers are left alone.
void ErrorAsProblem(HttpResponse& r);

// The reason phrase of an HTTP status ("Not Found"); "Unknown" if none.
std::string_view StatusReason(unsigned status);

// The HTTP status of a request the cache refused with an Error of this code
// (docs/rest.md, "Status codes"): invalid_argument 400, limit 413,
// no_such_cache 404, no_space 507, busy 503; io, corrupt, unsupported,
// permission and invalid_state 500 (the server's problem, not the client's).
unsigned StatusOf(ErrorCode code);

}  // namespace lilcache
