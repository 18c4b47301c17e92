// client: the routing layer of the Redis backend (client.h), on hiredis's
// blocking API. docs/cluster.md, "Routing", describes what it does.
#include "cluster/client.h"

#include <fmt/format.h>
#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>
#include <sys/time.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <map>
#include <thread>
#include <utility>

#include "cluster/slot.h"
#include "engine/fork.h"
#include "lilcache/lilcache.h"
#include "util/mutex.h"
#include "util/quote.h"

namespace lilcache::cluster {

bool Reply::is_error(std::string_view prefix) const {
  if (type != Type::kError || str.size() < prefix.size()) return false;
  if (std::string_view(str).substr(0, prefix.size()) != prefix) return false;
  return str.size() == prefix.size() || str[prefix.size()] == ' ';
}

std::string Endpoint::name() const {
  // An IPv6 address in brackets, so that the name parses back.
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kFirstBackoff{1};
constexpr milliseconds kMaxBackoff{100};
// Redirections followed at once before backing off (a slot bouncing between
// two nodes during a migration settles within a few round trips).
constexpr int kImmediateRedirects = 5;
// A node that failed this recently is asked for the slot map last.
constexpr milliseconds kFailedRecently{1000};

timeval ToTimeval(milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

Reply Convert(const redisReply* r) {
  Reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Reply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::kArray;
      out.elements.reserve(r->elements);
      for (std::size_t i = 0; i < r->elements; ++i) out.elements.push_back(Convert(r->element[i]));
      break;
    default:
      out.type = Reply::Type::kNil;
      break;
  }
  return out;
}

// What an error reply asks of the router.
enum class Verdict {
  kDone,    // an answer (maybe an error reply that is the caller's business)
  kMoved,   // MOVED slot host:port
  kAsk,     // ASK slot host:port
  kRetry,   // TRYAGAIN, CLUSTERDOWN, LOADING, MASTERDOWN, READONLY: later
  kNoAuth,  // NOAUTH: the server wants a password
};

Verdict Judge(const Reply& r) {
  if (r.type != Reply::Type::kError) return Verdict::kDone;
  if (r.is_error("MOVED")) return Verdict::kMoved;
  if (r.is_error("ASK")) return Verdict::kAsk;
  if (r.is_error("TRYAGAIN") || r.is_error("CLUSTERDOWN") || r.is_error("LOADING") ||
      r.is_error("MASTERDOWN") || r.is_error("READONLY")) {
    return Verdict::kRetry;
  }
  if (r.is_error("NOAUTH")) return Verdict::kNoAuth;
  return Verdict::kDone;
}

// "host:port" (an IPv6 host with or without brackets) as an Endpoint; false
// if it is not one.
bool ParseHostPort(std::string_view text, Endpoint& ep) {
  const std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  std::string_view host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string_view port_text = text.substr(colon + 1);
  int port = 0;
  const auto [end, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (host.empty() || ec != std::errc() || end != port_text.data() + port_text.size() || port < 1 ||
      port > 65535) {
    return false;
  }
  ep.host = std::string(host);
  ep.port = port;
  return true;
}

// "MOVED 3999 127.0.0.1:6381" / "ASK ...": the slot and the node.
bool ParseRedirect(const std::string& error, std::uint16_t& slot, Endpoint& ep) {
  const std::size_t sp1 = error.find(' ');
  if (sp1 == std::string::npos) return false;
  const std::size_t sp2 = error.find(' ', sp1 + 1);
  if (sp2 == std::string::npos) return false;
  unsigned value = 0;
  const char* first = error.data() + sp1 + 1;
  const char* last = error.data() + sp2;
  const auto [end, ec] = std::from_chars(first, last, value);
  if (ec != std::errc() || end != last || value >= kSlots) return false;
  slot = static_cast<std::uint16_t>(value);
  return ParseHostPort(std::string_view(error).substr(sp2 + 1), ep);
}

struct Node {
  Endpoint endpoint;
  std::string name;
  // Idle connections and the time of the last failure: under Impl::mu_.
  std::vector<redisContext*> idle;
  Clock::time_point failed_at{};
  bool failed = false;
};

// A connection taken from (or made for) a node, for one call.
struct Conn {
  Node* node = nullptr;
  redisContext* ctx = nullptr;
  std::uint64_t epoch = 0;  // the fork epoch it was made in
};

}  // namespace

class Client::Impl final : public ForkHook {
 public:
  Impl(Config config, std::shared_ptr<spdlog::logger> log)
      : config_(std::move(config)), log_(std::move(log)), fork_(this) {}

  ~Impl() {
    MutexLock lock(&mu_);
    for (auto& [name, node] : nodes_) {
      for (redisContext* c : node->idle) redisFree(c);
      node->idle.clear();
    }
  }

  const Config& config() const { return config_; }
  void set_logger(std::shared_ptr<spdlog::logger> log) { log_ = std::move(log); }

  std::vector<Reply> RunGroup(std::uint16_t slot, const std::vector<Command>& cmds,
                              Clock::time_point deadline,
                              Client::Resend resend = Client::Resend::kSafe) EXCLUDES(mu_) {
    if (slot >= kSlots) {
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("slot {} is not below {}", slot, kSlots));
    }
    for (const Command& cmd : cmds) CheckCommand(cmd);
    milliseconds backoff = kFirstBackoff;
    std::string cause;
    Node* ask_target = nullptr;
    Node* node = nullptr;
    int redirects = 0;
    while (true) {
      MaybeRefresh(deadline);
      std::uint64_t version = 0;
      {
        MutexLock lock(&mu_);
        CheckForkLocked();
        node = ask_target != nullptr ? ask_target : slots_[slot];
        version = map_version_;
      }
      const bool asking = ask_target != nullptr;
      ask_target = nullptr;
      bool at_once = false;
      if (node == nullptr) {
        std::string why;
        at_once = Refresh(version, deadline, &why) && redirects++ < kImmediateRedirects;
        cause = version == 0 ? "no slot map: " + why : "no node serves the slot";
      } else {
        Conn conn;
        std::vector<Reply> replies;
        if (!Take(node, conn, cause)) {
          Failed(node, cause);
          Refresh(version, deadline);
        } else if (!Exchange(conn, cmds, asking, replies, cause)) {
          Failed(node, cause);
          if (resend == Client::Resend::kNever) throw MayHaveRun(slot, node, cause);
          Refresh(version, deadline);
        } else {
          Give(conn);
          const auto [verdict, which] = JudgeAll(replies);
          switch (verdict) {
            case Verdict::kDone:
              return replies;
            case Verdict::kNoAuth:
              throw Error(ErrorCode::permission,
                          fmt::format("{}: node {} requires a password ({}): give one in the URL",
                                      config_.display, node->name, replies[which].str));
            case Verdict::kMoved:
            case Verdict::kAsk: {
              std::uint16_t to_slot = 0;
              Endpoint to;
              cause = fmt::format("node {} answered {}", node->name, replies[which].str);
              if (!ParseRedirect(replies[which].str, to_slot, to)) {
                throw Error(ErrorCode::io, fmt::format("{}: slot {}: malformed redirection from "
                                                       "node {}: {}",
                                                       config_.display, slot, node->name,
                                                       Escape(replies[which].str)));
              }
              if (to_slot != slot) {
                // The key is not of the slot given: the caller's mistake,
                // which no retry mends.
                throw Error(ErrorCode::invalid_argument,
                            fmt::format("{}: a command sent to slot {} has a key of slot {} "
                                        "(node {} answered {})",
                                        config_.display, slot, to_slot, node->name,
                                        Escape(replies[which].str)));
              }
              if (verdict == Verdict::kMoved) {
                Moved(to_slot, to, node);
              } else {
                ask_target = Ask(to_slot, to, node);
              }
              at_once = redirects++ < kImmediateRedirects;
              break;
            }
            case Verdict::kRetry:
              cause = fmt::format("node {} answered {}", node->name, replies[which].str);
              if (log_) log_->debug("redis: slot {}: {}", slot, cause);
              stale_.store(true, std::memory_order_relaxed);
              break;
          }
        }
      }
      const Clock::time_point now = Clock::now();
      if (now >= deadline) {
        throw Error(ErrorCode::io,
                    fmt::format("{}: slot {} (node {}): {} (gave up after retrying for {} ms)",
                                config_.display, slot, node != nullptr ? node->name : "unknown",
                                cause, config_.retry_for.count()));
      }
      if (!at_once) {
        std::this_thread::sleep_for(std::min<Clock::duration>(backoff, deadline - now));
        backoff = std::min(backoff * 2, kMaxBackoff);
      }
    }
  }

  // The Error of a command not sent again (Resend::kNever) after its
  // connection failed.
  Error MayHaveRun(std::uint16_t slot, const Node* node, const std::string& cause) const {
    return Error(ErrorCode::io,
                 fmt::format("{}: slot {} (node {}): {}, after the command was sent: it may or "
                             "may not have run (not sent again: it must not run twice)",
                             config_.display, slot, node->name, cause));
  }

  std::vector<Reply> RunMany(const std::vector<std::pair<std::uint16_t, Command>>& cmds,
                             Client::Resend resend = Client::Resend::kSafe) EXCLUDES(mu_) {
    const Clock::time_point deadline = Clock::now() + config_.retry_for;
    for (const auto& [slot, cmd] : cmds) {
      if (slot >= kSlots) {
        throw Error(ErrorCode::invalid_argument,
                    fmt::format("slot {} is not below {}", slot, kSlots));
      }
      CheckCommand(cmd);
    }
    std::vector<Reply> results(cmds.size());
    std::vector<bool> done(cmds.size(), false);
    MaybeRefresh(deadline);
    bool loaded = false;
    {
      MutexLock lock(&mu_);
      loaded = map_version_ != 0;
    }
    if (!loaded) Refresh(0, deadline);

    // One pipeline per node: every command appended, every buffer written,
    // then every reply read (one round trip per node, the nodes in
    // parallel).
    std::map<Node*, std::vector<std::size_t>> by_node;
    {
      MutexLock lock(&mu_);
      CheckForkLocked();
      for (std::size_t i = 0; i < cmds.size(); ++i) {
        Node* node = slots_[cmds[i].first];
        if (node != nullptr) by_node[node].push_back(i);
      }
    }
    struct Pipe {
      Conn conn;
      const std::vector<std::size_t>* indexes;
      bool ok;
    };
    std::vector<Pipe> pipes;
    std::string cause;
    bool failed_after_send = false;  // Resend::kNever: a pipeline failed once sent
    std::uint16_t failed_slot = 0;
    const Node* failed_node = nullptr;
    std::string failed_cause;
    try {
      for (auto& [node, indexes] : by_node) {
        Pipe pipe{{}, &indexes, false};
        if (!Take(node, pipe.conn, cause)) {
          Failed(node, cause);
          continue;
        }
        pipe.ok = true;
        pipes.push_back(pipe);
        for (std::size_t i : indexes) Append(pipe.conn.ctx, cmds[i].second);
      }
    } catch (...) {
      // AUTH refused on one node: the connections taken are closed.
      for (Pipe& pipe : pipes) redisFree(pipe.conn.ctx);
      throw;
    }
    for (Pipe& pipe : pipes) {
      int written = 0;
      while (!written) {
        if (redisBufferWrite(pipe.conn.ctx, &written) != REDIS_OK) {
          cause = Describe(pipe.conn);
          pipe.ok = false;
          break;
        }
      }
    }
    for (Pipe& pipe : pipes) {
      for (std::size_t i : *pipe.indexes) {
        if (!pipe.ok) break;
        Reply reply;
        if (!Read(pipe.conn, reply, cause)) {
          pipe.ok = false;
          break;
        }
        const Verdict verdict = Judge(reply);
        if (verdict == Verdict::kMoved) {
          std::uint16_t to_slot = 0;
          Endpoint to;
          if (ParseRedirect(reply.str, to_slot, to)) Moved(to_slot, to, pipe.conn.node);
        }
        if (verdict == Verdict::kDone) {
          results[i] = std::move(reply);
          done[i] = true;
        }
      }
      if (pipe.ok) {
        Give(pipe.conn);
      } else {
        if (log_) log_->debug("redis: pipeline to {} failed: {}", pipe.conn.node->name, cause);
        Failed(pipe.conn.node, cause);
        redisFree(pipe.conn.ctx);
        pipe.conn.ctx = nullptr;
        if (resend == Client::Resend::kNever && !failed_after_send) {
          failed_after_send = true;
          failed_slot = cmds[pipe.indexes->front()].first;
          failed_node = pipe.conn.node;
          failed_cause = cause;
        }
      }
    }
    if (failed_after_send) {
      // Close what is left (the other pipes were read or closed above).
      throw MayHaveRun(failed_slot, failed_node, failed_cause);
    }
    // The rest (redirected, retried, or on a failed node) one by one.
    for (std::size_t i = 0; i < cmds.size(); ++i) {
      if (done[i]) continue;
      std::vector<Reply> one = RunGroup(cmds[i].first, {cmds[i].second}, deadline, resend);
      results[i] = std::move(one.front());
    }
    return results;
  }

  std::vector<std::string> Masters() EXCLUDES(mu_) {
    const Clock::time_point deadline = Clock::now() + config_.retry_for;
    std::uint64_t version = 0;
    {
      MutexLock lock(&mu_);
      version = map_version_;
    }
    std::string cause;
    if (!Refresh(version, deadline, &cause)) {
      MutexLock lock(&mu_);
      if (map_version_ == version) {
        throw Error(ErrorCode::io,
                    fmt::format("{}: cannot load the slot map: {}", config_.display, cause));
      }
    }
    std::vector<std::string> masters;
    MutexLock lock(&mu_);
    for (Node* node : slots_) {
      if (node != nullptr &&
          std::find(masters.begin(), masters.end(), node->name) == masters.end()) {
        masters.push_back(node->name);
      }
    }
    return masters;
  }

  Reply RunOn(const std::string& name, const Command& cmd) EXCLUDES(mu_) {
    CheckCommand(cmd);
    Endpoint ep;
    if (!ParseHostPort(name, ep)) {
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("RunOn: not a node (host:port): {}", Quote(name)));
    }
    const Clock::time_point deadline = Clock::now() + config_.retry_for;
    Node* node = nullptr;
    {
      MutexLock lock(&mu_);
      CheckForkLocked();
      node = NodeLocked(ep);
    }
    milliseconds backoff = kFirstBackoff;
    std::string cause;
    const std::vector<Command> cmds{cmd};
    while (true) {
      Conn conn;
      std::vector<Reply> replies;
      if (Take(node, conn, cause) && Exchange(conn, cmds, false, replies, cause)) {
        Give(conn);
        if (Judge(replies.front()) == Verdict::kNoAuth) {
          throw Error(ErrorCode::permission,
                      fmt::format("{}: node {} requires a password ({}): give one in the URL",
                                  config_.display, node->name, replies.front().str));
        }
        return std::move(replies.front());
      }
      Failed(node, cause);
      const Clock::time_point now = Clock::now();
      if (now >= deadline) {
        throw Error(ErrorCode::io,
                    fmt::format("{}: node {}: {} (gave up after retrying for {} ms)",
                                config_.display, node->name, cause, config_.retry_for.count()));
      }
      std::this_thread::sleep_for(std::min<Clock::duration>(backoff, deadline - now));
      backoff = std::min(backoff * 2, kMaxBackoff);
    }
  }

