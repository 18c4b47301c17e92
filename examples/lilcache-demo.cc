// lilcache-demo: seed requirement 1 ("multi process and thread safe cache")
// with three real processes sharing one cache, and no server:
//
//   process 1: set('a', 'b')
//   process 2: get('a')  -> 'b'
//   process 3: pop('a')  -> 'b'
//   process 2: get('a')  -> miss
//
// Usage: lilcache-demo [--root DIR]   (default: a fresh temporary directory,
// removed at exit). Exits 0 only if every step saw what it should.
#include <lilcache/lilcache.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <system_error>

namespace {

// The cache root: the given directory, or a fresh temporary one removed at exit.
class Root {
 public:
  explicit Root(std::string dir) : path_(std::move(dir)), owned_(path_.empty()) {
    if (owned_) {
      path_ = (std::filesystem::temp_directory_path() / "lilcache-demo.XXXXXX").string();
      if (mkdtemp(path_.data()) == nullptr) {
        throw std::system_error(errno, std::generic_category(), "mkdtemp");
      }
    }
  }
  ~Root() {
    if (owned_) {
      std::error_code ignored;
      std::filesystem::remove_all(path_, ignored);
    }
  }
  Root(const Root&) = delete;
  Root& operator=(const Root&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  bool owned_;
};

// A one-way, one-shot signal between processes.
class Signal {
 public:
  Signal() {
    if (pipe(fds_.data()) != 0) throw std::system_error(errno, std::generic_category(), "pipe");
  }
  ~Signal() {
    for (int fd : fds_) {
      if (fd >= 0) close(fd);
    }
  }
  Signal(const Signal&) = delete;
  Signal& operator=(const Signal&) = delete;

  void notify() {
    const char byte = 1;
    while (write(fds_[1], &byte, 1) < 0 && errno == EINTR) {
    }
  }
  // Returns false if every process that could notify has gone.
  bool wait() {
    char byte = 0;
    ssize_t n;
    while ((n = read(fds_[0], &byte, 1)) < 0 && errno == EINTR) {
    }
    return n == 1;
  }
  // Called by the waiting side once it has forked its notifier, so that wait()
  // returns false instead of blocking forever if the notifier dies.
  void close_notify_end() {
    close(fds_[1]);
    fds_[1] = -1;
  }

 private:
  std::array<int, 2> fds_{-1, -1};
};

std::string show(const std::optional<std::string>& value) {
  return value ? "'" + *value + "'" : "miss";
}

void say(int process, const std::string& what) {
  std::printf("[process %d, pid %d] %s\n", process, static_cast<int>(getpid()), what.c_str());
  std::fflush(stdout);
}

// Runs body in a new process; the process exits 0 if body returns true.
pid_t spawn(const std::function<bool()>& body) {
  std::fflush(stdout);
  const pid_t pid = fork();
  if (pid < 0) throw std::system_error(errno, std::generic_category(), "fork");
  if (pid == 0) {
    bool ok = false;
    try {
      ok = body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "[pid %d] error: %s\n", static_cast<int>(getpid()), e.what());
    }
    std::exit(ok ? 0 : 1);  // exit, not return: the parent owns the stack (and Root)
  }
  return pid;
}

// Waits for the process; true if it exited 0.
bool succeeded(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return false;
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace

int main(int argc, char** argv) try {
  CLI::App app{"lilcache seed requirement 1: set, get and pop across three processes"};
  std::string root_dir;
  app.add_option("--root", root_dir,
                 "cache root (default: a temporary directory, removed at exit)");
  app.set_version_flag("--version", "lilcache-demo " + std::string(lilcache::version()));
  CLI11_PARSE(app, argc, argv);

  const Root root(root_dir);
  lilcache::Options options;
  options.root = root.path();
  std::printf("cache root: %s\n", root.path().c_str());

  // Each process opens the cache on its own, as independent programs would.
  const bool p1 = succeeded(spawn([&] {
    lilcache::init("default", options);
    lilcache::set("a", "b");
    say(1, "set('a', 'b')");
    return true;
  }));

  Signal got_first;  // process 2 -> main: first get done
  Signal popped;     // main -> process 2: process 3 has popped
  const pid_t p2_pid = spawn([&] {
    lilcache::init("default", options);
    const auto first = lilcache::get("a");
    say(2, "get('a') -> " + show(first));
    got_first.notify();
    if (!popped.wait()) return false;
    const auto second = lilcache::get("a");
    say(2, "get('a') -> " + show(second) + " (after process 3 popped it)");
    return first == "b" && !second;
  });
  got_first.close_notify_end();
  got_first.wait();

  const bool p3 = succeeded(spawn([&] {
    lilcache::init("default", options);
    const auto value = lilcache::pop("a");
    say(3, "pop('a') -> " + show(value));
    return value == "b";
  }));
  popped.notify();
  const bool p2 = succeeded(p2_pid);

  if (p1 && p2 && p3) {
    std::printf("OK: three processes shared one cache, with no server\n");
    return 0;
  }
  std::printf("FAILED: process 1 %s, process 2 %s, process 3 %s\n", p1 ? "ok" : "failed",
              p2 ? "ok" : "failed", p3 ? "ok" : "failed");
  return 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "lilcache-demo: %s\n", e.what());
  return 1;
}
