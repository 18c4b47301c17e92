// lilcache-compact: compacts named caches (or every cache under a root), for
// cron. Each cache is opened with Cache::open and compacted with
// Cache::compact(); a cache another process is compacting is skipped.
// A cache with nothing to gain (no dead bytes, nothing to evict) is skipped
// with a message unless --force. --dry-run only reads (lib/inspect/inspect.h):
// it opens nothing for writing, so it changes nothing, not even by the
// recovery an open may run; it predicts what a compaction would drop and
// evict.
// See docs/lilcache-compact.1.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <limits>
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
    "Exit status: 0 every cache was compacted or skipped (another process was compacting it, "
    "or nothing to gain without --force); 2 bad usage; 3 some cache failed, e.g. no such cache "
    "(one line per cache on stderr: 'lilcache-compact: NAME: reason'). 1 is not used (it is "
    "lilcache's 'not done' and lilcache-dump's 'damage found').";

struct CompactOptions {
  std::string root;
  std::vector<std::string> names;  // positional names, then --name
  std::vector<std::string> named;  // --name (merged into names)
  bool all = false, dry_run = false, quiet = false, force = false, list = false;
  std::string max_bytes_text;   // --max-bytes as given
  std::uint64_t max_bytes = 0;  // Options::max_bytes of the compacting handle (0: keep)
  std::string backend;          // --backend: only local is accepted
};

// A limit that is set: not 0 (never set) and not UINT64_MAX (lifted).
bool IsLimit(std::uint64_t limit) {
  return limit != 0 && limit != std::numeric_limits<std::uint64_t>::max();
}

std::string Millis(std::chrono::microseconds us) {
  std::ostringstream s;
  s.precision(1);
  s << std::fixed << static_cast<double>(us.count()) / 1000.0 << " ms";
  return s.str();
}

// "1 key", "2 keys".
std::string Keys(std::uint64_t n) { return std::to_string(n) + (n == 1 ? " key" : " keys"); }

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
  void NothingToGain(const std::string& name, std::uint64_t live, bool dry_run) const {
    if (quiet_) return;
    std::cout << name << ": skipped: no dead space and nothing to evict (" << live
              << " bytes live); --force " << (dry_run ? "would compact" : "compacts")
              << " it anyway\n";
  }
  // What a compaction would do: `evicted` keys (`evicted_bytes`) dropped to
  // get under `limit` (0: none).
  void WouldCompact(const std::string& name, const lilcache::InspectHeader& h,
                    const lilcache::LogSummary& s, std::uint64_t limit, std::uint64_t evicted,
                    std::uint64_t evicted_bytes) const {
    if (quiet_) return;
    // Dead: what the scan of the records found beyond the live ones.
    std::uint64_t file = s.scanned_to, live = s.bytes_of(lilcache::RecordState::kLive);
    std::uint64_t dead = lilcache::DeadBytes(file, live);
    std::cout << name << ": would compact generation " << h.meta.generation << ": " << file
              << " bytes of log: " << live << " bytes live ("
              << Keys(s.count(lilcache::RecordState::kLive)) << "), " << dead << " bytes dead";
    if (IsLimit(limit)) {
      std::cout << "; max_bytes " << limit << ": ";
      if (evicted == 0) {
        std::cout << "no evictions";
      } else {
        std::cout << "would evict the oldest " << Keys(evicted) << " (" << evicted_bytes
                  << " bytes), leaving " << live - evicted_bytes << " bytes live";
      }
    }
    if (s.damaged_regions != 0) std::cout << "; " << s.damaged_regions << " damaged regions";
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
      name, {.root = root,
             .max_bytes = o.max_bytes,
             .create_if_missing = false,
             .one_shot = true,
             .backend = "local"});  // the files under root, whatever $LILCACHE_BACKEND says
  if (!o.force) {
    // Nothing to gain: no dead bytes, and the live data within the limit.
    const lilcache::Stats st = cache.stats();
    if (st.bytes_dead == 0 && (!IsLimit(st.max_bytes) || st.bytes_live <= st.max_bytes)) {
      out.NothingToGain(name, st.bytes_live, false);
      return;
    }
  }
  lilcache::CompactionResult r = cache.compact();
  if (r.compacted) {
    out.Compacted(name, r);
  } else {
    out.Skipped(name);
  }
}

// What compact() would do, from a read-only inspection: the evictions are
// the compaction's (lib/engine/compaction.cc, Evict): over the limit, the
// oldest live records go until the live data is at most 90% of it.
void DryRun(const CompactOptions& o, const std::string& root, const std::string& name,
            const Reporter& out) {
  auto in = lilcache::Inspector::Open(root, name);
  if (!in.problems().empty()) {
    const auto& p = in.problems().front();
    throw lilcache::Error(lilcache::ErrorCode::corrupt,
                          p.file + ": " + p.what + " (lilcache-dump shows all problems)");
  }
  std::vector<std::uint64_t> live_sizes;  // in log order: oldest first
  lilcache::Inspector::Callbacks cb;
  cb.on_record = [&](const lilcache::InspectRecord& r) {
    if (r.state == lilcache::RecordState::kLive) live_sizes.push_back(r.size);
    return true;
  };
  const lilcache::LogSummary s = in.ScanLog(cb);
  const std::uint64_t limit = o.max_bytes != 0 ? o.max_bytes : in.header().meta.max_bytes;
  std::uint64_t live = s.bytes_of(lilcache::RecordState::kLive), evicted = 0, evicted_bytes = 0;
  if (IsLimit(limit) && live > limit) {
    for (std::uint64_t size : live_sizes) {
      if (live - evicted_bytes <= limit / 10 * 9) break;
      evicted_bytes += size;
      ++evicted;
    }
  }
  const std::uint64_t dead = lilcache::DeadBytes(s.scanned_to, live);
  if (!o.force && dead == 0 && evicted == 0 && s.damaged_regions == 0) {
    out.NothingToGain(name, live, true);
    return;
  }
  out.WouldCompact(name, in.header(), s, limit, evicted, evicted_bytes);
}