  // ForkHook: the state under mu_ is copied whole into a child; the child
  // closes the inherited connections on its first call (CheckForkLocked).
  void BeforeFork() override NO_THREAD_SAFETY_ANALYSIS { mu_.Lock(); }
  void AfterForkInParent() override NO_THREAD_SAFETY_ANALYSIS { mu_.Unlock(); }
  void AfterForkInChild() override NO_THREAD_SAFETY_ANALYSIS {
    // refresh_mu_ guards no state (only serializes refreshes): a parent
    // thread may have held it at the fork, and that thread is gone.
    mu_.ResetAfterFork();
    refresh_mu_.ResetAfterFork();
  }

 private:
  void CheckCommand(const Command& cmd) const {
    if (cmd.empty()) throw Error(ErrorCode::invalid_argument, "an empty Redis command");
  }

  // In a fork child, the first call drops the parent's connections: close(2)
  // of the child's copies (redisFree sends nothing), the parent's stay open.
  void CheckForkLocked() REQUIRES(mu_) {
    const std::uint64_t epoch = ForkEpoch();
    if (epoch == fork_epoch_) return;
    fork_epoch_ = epoch;
    std::size_t closed = 0;
    for (auto& [name, node] : nodes_) {
      for (redisContext* c : node->idle) redisFree(c);
      closed += node->idle.size();
      node->idle.clear();
    }
    if (log_) log_->debug("redis: in a fork child: closed {} inherited connections", closed);
  }

