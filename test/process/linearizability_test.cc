// Linearizability: histories of set/get/pop/purge and of the conditional
// operations (add, increment, get_versioned, compare_and_set,
// compare_and_erase, touch) recorded from several processes and threads at
// once - across compactions and SIGKILLs of workers - are checked against a
// register per key (linearizability.h).
//
// Values: a set, add or compare_and_set stores either a self-checking value
// (make_value; its id is writer << 32 | seq) or the decimal text of that id
// (so that increments of it succeed; lin::IntValue), half and half; an
// increment of a value that is not an integer fails (invalid_argument),
// which the model expects. A compare_and_set or compare_and_erase names the
// version its thread last read of that key with get_versioned (current or
// stale by then).
//
// One worker of a third of the histories is SIGKILLed mid-history.
// Each worker process records every operation in a shared anonymous mapping
// before calling it (invoke time, what) and after it returns (result,
// complete time), with CLOCK_MONOTONIC, which all processes share. An
// operation of a killed worker that has no complete time never returned: it
// may have taken effect or not (complete = never; LILCACHE_LIN_STRICT=1 uses
// the moment the death was seen instead, which also catches a dead process's
// write that takes effect later, at a recovery). After the workers, the test
// process reopens the cache alone and reads every key: those reads are part
// of the history.
//
// Half of the other histories have a replay step half way: every worker
// closes its cache, the test process audits the index against the log
// (lib/audit.h), forces a replay (needs_rebuild) and reopens the cache alone,
// reads every key (part of the history), and the workers go on. Every
// history without a kill is audited at the end.
//
// LILCACHE_LIN_HISTORIES=N checks N histories (default 300).
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "lilcache/lilcache.h"
#include "support/linearizability.h"
#include "support/test_util.h"

using lilcache::Cache;
using lilcache::test::TempDir;
namespace lin = lilcache::test::lin;

namespace {

lin::Op op(lin::Kind kind, const std::string& key, std::uint64_t value, std::uint64_t invoke,
           std::uint64_t complete, std::uint32_t process = 0, bool returned = true) {
  lin::Op o;
  o.kind = kind;
  o.key = key;
  o.value = value;
  o.invoke = invoke;
  o.complete = complete;
  o.process = process;
  o.returned = returned;
  return o;
}
lin::Op set(const std::string& k, std::uint64_t v, std::uint64_t a, std::uint64_t b,
            std::uint32_t p = 0) {
  return op(lin::Kind::kSet, k, v, a, b, p);
}
lin::Op get(const std::string& k, std::uint64_t v, std::uint64_t a, std::uint64_t b,
            std::uint32_t p = 0) {
  return op(lin::Kind::kGet, k, v, a, b, p);
}
lin::Op pop(const std::string& k, std::uint64_t v, std::uint64_t a, std::uint64_t b,
            std::uint32_t p = 0) {
  return op(lin::Kind::kPop, k, v, a, b, p);
}
lin::Op purge(std::uint64_t a, std::uint64_t b, std::uint32_t p = 0) {
  return op(lin::Kind::kPurge, "", 0, a, b, p);
}
lin::Op add(const std::string& k, std::uint64_t v, bool ok, std::uint64_t a, std::uint64_t b,
            std::uint32_t p = 0) {
  lin::Op o = op(lin::Kind::kAdd, k, v, a, b, p);
  o.ok = ok;
  return o;
}
// increment(k, delta) from 0 returned `result`; result nullopt: it threw (not an integer).
lin::Op incr(const std::string& k, std::int64_t delta, std::optional<std::int64_t> result,
             std::uint64_t a, std::uint64_t b, std::uint32_t p = 0) {
  lin::Op o = op(lin::Kind::kIncrement, k, result ? lin::IntValue(*result) : 0, a, b, p);
  o.delta = delta;
  o.ok = result.has_value();
  return o;
}
lin::Op getv(const std::string& k, std::uint64_t v, std::uint64_t version, std::uint64_t a,
             std::uint64_t b, std::uint32_t p = 0) {
  lin::Op o = op(lin::Kind::kGetVersioned, k, v, a, b, p);
  o.version = version;
  return o;
}
lin::Op cas(const std::string& k, std::uint64_t version, std::uint64_t v, bool ok, std::uint64_t a,
            std::uint64_t b, std::uint32_t p = 0) {
  lin::Op o = op(lin::Kind::kCompareAndSet, k, v, a, b, p);
  o.version = version;
  o.ok = ok;
  return o;
}
lin::Op cae(const std::string& k, std::uint64_t version, bool ok, std::uint64_t a, std::uint64_t b,
            std::uint32_t p = 0) {
  lin::Op o = op(lin::Kind::kCompareAndErase, k, 0, a, b, p);
  o.version = version;
  o.ok = ok;
  return o;
}
lin::Op touch(const std::string& k, bool ok, std::uint64_t a, std::uint64_t b,
              std::uint32_t p = 0) {
  lin::Op o = op(lin::Kind::kTouch, k, 0, a, b, p);
  o.ok = ok;
  return o;
}
lin::Op died(lin::Op o, std::uint64_t complete = lin::kNever) {
  o.returned = false;
  o.complete = complete;
  return o;
}

bool linearizable(const std::vector<lin::Op>& h) { return lin::CheckRegister(h); }

}  // namespace

