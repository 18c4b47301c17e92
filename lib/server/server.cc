// server: lilcache::Server, the sockets around HttpConnection (Boost.Asio).
//
// One io_context per thread ("worker"), each run by one thread. The acceptor
// lives on worker 0 and hands each accepted socket to the next worker in
// turn; a connection then lives on that worker's thread only, so that no
// session state is shared between threads. A session reads what arrives,
// feeds it to its HttpConnection, writes the output, and repeats.
//
// Deadlines cost one clock read per request: each session records when it
// must be done (its request deadline while a request is in progress or its
// response is being written, its idle deadline between requests), and a
// periodic timer per worker closes the sessions past theirs. A slow client
// therefore holds only its own connection, never a thread.
//
// Writes go straight to send(2) on the non-blocking socket, and only what it
// does not take waits for the event loop; the answers of pipelined requests
// read together are written together (one send per batch, not per request).
//
// Bounds (docs/rest.md): connections (max_connections, from RLIMIT_NOFILE),
// connections per client address, the read buffer of a session (flat_buffer
// max_size), and the memory of bodies and responses (MemoryBudget, shared by
// every thread); warn lines are rate-limited per kind (HttpWarnings).
#include "lilcache/server.h"

#include <signal.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <condition_variable>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "lilcache/env.h"
#include "server/http_connection.h"
#include "server/http_handler.h"
#include "server/http_limits.h"
#include "util/error_code.h"
#include "util/logging.h"
#include "util/mutex.h"
#include "util/names.h"

namespace lilcache {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;

constexpr std::size_t kReadChunk = 16 * 1024;
// The answers of pipelined requests held back to be written together, at
// most (ProcessInput()).
constexpr std::size_t kBatchBytes = 64 * 1024;
// After an error answer, how long and how much a session reads and discards
// before closing (so that the client reads the answer, not a reset).
constexpr auto kLingerTime = std::chrono::seconds(1);
constexpr std::size_t kLingerBytes = 1 << 20;

std::string EndpointText(const tcp::endpoint& ep) {
  const asio::ip::address a = ep.address();
  std::string host = a.to_string();
  if (a.is_v6()) host = "[" + host + "]";
  return host + ":" + std::to_string(ep.port());
}

// The kind of a failed socket/bind/listen: busy for an address in use (by
// another process: try again later or another port), else by errno.
ErrorCode ListenErrorCode(const boost::system::error_code& ec) {
  if (ec == boost::asio::error::address_in_use) return ErrorCode::busy;
  if (ec.category() == boost::system::system_category()) return ErrorCodeOfErrno(ec.value());
  return ErrorCode::io;
}

std::string Millis(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

// Options with the defaults and the environment applied, checked.
ServerOptions Resolve(ServerOptions o) {
  if (o.token.has_value()) {
    if (o.token->empty()) {
      throw Error(
          ErrorCode::invalid_argument,
          "ServerOptions.token is empty: an empty token would let anyone in; leave it unset "
          "(std::nullopt) for no authentication");
    }
  } else if (const char* env = std::getenv("LILCACHE_TOKEN"); env != nullptr) {
    if (*env == '\0') {
      throw Error(
          ErrorCode::invalid_argument,
          "$LILCACHE_TOKEN is set but empty: an empty token would let anyone in; unset it for "
          "no authentication");
    }
    o.token = env;
  }
  for (const std::string& h : o.allowed_hosts) CheckAllowedHost(h);
  for (const std::string& origin : o.allowed_origins) CheckAllowedOrigin(origin);
  if (o.threads == 0) o.threads = std::max(1u, std::thread::hardware_concurrency());
  auto positive = [](std::chrono::milliseconds d, const char* what) {
    if (d.count() <= 0) {
      throw Error(ErrorCode::invalid_argument,
                  std::string("ServerOptions.") + what + " must be positive");
    }
  };
  positive(o.request_timeout, "request_timeout");
  positive(o.idle_timeout, "idle_timeout");
  if (o.max_header_bytes < 64) {
    throw Error(ErrorCode::invalid_argument, "ServerOptions.max_header_bytes must be at least 64");
  }
  if (o.threads > 1024) {
    throw Error(ErrorCode::invalid_argument, "ServerOptions.threads must be at most 1024");
  }
  if (o.memory_budget < kMaxValueBytes) {
    throw Error(ErrorCode::invalid_argument,
                "ServerOptions.memory_budget must be at least kMaxValueBytes (" +
                    std::to_string(kMaxValueBytes) + " bytes)");
  }
  return o;
}

// The key of a client's address for the per-client cap: an IPv4 address (also
// when mapped into IPv6), or the /64 prefix of an IPv6 one (what one host
// usually has to itself).
std::string ClientKey(const asio::ip::address& a) {
  if (a.is_v4()) return a.to_v4().to_string();
  const asio::ip::address_v6 v6 = a.to_v6();
  if (v6.is_v4_mapped()) return asio::ip::make_address_v4(asio::ip::v4_mapped, v6).to_string();
  asio::ip::address_v6::bytes_type bytes = v6.to_bytes();
  std::fill(bytes.begin() + 8, bytes.end(), 0);
  return asio::ip::address_v6(bytes).to_string() + "/64";
}

}  // namespace

class Session;

// One event loop, its thread's sessions and its deadline sweep.
// Declared before ioc: destroying ioc destroys the handlers of pending
// operations, and with them their sessions, which unregister here.
struct Worker {
  std::unordered_set<Session*> sessions;  // touched on this worker's thread only
  bool stopping = false;                  // likewise
  asio::io_context ioc{1};                // run by exactly one thread
  asio::steady_timer sweep{ioc};
};

class Server::Impl {
 public:
  Impl(Cache& cache, std::string_view host, std::uint16_t port, const ServerOptions& options);

