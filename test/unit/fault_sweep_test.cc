// Fault sweep: every file, map and lock call that an operation makes through
// the Env seam is failed in turn, with each of ENOSPC, EIO, EINTR and EFBIG.
//
// For each scenario (an operation on a prepared cache) the operation is first
// run once to count its Env calls (FaultEnv); then for every k the k-th call
// fails. Each time:
//  * the operation either succeeds (a failure it may ignore: closing, unlinking
//    a stray file) or throws lilcache::Error - never another exception, never a
//    crash or a hang;
//  * a handle that survived the fault keeps working once the fault is gone;
//  * the cache reopens (with the real Env) and holds every write acknowledged
//    before, plus the operation's own effect if it succeeded (either outcome
//    if it failed), and no other key;
//  * every descriptor and mapping of the cache is released once the handles
//    are closed.
// The caches live on tmpfs when there is one (thousands of opens and
// compactions, each with fsyncs): the faults are injected above the file
// system anyway.
// EINTR: Env::Default restarts interrupted calls itself (see env.h); an Env
// that reports EINTR reports a failed call, which the library must handle like
// any other error. fault_test.cc checks the restart with a real signal.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "lilcache/lilcache.h"
#include "support/fault_env.h"
#include "support/test_util.h"

using lilcache::Cache;
using lilcache::Error;
using lilcache::Options;
using lilcache::test::FaultEnv;
using lilcache::test::TempDir;

