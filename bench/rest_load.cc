// lilcache-rest-load: one load generator for both servers of
// bench/rest_bench.sh, so that lilcache's HTTP front end and Redis are driven
// by the same client at the same concurrency: one thread, an epoll loop over
// C keep-alive connections, each with one request in flight (no pipelining),
// as redis-benchmark does. The client's own cost is then the same for both,
// and so is the number of requests a server finds ready per wake-up.
//
//   lilcache-rest-load --protocol http|resp --port P --op get|set
//                      [--connections 50] [--seconds 5] [--keys 100000]
//                      [--value-bytes 100] [--host 127.0.0.1]
//
// http: GET /get?key=K or GET /set?key=K&value=V (Host: 127.0.0.1:P, as wrk
// sends); resp: GET K or SET K V. Keys: "key:" + 12 digits, uniform over
// [0, keys) (redis-benchmark -r's format: preload them). Prints one line:
//   requests N seconds S rps R errors E
// errors: answers that are not 2xx (http), an error or a miss (resp). Exit
// status 0 if every answer was a success, 1 otherwise, 2 on bad usage or a
// connection failure (one line on stderr).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct Args {
  std::string protocol, op, host = "127.0.0.1";
  int port = 0;
  int connections = 50;
  double seconds = 5;
  std::uint64_t keys = 100000;
  std::size_t value_bytes = 100;
};

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "lilcache-rest-load: %s\n", why.c_str());
  std::exit(2);
}

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (i + 1 >= argc) Die("missing value after " + std::string(flag));
    const char* v = argv[++i];
    auto number = [&](auto* out) {
      const char* end = v + std::strlen(v);
      auto [p, ec] = std::from_chars(v, end, *out);
      if (ec != std::errc() || p != end) Die("bad number for " + std::string(flag) + ": " + v);
    };
    if (flag == "--protocol") {
      a.protocol = v;
    } else if (flag == "--op") {
      a.op = v;
    } else if (flag == "--host") {
      a.host = v;
    } else if (flag == "--port") {
      number(&a.port);
    } else if (flag == "--connections") {
      number(&a.connections);
    } else if (flag == "--seconds") {
      a.seconds = std::atof(v);
    } else if (flag == "--keys") {
      number(&a.keys);
    } else if (flag == "--value-bytes") {
      number(&a.value_bytes);
    } else {
      Die("unknown option " + std::string(flag));
    }
  }
  if (a.protocol != "http" && a.protocol != "resp") Die("--protocol must be http or resp");
  if (a.op != "get" && a.op != "set") Die("--op must be get or set");
  if (a.port <= 0 || a.port > 65535) Die("--port must be 1-65535");
  if (a.connections <= 0 || a.connections > 10000) Die("--connections must be 1-10000");
  if (!(a.seconds > 0)) Die("--seconds must be positive");
  if (a.keys == 0) Die("--keys must be positive");
  return a;
}

struct Connection {
  int fd = -1;
  std::string out;  // the request being sent
  std::size_t sent = 0;
  std::string in;  // the answer being received
};

// The length of the complete answer at the start of `in`, 0 if incomplete;
// *ok whether it is a success.
std::size_t HttpAnswer(std::string_view in, bool* ok) {
  const std::size_t end = in.find("\r\n\r\n");
  if (end == std::string_view::npos) return 0;
  const std::string_view head = in.substr(0, end + 2);
  std::size_t length = 0;
  for (std::size_t line = head.find("\r\n"); line != std::string_view::npos;) {
    const std::size_t next = head.find("\r\n", line + 2);
    if (next == std::string_view::npos) break;
    std::string_view field = head.substr(line + 2, next - line - 2);
    if (field.size() > 15 && strncasecmp(field.data(), "content-length:", 15) == 0) {
      field.remove_prefix(15);
      while (!field.empty() && field.front() == ' ') field.remove_prefix(1);
      std::from_chars(field.data(), field.data() + field.size(), length);
    }
    line = next;
  }
  if (in.size() < end + 4 + length) return 0;
  *ok = in.size() > 9 && in[9] == '2';  // "HTTP/1.1 2xx"
  return end + 4 + length;
}

