// lilcache_cli: what the subcommands of the `lilcache` tool share. main()
// (tools/lilcache.cc) parses the global options into a CliContext and each
// tools/lilcache_*.cc adds its subcommands with an Add*Command function; the
// subcommand that runs stores its exit status in CliContext::status.
//
// Exit statuses of every subcommand (docs/lilcache.1): 0 ok, 1 the key is
// missing (get, pop, contains), 2 bad usage, 3 any other error. Every error is
// one line on stderr: "lilcache: COMMAND: what".
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "lilcache/lilcache.h"

namespace lilcache::tools {

inline constexpr int kExitMissing = 1;  // get/pop/contains: no such key
inline constexpr int kExitBadUsage = 2;
inline constexpr int kExitError = 3;

struct CliContext {
  std::string root;              // --root DIR ($LILCACHE_ROOT); "" = the default root
  std::string name = "default";  // --name NAME: the cache
  int status = 0;                // exit status of the subcommand that ran

  // Options for Cache::open with the global options applied.
  lilcache::Options options() const {
    lilcache::Options o;
    o.root = root;
    return o;
  }

  // The cache, created if it does not exist yet. Throws lilcache::Error.
  lilcache::Cache open() const { return lilcache::Cache::open(name, options()); }

  // The cache if it exists, nullopt if not; never creates anything
  // (Options::create_if_missing = false): reading commands treat a cache
  // that was never written as empty. Throws lilcache::Error on a bad name or
  // an unusable root.
  std::optional<lilcache::Cache> open_existing() const;

  // The root directory the cache lives in (--root, else the default root).
  std::string resolved_root() const;
};

// A usage error found after parsing (a bad --ttl, an empty key): exit 2.
struct UsageProblem : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// `text` on one line: control bytes escaped as \n, \t, \r or \xhh
// (util/quote.h, EscapeMode::kControlBytes), the rest (a message's quotes,
// UTF-8) kept. For messages that quote keys or paths.
std::string OneLine(std::string_view text);

// Prints "lilcache: COMMAND: what" (one line) on stderr. `command` may be "".
void PrintError(std::string_view command, std::string_view what);

// Runs a subcommand's body and returns its exit status: body's result, 2 on
// UsageProblem, 3 (after printing the error) on any other exception.
template <typename Body>
int RunCommand(std::string_view command, Body&& body) {
  try {
    return body();
  } catch (const UsageProblem& e) {
    PrintError(command,
               std::string(e.what()) + " (see 'lilcache " + std::string(command) + " --help')");
    return kExitBadUsage;
  } catch (const std::exception& e) {
    PrintError(command, e.what());
    return kExitError;
  }
}

// Parses argv into app. Returns nullopt to go on, or the status to exit with:
// 0 after printing --help or --version, 2 after a usage error (printed on
// one line).
std::optional<int> ParseCommandLine(CLI::App& app, int argc, char** argv);

// `lilcache get|set|pop|delete|contains|keys|purge|stats`: tools/lilcache_data.cc.
void AddDataCommands(CLI::App& app, CliContext& context);

// `lilcache serve`: tools/lilcache_serve.cc.
void AddServeCommand(CLI::App& app, CliContext& context);

}  // namespace lilcache::tools