// ---- The checker itself: it must accept and reject -------------------------

TEST_CASE("checker: sequential histories follow the register model") {
  using lin::kNone;
  CHECK(linearizable({}));
  CHECK(linearizable({set("k", 1, 0, 1), get("k", 1, 2, 3)}));
  CHECK(linearizable(
      {get("k", kNone, 0, 1), set("k", 1, 2, 3), pop("k", 1, 4, 5), get("k", kNone, 6, 7)}));
  CHECK_FALSE(linearizable({set("k", 1, 0, 1), get("k", kNone, 2, 3)}));  // lost write
  CHECK_FALSE(linearizable({get("k", 1, 0, 1), set("k", 1, 2, 3)}));      // read from the future
  CHECK_FALSE(linearizable({set("k", 1, 0, 1), set("k", 2, 2, 3), get("k", 1, 4, 5)}));  // stale
  CHECK_FALSE(linearizable({set("k", 1, 0, 1), pop("k", 1, 2, 3), get("k", 1, 4, 5)}));  // undone
  CHECK_FALSE(linearizable({set("k", 1, 0, 1), pop("k", 1, 2, 3), pop("k", 1, 4, 5)}));  // twice
  CHECK(linearizable({set("k", 1, 0, 1), purge(2, 3), get("k", kNone, 4, 5)}));
  CHECK_FALSE(linearizable({set("k", 1, 0, 1), purge(2, 3), get("k", 1, 4, 5)}));
}

TEST_CASE("checker: concurrent operations may take effect in any order within their intervals") {
  using lin::kNone;
  // A get overlapping a set may see either value.
  CHECK(linearizable({set("k", 1, 0, 10), get("k", 1, 2, 3)}));
  CHECK(linearizable({set("k", 1, 0, 10), get("k", kNone, 2, 3)}));
  // ...but once a get saw the new value, a later get cannot see the old one.
  CHECK_FALSE(linearizable({set("k", 1, 0, 10), get("k", 1, 2, 3), get("k", kNone, 4, 5)}));
  // Two overlapping sets: later reads agree on one winner.
  CHECK(linearizable(
      {set("k", 1, 0, 10), set("k", 2, 0, 10), get("k", 1, 11, 12), get("k", 1, 13, 14)}));
  CHECK_FALSE(linearizable(
      {set("k", 1, 0, 10), set("k", 2, 0, 10), get("k", 1, 11, 12), get("k", 2, 13, 14)}));
  // Racing pops: exactly one gets the value.
  CHECK(linearizable({set("k", 1, 0, 1), pop("k", 1, 2, 10), pop("k", kNone, 2, 10)}));
  CHECK_FALSE(linearizable({set("k", 1, 0, 1), pop("k", 1, 2, 10), pop("k", 1, 2, 10)}));
  // A purge overlapping a get: either order.
  CHECK(linearizable({set("k", 1, 0, 1), purge(2, 10), get("k", 1, 3, 4)}));
  // Equal timestamps are concurrent.
  CHECK(linearizable({set("k", 1, 0, 5), get("k", 1, 5, 6)}));
}

TEST_CASE("checker: an operation whose process died may have taken effect, or not") {
  using lin::kNone;
  lin::Op killed_set = died(set("k", 1, 0, 0));
  CHECK(linearizable({killed_set, get("k", kNone, 5, 6)}));
  CHECK(linearizable({killed_set, get("k", 1, 5, 6)}));
  CHECK(linearizable({killed_set, get("k", kNone, 5, 6), get("k", 1, 7, 8)}));  // took effect late
  CHECK_FALSE(linearizable({killed_set, get("k", 1, 5, 6), get("k", kNone, 7, 8)}));
  lin::Op killed_pop = died(pop("k", 0, 2, 0));
  CHECK(linearizable({set("k", 1, 0, 1), killed_pop, get("k", 1, 5, 6)}));
  CHECK(linearizable({set("k", 1, 0, 1), killed_pop, get("k", kNone, 5, 6)}));
  CHECK_FALSE(
      linearizable({set("k", 1, 0, 1), killed_pop, get("k", kNone, 5, 6), get("k", 1, 7, 8)}));
  // Strict: the process was seen dead at 6, so its set cannot happen after.
  lin::Op dead_at_6 = died(set("k", 1, 0, 0), 6);
  CHECK(linearizable({dead_at_6, get("k", 1, 5, 6), get("k", 1, 7, 8)}));
  CHECK(linearizable({dead_at_6, get("k", kNone, 7, 8), get("k", kNone, 9, 10)}));
  CHECK_FALSE(linearizable({dead_at_6, get("k", kNone, 7, 8), get("k", 1, 9, 10)}));
}

