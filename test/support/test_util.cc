#include "support/test_util.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "engine/meta.h"
#include "format/shared_atomic.h"
#include "inspect/audit.h"

namespace lilcache::test {

std::string audit_cache(const std::string& root, const std::string& name) {
  AuditReport r = AuditIndex(root, name);
  return r.ok() ? std::string() : r.Describe();
}

std::uint64_t auto_compact(Cache& c, const std::string& prefix) {
  const std::uint64_t gen = c.stats().generation;
  for (int i = 0; i < 1'000'000; ++i) {
    c.set(prefix + std::to_string(i), "filler");
    if (i % 64 != 63 || c.stats().generation == gen) continue;
    // The keys written while it ran may have asked for another growth:
    // wait until the generation has stayed the same for 200 ms, so that no
    // compaction runs behind the caller's back.
    std::uint64_t now = c.stats().generation;
    for (int stable = 0, polls = 0; stable < 10 && polls < 3000; ++polls) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      const std::uint64_t g = c.stats().generation;
      stable = g == now ? stable + 1 : 0;
      now = g;
    }
    return now;
  }
  throw std::runtime_error("no automatic compaction after 1,000,000 new keys");
}

void force_replay(const std::string& root, const std::string& name) {
  const std::string path = root + "/" + name + ".meta";
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("open " + path + ": " + std::strerror(errno));
  void* p = mmap(nullptr, kHeaderSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) throw std::runtime_error("mmap " + path);
  // seq_cst like every other test-side poke: nobody relies on its order.
  Shared(static_cast<MetaHeader*>(p)->flags).fetch_or(kFlagNeedsRebuild, std::memory_order_seq_cst);
  munmap(p, kHeaderSize);
}

TempDir::TempDir(bool create, const std::string& base) {
  const char* env = std::getenv("TMPDIR");
  std::string dir = !base.empty() ? base : env && *env ? env : "/tmp";
  std::string tmpl = dir + "/lilcache-test-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
  if (!create) std::filesystem::remove(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string tmpfs_dir() { return ::access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : ""; }

pid_t fork_child(const std::function<int()>& fn) {
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    int rc = 99;
    try {
      rc = fn();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child %d: exception: %s\n", getpid(), e.what());
    }
    std::fflush(nullptr);
    _exit(rc);
  }
  return pid;
}

void dump_stacks(pid_t pid) {
  // A hang is a bug to diagnose, not only to report: print where every
  // thread of the stuck process is (gdb, when the machine has it).
  if (::access("/usr/bin/gdb", X_OK) != 0) return;
  std::fprintf(stderr, "process %d did not finish in time; its threads:\n", static_cast<int>(pid));
  std::fflush(stderr);
  std::string cmd = "timeout 60 /usr/bin/gdb -batch -nx -p " + std::to_string(pid) +
                    " -ex 'thread apply all bt' 2>&1 | grep -v '^\\[New LWP' | head -300 >&2";
  if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "(gdb failed)\n");
}

int wait_child(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
      return -1;
    }
    if (r < 0 && errno != EINTR) return -1;
    if (std::chrono::steady_clock::now() > deadline) {
      dump_stacks(pid);
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

std::string worker_path() {
  const char* p = std::getenv("LILCACHE_TEST_WORKER");
  if (p == nullptr || *p == '\0') throw std::runtime_error("LILCACHE_TEST_WORKER is not set");
  return p;
}

pid_t spawn(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    execv(args[0], args.data());
    std::fprintf(stderr, "execv %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  return pid;
}

double stress_seconds(double default_seconds) {
  const char* s = std::getenv("LILCACHE_STRESS_SECONDS");
  if (s != nullptr && *s != '\0') {
    char* end = nullptr;
    double v = std::strtod(s, &end);
    if (end != s && v > 0) return v;
  }
  return default_seconds;
}

double slowdown() {
  const char* s = std::getenv("LILCACHE_SLOWDOWN");
  if (s != nullptr && *s != '\0') {
    char* end = nullptr;
    double v = std::strtod(s, &end);
    if (end != s && v >= 1) return v;
  }
  return 1;
}

std::optional<int> try_wait_child(pid_t pid) {
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == 0) return std::nullopt;
    if (r == pid) {
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
      return -1;
    }
    if (errno == EINTR) continue;
    return -1;
  }
}

