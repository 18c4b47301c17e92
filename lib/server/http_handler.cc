#include "server/http_handler.h"

#include <algorithm>
#include <boost/beast/http/status.hpp>
#include <boost/url/authority_view.hpp>
#include <boost/url/decode_view.hpp>
#include <boost/url/encoding_opts.hpp>
#include <boost/url/ipv4_address.hpp>
#include <boost/url/ipv6_address.hpp>
#include <boost/url/param.hpp>
#include <boost/url/params_encoded_view.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/pct_string_view.hpp>
#include <charconv>
#include <chrono>
#include <cstring>
#include <exception>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "server/http_batch.h"
#include "server/http_limits.h"
#include "server/http_preconditions.h"
#include "util/ascii.h"

namespace lilcache {
namespace {

namespace http = boost::beast::http;
namespace urls = boost::urls;

constexpr std::string_view kKeysPrefix = "/keys/";

// The operations on one key, /keys/{key}/OP, and the method each takes.
struct KeyOperation {
  std::string_view suffix;
  Endpoint endpoint;
  http::verb method;
  std::string_view allow;
};
constexpr KeyOperation kKeyOperations[] = {
    {"/increment", Endpoint::kIncrement, http::verb::post, "POST"},
    {"/ttl", Endpoint::kTtl, http::verb::get, "GET, HEAD"},
    {"/touch", Endpoint::kTouch, http::verb::post, "POST"},
    {"/persist", Endpoint::kPersist, http::verb::post, "POST"},
};

// Whether a Content-Type is application/json (any case, any parameters).
bool IsJson(std::string_view content_type) {
  content_type = content_type.substr(0, content_type.find(';'));
  while (!content_type.empty() && (content_type.back() == ' ' || content_type.back() == '\t')) {
    content_type.remove_suffix(1);
  }
  while (!content_type.empty() && (content_type.front() == ' ' || content_type.front() == '\t')) {
    content_type.remove_prefix(1);
  }
  return EqualsIgnoreCase(content_type, "application/json");
}

HttpResponse Text(unsigned status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

// The seed's short answers end with a newline, so that a shell prompt after
// curl's output starts on its own line.
HttpResponse Ok() { return Text(200, "OK\n"); }
HttpResponse NotFound() { return Text(404, "not found\n"); }
HttpResponse BadRequest(const std::string& why) { return Text(400, why + "\n"); }
HttpResponse Forbidden(const std::string& why) { return Text(403, why + "\n"); }

// A refusal after which the connection closes: the bytes after this
// request's header cannot be told apart from a next request.
HttpResponse BadFraming(unsigned status, const std::string& why) {
  HttpResponse r = Text(status, why + "\n");
  r.close = true;
  return r;
}

HttpResponse Value(std::string value) {
  HttpResponse r;
  r.body = std::move(value);
  r.content_type = kOctetStream;
  return r;
}

HttpResponse MethodNotAllowed(std::string_view allow) {
  HttpResponse r = Text(405, "method not allowed; allowed: " + std::string(allow) + "\n");
  r.allow = allow;
  return r;
}

// The query parameters the endpoints use, percent-decoded ('+' = space).
struct Params {
  std::optional<std::string> key, value, ttl, prefix, limit, by, initial, after, encoding;
};

// Fills p from the query; an error message for a repeated parameter.
std::optional<std::string> ParseParams(const urls::url_view& url, Params& p) {
  urls::encoding_opts form;
  form.space_as_plus = true;
  for (const urls::param_pct_view param : url.encoded_params()) {
    const urls::decode_view name = *param.key;
    std::optional<std::string>* slot = nullptr;
    if (name == "key") {
      slot = &p.key;
    } else if (name == "value") {
      slot = &p.value;
    } else if (name == "ttl") {
      slot = &p.ttl;
    } else if (name == "prefix") {
      slot = &p.prefix;
    } else if (name == "limit") {
      slot = &p.limit;
    } else if (name == "by") {
      slot = &p.by;
    } else if (name == "initial") {
      slot = &p.initial;
    } else if (name == "after") {
      slot = &p.after;
    } else if (name == "encoding") {
      slot = &p.encoding;
    } else {
      continue;  // unknown parameters are ignored (e.g. cache busters)
    }
    if (slot->has_value()) {
      return "parameter given twice: " + param.key.decode();
    }
    if (!param.has_value) {
      *slot = std::string();
    } else if (param.value.decoded_size() == param.value.size() &&
               param.value.find('+') == std::string_view::npos) {
      slot->emplace(param.value.data(), param.value.size());  // nothing to decode: one copy
    } else {
      *slot = param.value.decode(form);
    }
  }
  return std::nullopt;
}

// 400 for a missing key. The cache judges the key itself (an empty key is
// invalid_argument, a long one limit: see StatusOf).
std::optional<HttpResponse> CheckKey(const std::optional<std::string>& key) {
  if (!key.has_value()) return BadRequest("missing parameter: key");
  return std::nullopt;
}

// A parameter's text quoted in a one-line error: at most 64 bytes, control
// characters (a newline would end the line) as '?'.
std::string Shown(std::string_view text) {
  std::string shown(text.substr(0, 64));
  for (char& c : shown) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return "\"" + shown + (text.size() > 64 ? "...\"" : "\"");
}

// ?encoding=: whether the keys of the request and of the answer are base64
// (RFC 4648, with padding: Base64Encode) instead of their bytes. An error
// response for an encoding other than "base64".
std::optional<HttpResponse> ParseEncoding(const std::optional<std::string>& text, bool* base64) {
  *base64 = false;
  if (!text.has_value()) return std::nullopt;
  if (*text != "base64") {
    return BadRequest("bad encoding " + Shown(*text) +
                      ": expected base64 (or no encoding parameter)");
  }
  *base64 = true;
  return std::nullopt;
}

// Replaces a base64 key (already percent-decoded) by the bytes it encodes.
// A space is taken as '+' (base64 has no space; an unescaped '+' in a query
// arrives as one). An error response naming `what` if it is no base64.
std::optional<HttpResponse> DecodeBase64Key(std::string_view what, std::string* text) {
  std::string b64 = *text;
  std::replace(b64.begin(), b64.end(), ' ', '+');
  std::optional<std::string> bytes = Base64Decode(b64);
  if (!bytes) {
    return BadRequest("bad " + std::string(what) + " " + Shown(*text) +
                      ": not base64 (RFC 4648, standard alphabet, with = padding), as "
                      "encoding=base64 asks");
  }
  *text = std::move(*bytes);
  return std::nullopt;
}

// With ?encoding=base64, decodes the key-valued parameters (key, prefix,
// after) in place; *base64 tells whether the answer's keys are base64 too.
std::optional<HttpResponse> DecodeKeyParams(Params& p, bool* base64) {
  if (auto bad = ParseEncoding(p.encoding, base64)) return bad;
  if (!*base64) return std::nullopt;
  if (p.key) {
    if (auto bad = DecodeBase64Key("key", &*p.key)) return bad;
  }
  if (p.prefix) {
    if (auto bad = DecodeBase64Key("prefix", &*p.prefix)) return bad;
  }
  if (p.after) {
    if (auto bad = DecodeBase64Key("after", &*p.after)) return bad;
  }
  return std::nullopt;
}

// Parses ?ttl= into *ttl (nullopt = none given). An error response for a bad
// duration; 0 is left to set(), which refuses it (invalid_argument).
std::optional<HttpResponse> ParseTtl(const std::optional<std::string>& text,
                                     std::optional<std::chrono::milliseconds>* ttl) {
  ttl->reset();
  if (!text.has_value()) return std::nullopt;
  try {
    *ttl = parse_duration(*text);
  } catch (const Error& e) {
    return BadRequest(std::string("bad ttl: ") + e.what());
  }
  return std::nullopt;
}

std::optional<HttpResponse> ParseLimit(const std::optional<std::string>& text, std::size_t* limit) {
  if (!text.has_value()) return std::nullopt;
  const char* end = text->data() + text->size();
  auto [ptr, ec] = std::from_chars(text->data(), end, *limit);
  if (text->empty() || ec != std::errc() || ptr != end) {
    return BadRequest("bad limit " + Shown(*text) + ": expected a non-negative integer");
  }
  return std::nullopt;
}

HttpResponse Set(Cache& cache, const std::string& key, std::string_view value,
                 const std::optional<std::string>& ttl_text) {
  std::optional<std::chrono::milliseconds> ttl;
  if (auto bad = ParseTtl(ttl_text, &ttl)) return *bad;
  if (ttl.has_value()) {
    cache.set(key, value, *ttl);
  } else {
    cache.set(key, value);
  }
  return Ok();
}

// The key of /keys/{key}[/OP]: the path after "/keys/" less the
// operation's suffix, percent-decoded ('+' literal); nullopt if malformed.
std::optional<std::string> KeyOfPath(const urls::url_view& url, std::size_t suffix) {
  std::string_view encoded = url.encoded_path().substr(kKeysPrefix.size());
  encoded.remove_suffix(std::min(suffix, encoded.size()));
  urls::result<urls::pct_string_view> pct = urls::make_pct_string_view(encoded);
  if (!pct) return std::nullopt;
  return pct->decode();
}

// Parses an int64 parameter into *n (left alone if the parameter is absent).
std::optional<HttpResponse> ParseInt64(const std::optional<std::string>& text,
                                       std::string_view name, std::int64_t* n) {
  if (!text.has_value()) return std::nullopt;
  const char* end = text->data() + text->size();
  auto [ptr, ec] = std::from_chars(text->data(), end, *n);
  if (text->empty() || ec != std::errc() || ptr != end) {
    return BadRequest("bad " + std::string(name) + " \"" + *text +
                      "\": expected a decimal int64 such as 5 or -5");
  }
  return std::nullopt;
}

// 412: the condition of If-Match or If-None-Match does not hold.
HttpResponse PreconditionFailed(std::string_view why) {
  return Text(412, "precondition failed: " + std::string(why) + "\n");
}

bool Listed(const EntityTags& tags, std::uint64_t version) {
  return std::find(tags.versions.begin(), tags.versions.end(), version) != tags.versions.end();
}

// The value's ETag field, readable by a page of an allowed origin.
void AddETag(HttpResponse& r, std::uint64_t version, std::string_view cors_origin) {
  r.fields += "ETag: " + ETagOf(version) + "\r\n";
  if (!cors_origin.empty()) r.fields += "Access-Control-Expose-Headers: ETag\r\n";
}

HttpResponse Json(const nlohmann::json& j) {
  HttpResponse r;
  // Keys are arbitrary bytes; invalid UTF-8 is replaced by U+FFFD.
  r.body = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  r.body += '\n';
  r.content_type = kJson;
  return r;
}

nlohmann::json StatsJson(const Cache& cache, const Stats& s) {
  return {{"name", cache.name()},
          {"hits", s.hits},
          {"misses", s.misses},
          {"sets", s.sets},
          {"deletes", s.deletes},
          {"expired", s.expired},
          {"keys", s.keys},
          {"bytes_live", s.bytes_live},
          {"bytes_dead", s.bytes_dead},
          {"bytes_file", s.bytes_file},
          {"generation", s.generation},
          {"index_slots", s.index_slots},
          {"index_used", s.index_used},
          {"processes", s.processes},
          {"compactions", s.compactions},
          {"snapshots", s.snapshots},
          {"last_snapshot_ms", s.last_snapshot_ms},
          {"evictions", s.evictions},
          {"max_bytes", s.max_bytes}};
}

// Strips optional white space (RFC 9110: SP and HTAB) from both ends.
std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A Host value or an allow-list entry, parsed: "name", "name:port",
// "1.2.3.4[:port]", "[v6][:port]", and (an entry or a sloppy client) a bare
// IPv6 address "::1". Names in lower case without a trailing dot, IPv6 in
// brackets in canonical form (RFC 5952), so that equal hosts compare equal.
struct HostPort {
  std::string host;
  int port = -1;  // -1: none given
  bool ip = false;
};

std::optional<HostPort> ParseHostPort(std::string_view text) {
  text = TrimOws(text);
  if (text.empty()) return std::nullopt;
  HostPort hp;
  if (urls::result<urls::ipv6_address> v6 = urls::parse_ipv6_address(text)) {
    hp.host = "[" + v6->to_string() + "]";
    hp.ip = true;
    return hp;
  }
  urls::result<urls::authority_view> a = urls::parse_authority(text);
  if (!a || a->has_userinfo()) return std::nullopt;
  switch (a->host_type()) {
    case urls::host_type::ipv4:
      hp.host = a->host_ipv4_address().to_string();
      hp.ip = true;
      break;
    case urls::host_type::ipv6:
      hp.host = "[" + a->host_ipv6_address().to_string() + "]";
      hp.ip = true;
      break;
    case urls::host_type::name: {
      const std::string_view name = a->encoded_host();
      if (name.empty() || name.find('%') != std::string_view::npos) return std::nullopt;
      hp.host = AsciiLower(name);
      if (hp.host.size() > 1 && hp.host.back() == '.') hp.host.pop_back();  // "localhost."
      break;
    }
    default:  // IPvFuture, or no host
      return std::nullopt;
  }
  if (a->has_port() && !a->port().empty()) {  // "host:" is "host" (RFC 3986)
    const std::string_view port = a->port();
    unsigned n = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
    if (ec != std::errc() || end != port.data() + port.size() || n > 65535) return std::nullopt;
    hp.port = static_cast<int>(n);
  }
  return hp;
}

// An origin (RFC 6454) as "scheme://host[:port]", lower case, the default
// port of http and https dropped; nullopt if `text` is not one (a path other
// than "/", a query, a fragment or user info; "null").
std::optional<std::string> NormalizeOrigin(std::string_view text) {
  text = TrimOws(text);
  if (!text.empty() && text.back() == '/') text.remove_suffix(1);  // allow-list entries
  const std::size_t colon = text.find("://");
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  const std::string scheme = AsciiLower(text.substr(0, colon));
  for (char c : scheme) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
    if (!ok) return std::nullopt;
  }
  const std::string_view authority = text.substr(colon + 3);
  if (authority.find_first_of("/?#@ \t") != std::string_view::npos) return std::nullopt;
  std::optional<HostPort> hp = ParseHostPort(authority);
  if (!hp || (authority.front() != '[' && hp->host.front() == '[')) return std::nullopt;
  if ((scheme == "http" && hp->port == 80) || (scheme == "https" && hp->port == 443)) {
    hp->port = -1;
  }
  std::string origin = scheme + "://" + hp->host;
  if (hp->port >= 0) origin += ":" + std::to_string(hp->port);
  return origin;
}

// The CORS fields of an answer to an allowed origin.
void AddCors(HttpResponse& r, std::string_view origin) {
  r.fields += "Access-Control-Allow-Origin: ";
  r.fields += origin;
  r.fields += "\r\nVary: Origin\r\n";
}

}  // namespace

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // Every byte of b is visited whatever a holds; a's bytes past b's length
  // are never read, and a length mismatch is folded in at the end.
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  for (std::size_t i = 0; i < b.size(); ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0u;
    diff |= x ^ static_cast<unsigned char>(b[i]);
  }
  return diff == 0;
}

