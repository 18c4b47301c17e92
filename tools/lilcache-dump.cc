// lilcache-dump: shows what is in a cache's files: the headers, every record
// of the log (and whether it is live), the index's load and probe lengths,
// and any damage, without modifying anything (lib/inspect/inspect.h does the
// reading; this file only formats). Text for people, --json for programs.
// See docs/lilcache-dump.1.
#include <ctime>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "cli.h"
#include "inspect/inspect.h"
#include "lilcache/lilcache.h"
#include "util/quote.h"

namespace {

using lilcache::DamagedRegion;
using lilcache::IndexStats;
using lilcache::InspectHeader;
using lilcache::InspectProblem;
using lilcache::InspectRecord;
using lilcache::LogSummary;
using lilcache::RecordState;
using nlohmann::json;
namespace tools = lilcache::tools;

constexpr const char* kExitStatusHelp =
    "Exit status: 0 the files are readable and healthy; 1 damage or file problems were found "
    "(reported on stdout, one summary line on stderr); 2 bad usage; 3 the cache cannot be "
    "read (no such cache, permissions). 1 and 3 as lilcache's and lilcache-compact's.\n"
    "Keys and values are shown escaped (\\\\, \\\", \\n, \\t, \\r, and \\xNN for the other "
    "bytes outside printable ASCII) and shortened to --max-bytes input bytes, then \"...\" "
    "(outside the quotes in text; JSON: key_shortened, value_shortened). --full shows them "
    "whole, and in JSON also exact as key_base64 and value_base64.";

struct DumpOptions {
  std::string root, name;
  bool header = false, records = false, index = false, stats = false, json = false;
  bool full = false, list = false;
  std::string backend;  // --backend: only local is accepted
  std::size_t limit = SIZE_MAX;
  std::size_t max_bytes = 32;
};

// ---- formatting ---------------------------------------------------------------

// Bytes as printable ASCII (lilcache::Escape: \\, \", \n, \t, \r and \xhh
// for the rest); at most `max` input bytes (0 = all), then "...".
std::string Escape(std::string_view bytes, std::size_t max) {
  if (max == 0 || bytes.size() <= max) return lilcache::Escape(bytes);
  return lilcache::Escape(bytes.substr(0, max)) + "...";
}

// A path or a message that may hold bytes from a file name or --root, shown
// in text: escaped like keys, in full (no terminal escape gets through).
std::string Shown(std::string_view text) { return Escape(text, 0); }

// "2024-05-01T10:00:00.123Z", or "never" for 0.
std::string FormatTime(std::uint64_t ms) {
  if (ms == 0) return "never";
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03uZ", static_cast<unsigned>(ms % 1000));
  return buf;
}

// `bytes` in base64 (RFC 4648, with padding).
std::string Base64(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const unsigned n = static_cast<unsigned char>(bytes[i]) << 16 |
                       static_cast<unsigned char>(bytes[i + 1]) << 8 |
                       static_cast<unsigned char>(bytes[i + 2]);
    out += kAlphabet[n >> 18 & 63];
    out += kAlphabet[n >> 12 & 63];
    out += kAlphabet[n >> 6 & 63];
    out += kAlphabet[n & 63];
  }
  if (i < bytes.size()) {
    unsigned n = static_cast<unsigned char>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) n |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out += kAlphabet[n >> 18 & 63];
    out += kAlphabet[n >> 12 & 63];
    out += i + 1 < bytes.size() ? kAlphabet[n >> 6 & 63] : '=';
    out += '=';
  }
  return out;
}

// A size limit: "none" for 0 or UINT64_MAX (no limit), else the number.
std::string Limit(std::uint64_t bytes) { return tools::SizeLimitText(bytes); }

json LimitJson(std::uint64_t bytes) { return Limit(bytes) == "none" ? json(nullptr) : json(bytes); }

std::string Hex(std::uint64_t v) {
  std::ostringstream s;
  s << "0x" << std::hex << v;
  return s.str();
}

