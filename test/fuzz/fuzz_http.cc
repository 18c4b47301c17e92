// libFuzzer target: the REST server's request handling, socket-free
// (lib/http_connection.h, HandleRawHttp): any bytes, as if a client sent them
// and closed its end. Properties (docs/rest.md):
//  * it never crashes, hangs or throws;
//  * what it writes is a sequence of complete responses, each a status line
//    "HTTP/1.1 NNN Reason", header fields, one Content-Length, and exactly
//    that many body bytes (none for 100 Continue, nor for the answer to HEAD;
//    neither Content-Length nor body for 204);
//  * every status is one docs/rest.md lists, and never 500: the cache is
//    healthy, so no request may make it fail;
//  * every error body (4xx) is one line of text ending in a newline;
//  * every answer but 100 Continue has "Cache-Control: no-store" and
//    "X-Content-Type-Options: nosniff", and names no origin in
//    Access-Control-Allow-Origin but an allowed one (http://app.example);
//  * a 503 (the memory budget) carries "Retry-After: 1".
//
// Input: byte 0 flags (bit 0: the server requires the token "tok"; bit 1:
// small limits, 256-byte header and 64-byte body, instead of 8 KiB and
// 64 KiB; bit 2: an exhausted memory budget, so that every body or response
// over 64 KiB, a Content-Length announcing one, and every pop get 503), then
// the bytes the client sends. Chunk headers and trailer sections are bounded
// by the header limit (400, 431). The server allows the origin
// http://app.example and the Host cache.lan besides the loopback defaults
// (docs/rest.md, "Browsers"). The cache is purged before each input, so that
// each input starts from an empty cache.
#include <cctype>
#include <charconv>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "fuzz_util.h"
#include "server/http_connection.h"
#include "server/http_handler.h"
#include "server/http_limits.h"

using namespace lilcache;

namespace {

struct Server {
  Server()
      : cache(Cache::open(fuzz::kName, {.root = fuzz::Root(), .loglevel = "off"})),
        open(cache, Policy("")),
        authenticated(cache, Policy("tok")) {}
  static HttpPolicy Policy(std::string token) {
    return {.token = std::move(token),
            .keys_limit = 100,
            .allowed_hosts = {"cache.lan"},
            .allowed_origins = {"http://app.example"},
            .bound_address = "127.0.0.1"};
  }
  Cache cache;
  HttpHandler open, authenticated;
};

// "" if `out` is a sequence of well-formed responses, else why not.
// `bad`: the offsets (ends of `out`'s views, which share one buffer) from
// which the rest is already known not to parse: where a body could be
// absent (the answer to a HEAD) or present, both readings are tried, and
// each suffix is judged once however many ambiguous answers precede it (a
// bound on the guesses instead rejected valid runs of 9+ HEADs).
std::string Check(std::string_view out, std::set<const char*>* bad = nullptr) {
  std::set<const char*> own;
  if (bad == nullptr) bad = &own;
  static const std::set<unsigned> kStatuses = {100, 200, 201, 204, 400, 401, 403, 404, 405,
                                               409, 412, 413, 414, 415, 431, 501, 503};
  while (!out.empty()) {
    if (!out.starts_with("HTTP/1.1 ") || out.size() < 13 || out[12] != ' ') {
      return "not a status line: " + std::string(out.substr(0, 40));
    }
    unsigned status = 0;
    auto [p, ec] = std::from_chars(out.data() + 9, out.data() + 12, status);
    if (ec != std::errc() || p != out.data() + 12) return "bad status code";
    if (kStatuses.count(status) == 0) {
      return "status " + std::to_string(status) + ": " + std::string(out.substr(0, 200));
    }
    std::size_t end = out.find("\r\n\r\n");
    if (end == std::string_view::npos) return "a response header without its end";
    std::string_view head = out.substr(0, end + 2);
    out.remove_prefix(end + 4);
    if (status == 100) continue;
    std::size_t length = 0;
    int lengths = 0;
    for (std::size_t at = head.find("\r\n") + 2; at < head.size();) {
      std::size_t eol = head.find("\r\n", at);
      std::string_view field = head.substr(at, eol - at);
      at = eol + 2;
      if (field.starts_with("Content-Length: ")) {
        ++lengths;
        auto [q, ec2] = std::from_chars(field.data() + 16, field.data() + field.size(), length);
        if (ec2 != std::errc() || q != field.data() + field.size()) return "bad length";
      }
    }
    // 204: neither Content-Length nor a body (RFC 9110 8.6).
    if (lengths != (status == 204 ? 0 : 1)) {
      return std::to_string(lengths) + " Content-Length fields in a " + std::to_string(status);
    }
    if (head.find("\r\nCache-Control: no-store\r\n") == std::string_view::npos ||
        head.find("\r\nX-Content-Type-Options: nosniff\r\n") == std::string_view::npos) {
      return "an answer without no-store or nosniff: " + std::string(head);
    }
    for (std::size_t at = head.find("\r\nAccess-Control-Allow-Origin: ");
         at != std::string_view::npos;
         at = head.find("\r\nAccess-Control-Allow-Origin: ", at + 1)) {
      const std::size_t from = at + 31;
      const std::string_view origin = head.substr(from, head.find("\r\n", from) - from);
      std::string lower(origin);
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (!lower.starts_with("http://app.example")) {
        return "CORS answer to a origin not allowed: " + std::string(origin);
      }
    }
    if (status == 503 && head.find("\r\nRetry-After: 1\r\n") == std::string_view::npos) {
      return "a 503 without Retry-After";
    }
    if (status == 204) continue;
    // The answer to a HEAD request has no body; its length is that of the
    // body it would have. An error body is the server's text, never the
    // start of a response; a value (a 2xx of GET) may be anything, so where
    // it could be either, both readings are tried.
    const bool could_be_head = out.empty() || out.starts_with("HTTP/1.1 ");
    if (could_be_head && (status >= 400 || length == 0 || out.empty())) continue;
    if (could_be_head && bad->count(out.data()) == 0) {
      if (Check(out, bad).empty()) return "";
      bad->insert(out.data());
    }
    if (out.size() < length) return "a body shorter than its Content-Length";
    std::string_view body = out.substr(0, length);
    out.remove_prefix(length);
    if (status >= 400) {
      if (body.empty() || body.back() != '\n' || body.find('\n') != body.size() - 1) {
        return "error body of status " + std::to_string(status) +
               " is not one line ending in a newline";
      }
    }
  }
  return "";
}

// Checks that `out` is a sequence of well-formed responses.
void CheckResponses(std::string_view out) {
  const std::string why = Check(out);
  if (!why.empty()) fuzz::Fail(why);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Server* server = new Server();  // one cache for the whole run
  if (size < 1) return 0;
  const std::uint8_t flags = data[0];
  const HttpHandler& handler = (flags & 1) != 0 ? server->authenticated : server->open;
  static MemoryBudget exhausted(0);
  HttpLimits limits = (flags & 2) != 0
                          ? HttpLimits{.max_header_bytes = 256, .max_body_bytes = 64}
                          : HttpLimits{.max_header_bytes = 8192, .max_body_bytes = 65536};
  if ((flags & 4) != 0) {
    limits.budget = &exhausted;
    limits.max_body_bytes = 1 << 20;  // bodies over 64 KiB reach the budget
  }
  server->cache.purge();
  std::string_view raw(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string out;
  try {
    out = HandleRawHttp(handler, raw, limits);
  } catch (const std::exception& e) {
    fuzz::Fail(std::string("HandleRawHttp threw: ") + e.what());
  }
  CheckResponses(out);
  return 0;
}
