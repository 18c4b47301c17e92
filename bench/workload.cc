#include "workload.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <span>
#include <system_error>

#include <fmt/format.h>

#include "os.h"

namespace bench {
namespace {

constexpr std::size_t kMaxBatch = 10'000;  // ops per timing in get/set phases
constexpr int kMixStride = 128;            // ops between clock reads in the mix
constexpr std::size_t kLoadChunk = 1'000;
constexpr auto kOpenTimeout = std::chrono::seconds(60);
constexpr auto kFinishSlack = std::chrono::seconds(60);

std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

char hex_digit(std::uint64_t d) { return "0123456789abcdef"[d & 15]; }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

void write_hex(char* out, std::uint64_t value, int digits) {
  for (int i = 0; i < digits; ++i) out[i] = hex_digit(value >> (4 * (digits - 1 - i)));
}

// A uniformly chosen index below n, from the low 32 bits of r.
std::size_t pick(std::uint64_t r, std::size_t n) {
  return static_cast<std::size_t>(((r & 0xffffffffu) * n) >> 32);
}

// One op in ten is a set, from the high 32 bits of r.
bool is_set(std::uint64_t r) { return (r >> 32) % 10 == 0; }

std::string printable(std::string_view bytes) {
  std::string out(bytes);
  for (char& c : out) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  return out;
}

std::string tag_text(std::uint64_t tag) {
  char text[8];
  std::memcpy(text, &tag, sizeof text);
  return printable(std::string_view(text, sizeof text));
}

// Runs op() `ops` times in batches, timing each batch as a whole: ns per op.
template <typename Op>
double timed_batches(std::size_t ops, Op op) {
  std::size_t batch = std::clamp<std::size_t>(ops / 5, 1, kMaxBatch);
  Clock::duration total{};
  for (std::size_t done = 0; done < ops;) {
    throw_if_interrupted();
    std::size_t n = std::min(batch, ops - done);
    auto start = Clock::now();
    for (std::size_t i = 0; i < n; ++i) op();
    total += Clock::now() - start;
    done += n;
  }
  return std::chrono::duration<double, std::nano>(total).count() / static_cast<double>(ops);
}

template <std::size_t N>
void copy_text(char (&out)[N], std::string_view text) {
  std::size_t n = std::min(text.size(), N - 1);
  std::memcpy(out, text.data(), n);
  out[n] = '\0';
}

}  // namespace

// What each mix process writes to the parent, in one write (< PIPE_BUF).
struct MixReport {
  std::uint64_t ops = 0;
  std::uint64_t nanos = 0;
  std::uint64_t gets = 0;
  std::uint64_t bad = 0;
  char error[1024] = {};
  char first_bad[512] = {};
};
static_assert(sizeof(MixReport) < 4096);

struct MixPipes {
  Pipe ready;    // each child writes one byte once its handle is open
  Pipe go;       // the parent closes the write end: every child starts
  Pipe reports;  // one MixReport per child
};

std::vector<std::string> make_keys(std::size_t n) {
  std::vector<std::string> keys(n, std::string(Values::kKeyBytes, '0'));
  for (std::size_t i = 0; i < n; ++i) write_hex(keys[i].data(), mix64(i), Values::kKeyBytes);
  return keys;
}

std::uint64_t Rng::next() {
  state_ += 0x9e3779b97f4a7c15u;
  return mix64(state_);
}

// ---- Values -------------------------------------------------------------------

Values::Values(std::size_t size) : size_(size) {
  if (size < kMinSize)
    throw std::invalid_argument(fmt::format("values need >= {} bytes", kMinSize));
  for (std::size_t d = 0; d < fillers_.size(); ++d) {
    Rng rng(d * 1'000'003 + size);
    std::string& filler = fillers_[d];
    filler.assign(size, '.');
    for (std::size_t i = kHeaderBytes; i < size; ++i) {
      filler[i] = static_cast<char>('A' + rng.next() % 58);
    }
    buffers_[d] = filler;
  }
}

std::string_view Values::make(std::string_view key, std::uint32_t version) {
  std::string& buffer = buffers_[version & 15];
  std::memcpy(buffer.data(), key.data(), kKeyBytes);
  write_hex(buffer.data() + kKeyBytes, version, 8);
  return buffer;
}

std::uint64_t Values::tag_of(std::string_view value) {
  std::uint64_t tag = 0;
  std::memcpy(&tag, value.data() + kKeyBytes, sizeof tag);
  return tag;
}

bool Values::looks_right(std::string_view key, std::string_view value,
                         std::uint64_t expected_tag) const {
  if (value.size() != size_ || std::memcmp(value.data(), key.data(), kKeyBytes) != 0) return false;
  if (expected_tag != 0 && tag_of(value) != expected_tag) return false;
  int d = hex_value(value[kHeaderBytes - 1]);
  return d >= 0 && std::memcmp(value.data() + size_ - 8, fillers_[d].data() + size_ - 8, 8) == 0;
}

std::string Values::diagnose(std::string_view key, const std::optional<std::string>& value,
                             std::uint64_t expected_tag) const {
  if (!value) return "missing (get found nothing)";
  std::string_view v = *value;
  if (v.size() != size_) return fmt::format("{} bytes instead of {}", v.size(), size_);
  if (v.substr(0, kKeyBytes) != key.substr(0, kKeyBytes)) {
    return fmt::format("starts with '{}': not this key's value", printable(v.substr(0, kKeyBytes)));
  }
  std::string_view version = v.substr(kKeyBytes, 8);
  if (!std::all_of(version.begin(), version.end(), [](char c) { return hex_value(c) >= 0; })) {
    return fmt::format("version field '{}' is not hex", printable(version));
  }
  if (expected_tag != 0 && tag_of(v) != expected_tag) {
    return fmt::format("version {} but {} was set last (stale)", version, tag_text(expected_tag));
  }
  const std::string& filler = fillers_[static_cast<std::size_t>(hex_value(version.back()))];
  auto [got, want] =
      std::mismatch(v.begin() + kHeaderBytes, v.end(), filler.begin() + kHeaderBytes);
  if (got != v.end()) {
    return fmt::format("byte {} differs from version {}'s value (torn or corrupt)", got - v.begin(),
                       version);
  }
  return "";
}

// ---- Checks -------------------------------------------------------------------

void Checks::fail(std::string what) {
  if (bad++ == 0) first_bad = std::move(what);
}

void Checks::merge(const Checks& other) {
  gets += other.gets;
  if (other.bad > 0 && bad == 0) first_bad = other.first_bad;
  bad += other.bad;
}

// ---- Dataset: load, timed sets and gets, verify -------------------------------------

Dataset::Dataset(const std::vector<std::string>& keys, std::size_t value_size, std::uint64_t seed)
    : keys_(keys), values_(value_size), expected_(keys.size(), 0), rng_(seed) {}

void Dataset::load(Handle& handle) {
  std::span<const std::string> keys(keys_);
  for (std::size_t start = 0; start < keys.size(); start += kLoadChunk) {
    throw_if_interrupted();
    std::size_t n = std::min(kLoadChunk, keys.size() - start);
    std::vector<std::string> values;
    values.reserve(n);
    for (std::size_t i = start; i < start + n; ++i) {
      values.emplace_back(values_.make(keys_[i], ++version_));
      expected_[i] = Values::tag_of(values.back());
    }
    handle.load(keys.subspan(start, n), values);
  }
}

double Dataset::time_sets(Handle& handle, std::size_t ops) {
  return timed_batches(ops, [&] {
    std::size_t i = pick(rng_.next(), keys_.size());
    std::string_view value = values_.make(keys_[i], ++version_);
    handle.set(keys_[i], value);
    expected_[i] = Values::tag_of(value);
  });
}

double Dataset::time_gets(Handle& handle, std::size_t ops) {
  return timed_batches(ops, [&] {
    std::size_t i = pick(rng_.next(), keys_.size());
    check_get(i, handle.get(keys_[i]));
  });
}

double Dataset::time_gets_into(Handle& handle, std::size_t ops) {
  std::string buffer;
  return timed_batches(ops, [&] {
    std::size_t i = pick(rng_.next(), keys_.size());
    check_get(i, handle.get_into(keys_[i], buffer) ? &buffer : nullptr);
  });
}

void Dataset::check_get(std::size_t index, const std::optional<std::string>& value) {
  check_get(index, value ? &*value : nullptr);
}

void Dataset::check_get(std::size_t index, const std::string* value) {
  ++checks_.gets;
  const std::string& key = keys_[index];
  if (value != nullptr && values_.looks_right(key, *value, expected_[index])) return;
  std::string what = values_.diagnose(
      key, value != nullptr ? std::optional<std::string>(*value) : std::nullopt, expected_[index]);
  checks_.fail(fmt::format("key {}: {}", key, what.empty() ? "failed the quick check" : what));
}

void Dataset::verify(Handle& handle, std::size_t limit) {
  std::size_t count = std::min(limit, keys_.size());
  for (std::size_t k = 0; k < count; ++k) {
    if (k % 1000 == 0) throw_if_interrupted();
    std::size_t i = k * keys_.size() / count;
    ++checks_.gets;
    std::string what = values_.diagnose(keys_[i], handle.get(keys_[i]), expected_[i]);
    if (!what.empty()) checks_.fail(fmt::format("key {}: {} (final check)", keys_[i], what));
  }
}

// ---- Dataset: the mix -------------------------------------------------------------

Dataset::MixCount Dataset::mix_loop(Handle& handle, double seconds) {
  auto start = Clock::now();
  auto end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::uint64_t ops = 0;
  auto now = start;
  while (now < end) {
    throw_if_interrupted();
    for (int k = 0; k < kMixStride; ++k) {
      std::uint64_t r = rng_.next();
      std::size_t i = pick(r, keys_.size());
      if (is_set(r)) {
        handle.set(keys_[i], values_.make(keys_[i], ++version_));
      } else {
        check_get(i, handle.get(keys_[i]));
      }
    }
    ops += kMixStride;
    now = Clock::now();
  }
  return MixCount{ops, now - start};
}

double Dataset::time_mix_here(Handle& handle, double seconds) {
  std::fill(expected_.begin(), expected_.end(), 0);  // the mix's sets are not tracked
  MixCount count = mix_loop(handle, seconds);
  return static_cast<double>(count.ops) / std::chrono::duration<double>(count.elapsed).count();
}

// Runs in a forked child (this object is the child's copy of the parent's).
int Dataset::mix_child(Store& store, int index, double seconds, MixPipes& pipes) {
  pipes.ready.read.reset();
  pipes.go.write.reset();
  pipes.reports.read.reset();
  checks_ = Checks{};
  rng_ = Rng(mix64(static_cast<std::uint64_t>(index) + 0x5eed));
  version_ = static_cast<std::uint32_t>(index + 1) << 28;  // distinct from the parent's
  MixReport report;
  std::unique_ptr<Handle> handle;
  try {
    handle = store.open();
  } catch (const std::exception& e) {
    copy_text(report.error, fmt::format("open: {}", e.what()));
  }
  char byte = 1;
  write_all(pipes.ready.write.get(), &byte, 1);
  read_all(pipes.go.read.get(), &byte, 1);  // returns at end of file: the start signal
  if (handle) {
    try {
      MixCount count = mix_loop(*handle, seconds);
      report.ops = count.ops;
      report.nanos = static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(count.elapsed).count());
    } catch (const std::exception& e) {
      copy_text(report.error, e.what());
    } catch (const Interrupted&) {
      copy_text(report.error, "interrupted");
    }
  }
  report.gets = checks_.gets;
  report.bad = checks_.bad;
  copy_text(report.first_bad, checks_.first_bad);
  write_all(pipes.reports.write.get(), &report, sizeof report);
  return 0;
}