std::string Percent(double fraction) {
  std::ostringstream s;
  s.precision(2);
  s << std::fixed << fraction * 100 << "%";
  return s.str();
}

const char* TypeName(lilcache::record::RecordType t) {
  return t == lilcache::record::RecordType::kTombstone ? "tombstone" : "set";
}

// ---- what is collected ---------------------------------------------------------

// A record as shown: escaped and shortened copies of its key and value.
struct ShownRecord {
  std::uint64_t offset, size, seq, expires_ms;
  const char* type;
  RecordState state;
  bool checksum_ok;
  std::string key, value;  // escaped, shortened
  std::size_t key_len, value_len;
  bool key_cut, value_cut;               // shortened
  std::string key_base64, value_base64;  // --full: the exact bytes (else empty)
};

// Everything the dump shows, gathered in one pass, then printed as text or
// JSON. Thread-safety: a plain value.
struct Dump {
  std::string name, root;
  InspectHeader header{};
  bool scanned = false;
  LogSummary summary{};
  std::vector<ShownRecord> records{};  // at most --limit
  std::vector<DamagedRegion> damage{};
  bool indexed = false;
  IndexStats index{};
  std::vector<InspectProblem> problems{};

  // Every damaged record starts a damaged region; bad index slots are also problems.
  std::uint64_t damage_count() const { return summary.damaged_regions + index.bad_slots; }
  bool healthy() const { return problems.empty() && damage_count() == 0; }
};

ShownRecord Show(const InspectRecord& r, std::size_t max_bytes, bool full) {
  if (full) max_bytes = 0;
  return ShownRecord{.offset = r.offset,
                     .size = r.size,
                     .seq = r.seq,
                     .expires_ms = r.expires_ms,
                     .type = TypeName(r.type),
                     .state = r.state,
                     .checksum_ok = r.checksum_ok,
                     .key = Escape(r.key, max_bytes),
                     .value = Escape(r.value, max_bytes),
                     .key_len = r.key.size(),
                     .value_len = r.value.size(),
                     .key_cut = max_bytes != 0 && r.key.size() > max_bytes,
                     .value_cut = max_bytes != 0 && r.value.size() > max_bytes,
                     .key_base64 = full ? Base64(r.key) : std::string(),
                     .value_base64 = full ? Base64(r.value) : std::string()};
}

Dump Collect(const DumpOptions& o) {
  auto in = lilcache::Inspector::Open(o.root, o.name);
  Dump d;
  d.name = in.name();
  d.root = in.root();
  d.header = in.header();
  d.problems = in.problems();
  if (o.records || o.stats) {
    d.scanned = in.log_readable();
    lilcache::Inspector::Callbacks cb;
    cb.on_record = [&](const InspectRecord& r) {
      if (o.records && d.records.size() < o.limit)
        d.records.push_back(Show(r, o.max_bytes, o.full));
      return true;
    };
    cb.on_damage = [&](const DamagedRegion& r) { d.damage.push_back(r); };
    d.summary = in.ScanLog(cb);
  }
  if (o.index || o.stats) {
    d.indexed = d.header.index.valid;
    d.index = in.ComputeIndexStats();
    d.problems.insert(d.problems.end(), d.index.problems.begin(), d.index.problems.end());
  }
  return d;
}

// ---- text ------------------------------------------------------------------------

void Field(std::ostream& out, std::string_view name, const auto& value) {
  out << "  " << name << std::string(name.size() < 16 ? 16 - name.size() : 1, ' ') << value << "\n";
}

