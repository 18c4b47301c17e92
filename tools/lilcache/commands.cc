// commands: what tools/lilcache/commands.h defines out of line.
#include "commands.h"

#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace lilcache::tools {

lilcache::Cache OpenCache(const CliContext& cx, const lilcache::Options& o) {
  try {
    return lilcache::Cache::open(cx.name, o);
  } catch (const lilcache::Error& e) {
    if (cx.local()) throw;
    if (e.code() == lilcache::ErrorCode::invalid_argument) {
      throw UsageProblem(std::string("--backend: ") + e.what());
    }
    if (e.code() == lilcache::ErrorCode::unsupported) {
      // An option the backend leaves to the servers ("snapshot: ..."): named
      // as the user gave it.
      std::string what = e.what();
      for (auto [field, option] :
           {std::pair{"snapshot: ", "--snapshot: "}, std::pair{"max_bytes: ", "--max-bytes: "}}) {
        if (what.starts_with(field)) what = option + what.substr(std::strlen(field));
      }
      throw UsageProblem(what + " (with --backend " + ShownBackend(cx.effective_backend()) + ")");
    }
    throw;
  }
}

lilcache::Cache CliContext::open() const { return OpenCache(*this, options()); }

std::optional<lilcache::Cache> CliContext::open_existing() const {
  lilcache::Options o = options();
  o.create_if_missing = false;  // nothing is created even if it vanished meanwhile
  if (local()) {
    if (!lilcache::cache_exists(name, root)) return std::nullopt;
    return OpenCache(*this, o);
  }
  // On Redis a cache is a key prefix: one with no keys is empty, not missing.
  try {
    return OpenCache(*this, o);
  } catch (const lilcache::Error& e) {
    if (e.code() == lilcache::ErrorCode::no_such_cache) return std::nullopt;
    throw;
  }
}

void WriteStdout(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(STDOUT_FILENO, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw lilcache::Error(
          lilcache::ErrorCode::io,
          std::string("cannot write to standard output: ") + std::strerror(errno));
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

void PrintValue(std::string_view value, std::string_view header) {
  const bool terminal = ::isatty(STDOUT_FILENO) == 1;
  if (!terminal && header.empty()) return WriteStdout(value);
  std::string out;
  out.reserve(header.size() + value.size() + 1);
  out.append(header).append(value);
  if (terminal) out += '\n';
  WriteStdout(out);
}

namespace {

// All of stdin, byte for byte. Throws Error past kMaxValueBytes (without
// reading further) or on a read error.
std::string ReadStdinValue() {
  std::string value;
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(STDIN_FILENO, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw lilcache::Error(lilcache::ErrorCode::io,
                            std::string("cannot read standard input: ") + std::strerror(errno));
    }
    if (n == 0) return value;
    if (value.size() + static_cast<std::size_t>(n) > lilcache::kMaxValueBytes) {
      throw lilcache::Error(lilcache::ErrorCode::limit,
                            "value on standard input exceeds the limit of " +
                                std::to_string(lilcache::kMaxValueBytes) +
                                " bytes (kMaxValueBytes)");
    }
    value.append(buffer, static_cast<std::size_t>(n));
  }
}

// The whole of `text` as a T by std::from_chars (base 10), or nullopt.
template <typename T>
std::optional<T> ParseDecimal(const std::string& text) {
  T n{};
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, n);
  if (text.empty() || ec != std::errc() || ptr != end) return std::nullopt;
  return n;
}

}  // namespace

std::string ValueArgument(const std::string& arg) { return arg == "-" ? ReadStdinValue() : arg; }

void CheckName(const CliContext& cx) {
  try {
    lilcache::validate_name(cx.name);
  } catch (const lilcache::Error& e) {
    throw UsageProblem(std::string("--name: ") + e.what());
  }
  // ($LILCACHE_BACKEND was checked with the other variables.)
  if (std::string problem = BackendProblem("--backend", cx.effective_backend());
      !cx.backend.empty() && !problem.empty()) {
    throw UsageProblem(problem);
  }
}

void CheckKey(const CliContext& cx, std::string_view key) {
  CheckName(cx);
  if (key.empty() || key.size() > lilcache::kMaxKeyBytes) {
    throw UsageProblem("invalid key of " + std::to_string(key.size()) + " bytes (keys are 1.." +
                       std::to_string(lilcache::kMaxKeyBytes) + " bytes)");
  }
}

std::chrono::milliseconds ParseTtl(std::string_view option, const std::string& text) {
  std::chrono::milliseconds ttl{0};
  try {
    ttl = lilcache::parse_duration(text);
  } catch (const lilcache::Error& e) {
    throw UsageProblem(std::string(option) + ": " + e.what());
  }
  if (ttl.count() <= 0) {
    throw UsageProblem(std::string(option) + ": must be at least 1ms, got \"" + OneLine(text) +
                       "\"");
  }
  return ttl;
}

std::int64_t ParseInt64(std::string_view option, const std::string& text) {
  if (auto n = ParseDecimal<std::int64_t>(text)) return *n;
  throw UsageProblem(std::string(option) + ": must be a decimal int64 (-9223372036854775808.." +
                     "9223372036854775807), got \"" + OneLine(text) + "\"");
}

std::uint64_t ParseVersion(const std::string& text) {
  if (auto n = ParseDecimal<std::uint64_t>(text)) return *n;  // no sign for an unsigned type
  throw UsageProblem(
      "VERSION must be a decimal number, as the first line of 'get KEY --version'"
      " prints, got \"" +
      OneLine(text) + "\"");
}

}  // namespace lilcache::tools
