// The benchmarks of the conditional and batch operations (issue 14):
// increment, add, and get_many/set_many, lilcache against LMDB and Redis,
// each store fresh, in the same run (and the same style) as the get/set/mix
// tables: repetitions interleaved across stores, medians, lilcache/peer
// ratios, and every result checked.
#pragma once

#include <cstddef>
#include <vector>

#include "store.h"

namespace bench {

struct OpsConfig {
  int reps = 5;
  double seconds = 0.25;           // of each timed increment/add run
  std::size_t keys = 10'000;       // counters of "many keys", keys of the batches
  std::size_t remote_ops = 5'000;  // keys per single-call batch measurement of Redis
};

// Each runs the stores of `peers` that have the operations (lilcache, LMDB,
// Redis), prints a table of medians and one of lilcache/peer ratios, and
// returns the number of failed checks plus stores that failed (0: all good).

// increment by 1 for config.seconds in 1 and 4 forked processes, on one key
// and on config.keys keys: aggregate ops/s. After every repetition the
// counters are read back; their sum must be the number of increments
// acknowledged, and each process must see its key's value grow.
int run_increment(const OpsConfig& config, const std::vector<Peer>& peers);

// add in 1 and 4 forked processes, half of the calls with a new key (the next
// of a sequence all processes walk), half with a key this process already
// added (must return false): ops/s. Exactly one process wins each new key:
// the wins must add up to the length of the sequence walked.
int run_add(const OpsConfig& config, const std::vector<Peer>& peers);

// Batches of 100 random keys of 100-byte values, in this process: 100 single
// get()/set() calls against one get_many()/set_many() (Redis MGET/MSET, LMDB
// one transaction): ns per key and the speedup. Every value read is checked.
int run_batches(const OpsConfig& config, const std::vector<Peer>& peers);

}  // namespace bench
