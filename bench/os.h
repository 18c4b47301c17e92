// Small RAII wrappers over POSIX used by the benchmark: descriptors, pipes,
// temporary directories, child processes and loopback servers.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bench {

using Clock = std::chrono::steady_clock;

// Thrown when a peer cannot run on this machine (e.g. its server binary is
// missing): the peer is skipped, not failed.
class Unavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Thrown after SIGINT/SIGTERM so that stack unwinding removes temporary
// directories and stops servers. Deliberately not a std::exception: handlers
// that catch one store's failure must not swallow it.
struct Interrupted {};

// SIGINT/SIGTERM set a flag checked by throw_if_interrupted(); SIGPIPE is
// ignored (a dead server must surface as an error, not kill the benchmark).
void install_signal_handlers();
void throw_if_interrupted();

// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const { return fd_; }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

struct Pipe {
  Fd read;
  Fd write;
  static Pipe make();
};

// Writes/reads exactly n bytes (retrying on EINTR). read_all returns false on
// end of file before n bytes.
void write_all(int fd, const void* data, std::size_t n);
bool read_all(int fd, void* data, std::size_t n);

// A fresh directory /tmp/lilcache-bench-<tag>-XXXXXX, removed with its
// contents by the process that created it.
class TempDir {
 public:
  explicit TempDir(std::string_view tag);
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  pid_t owner_;
};

// A forked child process. The destructor kills (SIGKILL) and reaps a child
// that is still running, so no path leaves one behind.
class Child {
 public:
  // Runs body in a new process, which then _exit()s with body's return value
  // (70 if it throws). The child never runs the parent's destructors.
  static Child fork(const std::function<int()>& body);

  Child(Child&& other) noexcept;
  Child& operator=(Child&& other) = delete;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child();

  pid_t pid() const { return pid_; }
  // True once the child has ended (never blocks).
  bool exited();
  // Waits for the end; returns "" for exit status 0, else how it ended.
  std::string wait();
  // Sends sig, waits up to `grace`, then SIGKILL; reaps.
  void stop(int sig, std::chrono::milliseconds grace);

 private:
  explicit Child(pid_t pid) : pid_(pid) {}
  pid_t pid_ = -1;
  std::optional<int> status_;  // waitpid status once reaped
};

// Reads exactly n bytes from fd (a pipe the children write to), failing if
// `deadline` passes, on SIGINT, or when a child ends abnormally (a crash must
// not look like a hang).
void read_from_children(int fd, void* data, std::size_t n, Clock::time_point deadline,
                        std::vector<Child>& children);

// Full path of `name` found in $PATH, or nullopt.
std::optional<std::filesystem::path> find_in_path(std::string_view name);

// A loopback TCP port that was free a moment ago.
int free_loopback_port();

// A server program run as a child listening on 127.0.0.1:port, its output in
// `log`. Stopped with SIGTERM (then SIGKILL) on destruction; it also dies with
// the benchmark (PR_SET_PDEATHSIG) if the benchmark is killed.
class Server {
 public:
  // Throws Unavailable if the binary is not in $PATH, std::runtime_error
  // (quoting the log) if it does not accept connections within 10 s.
  Server(std::string_view binary, const std::vector<std::string>& args, int port,
         const std::filesystem::path& log);
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server();

 private:
  void await_listening(int port, const std::filesystem::path& log);
  Child child_;
};

// "2 CPUs (nproc), Linux 6.1.0 x86_64, AMD EPYC, 23.5 GiB RAM".
std::string describe_machine();
// The 1, 5 and 15 minute load averages, "0.12 0.40 0.33".
std::string load_average();

}  // namespace bench
