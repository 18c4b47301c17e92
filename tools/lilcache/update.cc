// update: the conditional and read-modify-write subcommands of the `lilcache`
// tool and those of one key's expiry, thin front ends of lilcache::Cache's
// (docs/lilcache.1):
//
//   add KEY VALUE [--ttl D]                     store only if absent (exit 1 if present)
//   incr KEY [--by N] [--initial N] [--ttl D]   add N (default 1); print the new value
//   decr KEY [--by N] [--initial N] [--ttl D]   subtract N; print the new value
//   cas KEY VERSION VALUE [--ttl D]             store only if KEY is at VERSION
//   cas KEY VERSION --erase                     remove only if KEY is at VERSION
//   ttl KEY                                     print the milliseconds left, or "none"
//   touch KEY --ttl D                           give KEY a new expiry
//   persist KEY                                 drop KEY's expiry
//
// Each is one atomic operation of the library, across all processes; VERSION
// is the first line `get KEY --version` prints. Exit 1: "not done" (the key is
// absent; for add, present; for cas, at another version). add, incr and decr
// create the cache like set; the others treat a missing cache as empty.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "commands.h"
#include "lilcache/lilcache.h"

namespace lilcache::tools {
namespace {

// The arguments of every update subcommand (each uses some of them).
struct UpdateArgs {
  std::string key;
  std::string value;                       // add, cas
  const CLI::Option* cas_value = nullptr;  // whether cas got a VALUE
  std::string version;                     // cas
  std::string ttl;
  std::string by = "1";
  std::string initial = "0";
  bool erase = false;  // cas --erase
};

std::optional<std::chrono::milliseconds> OptionalTtl(const UpdateArgs& a) {
  if (a.ttl.empty()) return std::nullopt;
  return ParseTtl("--ttl", a.ttl);
}

int Add(const CliContext& cx, const UpdateArgs& a) {
  CheckKey(cx, a.key);
  const std::optional<std::chrono::milliseconds> ttl = OptionalTtl(a);
  const std::string value = ValueArgument(a.value);
  auto cache = cx.open();
  const bool added = ttl ? cache.add(a.key, value, *ttl) : cache.add(a.key, value);
  return added ? kExitOk : kExitNotDone;
}

// incr (sign 1) and decr (sign -1): prints the new value and a newline.
int Increment(const CliContext& cx, const UpdateArgs& a, int sign) {
  CheckKey(cx, a.key);
  const std::int64_t by = ParseInt64("--by", a.by);
  const std::int64_t initial = ParseInt64("--initial", a.initial);
  const std::optional<std::chrono::milliseconds> ttl = OptionalTtl(a);
  auto cache = cx.open();
  std::int64_t result = 0;
  if (sign > 0) {
    result = ttl ? cache.increment(a.key, by, initial, *ttl) : cache.increment(a.key, by, initial);
  } else {
    result = ttl ? cache.decrement(a.key, by, initial, *ttl) : cache.decrement(a.key, by, initial);
  }
  WriteStdout(std::to_string(result) + "\n");
  return kExitOk;
}

int CompareAndSet(const CliContext& cx, const UpdateArgs& a) {
  CheckKey(cx, a.key);
  const std::uint64_t version = ParseVersion(a.version);
  const bool has_value = a.cas_value->count() > 0;
  if (a.erase) {
    if (has_value) throw UsageProblem("--erase takes no VALUE");
    if (!a.ttl.empty()) throw UsageProblem("--erase takes no --ttl");
  } else if (!has_value) {
    throw UsageProblem("VALUE is required (or --erase)");
  }
  const std::optional<std::chrono::milliseconds> ttl = OptionalTtl(a);
  const std::string value = a.erase ? std::string() : ValueArgument(a.value);
  auto cache = cx.open_existing();  // no cache: no key at any version
  if (!cache) return kExitNotDone;
  bool done = false;
  if (a.erase) {
    done = cache->compare_and_erase(a.key, version);
  } else {
    done = ttl ? cache->compare_and_set(a.key, version, value, *ttl)
               : cache->compare_and_set(a.key, version, value);
  }
  return done ? kExitOk : kExitNotDone;
}

int Ttl(const CliContext& cx, const UpdateArgs& a) {
  CheckKey(cx, a.key);
  auto cache = cx.open_existing();
  const std::optional<std::chrono::milliseconds> left = cache ? cache->ttl(a.key) : std::nullopt;
  if (!left) return kExitNotDone;
  WriteStdout(*left == lilcache::kNoExpiry ? std::string("none\n")
                                           : std::to_string(left->count()) + "\n");
  return kExitOk;
}

int Touch(const CliContext& cx, const UpdateArgs& a) {
  CheckKey(cx, a.key);
  const std::chrono::milliseconds ttl = ParseTtl("--ttl", a.ttl);
  auto cache = cx.open_existing();
  return cache && cache->touch(a.key, ttl) ? kExitOk : kExitNotDone;
}

int Persist(const CliContext& cx, const UpdateArgs& a) {
  CheckKey(cx, a.key);
  auto cache = cx.open_existing();
  return cache && cache->persist(a.key) ? kExitOk : kExitNotDone;
}

void AddKey(CLI::App* sub, UpdateArgs& a) {
  sub->add_option("key", a.key, "The key (any bytes but NUL; 1..4096 bytes)")->required();
}

void AddTtl(CLI::App* sub, UpdateArgs& a, const std::string& help) {
  sub->add_option("--ttl", a.ttl, help + ", e.g. 500ms, 120s, 1h30m, 1d")->type_name("DURATION");
}

void AddCounterOptions(CLI::App* sub, UpdateArgs& a, const std::string& verb) {
  AddKey(sub, a);
  sub->add_option("--by", a.by, "The integer to " + verb + " (default 1)")->type_name("N");
  sub->add_option("--initial", a.initial,
                  "The value an absent key starts from before it is changed (default 0)")
      ->type_name("N");
  AddTtl(sub, a, "Time to live of a key this creates (a present key keeps its expiry)");
}

}  // namespace

void AddUpdateCommands(CLI::App& app, CliContext& cx) {
  auto args = std::make_shared<UpdateArgs>();
  UpdateArgs& a = *args;

  CLI::App* add = AddCommand(
      app, cx, args, "add", "Store VALUE under KEY only if KEY is absent (exit 1 if present)", Add);
  AddKey(add, a);
  add->add_option("value", a.value, "The value; '-' reads it from standard input, binary-safe")
      ->required();
  AddTtl(add, a, "Time to live (default: none)");

  AddCounterOptions(
      AddCommand(app, cx, args, "incr",
                 "Add to the integer under KEY atomically; print the new value",
                 [](const CliContext& c, const UpdateArgs& u) { return Increment(c, u, 1); }),
      a, "add");
  AddCounterOptions(
      AddCommand(app, cx, args, "decr",
                 "Subtract from the integer under KEY atomically; print the new value",
                 [](const CliContext& c, const UpdateArgs& u) { return Increment(c, u, -1); }),
      a, "subtract");

  CLI::App* cas =
      AddCommand(app, cx, args, "cas",
                 "Store VALUE under KEY (--erase: remove KEY) only if KEY is still at VERSION "
                 "(exit 1 if not)",
                 CompareAndSet);
  AddKey(cas, a);
  cas->add_option("version", a.version, "The version: the first line 'get KEY --version' printed")
      ->required();
  a.cas_value = cas->add_option("value", a.value,
                                "The new value; '-' reads it from standard input, binary-safe");
  cas->add_flag("--erase", a.erase, "Remove KEY instead of storing a value");
  AddTtl(cas, a, "Time to live of the new value (default: none)");

  AddKey(
      AddCommand(app, cx, args, "ttl",
                 "Print the milliseconds KEY has left to live, or 'none' (exit 1 if absent)", Ttl),
      a);

  CLI::App* touch =
      AddCommand(app, cx, args, "touch",
                 "Give KEY a new time to live, keeping its value (exit 1 if absent)", Touch);
  AddKey(touch, a);
  touch->add_option("--ttl", a.ttl, "The new time to live, from now, e.g. 500ms, 120s, 1h30m, 1d")
      ->type_name("DURATION")
      ->required();

  AddKey(AddCommand(app, cx, args, "persist",
                    "Drop KEY's time to live, keeping its value (exit 1 if absent)", Persist),
         a);
}

}  // namespace lilcache::tools
