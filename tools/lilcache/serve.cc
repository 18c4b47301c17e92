// `lilcache serve`: serves one cache over HTTP until SIGINT or SIGTERM
// (lilcache::Server, include/lilcache/server.h; endpoints in docs/rest.md).
// Prints one line on stdout once listening:
//   lilcache: serving cache "NAME" (root DIR) on http://HOST:PORT
// or, on a Redis backend (--backend, $LILCACHE_BACKEND), where the server
// keeps no state of its own (run several behind a load balancer):
//   lilcache: serving cache "NAME" (backend URL) on http://HOST:PORT
// with the URL's password hidden.
// Exit status (as every lilcache command, tools/cli.h): 0 after a graceful
// stop, 3 if the cache cannot be opened or the address cannot be bound, 2 on
// bad usage (every option is checked here, and named in the message, before
// anything is opened); each error is one line on stderr.
#include <sys/statvfs.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "commands.h"
#include "lilcache/lilcache.h"
#include "lilcache/server.h"

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
  std::optional<std::size_t> max_connections;  // nullopt: the default
  std::optional<std::size_t> max_connections_per_client;
  std::string memory_budget;  // "": ServerOptions' default
  std::string max_bytes;      // "": the cache's own limit, or serve's default
  std::string request_timeout = "10s";
  std::string idle_timeout = "30s";
};

constexpr std::uint64_t kDefaultMaxBytes = 1ull << 30;

// The size limit serve gives a cache that has none: 1 GiB, or a quarter of
// the space free for unprivileged users on the root's filesystem if that is
// less (at least 1 MiB): a cache may take about 3 times its limit on disk
// (dead records up to ~1.9x the live data, plus the copy a compaction
// writes), so clients cannot fill the filesystem through it.
std::uint64_t DefaultMaxBytes(const std::string& root) {
  struct statvfs vfs {};
  if (::statvfs(root.c_str(), &vfs) != 0) return kDefaultMaxBytes;
  const std::uint64_t free_bytes = std::uint64_t{vfs.f_bavail} * vfs.f_frsize;
  return std::max<std::uint64_t>(1 << 20, std::min(kDefaultMaxBytes, free_bytes / 4));
}

int ServeUsageError(const std::string& what) { return UsageError(kProgram, "serve", what); }

// A log level as Options::loglevel takes it, checked here so that a bad one
// is a usage error naming the option.
void CheckLogLevel(const std::string& level) {
  if (level.empty()) return;
  std::string lower = level;
  for (char& c : lower) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  for (const char* name :
       {"trace", "debug", "info", "warn", "warning", "error", "critical", "off"}) {
    if (lower == name) return;
  }
  throw UsageProblem("--loglevel: invalid log level \"" + OneLine(level) +
                     "\" (expected trace, debug, info, warn, error, critical or off)");
}

// A count option that, when given, must be at least 1.
std::size_t AtLeastOne(std::string_view option, std::size_t n, std::string_view default_text) {
  if (n == 0) {
    throw UsageProblem(std::string(option) + ": must be at least 1, got 0 (omit it for the " +
                       "default: " + std::string(default_text) + ")");
  }
  return n;
}

