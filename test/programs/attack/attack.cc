#include "attack.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>
#include <thread>

namespace lilcache::attack {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// A blocking TCP connection to 127.0.0.1:port from `source`, with send and
// receive timeouts (and a receive buffer of `rcvbuf` bytes if not 0, set
// before connecting so that the window stays small); -1 on failure.
int Connect(std::uint16_t port, const std::string& source, std::chrono::milliseconds timeout,
            int rcvbuf = 0) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (rcvbuf > 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (!source.empty() && source != "127.0.0.1") {
    sockaddr_in from{};
    from.sin_family = AF_INET;
    ::inet_pton(AF_INET, source.c_str(), &from.sin_addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0) {
      ::close(fd);
      return -1;
    }
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Sends all of bytes; false on error or timeout.
bool SendAll(int fd, std::string_view bytes, Counters* c = nullptr) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
    if (c != nullptr) c->bytes_sent += static_cast<std::uint64_t>(n);
  }
  return true;
}

// Whether the server closed (or reset) the connection; does not read.
bool PeerClosed(int fd, int wait_ms) {
  pollfd p{fd, POLLRDHUP, 0};
  const int r = ::poll(&p, 1, wait_ms);
  return r > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

// Reads one response (head, then Content-Length bytes of body); its status,
// or -1. `buffered` keeps what was read past it (keep-alive).
int ReadResponse(int fd, std::string& buffered) {
  std::size_t end;
  char chunk[16384];
  while ((end = buffered.find("\r\n\r\n")) == std::string::npos) {
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return -1;
    buffered.append(chunk, static_cast<std::size_t>(n));
  }
  if (buffered.size() < 12 || buffered.compare(0, 9, "HTTP/1.1 ") != 0) return -1;
  const int status = std::atoi(buffered.c_str() + 9);
  std::size_t length = 0;
  const std::size_t cl = buffered.find("Content-Length: ");
  if (cl != std::string::npos && cl < end)
    length = std::strtoull(buffered.c_str() + cl + 16, nullptr, 10);
  while (buffered.size() < end + 4 + length) {
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return -1;
    buffered.append(chunk, static_cast<std::size_t>(n));
  }
  buffered.erase(0, end + 4 + length);
  return status;
}

std::string Auth(const Target& t) {
  return t.token.empty() ? std::string() : "Authorization: Bearer " + t.token + "\r\n";
}

// Sends `head`, then `filler` until the server cuts the connection or
// `limit` bytes of filler were sent.
void Flood(const Target& t, const std::string& head, std::size_t limit,
           const std::atomic<bool>& stop, Counters& c) {
  const std::string block(64 * 1024, 'a');
  while (!stop) {
    const int fd = Connect(t.port, t.source, 2s);
    if (fd < 0) {
      std::this_thread::sleep_for(10ms);
      continue;
    }
    ++c.connections;
    bool ok = SendAll(fd, head, &c);
    for (std::size_t sent = 0; ok && sent < limit && !stop; sent += block.size()) {
      ok = SendAll(fd, block, &c);
    }
    if (!ok) ++c.cut;
    ::close(fd);
  }
}

}  // namespace

void ChunkExtensionFlood(const Target& t, std::size_t per_connection, const std::atomic<bool>& stop,
                         Counters& c) {
  Flood(t,
        "PUT /keys/flood HTTP/1.1\r\nHost: 127.0.0.1\r\n" + Auth(t) +
            "Transfer-Encoding: chunked\r\n\r\n1;",
        per_connection, stop, c);
}

void TrailerFlood(const Target& t, std::size_t per_connection, const std::atomic<bool>& stop,
                  Counters& c) {
  Flood(t,
        "PUT /keys/flood HTTP/1.1\r\nHost: 127.0.0.1\r\n" + Auth(t) +
            "Transfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nX-Trailer: ",
        per_connection, stop, c);
}

void UnfinishedBodies(const Target& t, int connections, std::size_t body,
                      const std::atomic<bool>& stop, Counters& c) {
  std::vector<std::thread> threads;
  for (int i = 0; i < connections; ++i) {
    threads.emplace_back([&, i] {
      const std::string head = "PUT /keys/body" + std::to_string(i) +
                               " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + Auth(t) +
                               "Content-Length: " + std::to_string(body) + "\r\n\r\n";
      const std::string block(1 << 20, 'b');
      while (!stop) {
        const int fd = Connect(t.port, t.source, 2s);
        if (fd < 0) {
          std::this_thread::sleep_for(10ms);
          continue;
        }
        ++c.connections;
        bool ok = SendAll(fd, head, &c);
        for (std::size_t sent = 0; ok && sent + 2 * block.size() <= body && !stop;
             sent += block.size()) {
          ok = SendAll(fd, block, &c);
        }
        if (ok) {
          while (!stop && !PeerClosed(fd, 100)) {
          }
        }
        std::string buffered;
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 0) > 0 && ReadResponse(fd, buffered) == 503) ++c.answers_503;
        if (!stop) ++c.cut;
        ::close(fd);
        if (!ok) std::this_thread::sleep_for(10ms);
      }
    });
  }
  for (std::thread& th : threads) th.join();
}

