// The sustained-overwrite part of lilcache-bench (issue 16, target 1):
// --ops random overwrites of --keys keys with default options, every
// automatic compaction they trigger inside the timing, side by side with
// LMDB's set in the same run.
#pragma once

#include <cstddef>

namespace bench {

struct SustainedConfig {
  int reps = 3;
  std::size_t keys = 100'000;
  std::size_t ops = 1'500'000;
};

// Runs both value sizes (100 B, 1 KiB), prints the table and the targets
// (MET/MISSED). Returns the number of failures (a wrong value read back at
// the end, a store error).
int run_sustained(const SustainedConfig& config);

}  // namespace bench