Children::~Children() { kill_all(); }

pid_t Children::add(pid_t pid) {
  pids_.push_back(pid);
  return pid;
}

void Children::forget(pid_t pid) {
  pids_.erase(std::remove(pids_.begin(), pids_.end(), pid), pids_.end());
}

int Children::wait(pid_t pid, std::chrono::milliseconds timeout) {
  int status = wait_child(pid, timeout);
  forget(pid);
  return status;
}

int Children::kill_and_wait(pid_t pid) {
  ::kill(pid, SIGKILL);
  int status = 0;
  int r;
  do {
    r = waitpid(pid, &status, 0);
  } while (r < 0 && errno == EINTR);
  forget(pid);
  if (r != pid) return -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

void Children::kill_all() {
  while (!pids_.empty()) kill_and_wait(pids_.back());
}

Pipe::Pipe() {
  if (pipe2(fds_, O_CLOEXEC) != 0) {
    throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
  }
}

Pipe::~Pipe() {
  close_read();
  close_write();
}

void Pipe::close_read() {
  if (fds_[0] >= 0) ::close(fds_[0]);
  fds_[0] = -1;
}

void Pipe::close_write() {
  if (fds_[1] >= 0) ::close(fds_[1]);
  fds_[1] = -1;
}

void Pipe::send(std::uint64_t v) {
  for (;;) {
    ssize_t n = ::write(fds_[1], &v, sizeof v);
    if (n == static_cast<ssize_t>(sizeof v)) return;
    if (n < 0 && errno == EINTR) continue;
    throw std::runtime_error(std::string("pipe write: ") + std::strerror(errno));
  }
}

std::optional<std::uint64_t> Pipe::recv(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  unsigned char buf[8];
  std::size_t got = 0;
  while (got < sizeof buf) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) throw std::runtime_error("pipe read: timed out");
    pollfd p{fds_[0], POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw std::runtime_error(std::string("poll: ") + std::strerror(errno));
    if (r == 0) continue;
    ssize_t n = ::read(fds_[0], buf + got, sizeof buf - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error(std::string("pipe read: ") + std::strerror(errno));
    if (n == 0) {
      if (got == 0) return std::nullopt;
      throw std::runtime_error("pipe read: torn message");
    }
    got += static_cast<std::size_t>(n);
  }
  std::uint64_t v;
  std::memcpy(&v, buf, sizeof v);
  return v;
}

void StartGate::wait() {
  pipe_.close_write();
  if (pipe_.recv(std::chrono::seconds(60)).has_value()) {
    throw std::runtime_error("start gate: unexpected message");
  }
}

void StartGate::open() { pipe_.close_write(); }

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string ProcessResources::describe() const {
  return std::to_string(fds) + " fds (" + std::to_string(fds_under) + " of the cache), " +
         std::to_string(maps) + " mappings (" + std::to_string(maps_under) + " of cache files)";
}

ProcessResources process_resources(const std::string& dir) {
  ProcessResources r;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    ++r.fds;
    if (dir.empty()) continue;
    std::error_code lec;
    std::string target = std::filesystem::read_symlink(e.path(), lec).string();
    if (!lec && target.rfind(dir + "/", 0) == 0) ++r.fds_under;
  }
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    ++r.maps;
    // "start-end perms offset dev inode   path"
    unsigned long long start = 0, end = 0;
    char perms[8] = {};
    unsigned long long offset = 0, inode = 0;
    char dev[16] = {};
    int consumed = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx %7s %llx %15s %llu %n", &start, &end, perms, &offset,
                    dev, &inode, &consumed) < 6) {
      continue;
    }
    std::string path = consumed > 0 ? line.substr(static_cast<std::size_t>(consumed)) : "";
    if (!dir.empty() && path.rfind(dir + "/", 0) == 0) ++r.maps_under;
  }
  return r;
}

std::vector<AckRecord> read_acks(const std::string& path) {
  std::string bytes = read_file(path);
  std::vector<AckRecord> acks(bytes.size() / sizeof(AckRecord));
  if (!acks.empty()) std::memcpy(acks.data(), bytes.data(), acks.size() * sizeof(AckRecord));
  for (const auto& a : acks) {
    if (a.magic != AckRecord{}.magic) throw std::runtime_error("corrupt ack file " + path);
  }
  return acks;
}

}  // namespace lilcache::test