TEST_CASE("checker: keys are checked apart; a failure names its key and a minimal history") {
  using lin::kNone;
  std::vector<lin::Op> h;
  // Key "good": a busy, correct history. Key "bad": the same plus a lost write.
  for (std::uint64_t i = 0; i < 20; ++i) {
    h.push_back(set("good", i + 1, 10 * i, 10 * i + 15, 1));
    h.push_back(get("good", i + 1, 10 * i + 16, 10 * i + 17, 2));
    h.push_back(set("bad", 100 + i, 10 * i, 10 * i + 15, 1));
    h.push_back(get("bad", 100 + i, 10 * i + 16, 10 * i + 17, 2));
  }
  h.push_back(purge(500, 501));
  h.push_back(set("bad", 200, 600, 601));
  h.push_back(get("bad", 119, 602, 603));  // a write of before the purge is back
  h.push_back(get("good", kNone, 602, 603));
  lin::Result r = lin::Check(h);
  CHECK_FALSE(r.linearizable);
  CHECK(r.keys == 2);
  CHECK(r.key == "bad");
  INFO("minimal history:\n", lin::Format(r.minimal));
  CHECK(r.minimal.size() <= 4);
  CHECK(r.minimal.size() < r.history.size());
  CHECK_FALSE(lin::CheckRegister(r.minimal));
  // The minimal history keeps the set of the value read back.
  bool has_set = false;
  for (const lin::Op& o : r.minimal) has_set |= o.kind == lin::Kind::kSet && o.value == 119;
  CHECK(has_set);
  h.pop_back();
  h.pop_back();
  CHECK(lin::Check(h).linearizable);
}

TEST_CASE("checker: many concurrent operations are checked without blowing up") {
  // 8 threads, 400 random overlapping sets and gets on one key, generated by
  // a sequential run (so linearizable), then one result corrupted.
  std::mt19937_64 rng(42);
  std::vector<lin::Op> h;
  std::uint64_t value = lin::kNone, t = 100, next = 1;
  for (int i = 0; i < 400; ++i) {
    t += 10;
    // The op's linearization point is t; its interval covers up to 8 others.
    std::uint64_t a = t - rng() % 40, b = t + rng() % 40;
    if (rng() % 2 == 0) {
      value = next++;
      h.push_back(set("k", value, a, b, static_cast<std::uint32_t>(i % 8)));
    } else {
      h.push_back(get("k", value, a, b, static_cast<std::uint32_t>(i % 8)));
    }
  }
  std::uint64_t states = 0;
  bool gave_up = false;
  CHECK(lin::CheckRegister(h, {}, &states, &gave_up));
  CHECK_FALSE(gave_up);
  MESSAGE("400 ops, concurrency 8: ", states, " states visited");
  for (auto it = h.rbegin(); it != h.rend(); ++it) {
    if (it->kind == lin::Kind::kGet && it->value > 10) {
      it->value -= 10;  // a stale read
      break;
    }
  }
  CHECK_FALSE(lin::CheckRegister(h, {}, &states, &gave_up));
  CHECK_FALSE(gave_up);
}

TEST_CASE("checker: add stores only into an absent key and one of racing adds wins") {
  using lin::kNone;
  CHECK(linearizable({add("k", 1, true, 0, 1), get("k", 1, 2, 3), add("k", 2, false, 4, 5)}));
  CHECK_FALSE(linearizable({set("k", 1, 0, 1), add("k", 2, true, 2, 3)}));      // over a value
  CHECK_FALSE(linearizable({add("k", 1, false, 0, 1)}));                        // nothing was there
  CHECK_FALSE(linearizable({add("k", 1, true, 0, 1), get("k", kNone, 2, 3)}));  // lost
  // Two racing adds: exactly one is true, and its value is the one left.
  CHECK(linearizable({add("k", 1, true, 0, 10), add("k", 2, false, 0, 10), get("k", 1, 11, 12)}));
  CHECK_FALSE(linearizable({add("k", 1, true, 0, 10), add("k", 2, true, 0, 10)}));
  CHECK_FALSE(
      linearizable({add("k", 1, false, 0, 10), add("k", 2, false, 0, 10), get("k", 1, 11, 12)}));
  CHECK_FALSE(
      linearizable({add("k", 1, true, 0, 10), add("k", 2, false, 0, 10), get("k", 2, 11, 12)}));
  // After a pop the key is absent again.
  CHECK(linearizable({add("k", 1, true, 0, 1), pop("k", 1, 2, 3), add("k", 2, true, 4, 5)}));
  // A killed add may have won, or not.
  lin::Op killed = died(add("k", 1, true, 0, 0));
  CHECK(linearizable({killed, add("k", 2, true, 5, 6)}));
  CHECK(linearizable({killed, add("k", 2, false, 5, 6), get("k", 1, 7, 8)}));
  CHECK_FALSE(linearizable({killed, add("k", 2, false, 5, 6), get("k", kNone, 7, 8)}));
}

