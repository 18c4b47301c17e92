// commands: what tools/lilcache/commands.h defines out of line.
#include "commands.h"

namespace lilcache::tools {

std::optional<lilcache::Cache> CliContext::open_existing() const {
  if (!lilcache::cache_exists(name, root)) return std::nullopt;
  lilcache::Options o = options();
  o.create_if_missing = false;  // nothing is created even if it vanished meanwhile
  return lilcache::Cache::open(name, o);
}

}  // namespace lilcache::tools
