// Measured results and their markdown report.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "store.h"
#include "workload.h"

namespace bench {

// Process counts of the mix, in table order.
inline constexpr std::array<int, 3> kMixProcesses{1, 2, 4};

// One store's measurements for one value size: one entry per repetition.
struct Row {
  const Peer* peer = nullptr;
  std::vector<double> get_ns;
  std::vector<double> getbuf_ns;  // get into a reused std::string (Handle::get_into)
  std::vector<double> set_ns;
  std::array<std::vector<double>, kMixProcesses.size()> mix_ops;  // ops/s
  std::string skipped;  // why it did not run ("" if it did)
  std::string error;    // what stopped it ("" if nothing)
  Checks checks;
};

struct SizeResult {
  std::size_t value_size = 0;
  std::vector<Row> rows;
};

std::optional<double> median(std::vector<double> samples);
// 1894.2 -> "1,894".
std::string grouped(double value);
// 1680000 -> "1.68M", 825000 -> "825k", 8100 -> "8.1k".
std::string si(double value);
// 0.4567 -> "0.46x".
std::string ratio_text(double ratio);
// 100 -> "100 B", 1024 -> "1 KiB".
std::string size_text(std::size_t bytes);
// format(*value), or "n/a".
std::string cell(const std::optional<double>& value, std::string (*format)(double));
// A markdown table row, and a header row with its rule (columns right-aligned).
void print_row(const std::string& label, const std::vector<std::string>& cells);
void print_header(const std::string& first, const std::vector<std::string>& columns);

// The table of medians and the table of lilcache/peer ratios.
void print_tables(const SizeResult& result);
// MET/MISSED for each target, per value size.
void print_targets(const std::vector<SizeResult>& results);
// Gets checked and wrong, per store. Returns the number of wrong gets.
std::uint64_t print_checks(const std::vector<SizeResult>& results);

}  // namespace bench