  void Run();
  void Stop();

  Cache& cache_;
  ServerOptions options_;  // const after the constructor
  ConnectionCaps caps_;    // likewise: the connection cap and refusal slots in force
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<HttpWarnings> warnings_;
  std::optional<HttpHandler> handler_;  // set in the constructor, once bound; then const
  MemoryBudget budget_;
  const HttpLimits limits_;
  const Clock::duration tick_;
  std::atomic<std::size_t> connections_{0};  // sessions; before workers_ (see Worker)
  std::atomic<bool> stopping_{false};

  // Open sessions per client address (ClientKey). Touched by the acceptor's
  // thread (OnAccept) and by any worker's (a session's end): under clients_mu_.
  Mutex clients_mu_;
  std::unordered_map<std::string, std::size_t> clients_ GUARDED_BY(clients_mu_);

  void ReleaseClient(const std::string& key);

  std::vector<std::unique_ptr<Worker>> workers_;
  tcp::acceptor acceptor_;           // on workers_[0]; destroyed before them
  asio::steady_timer accept_retry_;  // likewise: after EMFILE and the like
  tcp::endpoint bound_;
  std::size_t next_worker_ = 0;  // acceptor's thread only

  Mutex run_mu_;
  CondVar run_cv_{&run_mu_};
  bool ran_ GUARDED_BY(run_mu_) = false;
  bool running_ GUARDED_BY(run_mu_) = false;

 private:
  void Accept();
  void OnAccept(error_code ec, tcp::socket socket, Worker& worker);
  void Sweep(Worker& w);
  void RunWorker(Worker& w);
};

// One connection. Lives on its worker's thread; kept alive by the handlers
// of its pending operations (shared_from_this).
class Session : public std::enable_shared_from_this<Session> {
 public:
  // client: its key in Impl::clients_, "" if it was not counted there.
  Session(Server::Impl& server, Worker& worker, tcp::socket socket, std::string peer,
          std::string client)
      : server_(server),
        worker_(worker),
        socket_(std::move(socket)),
        // Unconsumed input stays under max_header_bytes (HttpConnection);
        // one read adds kReadChunk.
        buffer_(server.limits_.max_header_bytes + 2 * kReadChunk),
        connection_(*server.handler_, server.limits_, *server.warnings_, std::move(peer)),
        client_(std::move(client)) {}