  Node* NodeLocked(const Endpoint& ep) REQUIRES(mu_) {
    const std::string name = ep.name();
    auto it = nodes_.find(name);
    if (it == nodes_.end()) {
      auto node = std::make_unique<Node>();
      node->endpoint = ep;
      node->name = name;
      it = nodes_.emplace(name, std::move(node)).first;
    }
    return it->second.get();
  }

  // A connection to `node`: an idle one, or a new one (connected within
  // connect_timeout, socket timeout set, AUTH sent).
  bool Take(Node* node, Conn& conn, std::string& cause) EXCLUDES(mu_) {
    conn.node = node;
    {
      MutexLock lock(&mu_);
      CheckForkLocked();
      if (!node->idle.empty()) {
        conn.ctx = node->idle.back();
        node->idle.pop_back();
        conn.epoch = fork_epoch_;
        return true;
      }
      conn.epoch = fork_epoch_;
    }
    redisContext* c = redisConnectWithTimeout(node->endpoint.host.c_str(), node->endpoint.port,
                                              ToTimeval(config_.connect_timeout));
    if (c == nullptr) {
      cause = fmt::format("cannot connect to {}: out of memory", node->name);
      return false;
    }
    if (c->err != 0) {
      cause = fmt::format("cannot connect to {}: {}", node->name, c->errstr);
      redisFree(c);
      return false;
    }
    if (redisSetTimeout(c, ToTimeval(config_.timeout)) != REDIS_OK) {
      cause = fmt::format("cannot set the socket timeout of {}: {}", node->name, c->errstr);
      redisFree(c);
      return false;
    }
    conn.ctx = c;
    if (!config_.password.empty()) {
      Command auth{"AUTH"};
      if (!config_.user.empty()) auth.push_back(config_.user);
      auth.push_back(config_.password);
      std::vector<Reply> replies;
      if (!Exchange(conn, {auth}, false, replies, cause)) return false;
      if (replies.front().is_error()) {
        redisFree(c);
        conn.ctx = nullptr;
        throw Error(ErrorCode::permission,
                    fmt::format("{}: node {} refused AUTH{}: {}", config_.display, node->name,
                                config_.user.empty() ? "" : " as " + Quote(config_.user),
                                Escape(replies.front().str)));
      }
    }
    return true;
  }

