// Seed requirement 1: one cache, shared by processes and threads, no server.
//
//   Process 1: set("a", "b")   Process 2: get("a")   Process 3: pop("a")
//
// Here the processes are forked children of this program; they could as well
// be unrelated programs. All they share is the cache's root directory.
//
// Usage: 01_multiprocess [ROOT]   (default: a temporary directory)
#include <lilcache/lilcache.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "example.h"

namespace {

// Runs `body` in a new process and returns whether it returned true.
bool in_new_process(const std::function<bool()>& body) {
  std::fflush(stdout);
  const pid_t pid = fork();
  if (pid < 0) throw std::system_error(errno, std::generic_category(), "fork");
  if (pid == 0) {
    bool ok = false;
    try {
      ok = body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s\n", e.what());
    }
    std::exit(ok ? 0 : 1);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) {
    throw std::system_error(errno, std::generic_category(), "waitpid");
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace

int main(int argc, char** argv) try {
  const example::Root root(argc, argv);
  lilcache::Options options;
  options.root = root.str();

  // Process 1 stores a value.
  const bool process1 = in_new_process([&] {
    lilcache::init("default", options);
    lilcache::set("a", "b");
    std::printf("process %d: set('a', 'b')\n", getpid());
    return true;
  });
  example::check(process1, "process 1 could not set 'a'");

  // Process 2 reads it.
  const bool process2 = in_new_process([&] {
    lilcache::init("default", options);
    const std::optional<std::string> value = lilcache::get("a");
    std::printf("process %d: get('a') -> '%s'\n", getpid(), value.value_or("").c_str());
    return value == "b";
  });
  example::check(process2, "process 2 did not get 'b'");

  // Process 3 pops it: removes it and receives its value.
  const bool process3 = in_new_process([&] {
    lilcache::init("default", options);
    const std::optional<std::string> value = lilcache::pop("a");
    std::printf("process %d: pop('a') -> '%s'\n", getpid(), value.value_or("").c_str());
    return value == "b";
  });
  example::check(process3, "process 3 did not pop 'b'");

  // The pop removed it for every process.
  lilcache::init("default", options);
  example::check(!lilcache::get("a"), "'a' is still there after the pop");
  std::printf("process %d: get('a') -> miss\n", getpid());

  // Threads: of 8 threads racing to pop one key, exactly one gets the value.
  lilcache::set("job", "42");
  std::atomic<int> winners = 0;
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < 8; ++i) {
      threads.emplace_back([&] {
        if (lilcache::pop("job")) ++winners;
      });
    }
  }  // the jthreads join here
  example::check(winners == 1, "not exactly one thread popped 'job'");
  std::printf("8 threads raced to pop 'job': %d got it\n", winners.load());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "01_multiprocess: %s\n", e.what());
  return 1;
}