TEST_CASE("checker: increments add up without skipping or repeating a value") {
  using lin::IntValue;
  CHECK(linearizable({incr("k", 1, 1, 0, 1), incr("k", 1, 2, 2, 3), get("k", IntValue(2), 4, 5)}));
  CHECK_FALSE(linearizable({incr("k", 1, 1, 0, 1), incr("k", 1, 3, 2, 3)}));  // skips 2
  CHECK_FALSE(linearizable({incr("k", 1, 1, 0, 1), incr("k", 1, 1, 2, 3)}));  // lost update
  CHECK_FALSE(linearizable({incr("k", 1, 1, 0, 1), get("k", IntValue(0), 2, 3)}));
  // Racing increments return distinct values, in any order.
  CHECK(linearizable({incr("k", 1, 2, 0, 10), incr("k", 1, 1, 0, 10), incr("k", 5, 7, 0, 10)}));
  CHECK_FALSE(linearizable({incr("k", 1, 1, 0, 10), incr("k", 1, 1, 0, 10)}));
  // Over a set integer; negative deltas; the sum of all deltas is left.
  CHECK(linearizable({set("k", IntValue(40), 0, 1), incr("k", 2, 42, 2, 3),
                      incr("k", -50, -8, 4, 5), get("k", IntValue(-8), 6, 7)}));
  // A value that is not an integer: the increment throws and changes nothing.
  CHECK(linearizable({set("k", 7, 0, 1), incr("k", 1, std::nullopt, 2, 3), get("k", 7, 4, 5)}));
  CHECK_FALSE(linearizable({set("k", IntValue(7), 0, 1), incr("k", 1, std::nullopt, 2, 3)}));
  CHECK_FALSE(linearizable({set("k", 7, 0, 1), incr("k", 1, 1, 2, 3)}));
  // An absent key starts at `initial`.
  lin::Op from_10 = incr("k", 1, 11, 0, 1);
  from_10.initial = 10;
  CHECK(linearizable({from_10}));
  // A killed increment may have counted (its value is then seen), or not.
  lin::Op killed = died(incr("k", 1, 0, 2, 0));
  CHECK(linearizable({incr("k", 1, 1, 0, 1), killed, incr("k", 1, 2, 5, 6)}));
  CHECK(linearizable({incr("k", 1, 1, 0, 1), killed, incr("k", 1, 3, 5, 6)}));
  CHECK_FALSE(linearizable({incr("k", 1, 1, 0, 1), killed, incr("k", 1, 4, 5, 6)}));
}

TEST_CASE("checker: a version names one write and compare_and_set succeeds only on it") {
  using lin::kNone;
  // Read-modify-write: the version read is current, the CAS succeeds.
  CHECK(linearizable(
      {set("k", 1, 0, 1), getv("k", 1, 77, 2, 3), cas("k", 77, 2, true, 4, 5), get("k", 2, 6, 7)}));
  // A write came between: the CAS must fail...
  CHECK(linearizable({set("k", 1, 0, 1), getv("k", 1, 77, 2, 3), set("k", 3, 4, 5),
                      cas("k", 77, 2, false, 6, 7), get("k", 3, 8, 9)}));
  // ...and succeeding is not linearizable, nor is failing without one.
  CHECK_FALSE(linearizable(
      {set("k", 1, 0, 1), getv("k", 1, 77, 2, 3), set("k", 3, 4, 5), cas("k", 77, 2, true, 6, 7)}));
  CHECK_FALSE(
      linearizable({set("k", 1, 0, 1), getv("k", 1, 77, 2, 3), cas("k", 77, 2, false, 4, 5)}));
  // A touch is a write: the old version no longer matches.
  CHECK_FALSE(linearizable({set("k", 1, 0, 1), getv("k", 1, 77, 2, 3), touch("k", true, 4, 5),
                            cas("k", 77, 2, true, 6, 7)}));
  CHECK(linearizable(
      {set("k", 1, 0, 1), getv("k", 1, 77, 2, 3), touch("k", true, 4, 5), getv("k", 1, 78, 6, 7)}));
  // A version belongs to one write, and a write has one version.
  CHECK_FALSE(linearizable(
      {set("k", 1, 0, 1), getv("k", 1, 77, 2, 3), set("k", 1, 4, 5), getv("k", 1, 77, 6, 7)}));
  CHECK_FALSE(linearizable({set("k", 1, 0, 1), getv("k", 1, 77, 2, 3), getv("k", 1, 78, 4, 5)}));
  // Racing CASes on one version: at most one wins.
  std::vector<lin::Op> race = {set("k", 1, 0, 1), getv("k", 1, 77, 2, 3)};
  race.push_back(cas("k", 77, 2, true, 4, 10, 1));
  race.push_back(cas("k", 77, 3, false, 4, 10, 2));
  CHECK(linearizable(race));
  race.back().ok = true;
  CHECK_FALSE(linearizable(race));
  // compare_and_erase: as a CAS that leaves none.
  CHECK(linearizable(
      {set("k", 1, 0, 1), getv("k", 1, 5, 2, 3), cae("k", 5, true, 4, 5), get("k", kNone, 6, 7)}));
  CHECK_FALSE(linearizable(
      {set("k", 1, 0, 1), getv("k", 1, 5, 2, 3), pop("k", 1, 4, 5), cae("k", 5, true, 6, 7)}));
  // Nothing to touch: false.
  CHECK(linearizable({touch("k", false, 0, 1)}));
  CHECK_FALSE(linearizable({touch("k", true, 0, 1)}));
  CHECK_FALSE(linearizable({set("k", 1, 0, 1), touch("k", false, 2, 3)}));
  // A killed CAS may have won (its value is seen) or not.
  lin::Op killed = died(cas("k", 77, 2, true, 4, 0));
  CHECK(linearizable({set("k", 1, 0, 1), getv("k", 1, 77, 2, 3), killed, get("k", 2, 6, 7)}));
  CHECK(linearizable({set("k", 1, 0, 1), getv("k", 1, 77, 2, 3), killed, get("k", 1, 6, 7)}));
  CHECK_FALSE(linearizable(
      {set("k", 1, 0, 1), getv("k", 1, 77, 2, 3), set("k", 3, 4, 5), killed, get("k", 2, 6, 7)}));
}