void PrintMeta(std::ostream& out, const lilcache::InspectMeta& m) {
  out << "meta   " << Shown(m.path) << "\n";
  Field(out, "version", m.version);
  Field(out, "size", m.file_size);
  Field(out, "salt", Hex(m.salt));
  Field(out, "created", FormatTime(m.created_ms));
  Field(out, "generation", m.generation);
  Field(out, "durable_gen",
        m.durable_gen == 0 ? std::string("none") : std::to_string(m.durable_gen));
  Field(out, "next_seq", m.next_seq);
  Field(out, "purge_seq", m.purge_seq);
  Field(out, "writer_state",
        std::to_string(m.writer_state) + " (epoch " + std::to_string(m.writer_state & 1) +
            ((m.writer_state & 2) != 0 ? ", writers paused)" : ")"));
  Field(out, "flags", std::to_string(m.flags) + ((m.flags & 1) != 0 ? " (needs rebuild)" : ""));
  Field(out, "last_snapshot", FormatTime(m.last_snapshot_ms));
  // Bytes from the file: escaped (a boot id is ASCII, unless the file is damaged or forged).
  Field(out, "boot_id", m.boot_id.empty() ? "-" : Escape(m.boot_id, 0));
  Field(out, "compactions", m.compactions);
  Field(out, "snapshots", m.snapshots);
  Field(out, "evictions", m.evictions);
  Field(out, "max_bytes", Limit(m.max_bytes));
  Field(out, "processes", m.processes);
}

void PrintData(std::ostream& out, const lilcache::InspectData& d) {
  out << "data   " << Shown(d.path) << (d.present ? "" : " (unreadable)") << "\n";
  if (!d.present) return;
  Field(out, "version", d.version);
  Field(out, "size", d.file_size);
  Field(out, "generation", d.generation);
  Field(out, "created", FormatTime(d.created_ms));
  Field(out, "tail", d.tail);
  Field(out, "capacity", d.capacity);
  Field(out, "dead_bytes", d.dead_bytes);
  Field(out, "verified_upto", d.verified_upto);
}

void PrintIndexHeader(std::ostream& out, const lilcache::InspectIndex& x) {
  out << "index  " << Shown(x.path) << (x.present ? "" : " (unreadable)") << "\n";
  if (!x.present) return;
  Field(out, "version", x.version);
  Field(out, "size", x.file_size);
  Field(out, "generation", x.generation);
  Field(out, "slot_count", x.slot_count);
  Field(out, "used_slots", x.used_slots);
}

void PrintHeader(std::ostream& out, const Dump& d) {
  PrintMeta(out, d.header.meta);
  if (d.header.data.path.empty()) return;  // the meta file is not usable
  PrintData(out, d.header.data);
  PrintIndexHeader(out, d.header.index);
}

// "escaped", then the length if it was shortened.
std::string Quoted(const std::string& escaped, bool cut, std::size_t len) {
  return "\"" + escaped + "\"" + (cut ? " (" + std::to_string(len) + " bytes)" : "");
}

void PrintRecord(std::ostream& out, const ShownRecord& r) {
  out << "  " << r.offset << "  seq " << r.seq << "  " << std::left << std::setw(10) << r.type
      << std::setw(10) << lilcache::RecordStateName(r.state) << std::right << "checksum "
      << (r.checksum_ok ? "ok " : "BAD") << "  expires " << FormatTime(r.expires_ms) << "  key "
      << Quoted(r.key, r.key_cut, r.key_len);
  if (r.type == std::string_view("set")) {
    out << "  value " << Quoted(r.value, r.value_cut, r.value_len);
  }
  out << "\n";
}

void PrintDamage(std::ostream& out, const DamagedRegion& r) {
  if (r.zeros) {
    out << "  hole at offset " << r.offset << ": " << r.end - r.offset << " zero bytes\n";
    return;
  }
  out << "  damage at offset " << r.offset << ": " << lilcache::record::DamageName(r.damage)
      << "; resynchronized at offset " << r.end << " (" << r.end - r.offset << " bytes skipped)\n";
}

