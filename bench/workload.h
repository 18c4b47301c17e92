// The workload: keys, self-describing values, and the timed phases (random
// sets, random gets, and a 90/10 get/set mix in one or more processes).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store.h"

namespace bench {

// n distinct keys of 16 lowercase hex digits.
std::vector<std::string> make_keys(std::size_t n);

// splitmix64: a tiny, fast generator for random key choices.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next();

 private:
  std::uint64_t state_;
};

// Values of one size that say what they are: the 16-byte key, the version as
// 8 hex digits, then a filler that depends on the version's last hex digit.
// A value of the wrong key, a stale version, a wrong length or a mix of two
// values (torn write) is recognized.
class Values {
 public:
  static constexpr std::size_t kKeyBytes = 16;
  static constexpr std::size_t kHeaderBytes = kKeyBytes + 8;
  static constexpr std::size_t kMinSize = kHeaderBytes + 8;

  explicit Values(std::size_t size);  // size >= kMinSize
  std::size_t size() const { return size_; }

  // The value of key at version, in a buffer reused by later calls.
  std::string_view make(std::string_view key, std::uint32_t version);

  // The version field of a value (its 8 bytes, never 0), to compare cheaply.
  static std::uint64_t tag_of(std::string_view value);

  // Cheap enough for timed loops: length, key, version (if expected_tag != 0)
  // and the filler's last 8 bytes.
  bool looks_right(std::string_view key, std::string_view value, std::uint64_t expected_tag) const;
  // Every byte: "" if right, else what is wrong.
  std::string diagnose(std::string_view key, const std::optional<std::string>& value,
                       std::uint64_t expected_tag) const;

 private:
  std::size_t size_;
  std::array<std::string, 16> fillers_;  // by the version's last hex digit
  std::array<std::string, 16> buffers_;
};

// Results checked so far: every get is compared with what was set.
struct Checks {
  std::uint64_t gets = 0;
  std::uint64_t bad = 0;
  std::string first_bad;  // description of the first wrong get

  void fail(std::string what);
  void merge(const Checks& other);
};

// One store's data for one value size, with what this process last set.
struct MixReport;
struct MixPipes;

class Dataset {
 public:
  Dataset(const std::vector<std::string>& keys, std::size_t value_size, std::uint64_t seed);

  // Untimed: sets every key.
  void load(Handle& handle);
  // Random overwrites / random gets of existing keys: nanoseconds per op,
  // timed in batches.
  double time_sets(Handle& handle, std::size_t ops);
  double time_gets(Handle& handle, std::size_t ops);
  // ... the same gets into one reused std::string (Handle::get_into).
  double time_gets_into(Handle& handle, std::size_t ops);
  // 90/10 get/set mix for `seconds`: aggregate ops/s of `processes` forked
  // processes that each open their own handle...
  double time_mix(Store& store, int processes, double seconds);
  // ... or of this process alone with an open handle.
  double time_mix_here(Handle& handle, double seconds);
  // Untimed: reads `limit` keys spread over all of them and checks every byte.
  void verify(Handle& handle, std::size_t limit);

  const Checks& checks() const { return checks_; }

 private:
  struct MixCount {
    std::uint64_t ops;
    std::chrono::steady_clock::duration elapsed;
  };

  void check_get(std::size_t index, const std::optional<std::string>& value);
  void check_get(std::size_t index, const std::string* value);
  MixCount mix_loop(Handle& handle, double seconds);
  int mix_child(Store& store, int index, double seconds, MixPipes& pipes);
  double combine(const std::vector<MixReport>& reports);

  const std::vector<std::string>& keys_;
  Values values_;
  std::vector<std::uint64_t> expected_;  // tag per key set by this process; 0 = unknown
  std::uint32_t version_ = 0;
  Rng rng_;
  Checks checks_;
};

}  // namespace bench