TEST_CASE("checker: a conditional write overlapping a purge may act on the value it removed") {
  using lin::IntValue;
  using lin::kNone;
  // The documented caveat: the increment read 1 before the purge took
  // effect, and its result survives it.
  CHECK(linearizable({set("k", IntValue(1), 0, 1), purge(2, 10), incr("k", 2, 3, 3, 4),
                      get("k", IntValue(3), 11, 12)}));
  CHECK(linearizable({set("k", 1, 0, 1), getv("k", 1, 7, 2, 3), purge(4, 10),
                      cas("k", 7, 2, true, 5, 6), get("k", 2, 11, 12)}));
  CHECK(
      linearizable({set("k", 1, 0, 1), purge(2, 10), touch("k", true, 3, 4), get("k", 1, 11, 12)}));
  CHECK(linearizable(
      {set("k", 1, 0, 1), purge(2, 10), add("k", 2, false, 3, 4), get("k", kNone, 11, 12)}));
  // Not after the purge returned, nor over a write made since.
  CHECK_FALSE(linearizable({set("k", IntValue(1), 0, 1), purge(2, 10), incr("k", 2, 3, 11, 12)}));
  CHECK_FALSE(linearizable(
      {set("k", 1, 0, 1), purge(2, 10), touch("k", true, 11, 12), get("k", 1, 13, 14)}));
  CHECK_FALSE(linearizable({set("k", IntValue(1), 0, 1), purge(2, 10), set("k", IntValue(5), 3, 4),
                            incr("k", 2, 3, 5, 6)}));
  // Plain reads get no such leeway.
  CHECK_FALSE(
      linearizable({set("k", 1, 0, 1), purge(2, 10), get("k", kNone, 3, 4), get("k", 1, 5, 6)}));
}

TEST_CASE("checker: a failing history of the new operations is minimized and printed") {
  std::vector<lin::Op> h;
  for (std::uint64_t i = 0; i < 10; ++i) h.push_back(incr("c", 1, i + 1, 10 * i, 10 * i + 5, 1));
  h.push_back(set("c", 5, 200, 201));
  h.push_back(getv("c", 5, 9, 202, 203));
  h.push_back(cas("c", 9, 6, true, 204, 205));
  h.push_back(add("c", 7, true, 206, 207));  // over a present value
  lin::Result r = lin::Check(h);
  REQUIRE_FALSE(r.linearizable);
  INFO("minimal history:\n", lin::Format(r.minimal));
  CHECK(r.minimal.size() <= 3);
  std::string text = lin::Format(r.minimal);
  CHECK(text.find("add(c, #7) -> true") != std::string::npos);
  CHECK(lin::Format({incr("c", 1, 3, 0, 1)}).find("increment(c, 1, 0) -> 3") != std::string::npos);
}

// ---- Histories of the real cache --------------------------------------------

