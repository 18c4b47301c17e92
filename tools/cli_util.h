// cli_util: what the operator tools share: argument parsing with the exit
// statuses they document (0 for --help/--version, 2 for bad usage).
#pragma once

#include <CLI/CLI.hpp>
#include <iostream>
#include <optional>
#include <string>

namespace lilcache::tools {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;

// Prints a usage error (one line, then a hint) on stderr and returns 2.
inline int UsageError(const CLI::App& app, const std::string& what) {
  std::cerr << app.get_name() << ": " << what << "\nRun '" << app.get_name()
            << " --help' for more information.\n";
  return kExitUsage;
}

// Parses argv into app. Returns nullopt to go on, or the status to exit with:
// 0 after printing --help or --version, 2 after a usage error (CLI11's own
// exit codes are not used for errors).
inline std::optional<int> Parse(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    return std::nullopt;
  } catch (const CLI::Success& e) {  // --help, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return UsageError(app, e.what());
  }
}

}  // namespace lilcache::tools
