// cli: what the command-line tools (lilcache, lilcache-dump and
// lilcache-compact) share: their exit statuses, the parsing of argv with the
// statuses they document (0 after --help or --version, 2 on bad usage), and
// error lines on stderr that are always one line, "PROGRAM: [COMMAND: ]what".
// The tools use the public API (include/lilcache/); lilcache-dump and
// lilcache-compact --dry-run also the inspector (lib/inspect/, linked from
// the internal static library lilcache_internal).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace lilcache::tools {

// The exit statuses, one table for the three tools (docs/lilcache.1,
// docs/lilcache-dump.1, docs/lilcache-compact.1, README.md "Exit statuses"):
//   0  done
//   1  a negative answer, nothing on stderr for lilcache: the key is absent
//      (get, pop, delete, contains, ttl, touch, persist, cas), already
//      present (add) or at another version (cas); lilcache-dump: damage was
//      found (reported on stdout). lilcache-compact never exits 1.
//   2  bad usage: an unknown option, a bad or empty value (durations and
//      sizes included), an empty or bad $LILCACHE_* variable, a bad name, a
//      bad --backend URL; a tool or command that works on a machine's files
//      (lilcache caches, lilcache-dump, lilcache-compact) given a backend
//      that is not local (--backend or $LILCACHE_BACKEND)
//   3  the work could not be done: no such cache (where one is needed), an
//      I/O or permission error, a busy lock, an address in use...
inline constexpr int kExitOk = 0;
inline constexpr int kExitNotDone = 1;  // lilcache: absent, present (add), another version (cas)
inline constexpr int kExitMissing = kExitNotDone;  // lilcache get, pop, contains...: absent
inline constexpr int kExitDamage = 1;              // lilcache-dump: damage found
inline constexpr int kExitUsage = 2;               // every tool: bad usage
inline constexpr int kExitError = 3;               // every tool: could not do it

// The table above for --help footers, one paragraph.
inline constexpr const char* kExitStatusHelp =
    "Exit status (the same for lilcache, lilcache-dump and lilcache-compact): 0 done; 1 a "
    "negative answer (lilcache: the key is absent, present for add, at another version for "
    "cas; lilcache-dump: damage found); 2 bad usage (an option, value, duration, size, name or "
    "$LILCACHE_* variable, backend URL, or a local-only tool on a Redis backend); 3 the work could "
    "not be done (no such cache, I/O, permissions...). "
    "Errors are one line on stderr.";

// Sizes (--max-bytes, --memory-budget), for help texts.
inline constexpr const char* kSizeHelp =
    "a size: digits and an optional unit B K M G T (KB, KiB...; all powers of 1024), e.g. "
    "512MiB, 1G";

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

// The size `text` given to `option` ("--max-bytes"): lilcache's size syntax
// (lib/util/size.h); "none" gives UINT64_MAX (no limit) if `limit`. Throws
// UsageProblem naming the option.
std::uint64_t ParseSizeOption(std::string_view option, const std::string& text, bool limit);

// A size limit for people: "none" for 0 or UINT64_MAX, else the number.
std::string SizeLimitText(std::uint64_t bytes);

// ---- Backends (Options::backend, docs/cluster.md) ---------------------------

// The backend a tool works on: `option` (--backend URL) if not empty, else
// $LILCACHE_BACKEND if set and not empty, else "local": what Cache::open
// does with Options::backend = option.
std::string EffectiveBackend(const std::string& option);

// Whether `backend` (EffectiveBackend's) is this machine's files.
inline bool IsLocalBackend(std::string_view backend) { return backend == "local"; }

// `backend` for messages: a URL's password replaced by "***"
// ("redis://:***@h:1").
std::string ShownBackend(std::string_view backend);

// "" if `backend` is "local" or looks like a backend URL
// ("redis-cluster://" or "redis://" and something after it), else the
// problem, naming `what` ("--backend", "$LILCACHE_BACKEND"). The URL's
// details (ports, options) are checked by Cache::open.
std::string BackendProblem(std::string_view what, std::string_view backend);

// Throws UsageProblem unless EffectiveBackend(option) is local: for the
// tools and commands that read or write a machine's files themselves
// (`lilcache caches`, lilcache-dump, lilcache-compact); UsageProblem as
// BackendProblem's if the backend is malformed.
void RequireLocalBackend(const std::string& option);

// Parses argv into app (named after the program). Returns nullopt to go on,
// or the status to exit with: kExitOk after printing --help or --version,
// kExitUsage after a usage error (one line, "PROGRAM: [COMMAND: ]what (see
// ...)", naming the subcommand only for what follows its name). Before
// parsing it refuses (usage) an empty $LILCACHE_ROOT, an empty or unknown
// $LILCACHE_LOGLEVEL and an empty or malformed $LILCACHE_BACKEND, and makes every option that takes
// a value refuse an empty one: "--ttl is empty; omit it for its default" ("--ttl ''" is a mistake,
// not "the default"). CLI11's own messages and exit codes are not used for errors.
std::optional<int> ParseCommandLine(CLI::App& app, int argc, char** argv);

}  // namespace lilcache::tools
