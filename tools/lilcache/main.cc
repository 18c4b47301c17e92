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
  app.footer(std::string(tools::kExitStatusHelp) + " See man lilcache.");

  tools::CliContext context;
  app.add_option("--root", context.root,
                 "Directory of the caches (default: $LILCACHE_ROOT, else "
                 "$XDG_CACHE_HOME/lilcache, else ~/.cache/lilcache)")
      ->envname("LILCACHE_ROOT");
  app.add_option("--name", context.name, "Cache name (list them with 'lilcache caches')")
      ->capture_default_str();
  app.add_option("--backend", context.backend,
                 "Where the cache lives: local (this machine's files under --root), "
                 "redis-cluster://[[user]:password@]host:port[,host:port...][?options] (a Redis "
                 "Cluster, through these seed nodes) or redis://[[user]:password@]host:port "
                 "(one Redis server); docs/cluster.md. Default: $LILCACHE_BACKEND, else local. "
                 "'caches' works on local caches only")
      ->type_name("URL");

  tools::AddDataCommands(app, context);
  tools::AddUpdateCommands(app, context);
  tools::AddServeCommand(app, context);
  // A subcommand's --help shows only its own options: name the global ones.
  for (CLI::App* sub : app.get_subcommands({})) {
    sub->footer(
        "Global options (before or after the command): --root DIR (default: $LILCACHE_ROOT, "
        "else $XDG_CACHE_HOME/lilcache, else ~/.cache/lilcache), --name NAME (default: "
        "\"default\"), --backend URL (local, redis-cluster://host:port[,...] or "
        "redis://host:port; default: $LILCACHE_BACKEND, else local). " +
        std::string(tools::kExitStatusHelp));
  }

  if (auto status = tools::ParseCommandLine(app, argc, argv)) return *status;
  return context.status;
}