  // Back to the pool (or closed if the pool is full, or if a fork happened
  // since it was taken).
  void Give(Conn& conn) EXCLUDES(mu_) {
    redisContext* to_free = conn.ctx;
    {
      MutexLock lock(&mu_);
      if (conn.epoch == fork_epoch_ && conn.node->idle.size() < config_.pool) {
        conn.node->idle.push_back(conn.ctx);
        to_free = nullptr;
      }
      conn.node->failed = false;
    }
    conn.ctx = nullptr;
    if (to_free != nullptr) redisFree(to_free);
  }

  void Failed(Node* node, const std::string& cause) EXCLUDES(mu_) {
    bool first = false;
    {
      MutexLock lock(&mu_);
      node->failed_at = Clock::now();
      first = !node->failed;
      node->failed = true;
    }
    if (log_) {
      if (first) {
        log_->warn("redis: node {} failed: {}", node->name, cause);
      } else {
        log_->debug("redis: node {} failed again: {}", node->name, cause);
      }
    }
  }

  std::string Describe(const Conn& conn) const {
    const redisContext* c = conn.ctx;
    if (c->err == REDIS_ERR_EOF) return fmt::format("node {}: connection closed", conn.node->name);
    if (c->err == REDIS_ERR_IO && (std::strcmp(c->errstr, std::strerror(EAGAIN)) == 0 ||
                                   std::strcmp(c->errstr, std::strerror(EWOULDBLOCK)) == 0)) {
      return fmt::format("node {}: no reply within the socket timeout ({} ms)", conn.node->name,
                         config_.timeout.count());
    }
    return fmt::format("node {}: {}", conn.node->name, c->errstr);
  }

