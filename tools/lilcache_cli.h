// lilcache_cli: what the subcommands of the `lilcache` tool share. main()
// (tools/lilcache.cc) parses the global options into a CliContext and each
// tools/lilcache_*.cc adds its subcommands with an Add*Command function; the
// subcommand that runs stores its exit status in CliContext::status.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "lilcache/lilcache.h"

namespace lilcache::tools {

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
};

// `lilcache serve`: tools/lilcache_serve.cc.
void AddServeCommand(CLI::App& app, CliContext& context);

}  // namespace lilcache::tools