// Records and damage, merged in log order.
void PrintRecords(std::ostream& out, const Dump& d) {
  out << "\nrecords\n";
  std::size_t di = 0;
  for (const ShownRecord& r : d.records) {
    for (; di < d.damage.size() && d.damage[di].offset < r.offset; ++di)
      PrintDamage(out, d.damage[di]);
    PrintRecord(out, r);
  }
  std::uint64_t total = 0;
  for (std::uint64_t n : d.summary.records) total += n;
  if (d.records.size() < total) {
    out << "  ... " << total - d.records.size() << " more records not shown (--limit)\n";
    return;
  }
  for (; di < d.damage.size(); ++di) PrintDamage(out, d.damage[di]);
}

void PrintIndexStats(std::ostream& out, const IndexStats& s) {
  out << "\nindex stats\n";
  Field(out, "load",
        std::to_string(s.occupied) + " of " + std::to_string(s.slot_count) + " slots (" +
            Percent(s.load) + ")");
  std::ostringstream probe;
  probe.precision(2);
  probe << "max " << s.max_probe << ", mean " << std::fixed << s.mean_probe;
  Field(out, "probe length", probe.str());
  std::string hist;
  for (auto [len, n] : s.probe_histogram)
    hist += (hist.empty() ? "" : " ") + std::to_string(len) + ":" + std::to_string(n);
  Field(out, "histogram", hist.empty() ? "-" : hist);
  if (s.bad_slots != 0) Field(out, "bad slots", s.bad_slots);
}

void PrintStats(std::ostream& out, const Dump& d) {
  const LogSummary& s = d.summary;
  out << "\nstats\n";
  Field(out, "log scanned", std::to_string(s.scanned_from) + ".." + std::to_string(s.scanned_to));
  for (std::size_t i = 0; i < lilcache::kRecordStates; ++i) {
    auto st = static_cast<RecordState>(i);
    Field(out, lilcache::RecordStateName(st),
          std::to_string(s.count(st)) + " records, " + std::to_string(s.bytes_of(st)) + " bytes");
  }
  Field(out, "damaged regions",
        std::to_string(s.damaged_regions) + ", " + std::to_string(s.damaged_bytes) + " bytes");
  Field(out, "holes", std::to_string(s.holes) + ", " + std::to_string(s.hole_bytes) + " bytes");
  if (d.indexed) {
    Field(out, "index load",
          std::to_string(d.index.occupied) + " of " + std::to_string(d.index.slot_count) +
              " slots (" + Percent(d.index.load) + ")");
  }
  for (const DamagedRegion& r : d.damage) PrintDamage(out, r);
}

void PrintProblems(std::ostream& out, const Dump& d) {
  out << "\nproblems" << (d.problems.empty() ? ": none" : "") << "\n";
  for (const InspectProblem& p : d.problems) {
    out << "  " << Shown(p.file) << ": " << Shown(p.what) << "\n";
  }
  out << "status: " << (d.healthy() ? "healthy" : "NOT healthy") << "\n";
}

void PrintText(std::ostream& out, const Dump& d, const DumpOptions& o) {
  out << "cache \"" << d.name << "\" in " << Shown(d.root) << "\n";
  if (o.header) PrintHeader(out, d);
  if (o.records && d.scanned) PrintRecords(out, d);
  if (o.index && d.indexed) PrintIndexStats(out, d.index);
  if (o.stats && d.scanned) PrintStats(out, d);
  PrintProblems(out, d);
}

// ---- JSON ------------------------------------------------------------------------