  static void Append(redisContext* c, const Command& cmd) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    argv.reserve(cmd.size());
    lens.reserve(cmd.size());
    for (std::string_view arg : cmd) {
      argv.push_back(arg.data());
      lens.push_back(arg.size());
    }
    if (redisAppendCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()) !=
        REDIS_OK) {
      throw std::bad_alloc();
    }
  }

  bool Read(Conn& conn, Reply& reply, std::string& cause) {
    void* raw = nullptr;
    if (redisGetReply(conn.ctx, &raw) != REDIS_OK || raw == nullptr) {
      cause = Describe(conn);
      return false;
    }
    reply = Convert(static_cast<redisReply*>(raw));
    freeReplyObject(raw);
    return true;
  }

  // Sends cmds pipelined and reads their replies. With `asking`, ASKING goes
  // before each command outside MULTI ... EXEC/DISCARD: before MULTI it holds
  // for the whole transaction (the server keeps the flag while in MULTI),
  // and inside one it would be queued and answered in EXEC's reply. On an
  // I/O error the connection is closed (conn.ctx null) and `cause` says why.
  bool Exchange(Conn& conn, const std::vector<Command>& cmds, bool asking,
                std::vector<Reply>& replies, std::string& cause) {
    static const Command kAsking{"ASKING"};
    std::vector<bool> asked(cmds.size(), false);
    bool in_multi = false;
    for (std::size_t i = 0; i < cmds.size(); ++i) {
      if (asking && !in_multi) {
        Append(conn.ctx, kAsking);
        asked[i] = true;
      }
      Append(conn.ctx, cmds[i]);
      if (IsCommand(cmds[i], "MULTI")) in_multi = true;
      if (IsCommand(cmds[i], "EXEC") || IsCommand(cmds[i], "DISCARD")) in_multi = false;
    }
    replies.clear();
    replies.reserve(cmds.size());
    for (std::size_t i = 0; i < cmds.size(); ++i) {
      Reply reply;
      if (asked[i] && !Read(conn, reply, cause)) break;
      if (!Read(conn, reply, cause)) break;
      replies.push_back(std::move(reply));
    }
    if (replies.size() == cmds.size()) return true;
    redisFree(conn.ctx);
    conn.ctx = nullptr;
    return false;
  }

  static bool IsCommand(const Command& cmd, std::string_view name) {
    if (cmd.front().size() != name.size()) return false;
    for (std::size_t i = 0; i < name.size(); ++i) {
      const char c = cmd.front()[i];
      if ((c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c) != name[i]) return false;
    }
    return true;
  }

  // The first reply of a group that is not an answer, if any.
  static std::pair<Verdict, std::size_t> JudgeAll(const std::vector<Reply>& replies) {
    for (std::size_t i = 0; i < replies.size(); ++i) {
      const Verdict v = Judge(replies[i]);
      if (v != Verdict::kDone) return {v, i};
    }
    return {Verdict::kDone, 0};
  }

  // MOVED: the slot is now `to`'s; the rest of the map is refreshed soon.
  void Moved(std::uint16_t slot, const Endpoint& to, Node* from) EXCLUDES(mu_) {
    {
      MutexLock lock(&mu_);
      slots_[slot] = NodeLocked(to);
    }
    stale_.store(true, std::memory_order_relaxed);
    if (log_) log_->debug("redis: MOVED slot {} from {} to {}", slot, from->name, to.name());
  }

  Node* Ask(std::uint16_t slot, const Endpoint& to, Node* from) EXCLUDES(mu_) {
    if (log_) log_->debug("redis: ASK slot {} from {} to {}", slot, from->name, to.name());
    MutexLock lock(&mu_);
    return NodeLocked(to);
  }

  // A refresh after MOVED or a CLUSTERDOWN, by one thread at a time (the
  // others go on with the map they have).
  void MaybeRefresh(Clock::time_point deadline) EXCLUDES(mu_, refresh_mu_) {
    if (!stale_.load(std::memory_order_relaxed)) return;
    if (!refresh_mu_.TryLock()) return;
    stale_.store(false, std::memory_order_relaxed);
    std::uint64_t version = 0;
    {
      MutexLock lock(&mu_);
      version = map_version_;
    }
    refresh_mu_.Unlock();
    Refresh(version, deadline);
  }

  // Loads the slot map unless it changed since `seen` (another thread did),
  // from the first node that answers: the masters, the seeds, the others,
  // those that failed recently last. True if a map was loaded (by this call
  // or another).
  bool Refresh(std::uint64_t seen, Clock::time_point deadline, std::string* why = nullptr)
      EXCLUDES(mu_, refresh_mu_) {
    MutexLock refresh(&refresh_mu_);
    std::vector<Node*> candidates;
    {
      MutexLock lock(&mu_);
      CheckForkLocked();
      if (map_version_ != seen) return true;
      if (!config_.cluster) {
        Node* node = NodeLocked(config_.seeds.front());
        slots_.fill(node);
        ++map_version_;
        return true;
      }
      auto add = [&](Node* node) {
        if (std::find(candidates.begin(), candidates.end(), node) == candidates.end()) {
          candidates.push_back(node);
        }
      };
      for (Node* node : slots_) {
        if (node != nullptr) add(node);
      }
      for (const Endpoint& ep : config_.seeds) add(NodeLocked(ep));
      for (auto& [name, node] : nodes_) add(node.get());
      const Clock::time_point recent = Clock::now() - kFailedRecently;
      std::stable_partition(candidates.begin(), candidates.end(), [&](Node* node) {
        return !(node->failed && node->failed_at > recent);
      });
    }
    std::vector<std::string> causes;
    for (Node* node : candidates) {
      if (!causes.empty() && Clock::now() >= deadline) break;
      Conn conn;
      std::vector<Reply> replies;
      std::string cause;
      static const std::vector<Command> kSlotsCmd{{"CLUSTER", "SLOTS"}};
      if (!Take(node, conn, cause) || !Exchange(conn, kSlotsCmd, false, replies, cause)) {
        Failed(node, cause);
        causes.push_back(cause);
        continue;
      }
      Give(conn);
      if (Install(node, replies.front(), cause)) return true;
      causes.push_back(cause);
    }
    std::string all = fmt::format("{}", fmt::join(causes, "; "));
    if (log_) log_->warn("redis: cannot load the slot map of {}: {}", config_.display, all);
    if (why != nullptr) *why = all;
    return false;
  }

  // Installs a CLUSTER SLOTS reply from `from`: [[start, end, [host, port,
  // id, ...], replica...], ...].
  bool Install(Node* from, const Reply& reply, std::string& cause) EXCLUDES(mu_) {
    if (reply.type != Reply::Type::kArray) {
      cause = fmt::format("node {}: CLUSTER SLOTS answered {}", from->name,
                          reply.is_error() ? Escape(reply.str) : "no array");
      return false;
    }
    if (reply.elements.empty()) {
      cause = fmt::format("node {}: CLUSTER SLOTS: no slot is served", from->name);
      return false;
    }
    struct Range {
      long long start, end;
      Endpoint master;
      std::vector<Endpoint> replicas;
    };
    std::vector<Range> ranges;
    auto endpoint = [&](const Reply& r, Endpoint& ep) {
      if (r.type != Reply::Type::kArray || r.elements.size() < 2 ||
          r.elements[0].type != Reply::Type::kString ||
          r.elements[1].type != Reply::Type::kInteger) {
        return false;
      }
      ep.host = r.elements[0].str;
      // An unknown endpoint ("" or "?"): the address we asked.
      if (ep.host.empty() || ep.host == "?") ep.host = from->endpoint.host;
      ep.port = static_cast<int>(r.elements[1].integer);
      return ep.port > 0 && ep.port <= 65535;
    };
    for (const Reply& r : reply.elements) {
      Range range;
      if (r.type != Reply::Type::kArray || r.elements.size() < 3 ||
          r.elements[0].type != Reply::Type::kInteger ||
          r.elements[1].type != Reply::Type::kInteger || !endpoint(r.elements[2], range.master)) {
        cause = fmt::format("node {}: CLUSTER SLOTS: malformed reply", from->name);
        return false;
      }
      range.start = r.elements[0].integer;
      range.end = r.elements[1].integer;
      if (range.start < 0 || range.end >= kSlots || range.start > range.end) {
        cause = fmt::format("node {}: CLUSTER SLOTS: bad range {}-{}", from->name, range.start,
                            range.end);
        return false;
      }
      for (std::size_t i = 3; i < r.elements.size(); ++i) {
        Endpoint ep;
        if (endpoint(r.elements[i], ep)) range.replicas.push_back(ep);
      }
      ranges.push_back(std::move(range));
    }
    std::size_t changed = 0, masters = 0;
    {
      MutexLock lock(&mu_);
      std::array<Node*, kSlots> next{};
      std::vector<Node*> seen;
      for (const Range& range : ranges) {
        Node* node = NodeLocked(range.master);
        if (std::find(seen.begin(), seen.end(), node) == seen.end()) seen.push_back(node);
        for (long long s = range.start; s <= range.end; ++s)
          next[static_cast<std::size_t>(s)] = node;
        for (const Endpoint& ep : range.replicas) NodeLocked(ep);
      }
      for (std::size_t s = 0; s < kSlots; ++s) changed += next[s] != slots_[s];
      masters = seen.size();
      slots_ = next;
      ++map_version_;
    }
    if (log_) {
      if (changed > 0) {
        log_->info("redis: slot map of {} from node {}: {} masters, {} slots changed owner",
                   config_.display, from->name, masters, changed);
      } else {
        log_->debug("redis: slot map from node {}: unchanged", from->name);
      }
    }
    return true;
  }

  const Config config_;
  // Set at construction or by set_logger() before the client is shared.
  std::shared_ptr<spdlog::logger> log_;

  Mutex mu_;
  std::map<std::string, std::unique_ptr<Node>> nodes_ GUARDED_BY(mu_);
  std::array<Node*, kSlots> slots_ GUARDED_BY(mu_){};
  // Bumped by every slot map loaded; 0 = none yet.
  std::uint64_t map_version_ GUARDED_BY(mu_) = 0;
  std::uint64_t fork_epoch_ GUARDED_BY(mu_) = ForkEpoch();
  // Serializes refreshes; guards nothing.
  Mutex refresh_mu_;
  // A MOVED or CLUSTERDOWN was seen: the next call refreshes the map.
  std::atomic<bool> stale_{false};

  ForkRegistration fork_;  // last: registered once the rest exists
};

