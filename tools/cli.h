// cli: what the command-line tools (lilcache, lilcache-dump and
// lilcache-compact) share: their exit statuses, the parsing of argv with the
// statuses they document (0 after --help or --version, 2 on bad usage), and
// error lines on stderr that are always one line, "PROGRAM: [COMMAND: ]what".
// The tools use the public API (include/lilcache/); lilcache-dump and
// lilcache-compact --dry-run also the inspector (lib/inspect/, linked from
// the internal static library lilcache_internal).
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace lilcache::tools {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;   // lilcache-dump, lilcache-compact: something failed
inline constexpr int kExitNotDone = 1;  // lilcache: not done (the key is absent, already
                                        // present (add), at another version (cas))
inline constexpr int kExitMissing =
    kExitNotDone;                     // lilcache get, pop, contains: the key is missing
inline constexpr int kExitUsage = 2;  // every tool: bad usage
inline constexpr int kExitError = 3;  // lilcache: any other error

// `text` on one line: control bytes escaped as \n, \t, \r or \xhh (quote.h,
// EscapeMode::kControlBytes), the rest (a message's quotes, UTF-8) kept. For
// messages that quote keys or paths.
std::string OneLine(std::string_view text);

// Prints "PROGRAM: what", or "PROGRAM: COMMAND: what" if `command` is not
// empty, on stderr as one line.
void PrintError(std::string_view program, std::string_view command, std::string_view what);

// Prints a usage error, "PROGRAM: [COMMAND: ]what (see 'PROGRAM [COMMAND ]--help')",
// and returns kExitUsage.
int UsageError(std::string_view program, std::string_view command, std::string_view what);

// A usage error found after parsing (a bad --ttl, an empty key): RunCommand
// answers it with kExitUsage.
struct UsageProblem : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Runs a (sub)command's body and returns its exit status: body's result,
// kExitUsage on UsageProblem, `error_status` (after printing the error) on
// any other exception.
template <typename Body>
int RunCommand(std::string_view program, std::string_view command, int error_status, Body&& body) {
  try {
    return body();
  } catch (const UsageProblem& e) {
    return UsageError(program, command, e.what());
  } catch (const std::exception& e) {
    PrintError(program, command, e.what());
    return error_status;
  }
}

// Parses argv into app (named after the program). Returns nullopt to go on,
// or the status to exit with: kExitOk after printing --help or --version,
// kExitUsage after a usage error (UsageError, naming the subcommand being
// parsed if any). CLI11's own exit codes are not used for errors.
std::optional<int> ParseCommandLine(CLI::App& app, int argc, char** argv);

}  // namespace lilcache::tools