  ~Session() {
    if (!client_.empty()) server_.ReleaseClient(client_);
    worker_.sessions.erase(this);
    server_.connections_.fetch_sub(1, std::memory_order_relaxed);
    if (worker_.stopping && worker_.sessions.empty()) worker_.sweep.cancel();  // run() may end
  }

  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void Start() {
    worker_.sessions.insert(this);
    if (worker_.stopping) return Close();
    error_code ec;
    socket_.set_option(tcp::no_delay(true), ec);
    // WriteNow() writes with send(2) directly: it must get EAGAIN, not block.
    socket_.non_blocking(true, ec);
    if (ec) return Close();
    Idle();
    Read();
  }

  // Answers 503 and closes: the server has max_connections open, or the
  // client its max_connections_per_client.
  void Refuse(bool per_client) {
    worker_.sessions.insert(this);
    refused_ = true;
    HttpResponse r;
    r.status = 503;
    r.body = per_client ? "too many connections from your address; retry later\n"
                        : "too many connections; retry later\n";
    SerializeResponse(std::move(r), false, false, false, out_);
    out_.close = out_.linger = true;
    state_ = State::kRequest;
    deadline_ = Clock::now() + kLingerTime;
    error_code ec;
    socket_.non_blocking(true, ec);  // see Start()
    if (ec) return Close();
    if (std::optional<error_code> done = WriteNow(true)) {
      if (AfterWrite(*done, true)) ProcessInput();
    }
  }

  // Graceful stop: close now if between requests, else after the response.
  void Stop() {
    if (state_ == State::kIdle || state_ == State::kLinger) {
      Close();
    } else {
      connection_.CloseAfterResponse();
    }
  }

  void ExpireIfDue(Clock::time_point now) {
    if (closed_ || now < deadline_) return;
    if (state_ == State::kRequest && !refused_) {
      const std::string limit = Millis(server_.options_.request_timeout);
      connection_.LogDropped(connection_.in_request()
                                 ? "request deadline (" + limit + ") passed"
                                 : "the response was not read within the deadline (" + limit + ")");
    } else if (state_ == State::kIdle) {
      server_.log_->debug("http: closing a connection idle for {}",
                          Millis(server_.options_.idle_timeout));
    }
    Close();
  }

 private:
  enum class State {
    kIdle,     // waiting for the first byte of a request
    kRequest,  // reading a request or writing its response
    kLinger,   // after an error answer: discarding input until EOF or the deadline
  };

  void Idle() {
    state_ = State::kIdle;
    deadline_ = Clock::now() + server_.options_.idle_timeout;
  }

  void Read() {
    boost::beast::flat_buffer::mutable_buffers_type space;
    try {
      space = buffer_.prepare(kReadChunk);
    } catch (const std::length_error&) {  // cannot happen (see buffer_): a bug, not a client
      server_.log_->error("http: the read buffer is full ({} bytes); closing the connection",
                          buffer_.size());
      return Close();
    }
    socket_.async_read_some(
        space, [self = shared_from_this()](error_code ec, std::size_t n) { self->OnRead(ec, n); });
  }

  void OnRead(error_code ec, std::size_t n) {
    if (closed_) return;
    if (ec) {
      if (state_ == State::kRequest && ec != asio::error::operation_aborted) {
        connection_.LogDropped("the client closed the connection (" + ec.message() + ")");
      }
      return Close();
    }
    buffer_.commit(n);
    if (state_ == State::kLinger) {
      buffer_.consume(buffer_.size());
      lingered_ += n;
      if (lingered_ > kLingerBytes) return Close();
      return Read();
    }
    if (state_ == State::kIdle) {
      state_ = State::kRequest;
      deadline_ = Clock::now() + server_.options_.request_timeout;
    }
    ProcessInput();
  }

