// A linearizability checker for histories of lilcache operations, after Wing
// & Gong's search with Lowe's memoization (the algorithm of knossos and
// porcupine).
//
// Model: one register per key, holding a value (or none) and the write that
// stored it. set(v) stores v; get returns the value or none; pop returns the
// value or none and leaves none (a get and a delete in one atomic step);
// purge leaves none in every key. The conditional operations of issue 14:
// add(v) stores v only if none (ok = whether it did); increment(delta,
// initial) adds delta to an integer value (IntValue), starting from initial
// if none, and returns the new value - or fails (ok = false, no effect) if
// the value is not an integer; get_versioned returns the value and its
// version; compare_and_set(version, v) stores v only if the value present
// was stored by the write with that version (ok = whether it did);
// compare_and_erase(version) likewise leaves none; touch keeps a present
// value but is a new write (a new version), ok = whether a value was present.
//
// Versions are opaque: the model does not know which version a write gets
// until an operation observes it. Each write is identified by the operation
// that made it, and a search state binds versions to those writes as
// get_versioned results (or a successful compare-and-set) observe them: one
// version names one write and one write has one version (a partial
// injective map, part of the state). So a compare_and_set that succeeds
// with a version bound to an overwritten write, or two that succeed with
// one version, or a get_versioned that returns a version already bound to
// another write, are not linearizable.
//
// A history is a list of operations, each with its invoke and complete times
// (CLOCK_MONOTONIC nanoseconds, one clock for all processes on the machine).
// It is linearizable if every operation can be given a point between its
// invoke and complete times such that the operations, in the order of those
// points, are a legal sequential run of the model. An operation whose
// process died before it returned (returned = false) may have taken effect or
// not, with any result; its complete time is kNever (it may take effect at
// any point after its invoke) or, stricter, the time its death was seen (a
// dead process does nothing more).
//
// One documented exception (docs/concurrency.md, "Conditional writes"): a
// conditional write (add, increment, compare_and_set/erase, touch)
// concurrent with a purge may act on the value from before the purge (it
// read the value between the purge's draw of its seq and the raise of
// purge_seq, and its successor survives). The model allows exactly that: a
// conditional write whose interval overlaps the purge that removed a value,
// with nothing written to the key since, may decide on that value.
//
// Partitioning: a register's operations do not constrain another's, so each
// key's sub-history is checked on its own; every purge belongs to every
// key's sub-history (which checks each key's projection of a purge - a
// necessary condition, not the atomicity of a purge across keys).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lilcache::test::lin {

enum class Kind : std::uint8_t {
  kSet,
  kGet,
  kPop,
  kPurge,
  kAdd,
  kIncrement,
  kGetVersioned,
  kCompareAndSet,
  kCompareAndErase,
  kTouch,
};

inline constexpr std::uint64_t kNone = 0;       // a get/pop that found nothing
inline constexpr std::uint64_t kNever = ~0ull;  // complete time of an op that never returned

// Integer values (what increment reads and writes) are tagged with bit 63,
// so that they share one space with the value ids of sets (< 2^63): the
// decimal text "42" read by a get is IntValue(42). Integers are modelled
// modulo 2^63 (the tests stay far from overflow, which the model ignores).
inline constexpr std::uint64_t kIntTag = 1ull << 63;
inline constexpr std::uint64_t IntValue(std::int64_t n) {
  return kIntTag | (static_cast<std::uint64_t>(n) & ~kIntTag);
}
inline constexpr bool IsInt(std::uint64_t v) { return (v & kIntTag) != 0; }
inline constexpr std::int64_t IntOf(std::uint64_t v) {
  // Sign-extends the 63 bits.
  return static_cast<std::int64_t>(v << 1) >> 1;
}

struct Op {
  Kind kind = Kind::kGet;
  std::string key;                  // "" for purge
  std::uint64_t value = 0;          // set/add/compare_and_set: the value stored (ids >= 1);
                                    // get/pop/get_versioned: the result (kNone: found
                                    // nothing); increment: the new value (an IntValue);
                                    // ignored if !returned
  std::uint64_t version = 0;        // get_versioned: the version returned (if a value was);
                                    // compare_and_set/erase: the version it names
  std::int64_t delta = 0;           // increment
  std::int64_t initial = 0;         // increment: the start of an absent key
  bool ok = true;                   // add/compare_and_set/compare_and_erase/touch: the
                                    // result; increment: false if it threw (not an integer)
  std::uint64_t invoke = 0;         // ns
  std::uint64_t complete = kNever;  // ns, >= invoke, or kNever
  bool returned = true;             // false: its process died first
  std::uint32_t process = 0;
  std::uint32_t thread = 0;
};

struct Options {
  // Bound on the states (linearized set, register value) a key's search may
  // visit; beyond it the check gives up (Result::gave_up).
  std::uint64_t max_states = 2'000'000;
  // Shrink a failing key's history to a minimal one that still fails.
  bool minimize = true;
};

struct Result {
  bool linearizable = true;
  bool gave_up = false;      // some key's search hit max_states (not a failure)
  std::string key;           // the first key that is not linearizable
  std::vector<Op> history;   // that key's whole sub-history
  std::vector<Op> minimal;   // a minimal sub-history of it that is not linearizable
  std::uint64_t keys = 0;    // keys checked
  std::uint64_t ops = 0;     // operations checked (purges counted once per key)
  std::uint64_t states = 0;  // search states visited, all keys
};

// Checks one register (every op is on the same key, or a purge).
// `states` (optional) receives the number of states visited; `gave_up` is set
// when max_states was reached (the result is then true).
bool CheckRegister(const std::vector<Op>& ops, const Options& options = {},
                   std::uint64_t* states = nullptr, bool* gave_up = nullptr);

// Checks a whole history, key by key.
Result Check(const std::vector<Op>& history, const Options& options = {});

// A smallest-found sub-history of a non-linearizable `ops` that is still not
// linearizable: ops are dropped one at a time while the rest fails, never
// dropping the write (set, add, compare_and_set, increment) of a value that
// a remaining read returned (so the result explains itself). 1-minimal:
// dropping any one more op either makes it linearizable or orphans a value.
std::vector<Op> Minimize(const std::vector<Op>& ops, const Options& options = {});

// One line per op, in invoke order, times in microseconds from the first
// invoke: "[   12.3 ..    15.0] p1 t0 set(k) = #5".
std::string Format(const std::vector<Op>& ops);

}  // namespace lilcache::test::lin
