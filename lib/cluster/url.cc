// url: ParseUrl(), the backend URLs of client.h (docs/cluster.md, "URLs").
#include <charconv>
#include <string>
#include <string_view>

#include "cluster/client.h"
#include "lilcache/lilcache.h"
#include "util/duration.h"
#include "util/quote.h"

namespace lilcache::cluster {
namespace {

constexpr std::string_view kClusterScheme = "redis-cluster://";
constexpr std::string_view kSingleScheme = "redis://";
constexpr std::size_t kMaxPool = 1024;

[[noreturn]] void Bad(std::string_view shown, const std::string& what) {
  throw Error(ErrorCode::invalid_argument,
              "backend URL " + Quote(shown) + ": " + what +
                  " (expected redis-cluster://[[user]:password@]host:port[,host:port...][?options] "
                  "or redis://[[user]:password@]host:port[?options])");
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX escapes of the user and password ("p%40ss" is "p@ss").
std::string PercentDecode(std::string_view shown, std::string_view what, std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    if (i + 2 >= text.size()) {
      Bad(shown, "a '%' in the " + std::string(what) + " is not followed by two hex digits");
    }
    const int hi = HexDigit(text[i + 1]), lo = HexDigit(text[i + 2]);
    if (hi < 0 || lo < 0) {
      Bad(shown, "a '%' in the " + std::string(what) + " is not followed by two hex digits");
    }
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

bool IsHostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

Endpoint ParseEndpoint(std::string_view shown, std::string_view text) {
  Endpoint ep;
  std::string_view port_text;
  if (text.empty()) Bad(shown, "an empty host:port");
  if (text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) Bad(shown, "'[' without ']' in " + Quote(text));
    const std::string_view addr = text.substr(1, close - 1);
    if (addr.empty()) Bad(shown, "an empty IPv6 address in " + Quote(text));
    for (char c : addr) {
      if (HexDigit(c) < 0 && c != ':' && c != '.') {
        Bad(shown, "not an IPv6 address: " + Quote(addr));
      }
    }
    if (close + 1 >= text.size() || text[close + 1] != ':') {
      Bad(shown, "no port after " + Quote(text.substr(0, close + 1)));
    }
    ep.host = std::string(addr);
    port_text = text.substr(close + 2);
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) Bad(shown, "no port in " + Quote(text) + " (host:port)");
    const std::string_view host = text.substr(0, colon);
    if (host.empty()) Bad(shown, "no host in " + Quote(text));
    for (char c : host) {
      if (!IsHostChar(c)) {
        Bad(shown, "not a host name or IPv4 address: " + Quote(host) +
                       " (an IPv6 address goes in brackets: [::1]:6379)");
      }
    }
    ep.host = std::string(host);
    port_text = text.substr(colon + 1);
  }
  int port = 0;
  const auto [end, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
      port < 1 || port > 65535 || port_text.front() == '+') {
    Bad(shown, "not a port (1..65535): " + Quote(port_text));
  }
  ep.port = port;
  return ep;
}

void ParseOptions(std::string_view shown, std::string_view query, Config& config) {
  bool seen_timeout = false, seen_connect = false, seen_retry = false, seen_pool = false;
  while (true) {
    const std::size_t amp = query.find('&');
    const std::string_view item = query.substr(0, amp);
    const std::size_t eq = item.find('=');
    if (item.empty() || eq == std::string_view::npos) {
      Bad(shown, "an option is not name=value: " + Quote(item));
    }
    const std::string_view name = item.substr(0, eq), value = item.substr(eq + 1);
    auto once = [&](bool& seen) {
      if (seen) Bad(shown, "option " + std::string(name) + " given twice");
      seen = true;
    };
    auto duration = [&]() {
      try {
        return parse_duration(value);
      } catch (const Error& e) {
        Bad(shown, "option " + std::string(name) + ": " + e.what());
      }
    };
    if (name == "timeout" || name == "connect_timeout") {
      once(name == "timeout" ? seen_timeout : seen_connect);
      const std::chrono::milliseconds d = duration();
      if (d.count() <= 0) Bad(shown, "option " + std::string(name) + " must be more than 0");
      (name == "timeout" ? config.timeout : config.connect_timeout) = d;
    } else if (name == "retry_for") {
      once(seen_retry);
      config.retry_for = duration();
    } else if (name == "pool") {
      once(seen_pool);
      std::size_t pool = 0;
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), pool);
      if (value.empty() || ec != std::errc() || end != value.data() + value.size() ||
          pool > kMaxPool) {
        Bad(shown, "option pool: not a number of connections (0.." + std::to_string(kMaxPool) +
                       "): " + Quote(value));
      }
      config.pool = pool;
    } else {
      Bad(shown, "unknown option " + Quote(name) + " (timeout, connect_timeout, retry_for, pool)");
    }
    if (amp == std::string_view::npos) break;
    query = query.substr(amp + 1);
  }
}

}  // namespace

