// lilcache-compact: compacts named caches (or every cache under a root), for
// cron. Each cache is opened with Cache::open and compacted with
// Cache::compact(); a cache another process is compacting is skipped.
// --dry-run only reads (lib/inspect/inspect.h): it opens nothing for writing, so it
// changes nothing, not even by the recovery an open may run.
// See docs/lilcache-compact.1.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "cli.h"
#include "engine/space.h"
#include "inspect/inspect.h"
#include "lilcache/env.h"
#include "lilcache/lilcache.h"

namespace {

namespace tools = lilcache::tools;

constexpr const char* kExitStatusHelp =
    "Exit status: 0 every cache was compacted (or skipped because another process was "
    "compacting it); 1 some cache failed (one line per cache on stderr: "
    "'lilcache-compact: NAME: reason'); 2 bad usage.";

struct CompactOptions {
  std::string root;
  std::vector<std::string> names;
  bool all = false, dry_run = false, quiet = false;
  std::uint64_t max_bytes = 0;  // Options::max_bytes of the compacting handle
};

std::string Millis(std::chrono::microseconds us) {
  std::ostringstream s;
  s.precision(1);
  s << std::fixed << static_cast<double>(us.count()) / 1000.0 << " ms";
  return s.str();
}

// Throws Error unless the cache exists (for --dry-run, which does not open
// it), with the message Cache::open gives.
void RequireExisting(const std::string& root, const std::string& name) {
  if (lilcache::cache_exists(name, root)) return;
  throw lilcache::Error(lilcache::ErrorCode::no_such_cache,
                        "no such cache (" + root + "/" + name + ".meta does not exist)");
}

// A cache's compaction, reported on stdout unless --quiet.
class Reporter {
 public:
  explicit Reporter(bool quiet) : quiet_(quiet) {}
  void Compacted(const std::string& name, const lilcache::CompactionResult& r) const {
    if (quiet_) return;
    std::cout << name << ": compacted: generation " << r.generation - 1 << " -> " << r.generation
              << ", " << r.bytes_before << " -> " << r.bytes_after << " bytes of log, "
              << r.keys_live << " live, " << r.keys_expired << " expired, " << r.keys_deleted
              << " deleted, " << r.keys_evicted << " evicted keys, " << Millis(r.duration)
              << " (writers paused " << Millis(r.writer_pause) << ")\n";
  }
  void Skipped(const std::string& name) const {
    if (!quiet_) std::cout << name << ": skipped: another process is compacting it\n";
  }
  void WouldCompact(const std::string& name, const lilcache::InspectHeader& h,
                    const lilcache::LogSummary& s) const {
    if (quiet_) return;
    // Dead: what the scan of the records found beyond the live ones.
    std::uint64_t file = s.scanned_to, live = s.bytes_of(lilcache::RecordState::kLive);
    std::uint64_t dead = lilcache::DeadBytes(file, live);
    std::cout << name << ": would compact generation " << h.meta.generation << ": " << file
              << " bytes of log, " << live << " live, " << dead << " dead, "
              << s.count(lilcache::RecordState::kLive) << " keys";
    if (s.damaged_regions != 0) std::cout << ", " << s.damaged_regions << " damaged regions";
    std::cout << "\n";
  }
  void NoCaches(const std::string& root) const {
    if (!quiet_) std::cout << "no caches under " << root << "\n";
  }

 private:
  bool quiet_;
};

void Compact(const CompactOptions& o, const std::string& root, const std::string& name,
             const Reporter& out) {
  auto cache = lilcache::Cache::open(
      name, {.root = root, .max_bytes = o.max_bytes, .create_if_missing = false});
  lilcache::CompactionResult r = cache.compact();
  if (r.compacted) {
    out.Compacted(name, r);
  } else {
    out.Skipped(name);
  }
}

// What compact() would do, from a read-only inspection.
void DryRun(const std::string& root, const std::string& name, const Reporter& out) {
  auto in = lilcache::Inspector::Open(root, name);
  if (!in.problems().empty()) {
    const auto& p = in.problems().front();
    throw lilcache::Error(lilcache::ErrorCode::corrupt,
                          p.file + ": " + p.what + " (lilcache-dump shows all problems)");
  }
  out.WouldCompact(name, in.header(), in.ScanLog());
}

// Returns false (after saying why on stderr) if the cache failed.
bool CompactOne(const CompactOptions& o, const std::string& root, const std::string& name) {
  try {
    Reporter out(o.quiet);
    if (o.dry_run) {
      RequireExisting(root, name);
      DryRun(root, name, out);
    } else {
      Compact(o, root, name, out);
    }
    return true;
  } catch (const std::exception& e) {
    std::cerr << "lilcache-compact: " << name << ": " << e.what() << "\n";
    return false;
  }
}

int Run(const CompactOptions& o) {
  std::string root;
  std::vector<std::string> names = o.names;
  try {
    root = lilcache::resolve_root(o.root);
    if (o.all) names = lilcache::list_caches(root);
  } catch (const std::exception& e) {
    std::cerr << "lilcache-compact: " << e.what() << "\n";
    return tools::kExitFailed;
  }
  if (names.empty()) Reporter(o.quiet).NoCaches(root);
  bool ok = true;
  for (const std::string& name : names) ok = CompactOne(o, root, name) && ok;
  return ok ? tools::kExitOk : tools::kExitFailed;
}

void AddOptions(CLI::App& app, CompactOptions& o) {
  app.add_option("--root", o.root,
                 "Directory holding the caches (default: $LILCACHE_ROOT, "
                 "$XDG_CACHE_HOME/lilcache or ~/.cache/lilcache)");
  auto* all = app.add_flag("--all", o.all, "Compact every cache under the root");
  app.add_option("names", o.names, "Names of the caches to compact")->excludes(all);
  app.add_flag("--dry-run", o.dry_run,
               "Only print what would be compacted (sizes, live and dead bytes, keys); "
               "reads the files without opening the cache");
  app.add_option("--max-bytes", o.max_bytes,
                 "Set the cache's size limit (Options::max_bytes, kept in the cache for every "
                 "process) and evict the least recently stored keys until the live data (bytes "
                 "of log records) is under 90% of it; default: the cache's own limit, if any")
      ->check(CLI::PositiveNumber);
  app.add_flag("-q,--quiet", o.quiet, "Print only errors");
  app.set_version_flag("--version", "lilcache-compact " + std::string(lilcache::version()));
  app.footer(kExitStatusHelp);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Compacts lilcache caches: copies their live records into a new generation.",
               "lilcache-compact"};
  CompactOptions o;
  AddOptions(app, o);
  if (auto status = tools::ParseCommandLine(app, argc, argv)) return *status;
  if (!o.all && o.names.empty())
    return tools::UsageError(app.get_name(), "", "name a cache or give --all");
  for (const std::string& name : o.names) {
    try {
      lilcache::validate_name(name);
    } catch (const lilcache::Error& e) {
      return tools::UsageError(app.get_name(), "", e.what());
    }
  }
  return Run(o);
}