int Serve(const CliContext& context, const ServeArgs& args) {
  Options options = context.options();
  options.one_shot = false;  // a long-lived process: its open is logged at info
  options.snapshot = args.snapshot;
  options.expires = args.expires;
  options.loglevel = args.loglevel;

  ServerOptions server_options;
  server_options.token = args.token;
  server_options.allowed_hosts = args.allowed_hosts;
  server_options.allowed_origins = args.allowed_origins;
  server_options.threads = args.threads;
  server_options.loglevel = args.loglevel;
  server_options.log_to_stderr = true;
  std::uint64_t max_bytes = 0;  // 0: not given
  try {
    CheckName(context);
    if (args.token && args.token->empty()) {
      throw UsageProblem("--token is empty; omit it to serve without a token");
    }
    // An empty $LILCACHE_TOKEN is a mistake, not "serve without authentication".
    if (const char* env = std::getenv("LILCACHE_TOKEN"); !args.token && env && *env == '\0') {
      throw UsageProblem("$LILCACHE_TOKEN is set but empty; unset it to serve without a token");
    }
    if (!args.snapshot.empty() && ParseTtl("--snapshot", args.snapshot).count() < 1000) {
      throw UsageProblem("--snapshot: must be at least 1s, got \"" + OneLine(args.snapshot) + "\"");
    }
    if (!args.expires.empty()) ParseTtl("--expires", args.expires);
    server_options.request_timeout = ParseTtl("--request-timeout", args.request_timeout);
    server_options.idle_timeout = ParseTtl("--idle-timeout", args.idle_timeout);
    CheckLogLevel(args.loglevel);
    if (args.threads > 1024) {
      throw UsageProblem("--threads: at most 1024, got " + std::to_string(args.threads));
    }
    if (args.max_connections) {
      server_options.max_connections =
          AtLeastOne("--max-connections", *args.max_connections, "1000");
    }
    if (args.max_connections_per_client) {
      server_options.max_connections_per_client =
          AtLeastOne("--max-connections-per-client", *args.max_connections_per_client,
                     "a quarter of --max-connections");
    }
    if (!args.memory_budget.empty()) {
      server_options.memory_budget = ParseSizeOption("--memory-budget", args.memory_budget, false);
      if (server_options.memory_budget < kMaxValueBytes) {
        throw UsageProblem("--memory-budget: must be at least 64MiB (the largest value), got \"" +
                           OneLine(args.memory_budget) + "\"");
      }
    }
    if (!args.max_bytes.empty()) max_bytes = ParseSizeOption("--max-bytes", args.max_bytes, true);
    validate_server_options(server_options);  // hosts and origins
  } catch (const UsageProblem& e) {
    return ServeUsageError(e.what());
  } catch (const Error& e) {
    return ServeUsageError(e.what());
  }
  options.max_bytes = max_bytes;  // UINT64_MAX ("none") lifts the cache's limit

  try {
    raise_file_limit();  // the connection cap follows RLIMIT_NOFILE
    Cache cache = OpenCache(context, options);
    // (On Redis the size limit is the cluster's maxmemory, docs/cluster.md.)
    if (context.local() && max_bytes == 0 && cache.stats().max_bytes == 0) {
      // No limit given and none kept by the cache: serve's default becomes
      // the cache's (another process's limit is never overridden).
      options.max_bytes = DefaultMaxBytes(cache.root());
      cache = OpenCache(context, options);
    }
    Server server(cache, args.host, args.port, server_options);
    const std::string where = context.local()
                                  ? "root " + cache.root()
                                  : "backend " + ShownBackend(context.effective_backend());
    std::cout << "lilcache: serving cache \"" << cache.name() << "\" (" << where << ") on "
              << server.url() << std::endl;
    server.run_until_signal();
    return 0;
  } catch (const UsageProblem& e) {
    return ServeUsageError(e.what());
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
      "'lilcache: serving cache \"NAME\" (root DIR) on http://HOST:PORT' once listening "
      "('(backend URL)' on Redis: --backend or $LILCACHE_BACKEND; then the server is stateless, "
      "run several behind a load balancer). Exit status: 0 after a graceful stop, 2 on bad usage, "
      "3 if the cache cannot be opened or "
      "the address cannot be bound.");
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
  serve
      ->add_option("--snapshot", args->snapshot,
                   "Snapshot interval, at least 1s, e.g. 120s (default: none)")
      ->type_name("DURATION");
  serve
      ->add_option("--expires", args->expires,
                   "Time-to-live of keys set without a ttl, e.g. 1d (default: never)")
      ->type_name("DURATION");
  serve->add_option("--loglevel", args->loglevel,
                    "trace debug info warn error critical off (default: $LILCACHE_LOGLEVEL or "
                    "info); logs go to ROOT/NAME.log and stderr; debug logs every request");
  serve
      ->add_option("--threads", args->threads,
                   "Threads serving requests, at most 1024 (default 0: one per hardware thread)")
      ->type_name("N");
  serve
      ->add_option("--max-bytes", args->max_bytes,
                   "Size limit of the cache's live data (the cache keeps it, for every "
                   "process), " +
                       std::string(kSizeHelp) +
                       ", or none to lift it; the oldest "
                       "keys are evicted over it. Default: the cache's own limit, or for a cache "
                       "without one the smaller of 1GiB and a quarter of the free space of ROOT's "
                       "filesystem")
      ->type_name("SIZE|none");
  serve
      ->add_option("--max-connections", args->max_connections,
                   "Open connections at most, at least 1; more get 503 (default: 1000, or "
                   "fewer if RLIMIT_NOFILE requires)")
      ->type_name("N");
  serve
      ->add_option("--max-connections-per-client", args->max_connections_per_client,
                   "Open connections from one client address at most (IPv6: a /64), at least "
                   "1; more get 503 (default: a quarter of --max-connections)")
      ->type_name("N");
  serve
      ->add_option("--memory-budget", args->memory_budget,
                   "Memory for request bodies and responses over 64KiB, for the whole server, " +
                       std::string(kSizeHelp) +
                       " (at least 64MiB; default 256MiB); over it requests get 503 with "
                       "Retry-After")
      ->type_name("SIZE");
  serve
      ->add_option("--request-timeout", args->request_timeout,
                   "Deadline of one request, from its first byte to its response written")
      ->type_name("DURATION")
      ->capture_default_str();
  serve
      ->add_option("--idle-timeout", args->idle_timeout,
                   "How long a keep-alive connection may stay idle")
      ->type_name("DURATION")
      ->capture_default_str();
  serve->callback([&context, args] { context.status = Serve(context, *args); });
}

}  // namespace lilcache::tools
