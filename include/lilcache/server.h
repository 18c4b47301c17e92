// lilcache/server.h: the RESTful front end. Serves one lilcache::Cache over
// HTTP/1.1 so that programs in any language (or curl) can use it:
//
//   lilcache::init("foo_cache");
//   lilcache::start("127.0.0.1", 5001);   // blocks until SIGINT or SIGTERM
//
//   $ curl 'localhost:5001/set?key=a&value=b'   ->  OK (and a newline)
//   $ curl 'localhost:5001/get?key=a'           ->  b
//
// Every endpoint, status code, limit and the authentication are documented in
// docs/rest.md. In short:
//   GET  /get?key=K                 200 the raw value (application/octet-stream), 404 missing
//   GET  /set?key=K&value=V[&ttl=D] 200 "OK" (ttl a duration such as "120s", see parse_duration)
//   GET  /pop?key=K                 200 the value (removed), 404 missing
//   GET  /delete?key=K              200 "OK" (removed), 404 missing
//   GET  /contains?key=K            200 "true" or "false"
//   GET | PUT | DELETE /keys/{key}  the same on a resource; PUT stores the raw request body
//   (?ttl=):
//                                   201 if it created the key, 204 if it replaced a value
//   GET  /keys?prefix=P&limit=N&after=K  200 a JSON array of keys in byte order, one page;
//                                   "Link: <...>; rel=next" names the next page
//   ?encoding=base64                keys as base64, in the request and the answer (any bytes)
//   HEAD                            wherever a GET only reads
// Errors are one line of text, or application/problem+json (RFC 9457) for a
// client whose Accept prefers JSON.
//   GET  /stats                     200 a JSON object (the cache's Stats)
//   GET  /health                    200 "OK"
//   POST /purge, DELETE /keys       200 "OK": remove every key (never a GET)
// Query values are percent-decoded, and '+' in a query is a space
// (application/x-www-form-urlencoded): send a literal '+' as %2B. In a path
// (/keys/{key}) '+' is literal.
//
// Any number of servers and library users may share one cache at once, in
// any processes: a value set over HTTP is at once visible to Cache::get in
// every process, and the reverse (the cache's own guarantees, lilcache.h).
//
// This API lives in its own library, liblilcache_server (Boost.Beast, Asio
// and Boost.URL 1.81); liblilcache itself does not need Boost.
//
// Browsers: every answer is "Cache-Control: no-store" and "X-Content-Type-
// Options: nosniff"; requests from web pages of other sites and DNS-rebinding
// names are refused (ServerOptions::allowed_hosts, allowed_origins).
//
// Logging: the server appends to the cache's log file, <root>/<name>.log,
// at ServerOptions::loglevel, opening it through the cache's Env
// (Cache::env()). Every request is logged at debug level (method,
// path without the query, status, microseconds); protocol errors, refused
// authentication, refused hosts and origins (403), refused connections,
// timeouts and 5xx (with the whole error) at warn, at most 10 lines a second
// of each kind (then "N more ... lines suppressed").
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lilcache/export.h"
#include "lilcache/lilcache.h"

namespace lilcache {

// How a Server serves. A plain aggregate: ServerOptions{.token = "s3cret"}.
// Sizes and durations of 0 are invalid except where 0 has a stated meaning.
struct ServerOptions {
  // Bearer token: every request must carry the header
  // "Authorization: Bearer <token>" (compared in constant time), else 401.
  // nullopt (default) = $LILCACHE_TOKEN if set, else no authentication. An
  // empty token, here or in $LILCACHE_TOKEN (an unset variable in a script),
  // is an Error, never "no authentication". Serving a non-loopback address
  // without a token logs a loud warning at startup.
  std::optional<std::string> token{};