double Dataset::time_mix(Store& store, int processes, double seconds) {
  std::fill(expected_.begin(), expected_.end(), 0);  // other processes write
  MixPipes pipes{Pipe::make(), Pipe::make(), Pipe::make()};
  std::vector<Child> children;
  for (int i = 0; i < processes; ++i) {
    children.push_back(Child::fork([&, i] { return mix_child(store, i, seconds, pipes); }));
  }
  pipes.ready.write.reset();
  pipes.go.read.reset();
  pipes.reports.write.reset();
  std::vector<char> ready(static_cast<std::size_t>(processes));
  read_from_children(pipes.ready.read.get(), ready.data(), ready.size(),
                     Clock::now() + kOpenTimeout, children);
  pipes.go.write.reset();  // go
  auto finish =
      Clock::now() +
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds)) +
      kFinishSlack;
  std::vector<MixReport> reports(static_cast<std::size_t>(processes));
  read_from_children(pipes.reports.read.get(), reports.data(), reports.size() * sizeof(MixReport),
                     finish, children);
  for (std::size_t i = 0; i < children.size(); ++i) {
    std::string how = children[i].wait();
    if (!how.empty()) throw std::runtime_error(fmt::format("mix process {} {}", i, how));
  }
  return combine(reports);
}

double Dataset::combine(const std::vector<MixReport>& reports) {
  double ops_per_second = 0;
  for (const MixReport& report : reports) {
    checks_.merge(Checks{report.gets, report.bad, report.first_bad});
    if (report.error[0] != '\0')
      throw std::runtime_error(fmt::format("mix process: {}", report.error));
    ops_per_second += static_cast<double>(report.ops) * 1e9 / static_cast<double>(report.nanos);
  }
  return ops_per_second;
}

}  // namespace bench