void NonReadingClients(const Target& t, int connections, const std::string& key,
                       std::chrono::milliseconds hold, const std::atomic<bool>& stop, Counters& c) {
  const std::string request =
      "GET /keys/" + key + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + Auth(t) + "\r\n";
  struct Conn {
    int fd = -1;
    Clock::time_point until{};
  };
  std::vector<Conn> conns(static_cast<std::size_t>(connections));
  while (!stop) {
    for (Conn& conn : conns) {
      if (conn.fd >= 0 && Clock::now() >= conn.until) {
        ++c.cut;
        ::close(conn.fd);
        conn.fd = -1;
      }
      if (conn.fd < 0 && !stop) {
        // A small receive buffer, never read: the response stays in the server.
        conn.fd = Connect(t.port, t.source, 2s, 4096);
        if (conn.fd < 0) continue;
        ++c.connections;
        SendAll(conn.fd, request, &c);
        conn.until = Clock::now() + hold;
      }
    }
    std::this_thread::sleep_for(20ms);
  }
  for (Conn& conn : conns) {
    if (conn.fd >= 0) ::close(conn.fd);
  }
}

void IdleConnections(const Target& t, int connections, std::chrono::milliseconds reopen,
                     const std::atomic<bool>& stop, Counters& c) {
  std::vector<int> fds(static_cast<std::size_t>(connections), -1);
  Clock::time_point next = Clock::now();
  while (!stop) {
    if (Clock::now() >= next) {
      for (int& fd : fds) {
        if (stop) break;
        if (fd >= 0 && PeerClosed(fd, 0)) {
          ++c.cut;
          ::close(fd);
          fd = -1;
        }
        if (fd < 0) {
          fd = Connect(t.port, t.source, 1s);
          if (fd >= 0) ++c.connections;
        }
      }
      next = Clock::now() + reopen;
    }
    std::this_thread::sleep_for(20ms);
  }
  for (int fd : fds) {
    if (fd >= 0) ::close(fd);
  }
}

void BadTokenFlood(const Target& t, const std::atomic<bool>& stop, Counters& c) {
  const std::string request =
      "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer wrong-token\r\n\r\n";
  std::string batch;
  for (int i = 0; i < 32; ++i) batch += request;  // pipelined
  while (!stop) {
    const int fd = Connect(t.port, t.source, 2s);
    if (fd < 0) {
      std::this_thread::sleep_for(10ms);
      continue;
    }
    ++c.connections;
    std::string buffered;
    bool ok = true;
    while (ok && !stop) {
      ok = SendAll(fd, batch, &c);
      for (int i = 0; ok && i < 32; ++i) ok = ReadResponse(fd, buffered) > 0;
    }
    ::close(fd);
  }
}

double NormalStats::Percentile(double p) const {
  if (latencies_us.empty()) return 0;
  std::vector<double> sorted = latencies_us;
  std::sort(sorted.begin(), sorted.end());
  const auto at = static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size() - 1));
  return sorted[at];
}

void NormalClient(const Target& t, const std::string& key, std::chrono::milliseconds interval,
                  const std::atomic<bool>& stop, NormalStats& stats) {
  const std::string request =
      "GET /get?key=" + key + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + Auth(t) + "\r\n";
  int fd = -1;
  std::string buffered;
  while (!stop) {
    const Clock::time_point start = Clock::now();
    if (fd < 0) {
      fd = Connect(t.port, "127.0.0.1", 5s);
      buffered.clear();
    }
    int status = -1;
    if (fd >= 0 && SendAll(fd, request)) status = ReadResponse(fd, buffered);
    const double us = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
    if (status == 200) {
      ++stats.ok;
      stats.latencies_us.push_back(us);
    } else {
      ++stats.errors;
      if (status == 503) ++stats.answers_503;
      stats.last_error = status < 0 ? std::string("no answer (") + std::strerror(errno) + ")"
                                    : "status " + std::to_string(status);
      if (fd >= 0) ::close(fd);
      fd = -1;
    }
    std::this_thread::sleep_for(interval);
  }
  if (fd >= 0) ::close(fd);
}

Memory ReadMemory(pid_t pid) {
  Memory m;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string name;
    std::uint64_t kib = 0;
    fields >> name >> kib;
    if (name == "VmRSS:") m.rss_kib = kib;
    if (name == "VmHWM:") m.hwm_kib = kib;
    if (name == "RssAnon:") m.anon_kib = kib;
  }
  return m;
}

void SampleMemory(pid_t pid, const std::atomic<bool>& stop, Memory& peak) {
  while (!stop) {
    const Memory m = ReadMemory(pid);
    peak.rss_kib = std::max(peak.rss_kib, m.rss_kib);
    peak.anon_kib = std::max(peak.anon_kib, m.anon_kib);
    if (m.hwm_kib > 0) peak.hwm_kib = m.hwm_kib;
    std::this_thread::sleep_for(20ms);
  }
}

int Request(std::uint16_t port, const std::string& raw, std::chrono::milliseconds timeout) {
  const int fd = Connect(port, "127.0.0.1", timeout);
  if (fd < 0) return -1;
  std::string buffered;
  const int status = SendAll(fd, raw) ? ReadResponse(fd, buffered) : -1;
  ::close(fd);
  return status;
}

}  // namespace lilcache::attack