std::string_view StatusReason(unsigned status) {
  const std::string_view r = http::obsolete_reason(static_cast<http::status>(status));
  return r.empty() || r.front() == '<' ? std::string_view("Unknown") : r;
}

void CheckAllowedHost(std::string_view host) {
  if (host == "*") return;
  if (!ParseHostPort(host)) {
    throw Error(ErrorCode::invalid_argument,
                "invalid allowed host \"" + std::string(host) +
                    "\": expected a name, an IPv4 address or an [IPv6] address, each with an "
                    "optional :port, or \"*\"");
  }
}

void CheckAllowedOrigin(std::string_view origin) {
  const std::string text(origin);
  if (TrimOws(origin) == "null") {
    throw Error(ErrorCode::invalid_argument,
                "invalid allowed origin \"null\": every sandboxed page and local file sends it");
  }
  if (TrimOws(origin) == "*") {
    throw Error(ErrorCode::invalid_argument,
                "invalid allowed origin \"*\": it would let every web page drive the cache; "
                "list the origins of your pages");
  }
  if (!NormalizeOrigin(origin)) {
    throw Error(ErrorCode::invalid_argument,
                "invalid allowed origin \"" + text +
                    "\": expected scheme://host[:port], e.g. https://app.example");
  }
}

std::string WithoutPaths(std::string_view message, std::string_view root) {
  // A path starts at a '/' at the start or after one of these; the root
  // (which may hold any character) wherever it is.
  auto opens = [&](std::size_t at) {
    return at == 0 || std::strchr(" \t\"'(=[<,", message[at - 1]) != nullptr;
  };
  std::string out;
  std::size_t i = 0;
  while (i < message.size()) {
    const bool at_root = root.size() > 1 && root.front() == '/' &&
                         message.compare(i, root.size(), root) == 0 && opens(i);
    if (!at_root && !(message[i] == '/' && opens(i))) {
      out += message[i++];
      continue;
    }
    // The path goes on to a space, a quote or a closing bracket, or to a ':'
    // or ',' that ends a clause ("open /x/y.meta: Permission denied").
    std::size_t j = at_root ? i + root.size() : i;
    while (j < message.size()) {
      const char c = message[j];
      if (std::strchr(" \t\r\n\"')]>", c) != nullptr) break;
      if ((c == ':' || c == ',') && (j + 1 == message.size() || message[j + 1] == ' ')) break;
      ++j;
    }
    out += "<path>";
    i = j;
  }
  return out;
}