  // Feeds what is buffered to the connection and writes its answers, until it
  // needs more input or a write must wait for the socket. The answers of
  // requests that arrived together (pipelined) go out in one write: a plain
  // answer with more input buffered behind it waits in batch_ for the next
  // ones (up to kBatchBytes). A loop, not a recursion: a client may pipeline
  // thousands of small requests.
  void ProcessInput() {
    for (;;) {
      HttpConnection::Step step;
      try {
        const auto data = buffer_.data();
        step = connection_.Process(
            std::string_view(static_cast<const char*>(data.data()), data.size()), out_);
      } catch (const std::exception& e) {
        server_.log_->error("http: internal error, closing the connection: {}", e.what());
        return Close();
      }
      buffer_.consume(step.consumed);
      bool with_out = true;
      if (!step.ready) {
        if (batch_.empty()) return Read();
        with_out = false;  // the batch, then read the rest of the unfinished request
      } else if (buffer_.size() > 0 && out_.body.empty() && !out_.close && !out_.interim &&
                 batch_.size() + out_.head.size() <= kBatchBytes && !worker_.stopping) {
        batch_ += out_.head;
        out_.hold.Reset();  // an inline body: now in batch_, under kBatchBytes
        deadline_ = Clock::now() + server_.options_.request_timeout;  // the next request's
        continue;
      }
      const std::optional<error_code> done = WriteNow(with_out);
      if (!done || !AfterWrite(*done, with_out)) return;
    }
  }

  // Writes batch_ and, if with_out, out_: at once if the socket takes it all
  // (the usual case: no trip through the event loop), else the rest
  // asynchronously. Returns how the write ended, or nullopt if it goes on
  // asynchronously (its completion calls AfterWrite()).
  std::optional<error_code> WriteNow(bool with_out) {
    std::array<asio::const_buffer, 3> buffers{
        asio::buffer(batch_), with_out ? asio::buffer(out_.head) : asio::const_buffer(),
        with_out ? asio::buffer(out_.body) : asio::const_buffer()};
    const std::size_t total = asio::buffer_size(buffers);
    error_code ec;
    std::size_t written = socket_.write_some(buffers, ec);  // non-blocking (Start())
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      ec = {};
      written = 0;
    }
    if (ec || written == total) return ec;
    for (asio::const_buffer& b : buffers) {  // what is left
      const std::size_t skip = std::min(written, b.size());
      b += skip;
      written -= skip;
    }
    asio::async_write(socket_, buffers,
                      [self = shared_from_this(), with_out](error_code e, std::size_t) {
                        if (self->AfterWrite(e, with_out)) self->ProcessInput();
                      });
    return std::nullopt;
  }

  // After a write: frees what it held, then closes, lingers or reads, or
  // returns true for the caller to process the buffered input.
  bool AfterWrite(error_code ec, bool with_out) {
    batch_.clear();
    if (batch_.capacity() > kBatchBytes) std::string().swap(batch_);
    if (with_out) {
      out_.hold.Reset();              // the response is written (or never will be):
      std::string().swap(out_.body);  // give its memory back now
    }
    if (closed_) return false;
    if (ec) {
      if (ec != asio::error::operation_aborted) {
        connection_.LogDropped("writing the response failed (" + ec.message() + ")");
      }
      Close();
      return false;
    }
    if (!with_out) {  // the batch before an unfinished request
      Read();
      return false;
    }
    if (out_.interim) return true;  // 100 Continue: the same request goes on
    if (out_.close) {
      out_.linger ? Linger() : Close();
      return false;
    }
    if (worker_.stopping) {
      Close();
      return false;
    }
    if (buffer_.size() > 0) {  // a pipelined request
      state_ = State::kRequest;
      deadline_ = Clock::now() + server_.options_.request_timeout;
      return true;
    }
    Idle();
    Read();
    return false;
  }

  void Linger() {
    state_ = State::kLinger;
    deadline_ = Clock::now() + kLingerTime;
    error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return Close();
    buffer_.consume(buffer_.size());
    Read();
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    error_code ec;
    socket_.close(ec);  // pending operations end with operation_aborted
  }

  Server::Impl& server_;
  Worker& worker_;
  tcp::socket socket_;
  boost::beast::flat_buffer buffer_;
  HttpConnection connection_;
  HttpOutput out_;
  std::string batch_;  // answers of pipelined requests, not written yet (ProcessInput())
  State state_ = State::kIdle;
  Clock::time_point deadline_{};
  std::size_t lingered_ = 0;
  const std::string client_;
  bool refused_ = false;
  bool closed_ = false;
};