namespace {

constexpr const char* kName = "sweep";

// What the cache must hold: key -> value acknowledged before the operation.
using Acked = std::map<std::string, std::string>;
// What the operation does if it succeeds: key -> new value (nullopt: removed).
using Effects = std::map<std::string, std::optional<std::string>>;

std::string value_of(const std::string& key, std::size_t len) {
  return lilcache::test::make_value(key, 1, lilcache::test::key_hash32(key), len);
}

void set_acked(Cache& c, Acked& acked, const std::string& key, std::size_t len) {
  std::string v = value_of(key, len);
  c.set(key, v);
  acked[key] = v;
}

// Some live keys, some overwritten, some popped, a purge: dead records for
// compaction to drop, live ones it must keep.
void prepare_base(const std::string& root, Acked& acked) {
  Cache c = Cache::open(kName, {.root = root});
  for (int i = 0; i < 10; ++i) c.set("gone" + std::to_string(i), "purged below");
  c.purge();
  for (int i = 0; i < 40; ++i) set_acked(c, acked, "k" + std::to_string(i), 40 + 13 * i);
  for (int i = 0; i < 10; ++i) set_acked(c, acked, "k" + std::to_string(i), 300 + i);
  for (int i = 10; i < 15; ++i) {
    REQUIRE(c.pop("k" + std::to_string(i)).has_value());
    acked.erase("k" + std::to_string(i));
  }
  c.set("ttl-long", value_of("ttl-long", 64), std::chrono::hours(1));
  acked["ttl-long"] = value_of("ttl-long", 64);
}

// The base, then the log filled to within 100 KiB of its first megabyte.
void prepare_nearly_full(const std::string& root, Acked& acked) {
  prepare_base(root, acked);
  Cache c = Cache::open(kName, {.root = root});
  while (c.stats().bytes_file < (1 << 20) - (100 << 10)) {
    set_acked(c, acked, "fill" + std::to_string(acked.size()), 32 << 10);
  }
}

// Leaves what a writer killed between reserving log space and writing its
// record leaves: `tail` moved on over zeros (docs/format.md). The next lone
// open finds the hole and rebuilds from the log.
void add_tail_hole(const std::string& root) {
  auto u64 = [](int fd, off_t off) {
    std::uint64_t v = 0;
    REQUIRE(::pread(fd, &v, 8, off) == 8);
    return v;
  };
  int meta = ::open((root + "/" + kName + ".meta").c_str(), O_RDONLY);
  REQUIRE(meta >= 0);
  std::uint64_t gen = u64(meta, 32);
  ::close(meta);
  int data = ::open((root + "/" + kName + "." + std::to_string(gen) + ".data").c_str(), O_RDWR);
  REQUIRE(data >= 0);
  std::uint64_t tail = u64(data, 64), capacity = u64(data, 72);
  REQUIRE(tail + 64 <= capacity);
  tail += 64;
  REQUIRE(::pwrite(data, &tail, 8, 64) == 8);
  ::close(data);
}

struct Scenario {
  std::string name;
  // Builds the state before the operation (real Env, handles closed).
  std::function<void(const std::string& root, Acked&)> prepare;
  // The operation is Cache::open itself (else: on a handle opened without faults).
  bool is_open = false;
  std::string boot_id;  // non-empty: the operation's Env reports another boot
  // Another handle (real Env) has the cache open during the operation.
  bool other_handle = false;
  std::function<void(Cache&, const Acked&, Effects&)> op;
  // Scenarios documented to make no system call at all.
  bool expect_no_calls = false;
  std::string sync;  // Options::sync of the handle the operation runs on
};

struct Outcome {
  bool failed = false;
  std::string error;
};

struct SweepStats {
  std::uint64_t runs = 0;
  std::uint64_t faults = 0;
  std::uint64_t errors = 0;     // the operation threw Error
  std::uint64_t succeeded = 0;  // the fault hit a call whose failure is harmless
  // Per Env method: faults that made the operation throw / that it absorbed.
  std::array<std::uint64_t, FaultEnv::kNumCalls> errors_by_call{}, absorbed_by_call{};
  void add(const SweepStats& o) {
    runs += o.runs;
    faults += o.faults;
    errors += o.errors;
    succeeded += o.succeeded;
    for (int c = 0; c < FaultEnv::kNumCalls; ++c) {
      errors_by_call[c] += o.errors_by_call[c];
      absorbed_by_call[c] += o.absorbed_by_call[c];
    }
  }
};

std::string root_of(const TempDir& dir) { return dir.file("root/sub"); }

// Runs the scenario on a copy of `tmpl`; fails call k (0 = none) with err.
// Returns the number of calls counted (k = 0) and checks everything.
std::uint64_t run_once(const Scenario& s, const std::string& tmpl, const Acked& acked_before,
                       std::uint64_t k, int err, SweepStats& stats) {
  TempDir dir(true, lilcache::test::tmpfs_dir());
  const std::string root = root_of(dir);
  if (!tmpl.empty()) {
    std::filesystem::create_directories(dir.file("root"));
    std::filesystem::copy(tmpl, root, std::filesystem::copy_options::recursive);
  }
  const auto before = lilcache::test::process_resources(dir.path());
  Acked acked = acked_before;
  Effects effects;
  FaultEnv env, other_env, verify_env;  // the last two never fail: they track reservations
  env.set_boot_id(s.boot_id);
  Outcome out;
  std::uint64_t calls = 0;
  std::string where;
  {
    std::optional<Cache> other;
    if (s.other_handle) other.emplace(Cache::open(kName, {.root = root, .env = &other_env}));
    std::optional<Cache> c;
    if (!s.is_open) c.emplace(Cache::open(kName, {.root = root, .sync = s.sync, .env = &env}));
    if (k == 0) {
      env.begin();
    } else {
      env.arm(k, err);
    }
    try {
      if (s.is_open) {
        c.emplace(Cache::open(kName, {.root = root, .env = &env}));
      } else {
        s.op(*c, acked_before, effects);
      }
    } catch (const Error& e) {
      out.failed = true;
      out.error = e.what();
    } catch (const std::exception& e) {
      FAIL_CHECK(s.name, ": call ", k, " failing with ", std::strerror(err),
                 " made the operation throw something other than lilcache::Error: ", e.what());
    }
    calls = env.total();
    where = env.injected();
    const int failed_call = env.injected_call();
    env.end();
    INFO(s.name, ": ",
         (k == 0 ? std::string("no fault") : "failed " + where + " with " + std::strerror(err)),
         (out.failed ? "; the operation threw: " + out.error : "; the operation succeeded"));
    if (k == 0) {
      CHECK_MESSAGE(!out.failed, "without a fault the operation must succeed");
    } else {
      ++stats.runs;
      ++stats.faults;
      ++(out.failed ? stats.errors : stats.succeeded);
      if (failed_call < FaultEnv::kNumCalls) {
        ++(out.failed ? stats.errors_by_call : stats.absorbed_by_call)[failed_call];
      }
      CHECK_MESSAGE(!where.empty(), "call ", k, " of ", calls,
                    " was never made: not deterministic");
    }
    // A handle that lived through the fault keeps working.
    if (c) {
      std::string probe = value_of("probe", 77);
      try {
        c->set("probe", probe);
        CHECK(c->get("probe") == probe);
        acked["probe"] = probe;
      } catch (const Error& e) {
        FAIL_CHECK("the handle is unusable after the fault: ", e.what());
      }
    }
  }
  {
    INFO(s.name, ": ",
         (k == 0 ? std::string("no fault") : "failed " + where + " with " + std::strerror(err)),
         (out.failed ? "; the operation threw: " + out.error : "; the operation succeeded"));
    std::optional<Cache> c;
    try {
      c.emplace(Cache::open(kName, {.root = root, .env = &verify_env}));
    } catch (const Error& e) {
      FAIL_CHECK("the cache does not reopen: ", e.what());
      return calls;
    }
    for (const auto& entry : acked) {
      // Named copies, not a structured binding: doctest's CHECK_MESSAGE
      // captures them in a lambda, which clang 14 refuses for bindings.
      const std::string& key = entry.first;
      const auto& value = entry.second;
      std::optional<std::string> got = c->get(key);
      auto eff = effects.find(key);
      if (eff == effects.end()) {
        CHECK_MESSAGE(got == value, "acknowledged key ", key, " is ", got ? "changed" : "missing");
      } else if (!out.failed) {
        CHECK_MESSAGE(got == eff->second, "key ", key, " does not hold the operation's effect");
      } else {
        CHECK_MESSAGE((got == value || got == eff->second), "key ", key,
                      " holds neither its acknowledged value nor the failed operation's");
      }
    }
    for (const auto& entry : effects) {
      const std::string& key = entry.first;
      const auto& value = entry.second;
      if (acked.count(key) != 0) continue;
      std::optional<std::string> got = c->get(key);
      if (!out.failed) {
        CHECK_MESSAGE(got == value, "key ", key, " does not hold the operation's effect");
      } else {
        CHECK_MESSAGE((!got || got == value), "key ", key,
                      " holds something the failed operation never wrote");
      }
    }
    c->for_each([&](std::string_view key, std::string_view) {
      std::string k(key);
      CHECK_MESSAGE((acked.count(k) != 0 || effects.count(k) != 0), "unexpected key ", k,
                    " after the reopen (a purged, popped or never written key)");
      return true;
    });
  }
  const auto after = lilcache::test::process_resources(dir.path());
  CHECK_MESSAGE(after.fds_under == 0, "descriptors of the cache left open: ", after.describe());
  CHECK_MESSAGE(after.maps_under == 0, "mappings of cache files left: ", after.describe());
  CHECK_MESSAGE(after.fds == before.fds, "before: ", before.describe(),
                "; after: ", after.describe());
  for (const FaultEnv* e : {&env, &other_env, &verify_env}) {
    CHECK_MESSAGE(e->reservations_held() == 0, e->reservations_held(),
                  " address reservations of the library were never released");
  }
  return calls;
}

// Counts the calls of a scenario, then fails each in turn with each errno.
SweepStats sweep(const Scenario& s) {
  TempDir tmpl_dir(true, lilcache::test::tmpfs_dir());
  std::string tmpl;
  Acked acked;
  if (s.prepare) {
    tmpl = root_of(tmpl_dir);
    s.prepare(tmpl, acked);
  }
  SweepStats stats;
  std::uint64_t calls = run_once(s, tmpl, acked, 0, 0, stats);
  if (s.expect_no_calls) {
    CHECK_MESSAGE(calls == 0, s.name, " made ", calls, " system calls through the Env");
  } else {
    CHECK_MESSAGE(calls > 0, s.name, ": expected Env calls to fail");
  }
  for (int err : {ENOSPC, EIO, EINTR, EFBIG}) {
    for (std::uint64_t k = 1; k <= calls; ++k) run_once(s, tmpl, acked, k, err, stats);
  }
  MESSAGE(s.name, ": ", calls, " Env calls; ", stats.faults, " faults injected, ", stats.errors,
          " reported as Error, ", stats.succeeded, " harmless");
  return stats;
}

std::vector<Scenario> scenarios() {
  std::vector<Scenario> v;
  auto add = [&](std::string name, std::function<void(Scenario&)> fill) {
    Scenario s;
    s.name = std::move(name);
    fill(s);
    v.push_back(std::move(s));
  };
  add("open: create a new cache (and its root)", [](Scenario& s) { s.is_open = true; });
  add("open: an existing cache, alone", [](Scenario& s) {
    s.prepare = prepare_base;
    s.is_open = true;
  });
  add("open: an existing cache another handle has open", [](Scenario& s) {
    s.prepare = prepare_base;
    s.is_open = true;
    s.other_handle = true;
  });
  add("open: recovery of a log with a hole at its tail", [](Scenario& s) {
    s.prepare = [](const std::string& root, Acked& acked) {
      prepare_base(root, acked);
      add_tail_hole(root);
    };
    s.is_open = true;
  });
  add("open: recovery after a reboot (another boot id)", [](Scenario& s) {
    s.prepare = prepare_base;
    s.is_open = true;
    s.boot_id = "another-boot-0000-0000";
  });
  add("set, get, pop, erase, contains, size, keys: no system call", [](Scenario& s) {
    s.prepare = prepare_base;
    s.expect_no_calls = true;
    s.op = [](Cache& c, const Acked&, Effects& eff) {
      std::string v = value_of("new", 100);
      c.set("new", v);
      c.set("k20", v);
      c.set("ttl", v, std::chrono::hours(1));
      CHECK(c.get("new") == v);
      CHECK(c.contains("k21"));
      CHECK(c.pop("k22").has_value());
      CHECK(c.erase("k23"));
      CHECK(c.size() > 0);
      CHECK(!c.keys("k").empty());
      eff = {{"new", v}, {"k20", v}, {"ttl", v}, {"k22", std::nullopt}, {"k23", std::nullopt}};
    };
  });
  add("purge: no system call", [](Scenario& s) {
    s.prepare = prepare_base;
    s.expect_no_calls = true;
    s.op = [](Cache& c, const Acked& acked, Effects& eff) {
      c.purge();
      for (const auto& kv : acked) eff[kv.first] = std::nullopt;
    };
  });
  add("set: grows the log", [](Scenario& s) {
    s.prepare = prepare_nearly_full;
    s.op = [](Cache& c, const Acked&, Effects& eff) {
      eff["grow"] = value_of("grow", 300 << 10);
      c.set("grow", *eff["grow"]);
    };
  });
  add("set: a value larger than a growth step", [](Scenario& s) {
    s.prepare = prepare_base;
    s.op = [](Cache& c, const Acked&, Effects& eff) {
      eff["huge"] = value_of("huge", 3 << 20);
      c.set("huge", *eff["huge"]);
    };
  });
  add("set with sync=always (an msync per write)", [](Scenario& s) {
    s.prepare = prepare_base;
    s.sync = "always";
    s.op = [](Cache& c, const Acked&, Effects& eff) {
      eff["durable"] = value_of("durable", 500);
      c.set("durable", *eff["durable"]);
    };
  });
  add("pop with sync=always", [](Scenario& s) {
    s.prepare = prepare_base;
    s.sync = "always";
    s.op = [](Cache& c, const Acked&, Effects& eff) {
      eff["k30"] = std::nullopt;
      if (!c.pop("k30").has_value()) FAIL_CHECK("k30 was not there to pop");
    };
  });
  add("purge with sync=always (an msync of the meta page)", [](Scenario& s) {
    s.prepare = prepare_base;
    s.sync = "always";
    s.op = [](Cache& c, const Acked& acked, Effects& eff) {
      for (const auto& kv : acked) eff[kv.first] = std::nullopt;
      c.purge();
    };
  });
  static const auto compact_op = [](Cache& c, const Acked&, Effects&) {
    bool compacted = c.compact().compacted;  // an Error propagates
    CHECK(compacted);
  };
  add("compact", [](Scenario& s) {
    s.prepare = prepare_base;
    s.op = compact_op;
  });
  add("compact while another handle has the cache open", [](Scenario& s) {
    s.prepare = prepare_base;
    s.other_handle = true;
    s.op = compact_op;
  });
  add("snapshot", [](Scenario& s) {
    s.prepare = prepare_base;
    s.op = [](Cache& c, const Acked&, Effects&) {
      bool compacted = c.snapshot().compacted;
      CHECK(compacted);
    };
  });
  add("sync", [](Scenario& s) {
    s.prepare = prepare_base;
    s.op = [](Cache& c, const Acked&, Effects&) { c.sync(); };
  });
  add("stats (asks whether other processes are alive)", [](Scenario& s) {
    s.prepare = prepare_base;
    s.other_handle = true;
    s.op = [](Cache& c, const Acked&, Effects&) {
      lilcache::Stats st = c.stats();
      CHECK(st.processes == 2);
    };
  });
  return v;
}

}  // namespace

