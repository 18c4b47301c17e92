// Faults of the operating system: a full disk (through the Env seam and a
// real, small tmpfs), a file-size limit (RLIMIT_FSIZE), signals interrupting
// system calls. fault_sweep_test.cc fails every Env call in turn.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "engine/meta.h"
#include "lilcache/env.h"
#include "lilcache/lilcache.h"
#include "support/test_util.h"

using lilcache::Cache;
using lilcache::Error;
using lilcache::ErrorCode;
using lilcache::test::TempDir;

namespace {
// While `disk_full` is set, fallocate fails with ENOSPC when it needs space
// (it reaches past the end of the file), as on a real full disk; a range
// already allocated is allocated again without any.
class FullDiskEnv : public lilcache::Env {
 public:
  int Fallocate(int fd, off_t offset, off_t length) override {
    struct stat st;
    if (disk_full.load() && (Env::Fstat(fd, &st) != 0 || offset + length > st.st_size)) {
      ++refused;
      errno = ENOSPC;
      return -1;
    }
    return Env::Fallocate(fd, offset, length);
  }
  std::atomic<bool> disk_full{false};
  std::atomic<int> refused{0};
};
}  // namespace

TEST_CASE(
    "a full disk makes set fail with a clear no-space Error; reads go on; space back, sets work") {
  TempDir dir;
  FullDiskEnv env;
  auto c = Cache::open("t", {.root = dir.path(), .env = &env});
  c.set("kept", "value");
  env.disk_full = true;
  std::string big(256 << 10, 'x');
  bool failed = false;
  for (int i = 0; i < 20 && !failed; ++i) {  // the first 1 MiB of log fills up
    try {
      c.set("big" + std::to_string(i), big);
    } catch (const Error& e) {
      failed = true;
      CHECK(std::string(e.what()).find("no space left") != std::string::npos);
      CHECK(lilcache::to_string(e.code()) == "no_space");
    }
  }
  REQUIRE(failed);
  CHECK(env.refused > 0);
  CHECK(c.get("kept") == "value");
  CHECK_ERROR_CODE(c.set("another", big), ErrorCode::no_space);
  env.disk_full = false;
  c.set("after", "space is back");
  CHECK(c.get("after") == "space is back");
  CHECK(c.get("kept") == "value");
}

TEST_CASE(
    "sets that fail on a full disk reserve nothing: the tail stays, a small set fits, reopen needs "
    "no space") {
  // Issue 11 item 3: the tail was advanced before the growth and never
  // rolled back, so 50 failed 1 MiB sets left it 52 MiB past the capacity;
  // every later set failed, and the next open replayed the log, which needs
  // free space for a copy.
  TempDir dir;
  FullDiskEnv env;
  std::uint64_t generation = 0;
  {
    auto c = Cache::open("t", {.root = dir.path(), .env = &env});
    c.set("kept", "value");
    const lilcache::Stats before = c.stats();
    env.disk_full = true;
    const std::string mib(1 << 20, 'x');
    for (int i = 0; i < 50; ++i) {
      CHECK_ERROR_CODE(c.set("big" + std::to_string(i), mib), ErrorCode::no_space);
    }
    CHECK(c.stats().bytes_file == before.bytes_file);
    CHECK(c.get("kept") == "value");
    c.set("x", "fits in the allocated megabyte");  // the disk is still full
    CHECK(c.get("x") == "fits in the allocated megabyte");
    CHECK(c.stats().bytes_file < before.bytes_file + 128);
    generation = c.stats().generation;
  }
  // Reopened alone on the full disk: the log checks out, nothing to rebuild.
  auto c = Cache::open("t", {.root = dir.path(), .env = &env});
  CHECK(c.stats().generation == generation);
  CHECK(c.get("kept") == "value");
  CHECK(c.get("x") == "fits in the allocated megabyte");
  env.disk_full = false;
  c.set("big", std::string(1 << 20, 'y'));
  CHECK(c.get("big") == std::string(1 << 20, 'y'));
}

