// cli: the helpers of tools/cli.h.
#include "cli.h"

#include <cstdio>
#include <vector>

#include "util/quote.h"

namespace lilcache::tools {

std::string OneLine(std::string_view text) { return Escape(text, EscapeMode::kControlBytes); }

void PrintError(std::string_view program, std::string_view command, std::string_view what) {
  std::string line = std::string(program) + ": ";
  if (!command.empty()) line += std::string(command) + ": ";
  line += OneLine(what);  // messages may quote keys or paths with any bytes
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);
}

int UsageError(std::string_view program, std::string_view command, std::string_view what) {
  std::string help(program);
  if (!command.empty()) help += " " + std::string(command);
  PrintError(program, command, std::string(what) + " (see '" + help + " --help')");
  return kExitUsage;
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
      } else if (command.empty() && !app.get_subcommands({}).empty()) {
        what = "unknown command \"" + extra.front() + "\"";
      }
    }
    return UsageError(app.get_name(), command, what);
  }
}

}  // namespace lilcache::tools
