// lilcache_cli: the helpers of tools/lilcache_cli.h.
#include "cli.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "lilcache/env.h"
#include "util/names.h"

namespace lilcache::tools {

std::string CliContext::resolved_root() const { return lilcache::ResolveRoot(root); }

std::optional<lilcache::Cache> CliContext::open_existing() const {
  lilcache::validate_name(name);
  if (!lilcache::CacheExists(lilcache::Env::Default(), {resolved_root(), name})) {
    return std::nullopt;
  }
  lilcache::Options o = options();
  o.create_if_missing = false;  // nothing is created even if it vanished meanwhile
  return lilcache::Cache::open(name, o);
}

std::string OneLine(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += ch;
    }
  }
  return out;
}

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