TEST_CASE(
    "an open that must rebuild the log on a full disk fails with the no-space Error, then works") {
  // Only a rebuild needs free space (a copy of the live data); the header of
  // this log says its tail lies past its end (as failed growths of older
  // versions left it), so the lone opener replays the log.
  TempDir dir;
  FullDiskEnv env;
  {
    auto c = Cache::open("t", {.root = dir.path(), .env = &env});
    c.set("a", "1");
  }
  {
    int fd = ::open(dir.file("t.1.data").c_str(), O_RDWR);
    REQUIRE(fd >= 0);
    const std::uint64_t tail = 64ull << 20;  // offset 64: the header's tail
    REQUIRE(::pwrite(fd, &tail, 8, 64) == 8);
    ::close(fd);
  }
  env.disk_full = true;
  CHECK_ERROR_CODE(Cache::open("t", {.root = dir.path(), .env = &env}), ErrorCode::no_space);
  env.disk_full = false;
  auto c = Cache::open("t", {.root = dir.path(), .env = &env});
  CHECK(c.get("a") == "1");
  CHECK(c.stats().generation == 2);
  std::size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    files += e.path().filename().string().starts_with("t.");
  }
  CHECK(files == 4);  // t.meta, t.log, t.2.data, t.2.index: nothing half-made left
}

TEST_CASE(
    "thousands of failed 64 MiB sets never make the log \"full\": once space is back, sets work") {
  // Issue 11 item 3: after 4,096 failed 64 MiB sets the tail had passed the
  // 256 GiB limit of a generation, and every write failed with "log is full"
  // even with unlimited disk.
  TempDir dir;
  FullDiskEnv env;
  auto c = Cache::open("t", {.root = dir.path(), .env = &env});
  env.disk_full = true;
  const std::string big(lilcache::kMaxValueBytes, 'v');
  std::string last;
  ErrorCode last_code = ErrorCode::io;
  for (int i = 0; i < 4200; ++i) {
    try {
      c.set("big", big);
    } catch (const Error& e) {
      last = e.what();
      last_code = e.code();
    }
  }
  CHECK_MESSAGE(last_code == ErrorCode::no_space, last);  // not limit ("log is full")
  env.disk_full = false;
  c.set("x", "y");
  CHECK(c.get("x") == "y");
  c.set("big", big);
  CHECK(c.get("big") == big);
}

TEST_CASE("creating a cache on a full disk fails with an Error and leaves nothing half-made") {
  TempDir dir;
  FullDiskEnv env;
  env.disk_full = true;
  CHECK_ERROR_CODE(Cache::open("t", {.root = dir.path(), .env = &env}), ErrorCode::no_space);
  env.disk_full = false;
  auto c = Cache::open("t", {.root = dir.path(), .env = &env});
  c.set("a", "b");
  CHECK(c.get("a") == "b");
}

namespace {

// The test process's own values: make_value of the key, so that a wrong or
// torn value is recognized.
std::string value_for(const std::string& key, std::size_t len) {
  return lilcache::test::make_value(key, 9, lilcache::test::key_hash32(key), len);
}

// Checks in a child process (no doctest there): prints what is wrong.
bool expect(bool ok, const std::string& what) {
  if (!ok) std::fprintf(stderr, "child %d: CHECK FAILED: %s\n", getpid(), what.c_str());
  return ok;
}

// In a forked child: a private mount namespace (as root, or in a new user
// namespace otherwise) with a tmpfs of `size` mounted on `dir`. False if this
// machine allows neither.
bool mount_private_tmpfs(const std::string& dir, const std::string& size) {
  bool ns = unshare(CLONE_NEWNS) == 0;
  if (!ns) {
    uid_t uid = getuid();
    gid_t gid = getgid();
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) return false;
    std::ofstream("/proc/self/setgroups") << "deny";
    std::ofstream("/proc/self/uid_map") << "0 " << uid << " 1";
    std::ofstream("/proc/self/gid_map") << "0 " << gid << " 1";
  }
  if (mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return false;
  return mount("tmpfs", dir.c_str(), "tmpfs", 0, ("size=" + size).c_str()) == 0;
}

}  // namespace

