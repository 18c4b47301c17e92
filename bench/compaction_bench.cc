// lilcache-compaction-bench: compaction throughput, writer stall during a
// compaction, and space amplification at steady state, against the targets of
// the compaction issue (>= 300 MB/s; writer p99 <= 1 ms; file <= 2x live).
//
//   ninja -C build bench/lilcache-compaction-bench
//   build/bench/lilcache-compaction-bench [--quick] [--log-mb N] [--seconds S]
//
// MB = 2^20 bytes throughout. Runs in a temporary directory under /tmp that is
// removed at the end.
#include <lilcache/lilcache.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
constexpr double kMB = 1024.0 * 1024.0;

double secs_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string loadavg() {
  std::ifstream f("/proc/loadavg");
  std::string s;
  std::getline(f, s);
  return s;
}

std::uint64_t splitmix(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Deterministic value of key i at version ver.
void make_value(std::string& out, std::uint64_t i, std::uint64_t ver, std::size_t size) {
  out.resize(size);
  std::uint64_t s = i * 1000003ull + ver * 0x1234567ull + 1;
  for (std::size_t off = 0; off < size; off += 8) {
    std::uint64_t v = splitmix(s);
    std::memcpy(out.data() + off, &v, std::min<std::size_t>(8, size - off));
  }
}

std::string key_of(std::uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "k%010" PRIu64, i);
  return buf;
}

struct Pct {
  std::uint64_t n = 0, p50 = 0, p99 = 0, p999 = 0, max = 0, over1ms = 0;
};

Pct percentiles(std::vector<std::uint32_t>& v) {
  Pct p;
  p.n = v.size();
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    return v[std::min<std::size_t>(v.size() - 1, std::size_t(q * double(v.size())))];
  };
  p.p50 = at(0.50);
  p.p99 = at(0.99);
  p.p999 = at(0.999);
  p.max = v.back();
  p.over1ms = std::uint64_t(v.end() - std::upper_bound(v.begin(), v.end(), 1000000u));
  return p;
}

// Shared between the benchmark and the forked writer (MAP_SHARED anonymous).
struct Shared {
  std::atomic<int> phase;  // 0 warm-up, 1 baseline, 2 compaction, 3 stop
  std::atomic<int> ready;
  std::atomic<int> done;
  Pct res[3];
  std::uint64_t max_at_ns[3];  // steady_clock time of the slowest set, per phase
  char error[512];
};

std::uint64_t now_ns() {
  return std::uint64_t(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
          .count());
}

// Forked writer: its own handle, sets continuously, latency per phase.
[[noreturn]] void writer_main(Shared* sh, const std::string& root) {
  try {
    auto c = lilcache::Cache::open("log", lilcache::Options{.root = root, .compact_dead_ratio = 0});
    std::vector<std::uint32_t> lat[3];
    for (auto& l : lat) l.reserve(1 << 20);
    std::uint64_t max_at[3] = {0, 0, 0};
    std::uint32_t max_lat[3] = {0, 0, 0};
    std::string val;
    make_value(val, 7, 7, 128);
    char key[32];
    sh->ready.store(1);
    for (std::uint64_t i = 0;; ++i) {
      int ph = sh->phase.load(std::memory_order_acquire);
      if (ph >= 3) break;
      std::snprintf(key, sizeof key, "w%06" PRIu64, i % 20000);
      std::uint64_t t0 = now_ns();
      c.set(key, val);
      std::uint64_t d = now_ns() - t0;
      auto d32 = std::uint32_t(std::min<std::uint64_t>(d, UINT32_MAX));
      if (ph == 1 || ph == 2) {
        lat[ph].push_back(d32);
        if (d32 > max_lat[ph]) {
          max_lat[ph] = d32;
          max_at[ph] = t0;
        }
      }
    }
    for (int p = 1; p <= 2; ++p) {
      sh->res[p] = percentiles(lat[p]);
      sh->max_at_ns[p] = max_at[p];
    }
  } catch (const std::exception& e) {
    std::snprintf(sh->error, sizeof sh->error, "%s", e.what());
  }
  sh->done.store(1);
  _exit(0);
}

// Writes every key 0..n-1 at version ver with 1 KiB values; returns MB/s.
double fill(lilcache::Cache& c, std::uint64_t n, std::uint64_t ver) {
  std::string v;
  auto t0 = Clock::now();
  for (std::uint64_t i = 0; i < n; ++i) {
    make_value(v, i, ver, 1024);
    c.set(key_of(i), v);
  }
  return double(n) * 1024 / kMB / secs_since(t0);
}