namespace {

constexpr std::uint32_t kMaxProcesses = 4;
constexpr std::uint32_t kMaxThreads = 3;
constexpr std::uint32_t kMaxOps = 64;

// One operation as a worker records it in the shared mapping.
struct Rec {
  std::uint64_t invoke;
  std::uint64_t complete;  // 0: has not returned
  std::uint64_t value;     // lin::Op::value: the id stored or read (0 = none)
  std::uint64_t version;   // lin::Op::version
  std::int64_t delta;      // increment
  std::uint32_t kind;      // lin::Kind
  std::uint32_t key;
  std::uint32_t bad;  // a value read was torn or not the key's
  std::uint32_t ok;   // lin::Op::ok
};
struct ThreadLog {
  std::uint64_t count;  // records begun
  Rec recs[kMaxOps];
};
struct SharedLog {
  ThreadLog logs[kMaxProcesses][kMaxThreads];
  // The replay step (Plan::replay): workers that closed their cache at half
  // way, and 1 once the test process has replayed the log. Atomic (seq_cst).
  std::uint32_t closed;
  std::uint32_t resume;
};

std::uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

std::string key_name(std::uint32_t k) { return std::string("lin\0", 4) + std::to_string(k); }

// The id of a value (writer << 32 | seq); the value itself is make_value.
std::uint64_t id_of(std::uint32_t writer, std::uint64_t seq) {
  return std::uint64_t{writer} << 32 | seq;
}

// The model's id of a value read from `key`: a decimal int64 is an
// lin::IntValue, else a make_value's id; nullopt if it is neither (torn, or
// another key's).
std::optional<std::uint64_t> decode(const std::string& key, std::string_view v, std::string* why) {
  std::int64_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (!v.empty() && ec == std::errc() && end == v.data() + v.size()) return lin::IntValue(n);
  auto info = lilcache::test::check_value(key, v, why);
  if (!info) return std::nullopt;
  return id_of(info->writer, info->seq);
}

struct Plan {
  std::uint32_t processes = 3;
  std::uint32_t threads = 2;
  std::uint32_t ops = 24;  // per thread
  std::uint32_t keys = 2;
  bool compact = false;  // one thread compacts mid-way
  bool kill = false;     // one worker is SIGKILLed mid-way
  // Half way, every worker closes its cache; the test process audits it,
  // forces a replay of the log (needs_rebuild), reopens it alone (the
  // replay), reads every key, closes it; then the workers reopen the cache
  // and go on. Not with `kill`: a replay keeps a killed writer's record it
  // never published, which a strict history (LILCACHE_LIN_STRICT) forbids.
  bool replay = false;
  std::uint64_t seed = 0;
};

// A worker thread: `ops` random operations, each recorded around its call.
// Operations [from, to) of the thread; `rng` carries over between calls.
void work(Cache& c, const Plan& plan, std::uint32_t p, std::uint32_t t, ThreadLog& log,
          std::mt19937_64& rng, std::uint32_t from, std::uint32_t to) {
  const std::uint32_t writer = p * kMaxThreads + t + 1;
  const std::uint32_t compact_at = plan.compact && p == 0 && t == 0 ? plan.ops / 2 : ~0u;
  // The version this thread last read of each key (get_versioned), which its
  // compare_and_set/erase names.
  std::map<std::uint32_t, std::uint64_t> versions;
  for (std::uint32_t i = from; i < to; ++i) {
    if (i == compact_at) c.compact();
    Rec& r = log.recs[i];
    std::uint32_t dice = static_cast<std::uint32_t>(rng() % 100);
    r.key = static_cast<std::uint32_t>(rng() % plan.keys);
    lin::Kind kind = dice < 22   ? lin::Kind::kSet
                     : dice < 37 ? lin::Kind::kGet
                     : dice < 45 ? lin::Kind::kPop
                     : dice < 55 ? lin::Kind::kAdd
                     : dice < 70 ? lin::Kind::kIncrement
                     : dice < 82 ? lin::Kind::kGetVersioned
                     : dice < 90 ? lin::Kind::kCompareAndSet
                     : dice < 94 ? lin::Kind::kCompareAndErase
                     : dice < 97 ? lin::Kind::kTouch
                                 : lin::Kind::kPurge;
    const bool conditional =
        kind == lin::Kind::kCompareAndSet || kind == lin::Kind::kCompareAndErase;
    if (conditional && versions.count(r.key) == 0) kind = lin::Kind::kGetVersioned;
    r.kind = static_cast<std::uint32_t>(kind);
    const std::string key = key_name(r.key);
    std::string value;
    if (kind == lin::Kind::kSet || kind == lin::Kind::kAdd || kind == lin::Kind::kCompareAndSet) {
      const std::uint64_t id = id_of(writer, i + 1);
      if (rng() % 2 == 0) {
        r.value = lin::IntValue(static_cast<std::int64_t>(id));
        value = std::to_string(id);
      } else {
        r.value = id;
        // Some large values: an operation on them lasts long enough for a
        // kill to land inside it.
        std::size_t len = rng() % 3 == 0 ? 8192 + rng() % 65536 : 32 + rng() % 300;
        value = lilcache::test::make_value(key, writer, i + 1, len);
      }
    }
    if (conditional) r.version = versions[r.key];
    if (kind == lin::Kind::kIncrement) r.delta = 1 + static_cast<std::int64_t>(rng() % 3);
    if (rng() % 4 == 0) {  // spread the threads' operations over each other
      auto until = now_ns() + rng() % 20'000;
      while (now_ns() < until) {
      }
    }
    r.invoke = now_ns();
    std::atomic_ref<std::uint64_t>(log.count).store(i + 1, std::memory_order_release);
    std::optional<std::string> got;
    bool ok = true;
    switch (kind) {
      case lin::Kind::kSet:
        c.set(key, value);
        break;
      case lin::Kind::kGet:
        got = c.get(key);
        break;
      case lin::Kind::kPop:
        got = c.pop(key);
        break;
      case lin::Kind::kPurge:
        c.purge();
        break;
      case lin::Kind::kAdd:
        ok = c.add(key, value);
        break;
      case lin::Kind::kIncrement:
        try {
          r.value = lin::IntValue(c.increment(key, r.delta));
        } catch (const lilcache::Error& e) {
          if (e.code() != lilcache::ErrorCode::invalid_argument) throw;
          ok = false;  // the value is not an integer
        }
        break;
      case lin::Kind::kGetVersioned:
        if (std::optional<lilcache::Versioned> v = c.get_versioned(key)) {
          got = std::move(v->value);
          r.version = v->version;
          versions[r.key] = v->version;
        }
        break;
      case lin::Kind::kCompareAndSet:
        ok = c.compare_and_set(key, r.version, value);
        break;
      case lin::Kind::kCompareAndErase:
        ok = c.compare_and_erase(key, r.version);
        break;
      case lin::Kind::kTouch:
        ok = c.touch(key, std::chrono::hours(1));
        break;
    }
    r.ok = ok ? 1 : 0;
    if (got) {
      std::string why;
      if (std::optional<std::uint64_t> id = decode(key, *got, &why)) {
        r.value = *id;
      } else {
        r.bad = 1;
        std::fprintf(stderr, "worker %u/%u read a bad value: %s\n", p, t, why.c_str());
      }
    }
    std::atomic_ref<std::uint64_t>(r.complete).store(now_ns(), std::memory_order_release);
  }
}

struct HistoryOutcome {
  lin::Result result;
  std::size_t ops = 0;
  std::size_t killed_ops = 0;  // ops in flight when their process was killed
  bool bad_value = false;
  bool worker_failed = false;
  std::string failure;
  std::string audit;      // the audit's report ("" = the index agrees with the log)
  bool replayed = false;  // the replay step ran (a new generation from the log)
};

HistoryOutcome run_history(const Plan& plan, SharedLog& shared, bool strict) {
  HistoryOutcome out;
  std::memset(&shared, 0, sizeof shared);
  TempDir dir(true, lilcache::test::tmpfs_dir());
  const std::string root = dir.file("cache");
  { Cache::open("lin", {.root = root}); }
  lilcache::test::Children children;
  lilcache::test::StartGate gate;
  std::mt19937_64 rng(plan.seed);
  // The victim SIGKILLs itself from a thread of its own once its workers
  // have begun `kill_at` operations: mid-history, often mid-operation,
  // however the scheduler treats the test process.
  const std::uint32_t victim =
      plan.kill ? static_cast<std::uint32_t>(rng() % plan.processes) : plan.processes;
  const std::uint64_t kill_at = 1 + rng() % (std::uint64_t{plan.threads} * plan.ops);
  std::vector<pid_t> pids;
  const std::uint32_t half = plan.replay ? plan.ops / 2 : 0;  // ops before the replay step
  for (std::uint32_t p = 0; p < plan.processes; ++p) {
    pids.push_back(children.add(lilcache::test::fork_child([&, p] {
      std::optional<Cache> c(Cache::open("lin", {.root = root}));
      gate.wait();
      std::vector<std::mt19937_64> rngs;
      for (std::uint32_t t = 0; t < plan.threads; ++t) {
        rngs.emplace_back(plan.seed * 1000003 + p * 31 + t);
      }
      auto run = [&](std::uint32_t from, std::uint32_t to) {
        std::vector<std::thread> threads;
        for (std::uint32_t t = 0; t < plan.threads; ++t) {
          threads.emplace_back(
              [&, t] { work(*c, plan, p, t, shared.logs[p][t], rngs[t], from, to); });
        }
        for (auto& th : threads) th.join();
      };
      if (plan.replay) {
        run(0, half);
        c.reset();
        std::atomic_ref<std::uint32_t>(shared.closed).fetch_add(1);
        while (std::atomic_ref<std::uint32_t>(shared.resume).load() == 0) {
          std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
        c.emplace(Cache::open("lin", {.root = root}));
      }
      std::vector<std::thread> threads;
      for (std::uint32_t t = 0; t < plan.threads; ++t) {
        threads.emplace_back(
            [&, t] { work(*c, plan, p, t, shared.logs[p][t], rngs[t], half, plan.ops); });
      }
      if (p == victim) {
        threads.emplace_back([&] {
          for (;;) {
            std::uint64_t begun = 0;
            for (std::uint32_t t = 0; t < plan.threads; ++t) {
              begun += std::atomic_ref<std::uint64_t>(shared.logs[p][t].count)
                           .load(std::memory_order_acquire);
            }
            if (begun >= kill_at) kill(getpid(), SIGKILL);
          }
        });
      }
      for (auto& th : threads) th.join();
      return 0;
    })));
  }
  gate.open();
  // Every key read by the test process, as part of the history.
  std::vector<lin::Op> h;
  auto read_all = [&](Cache& c) {
    for (std::uint32_t k = 0; k < plan.keys; ++k) {
      lin::Op o;
      o.kind = lin::Kind::kGet;
      o.key = key_name(k);
      o.process = plan.processes;
      o.invoke = now_ns();
      std::optional<std::string> got = c.get(o.key);
      o.complete = now_ns();
      if (got) {
        std::optional<std::uint64_t> id = decode(o.key, *got, nullptr);
        if (!id) {
          out.bad_value = true;
          continue;
        }
        o.value = *id;
      }
      h.push_back(o);
    }
  };
  if (plan.replay) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::atomic_ref<std::uint32_t>(shared.closed).load() < plan.processes &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    if (std::atomic_ref<std::uint32_t>(shared.closed).load() < plan.processes) {
      out.worker_failed = true;
      out.failure = "the workers did not all close their cache at half way";
    } else {
      out.audit = lilcache::test::audit_cache(root, "lin");
      lilcache::test::force_replay(root, "lin");
      Cache c = Cache::open("lin", {.root = root});  // alone: replays the log
      out.replayed = c.stats().generation > 1;
      read_all(c);
    }
    std::atomic_ref<std::uint32_t>(shared.resume).store(1);
  }
  std::vector<std::uint64_t> death(plan.processes, lin::kNever);
  std::vector<bool> reaped(plan.processes, false);
  if (plan.kill) {
    int st = children.wait(pids[victim], std::chrono::seconds(60));
    death[victim] = now_ns();
    reaped[victim] = true;
    if (st != 128 + SIGKILL) {
      out.worker_failed = true;
      out.failure = "the victim exited with " + std::to_string(st) + ", not killed";
    }
  }
  for (std::uint32_t p = 0; p < plan.processes; ++p) {
    if (reaped[p]) continue;
    int st = children.wait(pids[p], std::chrono::seconds(60));
    if (st != 0) {
      out.worker_failed = true;
      out.failure = "worker " + std::to_string(p) + " exited with " + std::to_string(st);
    }
  }
  // Every process is done: the index must agree with the log, unless a
  // writer was killed (its record may be in the log, never published).
  if (!plan.kill && out.audit.empty()) out.audit = lilcache::test::audit_cache(root, "lin");
  for (std::uint32_t p = 0; p < plan.processes; ++p) {
    for (std::uint32_t t = 0; t < plan.threads; ++t) {
      const ThreadLog& log = shared.logs[p][t];
      for (std::uint64_t i = 0; i < log.count; ++i) {
        const Rec& r = log.recs[i];
        out.bad_value |= r.bad != 0;
        lin::Op o;
        o.kind = static_cast<lin::Kind>(r.kind);
        o.key = o.kind == lin::Kind::kPurge ? "" : key_name(r.key);
        o.value = r.value;
        o.version = r.version;
        o.delta = r.delta;
        o.ok = r.ok != 0;
        o.invoke = r.invoke;
        o.process = p;
        o.thread = t;
        if (r.complete != 0) {
          o.complete = r.complete;
        } else {
          ++out.killed_ops;
          // A read has no effect either way.
          if (o.kind == lin::Kind::kGet || o.kind == lin::Kind::kGetVersioned) continue;
          o.returned = false;
          o.complete = strict ? death[p] : lin::kNever;
        }
        h.push_back(o);
      }
    }
  }
  // The test process reopens the cache alone (a recovery if a worker died
  // mid-append) and reads every key.
  {
    Cache c = Cache::open("lin", {.root = root});
    read_all(c);
  }
  out.ops = h.size();
  out.result = lin::Check(h);
  return out;
}

}  // namespace

