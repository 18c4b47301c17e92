// data: the data subcommands of the `lilcache` tool, thin front ends
// of lilcache::Cache (docs/lilcache.1):
//
//   get KEY [--version]          print the value (exit 1 if missing); --version:
//                                its version on a line first
//   set KEY VALUE [--ttl D]      store; VALUE "-" reads it from stdin
//   pop KEY                      print the value and remove it (exit 1 if missing)
//   delete KEY                   remove (exit 1 if it was missing)
//   contains KEY                 exit 0 if present, 1 if not; prints nothing
//   keys [--prefix P] [--limit N] [-0]
//   purge [--yes]
//   stats [--json]
//   caches                       list the caches under the root
//
// Values go to stdout byte for byte; a newline is added only when stdout is a
// terminal. Only `set` creates a cache: the other commands treat a cache that
// does not exist as empty (`stats` fails on it: it has no counters to show;
// `caches` lists nothing under a root that does not exist), so that a
// mistyped --root or --name creates nothing.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
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
  bool version = false;  // get --version
};

int Get(const CliContext& cx, const DataArgs& a) {
  CheckKey(cx, a.key);
  auto cache = cx.open_existing();
  if (a.version) {
    // Value and version of one read, as compare_and_set() wants them.
    const std::optional<lilcache::Versioned> v = cache ? cache->get_versioned(a.key) : std::nullopt;
    if (!v) return kExitMissing;
    PrintValue(v->value, std::to_string(v->version) + "\n");
    return 0;
  }
  const std::optional<std::string> value = cache ? cache->get(a.key) : std::nullopt;
  if (!value) return kExitMissing;
  PrintValue(*value);
  return 0;
}

int Set(const CliContext& cx, const DataArgs& a) {
  CheckKey(cx, a.key);
  std::optional<std::chrono::milliseconds> ttl;
  if (!a.ttl.empty()) ttl = ParseTtl("--ttl", a.ttl);
  const std::string value = ValueArgument(a.value);
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
  // As erase()'s bool and REST's 404: removing an absent key is "not done".
  auto cache = cx.open_existing();
  return cache && cache->erase(a.key) ? 0 : kExitMissing;
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
    throw UsageProblem("refusing to purge cache \"" + cx.name + "\" " + cx.where() +
                       " without --yes");
  }
  if (auto cache = cx.open_existing()) cache->purge();
  return 0;
}

nlohmann::ordered_json StatsJson(const CliContext& cx, const lilcache::Cache& cache,
                                 const lilcache::Stats& s) {
  nlohmann::ordered_json j;
  j["name"] = cache.name();
  j["root"] = cache.root();
  if (!cx.local()) j["backend"] = ShownBackend(cx.effective_backend());
  j["keys"] = s.keys;
  j["hits"] = s.hits;
  j["misses"] = s.misses;
  j["sets"] = s.sets;
  j["deletes"] = s.deletes;
  j["expired"] = s.expired;
  j["evictions"] = s.evictions;
  // No limit (0): null, shown as "none".
  j["max_bytes"] =
      s.max_bytes == 0 ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(s.max_bytes);
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
                          "no such cache \"" + cx.name + "\" " + cx.where());
  }
  // processes counts this one too: it has the cache open.
  const nlohmann::ordered_json j = StatsJson(cx, *cache, cache->stats());
  std::string out;
  if (a.json) {
    out = j.dump(2) + "\n";
  } else {
    for (const auto& [field, value] : j.items()) {
      std::string line = field;
      line.resize(std::max<std::size_t>(line.size() + 1, 18), ' ');
      line += value.is_string() ? value.get<std::string>()
              : value.is_null() ? std::string("none")
                                : value.dump();
      out += line + "\n";
    }
  }
  WriteStdout(out);
  return 0;
}

// The caches under the root, one name per line, sorted (none if the root
// does not exist).
int ListCaches(const CliContext& cx, const DataArgs&) {
  RequireLocalBackend(cx.backend);  // the names of files, not of key prefixes
  const std::string root = cx.resolved_root();
  std::string out;
  if (::access(root.c_str(), F_OK) == 0) {
    for (const std::string& name : lilcache::list_caches(root)) out += name + "\n";
  }
  WriteStdout(out);
  return 0;
}

void AddKey(CLI::App* sub, DataArgs& a) {
  sub->add_option("key", a.key, "The key (any bytes but NUL; 1..4096 bytes)")->required();
}

}  // namespace

void AddDataCommands(CLI::App& app, CliContext& cx) {
  auto args = std::make_shared<DataArgs>();
  DataArgs& a = *args;

  CLI::App* get =
      AddCommand(app, cx, args, "get", "Print the value of KEY (exit 1 if it is missing)", Get);
  AddKey(get, a);
  get->add_flag("--version", a.version,
                "First print the value's version (for 'cas') and a newline, then the value");

  CLI::App* set =
      AddCommand(app, cx, args, "set", "Store VALUE under KEY ('-': read VALUE from stdin)", Set);
  AddKey(set, a);
  set->add_option("value", a.value, "The value; '-' reads it from standard input, binary-safe")
      ->required();
  set->add_option("--ttl", a.ttl, "Time to live, e.g. 500ms, 120s, 1h30m, 1d (default: none)")
      ->type_name("DURATION");

  AddKey(AddCommand(app, cx, args, "pop",
                    "Print the value of KEY and remove it (exit 1 if missing)", Pop),
         a);
  AddKey(AddCommand(app, cx, args, "delete", "Remove KEY (exit 1 if it was missing)", Delete), a);
  AddKey(AddCommand(app, cx, args, "contains", "Exit 0 if KEY is present, 1 if not; print nothing",
                    Contains),
         a);

  CLI::App* keys = AddCommand(app, cx, args, "keys", "List the keys, sorted, one per line", Keys);
  keys->add_option("--prefix", a.prefix, "Only keys starting with P")->type_name("P");
  keys->add_option("--limit", a.limit, "At most N keys, N >= 1 (which N is unspecified)")
      ->type_name("N")
      ->each([](const std::string& text) {
        if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos ||
            text.find_first_not_of('0') == std::string::npos) {
          throw CLI::ValidationError("must be a number >= 1, got \"" + text + "\"");
        }
      });
  keys->add_flag("-0,--null", a.null_separated, "End each key with a NUL byte, not a newline");

  CLI::App* purge =
      AddCommand(app, cx, args, "purge",
                 "Remove every key, for every process (needs --yes on a terminal)", Purge);
  purge->add_flag("-y,--yes", a.yes, "Purge without asking (needed when stdin is a terminal)");

  CLI::App* stats =
      AddCommand(app, cx, args, "stats", "Print the cache's counters and sizes", PrintStats);
  stats->add_flag("--json", a.json, "As one JSON object (max_bytes: null for none)");

  AddCommand(app, cx, args, "caches",
             "List the caches under the root (--root), one name per line, sorted; --name is "
             "ignored. Local caches only: exit 2 with another --backend",
             ListCaches);
}

}  // namespace lilcache::tools