// Returns false (after saying why on stderr) if the cache failed.
bool CompactOne(const CompactOptions& o, const std::string& root, const std::string& name) {
  try {
    Reporter out(o.quiet);
    if (o.dry_run) {
      RequireExisting(root, name);
      DryRun(o, root, name, out);
    } else {
      Compact(o, root, name, out);
    }
    return true;
  } catch (const std::exception& e) {
    tools::PrintError("lilcache-compact", name, e.what());
    return false;
  }
}

int Run(const CompactOptions& o) {
  std::string root;
  std::vector<std::string> names = o.names;
  try {
    root = lilcache::resolve_root(o.root);
    if (o.all || o.list) names = lilcache::list_caches(root);
  } catch (const std::exception& e) {
    tools::PrintError("lilcache-compact", "", e.what());
    return tools::kExitError;
  }
  if (o.list) {
    for (const std::string& name : names) std::cout << name << "\n";
    return tools::kExitOk;
  }
  if (names.empty()) Reporter(o.quiet).NoCaches(root);
  bool ok = true;
  for (const std::string& name : names) ok = CompactOne(o, root, name) && ok;
  return ok ? tools::kExitOk : tools::kExitError;
}

void AddOptions(CLI::App& app, CompactOptions& o) {
  app.add_option("--root", o.root,
                 "Directory holding the caches (default: $LILCACHE_ROOT, "
                 "$XDG_CACHE_HOME/lilcache or ~/.cache/lilcache)");
  auto* all = app.add_flag("--all", o.all, "Compact every cache under the root");
  auto* list = app.add_flag("--list", o.list, "Only list the caches under the root, one a line");
  app.add_option("names", o.names, "Names of the caches to compact (as --name)")
      ->excludes(all)
      ->excludes(list);
  app.add_option("--name", o.named, "Name of a cache to compact; repeatable")
      ->type_name("NAME")
      ->excludes(all)
      ->excludes(list);
  app.add_flag("--dry-run", o.dry_run,
               "Only print what would be compacted (bytes of log, live and dead, keys, and the "
               "evictions under the limit); reads the files without opening the cache");
  app.add_flag("--force", o.force,
               "Compact even a cache with no dead space and nothing to evict (skipped "
               "otherwise)");
  app.add_option("--max-bytes", o.max_bytes_text,
                 "Set the cache's size limit (kept in the cache for every process), " +
                     std::string(tools::kSizeHelp) +
                     ", or none to lift it; over it, evict the least recently stored keys until "
                     "the live data (bytes of log records) is at most 90% of it; default: the "
                     "cache's own limit, if any")
      ->type_name("SIZE|none");
  app.add_flag("-q,--quiet", o.quiet, "Print only errors");
  app.add_option("--backend", o.backend,
                 "local only (the default unless $LILCACHE_BACKEND names another): this tool "
                 "compacts the files of local caches; another backend is refused (exit 2)")
      ->type_name("URL");
  app.set_version_flag("--version", "lilcache-compact " + std::string(lilcache::version()));
  app.footer(std::string(kExitStatusHelp) + " Sizes are in bytes. See man lilcache-compact.");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Compacts lilcache caches: copies their live records into a new generation.",
               "lilcache-compact"};
  CompactOptions o;
  AddOptions(app, o);
  if (auto status = tools::ParseCommandLine(app, argc, argv)) return *status;
  try {
    tools::RequireLocalBackend(o.backend);  // --backend, $LILCACHE_BACKEND
  } catch (const tools::UsageProblem& e) {
    return tools::UsageError(app.get_name(), "", e.what());
  }
  o.names.insert(o.names.end(), o.named.begin(), o.named.end());
  if (!o.all && !o.list && o.names.empty())
    return tools::UsageError(app.get_name(), "", "name a cache (--name NAME) or give --all");
  if (!o.max_bytes_text.empty()) {
    try {
      o.max_bytes = tools::ParseSizeOption("--max-bytes", o.max_bytes_text, true);
    } catch (const tools::UsageProblem& e) {
      return tools::UsageError(app.get_name(), "", e.what());
    }
  }
  for (const std::string& name : o.names) {
    try {
      lilcache::validate_name(name);
    } catch (const lilcache::Error& e) {
      return tools::UsageError(app.get_name(), "", e.what());
    }
  }
  return Run(o);
}