json HeaderJson(const InspectHeader& h) {
  const auto& m = h.meta;
  const auto& d = h.data;
  const auto& x = h.index;
  return {{"meta",
           {{"path", m.path},
            {"size", m.file_size},
            {"valid", m.valid},
            {"version", m.version},
            {"salt", Hex(m.salt)},
            {"created_ms", m.created_ms},
            {"generation", m.generation},
            {"durable_gen", m.durable_gen},
            {"next_seq", m.next_seq},
            {"purge_seq", m.purge_seq},
            {"writer_state", m.writer_state},
            {"flags", m.flags},
            {"last_snapshot_ms", m.last_snapshot_ms},
            {"boot_id", Escape(m.boot_id, 0)},  // bytes from the file, escaped as keys are
            {"compactions", m.compactions},
            {"snapshots", m.snapshots},
            {"evictions", m.evictions},
            {"max_bytes", LimitJson(m.max_bytes)},
            {"processes", m.processes}}},
          {"data",
           {{"path", d.path},
            {"present", d.present},
            {"valid", d.valid},
            {"size", d.file_size},
            {"version", d.version},
            {"generation", d.generation},
            {"created_ms", d.created_ms},
            {"tail", d.tail},
            {"capacity", d.capacity},
            {"dead_bytes", d.dead_bytes},
            {"verified_upto", d.verified_upto}}},
          {"index",
           {{"path", x.path},
            {"present", x.present},
            {"valid", x.valid},
            {"size", x.file_size},
            {"version", x.version},
            {"generation", x.generation},
            {"slot_count", x.slot_count},
            {"used_slots", x.used_slots}}}};
}

json RecordJson(const ShownRecord& r, bool full) {
  json j = {{"offset", r.offset},
            {"size", r.size},
            {"seq", r.seq},
            {"type", r.type},
            {"state", lilcache::RecordStateName(r.state)},
            {"checksum_ok", r.checksum_ok},
            {"expires_ms", r.expires_ms},
            {"key", r.key},
            {"key_len", r.key_len},
            {"key_shortened", r.key_cut},
            {"value", r.value},
            {"value_len", r.value_len},
            {"value_shortened", r.value_cut}};
  if (full) {
    j["key_base64"] = r.key_base64;
    j["value_base64"] = r.value_base64;
  }
  return j;
}

json DamageJson(const DamagedRegion& r) {
  return {{"offset", r.offset},
          {"end", r.end},
          {"hole", r.zeros},
          {"damage", lilcache::record::DamageName(r.damage)}};
}

json StatsJson(const LogSummary& s) {
  json states = json::object();
  for (std::size_t i = 0; i < lilcache::kRecordStates; ++i) {
    auto st = static_cast<RecordState>(i);
    states[lilcache::RecordStateName(st)] = {{"records", s.count(st)}, {"bytes", s.bytes_of(st)}};
  }
  return {{"scanned_from", s.scanned_from},
          {"scanned_to", s.scanned_to},
          {"states", states},
          {"damaged_regions", s.damaged_regions},
          {"damaged_bytes", s.damaged_bytes},
          {"holes", s.holes},
          {"hole_bytes", s.hole_bytes}};
}

json IndexJson(const IndexStats& s) {
  json hist = json::object();
  for (auto [len, n] : s.probe_histogram) hist[std::to_string(len)] = n;
  return {{"slot_count", s.slot_count}, {"occupied", s.occupied},     {"load", s.load},
          {"max_probe", s.max_probe},   {"mean_probe", s.mean_probe}, {"probe_histogram", hist},
          {"bad_slots", s.bad_slots}};
}

json ToJson(const Dump& d, const DumpOptions& o) {
  json j = {{"name", d.name}, {"root", d.root}, {"healthy", d.healthy()}};
  if (o.header) j["header"] = HeaderJson(d.header);
  if (o.records && d.scanned) {
    j["records"] = json::array();
    for (const ShownRecord& r : d.records) j["records"].push_back(RecordJson(r, o.full));
  }
  if (d.scanned) {
    j["damage"] = json::array();
    for (const DamagedRegion& r : d.damage) j["damage"].push_back(DamageJson(r));
  }
  if (o.stats && d.scanned) j["stats"] = StatsJson(d.summary);
  if ((o.index || o.stats) && d.indexed) j["index"] = IndexJson(d.index);
  j["problems"] = json::array();
  for (const InspectProblem& p : d.problems)
    j["problems"].push_back({{"file", p.file}, {"what", p.what}});
  return j;
}

// Always valid JSON: bytes of a path (--root, a file name) that are not UTF-8
// become U+FFFD instead of an exception (nlohmann's type_error 316).
std::string JsonText(const json& j, int indent) {
  return j.dump(indent, ' ', /*ensure_ascii=*/false, json::error_handler_t::replace);
}

