// lilcache_cli: the helpers of tools/lilcache_cli.h.
#include "cli.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "util/names.h"
#include "util/quote.h"

namespace lilcache::tools {

std::string CliContext::resolved_root() const { return lilcache::ResolveRoot(root); }

std::optional<lilcache::Cache> CliContext::open_existing() const {
  lilcache::validate_name(name);
  const std::string meta = lilcache::CachePaths{resolved_root(), name}.meta();
  struct stat st;
  if (::lstat(meta.c_str(), &st) != 0) {
    if (errno == ENOENT) return std::nullopt;
    throw lilcache::Error("cannot stat " + meta + ": " + std::strerror(errno));
  }
  lilcache::Options o = options();
  o.create_if_missing = false;  // nothing is created even if it vanished meanwhile
  return lilcache::Cache::open(name, o);
}

std::string OneLine(std::string_view text) { return Escape(text, EscapeMode::kControlBytes); }

void PrintError(std::string_view command, std::string_view what) {
  std::string line = "lilcache: ";
  if (!command.empty()) line += std::string(command) + ": ";
  line += OneLine(what);  // messages may quote keys or paths with any bytes
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);
}

std::optional<int> ParseCommandLine(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    return std::nullopt;
  } catch (const CLI::Success& e) {  // --help, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // Name the subcommand being parsed, if any, as its own errors do.
    std::string command, what = e.what();
    for (const CLI::App* sub : app.get_subcommands()) command = sub->get_name();
    std::vector<std::string> extra = app.remaining();
    if (!extra.empty() && dynamic_cast<const CLI::RequiredError*>(&e) != nullptr) {
      // CLI11 checks requirements before extras: the extra is the real problem.
      if (extra.front().starts_with("-")) {
        what = "unknown option \"" + extra.front() + "\"";
      } else if (command.empty()) {
        what = "unknown command \"" + extra.front() + "\"";
      }
    }
    const std::string help =
        command.empty() ? "lilcache --help" : "lilcache " + command + " --help";
    PrintError(command, what + " (see '" + help + "')");
    return kExitBadUsage;
  }
}

}  // namespace lilcache::tools