Server::Impl::Impl(Cache& cache, std::string_view host, std::uint16_t port,
                   const ServerOptions& options)
    : cache_(cache),
      options_(Resolve(options)),
      caps_(CapsForDescriptors(SoftFileLimit(), options_.threads)),
      log_(MakeCacheLogger(cache.env(), CachePaths{cache.root(), cache.name()}.text_log(),
                           cache.name() + ".http", ParseLogLevel(options_.loglevel))),
      warnings_(std::make_unique<HttpWarnings>(*log_)),
      budget_(options_.memory_budget),
      limits_{options_.max_header_bytes, options_.max_body_bytes, &budget_},
      tick_(std::clamp<Clock::duration>(
          std::min(options_.request_timeout, options_.idle_timeout) / 8,
          std::chrono::milliseconds(5), std::chrono::milliseconds(500))),
      workers_([&] {
        std::vector<std::unique_ptr<Worker>> w;
        for (unsigned i = 0; i < options_.threads; ++i) w.push_back(std::make_unique<Worker>());
        return w;
      }()),
      acceptor_(workers_[0]->ioc),
      accept_retry_(workers_[0]->ioc) {
  if (options_.log_to_stderr) {
    auto err = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    err->set_pattern("%Y-%m-%d %H:%M:%S.%e %l %n: %v");
    log_->sinks().push_back(std::move(err));
  }

  const std::string host_text(host);
  tcp::endpoint endpoint;
  error_code ec;
  const asio::ip::address address = asio::ip::make_address(host_text, ec);
  const bool host_is_name = static_cast<bool>(ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, port);
  } else {
    tcp::resolver resolver(workers_[0]->ioc);
    auto results = resolver.resolve(host_text, std::to_string(port), ec);
    if (ec || results.empty()) {
      throw Error(ErrorCode::invalid_argument, "cannot resolve host \"" + host_text + "\": " +
                                                   (ec ? ec.message() : std::string("no address")));
    }
    endpoint = results.begin()->endpoint();
  }

  const std::string where = EndpointText(endpoint);
  auto check = [&](const char* step) {
    if (ec) {
      throw Error(ListenErrorCode(ec),
                  "cannot listen on " + where + ": " + step + ": " + ec.message());
    }
  };
  acceptor_.open(endpoint.protocol(), ec);
  check("socket");
  acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  check("SO_REUSEADDR");
  acceptor_.bind(endpoint, ec);
  check("bind");
  acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  check("listen");
  bound_ = acceptor_.local_endpoint(ec);
  check("getsockname");

  // The Host values served are known once bound (docs/rest.md, "Browsers").
  handler_.emplace(cache, HttpPolicy{.token = options_.token.value_or(""),
                                     .keys_limit = options_.keys_limit,
                                     .allowed_hosts = options_.allowed_hosts,
                                     .allowed_origins = options_.allowed_origins,
                                     .bound_address = bound_.address().to_string(),
                                     .bound_name = host_is_name ? host_text : std::string()});

  // The connection cap: what the descriptors allow (caps_), 1000 by default.
  const std::uint64_t nofile = SoftFileLimit();
  const std::size_t wanted = options.max_connections == 0 ? 1000 : options.max_connections;
  options_.max_connections = std::min(wanted, caps_.connections);
  if (options_.max_connections < wanted && options.max_connections != 0) {
    log_->warn(
        "max_connections {} lowered to {}: RLIMIT_NOFILE is {} and {} descriptors are kept for "
        "the cache and the process, {} for refusals",
        wanted, options_.max_connections, nofile, ReservedDescriptors(options_.threads),
        caps_.refusals);
  }
  if (options_.max_connections_per_client == 0) {
    options_.max_connections_per_client = std::max<std::size_t>(1, options_.max_connections / 4);
  }
  log_->info("serving cache \"{}\" (root {}) on http://{} with {} thread{}; authentication {}",
             cache.name(), cache.root(), EndpointText(bound_), options_.threads,
             options_.threads == 1 ? "" : "s", options_.token ? "on (bearer token)" : "off");
  log_->info(
      "limits: {} connections ({} per client address; RLIMIT_NOFILE {}), memory budget {} MiB "
      "for bodies and responses, body {} bytes, header {} bytes",
      options_.max_connections, options_.max_connections_per_client, nofile,
      options_.memory_budget >> 20, options_.max_body_bytes, options_.max_header_bytes);
  if (!options_.allowed_hosts.empty() || !options_.allowed_origins.empty()) {
    auto join = [](const std::vector<std::string>& v) {
      std::string s;
      for (const std::string& e : v) s += (s.empty() ? "" : ", ") + e;
      return s;
    };
    log_->info("allowed hosts besides the defaults: [{}]; allowed origins: [{}]",
               join(options_.allowed_hosts), join(options_.allowed_origins));
  }
  if (!bound_.address().is_loopback() && !options_.token) {
    log_->warn(
        "!!! SERVING ON {}, A NON-LOOPBACK ADDRESS, WITHOUT A TOKEN !!! Anyone who can reach "
        "this address can read, overwrite and purge the cache. Set a token (--token, "
        "$LILCACHE_TOKEN, ServerOptions::token) or bind 127.0.0.1.",
        EndpointText(bound_));
  }

  for (auto& w : workers_) Sweep(*w);
  Accept();
}

