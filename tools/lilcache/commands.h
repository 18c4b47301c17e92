// commands: the subcommands of the `lilcache` tool. main()
// (tools/lilcache/main.cc) parses the global options into a CliContext and
// each tools/lilcache/*.cc adds its subcommands with an Add*Command function;
// the subcommand that runs stores its exit status in CliContext::status.
//
// Exit statuses of every subcommand (docs/lilcache.1, tools/cli.h): 0 ok, 1
// the key is missing (get, pop, contains), 2 bad usage, 3 any other error.
// Every error is one line on stderr: "lilcache: COMMAND: what".
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "../cli.h"
#include "lilcache/lilcache.h"

namespace lilcache::tools {

inline constexpr const char* kProgram = "lilcache";

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
  std::string resolved_root() const { return lilcache::resolve_root(root); }
};

// "lilcache: COMMAND: what" on stderr (PrintError).
inline void PrintError(std::string_view command, std::string_view what) {
  PrintError(kProgram, command, what);
}

// `lilcache get|set|pop|delete|contains|keys|purge|stats`: tools/lilcache/data.cc.
void AddDataCommands(CLI::App& app, CliContext& context);

// `lilcache serve`: tools/lilcache/serve.cc.
void AddServeCommand(CLI::App& app, CliContext& context);

}  // namespace lilcache::tools