namespace {
// Records every fallocate; fails them with EOPNOTSUPP while `unsupported`
// is set; says the file system is NFS while `nfs` is set.
class FileSystemEnv : public lilcache::Env {
 public:
  int Fallocate(int fd, off_t offset, off_t length) override {
    {
      std::lock_guard<std::mutex> lock(mu);
      calls.emplace_back(offset, length);
    }
    if (unsupported.load()) {
      errno = EOPNOTSUPP;
      return -1;
    }
    return Env::Fallocate(fd, offset, length);
  }
  int Fstatfs(int fd, struct statfs* st) override {
    int rc = Env::Fstatfs(fd, st);
    if (rc == 0 && nfs.load()) st->f_type = 0x6969;  // NFS_SUPER_MAGIC
    return rc;
  }
  std::mutex mu;
  std::vector<std::pair<off_t, off_t>> calls;
  std::atomic<bool> unsupported{false}, nfs{false};
};
}  // namespace

TEST_CASE("the log grows by allocating its new range only, never the whole file again") {
  // Issue 11 item 9: posix_fallocate(fd, 0, target) covered [0, target); on a
  // file system without fallocate, glibc's fallback rewrote a byte of every
  // block of the whole file, racing with writers' stores into their maps.
  TempDir dir;
  FileSystemEnv env;
  auto c = Cache::open("t", {.root = dir.path(), .env = &env});
  c.set("a", "b");
  {
    std::lock_guard<std::mutex> lock(env.mu);
    env.calls.clear();
  }
  const std::string big(3 << 20, 'v');  // the 1 MiB log grows to 4 MiB
  c.set("big", big);
  CHECK(c.get("big") == big);
  std::lock_guard<std::mutex> lock(env.mu);
  REQUIRE(env.calls.size() == 1);
  CHECK(env.calls[0].first == 1 << 20);
  CHECK(env.calls[0].first + env.calls[0].second == 4 << 20);
}

TEST_CASE("a file system without fallocate(2) is refused at open with a clear Error") {
  TempDir dir;
  FileSystemEnv env;
  { Cache::open("old", {.root = dir.path()}).set("a", "b"); }
  env.unsupported = true;
  const char* why = "cannot allocate space with fallocate(2)";
  CHECK_THROWS_WITH_AS(Cache::open("new", {.root = dir.path(), .env = &env}),
                       doctest::Contains(why), Error);
  CHECK_ERROR_CODE(Cache::open("new", {.root = dir.path(), .env = &env}), ErrorCode::unsupported);
  // An existing cache moved there: refused at open, not at its first growth.
  CHECK_THROWS_WITH_AS(Cache::open("old", {.root = dir.path(), .env = &env}),
                       doctest::Contains(why), Error);
  env.unsupported = false;
  CHECK(Cache::open("old", {.root = dir.path(), .env = &env}).get("a") == "b");
}

TEST_CASE("a cache on a network file system (NFS) is refused at open with a clear Error") {
  TempDir dir;
  FileSystemEnv env;
  { Cache::open("old", {.root = dir.path()}).set("a", "b"); }
  env.nfs = true;
  const char* why = "on a network file system (NFS)";
  CHECK_THROWS_WITH_AS(Cache::open("new", {.root = dir.path(), .env = &env}),
                       doctest::Contains(why), Error);
  CHECK_ERROR_CODE(Cache::open("new", {.root = dir.path(), .env = &env}), ErrorCode::unsupported);
  CHECK_THROWS_WITH_AS(Cache::open("old", {.root = dir.path(), .env = &env}),
                       doctest::Contains(why), Error);
}

