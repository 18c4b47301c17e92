#include "os.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <system_error>
#include <thread>

#include <fmt/format.h>

namespace bench {
namespace {

volatile std::sig_atomic_t g_interrupted = 0;

extern "C" void on_signal(int) { g_interrupted = 1; }

[[noreturn]] void throw_errno(std::string_view what) {
  throw std::system_error(errno, std::generic_category(), std::string(what));
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) {
    return WEXITSTATUS(status) == 0 ? ""
                                    : fmt::format("exited with status {}", WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) {
    return fmt::format("killed by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
  }
  return fmt::format("ended with wait status {:#x}", status);
}

std::string tail_of(const std::filesystem::path& file, std::size_t max_bytes = 2000) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  std::string all = text.str();
  return all.size() <= max_bytes ? all : all.substr(all.size() - max_bytes);
}

bool accepts_connections(int port) {
  Fd sock(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (sock.get() < 0) throw_errno("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return ::connect(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
}

// The child side of Server: own process group (a terminal ^C reaches only the
// benchmark, which then stops the server in order), output to `log`, killed
// if the benchmark dies, then exec.
int exec_server(const std::filesystem::path& binary, const std::vector<std::string>& args,
                const std::filesystem::path& log) {
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return 126;
  ::dup2(fd, STDOUT_FILENO);
  ::dup2(fd, STDERR_FILENO);
  std::vector<char*> argv;
  std::string program = binary.string();
  argv.push_back(program.data());
  std::vector<std::string> copies = args;
  for (std::string& arg : copies) argv.push_back(arg.data());
  argv.push_back(nullptr);
  ::execv(program.c_str(), argv.data());
  std::perror(program.c_str());
  return 127;
}

double total_ram_gib() {
  long pages = ::sysconf(_SC_PHYS_PAGES);
  long page_size = ::sysconf(_SC_PAGESIZE);
  return static_cast<double>(pages) * static_cast<double>(page_size) / (1u << 30);
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("model name")) {
      auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "unknown CPU";
}

int usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return -1;
  return CPU_COUNT(&set);
}

}  // namespace

void install_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

void throw_if_interrupted() {
  if (g_interrupted) throw Interrupted{};
}

Fd& Fd::operator=(Fd&& other) noexcept {
  reset(std::exchange(other.fd_, -1));
  return *this;
}

void Fd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

Pipe Pipe::make() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno("pipe2");
  return Pipe{Fd(fds[0]), Fd(fds[1])};
}

void write_all(int fd, const void* data, std::size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t done = ::write(fd, p, n);
    if (done < 0 && errno == EINTR) continue;
    if (done < 0) throw_errno("write");
    p += done;
    n -= static_cast<std::size_t>(done);
  }
}

bool read_all(int fd, void* data, std::size_t n) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    ssize_t done = ::read(fd, p, n);
    if (done < 0 && errno == EINTR) continue;
    if (done < 0) throw_errno("read");
    if (done == 0) return false;
    p += done;
    n -= static_cast<std::size_t>(done);
  }
  return true;
}

TempDir::TempDir(std::string_view tag) : owner_(::getpid()) {
  std::string pattern = fmt::format("/tmp/lilcache-bench-{}-XXXXXX", tag);
  if (::mkdtemp(pattern.data()) == nullptr) throw_errno("mkdtemp " + pattern);
  path_ = pattern;
}

TempDir::~TempDir() {
  if (::getpid() != owner_) return;
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

Child Child::fork(const std::function<int()>& body) {
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork");
  if (pid > 0) return Child(pid);
  int code = 70;
  try {
    code = body();
  } catch (...) {
  }
  ::_exit(code);
}

Child::Child(Child&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), status_(std::exchange(other.status_, std::nullopt)) {}

Child::~Child() {
  if (pid_ > 0 && !status_) stop(SIGKILL, std::chrono::milliseconds(0));
}

bool Child::exited() {
  if (status_) return true;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) status_ = status;
  return status_.has_value();
}

std::string Child::wait() {
  while (!status_) {
    int status = 0;
    pid_t done = ::waitpid(pid_, &status, 0);
    if (done == pid_) status_ = status;
    if (done < 0 && errno != EINTR) throw_errno("waitpid");
  }
  return describe_status(*status_);
}

void Child::stop(int sig, std::chrono::milliseconds grace) {
  if (exited()) return;
  ::kill(pid_, sig);
  auto deadline = Clock::now() + grace;
  while (!exited() && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (!exited()) ::kill(pid_, SIGKILL);
  wait();
}

void read_from_children(int fd, void* data, std::size_t n, Clock::time_point deadline,
                        std::vector<Child>& children) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, 100) > 0) {
      ssize_t got = ::read(fd, p, n);
      if (got < 0 && errno != EINTR)
        throw std::system_error(errno, std::generic_category(), "read");
      if (got == 0) throw std::runtime_error("the forked processes ended without reporting");
      if (got > 0) {
        p += got;
        n -= static_cast<std::size_t>(got);
      }
      continue;
    }
    throw_if_interrupted();
    for (std::size_t i = 0; i < children.size(); ++i) {
      if (!children[i].exited()) continue;
      std::string how = children[i].wait();
      if (!how.empty()) throw std::runtime_error(fmt::format("forked process {} {}", i, how));
    }
    if (Clock::now() > deadline) {
      throw std::runtime_error("the forked processes did not answer in time (hung?)");
    }
  }
}

std::optional<std::filesystem::path> find_in_path(std::string_view name) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    std::filesystem::path candidate = std::filesystem::path(dir) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

int free_loopback_port() {
  Fd sock(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (sock.get() < 0) throw_errno("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    throw_errno("bind 127.0.0.1:0");
  }
  socklen_t len = sizeof addr;
  if (::getsockname(sock.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    throw_errno("getsockname");
  }
  return ntohs(addr.sin_port);
}

namespace {

Child spawn(std::string_view binary, const std::vector<std::string>& args,
            const std::filesystem::path& log) {
  std::optional<std::filesystem::path> path = find_in_path(binary);
  if (!path) throw Unavailable(fmt::format("{} not found in $PATH", binary));
  return Child::fork([&] { return exec_server(*path, args, log); });
}

}  // namespace

Server::Server(std::string_view binary, const std::vector<std::string>& args, int port,
               const std::filesystem::path& log)
    : child_(spawn(binary, args, log)) {
  await_listening(port, log);
}

void Server::await_listening(int port, const std::filesystem::path& log) {
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!accepts_connections(port)) {
    throw_if_interrupted();
    if (child_.exited() || Clock::now() > deadline) {
      std::string how = child_.exited() ? child_.wait() : "did not listen within 10 s";
      throw std::runtime_error(fmt::format("server on port {} {}; its output:\n{}", port,
                                           how.empty() ? "exited" : how, tail_of(log)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

Server::~Server() { child_.stop(SIGTERM, std::chrono::seconds(5)); }

std::string describe_machine() {
  utsname names{};
  ::uname(&names);
  return fmt::format("{} CPUs (nproc), {} {} {}, {}, {:.1f} GiB RAM", usable_cpus(), names.sysname,
                     names.release, names.machine, cpu_model(), total_ram_gib());
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return fmt::format("{} {} {}", one, five, fifteen);
}

}  // namespace bench