Client::Client(Config config, std::shared_ptr<spdlog::logger> log)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(log))) {}

Client::~Client() = default;

void Client::set_logger(std::shared_ptr<spdlog::logger> log) { impl_->set_logger(std::move(log)); }

Reply Client::Run(std::uint16_t slot, const Command& cmd, Resend resend) {
  std::vector<Reply> replies = impl_->RunGroup(
      slot, {cmd}, std::chrono::steady_clock::now() + impl_->config().retry_for, resend);
  return std::move(replies.front());
}

std::vector<Reply> Client::RunGroup(std::uint16_t slot, const std::vector<Command>& cmds) {
  if (cmds.empty()) return {};
  return impl_->RunGroup(slot, cmds, std::chrono::steady_clock::now() + impl_->config().retry_for);
}

std::vector<Reply> Client::RunMany(const std::vector<std::pair<std::uint16_t, Command>>& cmds,
                                   Resend resend) {
  if (cmds.empty()) return {};
  return impl_->RunMany(cmds, resend);
}

std::vector<std::string> Client::Masters() { return impl_->Masters(); }

Reply Client::RunOn(const std::string& node, const Command& cmd) { return impl_->RunOn(node, cmd); }

const Config& Client::config() const { return impl_->config(); }

}  // namespace lilcache::cluster