Config ParseUrl(std::string_view url) {
  Config config;
  std::string_view rest;
  std::string_view scheme;
  if (url.substr(0, kClusterScheme.size()) == kClusterScheme) {
    config.cluster = true;
    scheme = kClusterScheme;
  } else if (url.substr(0, kSingleScheme.size()) == kSingleScheme) {
    config.cluster = false;
    scheme = kSingleScheme;
  }
  rest = url.substr(scheme.size());

  // The credentials end at the last '@' (a password may hold '@', '?' and
  // ','; the options never hold '@'). `shown` is the URL with the password
  // replaced by ***, the only form of it in a message.
  const std::size_t at = scheme.empty() ? std::string_view::npos : rest.rfind('@');
  std::string shown(url);
  std::string_view credentials;
  if (at != std::string_view::npos) {
    credentials = rest.substr(0, at);
    const std::size_t colon = credentials.find(':');
    // Without a ':' the whole of it may be a password: hidden too.
    shown = std::string(scheme) +
            (colon == std::string_view::npos ? std::string("***")
                                             : std::string(credentials.substr(0, colon)) + ":***") +
            std::string(rest.substr(at));
  }
  if (scheme.empty()) {
    // The whole URL may be a password typed in the wrong place: quote only
    // its start up to any '@'.
    const std::size_t at_any = url.find('@');
    if (at_any != std::string_view::npos) shown = "***" + std::string(url.substr(at_any));
    Bad(shown, "unknown scheme");
  }

  std::string_view authority = rest.substr(at == std::string_view::npos ? 0 : at + 1);
  std::string_view query;
  const std::size_t question = authority.find('?');
  if (question != std::string_view::npos) {
    query = authority.substr(question + 1);
    authority = authority.substr(0, question);
    if (query.empty()) Bad(shown, "an empty option list after '?'");
  }

  if (at != std::string_view::npos) {
    const std::size_t colon = credentials.find(':');
    if (colon == std::string_view::npos) {
      Bad(shown, "credentials must be [user]:password@ (no ':' before '@')");
    }
    config.user = PercentDecode(shown, "user", credentials.substr(0, colon));
    config.password = PercentDecode(shown, "password", credentials.substr(colon + 1));
    if (config.password.empty()) Bad(shown, "an empty password (leave out the credentials)");
  }

  if (authority.empty()) Bad(shown, "no host:port");
  while (true) {
    const std::size_t comma = authority.find(',');
    config.seeds.push_back(ParseEndpoint(shown, authority.substr(0, comma)));
    if (comma == std::string_view::npos) break;
    authority = authority.substr(comma + 1);
  }
  if (!config.cluster && config.seeds.size() > 1) {
    Bad(shown, "redis:// names one server (several seed nodes: redis-cluster://)");
  }
  if (!query.empty()) ParseOptions(shown, query, config);
  config.display = shown;
  return config;
}

}  // namespace lilcache::cluster
