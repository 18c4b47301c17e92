#include "report.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include <fmt/format.h>

namespace bench {

std::string grouped(double value) {
  auto n = static_cast<long long>(std::llround(value));
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

// 1680000 -> "1.68M", 825000 -> "825k", 8100 -> "8.1k".
std::string si(double value) {
  // Thresholds at what rounds to 3 significant digits: 999,600 is "1M",
  // not "1e+03k".
  if (value >= 999.5e3) return fmt::format("{:.3g}M", value / 1e6);
  if (value >= 999.5) return fmt::format("{:.3g}k", value / 1e3);
  return fmt::format("{:.3g}", value);
}

std::string ratio_text(double ratio) { return fmt::format("{:.2f}x", ratio); }

std::string size_text(std::size_t bytes) {
  return bytes % 1024 == 0 ? fmt::format("{} KiB", bytes / 1024) : fmt::format("{} B", bytes);
}

std::string cell(const std::optional<double>& value, std::string (*format)(double)) {
  return value ? format(*value) : "n/a";
}

void print_row(const std::string& label, const std::vector<std::string>& cells) {
  fmt::print("| {} |", label);
  for (const std::string& text : cells) fmt::print(" {} |", text);
  fmt::print("\n");
}

void print_header(const std::string& first, const std::vector<std::string>& columns) {
  print_row(first, columns);
  fmt::print("|---|");
  for (std::size_t i = 0; i < columns.size(); ++i) fmt::print("--:|");
  fmt::print("\n");
}

namespace {

std::string mix_header(int processes) {
  return fmt::format("mix {} process{}", processes, processes == 1 ? "" : "es");
}

bool measured(const Row& row) { return row.skipped.empty() && row.error.empty(); }

std::optional<double> get_ns(const Row& row) { return median(row.get_ns); }
std::optional<double> set_ns(const Row& row) { return median(row.set_ns); }
std::optional<double> getbuf_ns(const Row& row) { return median(row.getbuf_ns); }
std::optional<double> mix_ops(const Row& row, std::size_t column) {
  return median(row.mix_ops[column]);
}

std::vector<std::string> columns(const std::string& get, const std::string& getbuf,
                                 const std::string& set, const std::string& mix_suffix) {
  std::vector<std::string> out{get, getbuf, set};
  for (int processes : kMixProcesses) out.push_back(mix_header(processes) + mix_suffix);
  return out;
}

void print_medians(const SizeResult& result) {
  print_header("store", columns("get ns", "get into buffer ns", "set ns", " ops/s"));
  for (const Row& row : result.rows) {
    if (!measured(row)) {
      std::vector<std::string> cells(3 + kMixProcesses.size(), "-");
      cells[0] = row.skipped.empty() ? "ERROR (below)" : "skipped (below)";
      print_row(row.peer->label, cells);
      continue;
    }
    std::vector<std::string> cells{cell(get_ns(row), grouped), cell(getbuf_ns(row), grouped),
                                   cell(set_ns(row), grouped)};
    for (std::size_t c = 0; c < kMixProcesses.size(); ++c)
      cells.push_back(cell(mix_ops(row, c), si));
    print_row(row.peer->label, cells);
  }
  for (const Row& row : result.rows) {
    if (!row.skipped.empty()) fmt::print("\n{} skipped: {}\n", row.peer->label, row.skipped);
    if (!row.error.empty()) fmt::print("\n{} ERROR: {}\n", row.peer->label, row.error);
  }
}

std::optional<double> divide(const std::optional<double>& a, const std::optional<double>& b) {
  if (!a || !b || *b == 0) return std::nullopt;
  return *a / *b;
}

const Row* find_row(const SizeResult& result, std::string_view id) {
  for (const Row& row : result.rows) {
    if (row.peer->id == id && measured(row)) return &row;
  }
  return nullptr;
}

void print_ratios(const SizeResult& result) {
  const Row* lil = find_row(result, "lilcache");
  if (lil == nullptr) {
    fmt::print("\nNo lilcache/peer ratios: lilcache has no measurements.\n");
    return;
  }
  fmt::print(
      "\nlilcache / peer, {} values (get, set: lilcache ns / peer ns, lower is better; "
      "mix: lilcache ops/s / peer ops/s, higher is better):\n\n",
      size_text(result.value_size));
  print_header("peer", columns("get", "get into buffer", "set", ""));
  for (const Row& row : result.rows) {
    if (&row == lil || !measured(row)) continue;
    std::vector<std::string> cells{cell(divide(get_ns(*lil), get_ns(row)), ratio_text),
                                   cell(divide(getbuf_ns(*lil), getbuf_ns(row)), ratio_text),
                                   cell(divide(set_ns(*lil), set_ns(row)), ratio_text)};
    for (std::size_t c = 0; c < kMixProcesses.size(); ++c) {
      cells.push_back(cell(divide(mix_ops(*lil, c), mix_ops(row, c)), ratio_text));
    }
    print_row(row.peer->label, cells);
  }
}

struct Target {
  std::string text;  // "get <= 0.5x LMDB"
  std::string peer_id;
  std::optional<double> (*metric)(const Row&);
  std::string unit;  // "ns" or "ops/s"
  double bound;
  bool at_most;  // ratio <= bound (else >=)
};

std::optional<double> mix2(const Row& row) { return mix_ops(row, 1); }

void print_target(const SizeResult& result, const Target& target) {
  std::string prefix = fmt::format("- {} values, {}:", size_text(result.value_size), target.text);
  const Row* lil = find_row(result, "lilcache");
  const Row* peer = find_row(result, target.peer_id);
  if (lil == nullptr || peer == nullptr) {
    fmt::print("{} NOT MEASURED ({} missing)\n", prefix, lil ? target.peer_id : "lilcache");
    return;
  }
  double mine = target.metric(*lil).value_or(0);
  double theirs = target.metric(*peer).value_or(0);
  double ratio = theirs > 0 ? mine / theirs : 0;
  bool met =
      mine > 0 && theirs > 0 && (target.at_most ? ratio <= target.bound : ratio >= target.bound);
  auto show = target.unit == "ns" ? grouped : si;
  fmt::print("{} {}: lilcache {} {} / {} {} {} = {}\n", prefix, met ? "MET" : "MISSED", show(mine),
             target.unit, peer->peer->label, show(theirs), target.unit, ratio_text(ratio));
}

}  // namespace

std::optional<double> median(std::vector<double> samples) {
  if (samples.empty()) return std::nullopt;
  std::sort(samples.begin(), samples.end());
  std::size_t mid = samples.size() / 2;
  return samples.size() % 2 == 1 ? samples[mid] : (samples[mid - 1] + samples[mid]) / 2;
}

void print_tables(const SizeResult& result) {
  fmt::print("\n## Values of {} (medians)\n\n", size_text(result.value_size));
  print_medians(result);
  print_ratios(result);
}

void print_targets(const std::vector<SizeResult>& results) {
  const std::vector<Target> targets{
      {"get <= 0.5x LMDB", "lmdb", get_ns, "ns", 0.5, true},
      {"get into a reused buffer <= 0.5x LMDB's", "lmdb", getbuf_ns, "ns", 0.5, true},
      {"get <= 1.0x unordered_map", "unordered_map", get_ns, "ns", 1.0, true},
      {"get into a reused buffer <= 1.5x unordered_map's lookup-and-copy", "unordered_map",
       getbuf_ns, "ns", 1.5, true},
      {"set <= 0.5x LMDB", "lmdb", set_ns, "ns", 0.5, true},
      {"2-process mix >= 2x LMDB", "lmdb", mix2, "ops/s", 2.0, false},
  };
  fmt::print("\n## Targets (from this run)\n\n");
  for (const SizeResult& result : results) {
    for (const Target& target : targets) print_target(result, target);
  }
}

std::uint64_t print_checks(const std::vector<SizeResult>& results) {
  fmt::print(
      "\n## Result checks\n\nEvery get's value is compared with what was set (key, length, "
      "version, filler); a final pass reads keys back and compares every byte.\n\n");
  print_header("store, value size", {"gets checked", "wrong"});
  std::uint64_t wrong = 0;
  for (const SizeResult& result : results) {
    for (const Row& row : result.rows) {
      if (!row.skipped.empty()) continue;
      std::string label = fmt::format("{}, {}", row.peer->label, size_text(result.value_size));
      print_row(label, {grouped(static_cast<double>(row.checks.gets)),
                        grouped(static_cast<double>(row.checks.bad))});
      wrong += row.checks.bad;
    }
  }
  for (const SizeResult& result : results) {
    for (const Row& row : result.rows) {
      if (row.checks.bad == 0) continue;
      fmt::print("\nERROR: {}, {}: {} wrong gets; first: {}\n", row.peer->label,
                 size_text(result.value_size), row.checks.bad, row.checks.first_bad);
    }
  }
  return wrong;
}

}  // namespace bench