HttpHandler::HttpHandler(Cache& cache, std::string token, std::size_t keys_limit)
    : HttpHandler(cache, HttpPolicy{.token = std::move(token), .keys_limit = keys_limit}) {}

HttpHandler::HttpHandler(Cache& cache, HttpPolicy policy)
    : cache_(cache), token_(std::move(policy.token)), keys_limit_(policy.keys_limit) {
  // The loopback names and addresses, on any port: a page of another site
  // cannot make a browser send them (DNS rebinding needs a name the
  // attacker's DNS answers for).
  for (const char* host : {"localhost", "127.0.0.1", "[::1]"}) hosts_.push_back({host, -1});
  auto add = [this](std::string_view entry) {
    if (entry == "*") {
      any_host_ = true;
      return;
    }
    CheckAllowedHost(entry);
    const HostPort hp = *ParseHostPort(entry);
    hosts_.push_back({hp.host, hp.port});
  };
  for (const std::string& h : policy.allowed_hosts) add(h);
  if (!policy.bound_address.empty()) {
    std::optional<HostPort> bound = ParseHostPort(policy.bound_address);
    if (bound && (bound->host == "0.0.0.0" || bound->host == "[::]")) {
      any_ip_literal_ = true;  // the machine's addresses cannot all be known
    } else if (bound) {
      hosts_.push_back({bound->host, -1});
    }
  }
  if (!policy.bound_name.empty()) {
    std::optional<HostPort> name = ParseHostPort(policy.bound_name);
    if (name && !name->ip) hosts_.push_back({name->host, -1});
  }
  for (const std::string& o : policy.allowed_origins) {
    CheckAllowedOrigin(o);
    origins_.push_back(*NormalizeOrigin(o));
  }
}

