#include "util/logging.h"

#include <fcntl.h>
#include <spdlog/sinks/base_sink.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <mutex>

#include "engine/file_lock.h"
#include "lilcache/env.h"
#include "lilcache/lilcache.h"
#include "util/ascii.h"
#include "util/quote.h"

namespace lilcache {

spdlog::level::level_enum ParseLogLevel(std::string_view name) {
  std::string n(name);
  const char* from = "";  // where n came from, for the message
  if (n.empty()) {
    const char* env = std::getenv("LILCACHE_LOGLEVEL");
    n = env != nullptr && *env != '\0' ? env : "info";
    if (env != nullptr && *env != '\0') from = " in $LILCACHE_LOGLEVEL";
  }
  std::string lower = AsciiLower(n);
  if (lower == "warning") lower = "warn";
  static const char* kNames[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
  for (int i = 0; i < 7; ++i) {
    if (lower == kNames[i]) return static_cast<spdlog::level::level_enum>(i);
  }
  throw Error(ErrorCode::invalid_argument,
              "invalid log level " + Quote(n) + from +
                  " (expected trace, debug, info, warn, error, critical or off)");
}

namespace {

// Appends each line with one write(2) to NAME.log, a descriptor we opened
// ourselves like every cache file (O_NOFOLLOW | O_CLOEXEC, fstat-checked:
// ours, 0600), never reopened by path behind our back; and rotates it.
//
// Rotation, shared by every process appending to the file: before each line
// a writer checks the size of its descriptor's file. Under the cap it writes.
// At the cap it takes an OFD lock on byte 0 of that file (rotators exclude
// each other; plain writers take no lock) and looks at what NAME.log names
// now: if it is still its file, it renames it to NAME.log.1 (replacing the
// previous one) and opens a new NAME.log; if another process rotated it
// meanwhile, it opens the new NAME.log. Only a writer of the current NAME.log
// that finds it full renames, under that file's lock, so a file is rotated
// once and NAME.log.1 is always the newest old file. A line written to a
// file just rotated away lands in NAME.log.1, not lost. If rotating fails
// (or the new file cannot be trusted), lines are dropped until it works:
// the log never grows past the cap by more than the lines in flight.
//
// Thread-safety: base_sink's mutex serializes the calls of one logger.
class RotatingLogSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  // The first open goes through the cache's `env`, like every open of a
  // cache file; the writes, checks and reopens of each line go through
  // Env::Default(): a log line is no operation of the cache, and an Env that
  // injects faults or counts calls must not see one (operations documented
  // to make no system call log at info level).
  RotatingLogSink(Env* env, std::string path, std::uint64_t max_bytes)
      : env_(Env::Default()), path_(std::move(path)), max_bytes_(max_bytes) {
    file_ = OpenLog(env, path_);
  }

  static FileHandle OpenLog(Env* env, const std::string& path) {
    return FileHandle::Open(env, path, O_WRONLY | O_CREAT | O_APPEND, 0600);
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t line;
    formatter_->format(msg, line);
    if (!Writable()) return;
    // A failed write is dropped: the library never prints, and a log line is
    // not worth failing an operation for.
    if (env_->Append(file_.fd(), line.data(), line.size()) == 0) unchecked_ += line.size();
  }
  void flush_() override {}

 private:
  bool Writable() {
    if (!file_.valid()) return Reopen();
    // The size is looked at (an fstat) only after this process appended
    // 1/256 of the cap since it last looked, not before every line: a file
    // passes the cap by at most that much per writing process, plus a line.
    if (unchecked_ < check_every_) return true;
    unchecked_ = 0;
    struct stat st;
    if (env_->Fstat(file_.fd(), &st) != 0) return false;
    if (static_cast<std::uint64_t>(st.st_size) < max_bytes_) return true;
    try {
      FileLock rotating = FileLock::Acquire(env_, file_, 0);
      if (IsCurrent(st)) {
        const std::string old = path_ + ".1";
        if (env_->Rename(path_.c_str(), old.c_str()) != 0) return false;
      }
    } catch (const Error&) {
      return false;
    }
    unchecked_ = check_every_;  // a fresh file: look at the next line again
    return Reopen();
  }

  // Whether NAME.log still names the file `ours` (fstat of our descriptor).
  bool IsCurrent(const struct stat& ours) {
    int fd = env_->Open(path_.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC, 0);
    if (fd < 0) return false;
    struct stat st;
    bool same = env_->Fstat(fd, &st) == 0 && st.st_dev == ours.st_dev && st.st_ino == ours.st_ino;
    env_->Close(fd);
    return same;
  }

  bool Reopen() {
    file_.Reset();
    try {
      file_ = OpenLog(env_, path_);
    } catch (const Error&) {
      return false;
    }
    return true;
  }

  Env* env_;
  std::string path_;
  std::uint64_t max_bytes_;
  // Bytes this process appended since it last looked at the file's size;
  // starts "due", so that the first line looks.
  std::uint64_t check_every_ = std::min<std::uint64_t>(64 << 10, max_bytes_ / 256);
  std::uint64_t unchecked_ = check_every_;
  FileHandle file_;
};

}  // namespace

std::shared_ptr<spdlog::logger> MakeCacheLogger(Env* env, const std::string& path,
                                                const std::string& cache_name,
                                                spdlog::level::level_enum level,
                                                std::uint64_t max_bytes) {
  // Throws Error if the log cannot be opened or trusted.
  auto sink = std::make_shared<RotatingLogSink>(env, path, max_bytes);
  auto logger = std::make_shared<spdlog::logger>("lilcache." + cache_name, std::move(sink));
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e [%P] %l %n: %v");
  logger->set_level(level);
  logger->flush_on(spdlog::level::trace);  // one write(2) per line: lines of processes never mix
  return logger;
}

}  // namespace lilcache
