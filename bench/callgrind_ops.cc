// lilcache-callgrind-ops: N operations of one kind on a cache of 100k keys
// (16 B keys, 100 B values), for instruction counts under callgrind (target 6
// of issue 16). Public API only. Setup (filling the cache) runs with callgrind
// instrumentation off; only the measured loop is counted:
//
//   ninja -C build-rel bench/lilcache-callgrind-ops
//   valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=cg.get.out
//       build-rel/bench/lilcache-callgrind-ops get
//   callgrind_annotate --inclusive=yes cg.get.out | head -40
//
// Ops: get (std::optional<std::string>), getbuf (get(key, std::string&) into a
// reused buffer), set (overwrite of an existing key), pop (each key once),
// contains, overwrite (sustained random overwrites with per-set latencies
// and the compactions' log lines: time it natively, not under callgrind), none
// (setup only). Keys are visited in a fixed pseudo-random
// permutation. Options: --ops N (100000), --keys K (100000), --value B (100),
// --no-compact (compact_dead_ratio = 0), --timerslack-ns N (prctl
// PR_SET_TIMERSLACK of the measuring thread). Without valgrind it prints ns/op.
// Runs in a temporary root under $TMPDIR (default /tmp), removed at the end.
#include <lilcache/env.h>
#include <lilcache/lilcache.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <valgrind/callgrind.h>
#include <valgrind/valgrind.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <numeric>
#include <string>
#include <string_view>
#include <vector>

namespace {

// Under valgrind, whose address space is smaller than the library's 256 GiB
// reservation per data file, reservations (PROT_NONE anonymous maps) are
// clamped to 1 GiB, far above this program's files, and unmapped with the
// clamped length. Every other call is Env::Default()'s; the measured
// operations make no Mmap/Munmap call, so their counts are unchanged.
class ValgrindEnv : public lilcache::Env {
 public:
  static constexpr std::size_t kClamp = std::size_t{1} << 30;
  void* Mmap(void* addr, std::size_t length, int prot, int flags, int fd, off_t offset) override {
    if (prot != PROT_NONE || (flags & MAP_ANONYMOUS) == 0 || length <= kClamp) {
      return lilcache::Env::Mmap(addr, length, prot, flags, fd, offset);
    }
    void* p = lilcache::Env::Mmap(addr, kClamp, prot, flags, fd, offset);
    if (p != MAP_FAILED) {
      std::lock_guard<std::mutex> l(mu_);
      clamped_[p] = kClamp;
    }
    return p;
  }
  int Munmap(void* addr, std::size_t length) override {
    {
      std::lock_guard<std::mutex> l(mu_);
      auto it = clamped_.find(addr);
      if (it != clamped_.end() && length > it->second) {
        length = it->second;
        clamped_.erase(it);
      }
    }
    return lilcache::Env::Munmap(addr, length);
  }

 private:
  std::mutex mu_;
  std::map<void*, std::size_t> clamped_;
};

std::string key_of(std::uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "key:%012llu", static_cast<unsigned long long>(i));
  return buf;  // 16 bytes
}

