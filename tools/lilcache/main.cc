// lilcache: the command-line tool (docs/lilcache.1). Global options and the
// list of subcommands; each group of subcommands lives in a tools/lilcache/*.cc.
#include <string>

#include "commands.h"
#include "lilcache/lilcache.h"

int main(int argc, char** argv) {
  namespace tools = lilcache::tools;
  CLI::App app{"lilcache: use and serve lilcache caches from the command line."};
  app.name("lilcache");
  app.set_version_flag("--version", "lilcache " + std::string(lilcache::version()));
  app.fallthrough();  // global options may also follow the subcommand
  app.require_subcommand(1);
  app.footer(
      "Exit status: 0 done; 1 not done: the key is absent (get, pop, contains, ttl, touch, "
      "persist, cas), present (add) or at another version (cas); 2 bad usage; 3 any other error "
      "(one line on stderr). See man lilcache.");

  tools::CliContext context;
  app.add_option("--root", context.root,
                 "Directory of the caches (default: $LILCACHE_ROOT, else "
                 "$XDG_CACHE_HOME/lilcache, else ~/.cache/lilcache)")
      ->envname("LILCACHE_ROOT");
  app.add_option("--name", context.name, "Cache name")->capture_default_str();

  tools::AddDataCommands(app, context);
  tools::AddUpdateCommands(app, context);
  tools::AddServeCommand(app, context);

  if (auto status = tools::ParseCommandLine(app, argc, argv)) return *status;
  return context.status;
}