TEST_SUITE("process") {
  TEST_CASE(
      "histories of set/get/pop/purge/add/increment/compare_and_set from processes and threads "
      "are linearizable") {
    const char* env = std::getenv("LILCACHE_LIN_HISTORIES");
    const int histories = env != nullptr && std::atoi(env) > 0 ? std::atoi(env) : 300;
    const char* strict_env = std::getenv("LILCACHE_LIN_STRICT");
    const bool strict = strict_env != nullptr && std::string(strict_env) == "1";
    void* mem =
        mmap(nullptr, sizeof(SharedLog), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(mem != MAP_FAILED);
    SharedLog& shared = *static_cast<SharedLog*>(mem);
    std::mt19937_64 rng(std::random_device{}());
    std::uint64_t ops = 0, states = 0, keys = 0, killed = 0, with_kill = 0, with_compaction = 0,
                  with_replay = 0, gave_up = 0;
    int failures = 0, checked = 0;
    for (int i = 0; i < histories && failures < 3; ++i, ++checked) {
      Plan plan;
      plan.seed = rng();
      plan.processes = 2 + static_cast<std::uint32_t>(plan.seed % 3);       // 2..4
      plan.threads = 1 + static_cast<std::uint32_t>((plan.seed >> 8) % 3);  // 1..3
      plan.keys = 1 + static_cast<std::uint32_t>((plan.seed >> 16) % 3);    // 1..3
      plan.ops = 8 + static_cast<std::uint32_t>((plan.seed >> 24) % 25);    // 8..32
      plan.compact = (plan.seed >> 32) % 3 == 0;
      plan.kill = (plan.seed >> 40) % 3 == 0;
      plan.replay = !plan.kill && (plan.seed >> 48) % 2 == 0;
      HistoryOutcome h = run_history(plan, shared, strict);
      CAPTURE(plan.seed);
      ops += h.ops;
      states += h.result.states;
      keys += h.result.keys;
      killed += h.killed_ops;
      with_kill += plan.kill;
      with_compaction += plan.compact;
      with_replay += h.replayed;
      CHECK_MESSAGE(h.replayed == plan.replay, "the replay step did not replay the log");
      CHECK_MESSAGE(h.audit.empty(), h.audit);
      gave_up += h.result.gave_up;
      CHECK_MESSAGE(!h.worker_failed, h.failure);
      CHECK_MESSAGE(!h.bad_value, "a torn or foreign value was read (see stderr)");
      if (!h.result.linearizable) {
        ++failures;
        FAIL_CHECK("history ", i, " (", plan.processes, " processes x ", plan.threads,
                   " threads x ", plan.ops, " ops on ", plan.keys, " keys",
                   std::string(plan.compact ? ", a compaction" : ""),
                   std::string(plan.kill ? ", a SIGKILL" : ""),
                   std::string(plan.replay ? ", a replay half way" : ""),
                   ") is not linearizable on key number ", h.result.key.substr(4), " (",
                   h.result.history.size(), " ops); a minimal history that is not:\n",
                   lin::Format(h.result.minimal));
        if (std::getenv("LILCACHE_LIN_DUMP") != nullptr) {
          MESSAGE("the whole history of that key:\n", lin::Format(h.result.history));
        }
      }
    }
    munmap(mem, sizeof(SharedLog));
    MESSAGE(checked, " histories checked",
            std::string(strict ? " (strict: a dead process's op completes when its death is seen)"
                               : ""),
            ": ", ops, " ops on ", keys, " registers, ", with_compaction, " with a compaction, ",
            with_kill, " with a SIGKILL (", killed, " ops in flight at a kill), ", with_replay,
            " with a replay of the log half way; ", states, " search states; ", gave_up,
            " searches gave up");
    CHECK(gave_up == 0);
  }
}