std::optional<HttpResponse> HttpHandler::CheckFraming(const HttpRequestHeader& header) const {
  // Beast frames a request by its last Transfer-Encoding field only if that
  // coding is chunked; otherwise it reads no body, and the body would run as
  // the next request (smuggling behind a proxy that framed it otherwise).
  // RFC 9112 6.1 and 6.3: 400 and close.
  auto [first, last] = header.equal_range(http::field::transfer_encoding);
  if (first == last) return std::nullopt;
  std::vector<std::string_view> codings;
  for (auto it = first; it != last; ++it) {
    std::string_view list = it->value();
    while (!list.empty()) {
      const std::size_t comma = list.find(',');
      const std::string_view coding = TrimOws(list.substr(0, comma));
      if (!coding.empty()) codings.push_back(coding);
      list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    }
  }
  if (header.version() < 11) {
    return BadFraming(400, "Transfer-Encoding in an HTTP/1.0 request (RFC 9112 6.1)");
  }
  if (header.count(http::field::content_length) > 0) {
    return BadFraming(400, "both Transfer-Encoding and Content-Length (RFC 9112 6.3)");
  }
  if (codings.empty() || !EqualsIgnoreCase(codings.back(), "chunked")) {
    return BadFraming(400, "Transfer-Encoding whose last coding is not chunked (RFC 9112 6.3)");
  }
  for (std::size_t i = 0; i + 1 < codings.size(); ++i) {
    if (EqualsIgnoreCase(codings[i], "chunked")) {
      return BadFraming(400, "Transfer-Encoding chunked more than once (RFC 9112 7)");
    }
  }
  if (codings.size() > 1) {
    return BadFraming(501, "unsupported transfer coding (only chunked is)");
  }
  return std::nullopt;
}

std::optional<HttpResponse> HttpHandler::CheckHost(const HttpRequestHeader& header) const {
  // RFC 9112 3.2: 400 for a missing Host (HTTP/1.1), more than one, or an
  // invalid one. An HTTP/1.0 request may have none (no browser sends one).
  auto [first, last] = header.equal_range(http::field::host);
  const auto count = std::distance(first, last);
  if (count == 0) {
    if (header.version() < 11) return std::nullopt;
    return BadRequest("missing Host header (HTTP/1.1 requires one)");
  }
  if (count > 1) return BadRequest("more than one Host header");
  if (HostListed(first->value())) return std::nullopt;
  const std::optional<HostPort> hp = ParseHostPort(first->value());
  if (!hp) return BadRequest("malformed Host header");
  if (any_host_ || (hp->ip && any_ip_literal_)) return std::nullopt;
  for (const HostPattern& p : hosts_) {
    if (p.host == hp->host && (p.port < 0 || p.port == hp->port)) return std::nullopt;
  }
  std::string shown = hp->host;
  if (hp->port >= 0) shown += ":" + std::to_string(hp->port);
  return Forbidden("Host " + shown +
                   " is not allowed (a DNS rebinding attack?); allow it with --allow-host or "
                   "ServerOptions::allowed_hosts");
}

bool HttpHandler::HostListed(std::string_view value) const {
  // Every request carries the same few Host values ("127.0.0.1:5001"): a
  // value that is byte for byte a listed host, with or without a decimal
  // port, is accepted without parsing it. It is what ParseHostPort() would
  // make of it (a listed host is in its canonical form); any other value,
  // in another case or form, takes the full check.
  for (const HostPattern& p : hosts_) {
    if (!value.starts_with(p.host)) continue;
    const std::string_view port = value.substr(p.host.size());
    if (port.empty()) return p.port < 0;
    if (port.size() < 2 || port.size() > 6 || port.front() != ':') continue;
    unsigned n = 0;
    auto [end, ec] = std::from_chars(port.data() + 1, port.data() + port.size(), n);
    if (ec != std::errc() || end != port.data() + port.size() || n > 65535) continue;
    return p.port < 0 || p.port == static_cast<int>(n);
  }
  return false;
}

bool HttpHandler::OriginAllowed(std::string_view origin) const {
  if (origins_.empty()) return false;
  const std::optional<std::string> normal = NormalizeOrigin(origin);
  if (!normal) return false;
  return std::find(origins_.begin(), origins_.end(), *normal) != origins_.end();
}

std::variant<Route, HttpResponse> HttpHandler::RouteOf(const HttpRequestHeader& header) const {
  std::variant<Route, HttpResponse> routed = Admit(header);
  if (auto* refused = std::get_if<HttpResponse>(&routed)) {
    if (refused->status >= 400 && AcceptPrefersJson(header[http::field::accept])) {
      ErrorAsProblem(*refused);
    }
  }
  return routed;
}

std::variant<Route, HttpResponse> HttpHandler::Admit(const HttpRequestHeader& header) const {
  if (auto refused = CheckFraming(header)) return std::move(*refused);
  if (auto refused = CheckHost(header)) return std::move(*refused);

  // Browsers name the page that sent a request in Origin (every CORS or
  // non-GET request) and tell whether it is another site in Sec-Fetch-Site
  // (every request, <img> included). A page may drive the cache only if its
  // origin is allowed; other sites' pages are refused before anything runs.
  std::string_view cors;
  auto [origin, origin_end] = header.equal_range(http::field::origin);
  const auto origins = std::distance(origin, origin_end);
  if (origins > 1) return Forbidden("more than one Origin header");
  if (origins == 1) {
    if (!OriginAllowed(origin->value())) {
      return Forbidden(
          "cross-origin request refused: its Origin is not allowed (see --allow-origin, "
          "ServerOptions::allowed_origins)");
    }
    cors = origin->value();
  } else {
    auto [site, site_end] = header.equal_range("Sec-Fetch-Site");
    for (; site != site_end; ++site) {
      if (EqualsIgnoreCase(TrimOws(site->value()), "cross-site")) {
        return Forbidden("cross-site request refused (Sec-Fetch-Site: cross-site)");
      }
    }
  }

  std::variant<Route, HttpResponse> routed = Dispatch(header, !cors.empty());
  if (!cors.empty()) {
    if (auto* r = std::get_if<HttpResponse>(&routed)) {
      AddCors(*r, cors);
    } else {
      std::get<Route>(routed).cors_origin = cors;
    }
  }
  return routed;
}

