// Helpers shared by the test suites: temporary roots and child processes.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace lilcache::test {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on
// destruction. path() does not exist yet when `create` is false.
class TempDir {
 public:
  explicit TempDir(bool create = true);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Runs fn in a forked child; the child exits with fn's return value (or 99 on
// an exception, after printing it to stderr). Returns the child's pid.
pid_t fork_child(const std::function<int()>& fn);

// Waits for pid; returns its exit status, 128+signal if it was killed, or -1
// if it did not end within `timeout` (then it is killed with SIGKILL).
int wait_child(pid_t pid, std::chrono::milliseconds timeout = std::chrono::seconds(60));

// Path of the lilcache-test-worker executable ($LILCACHE_TEST_WORKER).
std::string worker_path();

// fork + exec of `argv` (argv[0] is the program path). Returns the pid.
pid_t spawn(const std::vector<std::string>& argv);

}  // namespace lilcache::test
