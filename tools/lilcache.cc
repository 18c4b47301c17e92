// lilcache: the command-line tool. Global options and the list of
// subcommands; each subcommand lives in its own tools/lilcache_*.cc.
#include <string>

#include "cli_util.h"
#include "lilcache/lilcache.h"
#include "lilcache_cli.h"

int main(int argc, char** argv) {
  namespace tools = lilcache::tools;
  CLI::App app{"lilcache: use and serve lilcache caches from the command line."};
  app.name("lilcache");
  app.set_version_flag("--version", std::string(lilcache::version()));
  app.fallthrough();  // global options may also follow the subcommand
  app.require_subcommand(1);

  tools::CliContext context;
  app.add_option("--root", context.root,
                 "Directory of the caches (default: $LILCACHE_ROOT, else "
                 "$XDG_CACHE_HOME/lilcache, else ~/.cache/lilcache)")
      ->envname("LILCACHE_ROOT");
  app.add_option("--name", context.name, "Cache name")->capture_default_str();

  tools::AddServeCommand(app, context);

  if (auto status = tools::Parse(app, argc, argv)) return *status;
  return context.status;
}