// ---- main ------------------------------------------------------------------------

void AddOptions(CLI::App& app, DumpOptions& o) {
  app.add_option("--root", o.root,
                 "Directory holding the cache (default: $LILCACHE_ROOT, "
                 "$XDG_CACHE_HOME/lilcache or ~/.cache/lilcache)");
  auto* list =
      app.add_flag("--list", o.list, "Only list the caches under the root, one name per line");
  app.add_option("name", o.name, "Name of the cache (as --name)")->excludes(list);
  app.add_option("--name", o.name, "Name of the cache")->excludes(list);
  app.add_flag("--header", o.header, "Show the headers of the meta, data and index files");
  app.add_flag("--records", o.records, "Show every record of the log, with its state");
  app.add_flag("--index", o.index, "Show the index's load and probe lengths");
  app.add_flag("--stats", o.stats, "Show totals per record state and the damage found");
  app.add_flag("--json", o.json, "Print one JSON document instead of text");
  app.add_option("--limit", o.limit, "Show at most N records (all are still scanned)")
      ->type_name("N");
  app.add_option("--max-bytes", o.max_bytes,
                 "Show at most N bytes of each key and value, then \"...\" "
                 "(0 = all; default 32)")
      ->type_name("N");
  app.add_flag("--full", o.full,
               "Show keys and values whole (as --max-bytes 0); with --json also their exact "
               "bytes in base64 (key_base64, value_base64)");
  app.add_option("--backend", o.backend,
                 "local only (the default unless $LILCACHE_BACKEND names another): this tool "
                 "reads the files of local caches; another backend is refused (exit 2)")
      ->type_name("URL");
  app.set_version_flag("--version", "lilcache-dump " + std::string(lilcache::version()));
  app.footer(kExitStatusHelp);
}

int Run(const DumpOptions& o) {
  Dump d;
  try {
    d = Collect(o);
  } catch (const lilcache::Error& e) {
    if (o.json) {
      std::cout << JsonText(json{{"name", o.name}, {"root", o.root}, {"error", e.what()}}, -1)
                << "\n";
    }
    tools::PrintError("lilcache-dump", o.name, Shown(e.what()));
    return tools::kExitError;  // not 1, "damage found": nothing was looked at
  }
  if (o.json) {
    std::cout << JsonText(ToJson(d, o), 2) << "\n";
  } else {
    PrintText(std::cout, d, o);
  }
  if (d.healthy()) return tools::kExitOk;
  std::cerr << "lilcache-dump: " << d.name << ": not healthy: " << d.problems.size()
            << " problems, " << d.summary.damaged_regions << " damaged regions of the log\n";
  return tools::kExitDamage;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Shows what is in the files of a lilcache cache, without modifying them.",
               "lilcache-dump"};
  DumpOptions o;
  AddOptions(app, o);
  if (auto status = tools::ParseCommandLine(app, argc, argv)) return *status;
  try {
    tools::RequireLocalBackend(o.backend);  // --backend, $LILCACHE_BACKEND
  } catch (const tools::UsageProblem& e) {
    return tools::UsageError(app.get_name(), "", e.what());
  }
  if (o.list) {
    return tools::RunCommand(app.get_name(), "", tools::kExitError, [&] {
      for (const std::string& name : lilcache::list_caches(lilcache::resolve_root(o.root))) {
        std::cout << name << "\n";
      }
      return tools::kExitOk;
    });
  }
  if (o.name.empty()) {
    return tools::UsageError(app.get_name(), "", "name a cache (--name NAME or NAME)");
  }
  try {
    lilcache::validate_name(o.name);
  } catch (const lilcache::Error& e) {
    return tools::UsageError(app.get_name(), "", e.what());
  }
  if (!o.header && !o.records && !o.index && !o.stats) o.header = o.stats = true;
  return Run(o);
}