std::string value_of(std::uint64_t i, std::uint64_t ver, std::size_t size) {
  std::string v(size, '\0');
  std::uint64_t s = i * 0x9E3779B97F4A7C15ull + ver * 0xBF58476D1CE4E5B9ull + 1;
  for (std::size_t k = 0; k < size; ++k) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    v[k] = static_cast<char>('a' + (s >> 59));
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  std::string op = argc > 1 ? argv[1] : "get";
  std::uint64_t nops = 100000, nkeys = 100000;
  std::size_t vsize = 100;
  bool no_compact = false;
  for (int a = 2; a < argc; ++a) {
    std::string s = argv[a];
    if (s == "--ops" && a + 1 < argc)
      nops = std::strtoull(argv[++a], nullptr, 10);
    else if (s == "--keys" && a + 1 < argc)
      nkeys = std::strtoull(argv[++a], nullptr, 10);
    else if (s == "--value" && a + 1 < argc)
      vsize = std::strtoull(argv[++a], nullptr, 10);
    else if (s == "--no-compact")
      no_compact = true;
    else if (s == "--timerslack-ns" && a + 1 < argc) {
      // This thread's timer slack (default 50 us): the throttle's 50 us sleeps.
      if (prctl(PR_SET_TIMERSLACK, std::strtoul(argv[++a], nullptr, 10)) != 0) std::perror("prctl");
    } else {
      std::fprintf(stderr,
                   "usage: %s get|getbuf|set|pop|contains|none [--ops N] [--keys K] "
                   "[--value B] [--no-compact] [--timerslack-ns N]\n",
                   argv[0]);
      return 2;
    }
  }
  if (op == "pop" && nops > nkeys) nops = nkeys;

  const char* tmpdir = std::getenv("TMPDIR");
  std::string dir = tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp";
  std::vector<char> tmpl_buf(dir.begin(), dir.end());
  for (char c : std::string_view("/lilcache-cgops-XXXXXX")) tmpl_buf.push_back(c);
  tmpl_buf.push_back('\0');
  char* tmpl = tmpl_buf.data();
  if (!mkdtemp(tmpl)) {
    std::perror("mkdtemp");
    return 1;
  }
  std::string root = tmpl;
  int rc = 0;
  {
    lilcache::Options o{.root = root};
    if (no_compact) o.compact_dead_ratio = 0;
    static ValgrindEnv valgrind_env;
    if (RUNNING_ON_VALGRIND) o.env = &valgrind_env;
    if (op == "overwrite") o.loglevel = "info";
    auto cache = lilcache::Cache::open("ops", o);

    std::vector<std::string> keys(nkeys);
    for (std::uint64_t i = 0; i < nkeys; ++i) keys[i] = key_of(i);
    for (std::uint64_t i = 0; i < nkeys; ++i) cache.set(keys[i], value_of(i, 0, vsize));
    // Visiting order: i * step mod nkeys with step coprime to nkeys.
    std::uint64_t step = 7919;
    while (std::gcd(step, nkeys) != 1) ++step;
    std::vector<std::uint32_t> order(nops);
    for (std::uint64_t n = 0; n < nops; ++n)
      order[n] = static_cast<std::uint32_t>((n * step) % nkeys);
    // Values for set() built before the measured loop.
    std::vector<std::string> newvals;
    if (op == "set") {
      newvals.reserve(nops);
      for (std::uint64_t n = 0; n < nops; ++n)
        newvals.push_back(value_of(order[n], 1 + n / nkeys, vsize));
    }
    std::uint64_t compactions0 = cache.stats().compactions;
    std::string buf;
    buf.reserve(vsize);
    std::vector<std::uint32_t> lat;
    double max_ratio = 0;  // file / live, sampled every 50k sets
    double stats_ns = 0;   // time in those stats() calls
    std::uint64_t found = 0;

    auto t0 = std::chrono::steady_clock::now();
    CALLGRIND_START_INSTRUMENTATION;
    if (op == "get") {
      for (std::uint64_t n = 0; n < nops; ++n) {
        auto v = cache.get(keys[order[n]]);
        found += v.has_value();
      }
    } else if (op == "getbuf") {
      for (std::uint64_t n = 0; n < nops; ++n) found += cache.get(keys[order[n]], buf);
    } else if (op == "set") {
      for (std::uint64_t n = 0; n < nops; ++n) cache.set(keys[order[n]], newvals[n]);
      found = nops;
    } else if (op == "pop") {
      for (std::uint64_t n = 0; n < nops; ++n) found += cache.pop(keys[order[n]]).has_value();
    } else if (op == "contains") {
      for (std::uint64_t n = 0; n < nops; ++n) found += cache.contains(keys[order[n]]);
    } else if (op == "overwrite") {
      // Sustained random overwrites (target 1 of issue 16): latencies of each set.
      lat.resize(nops);
      std::uint64_t x = 42;
      std::string v = value_of(0, 1, vsize);
      for (std::uint64_t n = 0; n < nops; ++n) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        std::uint64_t k = (x >> 33) % nkeys;
        std::memcpy(v.data(), &n, std::min<std::size_t>(8, vsize));
        auto a = std::chrono::steady_clock::now();
        cache.set(keys[k], v);
        lat[n] = static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                std::chrono::steady_clock::now() - a)
                                                .count());
        if (n % 50000 == 49999) {  // stats() walks the log: its time is not counted
          auto b = std::chrono::steady_clock::now();
          auto st = cache.stats();
          stats_ns += std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - b)
                          .count();
          if (st.bytes_live)
            max_ratio = std::max(
                max_ratio, static_cast<double>(st.bytes_file) / static_cast<double>(st.bytes_live));
        }
      }
      found = nops;
    } else if (op != "none") {
      std::fprintf(stderr, "unknown op %s\n", op.c_str());
      rc = 2;
    }
    CALLGRIND_STOP_INSTRUMENTATION;
    auto t1 = std::chrono::steady_clock::now();
    double ns = std::chrono::duration<double, std::nano>(t1 - t0).count() - stats_ns;
    std::printf("op=%s ops=%llu keys=%llu value=%zu found=%llu compactions=%llu ns/op=%.0f\n",
                op.c_str(), static_cast<unsigned long long>(nops),
                static_cast<unsigned long long>(nkeys), vsize,
                static_cast<unsigned long long>(found),
                static_cast<unsigned long long>(cache.stats().compactions - compactions0),
                nops ? ns / static_cast<double>(nops) : 0.0);
    if (!lat.empty()) {
      std::uint64_t total = 0, over40 = 0, over40_ns = 0;
      for (auto l : lat) {
        total += l;
        if (l > 40'000) ++over40, over40_ns += l;
      }
      std::vector<std::uint32_t> s = lat;
      std::sort(s.begin(), s.end());
      std::printf(
          "set latency: p50 %u ns, p99 %u ns, p99.9 %u ns, max %u ns; "
          "%llu sets > 40 us (throttled) took %.1f%% of the time\n",
          s[s.size() / 2], s[s.size() * 99 / 100], s[s.size() * 999 / 1000], s.back(),
          static_cast<unsigned long long>(over40),
          total ? 100.0 * static_cast<double>(over40_ns) / static_cast<double>(total) : 0.0);
      auto st = cache.stats();
      std::printf("file: %llu bytes of log, %llu live (%.2fx; max %.2fx every 50k sets)\n",
                  static_cast<unsigned long long>(st.bytes_file),
                  static_cast<unsigned long long>(st.bytes_live),
                  st.bytes_live
                      ? static_cast<double>(st.bytes_file) / static_cast<double>(st.bytes_live)
                      : 0.0,
                  max_ratio);
    }
  }
  if (op == "overwrite") {  // the compactions' own timings, from <root>/ops.log
    std::ifstream log(root + "/ops.log");
    std::string line;
    while (std::getline(log, line)) {
      if (line.find("compacted") != std::string::npos) std::printf("%s\n", line.c_str());
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(root, ec);
  return rc;
}
