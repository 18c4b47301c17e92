// The read-only inspector (lib/inspect/inspect.h) and its system calls: every
// one goes through the Env it is given, and a failing call is reported (or,
// for NAME.meta, an Error), never a crash or a leaked descriptor or mapping.
#include <doctest/doctest.h>

#include <string>

#include "inspect/inspect.h"
#include "lilcache/env.h"
#include "lilcache/lilcache.h"
#include "support/fault_env.h"
#include "support/test_util.h"

namespace {

using lilcache::Inspector;
using lilcache::test::FaultEnv;
using lilcache::test::TempDir;

void MakeCache(const TempDir& dir) {
  auto c = lilcache::Cache::open("t", {.root = dir.path()});
  c.set("a", "1");
  c.set("b", "2");
}

bool NamesFile(const Inspector& in, const std::string& suffix) {
  for (const auto& p : in.problems()) {
    if (p.file.size() >= suffix.size() &&
        p.file.compare(p.file.size() - suffix.size(), suffix.size(), suffix) == 0) {
      return true;
    }
  }
  return false;
}

}  // namespace

TEST_CASE("the inspector opens, maps and closes the three files through the Env it is given") {
  TempDir dir;
  MakeCache(dir);
  FaultEnv env;
  env.begin();
  {
    auto in = Inspector::Open(dir.path(), "t", 0, &env);
    CHECK(in.problems().empty());
    CHECK(in.ScanLog().count(lilcache::RecordState::kLive) == 2);
    CHECK(in.ComputeIndexStats().occupied == 2);
    CHECK(env.count(FaultEnv::kOpen) == 3);
    CHECK(env.count(FaultEnv::kMmap) == 3);
    CHECK(env.count(FaultEnv::kIsLocked) >= 1);  // live processes counted through it too
  }
  CHECK(env.count(FaultEnv::kMunmap) == 3);
  CHECK(env.count(FaultEnv::kClose) == 3);
  env.end();
}

TEST_CASE("a failing open, fstat or mmap is an Error for NAME.meta, a problem for the others") {
  TempDir dir;
  MakeCache(dir);
  FaultEnv env;
  env.begin();
  { Inspector::Open(dir.path(), "t", 0, &env); }
  const std::uint64_t calls = env.total();
  for (std::uint64_t k = 1; k <= calls; ++k) {
    CAPTURE(k);
    env.arm(k, EIO);
    std::string failed;
    int call = FaultEnv::kNumCalls;
    bool threw = false;
    bool data_problem = false, index_problem = false;
    try {
      auto in = Inspector::Open(dir.path(), "t", 0, &env);
      data_problem = NamesFile(in, "t.1.data");
      index_problem = NamesFile(in, "t.1.index");
      in.ScanLog();
      in.ComputeIndexStats();
    } catch (const lilcache::Error& e) {
      threw = true;
      CHECK(std::string(e.what()).find("t.meta") != std::string::npos);
    }
    failed = env.injected();
    call = env.injected_call();
    CAPTURE(failed);
    // (A healthy cache's files are each stat'ed once, when opened.)
    if (call == FaultEnv::kOpen || call == FaultEnv::kFstat || call == FaultEnv::kMmap) {
      CHECK((threw || data_problem || index_problem));
    }
    // Everything opened or mapped was released, whatever failed.
    CHECK(env.count(FaultEnv::kClose) == env.count(FaultEnv::kOpen) - (call == FaultEnv::kOpen));
    CHECK(env.count(FaultEnv::kMunmap) == env.count(FaultEnv::kMmap) - (call == FaultEnv::kMmap));
  }
  env.end();
}
