// data: the data subcommands of the `lilcache` tool, thin front ends
// of lilcache::Cache (docs/lilcache.1):
//
//   get KEY                      print the value (exit 1 if missing)
//   set KEY VALUE [--ttl D]      store; VALUE "-" reads it from stdin
//   pop KEY                      print the value and remove it (exit 1 if missing)
//   delete KEY                   remove
//   contains KEY                 exit 0 if present, 1 if not; prints nothing
//   keys [--prefix P] [--limit N] [-0]
//   purge [--yes]
//   stats [--json]
//
// Values go to stdout byte for byte; a newline is added only when stdout is a
// terminal. Only `set` creates a cache: the other commands treat a cache that
// does not exist as empty (and `stats` fails on it), so that a mistyped
// --root or --name creates nothing.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "commands.h"
#include "lilcache/lilcache.h"

namespace lilcache::tools {
namespace {

// The arguments of every data subcommand (each uses some of them).
struct DataArgs {
  std::string key;
  std::string value;
  std::string ttl;
  std::string prefix;
  std::int64_t limit = 0;  // 0: not given (no limit)
  bool null_separated = false;
  bool yes = false;
  bool json = false;
};

// Writes all of `bytes` to fd 1. Throws Error (e.g. ENOSPC, EPIPE with
// SIGPIPE ignored).
void WriteStdout(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(STDOUT_FILENO, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw lilcache::Error(
          lilcache::ErrorCode::io,
          std::string("cannot write to standard output: ") + std::strerror(errno));
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

// Prints a value: its exact bytes, plus a newline if stdout is a terminal
// (so that the shell prompt starts on a line of its own).
void PrintValue(std::string_view value) {
  if (::isatty(STDOUT_FILENO) == 1) {
    WriteStdout(std::string(value) + "\n");
  } else {
    WriteStdout(value);
  }
}

// All of stdin, byte for byte. Throws Error past kMaxValueBytes (without
// reading further) or on a read error.
std::string ReadStdinValue() {
  std::string value;
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(STDIN_FILENO, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw lilcache::Error(lilcache::ErrorCode::io,
                            std::string("cannot read standard input: ") + std::strerror(errno));
    }
    if (n == 0) return value;
    if (value.size() + static_cast<std::size_t>(n) > lilcache::kMaxValueBytes) {
      throw lilcache::Error(lilcache::ErrorCode::limit,
                            "value on standard input exceeds the limit of " +
                                std::to_string(lilcache::kMaxValueBytes) +
                                " bytes (kMaxValueBytes)");
    }
    value.append(buffer, static_cast<std::size_t>(n));
  }
}

// Usage checks common to every data command: the cache name and the key.
void CheckName(const CliContext& cx) {
  try {
    lilcache::validate_name(cx.name);
  } catch (const lilcache::Error& e) {
    throw UsageProblem(std::string("--name: ") + e.what());
  }
}

void CheckKey(const CliContext& cx, std::string_view key) {
  CheckName(cx);
  if (key.empty() || key.size() > lilcache::kMaxKeyBytes) {
    throw UsageProblem("invalid key of " + std::to_string(key.size()) + " bytes (keys are 1.." +
                       std::to_string(lilcache::kMaxKeyBytes) + " bytes)");
  }
}

std::chrono::milliseconds ParseTtl(const std::string& text) {
  std::chrono::milliseconds ttl{0};
  try {
    ttl = lilcache::parse_duration(text);
  } catch (const lilcache::Error& e) {
    throw UsageProblem(std::string("--ttl: ") + e.what());
  }
  if (ttl.count() <= 0) throw UsageProblem("--ttl: must be at least 1ms, got \"" + text + "\"");
  return ttl;
}

int Get(const CliContext& cx, const DataArgs& a) {
  CheckKey(cx, a.key);
  auto cache = cx.open_existing();
  const std::optional<std::string> value = cache ? cache->get(a.key) : std::nullopt;
  if (!value) return kExitMissing;
  PrintValue(*value);
  return 0;
}

int Set(const CliContext& cx, const DataArgs& a) {
  CheckKey(cx, a.key);
  std::optional<std::chrono::milliseconds> ttl;
  if (!a.ttl.empty()) ttl = ParseTtl(a.ttl);
  const std::string value = a.value == "-" ? ReadStdinValue() : a.value;
  auto cache = cx.open();
  if (ttl) {
    cache.set(a.key, value, *ttl);
  } else {
    cache.set(a.key, value);
  }
  return 0;
}

int Pop(const CliContext& cx, const DataArgs& a) {
  CheckKey(cx, a.key);
  auto cache = cx.open_existing();
  const std::optional<std::string> value = cache ? cache->pop(a.key) : std::nullopt;
  if (!value) return kExitMissing;
  PrintValue(*value);  // the key is gone already: a failed write loses the value
  return 0;
}

int Delete(const CliContext& cx, const DataArgs& a) {
  CheckKey(cx, a.key);
  if (auto cache = cx.open_existing()) cache->erase(a.key);
  return 0;
}

int Contains(const CliContext& cx, const DataArgs& a) {
  CheckKey(cx, a.key);
  auto cache = cx.open_existing();
  return cache && cache->contains(a.key) ? 0 : kExitMissing;
}

int Keys(const CliContext& cx, const DataArgs& a) {
  CheckName(cx);
  auto cache = cx.open_existing();
  if (!cache) return 0;
  std::vector<std::string> keys =
      cache->keys(a.prefix, a.limit > 0 ? static_cast<std::size_t>(a.limit) : SIZE_MAX);
  std::sort(keys.begin(), keys.end());
  std::string out;
  for (const std::string& key : keys) {
    out += key;
    out += a.null_separated ? '\0' : '\n';
  }
  WriteStdout(out);
  return 0;
}

int Purge(const CliContext& cx, const DataArgs& a) {
  CheckName(cx);
  if (!a.yes && ::isatty(STDIN_FILENO) == 1) {
    throw UsageProblem("refusing to purge cache \"" + cx.name + "\" under " + cx.resolved_root() +
                       " without --yes");
  }
  if (auto cache = cx.open_existing()) cache->purge();
  return 0;
}

nlohmann::ordered_json StatsJson(const lilcache::Cache& cache, const lilcache::Stats& s) {
  nlohmann::ordered_json j;
  j["name"] = cache.name();
  j["root"] = cache.root();
  j["keys"] = s.keys;
  j["hits"] = s.hits;
  j["misses"] = s.misses;
  j["sets"] = s.sets;
  j["deletes"] = s.deletes;
  j["expired"] = s.expired;
  j["evictions"] = s.evictions;
  j["max_bytes"] = s.max_bytes;
  j["bytes_live"] = s.bytes_live;
  j["bytes_dead"] = s.bytes_dead;
  j["bytes_file"] = s.bytes_file;
  j["generation"] = s.generation;
  j["index_slots"] = s.index_slots;
  j["index_used"] = s.index_used;
  j["processes"] = s.processes;
  j["compactions"] = s.compactions;
  j["snapshots"] = s.snapshots;
  j["last_snapshot_ms"] = s.last_snapshot_ms;
  return j;
}

int PrintStats(const CliContext& cx, const DataArgs& a) {
  CheckName(cx);
  auto cache = cx.open_existing();
  if (!cache) {
    throw lilcache::Error(lilcache::ErrorCode::no_such_cache,
                          "no such cache \"" + cx.name + "\" under " + cx.resolved_root());
  }
  // processes counts this one too: it has the cache open.
  const nlohmann::ordered_json j = StatsJson(*cache, cache->stats());
  std::string out;
  if (a.json) {
    out = j.dump(2) + "\n";
  } else {
    for (const auto& [field, value] : j.items()) {
      std::string line = field;
      line.resize(std::max<std::size_t>(line.size() + 1, 18), ' ');
      line += value.is_string() ? value.get<std::string>() : value.dump();
      out += line + "\n";
    }
  }
  WriteStdout(out);
  return 0;
}

// Adds subcommand `name` running `body(context, args)`.
template <typename Body>
CLI::App* Add(CLI::App& app, CliContext& cx, const std::shared_ptr<DataArgs>& args,
              const std::string& name, const std::string& help, Body body) {
  CLI::App* sub = app.add_subcommand(name, help);
  sub->callback([&cx, args, name, body] {
    cx.status = RunCommand(kProgram, name, kExitError, [&] { return body(cx, *args); });
  });
  return sub;
}

void AddKey(CLI::App* sub, DataArgs& a) {
  sub->add_option("key", a.key, "The key (any bytes but NUL; 1..4096 bytes)")->required();
}

}  // namespace

void AddDataCommands(CLI::App& app, CliContext& cx) {
  auto args = std::make_shared<DataArgs>();
  DataArgs& a = *args;

  AddKey(Add(app, cx, args, "get", "Print the value of KEY (exit 1 if it is missing)", Get), a);

  CLI::App* set =
      Add(app, cx, args, "set", "Store VALUE under KEY ('-': read VALUE from stdin)", Set);
  AddKey(set, a);
  set->add_option("value", a.value, "The value; '-' reads it from standard input, binary-safe")
      ->required();
  set->add_option("--ttl", a.ttl, "Time to live, e.g. 500ms, 120s, 1h30m, 1d (default: none)");

  AddKey(Add(app, cx, args, "pop", "Print the value of KEY and remove it (exit 1 if missing)", Pop),
         a);
  AddKey(Add(app, cx, args, "delete", "Remove KEY (exit 0 whether or not it was there)", Delete),
         a);
  AddKey(
      Add(app, cx, args, "contains", "Exit 0 if KEY is present, 1 if not; print nothing", Contains),
      a);

  CLI::App* keys = Add(app, cx, args, "keys", "List the keys, sorted, one per line", Keys);
  keys->add_option("--prefix", a.prefix, "Only keys starting with P");
  keys->add_option("--limit", a.limit, "At most N keys, N >= 1 (which N is unspecified)")
      ->each([](const std::string& text) {
        if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos ||
            text.find_first_not_of('0') == std::string::npos) {
          throw CLI::ValidationError("must be a number >= 1, got \"" + text + "\"");
        }
      });
  keys->add_flag("-0,--null", a.null_separated, "End each key with a NUL byte, not a newline");

  CLI::App* purge = Add(app, cx, args, "purge",
                        "Remove every key, for every process (needs --yes on a terminal)", Purge);
  purge->add_flag("-y,--yes", a.yes, "Purge without asking (needed when stdin is a terminal)");

  CLI::App* stats = Add(app, cx, args, "stats", "Print the cache's counters and sizes", PrintStats);
  stats->add_flag("--json", a.json, "As one JSON object");
}

}  // namespace lilcache::tools
