// commands: the subcommands of the `lilcache` tool. main()
// (tools/lilcache/main.cc) parses the global options into a CliContext and
// each tools/lilcache/*.cc adds its subcommands with an Add*Command function;
// the subcommand that runs stores its exit status in CliContext::status.
//
// Exit statuses of every subcommand (the table in tools/cli.h, docs/lilcache.1):
// 0 done, 1 not done (the key is absent: get, pop, delete, contains, ttl,
// touch, persist, cas; already present: add; another version: cas), 2 bad
// usage, 3 any other error. Every error is one line on stderr:
// "lilcache: COMMAND: what".
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "../cli.h"
#include "lilcache/lilcache.h"

namespace lilcache::tools {

inline constexpr const char* kProgram = "lilcache";

struct CliContext {
  std::string root;              // --root DIR ($LILCACHE_ROOT); "" = the default root
  std::string name = "default";  // --name NAME: the cache
  std::string backend;           // --backend URL; "" = $LILCACHE_BACKEND, else local
  int status = 0;                // exit status of the subcommand that ran

  // Options for Cache::open with the global options applied: a one-shot
  // command's (its open is logged at debug; serve clears one_shot).
  lilcache::Options options() const {
    lilcache::Options o;
    o.root = root;
    o.backend = backend;  // "": the library reads $LILCACHE_BACKEND
    o.one_shot = true;
    return o;
  }

  // The cache, created if it does not exist yet. Throws lilcache::Error, or
  // UsageProblem if a Redis backend's URL is refused (invalid_argument).
  lilcache::Cache open() const;

  // The cache if it exists, nullopt if not; never creates anything
  // (Options::create_if_missing = false): reading commands treat a cache
  // that was never written as empty. Throws lilcache::Error on a bad name or
  // an unusable root, UsageProblem as open().
  std::optional<lilcache::Cache> open_existing() const;

  // The backend in use (EffectiveBackend: --backend, $LILCACHE_BACKEND, local).
  std::string effective_backend() const { return EffectiveBackend(backend); }
  bool local() const { return IsLocalBackend(effective_backend()); }

  // Where the cache is, for messages: "under ROOT" or "on BACKEND".
  std::string where() const {
    return local() ? "under " + resolved_root() : "on " + ShownBackend(effective_backend());
  }

  // The root directory the cache lives in (--root, else the default root).
  std::string resolved_root() const { return lilcache::resolve_root(root); }
};

// Cache::open(cx.name, o); a Redis backend's refusal of its URL (Error
// invalid_argument: the name is checked before) or of an option it leaves to
// the servers (Error unsupported: serve --snapshot, --max-bytes) is thrown
// as UsageProblem, the other errors as they are.
lilcache::Cache OpenCache(const CliContext& cx, const lilcache::Options& o);

// "lilcache: COMMAND: what" on stderr (PrintError).
inline void PrintError(std::string_view command, std::string_view what) {
  PrintError(kProgram, command, what);
}

// Adds subcommand `name` with help `help`; when it runs, RunCommand runs
// body(context, *args) and its exit status goes to context.status. `args`
// receives the subcommand's parsed arguments (shared by a group of commands).
template <typename Args, typename Body>
CLI::App* AddCommand(CLI::App& app, CliContext& cx, const std::shared_ptr<Args>& args,
                     const std::string& name, const std::string& help, Body body) {
  CLI::App* sub = app.add_subcommand(name, help);
  sub->callback([&cx, args, name, body] {
    cx.status = RunCommand(kProgram, name, kExitError, [&] { return body(cx, *args); });
  });
  return sub;
}

// ---- What the subcommands share (tools/lilcache/commands.cc) ----------------
// Each throws lilcache::Error on a system error and UsageProblem on bad usage.

// Writes all of `bytes` to standard output (e.g. ENOSPC, or EPIPE with SIGPIPE
// ignored, throw Error).
void WriteStdout(std::string_view bytes);

// Prints a value: its exact bytes, plus a newline if stdout is a terminal (so
// that the shell prompt starts on a line of its own). `header`, if not empty,
// is written before it in the same write.
void PrintValue(std::string_view value, std::string_view header = {});

// The VALUE argument of set, add and cas: `arg`, or all of standard input,
// byte for byte, if it is "-" (Error past kMaxValueBytes).
std::string ValueArgument(const std::string& arg);

// UsageProblem unless --name is a valid cache name and the backend
// (--backend, else $LILCACHE_BACKEND) is local or looks like a backend URL.
void CheckName(const CliContext& cx);

// UsageProblem unless --name is valid and `key` has 1..kMaxKeyBytes bytes.
void CheckKey(const CliContext& cx, std::string_view key);

// The duration `text` given to `option` ("--ttl"), at least 1ms.
std::chrono::milliseconds ParseTtl(std::string_view option, const std::string& text);

// The decimal int64 `text` given to `option` (e.g. "--by"): an optional "-"
// and digits, nothing else.
std::int64_t ParseInt64(std::string_view option, const std::string& text);

// The VERSION argument of cas: a decimal uint64, digits only (as the first
// line of `get KEY --version`).
std::uint64_t ParseVersion(const std::string& text);

// `lilcache get|set|pop|delete|contains|keys|purge|stats|caches`: tools/lilcache/data.cc.
void AddDataCommands(CLI::App& app, CliContext& context);

// `lilcache add|incr|decr|cas|ttl|touch|persist`: tools/lilcache/update.cc.
void AddUpdateCommands(CLI::App& app, CliContext& context);

// `lilcache serve`: tools/lilcache/serve.cc.
void AddServeCommand(CLI::App& app, CliContext& context);

}  // namespace lilcache::tools
