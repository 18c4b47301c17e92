// Gets per second of lilcache from 1 thread, 2 threads sharing one handle
// and 2 processes with a handle each (target 3 of issue 16: gets scale with
// threads as they do with processes). Interleaved repetitions, medians.
#pragma once

#include <cstddef>

namespace bench {

struct ThreadsConfig {
  int reps = 5;
  double seconds = 1.0;  // of each measurement
  std::size_t keys = 100'000;
  std::size_t value_size = 100;
};

// Prints the table, the ratios and MET/MISSED. Returns the number of
// failures (a wrong value read, a process that failed).
int run_threads(const ThreadsConfig& config);

}  // namespace bench