// Samples 10k keys; returns the number wrong or missing.
std::uint64_t verify(lilcache::Cache& c, std::uint64_t n, std::uint64_t ver) {
  std::mt19937_64 rng(42 + ver);
  std::string want;
  std::uint64_t bad = 0;
  std::uint64_t samples = std::min<std::uint64_t>(10000, n);
  for (std::uint64_t s = 0; s < samples; ++s) {
    std::uint64_t i = rng() % n;
    make_value(want, i, ver, 1024);
    auto got = c.get(key_of(i));
    if (!got || *got != want) {
      if (bad < 5)
        std::printf("  verify: key %s %s\n", key_of(i).c_str(),
                    got ? "has a wrong value" : "is missing");
      ++bad;
    }
  }
  return bad;
}

void print_stats_row(const char* when, const lilcache::Stats& s) {
  std::printf("| %s | %.1f | %.1f | %.1f | %.1f%% | %" PRIu64 " | %" PRIu64 " | %" PRIu64
              " | %" PRIu64 " |\n",
              when, double(s.bytes_file) / kMB, double(s.bytes_live) / kMB,
              double(s.bytes_dead) / kMB,
              s.bytes_file ? 100.0 * double(s.bytes_dead) / double(s.bytes_file) : 0.0, s.keys,
              s.generation, s.compactions, s.snapshots);
}

// Prints the library's log lines about compactions/snapshots/errors written
// to <root>/<name>.log since the last call for that file.
void print_lib_log(const std::string& root, const std::string& name, std::uintmax_t& offset) {
  std::ifstream f(root + "/" + name + ".log");
  if (!f) return;
  f.seekg(std::streamoff(offset));
  std::string line;
  int shown = 0, hidden = 0;
  std::printf("Library log (%s.log), compaction/snapshot/warn/error lines:\n\n```\n", name.c_str());
  while (std::getline(f, line)) {
    offset += line.size() + 1;
    if (line.find("compact") == std::string::npos && line.find("snapshot") == std::string::npos &&
        line.find("warn") == std::string::npos && line.find("error") == std::string::npos)
      continue;
    if (shown < 30) {
      std::printf("%s\n", line.c_str());
      ++shown;
    } else {
      ++hidden;
    }
  }
  if (hidden) std::printf("... %d more\n", hidden);
  std::printf("```\n\n");
}