TEST_CASE(
    "every Env call of every operation fails in turn: an Error, a usable cache, no lost write") {
  SweepStats total;
  std::uint64_t scenarios_run = 0;
  for (const Scenario& s : scenarios()) {
    total.add(sweep(s));
    ++scenarios_run;
  }
  std::string table = "faults per Env method: thrown as Error / absorbed";
  for (int c = 0; c < FaultEnv::kNumCalls; ++c) {
    if (total.errors_by_call[c] + total.absorbed_by_call[c] == 0) continue;
    table += "\n  " + std::string(FaultEnv::call_name(c)) + ": " +
             std::to_string(total.errors_by_call[c]) + " / " +
             std::to_string(total.absorbed_by_call[c]);
  }
  MESSAGE(table);
  // Failures the library must never swallow: an unreported fsync or msync
  // error is a write that is not durable, an unreported fallocate a SIGBUS
  // later. (open, fstat and mmap failures are absorbed only when a compactor
  // moves its own process to the new generation after the switch: the next
  // operation retries that, which the probe after each fault exercises.)
  for (int c : {FaultEnv::kFallocate, FaultEnv::kPwrite, FaultEnv::kFsync, FaultEnv::kFsyncDir,
                FaultEnv::kMsync, FaultEnv::kRename, FaultEnv::kLock, FaultEnv::kIsLocked,
                FaultEnv::kMkdir}) {
    CHECK_MESSAGE(total.absorbed_by_call[c] == 0, "a failed ", FaultEnv::call_name(c),
                  " was ignored ", total.absorbed_by_call[c], " times");
  }
  MESSAGE("fault sweep: ", scenarios_run, " scenarios, ", total.faults, " faults injected (",
          total.errors, " reported as Error, ", total.succeeded, " harmless)");
  CHECK(total.faults > 0);
}

