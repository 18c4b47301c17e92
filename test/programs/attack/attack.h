// The resource attacks of issue 12 on the REST server, as reusable patterns
// (raw loopback sockets, each pattern on its own thread until `stop`), and
// what they are judged by: the server's memory (/proc/PID/status) and the
// answers a normal client gets meanwhile. Used by server_process_test (each
// pattern alone, a few seconds) and by lilcache-attack (all at once, 60 s;
// test/attack/main.cc). Loopback only: every socket connects to 127.0.0.1,
// from 127.0.0.1 or another 127.0.0.0/8 address (so that attackers can be
// "other clients" for the per-address connection cap).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace lilcache::attack {

struct Target {
  std::uint16_t port = 0;
  std::string token;                 // "" = none; sent as "Authorization: Bearer"
  std::string source = "127.0.0.2";  // the attacker's address
};

// What a pattern did (any thread may add to it).
struct Counters {
  std::atomic<std::uint64_t> connections{0};  // connections opened
  std::atomic<std::uint64_t> bytes_sent{0};
  std::atomic<std::uint64_t> answers_503{0};  // 503 answers read
  std::atomic<std::uint64_t> cut{0};          // connections the server closed or reset
};

// "PUT /keys/x" chunked, a chunk line "1;" then `a` until the server cuts
// the connection or `per_connection` bytes were sent; again on a new one.
void ChunkExtensionFlood(const Target& t, std::size_t per_connection, const std::atomic<bool>& stop,
                         Counters& c);

// The same with a last chunk and then an endless trailer field.
void TrailerFlood(const Target& t, std::size_t per_connection, const std::atomic<bool>& stop,
                  Counters& c);

// `connections` connections each announce a body of `body` bytes, send all
// but 1 MiB of it and hold; one the server closes is opened again.
void UnfinishedBodies(const Target& t, int connections, std::size_t body,
                      const std::atomic<bool>& stop, Counters& c);

// `connections` connections each ask for GET /keys/KEY (a large value),
// never read, and after `hold` close (a reset: the server's write fails) and
// ask again on a new connection. (A server that drops one at its deadline
// cannot tell it: its FIN waits behind the unread response.)
void NonReadingClients(const Target& t, int connections, const std::string& key,
                       std::chrono::milliseconds hold, const std::atomic<bool>& stop, Counters& c);

// Tries to keep `connections` idle connections open, re-opening closed ones
// every `reopen` (the issue: 1,000 idle connections re-opened every 30 s).
void IdleConnections(const Target& t, int connections, std::chrono::milliseconds reopen,
                     const std::atomic<bool>& stop, Counters& c);

// Keep-alive requests with a wrong token, as fast as the server answers.
void BadTokenFlood(const Target& t, const std::atomic<bool>& stop, Counters& c);

// A well-behaved client (from 127.0.0.1): GET /get?key=KEY every `interval`,
// each with a 5 s timeout, on a keep-alive connection (a new one after an
// error). Latencies of the 200 answers in microseconds; errors = anything else.
struct NormalStats {
  std::vector<double> latencies_us;
  std::uint64_t ok = 0, errors = 0, answers_503 = 0;
  std::string last_error;
  double Percentile(double p) const;  // of latencies_us; 0 if none
};
void NormalClient(const Target& t, const std::string& key, std::chrono::milliseconds interval,
                  const std::atomic<bool>& stop, NormalStats& stats);

// Whether memory figures of this build mean anything: ASan (its quarantine
// keeps 256 MiB of freed memory, plus shadow memory) and TSan (shadow)
// multiply a process's RSS. Tests assert their memory bounds only if so.
constexpr bool MemoryIsMeasurable() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
  return false;
#else
  return true;
#endif
#else
  return true;
#endif
}

// A process's memory, in KiB (/proc/PID/status).
struct Memory {
  std::uint64_t rss_kib = 0;   // VmRSS: resident, file-backed (the cache's mapping) included
  std::uint64_t hwm_kib = 0;   // VmHWM: the peak of VmRSS
  std::uint64_t anon_kib = 0;  // RssAnon: the heap and stacks
};
Memory ReadMemory(pid_t pid);

// Samples pid's memory every 20 ms until stop; keeps the peaks (anon_kib the
// peak of RssAnon, hwm_kib the last VmHWM).
void SampleMemory(pid_t pid, const std::atomic<bool>& stop, Memory& peak);

// One request on a new connection from 127.0.0.1: the status, or -1.
int Request(std::uint16_t port, const std::string& raw, std::chrono::milliseconds timeout);

}  // namespace lilcache::attack