const char* verdict(bool ok) { return ok ? "MET" : "MISSED"; }

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t log_mb = 1024;
  int seconds = 20;
  bool quick = false;
  bool log_mb_set = false, seconds_set = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") {
      quick = true;
    } else if (a == "--log-mb" && i + 1 < argc) {
      log_mb = std::strtoull(argv[++i], nullptr, 10);
      log_mb_set = true;
    } else if (a == "--seconds" && i + 1 < argc) {
      seconds = std::atoi(argv[++i]);
      seconds_set = true;
    } else {
      std::fprintf(stderr, "usage: %s [--quick] [--log-mb N] [--seconds S]\n", argv[0]);
      return 2;
    }
  }
  if (quick) {
    if (!log_mb_set) log_mb = 128;
    if (!seconds_set) seconds = 5;
  }
  if (log_mb < 1 || seconds < 1) {
    std::fprintf(stderr, "--log-mb and --seconds must be positive\n");
    return 2;
  }

  std::string cmd;
  for (int i = 0; i < argc; ++i) cmd += (i ? " " : "") + std::string(argv[i]);
  struct utsname u {};
  uname(&u);
  std::printf("# lilcache compaction benchmark\n\n");
  std::printf("- command: `%s`\n", cmd.c_str());
  std::printf("- machine: nproc %ld; %s %s %s %s\n", sysconf(_SC_NPROCESSORS_ONLN), u.sysname,
              u.release, u.version, u.machine);
  std::printf("- lilcache %.*s; MB = 2^20 bytes\n", int(lilcache::version().size()),
              lilcache::version().data());
  std::printf("- loadavg at start: %s\n\n", loadavg().c_str());
  std::fflush(stdout);

  char tmpl[] = "/tmp/lilcache-cbench-XXXXXX";
  if (!mkdtemp(tmpl)) {
    std::perror("mkdtemp");
    return 1;
  }
  const std::string root = tmpl;
  int rc = 0;
  bool met_tput = false, met_stall = false, met_space = false;
  try {
    // ---- 1. compaction throughput --------------------------------------------
    // Record = 40 B header + 11 B key + 1024 B value, rounded to 8 = 1080 B.
    // Every key written twice (v1, then v2) => 50% dead, log ~= log_mb.
    const std::uint64_t n = std::max<std::uint64_t>(1, log_mb * 1024 * 1024 / (2 * 1080));
    std::printf("## 1. Compaction throughput\n\n");
    std::printf("%" PRIu64 " keys x 1 KiB values, each written twice (compact_dead_ratio = 0)\n\n",
                n);
    std::fflush(stdout);
    auto cache =
        lilcache::Cache::open("log", lilcache::Options{.root = root, .compact_dead_ratio = 0});
    double w1 = fill(cache, n, 1);
    double w2 = fill(cache, n, 2);
    auto before = cache.stats();
    auto cw0 = Clock::now();
    auto r = cache.compact();
    double wall1 = secs_since(cw0);
    auto after = cache.stats();
    std::uint64_t bad1 = verify(cache, n, 2);
    std::printf(
        "| when | file MB | live MB | dead MB | dead %% | keys | generation | compactions | "
        "snapshots |\n");
    std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    print_stats_row("before compact()", before);
    print_stats_row("after compact()", after);
    double dur_s = double(r.duration.count()) / 1e6;
    double tput = dur_s > 0 ? double(r.bytes_after) / kMB / dur_s : 0;
    std::printf(
        "\n| fill MB/s (v1 / v2) | compacted | bytes_before MB | bytes_after MB | keys_live | "
        "duration s | "
        "live MB/s copied | writer_pause us | compact() wall s | verify (10k sample) |\n");
    std::printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n");
    std::printf(
        "| %.0f / %.0f | %s | %.1f | %.1f | %" PRIu64 " | %.3f | %.1f | %lld | %.3f | %s |\n\n", w1,
        w2, r.compacted ? "yes" : "NO", double(r.bytes_before) / kMB, double(r.bytes_after) / kMB,
        r.keys_live, dur_s, tput, static_cast<long long>(r.writer_pause.count()), wall1,
        bad1 ? (std::to_string(bad1) + " BAD").c_str() : "all OK");
    std::uintmax_t log_off = 0;
    print_lib_log(root, "log", log_off);
    met_tput = r.compacted && tput >= 300 && bad1 == 0;
    if (bad1) rc = 1;
    std::fflush(stdout);

    // ---- 2. writer stall during compaction ------------------------------------
    std::printf("## 2. Writer stall during compaction\n\n");
    double w3 = fill(cache, n, 3);  // back to 50% dead, same size as in 1.
    auto* sh = static_cast<Shared*>(
        mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    if (sh == MAP_FAILED) throw std::runtime_error("mmap failed");
    new (sh) Shared{};
    std::fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) writer_main(sh, root);
    while (!sh->ready.load() && !sh->done.load())
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const double baseline_s = quick ? 1.0 : 3.0;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    sh->phase.store(1);
    std::this_thread::sleep_for(std::chrono::duration<double>(baseline_s));
    auto before2 = cache.stats();
    sh->phase.store(2);
    std::uint64_t c0 = now_ns();
    auto r2 = cache.compact();
    std::uint64_t c1 = now_ns();
    sh->phase.store(3);
    int status = 0;
    waitpid(pid, &status, 0);
    auto after2 = cache.stats();
    std::uint64_t bad2 = verify(cache, n, 3);
    std::printf("Refilled %" PRIu64
                " keys (v3, %.0f MB/s); one forked writer (own handle, compact_dead_ratio = 0) "
                "sets 128 B values over 20000 keys `w%%06d` continuously; baseline %.1f s before "
                "compact() in the "
                "parent.\n\n",
                n, w3, baseline_s);
    if (sh->error[0]) std::printf("**writer failed: %s**\n\n", sh->error);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      std::printf("**writer exit status %d**\n\n", status);
    std::printf(
        "| when | file MB | live MB | dead MB | dead %% | keys | generation | compactions | "
        "snapshots |\n");
    std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    print_stats_row("before compact()", before2);
    print_stats_row("after compact()", after2);
    std::printf(
        "\n| phase | window s | sets | sets/s | p50 us | p99 us | p99.9 us | max us | sets > 1 ms "
        "|\n");
    std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    const char* names[3] = {"", "baseline (no compaction)", "during compact()"};
    double win[3] = {0, baseline_s, double(c1 - c0) / 1e9};
    for (int p = 1; p <= 2; ++p) {
      const Pct& q = sh->res[p];
      std::printf("| %s | %.3f | %" PRIu64 " | %.0f | %.1f | %.1f | %.1f | %.1f | %" PRIu64 " |\n",
                  names[p], win[p], q.n, win[p] > 0 ? double(q.n) / win[p] : 0, q.p50 / 1e3,
                  q.p99 / 1e3, q.p999 / 1e3, q.max / 1e3, q.over1ms);
    }
    std::printf(
        "\n| compacted | duration s | bytes_before MB | bytes_after MB | keys_live | writer_pause "
        "us | "
        "slowest set started at (s into compact()) | verify (10k sample) |\n");
    std::printf("|---|---:|---:|---:|---:|---:|---:|---|\n");
    std::printf("| %s | %.3f | %.1f | %.1f | %" PRIu64 " | %lld | %.3f | %s |\n\n",
                r2.compacted ? "yes" : "NO", double(r2.duration.count()) / 1e6,
                double(r2.bytes_before) / kMB, double(r2.bytes_after) / kMB, r2.keys_live,
                static_cast<long long>(r2.writer_pause.count()),
                (double(sh->max_at_ns[2]) - double(c0)) / 1e9,
                bad2 ? (std::to_string(bad2) + " BAD").c_str() : "all OK");
    print_lib_log(root, "log", log_off);
    met_stall = r2.compacted && !sh->error[0] && sh->res[2].n > 0 && sh->res[2].p99 <= 1000000;
    if (bad2 || sh->error[0]) rc = 1;
    const Pct stall = sh->res[2];
    const long long pause_us = r2.writer_pause.count();
    munmap(sh, sizeof(Shared));
    std::fflush(stdout);
    { auto drop = std::move(cache); }

    // ---- 3. space amplification at steady state --------------------------------
    std::printf("## 3. Space amplification at steady state\n\n");
    std::printf(
        "snapshot = \"1s\", other options default; one thread overwrites 50000 keys x 200 B "
        "round-robin for "
        "%d s; stats() sampled every 0.5 s from another thread.\n\n",
        seconds);
    std::fflush(stdout);
    double max_ratio = 0, final_ratio = 0;
    std::vector<double> series;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> gen_series;
    lilcache::Stats st_final{};
    std::uint64_t sets3 = 0;
    {
      auto c3 = lilcache::Cache::open("steady", lilcache::Options{.root = root, .snapshot = "1s"});
      std::string v;
      make_value(v, 1, 1, 200);
      for (std::uint64_t i = 0; i < 50000; ++i) c3.set(key_of(i), v);
      std::atomic<bool> stop{false};
      std::uint64_t max_file = 0;
      std::thread sampler([&] {
        auto next = Clock::now();
        while (!stop.load()) {
          next += std::chrono::milliseconds(500);
          std::this_thread::sleep_until(next);
          auto s = c3.stats();
          double ratio = s.bytes_live ? double(s.bytes_file) / double(s.bytes_live) : 0;
          series.push_back(ratio);
          gen_series.emplace_back(s.generation, s.snapshots);
          max_ratio = std::max(max_ratio, ratio);
          max_file = std::max(max_file, s.bytes_file);
        }
      });
      auto t0 = Clock::now();
      std::uint64_t i = 0, set_max = 0, set_over1ms = 0;
      while (secs_since(t0) < seconds) {
        for (int k = 0; k < 1000; ++k, ++i) {
          v[0] = char(i);
          v[1] = char(i >> 8);
          auto s0 = Clock::now();
          c3.set(key_of(i % 50000), v);
          auto d = std::uint64_t(
              std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - s0).count());
          set_max = std::max(set_max, d);
          if (d > 1000000) ++set_over1ms;
        }
      }
      double el = secs_since(t0);
      sets3 = i;
      stop.store(true);
      sampler.join();
      st_final = c3.stats();
      final_ratio =
          st_final.bytes_live ? double(st_final.bytes_file) / double(st_final.bytes_live) : 0;
      max_ratio = std::max(max_ratio, final_ratio);
      std::printf(
          "| sets | sets/s | write MB/s (records) | samples | max file/live | final file/live | "
          "max file MB "
          "| final file MB | final live MB | generation | compactions | snapshots |\n");
      std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
      std::printf("| %" PRIu64 " | %.0f | %.1f | %zu | %.2f | %.2f | %.1f | %.1f | %.1f | %" PRIu64
                  " | %" PRIu64 " | %" PRIu64 " |\n\n",
                  sets3, double(sets3) / el, double(sets3) * 256 / kMB / el, series.size(),
                  max_ratio, final_ratio, double(max_file) / kMB, double(st_final.bytes_file) / kMB,
                  double(st_final.bytes_live) / kMB, st_final.generation, st_final.compactions,
                  st_final.snapshots);
      double max2 = final_ratio;
      for (std::size_t k = series.size() / 2; k < series.size(); ++k)
        max2 = std::max(max2, series[k]);
      std::printf(
          "Second half of the run only: max file/live %.2f. Per-set latency of this writer: max "
          "%.1f us, %" PRIu64 " sets > 1 ms.\n\n",
          max2, double(set_max) / 1e3, set_over1ms);
      std::printf("file/live every 0.5 s:");
      for (double x : series) std::printf(" %.2f", x);
      std::printf("\n\ngeneration/snapshots every 0.5 s:");
      for (auto& gs : gen_series) std::printf(" %" PRIu64 "/%" PRIu64, gs.first, gs.second);
      std::printf("\n\n");
      std::uintmax_t off3 = 0;
      print_lib_log(root, "steady", off3);
    }
    met_space = max_ratio > 0 && max_ratio <= 2.0;

    // ---- 4. the cost of Options::sync -------------------------------------------
    std::printf("## 4. The cost of Options::sync (durability against power loss)\n\n");
    std::printf(
        "One thread sets 100 B values over 10000 keys for %.1f s per mode, each mode in its own "
        "cache. Latency of one set().\n\n| sync | sets | sets/s | p50 us | p99 us | max us |\n"
        "|---|---:|---:|---:|---:|---:|\n",
        quick ? 1.0 : 3.0);
    for (const char* mode : {"", "100ms", "always"}) {
      auto cs = lilcache::Cache::open(std::string("sync") + (mode[0] ? mode : "-default"),
                                      lilcache::Options{.root = root, .sync = mode});
      std::string v(100, 'v');
      std::vector<std::uint32_t> lat;
      auto t0 = Clock::now();
      for (std::uint64_t i = 0; secs_since(t0) < (quick ? 1.0 : 3.0); ++i) {
        v[0] = char(i);
        auto s0 = Clock::now();
        cs.set(key_of(i % 10000), v);
        lat.push_back(std::uint32_t(std::min<std::int64_t>(
            UINT32_MAX,
            std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - s0).count())));
      }
      double el = secs_since(t0);
      Pct q = percentiles(lat);
      std::printf("| %s | %" PRIu64 " | %.0f | %.1f | %.1f | %.1f |\n",
                  mode[0] ? mode : "\"\" (default)", q.n, double(q.n) / el, q.p50 / 1e3,
                  q.p99 / 1e3, q.max / 1e3);
      std::fflush(stdout);
    }
    std::printf("\n");

    // ---- targets --------------------------------------------------------------
    std::printf("## Targets\n\n| target | measured | result |\n|---|---|---|\n");
    std::printf("| compaction >= 300 MB/s (live data copied) | %.1f MB/s | %s |\n", tput,
                verdict(met_tput));
    std::printf(
        "| writer stall p99 <= 1 ms during compaction | p99 %.1f us, max %.1f us, writer_pause "
        "%lld us | %s |\n",
        stall.p99 / 1e3, stall.max / 1e3, pause_us, verdict(met_stall));
    std::printf("| (stricter reading, informative) writer_pause <= 1 ms | %lld us | %s |\n",
                pause_us, verdict(pause_us <= 1000));
    std::printf("| file size <= 2x live at steady state | max %.2fx, final %.2fx | %s |\n\n",
                max_ratio, final_ratio, verdict(met_space));
  } catch (const std::exception& e) {
    std::printf("\n**error: %s**\n", e.what());
    rc = 1;
  }
  std::printf("- loadavg at end: %s\n", loadavg().c_str());
  std::error_code ec;
  std::filesystem::remove_all(root, ec);
  return rc;
}
