#include "http_handler.h"

#include <boost/beast/http/status.hpp>
#include <boost/url/decode_view.hpp>
#include <boost/url/encoding_opts.hpp>
#include <boost/url/param.hpp>
#include <boost/url/params_encoded_view.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/pct_string_view.hpp>
#include <charconv>
#include <chrono>
#include <exception>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

namespace lilcache {
namespace {

namespace http = boost::beast::http;
namespace urls = boost::urls;

constexpr std::string_view kKeysPrefix = "/keys/";

HttpResponse Text(unsigned status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponse Ok() { return Text(200, "OK"); }
HttpResponse NotFound() { return Text(404, "not found\n"); }
HttpResponse BadRequest(const std::string& why) { return Text(400, why + "\n"); }

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
  std::optional<std::string> key, value, ttl, prefix, limit;
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
    } else {
      continue;  // unknown parameters are ignored (e.g. cache busters)
    }
    if (slot->has_value()) {
      return "parameter given twice: " + param.key.decode();
    }
    *slot = param.has_value ? param.value.decode(form) : std::string();
  }
  return std::nullopt;
}

// 400 for a missing or empty key, 413 over kMaxKeyBytes.
std::optional<HttpResponse> CheckKey(const std::optional<std::string>& key) {
  if (!key.has_value()) return BadRequest("missing parameter: key");
  if (key->empty()) return BadRequest("empty key");
  if (key->size() > kMaxKeyBytes) {
    return Text(413, "key of " + std::to_string(key->size()) + " bytes is over the limit of " +
                         std::to_string(kMaxKeyBytes) + " bytes\n");
  }
  return std::nullopt;
}

std::optional<HttpResponse> CheckValue(std::string_view value) {
  if (value.size() > kMaxValueBytes) {
    return Text(413, "value of " + std::to_string(value.size()) + " bytes is over the limit of " +
                         std::to_string(kMaxValueBytes) + " bytes\n");
  }
  return std::nullopt;
}

// Parses ?ttl= into *ttl (0 = none). An error response for a bad duration.
std::optional<HttpResponse> ParseTtl(const std::optional<std::string>& text,
                                     std::chrono::milliseconds* ttl) {
  *ttl = std::chrono::milliseconds(0);
  if (!text.has_value()) return std::nullopt;
  try {
    *ttl = parse_duration(*text);
  } catch (const Error& e) {
    return BadRequest(std::string("bad ttl: ") + e.what());
  }
  if (ttl->count() <= 0) return BadRequest("bad ttl: must be positive");
  return std::nullopt;
}

std::optional<HttpResponse> ParseLimit(const std::optional<std::string>& text, std::size_t* limit) {
  if (!text.has_value()) return std::nullopt;
  const char* end = text->data() + text->size();
  auto [ptr, ec] = std::from_chars(text->data(), end, *limit);
  if (text->empty() || ec != std::errc() || ptr != end) {
    return BadRequest("bad limit \"" + *text + "\": expected a non-negative integer");
  }
  return std::nullopt;
}

HttpResponse Set(Cache& cache, const std::string& key, std::string_view value,
                 const std::optional<std::string>& ttl_text) {
  if (auto bad = CheckValue(value)) return *bad;
  std::chrono::milliseconds ttl;
  if (auto bad = ParseTtl(ttl_text, &ttl)) return *bad;
  if (ttl.count() > 0) {
    cache.set(key, value, ttl);
  } else {
    cache.set(key, value);
  }
  return Ok();
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

bool IEqualsPrefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char a = s[i], b = prefix[i];
    if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
    if (a != b) return false;
  }
  return true;
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

HttpHandler::HttpHandler(Cache& cache, std::string token, std::size_t keys_limit)
    : cache_(cache), token_(std::move(token)), keys_limit_(keys_limit) {}

std::variant<Route, HttpResponse> HttpHandler::RouteOf(const HttpRequestHeader& header) const {
  if (!token_.empty()) {
    // RFC 6750: "Bearer" (any case), one or more spaces, the token.
    std::string_view auth = header[http::field::authorization];
    bool ok = false;
    if (IEqualsPrefix(auth, "bearer ")) {
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
  if (path == "/get") return only(Endpoint::kGet, http::verb::get, "GET");
  if (path == "/set") return only(Endpoint::kSet, http::verb::get, "GET");
  if (path == "/pop") return only(Endpoint::kPop, http::verb::get, "GET");
  if (path == "/delete") return only(Endpoint::kDelete, http::verb::get, "GET");
  if (path == "/contains") return only(Endpoint::kContains, http::verb::get, "GET");
  if (path == "/stats") return only(Endpoint::kStats, http::verb::get, "GET");
  if (path == "/health") return only(Endpoint::kHealth, http::verb::get, "GET");
  if (path == "/purge") return only(Endpoint::kPurge, http::verb::post, "POST");
  if (path == "/keys") {
    if (method != http::verb::get && method != http::verb::delete_) {
      return MethodNotAllowed("GET, DELETE");
    }
    return Route{Endpoint::kKeys, *url};
  }
  if (path.substr(0, kKeysPrefix.size()) == kKeysPrefix) {
    if (method != http::verb::get && method != http::verb::put && method != http::verb::delete_) {
      return MethodNotAllowed("GET, PUT, DELETE");
    }
    return Route{Endpoint::kKey, *url};
  }
  return Text(404, "no such endpoint (see docs/rest.md)\n");
}

HttpResponse HttpHandler::Execute(const Route& route, const HttpRequest& request) const {
  try {
    return Run(route, request);
  } catch (const std::exception& e) {
    return Text(500, std::string("cache error: ") + e.what() + "\n");
  }
}

HttpResponse HttpHandler::Handle(const HttpRequest& request) const {
  std::variant<Route, HttpResponse> routed = RouteOf(request.base());
  if (auto* refused = std::get_if<HttpResponse>(&routed)) return std::move(*refused);
  return Execute(std::get<Route>(routed), request);
}

HttpResponse HttpHandler::Run(const Route& route, const HttpRequest& request) const {
  Params p;
  if (auto bad = ParseParams(route.url, p)) return BadRequest(*bad);

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
      return Text(200, cache_.contains(*p.key) ? "true" : "false");
    }
    case Endpoint::kKey: {
      // The rest of the path after "/keys/", percent-decoded ('+' literal).
      const std::string_view encoded = route.url.encoded_path().substr(kKeysPrefix.size());
      urls::result<urls::pct_string_view> pct = urls::make_pct_string_view(encoded);
      if (!pct) return BadRequest("malformed key in path");
      const std::optional<std::string> key = pct->decode();
      if (auto bad = CheckKey(key)) return *bad;
      switch (request.method()) {
        case http::verb::put:
          return Set(cache_, *key, request.body(), p.ttl);
        case http::verb::delete_:
          return cache_.erase(*key) ? Ok() : NotFound();
        default: {
          std::optional<std::string> v = cache_.get(*key);
          return v ? Value(std::move(*v)) : NotFound();
        }
      }
    }
    case Endpoint::kKeys: {
      if (request.method() == http::verb::delete_) {
        cache_.purge();
        return Ok();
      }
      std::size_t limit = keys_limit_;
      if (auto bad = ParseLimit(p.limit, &limit)) return *bad;
      nlohmann::json list = nlohmann::json::array();
      if (limit > 0) {
        for (std::string& k : cache_.keys(p.prefix.value_or(""), limit)) {
          list.push_back(std::move(k));
        }
      }
      return Json(list);
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