std::variant<Route, HttpResponse> HttpHandler::Dispatch(const HttpRequestHeader& header,
                                                        bool cors) const {
  // A CORS preflight (from an allowed origin: checked above) carries no
  // Authorization: it is answered before the token is looked at.
  if (cors && header.method() == http::verb::options &&
      header.count("Access-Control-Request-Method") > 0) {
    HttpResponse r = Text(200, "");
    r.fields =
        "Access-Control-Allow-Methods: GET, PUT, DELETE, POST\r\n"
        "Access-Control-Allow-Headers: Authorization, Content-Type, If-Match, If-None-Match\r\n"
        "Access-Control-Max-Age: 600\r\n";
    // Chrome's Private Network Access: a public page asking for loopback.
    if (EqualsIgnoreCase(TrimOws(header["Access-Control-Request-Private-Network"]), "true")) {
      r.fields += "Access-Control-Allow-Private-Network: true\r\n";
    }
    return r;
  }

  if (!token_.empty()) {
    // RFC 6750: "Bearer" (any case), one or more spaces, the token.
    std::string_view auth = header[http::field::authorization];
    bool ok = false;
    if (StartsWithIgnoreCase(auth, "bearer ")) {
      auth.remove_prefix(7);
      while (!auth.empty() && auth.front() == ' ') auth.remove_prefix(1);
      ok = ConstantTimeEquals(auth, token_);
    }
    if (!ok) {
      HttpResponse r = Text(401, "missing or wrong token (Authorization: Bearer <token>)\n");
      r.challenge = true;
      return r;
    }
  }

  urls::result<urls::url_view> url = urls::parse_origin_form(header.target());
  if (!url) return BadRequest("malformed request target: " + url.error().message());

  const std::string_view path = url->encoded_path();
  const http::verb method = header.method();
  auto only = [&](Endpoint e, http::verb allowed,
                  std::string_view allow) -> std::variant<Route, HttpResponse> {
    if (method != allowed) return MethodNotAllowed(allow);
    return Route{e, *url};
  };
  // A GET that only reads also takes HEAD (RFC 9110 9.3.2: the same answer
  // without its body). The seed's GETs that write (/set, /pop, /delete) do
  // not: HEAD is safe, and a HEAD that popped would lose the value.
  auto read = [&](Endpoint e) -> std::variant<Route, HttpResponse> {
    if (method != http::verb::get && method != http::verb::head) {
      return MethodNotAllowed("GET, HEAD");
    }
    return Route{e, *url};
  };
  if (path == "/get") return read(Endpoint::kGet);
  if (path == "/set") return only(Endpoint::kSet, http::verb::get, "GET");
  if (path == "/pop") return only(Endpoint::kPop, http::verb::get, "GET");
  if (path == "/delete") return only(Endpoint::kDelete, http::verb::get, "GET");
  if (path == "/contains") return read(Endpoint::kContains);
  if (path == "/stats") return read(Endpoint::kStats);
  if (path == "/health") return read(Endpoint::kHealth);
  if (path == "/purge") return only(Endpoint::kPurge, http::verb::post, "POST");
  if (path == "/keys") {
    if (method != http::verb::get && method != http::verb::head && method != http::verb::delete_) {
      return MethodNotAllowed("GET, HEAD, DELETE");
    }
    return Route{Endpoint::kKeys, *url};
  }
  if (path == "/batch/get" || path == "/batch/set") {
    if (method != http::verb::post) return MethodNotAllowed("POST");
    // JSON only: a web page cannot send it without a CORS preflight, which
    // only an allowed origin passes (a form can send text/plain,
    // urlencoded or multipart); and the body is not read if refused.
    if (!IsJson(header[http::field::content_type])) {
      return Text(415, "a batch body is JSON: send Content-Type: application/json\n");
    }
    Route r{path == "/batch/get" ? Endpoint::kBatchGet : Endpoint::kBatchSet, *url};
    r.max_body_bytes = kMaxBatchBodyBytes;
    return r;
  }
  if (path.substr(0, kKeysPrefix.size()) == kKeysPrefix) {
    // /keys/{key}/OP names an operation on the key when OP follows a literal
    // '/' (a key ending in "/ttl" is sent with that '/' as %2F).
    const std::string_view rest = path.substr(kKeysPrefix.size());
    for (const KeyOperation& op : kKeyOperations) {
      if (!rest.ends_with(op.suffix)) continue;
      return op.method == http::verb::get ? read(op.endpoint)
                                          : only(op.endpoint, op.method, op.allow);
    }
    if (method != http::verb::get && method != http::verb::head && method != http::verb::put &&
        method != http::verb::delete_) {
      return MethodNotAllowed("GET, HEAD, PUT, DELETE");
    }
    return Route{Endpoint::kKey, *url};
  }
  return Text(404, "no such endpoint (see docs/rest.md)\n");
}

namespace {

// The q of the most specific range of an Accept value matching type/subtype
// (RFC 9110 12.5.1), and how specific it is: 3 type/subtype, 2 type/*,
// 1 */*, 0 none (q 0).
struct AcceptMatch {
  double q = 0;
  int specificity = 0;
};
AcceptMatch MatchAccept(std::string_view accept, std::string_view type, std::string_view subtype) {
  AcceptMatch best;
  while (!accept.empty()) {
    const std::size_t comma = accept.find(',');
    std::string_view range = accept.substr(0, comma);
    accept = comma == std::string_view::npos ? std::string_view() : accept.substr(comma + 1);
    const std::size_t semi = range.find(';');
    std::string_view params =
        semi == std::string_view::npos ? std::string_view() : range.substr(semi + 1);
    range = TrimOws(range.substr(0, semi));
    const std::size_t slash = range.find('/');
    if (slash == std::string_view::npos) continue;
    const std::string_view t = range.substr(0, slash), st = range.substr(slash + 1);
    int specificity = 0;
    if (t == "*" && st == "*") {
      specificity = 1;
    } else if (EqualsIgnoreCase(t, type) && st == "*") {
      specificity = 2;
    } else if (EqualsIgnoreCase(t, type) && EqualsIgnoreCase(st, subtype)) {
      specificity = 3;
    } else {
      continue;
    }
    double q = 1;
    while (!params.empty()) {
      const std::size_t next = params.find(';');
      const std::string_view param = TrimOws(params.substr(0, next));
      params = next == std::string_view::npos ? std::string_view() : params.substr(next + 1);
      if (param.size() >= 2 && (param[0] == 'q' || param[0] == 'Q') && param[1] == '=') {
        const std::string_view v = param.substr(2);
        double parsed = 0;
        auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), parsed);
        q = ec == std::errc() && end == v.data() + v.size() && parsed >= 0 && parsed <= 1 ? parsed
                                                                                          : 0;
      }
    }
    if (specificity > best.specificity) best = {q, specificity};
  }
  if (best.specificity == 0) best.q = 0;
  return best;
}

}  // namespace

