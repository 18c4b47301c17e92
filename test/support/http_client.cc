#include "support/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace lilcache::test {
namespace {

namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;

}  // namespace

HttpConn::HttpConn(std::uint16_t port, std::chrono::milliseconds timeout) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int e = errno;
    ::close(fd_);
    throw std::runtime_error("connect to port " + std::to_string(port) + ": " + std::strerror(e));
  }
}

HttpConn::~HttpConn() {
  if (fd_ >= 0) ::close(fd_);
}

bool HttpConn::Send(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

void HttpConn::ShutdownWrite() { ::shutdown(fd_, SHUT_WR); }

std::optional<HttpReply> HttpConn::Read(bool head) {
  http::response_parser<http::string_body> parser;
  parser.body_limit(boost::none);
  parser.header_limit(1 << 20);
  parser.eager(true);
  if (head) parser.skip(true);
  for (;;) {
    while (!buffered_.empty() && !parser.is_done()) {
      boost::system::error_code ec;
      const std::size_t used =
          parser.put(boost::asio::const_buffer(buffered_.data(), buffered_.size()), ec);
      buffered_.erase(0, used);
      if (ec == http::error::need_more) break;
      if (ec) throw std::runtime_error("unparsable response: " + ec.message());
      if (used == 0) break;
    }
    if (parser.is_done()) break;
    char chunk[65536];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    buffered_.append(chunk, static_cast<std::size_t>(n));
  }
  HttpReply reply;
  const auto& msg = parser.get();
  reply.status = msg.result_int();
  reply.body = msg.body();
  reply.keep_alive = msg.keep_alive();
  for (const auto& field : msg) {
    std::string name(field.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    reply.headers[name] = std::string(field.value());
  }
  return reply;
}

std::string HttpConn::ReadAll() {
  std::string all = std::move(buffered_);
  buffered_.clear();
  char chunk[65536];
  for (;;) {
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return all;
    all.append(chunk, static_cast<std::size_t>(n));
  }
}

bool HttpConn::WaitClosed(std::chrono::milliseconds timeout) {
  const Clock::time_point end = Clock::now() + timeout;
  char chunk[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, MSG_DONTWAIT);
    if (n == 0) return true;
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n < 0) return true;  // reset
  }
}

std::string MakeRequest(std::string_view method, std::string_view target, std::string_view body,
                        std::string_view extra_headers) {
  std::string r;
  r.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  if (!body.empty() || method == "PUT" || method == "POST") {
    r.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  }
  r.append(extra_headers).append("\r\n").append(body);
  return r;
}

HttpReply Fetch(std::uint16_t port, std::string_view method, std::string_view target,
                std::string_view body, std::string_view extra_headers) {
  HttpConn conn(port);
  if (!conn.Send(MakeRequest(method, target, body, extra_headers))) {
    throw std::runtime_error("sending the request failed");
  }
  std::optional<HttpReply> reply = conn.Read(method == "HEAD");
  if (!reply) throw std::runtime_error("no complete response");
  return *reply;
}

std::string PercentEncode(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : bytes) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

}  // namespace lilcache::test