TEST_CASE(
    "a fork child whose re-attach fails gets an Error, never a crash, and re-attaches once the "
    "fault is gone") {
  // The first call of a fork child re-attaches (docs/concurrency.md, "fork()"):
  // each of its Env calls fails in turn, in a fresh child each time.
  TempDir dir;
  const std::string root = dir.file("root");
  Acked acked;
  prepare_base(root, acked);
  FaultEnv env;
  Cache c = Cache::open(kName, {.root = root, .env = &env});
  const std::string want = acked.at("k20");
  constexpr std::uint64_t kFirstOk = 1, kFirstError = 2, kThenOk = 4, kThenError = 8;
  // In a child: fails call k (0 = none) of the first get, then checks the
  // handle works without faults. Sends (calls made, outcome bits).
  auto child = [&](std::uint64_t k, int err, lilcache::test::Pipe& pipe) {
    return lilcache::test::fork_child([&, k, err] {
      pipe.close_read();
      std::uint64_t outcome = 0;
      if (k == 0) {
        env.begin();
      } else {
        env.arm(k, err);
      }
      try {
        outcome |= c.get("k20") == want ? kFirstOk : 0;
      } catch (const Error&) {
        outcome |= kFirstError;
      }
      std::uint64_t calls = env.total();
      env.end();
      try {
        std::string v = value_of("child", 50);
        c.set("child", v);
        if (c.get("k20") == want && c.get("child") == v) outcome |= kThenOk;
      } catch (const Error& e) {
        std::fprintf(stderr, "child after the fault: %s\n", e.what());
        outcome |= kThenError;
      }
      pipe.send(calls);
      pipe.send(outcome);
      return 0;
    });
  };
  std::uint64_t calls = 0;
  {
    lilcache::test::Pipe pipe;
    pid_t pid = child(0, 0, pipe);
    pipe.close_write();
    calls = pipe.recv().value();
    CHECK(pipe.recv().value() == (kFirstOk | kThenOk));
    CHECK(lilcache::test::wait_child(pid) == 0);
  }
  REQUIRE(calls > 0);
  std::uint64_t faults = 0, errors = 0;
  for (int err : {ENOSPC, EIO, EINTR, EFBIG}) {
    for (std::uint64_t k = 1; k <= calls; ++k) {
      CAPTURE(k);
      CAPTURE(err);
      lilcache::test::Pipe pipe;
      pid_t pid = child(k, err, pipe);
      pipe.close_write();
      std::optional<std::uint64_t> n = pipe.recv(), outcome = pipe.recv();
      int status = lilcache::test::wait_child(pid);
      CHECK_MESSAGE(status == 0, "the child died (status ", status, ")");
      REQUIRE(n.has_value());
      REQUIRE(outcome.has_value());
      ++faults;
      if ((*outcome & kFirstError) != 0) ++errors;
      bool first_ok = (*outcome & (kFirstOk | kFirstError)) != 0;
      bool then_ok = (*outcome & kThenOk) != 0;
      CHECK_MESSAGE(first_ok, "the first get returned a wrong value");
      CHECK_MESSAGE(then_ok, "the child's handle does not work once the fault is gone");
    }
  }
  MESSAGE("re-attach: ", calls, " Env calls; ", faults, " faults injected, ", errors,
          " reported as Error");
  CHECK(c.get("k20") == want);
}