  // Host header values served besides the defaults, which are localhost,
  // 127.0.0.1 and [::1] on any port and the address bound (or, bound to
  // 0.0.0.0 or ::, every IP-address Host) and the host given to the Server
  // if it is a name. Entries: "name", "name:port", "10.0.0.5", "[fe80::1]:5001"
  // ("::1" too); without a port, any port. "*" accepts every Host (only
  // behind a proxy that checks it). A request with another Host is 403, one
  // without a Host (HTTP/1.1) is 400: a web page that rebinds its own DNS
  // name to this machine cannot reach the cache (docs/rest.md, "Browsers").
  // Throws Error (Server's constructor) for a malformed entry.
  std::vector<std::string> allowed_hosts{};

  // Origins of web pages that may drive the cache from a browser (CORS), as
  // "scheme://host[:port]" ("https://app.example", "http://localhost:3000").
  // A request whose Origin is another one is 403, and so is one with
  // "Sec-Fetch-Site: cross-site" and no allowed Origin (an <img>, a form):
  // by default no web page of any site can read or change the cache. An
  // allowed origin gets CORS answers (Access-Control-Allow-Origin, preflight
  // for PUT, DELETE and Authorization); the token, if set, still applies.
  // "null" and "*" are refused (Error), as is a malformed entry.
  std::vector<std::string> allowed_origins{};

  // Threads serving requests, each with its own event loop (io_context);
  // connections are spread over them. 0 (default) = the number of hardware
  // threads (std::thread::hardware_concurrency()).
  unsigned threads = 0;

  // Per-request deadline: from the first byte of a request until its response
  // is written. A client that is slower (slowloris) is disconnected without
  // an answer. Default 10 s.
  std::chrono::milliseconds request_timeout{std::chrono::seconds(10)};

  // How long a keep-alive connection may wait for the first byte of its next
  // request before it is closed. Default 30 s.
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(30)};

  // Open connections at most. One more is answered "503 Service Unavailable"
  // and closed. Each connection holds a file descriptor, so the cap is also
  // bounded by the process's soft RLIMIT_NOFILE (ulimit -n) when the server
  // starts: connections + refusal slots (503 answers, at most 64) + 64 + 4
  // per thread descriptors kept for the cache and the process <= the limit
  // (docs/rest.md). 0 (default) = 1000, or less if the limit requires; a
  // value over what the limit allows is lowered to it (logged at warn).
  // lilcache::start() and `lilcache serve` first raise the soft limit to the
  // hard one.
  std::size_t max_connections = 0;

  // Open connections from one client address at most (IPv6: one /64
  // prefix); one more is answered 503 and closed, so that one client cannot
  // hold every connection. 0 (default) = a quarter of max_connections (at
  // least 1). On a loopback address every client is 127.0.0.1 (or ::1): the
  // limit then bounds all local clients together.
  std::size_t max_connections_per_client = 0;

  // Memory for request bodies being received and responses being sent, for
  // the whole server: each body or response over 64 KiB is held from it
  // while it lives. A request whose body the budget cannot take is refused
  // with 503 and "Retry-After: 1" before its body is read (the connection
  // closes); a response it cannot take (a large value) is replaced by a 503
  // (the connection goes on). At least kMaxValueBytes (64 MiB), so that any
  // value can be stored and served. Default 256 MiB: with the value copy each
  // thread makes while it answers, the server's heap stays under about
  // memory_budget + threads * 64 MiB + 64 KiB per connection.
  std::size_t memory_budget = 256u * 1024 * 1024;

  // Largest request body (PUT /keys/{key}): a larger one is refused with 413
  // before it is read. Default kMaxValueBytes (64 MiB), so that any value
  // the cache accepts can be stored.
  std::size_t max_body_bytes = kMaxValueBytes;

  // Largest request line plus header fields. Over it: 414 if the request line
  // alone is too long, else 431. Default 8 KiB. Since /set carries the value
  // in the URL, this also bounds the values /set can store: use PUT
  // /keys/{key} for larger ones.
  std::size_t max_header_bytes = 8 * 1024;