void Server::Impl::Accept() {
  Worker& target = *workers_[next_worker_];
  next_worker_ = (next_worker_ + 1) % workers_.size();
  acceptor_.async_accept(target.ioc, [this, &target](error_code ec, tcp::socket socket) {
    OnAccept(ec, std::move(socket), target);
  });
}

void Server::Impl::OnAccept(error_code ec, tcp::socket socket, Worker& worker) {
  if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;  // stopping
  if (ec) {
    // EMFILE, ENFILE, ENOBUFS...: wait a little rather than spin.
    warnings_->Warn(HttpWarnings::kAccept, "http: accept failed: {}; retrying in 100 ms",
                    ec.message());
    accept_retry_.expires_after(std::chrono::milliseconds(100));
    accept_retry_.async_wait([this](error_code e) {
      if (!e && acceptor_.is_open()) Accept();
    });
    return;
  }
  if (stopping_.load()) {
    socket.close(ec);
    return;
  }
  const std::size_t open = connections_.fetch_add(1, std::memory_order_relaxed);
  const tcp::endpoint remote = socket.remote_endpoint(ec);
  std::string peer = EndpointText(remote);
  std::string client = ec ? std::string("?") : ClientKey(remote.address());
  std::size_t from_client = 0;
  if (open < options_.max_connections) {
    MutexLock lock(&clients_mu_);
    std::size_t& n = clients_[client];  // max_connections_per_client >= 1: never left at 0
    from_client = n;
    if (n < options_.max_connections_per_client) ++n;
  }
  const bool over_total = open >= options_.max_connections;
  if (over_total || from_client >= options_.max_connections_per_client) {
    if (over_total) {
      warnings_->Warn(HttpWarnings::kRefused,
                      "http: refusing connection from {}: {} connections open (max_connections {})",
                      peer, open, options_.max_connections);
    } else {
      warnings_->Warn(HttpWarnings::kRefused,
                      "http: refusing connection from {}: {} connections open from {} "
                      "(max_connections_per_client {})",
                      peer, from_client, client, options_.max_connections_per_client);
    }
    if (open >= options_.max_connections + caps_.refusals) {
      connections_.fetch_sub(1, std::memory_order_relaxed);
      socket.close(ec);
    } else {
      asio::post(worker.ioc, [this, &worker, over_total, s = std::move(socket),
                              p = std::move(peer)]() mutable {
        std::make_shared<Session>(*this, worker, std::move(s), std::move(p), std::string())
            ->Refuse(!over_total);
      });
    }
  } else {
    asio::post(worker.ioc, [this, &worker, s = std::move(socket), p = std::move(peer),
                            c = std::move(client)]() mutable {
      std::make_shared<Session>(*this, worker, std::move(s), std::move(p), std::move(c))->Start();
    });
  }
  Accept();
}

void Server::Impl::ReleaseClient(const std::string& key) {
  MutexLock lock(&clients_mu_);
  auto it = clients_.find(key);
  if (it != clients_.end() && --it->second == 0) clients_.erase(it);
}