bool AcceptPrefersJson(std::string_view accept) {
  if (TrimOws(accept).empty()) return false;
  AcceptMatch json = MatchAccept(accept, "application", "problem+json");
  const AcceptMatch plain = MatchAccept(accept, "application", "json");
  // application/json names a more specific range than application/*.
  if (plain.specificity > json.specificity ||
      (plain.specificity == json.specificity && plain.q > json.q)) {
    json = plain;
  }
  const AcceptMatch text = MatchAccept(accept, "text", "plain");
  if (json.q <= 0) return false;
  return json.q > text.q || (json.q == text.q && json.specificity > text.specificity);
}

void ErrorAsProblem(HttpResponse& r) {
  if (r.status < 400 || r.content_type != kTextPlain) return;
  std::string detail = std::move(r.body);
  while (!detail.empty() && (detail.back() == '\n' || detail.back() == '\r')) detail.pop_back();
  nlohmann::json j = {{"type", "about:blank"},
                      {"title", std::string(StatusReason(r.status))},
                      {"status", r.status},
                      {"detail", detail}};
  if (!r.error_kind.empty()) j["error"] = std::string(r.error_kind);
  r.body = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  r.body += '\n';
  r.content_type = kProblemJson;
}

unsigned StatusOf(ErrorCode code) {
  switch (code) {
    case ErrorCode::invalid_argument:
      return 400;
    case ErrorCode::limit:
      return 413;
    case ErrorCode::no_such_cache:
      return 404;
    case ErrorCode::no_space:
      return 507;
    case ErrorCode::busy:
      return 503;
    case ErrorCode::io:
    case ErrorCode::corrupt:
    case ErrorCode::unsupported:
    case ErrorCode::permission:
    case ErrorCode::invalid_state:
      return 500;
  }
  return 500;
}

HttpResponse HttpHandler::Execute(const Route& route, const HttpRequest& request) const {
  HttpResponse r;
  try {
    r = Run(route, request);
  } catch (const Error& e) {
    // The status says whose fault it is (StatusOf), Lilcache-Error the kind.
    // A 4xx is the client's: the message is about its request (a key, a
    // ttl). A 5xx is the server's: the client gets the cause without the
    // file paths (they tell where the cache and the user's home are); the
    // log gets it all.
    const unsigned status = StatusOf(e.code());
    if (status < 500) {
      r = Text(status, WithoutPaths(e.what(), cache_.root()) + "\n");
    } else {
      r = Text(status, "cache error: " + WithoutPaths(e.what(), cache_.root()) + "\n");
      r.detail = std::string("cache error: ") + e.what();
    }
    r.fields += "Lilcache-Error: ";
    r.fields += to_string(e.code());
    r.fields += "\r\n";
    r.error_kind = to_string(e.code());
    if (!route.cors_origin.empty()) r.fields += "Access-Control-Expose-Headers: Lilcache-Error\r\n";
  } catch (const std::exception& e) {
    // The client gets the cause without the file paths (they tell where the
    // cache and the user's home are); the log gets it all.
    r = Text(500, "cache error: " + WithoutPaths(e.what(), cache_.root()) + "\n");
    r.detail = std::string("cache error: ") + e.what();
  }
  if (!route.cors_origin.empty()) AddCors(r, route.cors_origin);
  if (r.status >= 400 && AcceptPrefersJson(request[http::field::accept])) ErrorAsProblem(r);
  return r;
}

HttpResponse HttpHandler::Handle(const HttpRequest& request) const {
  std::variant<Route, HttpResponse> routed = RouteOf(request.base());
  if (auto* refused = std::get_if<HttpResponse>(&routed)) return std::move(*refused);
  return Execute(std::get<Route>(routed), request);
}