TEST_CASE("Env::Default restarts a lock wait that signals interrupt") {
  // A signal handler installed without SA_RESTART makes fcntl(F_OFD_SETLKW)
  // fail with EINTR; the default Env must wait on, so an application's
  // signals never fail an operation.
  TempDir dir;
  std::string path = dir.file("f");
  int holder = ::open(path.c_str(), O_RDWR | O_CREAT, 0600);
  int waiter = ::open(path.c_str(), O_RDWR);
  REQUIRE(holder >= 0);
  REQUIRE(waiter >= 0);
  lilcache::Env* env = lilcache::Env::Default();
  REQUIRE(env->Lock(holder, 0, 1, true, false) == 0);
  static std::atomic<int> caught{0};
  caught = 0;
  struct sigaction sa = {}, old = {};
  sa.sa_handler = [](int) { caught.fetch_add(1); };
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART
  REQUIRE(sigaction(SIGUSR1, &sa, &old) == 0);
  std::atomic<int> rc{-2};
  std::thread t([&] { rc = env->Lock(waiter, 0, 1, true, true); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // into the wait
  for (int i = 0; i < 200 && caught < 5; ++i) {
    pthread_kill(t.native_handle(), SIGUSR1);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // ThreadSanitizer defers a signal that arrives in a system call it does not
  // intercept (fcntl) until the thread's next intercepted call, which this
  // wait never makes: the handler may not run, though the wait is still
  // interrupted. The lock semantics below are checked either way.
  if (!lilcache::test::under_tsan()) CHECK(caught >= 5);
  CHECK_MESSAGE(rc == -2, "the lock wait returned while the lock was held (errno ",
                std::strerror(errno), ")");
  REQUIRE(env->Unlock(holder, 0, 1) == 0);
  t.join();
  CHECK(rc == 0);
  sigaction(SIGUSR1, &old, nullptr);
  ::close(waiter);
  ::close(holder);
}

TEST_CASE("a real full disk (a tmpfs of 8 MiB): reads go on, sets fail with no space, then work") {
  // End to end, without the Env seam: posix_fallocate really fails. Runs in a
  // child with a private mount namespace, so nothing leaks to the machine.
  TempDir dir;
  const std::string mnt = dir.file("mnt");
  std::filesystem::create_directories(mnt);
  lilcache::test::Pipe pipe;
  pid_t pid = lilcache::test::fork_child([&]() -> int {
    pipe.close_read();
    if (!mount_private_tmpfs(mnt, "8m")) {
      std::fprintf(stderr, "cannot mount a tmpfs here (%s)\n", std::strerror(errno));
      return 77;
    }
    const std::string root = mnt + "/cache";
    std::map<std::string, std::string> acked;
    bool ok = true;
    {
      Cache c = Cache::open("t", {.root = root});
      for (int i = 0; i < 20; ++i) {
        std::string k = "kept" + std::to_string(i);
        c.set(k, value_for(k, 1000));
        acked[k] = value_for(k, 1000);
      }
      // Fill the file system with ballast, then the log's first megabyte.
      std::vector<std::string> ballast;
      for (int i = 0;; ++i) {
        std::string path = mnt + "/ballast" + std::to_string(i);
        int fd = ::open(path.c_str(), O_WRONLY | O_CREAT, 0600);
        if (fd < 0) break;
        ballast.push_back(path);
        int rc = posix_fallocate(fd, 0, 256 << 10);
        ::close(fd);
        if (rc != 0) break;
      }
      std::string error;
      ErrorCode code = ErrorCode::io;
      int sets = 0;
      for (int i = 0; i < 200 && error.empty(); ++i) {
        std::string k = "fill" + std::to_string(i);
        try {
          c.set(k, value_for(k, 64 << 10));
          acked[k] = value_for(k, 64 << 10);
          ++sets;
        } catch (const Error& e) {
          error = e.what();
          code = e.code();
        }
      }
      ok &= expect(!error.empty(), "no set failed on a full file system");
      ok &= expect(error.find("no space left") != std::string::npos,
                   "the Error does not say \"no space left\": " + error);
      ok &= expect(code == ErrorCode::no_space, "the Error's code is not no_space: " + error);
      for (const auto& [k, v] : acked)
        ok &= expect(c.get(k) == v, "a read failed while full: " + k);
      bool failed_again = false;
      try {
        c.set("again", value_for("again", 64 << 10));
      } catch (const Error&) {
        failed_again = true;
      }
      ok &= expect(failed_again, "a set succeeded on a full file system");
      for (const auto& path : ballast) ::unlink(path.c_str());
      for (int i = 0; i < 8; ++i) {
        std::string k = "after" + std::to_string(i);
        c.set(k, value_for(k, 64 << 10));
        acked[k] = value_for(k, 64 << 10);
      }
      for (const auto& [k, v] : acked)
        ok &= expect(c.get(k) == v, "lost after space came back: " + k);
      pipe.send(static_cast<std::uint64_t>(sets));
    }
    // Reopened alone: failed growths reserve nothing, so the log checks out.
    Cache c = Cache::open("t", {.root = root});
    for (const auto& [k, v] : acked) ok &= expect(c.get(k) == v, "lost after the reopen: " + k);
    ok &= expect(c.size() == acked.size(), "size() after the reopen");
    pipe.send(acked.size());
    return ok ? 0 : 1;
  });
  pipe.close_write();
  std::optional<std::uint64_t> sets = pipe.recv(std::chrono::seconds(60));
  std::optional<std::uint64_t> keys = pipe.recv(std::chrono::seconds(60));
  int status = lilcache::test::wait_child(pid);
  if (status == 77) {
    MESSAGE(
        "no tmpfs can be mounted on this machine (not root, no user namespaces): the "
        "full-disk case is covered through the Env seam only");
    return;
  }
  CHECK_MESSAGE(status == 0, "the child failed (its stderr is above), status ", status);
  REQUIRE(sets.has_value());
  REQUIRE(keys.has_value());
  MESSAGE("tmpfs of 8 MiB: ", *sets, " sets of 64 KiB fitted before ENOSPC; ", *keys,
          " keys intact after space came back and a reopen");
}

TEST_CASE(
    "a real full disk (tmpfs): failed 1 MiB sets reserve nothing, a reopen while full reads, "
    "space back and a small set works") {
  // Issue 11 item 3, end to end: 50 failed 1 MiB sets used to leave the tail
  // 52 MiB past the capacity, so that every later set failed even after space
  // came back, and a reopen needed free space to replay the log.
  TempDir dir;
  const std::string mnt = dir.file("mnt");
  std::filesystem::create_directories(mnt);
  lilcache::test::Pipe pipe;
  pid_t pid = lilcache::test::fork_child([&]() -> int {
    pipe.close_read();
    if (!mount_private_tmpfs(mnt, "8m")) {
      std::fprintf(stderr, "cannot mount a tmpfs here (%s)\n", std::strerror(errno));
      return 77;
    }
    const std::string root = mnt + "/cache";
    std::map<std::string, std::string> acked;
    std::vector<std::string> ballast;
    bool ok = true;
    std::uint64_t failed = 0, moved = 0, generation = 0;
    auto check_reads = [&](Cache& c, const char* when) {
      for (const auto& [k, v] : acked) ok &= expect(c.get(k) == v, std::string(when) + ": " + k);
    };
    {
      Cache c = Cache::open("t", {.root = root});
      for (int i = 0; i < 20; ++i) {
        std::string k = "kept" + std::to_string(i);
        c.set(k, value_for(k, 1000));
        acked[k] = value_for(k, 1000);
      }
      for (int i = 0;; ++i) {  // ballast fills the file system
        std::string path = mnt + "/ballast" + std::to_string(i);
        int fd = ::open(path.c_str(), O_WRONLY | O_CREAT, 0600);
        if (fd < 0) break;
        ballast.push_back(path);
        int rc = posix_fallocate(fd, 0, 256 << 10);
        ::close(fd);
        if (rc != 0) break;
      }
      for (int i = 0; i < 64; ++i) {  // then the log's allocated megabyte
        std::string k = "fill" + std::to_string(i);
        try {
          c.set(k, value_for(k, 64 << 10));
          acked[k] = value_for(k, 64 << 10);
        } catch (const Error&) {
          break;
        }
      }
      const std::uint64_t tail = c.stats().bytes_file;
      for (int i = 0; i < 50; ++i) {
        try {
          c.set("huge", value_for("huge", 1 << 20));
          ok &= expect(false, "a 1 MiB set succeeded on a full file system");
        } catch (const Error& e) {
          ++failed;
          ok &= expect(e.code() == ErrorCode::no_space,
                       std::string("not a no-space Error: ") + e.what());
        }
      }
      moved = c.stats().bytes_file - tail;
      ok &= expect(moved == 0, "50 failed sets moved the tail by " + std::to_string(moved));
      check_reads(c, "a read failed while full");
      generation = c.stats().generation;
    }
    {
      // Alone, on the full file system: the log checks out, no replay.
      Cache c = Cache::open("t", {.root = root});
      ok &= expect(c.stats().generation == generation, "the reopen rebuilt the log");
      check_reads(c, "a read failed after a reopen while full");
      for (const auto& path : ballast) ::unlink(path.c_str());
      c.set("x", "small");
      acked["x"] = "small";
      c.set("huge", value_for("huge", 1 << 20));
      acked["huge"] = value_for("huge", 1 << 20);
      check_reads(c, "lost after space came back");
    }
    Cache c = Cache::open("t", {.root = root});
    check_reads(c, "lost after the last reopen");
    ok &= expect(c.size() == acked.size(), "size() after the last reopen");
    pipe.send(failed);
    pipe.send(moved);
    return ok ? 0 : 1;
  });
  pipe.close_write();
  std::optional<std::uint64_t> failed = pipe.recv(std::chrono::seconds(60));
  std::optional<std::uint64_t> moved = pipe.recv(std::chrono::seconds(60));
  int status = lilcache::test::wait_child(pid);
  if (status == 77) {
    MESSAGE("no tmpfs can be mounted on this machine: covered through the Env seam only");
    return;
  }
  CHECK_MESSAGE(status == 0, "the child failed (its stderr is above), status ", status);
  REQUIRE(failed.has_value());
  REQUIRE(moved.has_value());
  CHECK(*failed == 50);
  CHECK(*moved == 0);
}

TEST_CASE("a file size limit (RLIMIT_FSIZE): sets fail with EFBIG, reads go on, nothing lost") {
  // A child with a 3 MiB file size limit and SIGXFSZ ignored: growing the
  // log past it fails with EFBIG ("File too large").
  TempDir dir;
  const std::string root = dir.file("cache");
  lilcache::test::Pipe pipe;
  pid_t pid = lilcache::test::fork_child([&]() -> int {
    pipe.close_read();
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {3 << 20, 3 << 20};
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0) return 2;
    bool ok = true;
    Cache c = Cache::open("t", {.root = root});
    std::string error;
    ErrorCode code = ErrorCode::no_space;
    std::uint64_t n = 0;
    for (; n < 100 && error.empty(); ++n) {
      std::string k = "k" + std::to_string(n);
      try {
        c.set(k, value_for(k, 256 << 10));
      } catch (const Error& e) {
        error = e.what();
        code = e.code();
        break;
      }
    }
    ok &= expect(error.find(std::strerror(EFBIG)) != std::string::npos,
                 "expected an Error saying \"" + std::string(std::strerror(EFBIG)) + "\", got \"" +
                     error + "\"");
    ok &= expect(code == ErrorCode::io, "EFBIG is not an io Error: " + error);
    for (std::uint64_t i = 0; i < n; ++i) {
      std::string k = "k" + std::to_string(i);
      ok &= expect(c.get(k) == value_for(k, 256 << 10), "a read failed at the limit: " + k);
    }
    pipe.send(n);
    return ok ? 0 : 1;
  });
  pipe.close_write();
  std::optional<std::uint64_t> acked = pipe.recv(std::chrono::seconds(60));
  CHECK(lilcache::test::wait_child(pid) == 0);
  REQUIRE(acked.has_value());
  CHECK(*acked >= 4);  // about 2 MiB fit under the limit
  // Without the limit: every acknowledged write is there, and sets work.
  Cache c = Cache::open("t", {.root = root});
  for (std::uint64_t i = 0; i < *acked; ++i) {
    std::string k = "k" + std::to_string(i);
    CHECK(c.get(k) == value_for(k, 256 << 10));
  }
  c.set("more", value_for("more", 1 << 20));
  CHECK(c.get("more") == value_for("more", 1 << 20));
  MESSAGE("RLIMIT_FSIZE 3 MiB: ", *acked, " sets of 256 KiB acknowledged before EFBIG");
}

// ---- ErrorCode: the kind of each OS failure -------------------------------------

namespace {

// Fails, while `err` is set, every open (errno = err), or every msync, or
// claims that every process slot of NAME.meta is locked by another process.
class RefusingEnv : public lilcache::Env {
 public:
  int Open(const char* path, int flags, mode_t mode) override {
    if (open_err != 0) {
      errno = open_err;
      return -1;
    }
    return Env::Open(path, flags, mode);
  }
  int Msync(void* addr, std::size_t length, int flags) override {
    if (msync_err != 0) {
      errno = msync_err;
      return -1;
    }
    return Env::Msync(addr, length, flags);
  }
  int Lock(int fd, off_t start, off_t length, bool exclusive, bool wait) override {
    if (slots_taken && !wait && start >= lilcache::SlotLockByte(0)) {
      errno = EAGAIN;
      return -1;
    }
    return Env::Lock(fd, start, length, exclusive, wait);
  }
  int open_err = 0;
  int msync_err = 0;
  bool slots_taken = false;
};

}  // namespace

TEST_CASE(
    "a failing system call throws Error with code io (EIO), permission (EACCES, EPERM) or "
    "no_space (ENOSPC, EDQUOT)") {
  TempDir dir;
  RefusingEnv env;
  { Cache::open("t", {.root = dir.path(), .env = &env}).set("a", "b"); }
  const std::pair<int, ErrorCode> cases[] = {{EIO, ErrorCode::io},
                                             {EMFILE, ErrorCode::io},
                                             {EACCES, ErrorCode::permission},
                                             {EPERM, ErrorCode::permission},
                                             {ENOSPC, ErrorCode::no_space},
                                             {EDQUOT, ErrorCode::no_space}};
  // Not a structured binding: clang 14 (the sanitizer builds) cannot use one
  // in the lambdas of doctest's CAPTURE and CHECK macros.
  for (const auto& test_case : cases) {
    const int err = test_case.first;
    const ErrorCode code = test_case.second;
    CAPTURE(std::strerror(err));
    env.open_err = err;
    CHECK_ERROR_CODE(Cache::open("t", {.root = dir.path(), .env = &env}), code);
    env.open_err = 0;
    auto c = Cache::open("t", {.root = dir.path(), .env = &env});
    env.msync_err = err;
    CHECK_ERROR_CODE(c.sync(), code);
    env.msync_err = 0;
    CHECK(c.get("a") == "b");
  }
}

TEST_CASE("a cache whose 1,024 process slots are all held throws Error with code busy at open") {
  TempDir dir;
  RefusingEnv env;
  { Cache::open("t", {.root = dir.path(), .env = &env}).set("a", "b"); }
  env.slots_taken = true;
  CHECK_ERROR_CODE(Cache::open("t", {.root = dir.path(), .env = &env}), ErrorCode::busy);
  env.slots_taken = false;
  CHECK(Cache::open("t", {.root = dir.path(), .env = &env}).get("a") == "b");
}
