// `lilcache serve`: serves one cache over HTTP until SIGINT or SIGTERM
// (lilcache::Server, include/lilcache/server.h; endpoints in docs/rest.md).
// Prints one line on stdout once listening:
//   lilcache: serving cache "NAME" (root DIR) on http://HOST:PORT
// Exit status (as every lilcache command, tools/lilcache_cli.h): 0 after a
// graceful stop, 3 if the cache cannot be opened or the address cannot be
// bound, 2 on bad usage; each error is one line on stderr.
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http_handler.h"
#include "lilcache/lilcache.h"
#include "lilcache/server.h"
#include "lilcache_cli.h"
#include "logging.h"

namespace lilcache::tools {
namespace {

struct ServeArgs {
  std::string host = "127.0.0.1";
  std::uint16_t port = 5001;
  std::optional<std::string> token;  // set when --token was given, even as ''
  std::vector<std::string> allowed_hosts;
  std::vector<std::string> allowed_origins;
  std::string snapshot;
  std::string expires;
  std::string loglevel;
  unsigned threads = 0;
  std::size_t max_connections = ServerOptions{}.max_connections;
  std::string request_timeout = "10s";
  std::string idle_timeout = "30s";
};

int ServeUsageError(const std::string& what) {
  PrintError("serve", what + " (see 'lilcache serve --help')");
  return kExitBadUsage;
}

int Serve(const CliContext& context, const ServeArgs& args) {
  Options options = context.options();
  options.snapshot = args.snapshot;
  options.expires = args.expires;
  options.loglevel = args.loglevel;

  ServerOptions server_options;
  server_options.token = args.token;
  server_options.allowed_hosts = args.allowed_hosts;
  server_options.allowed_origins = args.allowed_origins;
  server_options.threads = args.threads;
  server_options.max_connections = args.max_connections;
  server_options.loglevel = args.loglevel;
  server_options.log_to_stderr = true;
  // An empty token (--token "$UNSET", or LILCACHE_TOKEN= ) is a mistake, not
  // a request to serve without authentication.
  if (args.token && args.token->empty()) {
    return ServeUsageError("--token is empty; omit it to serve without a token");
  }
  if (const char* env = std::getenv("LILCACHE_TOKEN"); !args.token && env && *env == '\0') {
    return ServeUsageError("$LILCACHE_TOKEN is set but empty; unset it to serve without a token");
  }
  try {
    for (const std::string& h : args.allowed_hosts) CheckAllowedHost(h);
    for (const std::string& o : args.allowed_origins) CheckAllowedOrigin(o);
    validate_name(context.name);
    if (!args.snapshot.empty()) parse_duration(args.snapshot);
    if (!args.expires.empty()) parse_duration(args.expires);
    ParseLogLevel(args.loglevel);
    server_options.request_timeout = parse_duration(args.request_timeout);
    server_options.idle_timeout = parse_duration(args.idle_timeout);
  } catch (const Error& e) {
    return ServeUsageError(e.what());
  }

  try {
    Cache cache = Cache::open(context.name, options);
    Server server(cache, args.host, args.port, server_options);
    std::cout << "lilcache: serving cache \"" << cache.name() << "\" (root " << cache.root()
              << ") on " << server.url() << std::endl;
    server.run_until_signal();
    return 0;
  } catch (const Error& e) {
    PrintError("serve", e.what());
    return kExitError;
  }
}

}  // namespace

void AddServeCommand(CLI::App& app, CliContext& context) {
  auto args = std::make_shared<ServeArgs>();
  CLI::App* serve = app.add_subcommand(
      "serve",
      "Serve the cache over HTTP until SIGINT or SIGTERM (endpoints: docs/rest.md). Prints "
      "'lilcache: serving cache \"NAME\" (root DIR) on http://HOST:PORT' once listening. "
      "Exit status: 0 after a graceful stop, 3 if the cache cannot be opened or the address "
      "cannot be bound, 2 on bad usage.");
  serve
      ->add_option("--host", args->host,
                   "Address to bind (a name, or an IPv4/IPv6 address); a non-loopback "
                   "address without a token logs a loud warning")
      ->capture_default_str();
  serve->add_option("--port", args->port, "TCP port; 0 picks a free one (printed)")
      ->capture_default_str();
  serve->add_option_function<std::string>(
      "--token", [args](const std::string& token) { args->token = token; },
      "Require 'Authorization: Bearer TOKEN' on every request (default: $LILCACHE_TOKEN, "
      "which unlike this option is not visible in ps); an empty token is an error");
  serve
      ->add_option("--allow-host", args->allowed_hosts,
                   "Also serve requests whose Host is H (name[:port], address[:port], or *); "
                   "repeatable. Default: localhost, 127.0.0.1, [::1] and the bound address "
                   "(any IP address when bound to 0.0.0.0 or ::)")
      ->expected(1)
      ->take_all();
  serve
      ->add_option("--allow-origin", args->allowed_origins,
                   "Let web pages of origin O (scheme://host[:port]) use the server from a "
                   "browser (CORS); repeatable. Default: none, every cross-site request is 403")
      ->expected(1)
      ->take_all();
  serve->add_option("--snapshot", args->snapshot,
                    "Snapshot interval, e.g. 120s (Options::snapshot; default: none)");
  serve->add_option("--expires", args->expires,
                    "Time-to-live of keys set without a ttl, e.g. 1d (default: never)");
  serve->add_option("--loglevel", args->loglevel,
                    "trace debug info warn error critical off (default: $LILCACHE_LOGLEVEL or "
                    "info); logs go to ROOT/NAME.log and stderr; debug logs every request");
  serve->add_option("--threads", args->threads,
                    "Threads serving requests (default 0: one per hardware thread)");
  serve
      ->add_option("--max-connections", args->max_connections,
                   "Open connections at most; more get 503")
      ->capture_default_str();
  serve
      ->add_option("--request-timeout", args->request_timeout,
                   "Deadline of one request, from its first byte to its response written")
      ->capture_default_str();
  serve
      ->add_option("--idle-timeout", args->idle_timeout,
                   "How long a keep-alive connection may stay idle")
      ->capture_default_str();
  serve->callback([&context, args] { context.status = Serve(context, *args); });
}

}  // namespace lilcache::tools