  // How many keys a page of GET /keys lists when the request has no ?limit=
  // (the Link field then names the next page). Default 1000; at most 10,000.
  std::size_t keys_limit = 1000;

  // Log level of the server's lines in <root>/<name>.log ("trace" ...
  // "off", as Options::loglevel). "" (default) = $LILCACHE_LOGLEVEL or "info".
  std::string loglevel{};

  // Also write the server's log lines to stderr (the `lilcache serve` tool
  // sets this). Default false: the library never prints.
  bool log_to_stderr = false;
};

// An HTTP server for one Cache. The constructor binds and listens; run()
// serves until stop(). Not copyable or movable. The Cache must outlive it.
//
// Thread-safety: stop() and the accessors may be called from any thread, at
// any time; run() from one thread.
class Server {
 public:
  // Binds host:port and listens. host: an IPv4 or IPv6 address ("127.0.0.1",
  // "0.0.0.0", "::1") or a name, resolved now (its first address). port 0
  // picks a free port: see port(). Throws Error on an invalid option or a
  // host that does not resolve (invalid_argument), or a failed bind/listen
  // (the message names the address and the system's reason; busy for
  // "Address already in use", else by errno: permission, io).
  LILCACHE_EXPORT Server(Cache& cache, std::string_view host = "127.0.0.1",
                         std::uint16_t port = 5001, const ServerOptions& options = {});

  // Stops the server (as stop()) and, if run() is executing in another
  // thread, waits for it to return.
  LILCACHE_EXPORT ~Server();

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The port bound (the chosen one when constructed with port 0).
  LILCACHE_EXPORT std::uint16_t port() const;

  // The address bound, e.g. "127.0.0.1" or "::1".
  LILCACHE_EXPORT std::string address() const;

  // "http://<address>:<port>" ("http://[::1]:5001" for IPv6).
  LILCACHE_EXPORT std::string url() const;

  // Serves until stop(): runs ServerOptions::threads threads (the calling one
  // among them) and returns when every one has finished. Throws Error
  // (invalid_state) if called a second time.
  LILCACHE_EXPORT void run();

  // run(), and SIGINT or SIGTERM call stop() (through an asio::signal_set;
  // the default dispositions are restored when it returns).
  LILCACHE_EXPORT void run_until_signal();

  // Graceful stop: no new connections are accepted; idle keep-alive
  // connections are closed; a request in progress is finished (within its
  // deadline) and answered with "Connection: close". run() then returns.
  // Returns at once; callable before run() (run() then returns at once) and
  // any number of times.
  LILCACHE_EXPORT void stop();

  class Impl;  // lib/server.cc

 private:
  std::unique_ptr<Impl> impl_;
};

// Serves the process's default cache (the one lilcache::init() selected, see
// default_cache()) on host:port until SIGINT or SIGTERM, which stop it
// gracefully. Blocks. Throws Error as Server's constructor does. First raises
// the process's soft RLIMIT_NOFILE to its hard limit (see max_connections).
LILCACHE_EXPORT void start(std::string_view host = "127.0.0.1", std::uint16_t port = 5001,
                           const ServerOptions& options = {});

// Throws Error, naming the field, if Server's constructor would refuse
// `options` (an empty token here or in $LILCACHE_TOKEN, a malformed allowed
// host or origin, an unknown log level, a size or duration out of range).
// Opens, binds and logs nothing: for programs that check their
// configuration before they open the cache (`lilcache serve`).
LILCACHE_EXPORT void validate_server_options(const ServerOptions& options);

// Raises the process's soft RLIMIT_NOFILE to its hard limit, which start()
// does first and a program that constructs a Server may do too (the
// connection cap follows the limit, see max_connections). Returns the soft
// limit now. Never throws: the limit stays as it was if it cannot be raised.
LILCACHE_EXPORT std::uint64_t raise_file_limit();

}  // namespace lilcache