std::size_t RespAnswer(std::string_view in, bool* ok) {
  const std::size_t eol = in.find("\r\n");
  if (eol == std::string_view::npos) return 0;
  if (in[0] != '$') {
    *ok = in[0] == '+' || in[0] == ':';
    return eol + 2;
  }
  long length = 0;
  std::from_chars(in.data() + 1, in.data() + eol, length);
  if (length < 0) {  // a miss: every key was preloaded
    *ok = false;
    return eol + 2;
  }
  const std::size_t total = eol + 2 + static_cast<std::size_t>(length) + 2;
  if (in.size() < total) return 0;
  *ok = true;
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = Parse(argc, argv);
  const bool http = args.protocol == "http";
  const bool set = args.op == "set";
  const std::string value(args.value_bytes, 'x');
  const std::string host_field = "Host: " + args.host + ":" + std::to_string(args.port) + "\r\n";
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_int_distribution<std::uint64_t> pick(0, args.keys - 1);

  auto next_request = [&](std::string& out) {
    char key[32];
    const int n =
        std::snprintf(key, sizeof key, "key:%012llu", static_cast<unsigned long long>(pick(rng)));
    const std::string_view k(key, static_cast<std::size_t>(n));
    out.clear();
    if (http) {
      out += set ? "GET /set?key=" : "GET /get?key=";
      out += k;
      if (set) {
        out += "&value=";
        out += value;
      }
      out += " HTTP/1.1\r\n";
      out += host_field;
      out += "\r\n";
    } else {
      out += set ? "*3\r\n$3\r\nSET\r\n$" : "*2\r\n$3\r\nGET\r\n$";
      out += std::to_string(k.size());
      out += "\r\n";
      out += k;
      out += "\r\n";
      if (set) {
        out += '$';
        out += std::to_string(value.size());
        out += "\r\n";
        out += value;
        out += "\r\n";
      }
    }
  };

  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(args.port));
  if (inet_pton(AF_INET, args.host.c_str(), &addr.sin_addr) != 1) {
    Die("--host must be an IPv4 address: " + args.host);
  }
  const int ep = epoll_create1(0);
  if (ep < 0) Die(std::string("epoll_create1: ") + std::strerror(errno));
  std::vector<Connection> conns(static_cast<std::size_t>(args.connections));
  for (std::size_t i = 0; i < conns.size(); ++i) {
    Connection& c = conns[i];
    c.fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c.fd < 0) Die(std::string("socket: ") + std::strerror(errno));
    if (connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      Die("connect to port " + std::to_string(args.port) + ": " + std::strerror(errno));
    }
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev) != 0) {
      Die(std::string("epoll_ctl: ") + std::strerror(errno));
    }
  }

  auto send_next = [&](Connection& c) {
    next_request(c.out);
    const ssize_t n = send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (n != static_cast<ssize_t>(c.out.size())) {  // a small request fits the socket buffer
      Die(std::string("send: ") + (n < 0 ? std::strerror(errno) : "short write"));
    }
  };

  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  const Clock::time_point end = start + std::chrono::duration_cast<Clock::duration>(
                                            std::chrono::duration<double>(args.seconds));
  for (Connection& c : conns) send_next(c);
  std::uint64_t requests = 0, errors = 0;
  std::size_t in_flight = conns.size();
  bool stopping = false;
  std::vector<epoll_event> events(conns.size());
  char buf[64 * 1024];
  while (in_flight > 0) {
    const int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 1000);
    if (n < 0 && errno != EINTR) Die(std::string("epoll_wait: ") + std::strerror(errno));
    if (!stopping && Clock::now() >= end) stopping = true;
    for (int e = 0; e < n; ++e) {
      Connection& c = conns[events[e].data.u64];
      const ssize_t got = recv(c.fd, buf, sizeof buf, 0);
      if (got <= 0) {
        if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        Die(got == 0 ? "the server closed a connection"
                     : std::string("recv: ") + std::strerror(errno));
      }
      c.in.append(buf, static_cast<std::size_t>(got));
      bool ok = false;
      const std::size_t used = http ? HttpAnswer(c.in, &ok) : RespAnswer(c.in, &ok);
      if (used == 0) continue;
      if (used != c.in.size()) Die("the server sent more than one answer to one request");
      c.in.clear();
      ++requests;
      if (!ok) ++errors;
      if (stopping) {
        --in_flight;
      } else {
        send_next(c);
      }
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("requests %llu seconds %.3f rps %.0f errors %llu\n",
              static_cast<unsigned long long>(requests), seconds,
              static_cast<double>(requests) / seconds, static_cast<unsigned long long>(errors));
  for (Connection& c : conns) close(c.fd);
  close(ep);
  return errors == 0 ? 0 : 1;
}
