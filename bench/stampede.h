// get_or_set under a stampede: processes x threads (64 by default) ask at
// once for one missing key whose computation sleeps, with get_or_set() and
// with the naive get-then-set pattern; compute calls and the time until all
// of them have the value.
#pragma once

#include <chrono>

namespace bench {

struct StampedeConfig {
  int reps = 5;
  int processes = 4;
  int threads = 16;  // per process
  std::chrono::milliseconds compute{50};
};

// Prints the table. Returns the number of failures: a repetition in which
// get_or_set() computed other than once, a caller got a wrong value, or a
// process failed.
int run_stampede(const StampedeConfig& config);

}  // namespace bench
