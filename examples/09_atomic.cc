// Beyond the seed: counters, add, compare-and-set and get-or-set, the
// atomic ways to do what a get-then-set does with a race.
//
//   lilcache::increment("hits")                  // not: set(k, to_string(stoi(*get(k)) + 1))
//   lilcache::add("lock:report", owner)          // not: if (!get(k)) set(k, v)
//   lilcache::get_or_set("report", make_report)  // not: get(k) || set(k, make_report())
//
// Four threads each count to 50,000 on one key, first with get-then-set
// (which loses updates) and then with increment() (which does not); the same
// holds across processes. Then a compare-and-set loop and a get_or_set with
// 16 threads asking at once: make_report runs once.
//
// Usage: 09_atomic [ROOT]   (default: a temporary directory)
#include <lilcache/lilcache.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "example.h"

namespace {

constexpr int kThreads = 4, kEach = 50'000;

// Runs fn(i) kEach times in each of kThreads threads.
template <typename Fn>
void InThreads(Fn fn) {
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) fn(i);
    });
  }
  for (auto& t : threads) t.join();
}

}  // namespace

int main(int argc, char** argv) try {
  const example::Root root(argc, argv);
  lilcache::Options options;
  options.root = root.str();
  lilcache::init("default", options);

  // The race: two threads read 7, both write 8.
  lilcache::set("racy", "0");
  InThreads([](int) {
    const long n = std::stol(lilcache::get("racy").value_or("0"));
    lilcache::set("racy", std::to_string(n + 1));
  });
  // The atomic way.
  InThreads([](int) { lilcache::increment("hits"); });
  const std::string racy = lilcache::get("racy").value_or("?");
  const std::string hits = lilcache::get("hits").value_or("?");
  std::printf("get-then-set: expected %d, got %s\nincrement():  expected %d, got %s\n",
              kThreads * kEach, racy.c_str(), kThreads * kEach, hits.c_str());
  example::check(hits == std::to_string(kThreads * kEach), "increment() lost no update");

  // add(): exactly one of racing callers stores (a lock, a claim, a dedup).
  example::check(lilcache::add("lock:report", "worker-1"), "the first add stores");
  example::check(!lilcache::add("lock:report", "worker-2"), "a second add does not");

  // compare_and_set(): a read-modify-write of any value, retried on conflict.
  lilcache::set("doc", "v1");
  for (;;) {
    std::optional<lilcache::Versioned> cur = lilcache::get_versioned("doc");
    if (lilcache::compare_and_set("doc", cur->version, cur->value + "+edit")) break;
  }
  example::check(lilcache::get("doc") == "v1+edit", "compare_and_set applied the edit");

  // get_or_set(): one computation, however many ask at once (any processes).
  std::atomic<int> computed{0};
  std::vector<std::string> reports(16);
  std::vector<std::thread> askers;
  for (int t = 0; t < 16; ++t) {
    askers.emplace_back([&, t] {
      reports[t] = lilcache::get_or_set("report", [&] {
        computed.fetch_add(1);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // an expensive report
        return std::string("the report");
      });
    });
  }
  for (auto& t : askers) t.join();
  for (const std::string& r : reports) example::check(r == "the report", "every asker has it");
  std::printf("get_or_set(): 16 askers, make_report ran %d time(s)\n", computed.load());
  example::check(computed.load() == 1, "make_report ran once");
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "09_atomic: %s\n", e.what());
  return 1;
}
