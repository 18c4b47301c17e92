// client: a small Redis Cluster client (routing layer) on hiredis's blocking
// API: the wire protocol is hiredis's, everything else is here.
//
//  * Routing per the Redis Cluster specification: a key's hash slot is
//    CRC16(key) mod 16384 (slot.h, with {hash tags}); the slot map comes from
//    CLUSTER SLOTS of any reachable node (the seeds, then every node known);
//    MOVED updates the slot and schedules a refresh of the whole map; ASK is
//    followed once with ASKING on the target; TRYAGAIN, CLUSTERDOWN,
//    LOADING, MASTERDOWN and lost connections are retried with a backoff
//    (1 ms doubling to 100 ms, refreshing the map) until the operation's
//    deadline (Config::retry_for), then thrown as Error.
//  * A single server (redis://) is a "cluster" whose one node owns every
//    slot: no CLUSTER command is sent.
//  * Connections: a pool per node (idle connections kept up to Config::pool);
//    a connection is taken for one call (or group) and returned after it, so
//    two threads never share one. Every connection has Config::timeout as its
//    socket timeout (read and write) and connects within
//    Config::connect_timeout: no call blocks longer than about retry_for +
//    timeout.
//  * AUTH (user and password from the URL) on every new connection. No TLS
//    (hiredis 0.14 has none).
//
// Thread-safety: every method may be called from any number of threads at
// once. fork(): the child never uses a connection of its parent (which would
// interleave two processes' bytes on one socket): the first call in a child
// closes the inherited pool (close(2) only; the parent's sockets stay open
// for the parent) and connects afresh.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace spdlog {
class logger;
}

namespace lilcache::cluster {

// One reply, owned (nothing of hiredis escapes this layer).
struct Reply {
  enum class Type { kNil, kStatus, kError, kInteger, kString, kArray };
  Type type = Type::kNil;
  std::string str;              // kStatus, kError (e.g. "NOSCRIPT ..."), kString
  long long integer = 0;        // kInteger
  std::vector<Reply> elements;  // kArray

  bool is_nil() const { return type == Type::kNil; }
  bool is_error() const { return type == Type::kError; }
  // An error reply whose first word is `prefix` ("NOSCRIPT", "WRONGTYPE").
  bool is_error(std::string_view prefix) const;
};

struct Endpoint {
  std::string host;
  int port = 0;
  std::string name() const;  // "host:port"
};

// A backend URL, parsed (docs/cluster.md, "URLs"):
//   redis-cluster://[[user]:password@]host:port[,host:port...][?options]
//   redis://[[user]:password@]host:port[?options]
// options (&-separated): timeout=<duration> (socket timeout of every
// command, default 1s), connect_timeout=<duration> (default 1s),
// retry_for=<duration> (how long one operation retries redirections,
// failovers and lost connections, default 10s), pool=<n> (idle connections
// kept per node, default 8). Durations as Options (parse_duration).
struct Config {
  bool cluster = true;  // redis-cluster:// (false: redis://, one server)
  std::vector<Endpoint> seeds;
  std::string user;      // "" = the default user
  std::string password;  // "" = no AUTH
  std::chrono::milliseconds timeout{1000};
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds retry_for{10000};
  std::size_t pool = 8;
  // The URL without its password ("redis-cluster://:***@h:1,h:2"), for logs
  // and messages.
  std::string display;
};

// Parses a backend URL; throws Error (invalid_argument) naming what is wrong.
Config ParseUrl(std::string_view url);

// A command: its arguments, as views valid during the call.
using Command = std::vector<std::string_view>;

class Client {
 public:
  // Connects to nothing yet; the first call does (and loads the slot map).
  // `log` (may be null) receives redirections, refreshes and failures at
  // debug/warn.
  Client(Config config, std::shared_ptr<spdlog::logger> log);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Runs cmd on the master serving `slot` (following redirections, retrying
  // as above). Returns its reply, which may be an error reply that is not
  // about routing (WRONGTYPE, NOSCRIPT, ...: the caller judges). Throws Error
  // (io) once Config::retry_for has passed without an answer, naming the
  // node, the slot and the last cause; Error (permission) if AUTH is refused.
  //
  // resend = Resend::kNever: for a command that must not run twice (a pop:
  // GETDEL, or a script that deletes). If its connection fails after it was
  // handed to the socket, it is not sent again: the call throws Error (io)
  // saying the command may or may not have run. (Redirections and failures
  // before sending are still retried: the command did not run.)
  enum class Resend { kSafe, kNever };
  Reply Run(std::uint16_t slot, const Command& cmd, Resend resend = Resend::kSafe);

  // Runs cmds in order on ONE connection to the master of `slot`, pipelined
  // (one round trip): for commands that must run together (WATCH ... EXEC,
  // or GET of two keys of one slot). If any reply is a redirection or the
  // connection fails, the whole group is sent again (to the new node); so
  // the group must be safe to repeat (a MULTI/EXEC is: EXEC either ran all
  // or nothing). Returns one reply per command.
  std::vector<Reply> RunGroup(std::uint16_t slot, const std::vector<Command>& cmds);

  // Runs many single-slot commands, pipelined per node (one round trip per
  // node involved), each retried on its own if redirected. Replies in the
  // order of `cmds`. For batches (get_many, set_many) and purge.
  // With Resend::kNever, a failed pipeline throws Error (io) as Run does.
  std::vector<Reply> RunMany(const std::vector<std::pair<std::uint16_t, Command>>& cmds,
                             Resend resend = Resend::kSafe);

  // The masters now (after a refresh of the slot map), as "host:port".
  std::vector<std::string> Masters();

  // Runs cmd on the node `node` ("host:port", from Masters()), with no
  // redirection: SCAN, BGSAVE, INFO, PING. Retries lost connections until
  // retry_for, then throws Error (io).
  Reply RunOn(const std::string& node, const Command& cmd);

  const Config& config() const;

  // Replaces the logger given to the constructor. Only before the client is
  // used by more than one thread (not synchronized).
  void set_logger(std::shared_ptr<spdlog::logger> log);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lilcache::cluster