void Server::Impl::Sweep(Worker& w) {
  w.sweep.expires_after(tick_);
  w.sweep.async_wait([this, &w](error_code ec) {
    if (ec) return;
    const Clock::time_point now = Clock::now();
    std::vector<Session*> all(w.sessions.begin(), w.sessions.end());
    for (Session* s : all) s->ExpireIfDue(now);  // closing never destroys a session here
    if (&w == workers_[0].get()) warnings_->Flush();
    if (w.stopping && w.sessions.empty()) return;  // nothing left: let run() return
    Sweep(w);
  });
}

void Server::Impl::RunWorker(Worker& w) {
  for (;;) {
    try {
      w.ioc.run();
      return;
    } catch (const std::exception& e) {
      log_->error("http: unexpected exception in the event loop: {}", e.what());
    }
  }
}

void Server::Impl::Run() {
  {
    MutexLock lock(&run_mu_);
    if (ran_) throw Error(ErrorCode::invalid_state, "Server::run() called twice");
    ran_ = running_ = true;
  }
  std::vector<std::thread> threads;
  try {
    for (std::size_t i = 1; i < workers_.size(); ++i) {
      threads.emplace_back([this, i] { RunWorker(*workers_[i]); });
    }
  } catch (const std::system_error& e) {  // could not start a thread: undo, report
    Stop();
    RunWorker(*workers_[0]);
    for (std::thread& t : threads) t.join();
    {
      MutexLock lock(&run_mu_);
      running_ = false;
    }
    run_cv_.SignalAll();
    throw Error(ErrorCode::io, std::string("cannot start the server's threads: ") + e.what());
  }
  RunWorker(*workers_[0]);
  for (std::thread& t : threads) t.join();
  log_->info("stopped serving cache \"{}\" on http://{}", cache_.name(), EndpointText(bound_));
  {
    MutexLock lock(&run_mu_);
    running_ = false;
  }
  run_cv_.SignalAll();
}

void Server::Impl::Stop() {
  if (stopping_.exchange(true)) return;
  log_->info("stopping: no new connections; finishing the requests in progress");
  asio::post(workers_[0]->ioc, [this] {
    error_code ec;
    acceptor_.close(ec);
    accept_retry_.cancel();
  });
  for (auto& wp : workers_) {
    Worker& w = *wp;
    asio::post(w.ioc, [&w] {
      w.stopping = true;
      std::vector<Session*> all(w.sessions.begin(), w.sessions.end());
      for (Session* s : all) s->Stop();
      if (w.sessions.empty()) w.sweep.cancel();  // nothing left: let run() return
    });
  }
}

Server::Server(Cache& cache, std::string_view host, std::uint16_t port,
               const ServerOptions& options)
    : impl_(std::make_unique<Impl>(cache, host, port, options)) {}

Server::~Server() {
  impl_->Stop();
  MutexLock lock(&impl_->run_mu_);
  while (impl_->running_) impl_->run_cv_.Wait();
}

std::uint16_t Server::port() const { return impl_->bound_.port(); }

std::string Server::address() const { return impl_->bound_.address().to_string(); }

std::string Server::url() const { return "http://" + EndpointText(impl_->bound_); }

void Server::run() { impl_->Run(); }

void Server::run_until_signal() {
  asio::io_context signal_ioc(1);
  asio::signal_set signals(signal_ioc, SIGINT, SIGTERM);
  signals.async_wait([this](error_code ec, int signal_number) {
    if (ec) return;
    impl_->log_->info("signal {} received", signal_number);
    stop();
  });
  std::thread signal_thread([&signal_ioc] { signal_ioc.run(); });
  auto finish = [&] {
    error_code ec;
    signals.cancel(ec);
    signals.clear(ec);
    signal_ioc.stop();
    signal_thread.join();
  };
  try {
    run();
  } catch (...) {
    finish();
    throw;
  }
  finish();
}

void Server::stop() { impl_->Stop(); }

void start(std::string_view host, std::uint16_t port, const ServerOptions& options) {
  raise_file_limit();
  Server server(default_cache(), host, port, options);
  server.run_until_signal();
}

void validate_server_options(const ServerOptions& options) {
  Resolve(options);
  ParseLogLevel(options.loglevel);
}

std::uint64_t raise_file_limit() { return RaiseFileLimit(); }

}  // namespace lilcache