namespace {

// 204: done, nothing to say.
HttpResponse NoContent() { return Text(204, ""); }
// 201: PUT created the key (the resource is the request's target: no
// Location; no body).
HttpResponse Created() { return Text(201, ""); }

// /keys/{key} and /keys/{key}/OP on the key.
HttpResponse RunKey(Cache& cache, const Route& route, const HttpRequest& request, const Params& p,
                    const std::string& key) {
  switch (route.endpoint) {
    case Endpoint::kIncrement: {
      std::int64_t by = 1, initial = 0;
      if (auto bad = ParseInt64(p.by, "by", &by)) return *bad;
      if (auto bad = ParseInt64(p.initial, "initial", &initial)) return *bad;
      std::optional<std::chrono::milliseconds> ttl;
      if (auto bad = ParseTtl(p.ttl, &ttl)) return *bad;
      try {
        const std::int64_t n =
            ttl ? cache.increment(key, by, initial, *ttl) : cache.increment(key, by, initial);
        return Text(200, std::to_string(n));
      } catch (const Error& e) {
        // The key and ttl being valid, invalid_argument means that the
        // stored value is not an integer: a conflict with the key's state
        // (409), not a bad request; setting the key resolves it.
        if (e.code() != ErrorCode::invalid_argument || key.empty() || (ttl && ttl->count() <= 0)) {
          throw;
        }
        HttpResponse r = Text(409, WithoutPaths(e.what(), cache.root()) + "\n");
        r.fields = "Lilcache-Error: invalid_argument\r\n";
        r.error_kind = to_string(ErrorCode::invalid_argument);
        if (!route.cors_origin.empty()) {
          r.fields += "Access-Control-Expose-Headers: Lilcache-Error\r\n";
        }
        return r;
      }
    }
    case Endpoint::kTtl: {
      const std::optional<std::chrono::milliseconds> left = cache.ttl(key);
      if (!left) return NotFound();
      nlohmann::json j = {{"ttl_ms", nullptr}};
      if (*left != kNoExpiry) j["ttl_ms"] = left->count();
      return Json(j);
    }
    case Endpoint::kTouch: {
      std::optional<std::chrono::milliseconds> ttl;
      if (auto bad = ParseTtl(p.ttl, &ttl)) return *bad;
      if (!ttl) return BadRequest("missing parameter: ttl");
      return cache.touch(key, *ttl) ? NoContent() : NotFound();
    }
    case Endpoint::kPersist:
      return cache.persist(key) ? NoContent() : NotFound();
    default:
      break;
  }

  // Endpoint::kKey. The preconditions (RFC 9110 13.1) of PUT and DELETE.
  const http::verb method = request.method();
  if (method == http::verb::get || method == http::verb::head) {
    std::optional<Versioned> v = cache.get_versioned(key);
    if (!v) return NotFound();
    HttpResponse r = Value(std::move(v->value));
    AddETag(r, v->version, route.cors_origin);
    return r;
  }
  bool malformed = false;
  const std::optional<EntityTags> if_match =
      ParseEntityTags(request.base(), http::field::if_match, &malformed);
  if (malformed) return BadRequest("malformed If-Match: expected * or \"<version>\"[, ...]");
  const std::optional<EntityTags> if_none =
      ParseEntityTags(request.base(), http::field::if_none_match, &malformed);
  if (malformed) return BadRequest("malformed If-None-Match: expected *");
  if (if_match && if_none) return BadRequest("If-Match and If-None-Match together");
  if (if_none && (method != http::verb::put || !if_none->any)) {
    return BadRequest("If-None-Match is supported as * on PUT only (store if absent)");
  }

  if (method == http::verb::put) {
    std::optional<std::chrono::milliseconds> ttl;
    if (auto bad = ParseTtl(p.ttl, &ttl)) return *bad;
    const std::string& value = request.body();
    auto add = [&] { return ttl ? cache.add(key, value, *ttl) : cache.add(key, value); };
    if (if_none) {  // *: only if absent
      return add() ? Created() : PreconditionFailed("the key is present (If-None-Match: *)");
    }
    if (!if_match) {
      // 201 if this PUT created the key, 204 if it replaced a value. The
      // cache has no set() that tells whether the key was there: add() (no
      // write if the key is present) then set(). A 201 is exact; a 204 says
      // that the key was present when add() looked (removed or expired just
      // after, the set() creates it again).
      if (add()) return Created();
      if (ttl) {
        cache.set(key, value, *ttl);
      } else {
        cache.set(key, value);
      }
      return NoContent();
    }
    auto cas = [&](std::uint64_t version) {
      return ttl ? cache.compare_and_set(key, version, value, *ttl)
                 : cache.compare_and_set(key, version, value);
    };
    if (!if_match->any && if_match->versions.size() <= 1) {
      if (if_match->versions.empty()) return PreconditionFailed("no such version");
      return cas(if_match->versions.front()) ? NoContent()
                                             : PreconditionFailed("the key is absent or changed");
    }
    // * or a list: the version now, then a compare-and-set from it; one that
    // fails means that another writer got in between: look again.
    for (;;) {
      const std::optional<Versioned> now = cache.get_versioned(key);
      if (!now) return PreconditionFailed("the key is absent");
      if (!if_match->any && !Listed(*if_match, now->version)) {
        return PreconditionFailed("the key changed");
      }
      if (cas(now->version)) return NoContent();
    }
  }

  // DELETE.
  if (!if_match) return cache.erase(key) ? Ok() : NotFound();
  if (if_match->any) return cache.erase(key) ? Ok() : PreconditionFailed("the key is absent");
  if (if_match->versions.size() <= 1) {
    if (if_match->versions.empty()) return PreconditionFailed("no such version");
    return cache.compare_and_erase(key, if_match->versions.front())
               ? Ok()
               : PreconditionFailed("the key is absent or changed");
  }
  for (;;) {
    const std::optional<Versioned> now = cache.get_versioned(key);
    if (!now) return PreconditionFailed("the key is absent");
    if (!Listed(*if_match, now->version)) return PreconditionFailed("the key changed");
    if (cache.compare_and_erase(key, now->version)) return Ok();
  }
}

// One page of GET /keys: the keys that start with prefix and sort after
// `after` (bytewise), the first of them in that order, as many as fit in
// `limit` keys and kMaxKeysPageBytes bytes; *more: whether a key that did not
// fit was seen. One scan of the index (for_each_key), holding only the page:
// a max-heap of it, and `cut`, the smallest key that did not fit (every key
// of the page sorts before it; a key after it cannot join the page).
std::vector<std::string> KeysPage(Cache& cache, const std::string& prefix,
                                  const std::optional<std::string>& after, std::size_t limit,
                                  bool* more) {
  std::vector<std::string> heap;
  std::size_t bytes = 0;
  std::optional<std::string> cut;
  *more = false;
  if (limit == 0) return heap;
  cache.for_each_key(prefix, [&](std::string_view k) {
    if ((after && k <= *after) || (cut && k >= *cut)) return true;
    heap.emplace_back(k);
    std::push_heap(heap.begin(), heap.end());
    bytes += k.size();
    while (heap.size() > limit || bytes > kMaxKeysPageBytes) {
      std::pop_heap(heap.begin(), heap.end());
      bytes -= heap.back().size();
      cut = std::move(heap.back());
      heap.pop_back();
    }
    return true;
  });
  *more = cut.has_value();
  std::sort_heap(heap.begin(), heap.end());
  return heap;
}

// The bytes of a URI query value: unreserved characters as they are, every
// other byte %XX.
std::string PercentEncode(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(bytes.size());
  for (const char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    if ((b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') || b == '-' ||
        b == '.' || b == '_' || b == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[b >> 4];
      out += kHex[b & 15];
    }
  }
  return out;
}

HttpResponse BatchGet(Cache& cache, std::string_view body) {
  std::vector<std::string> keys;
  if (auto refused = ParseBatchKeys(body, &keys)) return Text(refused->status, refused->why + "\n");
  // Read in slices, so that what is held while reading stays near the
  // answer's bound, kMaxBatchAnswerBytes, whatever the values' sizes.
  constexpr std::size_t kSlice = 16;
  nlohmann::json answer = nlohmann::json::array();
  std::size_t bytes = 0;
  std::vector<std::string> slice;
  for (std::size_t i = 0; i < keys.size(); i += kSlice) {
    const std::size_t end = std::min(keys.size(), i + kSlice);
    slice.assign(std::make_move_iterator(keys.begin() + static_cast<std::ptrdiff_t>(i)),
                 std::make_move_iterator(keys.begin() + static_cast<std::ptrdiff_t>(end)));
    const std::vector<std::optional<std::string>> values = cache.get_many(slice);
    for (std::size_t k = 0; k < slice.size(); ++k) {
      bytes += slice[k].size() + (values[k] ? values[k]->size() : 0);
      if (bytes > kMaxBatchAnswerBytes) {
        return Text(413, "batch answer over " + std::to_string(kMaxBatchAnswerBytes) +
                             " bytes of keys and values: ask for fewer keys\n");
      }
      answer.push_back(BatchResult(slice[k], values[k]));
    }
  }
  return Json(answer);
}

HttpResponse BatchSet(Cache& cache, std::string_view body, const Params& p) {
  std::optional<std::chrono::milliseconds> ttl;  // ?ttl=: for the items without their own
  if (auto bad = ParseTtl(p.ttl, &ttl)) return *bad;
  if (ttl && ttl->count() <= 0) return BadRequest("bad ttl: it must be over 0");
  std::vector<BatchItem> items;
  if (auto refused = ParseBatchItems(body, &items)) {
    return Text(refused->status, refused->why + "\n");
  }
  // In order, one set_many() per run of items with the same ttl.
  std::vector<std::pair<std::string, std::string>> run;
  std::size_t i = 0;
  while (i < items.size()) {
    const std::optional<std::chrono::milliseconds> t = items[i].ttl ? items[i].ttl : ttl;
    run.clear();
    for (; i < items.size() && (items[i].ttl ? items[i].ttl : ttl) == t; ++i) {
      run.emplace_back(std::move(items[i].key), std::move(items[i].value));
    }
    if (t) {
      cache.set_many(run, *t);
    } else {
      cache.set_many(run);
    }
  }
  return Json({{"stored", items.size()}});
}

}  // namespace

HttpResponse HttpHandler::Run(const Route& route, const HttpRequest& request) const {
  Params p;
  if (auto bad = ParseParams(route.url, p)) return BadRequest(*bad);
  bool base64 = false;  // ?encoding=base64: the request's and the answer's keys
  switch (route.endpoint) {
    case Endpoint::kBatchGet:  // batches have their own "key_b64"
    case Endpoint::kBatchSet:
    case Endpoint::kStats:
    case Endpoint::kHealth:
    case Endpoint::kPurge:
      break;
    default:
      if (auto bad = DecodeKeyParams(p, &base64)) return *bad;
  }

  switch (route.endpoint) {
    case Endpoint::kGet: {
      if (auto bad = CheckKey(p.key)) return *bad;
      std::optional<std::string> v = cache_.get(*p.key);
      return v ? Value(std::move(*v)) : NotFound();
    }
    case Endpoint::kSet: {
      if (auto bad = CheckKey(p.key)) return *bad;
      if (!p.value.has_value()) return BadRequest("missing parameter: value");
      return Set(cache_, *p.key, *p.value, p.ttl);
    }
    case Endpoint::kPop: {
      if (auto bad = CheckKey(p.key)) return *bad;
      std::optional<std::string> v = cache_.pop(*p.key);
      return v ? Value(std::move(*v)) : NotFound();
    }
    case Endpoint::kDelete: {
      if (auto bad = CheckKey(p.key)) return *bad;
      return cache_.erase(*p.key) ? Ok() : NotFound();
    }
    case Endpoint::kContains: {
      if (auto bad = CheckKey(p.key)) return *bad;
      return Text(200, cache_.contains(*p.key) ? "true\n" : "false\n");
    }
    case Endpoint::kKey:
    case Endpoint::kIncrement:
    case Endpoint::kTtl:
    case Endpoint::kTouch:
    case Endpoint::kPersist: {
      std::size_t suffix = 0;
      for (const KeyOperation& op : kKeyOperations) {
        if (op.endpoint == route.endpoint) suffix = op.suffix.size();
      }
      std::optional<std::string> key = KeyOfPath(route.url, suffix);
      if (!key) return BadRequest("malformed key in path");
      if (base64) {
        if (auto bad = DecodeBase64Key("key", &*key)) return *bad;
      }
      return RunKey(cache_, route, request, p, *key);
    }
    case Endpoint::kBatchGet:
      return BatchGet(cache_, request.body());
    case Endpoint::kBatchSet:
      return BatchSet(cache_, request.body(), p);
    case Endpoint::kKeys: {
      if (request.method() == http::verb::delete_) {
        cache_.purge();
        return Ok();
      }
      std::size_t limit = keys_limit_;
      if (auto bad = ParseLimit(p.limit, &limit)) return *bad;
      limit = std::min(limit, kMaxKeysPage);
      const std::string prefix = p.prefix.value_or("");
      bool more = false;
      std::vector<std::string> page = KeysPage(cache_, prefix, p.after, limit, &more);
      nlohmann::json list = nlohmann::json::array();
      for (const std::string& k : page) {
        if (base64) {
          list.push_back(Base64Encode(k));
        } else {
          list.push_back(k);
        }
      }
      HttpResponse r = Json(list);
      if (more && !page.empty()) {
        // The next page: the same request, after this page's last key.
        auto encoded = [&](const std::string& bytes) {
          return PercentEncode(base64 ? Base64Encode(bytes) : bytes);
        };
        r.fields = "Link: </keys?limit=" + std::to_string(limit);
        if (!prefix.empty()) r.fields += "&prefix=" + encoded(prefix);
        r.fields += "&after=" + encoded(page.back());
        if (base64) r.fields += "&encoding=base64";
        r.fields += ">; rel=\"next\"\r\n";
        if (!route.cors_origin.empty()) r.fields += "Access-Control-Expose-Headers: Link\r\n";
      }
      return r;
    }
    case Endpoint::kStats:
      return Json(StatsJson(cache_, cache_.stats()));
    case Endpoint::kHealth:
      return Ok();
    case Endpoint::kPurge:
      cache_.purge();
      return Ok();
  }
  return Text(500, "unhandled endpoint\n");
}

}  // namespace lilcache
